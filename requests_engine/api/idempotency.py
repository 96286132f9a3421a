"""`Idempotency-Key` on API POSTs: a retried action answers as the first attempt did, and acts once.

The first attempt's answer (its status and JSON body) is stored per contact and key, with a fingerprint
of what was asked (method, path and body; for multipart bodies the fields and each file's SHA-256, since
the part boundaries differ between two sends of the same thing). A retry with the same key and the same
fingerprint gets the stored answer again; the same key on a different request is a 422.

Answers are stored once the input was valid and the action was attempted: a success, or a 409 when the
state did not allow it. Malformed input (400) is not stored, so a client may correct it and retry with
the same key.

Two attempts racing with one key: each claims the key by inserting its row inside the transaction that
also performs the action. The (contact, key) unique constraint makes the second insert wait for the
first transaction and then fail; the second then rolls back and replays the first one's answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime

from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import QueryDict
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from requests_engine.models import IdempotentResponse

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
# Visible ASCII only: a UUID, a ULID or any token a client makes.
KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
_KEY = re.compile(KEY_PATTERN)


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was already used for a different request. Use a new key for a new request; "
        "send exactly the same request to retry."
    )
    default_code = "idempotency_key_reused"


def key_from(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        raise exceptions.ValidationError(
            {HEADER: [f"Use 1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID is a good key)."]}
        )
    return key


def _canonical(value):
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "size": value.size, "sha256": digest.hexdigest()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def fingerprint(request: Request) -> str:
    """SHA-256 of method, path and the parsed body (parsing errors surface here, as the view's 400)."""
    data = request.data
    if isinstance(data, QueryDict):  # multipart or form: every value of every field, files by content
        body = {key: _canonical(data.getlist(key)) for key in sorted(data.keys())}
    else:
        body = _canonical(data)
    text = json.dumps(
        [request.method, request.get_full_path(), body], sort_keys=True, cls=DjangoJSONEncoder, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _replay(stored: IdempotentResponse, request_fingerprint: str) -> Response:
    if stored.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    return Response(stored.body, status=stored.status_code, headers={REPLAY_HEADER: "true"})


def stored_response(*, contact_id: int, key: str, request_fingerprint: str) -> Response | None:
    """The answer to replay for this key, None when the key is new, or IdempotencyKeyReused."""
    stored = IdempotentResponse.objects.filter(contact_id=contact_id, key=key).first()
    return None if stored is None else _replay(stored, request_fingerprint)


def run_once(
    *, contact_id: int, key: str, request_fingerprint: str, attempt: Callable[[], Response]
) -> Response:
    """Run `attempt` and store its answer under the key, in one transaction. `attempt` returns the answer
    to store, or raises an APIException for an answer that must not be stored (nothing is kept then)."""
    try:
        with transaction.atomic():
            record = IdempotentResponse.objects.create(
                contact_id=contact_id,
                key=key,
                request_fingerprint=request_fingerprint,
                status_code=0,
                body={},
            )
            response = attempt()
            record.status_code = response.status_code
            record.body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
            record.save(update_fields=["status_code", "body"])
            return response
    except IntegrityError:
        # Another attempt with this key committed first: answer as its retry would be answered.
        stored = IdempotentResponse.objects.filter(contact_id=contact_id, key=key).first()
        if stored is None:
            raise
        return _replay(stored, request_fingerprint)


def forget_responses(*, older_than: datetime) -> int:
    """Delete stored answers created before `older_than` (a periodic job may keep the table small)."""
    deleted, _ = IdempotentResponse.objects.filter(created_at__lt=older_than).delete()
    return deleted
