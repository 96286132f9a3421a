"""The outbox: every email the service sends goes through here, and its row is the evidence that it went out.

`queue_email` writes the row and its attachments in the caller's transaction and queues the send task for
after commit, so a rolled-back action sends nothing. `send_message` claims a row with a conditional UPDATE,
so only one worker at a time can attempt it, sends it with Django's configured backend and records the
outcome: sent, queued again with a backoff, or failed after the last attempt. `requeue_stuck`, run
periodically, hands back rows whose worker died mid-send or whose task was lost. Every function here is safe
to run twice.

Messages due at once are sent in groups (`send_messages`): one task and one SMTP connection for up to
OUTBOX_SEND_CHUNK messages, each still claimed and marked sent on its own, so a worker killed mid-group
resends at most the one message it was sending.

A row may name Celery tasks to run once it is accepted (`on_sent_task`) or has failed for good
(`on_failed_task`): that is how the app that queued it records delivery in its own domain while core imports
neither app. A hook task is called with a list of message ids (one call per group and task), queued after the
status change commits; it must be idempotent, because a worker that dies between the two loses it and the
app's own sweep has to make up for it.
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
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import EmailValidator
from django.db import connections, router, transaction
from django.utils import timezone

from core.tasks import send_outbound_message, send_outbound_messages

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


def queue_email(**fields: Any) -> OutboundMessage:
    """Queue an email to be sent after the caller's transaction commits; nothing is sent if it rolls back.

    Takes `draft_email`'s keyword arguments (to, subject, body_text, attachments, reply_to, …): `not_before`
    holds it back until then (to spread many messages to one recipient); `on_sent_task` and
    `on_failed_task` name Celery tasks to run with the row's id once it is accepted or has failed for good.
    """
    return queue_drafts([draft_email(**fields)])[0]


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
        # robust: the caller's action has committed; if the broker is unreachable the sweeper sends it.
        transaction.on_commit(partial(_dispatch_many, [(m.pk, m.not_before) for m in messages]), robust=True)
    return messages


def attachments_erase(*, message_ids: Iterable[int], sha256: str) -> int:
    """Delete the stored copies of a file sent with these messages (its retention period is over). The
    attachment rows stay, with the name, size and hash of what was sent, as the record."""
    erased = 0
    for attachment in OutboundAttachment.objects.filter(message_id__in=list(message_ids), sha256=sha256):
        if attachment.file:
            attachment.file.storage.delete(str(attachment.file.name))
            OutboundAttachment.objects.filter(pk=attachment.pk).update(file="")
            erased += 1
    return erased


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

    if not_before is not None and not_before > timezone.now():
        # Held back: the broker delivers the task when the row is due (eager runs ignore the ETA; the task
        # then finds the row not yet due and the sweeper sends it later).
        send_outbound_message.apply_async((message_id,), eta=not_before)
    else:
        send_outbound_message.delay(message_id)


def send_chunk() -> int:
    return max(getattr(settings, "OUTBOX_SEND_CHUNK", 25), 1)


def _dispatch_many(messages: Sequence[tuple[int, datetime | None]]) -> None:
    """Queue the sending of many rows: those due now in groups (one task, one SMTP connection each), those
    held back one by one at their time."""

    now = timezone.now()
    due = [pk for pk, not_before in messages if not_before is None or not_before <= now]
    for pk, not_before in messages:
        if not_before is not None and not_before > now:
            _dispatch(pk, not_before)
    size = send_chunk()
    for start in range(0, len(due), size):
        group = due[start : start + size]
        if len(group) == 1:
            _dispatch(group[0])
        else:
            send_outbound_messages.delay(group)


def _run_hook(task_name: str, message_ids: list[int]) -> None:
    """Queue the app's delivery hook by name (core imports no app); an unknown name is logged, not raised."""

    if task_name not in current_app.tasks:
        # Workers import every tasks module at start; a web process running tasks eagerly may not have
        # imported this one yet.
        with contextlib.suppress(ImportError):
            import_module(task_name.rpartition(".")[0])
    task = current_app.tasks.get(task_name)
    if task is None:
        logger.error("outbox: message(s) %s name an unknown task %r", message_ids, task_name)
        return
    task.delay(list(message_ids))


def _after_outcome(task_name: str, message_ids: int | list[int]) -> None:
    # After commit, so the hook reads the final status; robust, so a broker outage never undoes the outcome
    # (the app's sweep finds rows whose hook did not run).
    if task_name:
        ids = [message_ids] if isinstance(message_ids, int) else list(message_ids)
        transaction.on_commit(partial(_run_hook, task_name, ids), robust=True)


# -- sending -------------------------------------------------------------------------------------------


