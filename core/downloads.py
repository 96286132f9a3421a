"""Files handed to a browser or an API client: one response for every download of personal data.

The name's extension follows what the file really is (its type sniffed from the content when it was
stored), so a PDF sent as "statement.exe" downloads as "statement.pdf" and nothing opens it as a program;
the browser is told not to guess the type, and no cache (the browser's, a proxy's) keeps a copy."""

from __future__ import annotations

import mimetypes
import unicodedata
from pathlib import PurePath
from typing import IO, TypeVar

from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header

R = TypeVar("R", bound=HttpResponseBase)

# What mimetypes lacks or guesses oddly for the types we accept.
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "image/jpeg": ".jpg",
    "application/zip": ".zip",
    "application/octet-stream": ".bin",
}


def private(response: R) -> R:
    """Personal data: never stored by a cache, never shared between users of one browser."""
    patch_cache_control(response, no_store=True, private=True)
    return response


def filename_for(name: str, content_type: str) -> str:
    """The given name, cleaned (no folders, control characters or quotes), with the extension of its type."""
    base = PurePath(name.replace("\\", "/")).name
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C" and c not in '"').strip(" .")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    wanted = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"
    known = {wanted, *mimetypes.guess_all_extensions(content_type)}
    if f".{ext.lower()}" in known:
        return base
    return f"{stem or 'file'}{wanted}"


def download(data: bytes | IO[bytes], *, name: str, content_type: str) -> HttpResponseBase:
    """The file as an attachment; a file object is streamed (and closed when sent), never read whole."""
    response: HttpResponse | FileResponse
    if isinstance(data, bytes):
        response = HttpResponse(data, content_type=content_type)
    else:
        response = FileResponse(data, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename_for(name, content_type))
    response["X-Content-Type-Options"] = "nosniff"
    return private(response)
