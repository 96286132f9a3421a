"""What controllers return: checked before anything is stored, encrypted at rest, checksummed, and shown
only to the member it concerns. All or nothing: one bad file in an upload stores none of them."""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, cast

import magic
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from core import crypto, outbox
from core.audit import Actor
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError, UploadRefused
from requests_engine.models import DataRightsRequest, ReceivedFile
from requests_engine.notices.member import files_notice_send

logger = logging.getLogger(__name__)

# Types a controller may send (sniffed from the bytes, never trusted from the name).
ACCEPTED_TYPES = {
    "application/pdf",
    "application/json",
    "text/plain",
    "text/csv",
    "application/csv",
    "text/html",
    "application/xml",
    "text/xml",
    "application/zip",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.text",
    "message/rfc822",
}
# A portability answer should be structured and machine-readable (Art 20(1); RULES.md (g)).
MACHINE_READABLE = {
    "application/json",
    "text/csv",
    "application/csv",
    "application/xml",
    "text/xml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.spreadsheet",
    "text/plain",
}


@dataclass(frozen=True)
class Upload:
    """A file to check and store: its name, and its content as bytes or as a file that is read in chunks
    (a browser's or API client's upload, which Django spools to a temporary file, or a ZIP member unpacked
    to one), so that a large upload is never held whole in memory."""

    name: str
    data: bytes | File

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else int(self.data.size or 0)

    def head(self, size: int = 65536) -> bytes:
        """The first bytes, for sniffing the type."""
        if isinstance(self.data, bytes):
            return self.data[:size]
        self.data.seek(0)
        return self.data.read(size)

    def opened(self) -> crypto.Readable:
        """The content from its start, as a seekable file."""
        if isinstance(self.data, bytes):
            return io.BytesIO(self.data)
        self.data.seek(0)
        return cast(crypto.Readable, self.data)


def unpacked(name: str, member: crypto.Readable) -> Upload:
    """A ZIP member as an Upload, copied to a temporary file that stays in memory only while small."""
    spool = tempfile.SpooledTemporaryFile(max_size=crypto.CHUNK_BYTES)  # noqa: SIM115 - closed with the File
    shutil.copyfileobj(member, spool, crypto.CHUNK_BYTES)
    spool.seek(0)
    return Upload(name=name, data=File(spool, name=name))


def _max_bytes() -> int:
    return getattr(settings, "UPLOAD_MAX_BYTES", 100 * 1024 * 1024)


def _clean_name(name: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UploadRefused("A file name contains control characters; rename the file and upload it again.")
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in (".", ".."):
        raise UploadRefused(f"“{name}” is not a usable file name.")
    return base[:255]


def sniff(head: bytes) -> str:
    """The type of a file from its first bytes (64 KiB are enough for libmagic)."""
    kind = magic.from_buffer(head[:65536], mime=True)
    return "text/csv" if kind == "application/csv" else kind


# Archives inside archives are opened and checked too, to this depth; deeper nesting is refused (a small
# ZIP stored inside another can hold a bomb the outer check never sees).
ZIP_MAX_DEPTH = 3
_ZIP_MAGIC = b"PK\x03\x04"


def check_zip(name: str, data: bytes | crypto.Readable) -> list[zipfile.ZipInfo]:
    """Refuse archives that could harm us, from their directory before anything is extracted: paths
    escaping the folder or written with backslashes, links, control characters, bombs (ratio and total,
    counting archives nested inside), nesting deeper than ZIP_MAX_DEPTH."""
    limit = getattr(settings, "UPLOAD_MAX_UNZIPPED_BYTES", 1024 * 1024 * 1024)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else cast(IO[bytes], data))
    except zipfile.BadZipFile:
        raise UploadRefused(f"“{name}” is not a readable ZIP file.") from None
    with archive:
        entries = archive.infolist()
        total = _check_entries(name, archive, entries, depth=1, limit=limit, used=0)
    if total > limit:
        raise UploadRefused(f"“{name}” would unpack to {total:,} bytes, more than the {limit:,} allowed.")
    return entries


