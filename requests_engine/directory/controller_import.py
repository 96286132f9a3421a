"""Import the controller directory from datenanfragen.de company records (CC0; schema: their schema.json).

`controller_records(path)` reads a JSON file holding either a list of records or `{"records": [...]}` and raises
`ControllerImportError` with a one-line message when the file itself is unusable. `controllers_import`
then creates or updates one `Controller` per record, keyed by slug, and reports what it did:

* a bad record (not an object, missing or malformed slug or name, invalid email or URL, malformed
  required-elements, a slug already seen earlier in the same file, …) is skipped and reported with a
  reason; it never stops the rest of the import;
* re-importing the same data is a no-op: records whose imported fields all match count as `unchanged`;
* only imported fields are written on update: what a coordinator sets by hand (jurisdiction,
  individual_requests, drp_endpoint, and a DRP transport) survives re-imports.

Records are identified in reports by their 0-based position in the list, like `.records[17]` in jq.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator, validate_slug
from django.db import models, transaction
from django.utils import timezone

from requests_engine.exceptions import ControllerImportError
from requests_engine.models import Controller, Jurisdiction, Transport


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # (identifier such as "record 17 (slug 'foo')", reason)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {len(self.created)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, rejected {len(self.rejected)}"
        )


# The fields an import owns: compared to decide updated/unchanged, and the only ones written on update.
IMPORTED_FIELDS = (
    "name",
    "runs",
    "categories",
    "email",
    "postal_address",
    "web",
    "webform_url",
    "phone",
    "fax",
    "transport",
    "required_identifiers",
    "needs_id_document",
    "request_language",
    "relevant_countries",
    "sources",
    "comments",
    "quality",
)

# datenanfragen's suggested-transport-medium -> our transport.
TRANSPORTS = {
    "email": Transport.EMAIL,
    "letter": Transport.LETTER,
    # We have no fax transport: a controller that prefers fax gets a letter to its postal address.
    "fax": Transport.LETTER,
    "webform": Transport.WEBFORM,
}

_validate_email = EmailValidator()
_validate_url = URLValidator(schemes=["http", "https"])
_BATCH_SIZE = 500


class _Rejected(Exception):
    """One record cannot be imported; the message is the reason."""


# -- reading the file ------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def controller_records(path: str | Path) -> list[Any]:
    """The records of a JSON import file: a top-level list, or the "records" list of a top-level object.

    The items are returned as they are (not necessarily objects): judging them is the importer's job.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ControllerImportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ControllerImportError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ControllerImportError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        raise ControllerImportError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ControllerImportError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ControllerImportError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # Python refuses integers of more than 4,300 digits (CVE-2020-10735)
        raise ControllerImportError(f"{path}: invalid JSON: {exc}") from None
    if problem := _unstorable_text(data):
        raise ControllerImportError(f"{path}: {problem}")
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "records" in data:
        records = data["records"]
        if not isinstance(records, list):
            raise ControllerImportError(f'{path}: "records" must be a list, not {_kind(records)}')
        return records
    raise ControllerImportError(
        f'{path}: the top level must be a list of records or an object with a "records" list, '
        f"not {_kind(data)}" + (' without "records"' if isinstance(data, dict) else "")
    )