def send_message(message_id: int) -> bool:
    """Make one attempt at a queued email that is due; True if this call sent it.

    Anything else (already sent or being sent, not yet due, failed for good) returns False without
    touching the row, so the call is safe to repeat.
    """
    return bool(send_messages([message_id]))


def send_messages(message_ids: Iterable[int]) -> list[int]:
    """Make one attempt at each of these queued emails that is due, over one SMTP connection; returns the ids
    this call sent. Rows that are not queued and due are passed over untouched, so the call is safe to repeat.

    Each row is claimed just before it is sent and marked sent just after, never all at once: a worker
    killed mid-group leaves at most the one message it was sending in "sending" (the sweeper queues it
    again). Delivery hooks run once for the whole group, one call per hook task."""
    ids = sorted(set(message_ids))
    if not ids:
        return []
    # Read once up front: a row's content never changes after it is queued.
    rows = list(
        OutboundMessage.objects.filter(
            pk__in=ids, channel=Channel.EMAIL, status=Status.QUEUED, not_before__lte=timezone.now()
        )
        .prefetch_related("attachments")
        .order_by("pk")
    )
    if not rows:
        return []
    connection = get_connection()
    sent: list[int] = []
    hooks: dict[str, list[int]] = {}
    accepted: OutboundMessage | None = None  # sent, not yet marked: marked in the statement claiming the next

    def settle(message: OutboundMessage, marked: bool) -> None:
        sent.append(message.pk)
        if marked and message.on_sent_task:  # whoever marks it sent runs the hook, once
            hooks.setdefault(message.on_sent_task, []).append(message.pk)

    try:
        for message in rows:
            marked, claimed = _mark_and_claim(sent_id=accepted.pk if accepted else None, claim_id=message.pk)
            if accepted:
                settle(accepted, marked)
                accepted = None
            if not claimed:
                continue
            message.attempts += 1
            try:
                # Opened here, not by send(): a connection send() opens it also closes after one message.
                connection.open()
                _build_email(message, connection).send()
            except Exception as exc:  # any failure must end up on the row, not leave it in "sending"
                _record_failure(message, exc)
                # The connection may be broken (server gone, protocol error): the next message opens anew.
                with contextlib.suppress(Exception):
                    connection.close()
                continue
            accepted = message
        if accepted:
            marked, _ = _mark_and_claim(sent_id=accepted.pk, claim_id=None)
            settle(accepted, marked)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
        for task_name, hooked in hooks.items():
            _after_outcome(task_name, hooked)
    return sent


def _mark_and_claim(*, sent_id: int | None, claim_id: int | None) -> tuple[bool, bool]:
    """Mark one message sent and claim the next in one statement (one round trip per message on the hot
    path); returns (marked, claimed).

    The mark is not conditional on "sending": if the sweeper re-queued the row meanwhile, it still went out,
    and marking it sent keeps it from being sent again. The claim moves the row from queued to sending only
    if it is still queued and due, so only one caller can have it."""
    db = connection_for_outbox()
    now = db.ops.adapt_datetimefield_value(timezone.now())
    table = db.ops.quote_name(OutboundMessage._meta.db_table)
    sql = f"""
        UPDATE {table} SET
            status = CASE WHEN id = %s THEN %s ELSE %s END,
            sent_at = CASE WHEN id = %s THEN %s ELSE sent_at END,
            attempts = CASE WHEN id = %s THEN attempts ELSE attempts + 1 END,
            claimed_at = CASE WHEN id = %s THEN claimed_at ELSE %s END
        WHERE (id = %s AND status <> %s) OR (id = %s AND status = %s AND not_before <= %s)
        RETURNING id"""
    params = [
        sent_id,
        Status.SENT,
        Status.SENDING,
        sent_id,
        now,
        sent_id,
        sent_id,
        now,
        sent_id,
        Status.SENT,
        claim_id,
        Status.QUEUED,
        now,
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        touched = {row[0] for row in cursor.fetchall()}
    return sent_id in touched, claim_id in touched


def connection_for_outbox():

    return connections[router.db_for_write(OutboundMessage)]


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


def _build_email(message: OutboundMessage, connection=None) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=message.from_email,
        to=message.to,
        cc=message.cc,
        reply_to=message.reply_to,
        # The Message-ID chosen at queue time, so that replies to it can be matched to this row.
        headers={**message.headers, "Message-ID": message.message_id},
        connection=connection or get_connection(),
    )
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    for attachment in message.attachments.all():
        if not attachment.file:
            raise AttachmentChanged(
                f"Attachment {attachment.filename!r} was deleted under the retention policy before it was sent."
            )
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
        if retry or lost:
            transaction.on_commit(partial(_dispatch_many, [(pk, None) for pk in retry + lost]), robust=True)
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
        if failed:
            transaction.on_commit(partial(_dispatch_many, [(pk, None) for pk in failed]), robust=True)
    return len(failed)