def _check_entries(
    name: str, archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], *, depth: int, limit: int, used: int
) -> int:
    """`used` plus the bytes the entries declare, nested archives included; UploadRefused at the first bad
    entry or once the whole would unpack to more than `limit`."""
    total = used
    for entry in entries:
        path = entry.filename
        if "\\" in path:
            raise UploadRefused(f"“{name}” contains a name written with a backslash ({path}).")
        if path.startswith("/") or ".." in path.split("/") or ":" in path.split("/")[0]:
            raise UploadRefused(f"“{name}” contains a path that leaves its folder ({path}).")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise UploadRefused(f"“{name}” contains a link ({path}); links are not accepted.")
        if any(unicodedata.category(ch) == "Cc" for ch in path):
            raise UploadRefused(f"“{name}” contains a file name with control characters.")
        total += entry.file_size
        if entry.compress_size and entry.file_size / entry.compress_size > 200:
            raise UploadRefused(f"“{name}” expands too much ({path}): it looks like a ZIP bomb.")
        if total > limit:
            raise UploadRefused(f"“{name}” would unpack to more than the {limit:,} bytes allowed.")
        if not entry.is_dir() and not entry.flag_bits & 0x1 and _is_zip(archive, entry):
            if depth >= ZIP_MAX_DEPTH:
                raise UploadRefused(
                    f"“{name}” holds archives nested more than {ZIP_MAX_DEPTH} deep ({path}): unpack them "
                    "and upload the files."
                )
            # Opened in place (a ZIP member is seekable): nothing is extracted to check it.
            try:
                with archive.open(entry) as member, zipfile.ZipFile(member) as inner:
                    total = _check_entries(
                        f"{name}: {path}", inner, inner.infolist(), depth=depth + 1, limit=limit, used=total
                    )
            except zipfile.BadZipFile:
                raise UploadRefused(f"“{name}” holds a damaged archive ({path}).") from None
    return total


def _is_zip(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bool:
    try:
        with archive.open(entry) as member:
            return member.read(4) == _ZIP_MAGIC
    except (zipfile.BadZipFile, NotImplementedError, OSError) as error:  # a small entry is read, CRC and all
        raise UploadRefused(f"“{entry.filename}” in the ZIP cannot be unpacked ({error}).") from None


def check_uploads(uploads: list[Upload]) -> None:
    """One answer's files together stay within UPLOAD_MAX_ANSWER_BYTES (each is checked on its own too)."""
    limit = getattr(settings, "UPLOAD_MAX_ANSWER_BYTES", 200 * 1024 * 1024)
    total = sum(upload.size for upload in uploads)
    if total > limit:
        raise UploadRefused(
            f"These files come to {total // (1024 * 1024):,} MB, more than the {limit // (1024 * 1024):,} MB "
            "one answer may carry: send the rest in a second answer, or as a ZIP."
        )


def check_upload(upload: Upload) -> tuple[str, str]:
    """(clean name, sniffed type) or UploadRefused."""
    name = _clean_name(upload.name)
    if not upload.size:
        raise UploadRefused(f"“{name}” is empty.")
    if upload.size > _max_bytes():
        raise UploadRefused(f"“{name}” is larger than the {_max_bytes() // (1024 * 1024)} MB allowed.")
    kind = sniff(upload.head())
    if kind not in ACCEPTED_TYPES:
        raise UploadRefused(f"“{name}” is a {kind} file, which we do not accept.")
    if kind == "application/zip":
        check_zip(name, upload.opened())
    return name, kind


# Names stored by store_files inside files_removed_on_failure(), innermost block's list.
_stored_in_block: ContextVar[list[str] | None] = ContextVar("stored_in_block", default=None)


@contextmanager
def files_removed_on_failure() -> Iterator[None]:
    """Delete the files store_files writes inside the block if the block fails. Storage is not part of the
    database transaction: wrap the transaction in this, so a rolled-back answer leaves no orphan behind."""
    names: list[str] = []
    outer = _stored_in_block.get()
    token = _stored_in_block.set(names)
    try:
        yield
    except BaseException:
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:
                logger.exception("Could not remove %s after a failed answer.", name)
        raise
    else:
        if outer is not None:
            outer.extend(names)  # the enclosing block may still fail
    finally:
        _stored_in_block.reset(token)


def remove_on_failure(stored_name: str) -> None:
    """Have the enclosing files_removed_on_failure() block delete this stored file if it fails."""
    if (block := _stored_in_block.get()) is not None:
        block.append(stored_name)


def received_files_store(
    *, request: DataRightsRequest, uploads: list[Upload], actor: Actor
) -> list[ReceivedFile]:
    """Check every upload, then store them all encrypted with their events; the caller holds the request's
    row lock inside its transaction. Raises UploadRefused before anything is written."""
    check_uploads(uploads)
    checked = [(check_upload(u), u) for u in uploads]
    retention = request.member.community.retention_days
    stored = []
    for (name, kind), upload in checked:
        saved = crypto.save_encrypted_file(f"received/{request.pk}/file", upload.opened())
        remove_on_failure(saved.name)
        stored.append(
            ReceivedFile.objects.create(
                request=request,
                original_name=name,
                stored=saved.name,
                size=saved.size,
                content_type=kind,
                sha256=saved.sha256,
                delete_after=timezone.localdate() + timedelta(days=retention),
            )
        )
    if stored:
        record_event(
            subject=request,
            kind="request.files_received",
            actor=actor,
            payload={
                "files": [
                    {
                        "id": f.pk,
                        "name": f.original_name,
                        "type": f.content_type,
                        "size": f.size,
                        "sha256": f.sha256,
                    }
                    for f in stored
                ]
            },
        )
    return stored


def portability_answer_is_structured(files: list[ReceivedFile]) -> bool:
    return any(f.content_type in MACHINE_READABLE or f.content_type == "application/zip" for f in files)


def received_files_record(*, request_id: int, uploads: list[Upload], actor: Actor) -> list[ReceivedFile]:
    with transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__community")
            .get(pk=request_id)
        )
        stored = received_files_store(request=request, uploads=uploads, actor=actor)

        files_notice_send(request)  # in this transaction: files refused or rolled back tell nobody
        return stored


