"""The outbox: every email the service sends goes through here, and its row is the evidence that it went out.

`queue_email` writes the row and its attachments in the caller's transaction and queues the send task for
after commit, so a rolled-back action sends nothing. `send_message` claims a row with a conditional UPDATE,
so only one worker at a time can attempt it, sends it with Django's configured backend and records the
outcome: sent, queued again with a backoff, or failed after the last attempt. `requeue_stuck`, run
periodically, hands back rows whose worker died mid-send or whose task was lost. Every function here is safe
to run twice.

A row may name Celery tasks to run, with its id, once it is accepted (`on_sent_task`) or has failed for good
(`on_failed_task`): that is how the app that queued it records delivery in its own domain while core imports
neither app. A hook task is queued after the status change commits; it must be idempotent, because a worker
that dies between the two loses it and the app's own sweep has to make up for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import re
import smtplib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid, parseaddr
from functools import partial
from importlib import import_module

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import EmailValidator
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import OutboundAttachment, OutboundMessage

logger = logging.getLogger(__name__)

Status = OutboundMessage.Status
Channel = OutboundMessage.Channel

# (filename, content, content type or None to guess from the name), as EmailMessage.attach takes them.
Attachment = tuple[str, bytes | str, str | None]

# The outbox writes these itself from the row's own fields.
MANAGED_HEADERS = frozenset({"message-id", "from", "to", "cc", "bcc", "reply-to", "subject", "date"})
HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII except ":"
MAX_ERROR_CHARS = 2000
MAX_RETRY_DELAY = timedelta(hours=6)

_validate_email = EmailValidator()


class OutboxError(Exception):
    """A message that cannot be queued as given."""


class AttachmentChanged(OutboxError):
    """A stored attachment no longer matches the checksum taken when it was queued."""


def max_attempts() -> int:
    return getattr(settings, "OUTBOX_MAX_ATTEMPTS", 5)


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 1, 4, 16, 64 minutes… at most 6 hours."""
    base = timedelta(seconds=getattr(settings, "OUTBOX_RETRY_DELAY_SECONDS", 60))
    return min(base * 4 ** max(attempts - 1, 0), MAX_RETRY_DELAY)


# -- queueing ------------------------------------------------------------------------------------------


def queue_email(
    *,
    to: str | Sequence[str],
    subject: str,
    body_text: str,
    body_html: str = "",
    attachments: Iterable[Attachment] = (),
    reply_to: str | Sequence[str] | None = None,
    cc: str | Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    subject_type: str = "",
    subject_id: str = "",
    purpose: str = "",
    from_email: str | None = None,
    not_before: datetime | None = None,
    on_sent_task: str = "",
    on_failed_task: str = "",
) -> OutboundMessage:
    """Queue an email to be sent after the caller's transaction commits; nothing is sent if it rolls back.

    `not_before` holds it back until then (to spread many messages to one recipient); `on_sent_task` and
    `on_failed_task` name Celery tasks to run with the row's id once it is accepted or has failed for good.
    """
    draft = draft_email(
        to=to, subject=subject, body_text=body_text, body_html=body_html, attachments=attachments,
        reply_to=reply_to, cc=cc, headers=headers, subject_type=subject_type, subject_id=subject_id,
        purpose=purpose, from_email=from_email, not_before=not_before, on_sent_task=on_sent_task,
        on_failed_task=on_failed_task,
    )  # fmt: skip
    return queue_drafts([draft])[0]


@dataclass(frozen=True)
class Draft:
    """An email checked and ready to be queued (see `draft_email`)."""

    message: OutboundMessage
    files: list[tuple[str, bytes, str]]


def draft_email(
    *,
    to: str | Sequence[str],
    subject: str,
    body_text: str,
    body_html: str = "",
    attachments: Iterable[Attachment] = (),
    reply_to: str | Sequence[str] | None = None,
    cc: str | Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    subject_type: str = "",
    subject_id: str = "",
    purpose: str = "",
    from_email: str | None = None,
    not_before: datetime | None = None,
    on_sent_task: str = "",
    on_failed_task: str = "",
) -> Draft:
    """Check an email as `queue_email` takes it, without storing anything; raises OutboxError."""
    recipients = _addresses(to, "to")
    if not recipients:
        raise OutboxError("An email needs at least one recipient.")
    if "\r" in subject or "\n" in subject:
        raise OutboxError("The subject must be a single line.")
    message = OutboundMessage(
        channel=Channel.EMAIL,
        status=Status.QUEUED,
        to=recipients,
        cc=_addresses(cc, "cc"),
        reply_to=_addresses(reply_to, "reply_to"),
        from_email=_addresses(from_email or settings.DEFAULT_FROM_EMAIL, "from_email")[0],
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        headers=_extra_headers(headers),
        message_id=make_msgid(domain=getattr(settings, "MESSAGE_ID_DOMAIN", "community.localhost")),
        subject_type=subject_type,
        subject_id=subject_id,
        purpose=purpose,
        on_sent_task=on_sent_task,
        on_failed_task=on_failed_task,
    )
    if not_before is not None:
        message.not_before = not_before
    files = [_attachment(item) for item in attachments]
    try:
        # The Message-ID is fresh from make_msgid; its unique index guards it without a query per email.
        message.full_clean(validate_unique=False)
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        raise OutboxError(f"The email cannot be queued: {problems}") from None
    return Draft(message=message, files=files)