def _unstorable_text(data: Any) -> str:
    """Text no database column can hold, anywhere in the file: a NUL (PostgreSQL refuses it in text) or a
    lone surrogate (not encodable as UTF-8). Such a file is not a directory export: refuse it whole."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character (\\u0000), which no record may hold"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not text"
    return ""


# Control characters (Unicode category Cc and Cf's bidirectional overrides) in a name would garble letters,
# complaints and the register; line breaks and tabs are allowed only in multi-line fields.
_MULTI_LINE = frozenset({"postal_address", "comments"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _control_character(value: str, field_name: str) -> str:
    for char in value:
        if char in "\n\r\t" and field_name in _MULTI_LINE:
            continue
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            return f"U+{ord(char):04X}"
    return ""


# -- one record ------------------------------------------------------------------------------------------


def _max_length(field_name: str) -> int | None:
    return cast(models.Field, Controller._meta.get_field(field_name)).max_length


def _text(record: dict, key: str, field_name: str, *, required: bool = False, strip: bool = True) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise _Rejected(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise _Rejected(f"{key} must be a string, not {_kind(value)}")
    if strip:
        value = value.strip()
    if required and not value:
        raise _Rejected(f"{key} is empty")
    if found := _control_character(value, field_name):
        raise _Rejected(f"{key} contains a control character ({found})")
    limit = _max_length(field_name)
    if limit is not None and len(value) > limit:
        raise _Rejected(f"{key} is longer than {limit} characters")
    return value


def _string_list(record: dict, key: str, *, wrap_string: bool = False) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    if wrap_string and isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        expected = "a list of strings or a string" if wrap_string else "a list of strings"
        raise _Rejected(f"{key} must be {expected}")
    return list(value)


def _url(record: dict, key: str, field_name: str) -> str:
    value = _text(record, key, field_name)
    if value:
        try:
            _validate_url(value)
        except ValidationError:
            raise _Rejected(f"{key} {value!r} is not a valid http(s) URL") from None
    return value


def _required_identifiers(record: dict) -> list[dict]:
    value = record.get("required-elements")
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Rejected(f"required-elements must be a list, not {_kind(value)}")
    for position, element in enumerate(value):
        if not isinstance(element, dict):
            raise _Rejected(f"required-elements[{position}] must be an object, not {_kind(element)}")
        for key in ("desc", "type"):
            if not isinstance(element.get(key), str) or not element[key].strip():
                raise _Rejected(f"required-elements[{position}] needs a non-empty string {key!r}")
        if "optional" in element and not isinstance(element["optional"], bool):
            raise _Rejected(f"required-elements[{position}].optional must be true or false")
    return [dict(element) for element in value]


def _controller_fields(record: dict) -> dict[str, Any]:
    """The imported field values of one record (slug excluded), or _Rejected with the reason."""
    values: dict[str, Any] = {
        "name": _text(record, "name", "name", required=True),
        "runs": _string_list(record, "runs"),
        "categories": _string_list(record, "categories"),
        "email": _text(record, "email", "email"),
        "postal_address": _text(record, "address", "postal_address"),
        "web": _url(record, "web", "web"),
        "webform_url": _url(record, "webform", "webform_url"),
        "phone": _text(record, "phone", "phone"),
        "fax": _text(record, "fax", "fax"),
        "required_identifiers": _required_identifiers(record),
        "request_language": _text(record, "request-language", "request_language"),
        "relevant_countries": _string_list(record, "relevant-countries"),
        "sources": _string_list(record, "sources"),
        "comments": _string_list(record, "comments", wrap_string=True),
        "quality": _text(record, "quality", "quality"),
    }
    if values["email"]:
        try:
            _validate_email(values["email"])
        except ValidationError:
            raise _Rejected(f"email {values['email']!r} is not a valid email address") from None

    needs_id = record.get("needs-id-document", False)
    if needs_id is None:
        needs_id = False
    if not isinstance(needs_id, bool):
        raise _Rejected(f"needs-id-document must be true or false, not {_kind(needs_id)}")
    values["needs_id_document"] = needs_id

    medium = record.get("suggested-transport-medium")
    if medium is None:
        if values["email"]:
            values["transport"] = Transport.EMAIL
        elif values["webform_url"]:
            values["transport"] = Transport.WEBFORM
        else:
            values["transport"] = Transport.LETTER
    elif medium in TRANSPORTS:
        values["transport"] = TRANSPORTS[medium]
    else:
        raise _Rejected(f"suggested-transport-medium {medium!r} is not one of {', '.join(TRANSPORTS)}")
    # A transport with nothing to send to would only fail later, at dispatch: refuse it now.
    if values["transport"] == Transport.EMAIL and not values["email"]:
        raise _Rejected("suggested-transport-medium is email but there is no email address")
    if values["transport"] == Transport.WEBFORM and not values["webform_url"]:
        raise _Rejected("suggested-transport-medium is webform but there is no webform URL")
    return values


def _slug(record: dict) -> str:
    slug = record.get("slug")
    if slug is None:
        raise _Rejected("slug is missing")
    if not isinstance(slug, str):
        raise _Rejected(f"slug must be a string, not {_kind(slug)}")
    if not slug:
        raise _Rejected("slug is empty")
    limit = _max_length("slug")
    if limit is not None and len(slug) > limit:
        raise _Rejected(f"slug is longer than {limit} characters")
    try:
        validate_slug(slug)
    except ValidationError:
        raise _Rejected("slug may contain only ASCII letters, digits, hyphens and underscores") from None
    return slug


# -- the import ------------------------------------------------------------------------------------------


def controllers_import(records: list[Any]) -> ImportReport:
    """Create or update one Controller per valid record, in one transaction; skip and report the rest."""
    report = ImportReport()
    parsed: dict[str, dict[str, Any]] = {}  # slug -> imported field values, in file order
    seen: set[str] = set()

    for index, record in enumerate(records):
        if not isinstance(record, dict):
            report.rejected.append((f"record {index}", f"not a JSON object ({_kind(record)})"))
            continue
        raw_slug = record.get("slug")
        label = f"record {index} (slug {raw_slug!r})" if isinstance(raw_slug, str) else f"record {index}"
        try:
            slug = _slug(record)
            # Any later record with a slug already met is refused, even if the first one was bad:
            # which of two conflicting entries is right is for a person to decide, not the importer.
            if slug in seen:
                raise _Rejected("duplicate slug in this file")
            seen.add(slug)
            parsed[slug] = _controller_fields(record)
        except _Rejected as exc:
            report.rejected.append((label, str(exc)))

    with transaction.atomic():
        existing = Controller.objects.in_bulk(list(parsed), field_name="slug")
        to_create: list[Controller] = []
        to_update: list[Controller] = []
        now = timezone.now()
        for slug, values in parsed.items():
            controller = existing.get(slug)
            if controller is None:
                to_create.append(Controller(slug=slug, jurisdiction=Jurisdiction.ENGLAND_AND_WALES, **values))
                report.created.append(slug)
                continue
            if controller.transport == Transport.DRP:
                # The directory has no notion of DRP: a coordinator chose it by hand, so it stays.
                values = {**values, "transport": Transport.DRP}
            if all(getattr(controller, name) == value for name, value in values.items()):
                report.unchanged.append(slug)
                continue
            for name, value in values.items():
                setattr(controller, name, value)
            controller.updated_at = now  # bulk_update does not apply auto_now
            to_update.append(controller)
            report.updated.append(slug)
        Controller.objects.bulk_create(to_create, batch_size=_BATCH_SIZE)
        Controller.objects.bulk_update(to_update, [*IMPORTED_FIELDS, "updated_at"], batch_size=_BATCH_SIZE)
    return report