def received_file_open(received: ReceivedFile) -> IO[bytes]:
    """The file's data, decrypted into a temporary file (in memory only while small) and checked against
    its checksum; the caller closes it."""
    with default_storage.open(cast(str, received.stored.name), "rb") as stored:
        copy = crypto.decrypted_copy(stored)
    digest = hashlib.sha256()
    while chunk := copy.read(crypto.CHUNK_BYTES):
        digest.update(chunk)
    if digest.hexdigest() != received.sha256:
        copy.close()
        raise crypto.CryptoError(f"File {received.pk} does not match its checksum.")
    copy.seek(0)
    return copy


def received_file_data(received: ReceivedFile) -> bytes:
    with received_file_open(received) as copy:
        return copy.read()


def received_file_download(*, file_id: int, actor: Actor) -> IO[bytes]:
    """The file's data, decrypted and checked against its checksum, as a file to stream; each download is
    recorded."""
    received = ReceivedFile.objects.get(pk=file_id)
    data = received_file_open(received)
    with transaction.atomic():
        request = DataRightsRequest.objects.select_for_update().get(pk=received.request_id)
        record_event(
            subject=request,
            kind="request.file_downloaded",
            actor=actor,
            payload={"file": received.pk, "sha256": received.sha256},
        )
    return data


def received_file_keep(*, file_id: int, keep: bool, actor: Actor) -> ReceivedFile:
    """The member keeps a returned file past the retention period, or lets it go again (it is then deleted
    on the retention date, or at the next daily run if that date has passed)."""
    with transaction.atomic():
        received = ReceivedFile.objects.select_for_update().get(pk=file_id)
        if received.deleted_at is not None:
            raise RequestEngineError("This file has already been deleted.")
        if received.keep == keep:
            return received
        received.keep = keep
        received.save(update_fields=["keep"])
        request = DataRightsRequest.objects.select_for_update().get(pk=received.request_id)
        record_event(
            subject=request,
            kind="request.file_kept" if keep else "request.file_released",
            actor=actor,
            payload={"file": received.pk, "name": received.original_name},
        )
    return received


def received_files_expire(*, today: datetime.date | None = None) -> int:
    """Delete returned files past their retention date that the member did not keep (a daily job)."""
    today = today or timezone.localdate()
    deleted = 0
    for received in ReceivedFile.objects.filter(delete_after__lt=today, keep=False, deleted_at__isnull=True):
        default_storage.delete(cast(str, received.stored.name))
        # The copies forwarded to other controllers (Art 20(2)) go with it: what was sent stays recorded.
        outbox.attachments_erase(
            message_ids=received.forwards.exclude(message=None).values_list("message_id", flat=True),
            sha256=received.sha256,
        )
        ReceivedFile.objects.filter(pk=received.pk).update(deleted_at=timezone.now())
        deleted += 1
    return deleted