def queue_drafts(drafts: Sequence[Draft]) -> list[OutboundMessage]:
    """Queue many checked emails at once (two INSERTs, however many): each is sent after the caller's
    transaction commits, as with `queue_email`."""
    if not drafts:
        return []
    with transaction.atomic():
        messages = OutboundMessage.objects.bulk_create([draft.message for draft in drafts])
        OutboundAttachment.objects.bulk_create(
            OutboundAttachment(
                message=message,
                file=ContentFile(content, name=f"{uuid.uuid4().hex}.bin"),
                filename=filename,
                content_type=content_type,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
            )
            for message, draft in zip(messages, drafts, strict=True)
            for filename, content, content_type in draft.files
        )
        for message in messages:
            # robust: the caller's action has committed; if the broker is unreachable the sweeper sends it.
            transaction.on_commit(partial(_dispatch, message.pk, message.not_before), robust=True)
    return messages


def _addresses(value: str | Iterable[str] | None, field: str) -> list[str]:
    """Each address as given ("a@b.example" or "Name <a@b.example>"), after checking it is exactly one."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    result = []
    for item in value:
        address = item.strip() if isinstance(item, str) else ""
        _name, addr = parseaddr(address)
        # parseaddr is lenient: also insist that it read the whole string, not the first of several.
        whole = bool(addr) and (address == addr or address.endswith(f"<{addr}>"))
        try:
            if not whole or "\r" in address or "\n" in address:
                raise ValidationError("not one address")
            _validate_email(addr)
        except ValidationError:
            raise OutboxError(f"{field}: {item!r} is not a valid email address.") from None
        result.append(address)
    return result


def _extra_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    result = {}
    for name, value in (headers or {}).items():
        if not HEADER_NAME.fullmatch(name) or name.lower() in MANAGED_HEADERS:
            raise OutboxError(f"Header {name!r} cannot be set here.")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise OutboxError(f"Header {name!r} must be a single line of text.")
        result[name] = value
    return result


def _attachment(item: Attachment) -> tuple[str, bytes, str]:
    filename, content, content_type = item
    if not filename or "\r" in filename or "\n" in filename or len(filename) > 255:
        raise OutboxError(f"Attachment name {filename!r} is not usable.")
    if isinstance(content, str):
        content = content.encode()
    guessed = mimetypes.guess_type(filename)[0]
    return filename, content, content_type or guessed or "application/octet-stream"


def _dispatch(message_id: int, not_before: datetime | None = None) -> None:
    from .tasks import send_outbound_message  # the tasks module imports this one

    if not_before is not None and not_before > timezone.now():
        # Held back: the broker delivers the task when the row is due (eager runs ignore the ETA; the task
        # then finds the row not yet due and the sweeper sends it later).
        send_outbound_message.apply_async((message_id,), eta=not_before)
    else:
        send_outbound_message.delay(message_id)


def _run_hook(task_name: str, message_id: int) -> None:
    """Queue the app's delivery hook by name (core imports no app); an unknown name is logged, not raised."""
    from celery import current_app

    if task_name not in current_app.tasks:
        # Workers import every tasks module at start; a web process running tasks eagerly may not have
        # imported this one yet.
        with contextlib.suppress(ImportError):
            import_module(task_name.rpartition(".")[0])
    task = current_app.tasks.get(task_name)
    if task is None:
        logger.error("outbox: message %s names an unknown task %r", message_id, task_name)
        return
    task.delay(message_id)


def _after_outcome(task_name: str, message_id: int) -> None:
    # After commit, so the hook reads the final status; robust, so a broker outage never undoes the outcome
    # (the app's sweep finds rows whose hook did not run).
    if task_name:
        transaction.on_commit(partial(_run_hook, task_name, message_id), robust=True)


# -- sending -------------------------------------------------------------------------------------------


