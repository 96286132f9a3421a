"""What a well-formed call to the controller API needs beyond its schema, given to schemathesis so that a
schema-valid call reaches the services rather than a refusal the schema cannot express.

The rules are the server's own, called here, never copied: which grounds the law gives for the request's
right (`request_ground_problem`), which files are accepted (`check_upload`, the type sniffed from the
content), what a fulfilment must carry for its right (the data for access and portability, whom an erasure
was told of, Art 15 items only for access). A static schema cannot tie a body to the request its path names,
so the hook looks the request up and fits the generated body to it. Only schema-valid (positive) calls are
fitted; an invalid call is sent as generated, and must be refused.

Each action also gets a fresh Idempotency-Key, as its schema asks; reusing a key is tested in
test_idempotency.py.

Loaded by schemathesis.toml for `schemathesis run` against a running server (run it from the project's
directory with the server's environment, so the hook reads the server's database), and imported by
test_api_schemathesis.py in the suite.
"""

from __future__ import annotations

import os
import re
import uuid
import zlib
from typing import Any

import django
from django.apps import apps

if not apps.ready:  # `schemathesis run`: the hook reads the database the server uses
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

import schemathesis  # noqa: E402
from schemathesis.core import NOT_SET  # noqa: E402
from schemathesis.core.parameters import ParameterLocation  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.transport.serialization import Binary  # noqa: E402

from communities.models import Right  # noqa: E402
from requests_engine.api import idempotency  # noqa: E402
from requests_engine.exceptions import UploadRefused  # noqa: E402
from requests_engine.grounds import request_ground_problem, request_grounds  # noqa: E402
from requests_engine.models import DataRightsRequest  # noqa: E402
from requests_engine.responses.files import Upload, check_upload  # noqa: E402

ACTION_PATH = re.compile(r"^/api/v1/requests/\{reference\}/(?P<step>[a-z-]+)/$")
KEY = re.compile(idempotency.KEY_PATTERN)
# A small file every answer accepts: machine-readable, so portability takes it too.
DATA_FILE = Binary(b"field,value\nname,Ada Lovelace\n")
ERASURE_TOLD = "The data was disclosed to no one."
# Requests the caller's controller owns. The suite fills it; against a running server schemathesis finds
# references in the answers to its own calls (the list, the links).
KNOWN_REFERENCES: list[str] = []


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    # As the case is drawn, not in before_call, which schemathesis treats as an edit to revalidate.
    if case.meta is None:
        return case
    positive = case.meta.generation.mode == GenerationMode.POSITIVE
    _known_reference(case, positive)
    step = ACTION_PATH.match(case.operation.path or "")
    if step is None or case.method.upper() != "POST":
        return case
    _fresh_idempotency_key(case)
    reference = (case.path_parameters or {}).get("reference")
    found = DataRightsRequest.objects.filter(reference=reference).first() if positive and reference else None
    if found is None:  # an unknown request is a 404 whatever the body
        return case
    if case.body is NOT_SET:  # no body is valid too; the request may still need one
        case.body, case.media_type = {}, "application/json"
    if isinstance(case.body, dict):
        _fit_body(case, found, step["step"])
        # The fitted body is the drawn one: schemathesis cannot validate a body holding files, and would
        # otherwise count an edited one as invalid data.
        case._record_starting_state()
    return case


def _known_reference(case: Any, positive: bool) -> None:
    """Half the calls name a request that exists, so they get past the 404; never a call whose invalid
    part is the path, which would then be valid."""
    reference = (case.path_parameters or {}).get("reference")
    if not KNOWN_REFERENCES or not isinstance(reference, str):
        return
    if not positive and ParameterLocation.PATH in _invalid_parts(case):
        return
    chosen = zlib.crc32(reference.encode())  # not hash(): a derandomised run must draw the same calls
    if chosen % 2:
        case.path_parameters["reference"] = KNOWN_REFERENCES[chosen // 2 % len(KNOWN_REFERENCES)]


def _invalid_parts(case: Any) -> set[Any]:
    data = case.meta.phase.data
    return {getattr(data, "parameter_location", None), *(m.parameter_location for m in data.mutations)}


def _fresh_idempotency_key(case: Any) -> None:
    headers = case.headers or {}
    if isinstance(headers.get(idempotency.HEADER), str) and KEY.match(headers[idempotency.HEADER]):
        headers[idempotency.HEADER] = str(uuid.uuid4())


def _fit_body(case: Any, request: DataRightsRequest, step: str) -> None:
    body = case.body
    ground = body.get("ground")
    if isinstance(ground, str) and request_ground_problem(ground, request):
        allowed = [code for code, _ in request_grounds(request)]
        body["ground"] = allowed[len(ground) % len(allowed)]
    if step not in ("fulfil", "partially-fulfil"):
        return
    if body.get("art15_items") and request.right != Right.ACCESS:
        del body["art15_items"]
    if (
        step == "fulfil"
        and request.right == Right.ERASURE
        and not str(body.get("recipients_told", "")).strip()
    ):
        body["recipients_told"] = ERASURE_TOLD
    needs_data = step == "fulfil" and request.right in (Right.ACCESS, Right.PORTABILITY)
    if "files" in body or needs_data:
        case.media_type = "multipart/form-data"
        files = [_accepted(item) for item in body.get("files") or []]
        body["files"] = files if files and request.right != Right.PORTABILITY else [*files, DATA_FILE]


def _accepted(item: Any) -> Any:
    data = getattr(item, "data", item)
    if not isinstance(data, bytes):
        return DATA_FILE
    try:
        check_upload(Upload(name="files", data=data))
    except UploadRefused:
        return DATA_FILE
    return item
