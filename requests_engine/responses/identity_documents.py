"""Proof of identity from a member, for the one controller that asked (Art 12(6) UK GDPR: a controller with
reasonable doubts may ask for what it needs to confirm who the member is).

Checked like any upload, but narrower: a PDF or a photo, at most 10 MB. Stored encrypted, never emailed:
the controller opens it through its portal or API, and each view is an event on the request. Deleted by the
daily file job 30 days after the request closes.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from datetime import timedelta
from typing import cast

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import crypto
from core.audit import Actor
from requests_engine.events import record_event
from requests_engine.exceptions import UploadRefused
from requests_engine.models import OPEN_STATES, DataRightsRequest, IdentityDocument
from requests_engine.responses.files import Upload, check_upload, remove_on_failure

logger = logging.getLogger(__name__)

ACCEPTED = {"application/pdf", "image/png", "image/jpeg", "image/webp"}
MAX_BYTES = 10 * 1024 * 1024
KEPT_AFTER_CLOSE = timedelta(days=30)


def identity_document_store(*, request: DataRightsRequest, upload: Upload, actor: Actor) -> IdentityDocument:
    """Check and store one document; the caller holds the request's row lock in its transaction."""
    if upload.size > MAX_BYTES:
        raise UploadRefused(f"“{upload.name}” is larger than the {MAX_BYTES // (1024 * 1024)} MB allowed.")
    name, kind = check_upload(upload)
    if kind not in ACCEPTED:
        raise UploadRefused(f"“{name}” is not a PDF or a photo (PNG, JPEG or WebP); upload one of those.")
    saved = crypto.save_encrypted_file(f"identity/{request.pk}/document", upload.opened())
    remove_on_failure(saved.name)  # the caller wraps its transaction in files_removed_on_failure()
    document = IdentityDocument.objects.create(
        request=request,
        original_name=name,
        stored=saved.name,
        size=saved.size,
        content_type=kind,
        sha256=saved.sha256,
    )
    record_event(
        subject=request,
        kind="request.identity_document_uploaded",
        actor=actor,
        payload={"document": document.pk, "type": kind, "size": document.size, "sha256": document.sha256},
    )
    return document


def identity_document_view(*, document: IdentityDocument, actor: Actor) -> bytes:
    """The document's bytes for the controller it was sent to (the caller checked which); each view is an
    event, so the member can see who looked and when."""
    if document.deleted_at is not None:
        raise UploadRefused("This document was deleted at the end of its retention period.")
    data = crypto.read_encrypted(cast(str, document.stored.name))
    if hashlib.sha256(data).hexdigest() != document.sha256:
        raise crypto.CryptoError(f"Identity document {document.pk} does not match its checksum.")
    with transaction.atomic():
        request = DataRightsRequest.objects.select_for_update().get(pk=document.request_id)
        record_event(
            subject=request,
            kind="request.identity_document_viewed",
            actor=actor,
            payload={"document": document.pk, "sha256": document.sha256},
        )
    return data


def identity_documents_expire(*, today: datetime.date | None = None) -> int:
    """The daily job: delete each document whose request closed (answered, withdrawn, handed over or closed)
    more than 30 days ago. Returns how many; a second run finds none."""
    today = today or timezone.localdate()
    cutoff = today - KEPT_AFTER_CLOSE
    due = (
        IdentityDocument.objects.filter(deleted_at__isnull=True)
        .exclude(request__state__in=OPEN_STATES)
        .filter(
            Q(request__closed_on__lte=cutoff)
            | Q(request__closed_on__isnull=True, request__answered_on__lte=cutoff)
        )
    )
    deleted = 0
    for document in due:
        try:
            default_storage.delete(cast(str, document.stored.name))
        except OSError:
            logger.exception("Could not delete identity document %s; the next run tries again.", document.pk)
            continue
        IdentityDocument.objects.filter(pk=document.pk).update(deleted_at=timezone.now(), stored="")
        deleted += 1
    return deleted