def send_message(message_id: int) -> bool:
    """Make one attempt at a queued email that is due; True if this call sent it.

    Anything else (already sent or being sent, not yet due, failed for good) returns False without
    touching the row, so the call is safe to repeat.
    """
    now = timezone.now()
    # The claim: only one caller can move the row from queued to sending.
    claimed = OutboundMessage.objects.filter(
        pk=message_id, channel=Channel.EMAIL, status=Status.QUEUED, not_before__lte=now
    ).update(status=Status.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    if not claimed:
        return False

    message = OutboundMessage.objects.prefetch_related("attachments").get(pk=message_id)
    try:
        _build_email(message).send()
    except Exception as exc:  # any failure must end up on the row, not leave it in "sending"
        _record_failure(message, exc)
        return False
    # Not conditional on "sending": if the sweeper re-queued the row meanwhile, it still went out, and
    # marking it sent keeps it from being sent again.
    marked = (
        OutboundMessage.objects.filter(pk=message_id)
        .exclude(status=Status.SENT)
        .update(status=Status.SENT, sent_at=timezone.now())
    )
    if marked:  # whoever marks it sent runs the hook, once
        _after_outcome(message.on_sent_task, message_id)
    return True


def retry_due_in(message_id: int) -> float | None:
    """Seconds until the next attempt at a queued email (waiting after a failed attempt, or held back until
    its `not_before`); None if it is not queued."""
    not_before = (
        OutboundMessage.objects.filter(pk=message_id, channel=Channel.EMAIL, status=Status.QUEUED)
        .values_list("not_before", flat=True)
        .first()
    )
    if not_before is None:
        return None
    return max((not_before - timezone.now()).total_seconds(), 0.0)


def _build_email(message: OutboundMessage) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=message.from_email,
        to=message.to,
        cc=message.cc,
        reply_to=message.reply_to,
        # The Message-ID chosen at queue time, so that replies to it can be matched to this row.
        headers={**message.headers, "Message-ID": message.message_id},
        connection=get_connection(),
    )
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as stored:
            content = stored.read()
        if hashlib.sha256(content).hexdigest() != attachment.sha256:
            raise AttachmentChanged(f"Attachment {attachment.filename!r} changed after it was queued.")
        email.attach(attachment.filename, content, attachment.content_type)
    return email


def _record_failure(message: OutboundMessage, exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    attempt = OutboundMessage.objects.filter(pk=message.pk, status=Status.SENDING)
    if _is_permanent(exc) or message.attempts >= max_attempts():
        if attempt.update(status=Status.FAILED, last_error=error):
            _after_outcome(message.on_failed_task, message.pk)
        logger.error("outbox: message %s failed for good: %s", message.pk, error)
    else:
        not_before = timezone.now() + retry_delay(message.attempts)
        attempt.update(status=Status.QUEUED, last_error=error, not_before=not_before)
        logger.warning("outbox: message %s attempt %s failed: %s", message.pk, message.attempts, error)


def _is_permanent(exc: Exception) -> bool:
    """Failures that trying again cannot fix: the server refused every recipient, or the content, with a
    5xx reply (RFC 5321 §4.2.1), or an attachment no longer matches what was queued. Connection, login and
    4xx failures are worth retrying."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _reply in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    return isinstance(exc, AttachmentChanged)


# -- sweeping and the back office ----------------------------------------------------------------------


def requeue_stuck(*, older_than: timedelta = timedelta(minutes=15), limit: int = 500) -> int:
    """Hand back emails a worker dropped; returns how many rows it handled.

    * sending for longer than `older_than`: the worker died mid-attempt. The row is queued again (the
      message may in fact have gone out, so a recipient can get it twice, with the same Message-ID), or
      marked failed if that was its last attempt.
    * queued and due for longer than `older_than`: its task was lost. It is sent again.
    Each handled row leaves both conditions, so a second run straight after changes nothing.
    """
    now = timezone.now()
    cutoff = now - older_than
    email = OutboundMessage.objects.filter(channel=Channel.EMAIL)
    with transaction.atomic():
        stuck = list(
            email.filter(status=Status.SENDING, claimed_at__lte=cutoff)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "attempts", "claimed_at", "on_failed_task")[:limit]
        )
        lost = list(
            email.filter(status=Status.QUEUED, not_before__lte=cutoff)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)[: max(limit - len(stuck), 0)]
        )
        retry = []
        for pk, attempts, claimed_at, on_failed_task in stuck:
            status = Status.FAILED if attempts >= max_attempts() else Status.QUEUED
            email.filter(pk=pk, status=Status.SENDING).update(
                status=status,
                not_before=now,
                last_error=f"The attempt started at {claimed_at:%Y-%m-%d %H:%M:%S %Z} did not finish; "
                "the email may or may not have gone out.",
            )
            if status == Status.QUEUED:
                retry.append(pk)
            else:
                _after_outcome(on_failed_task, pk)
        email.filter(pk__in=lost, status=Status.QUEUED).update(not_before=now)
        for pk in retry + lost:
            transaction.on_commit(partial(_dispatch, pk), robust=True)
    if stuck or lost:
        logger.warning(
            "outbox: re-queued %s stuck and %s lost email(s), gave up on %s",
            len(retry),
            len(lost),
            len(stuck) - len(retry),
        )
    return len(stuck) + len(lost)


def retry_failed(ids: Iterable[int]) -> int:
    """Send failed emails again, with a fresh round of attempts (the back office's "send again").

    Rows that are not failed are left alone, so repeating it changes nothing. Returns how many were queued.
    """
    with transaction.atomic():
        failed = list(
            OutboundMessage.objects.filter(pk__in=list(ids), channel=Channel.EMAIL, status=Status.FAILED)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        OutboundMessage.objects.filter(pk__in=failed, status=Status.FAILED).update(
            status=Status.QUEUED, attempts=0, not_before=timezone.now()
        )
        for pk in failed:
            transaction.on_commit(partial(_dispatch, pk), robust=True)
    return len(failed)
