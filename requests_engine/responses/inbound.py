"""Replies from controllers: read the community's mailbox over IMAP, match each message to its batch or
request, keep it encrypted at rest, and record it in the event history.

A message is matched, in order of trust, by
1. the signed reply address the letter gave (`reply+<batch reply token>@…` in To, Cc or Delivered-To):
   only someone who received our letter knows it;
2. In-Reply-To / References naming the Message-ID of our letter or email;
3. a batch or request reference quoted in the subject.
Anything else waits in the coordinators' inbox (admin) to be attached by hand.

Re-reading never duplicates: a message is identified by (mailbox, UIDVALIDITY, UID), a poll only fetches
UIDs above the highest one stored, and the unique constraint settles two pollers racing for the same one.
The mailbox is opened read-only: we never move, flag or delete mail.
"""

from __future__ import annotations

import email
import hashlib
import html
import imaplib
import logging
import re
import ssl
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import cast

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.html import strip_tags
from mailparser_reply import EmailReplyParser

from core import crypto
from core.audit import Actor, ChainedHistory
from requests_engine import letters
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, DataRightsRequest, InboundMessage

logger = logging.getLogger(__name__)


EXCERPT_CHARS = 1000
MAILBOX_ACTOR = Actor.system("mailbox")

Status = InboundMessage.Status

_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
# References are letters, digits and dashes (core.references, and "<batch>-<member>-<right>" for requests).
_REFERENCE_CANDIDATE = re.compile(r"(?<![A-Za-z0-9-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9-])")
_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "[^"]+"')


# -- reading the mailbox ---------------------------------------------------------------------------------


@dataclass
class PollReport:
    mailbox: str = ""
    skipped: str = ""  # why nothing was read, when nothing was
    new: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.skipped:
            return self.skipped
        return (
            f"{self.mailbox}: {self.new} new message(s): {self.matched} matched, {self.unmatched} unmatched, "
            f"{self.duplicates} already stored, {self.failed} failed."
        )


def _text_setting(name: str, default: str = "") -> str:
    value = getattr(settings, name, None)
    return default if value in (None, "") else str(value)


def _int_setting(name: str, default: int) -> int:
    value = getattr(settings, name, None)
    return default if value in (None, "") else int(value)


def _connect() -> imaplib.IMAP4:
    host = _text_setting("INBOUND_IMAP_HOST")
    use_ssl = bool(getattr(settings, "INBOUND_IMAP_SSL", True))
    port = _int_setting("INBOUND_IMAP_PORT", 993 if use_ssl else 143)
    timeout = _int_setting("INBOUND_IMAP_TIMEOUT", 30)
    if use_ssl:
        return imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(), timeout=timeout)
    return imaplib.IMAP4(host, port, timeout=timeout)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uid_validity(conn: imaplib.IMAP4, folder: str) -> int:
    _typ, data = conn.response("UIDVALIDITY")
    if not data or data[0] is None:
        _typ, data = conn.status(_quoted(folder), "(UIDVALIDITY)")
        match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        data = [match.group(1)] if match else []
    if not data:
        raise RequestEngineError(f"The IMAP server gave no UIDVALIDITY for folder {folder!r}.")
    return int(data[0])


def _fetch(conn: imaplib.IMAP4, uid: int) -> tuple[bytes, datetime]:
    typ, data = conn.uid("FETCH", str(uid), "(UID INTERNALDATE BODY.PEEK[])")
    for item in data or []:
        if not isinstance(item, tuple):
            continue
        meta, raw = item[0], item[1]
        found = _UID.search(meta)
        if found and int(found.group(1)) == uid:
            stamp = _INTERNALDATE.search(meta)
            parsed = imaplib.Internaldate2tuple(stamp.group(0)) if stamp else None
            received = datetime.fromtimestamp(time.mktime(parsed), tz=UTC) if parsed else timezone.now()
            return raw, received
    raise RequestEngineError(f"The IMAP server returned no message for UID {uid} ({typ}).")


def mailbox_poll(*, limit: int | None = None) -> PollReport:
    """Read the messages that arrived since the last poll (at most `limit`, default
    INBOUND_IMAP_MAX_PER_POLL), store and match each. Safe to run twice, and twice at once.

    A message that fails for a reason other than its content (database, storage) stops the poll, so the
    next poll starts again from it instead of skipping it."""
    host = _text_setting("INBOUND_IMAP_HOST")
    if not host:
        return PollReport(skipped="No mailbox configured (INBOUND_IMAP_HOST is empty): nothing to read.")
    folder = _text_setting("INBOUND_IMAP_FOLDER", "INBOX")
    user = _text_setting("INBOUND_IMAP_USER")
    limit = limit or _int_setting("INBOUND_IMAP_MAX_PER_POLL", 500)
    label = f"{user}@{host}/{folder}"[:200]
    report = PollReport(mailbox=label)
    try:
        conn = _connect()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise RequestEngineError(f"Cannot reach the mailbox {label}: {exc}") from exc
    try:
        try:
            conn.login(user, _text_setting("INBOUND_IMAP_PASSWORD"))
            typ, data = conn.select(_quoted(folder), readonly=True)
        except imaplib.IMAP4.error as exc:
            raise RequestEngineError(f"Cannot open the mailbox {label}: {exc}") from exc
        if typ != "OK":
            raise RequestEngineError(f"Cannot open folder {folder!r} of {label}: {data!r}")
        validity = _uid_validity(conn, folder)
        known = InboundMessage.objects.filter(mailbox=label, uid_validity=validity)
        highest = known.aggregate(top=Max("uid"))["top"] or 0
        _typ, data = conn.uid("SEARCH", f"UID {highest + 1}:*")
        # "n:*" always includes the last message, even below n: keep only the really new UIDs.
        uids = sorted(uid for uid in (int(x) for x in (data[0] or b"").split()) if uid > highest)
        for uid in uids[:limit]:
            try:
                raw, received_at = _fetch(conn, uid)
                outcome = inbound_receive(
                    mailbox=label, uid_validity=validity, uid=uid, raw=raw, received_at=received_at
                )
            except Exception as exc:  # noqa: BLE001 - reported; the next poll starts again from this UID
                logger.exception("Reading message %s of %s failed", uid, label)
                report.failed += 1
                report.errors.append(f"UID {uid}: {exc}")
                break
            report.new += 1
            if outcome == "duplicate":
                report.duplicates += 1
            elif outcome == Status.MATCHED:
                report.matched += 1
            else:
                report.unmatched += 1
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    logger.info("Mailbox poll: %s", report)
    return report


# -- one message -----------------------------------------------------------------------------------------


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        text = str(value) if value is not None else ""
    except (ValueError, TypeError, IndexError, AttributeError, LookupError):  # malformed header
        return ""
    return " ".join(text.split())


def _recipients(message: EmailMessage) -> list[str]:
    values: list[str] = []
    for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
        try:
            values.extend(str(value) for value in message.get_all(name, []))
        except (ValueError, TypeError, IndexError, AttributeError, LookupError):
            continue
    addresses = [address for _name, address in getaddresses(values) if "@" in address]
    return list(dict.fromkeys(addresses))


def _message_ids(message: EmailMessage) -> list[str]:
    """Ids this message answers, the most direct first: In-Reply-To, then References newest first."""
    found = _MESSAGE_ID.findall(_header(message, "In-Reply-To"))
    found += reversed(_MESSAGE_ID.findall(_header(message, "References")))
    return list(dict.fromkeys(found))


def _sent_at(message: EmailMessage) -> datetime | None:
    try:
        value = message["Date"]
        moment = value.datetime if value is not None else None
    except (ValueError, TypeError, IndexError, AttributeError):
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


def plain_text(message: EmailMessage) -> str:
    """The message's text: its plain part, else its HTML part as text."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except (ValueError, TypeError, IndexError, AttributeError, LookupError):
        part = None
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError, AssertionError, AttributeError):  # unknown charset, bad encoding
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)
    if not isinstance(text, str):
        return ""
    if part.get_content_type() == "text/html":
        text = html.unescape(strip_tags(text))
    return text.replace("\r\n", "\n")


def reply_excerpt(text: str) -> str:
    """The new text of a reply, without the quoted letter below it, shortened for the event log."""
    try:
        latest = EmailReplyParser(languages=["en"]).parse_reply(text)
    except Exception:  # noqa: BLE001 - a parser hiccup must not lose the reply: fall back to the whole text
        latest = text
    lines = [line.rstrip() for line in (latest or text).splitlines() if not line.lstrip().startswith(">")]
    excerpt = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return excerpt if len(excerpt) <= EXCERPT_CHARS else excerpt[: EXCERPT_CHARS - 1].rstrip() + "…"


def parsed_message(inbound: InboundMessage) -> EmailMessage:
    raw = crypto.read_encrypted(cast(str, inbound.raw.name), storage=inbound.raw.storage)
    return cast(EmailMessage, email.message_from_bytes(raw, policy=default_policy))


# -- matching --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    by: str
    batch_id: int | None = None
    request_id: int | None = None


def _request_or_batch(requests: models.QuerySet[DataRightsRequest]) -> tuple[int | None, int | None] | None:
    """(batch id, request id) for exactly one request; (batch id, None) for several requests of one batch,
    as a collective letter carries; None when nothing or several batches match."""
    found = list(requests.values_list("pk", "batch_id")[:2])
    if len(found) == 1:
        return found[0][1], found[0][0]
    if not found:
        return None
    batches = set(requests.values_list("batch_id", flat=True).distinct()[:2])
    if len(batches) == 1 and None not in batches:
        return batches.pop(), None
    return None


def _by_message_id(ids: list[str], within_batch: int | None = None) -> tuple[int | None, int | None] | None:
    """The request or batch whose message `ids` answer, the most direct id first. Within a batch already
    known (from the reply address) only a single request is worth finding."""
    for message_id in ids:
        forms = [f"<{message_id}>", message_id]
        requests = DataRightsRequest.objects.filter(message_id__in=forms)
        if within_batch:
            requests = requests.filter(batch_id=within_batch)
        found = _request_or_batch(requests)
        if found and (found[1] or not within_batch):
            return found
        if not within_batch:
            batch_id = Batch.objects.filter(message_id__in=forms).values_list("pk", flat=True).first()
            if batch_id:
                return batch_id, None
    return None


def _reference_candidates(subject: str) -> list[str]:
    words = [word for word in _REFERENCE_CANDIDATE.findall(subject) if 4 <= len(word) <= 40][:50]
    return list(dict.fromkeys(words + [word.upper() for word in words]))


def _by_reference(subject: str, within_batch: int | None = None) -> tuple[int | None, int | None] | None:
    candidates = _reference_candidates(subject)
    if not candidates:
        return None
    requests = DataRightsRequest.objects.filter(reference__in=candidates)
    if within_batch:
        requests = requests.filter(batch_id=within_batch)
    found = _request_or_batch(requests)
    if within_batch:
        return found if found and found[1] else None
    if found:
        return found
    batches = list(Batch.objects.filter(reference__in=candidates).values_list("pk", flat=True)[:2])
    return (batches[0], None) if len(batches) == 1 else None


def message_match(message: EmailMessage) -> Match | None:
    tokens = [token for token in map(letters.reply_token_in, _recipients(message)) if token]
    if tokens:
        batch_id = Batch.objects.filter(reply_token__in=tokens).values_list("pk", flat=True).first()
        if batch_id:
            # The address names the batch; the thread or the subject may narrow it to one member's request.
            narrower = _by_message_id(_message_ids(message), batch_id) or _by_reference(
                _header(message, "Subject"), batch_id
            )
            request_id = narrower[1] if narrower else None
            return Match("reply-address", batch_id, request_id)
    found = _by_message_id(_message_ids(message))
    if found:
        return Match("in-reply-to", *found)
    found = _by_reference(_header(message, "Subject"))
    if found:
        return Match("reference", *found)
    return None


# -- storing and recording -------------------------------------------------------------------------------


def _record_reply(inbound: InboundMessage, *, actor: Actor, excerpt: str) -> None:
    """Append the reply to the request's history (one member's request) or the batch's. The caller is inside
    the transaction that stores `inbound`."""
    if inbound.request_id:
        subject: ChainedHistory = DataRightsRequest.objects.select_for_update().get(pk=inbound.request_id)
        kind = "request.reply_received"
    else:
        subject = Batch.objects.select_for_update().get(pk=inbound.batch_id)
        kind = "batch.reply_received"
    record_event(
        subject=subject,
        kind=kind,
        actor=actor,
        payload={
            "inbound_id": inbound.pk,
            "from": inbound.from_address,
            "subject": inbound.subject,
            "excerpt": excerpt,
        },
    )


def _match_community(match: Match) -> int | None:
    if match.request_id:
        rows = DataRightsRequest.objects.filter(pk=match.request_id)
        return rows.values_list("member__community_id", flat=True).first()
    return Batch.objects.filter(pk=match.batch_id).values_list("campaign__community_id", flat=True).first()


def inbound_receive(
    *,
    mailbox: str,
    uid_validity: int,
    uid: int,
    raw: bytes,
    received_at: datetime,
    communities: Collection[int] | None = None,
) -> str:
    """Store one message read from `mailbox` and record it: returns "matched", "unmatched", or "duplicate"
    when this (mailbox, UIDVALIDITY, UID) was already stored (by us earlier, or by a poller racing us).
    With `communities`, it is recorded only on a request or batch of one of them; otherwise it is kept
    unmatched, so that staff of one community cannot add to another's history."""
    message = cast(EmailMessage, email.message_from_bytes(raw, policy=default_policy))
    match = message_match(message)
    if match and communities is not None and _match_community(match) not in communities:
        match = None
    raw_field = cast(models.FileField, InboundMessage._meta.get_field("raw"))
    stored_name = crypto.save_encrypted(
        raw_field.generate_filename(None, "message.eml"),  # type: ignore[arg-type]  # upload_to is a path, not a callable
        raw,
        storage=raw_field.storage,
    )
    inbound = InboundMessage(
        mailbox=mailbox,
        uid_validity=uid_validity,
        uid=uid,
        message_id=_header(message, "Message-ID")[:998],
        in_reply_to=_header(message, "In-Reply-To")[:998],
        from_address=_header(message, "From")[:320],
        to_addresses=_recipients(message),
        subject=_header(message, "Subject")[:998],
        sent_at=_sent_at(message),
        received_at=received_at,
        raw=stored_name,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        status=Status.MATCHED if match else Status.UNMATCHED,
        matched_by=match.by if match else "",
        batch_id=match.batch_id if match else None,
        request_id=match.request_id if match else None,
    )
    try:
        with transaction.atomic():
            inbound.save()
            if match:
                _record_reply(inbound, actor=MAILBOX_ACTOR, excerpt=reply_excerpt(plain_text(message)))
    except IntegrityError:
        raw_field.storage.delete(stored_name)
        if InboundMessage.objects.filter(mailbox=mailbox, uid_validity=uid_validity, uid=uid).exists():
            return "duplicate"
        raise
    except BaseException:
        raw_field.storage.delete(stored_name)
        raise
    return inbound.status


def looks_like_email(raw: bytes) -> bool:
    """Whether `raw` parses as an email with the headers every real message has."""
    message = email.message_from_bytes(raw, policy=default_policy)
    return bool(message.get("From")) and bool(message.get("Date") or message.get("Subject"))


UPLOADED = "uploaded .eml files"


def inbound_upload(*, raw: bytes, communities: Collection[int] | None = None) -> str:
    """A coordinator adds a reply saved as an .eml file: stored and matched as the poller would, but only
    to a request or batch of `communities` (theirs; None for a superuser). Its UID is taken from the
    file's SHA-256, so adding the same file twice is a duplicate. Returns as `inbound_receive`."""
    uid = int(hashlib.sha256(raw).hexdigest()[:15], 16)  # 60 bits: fits the BigInteger column
    return inbound_receive(
        mailbox=UPLOADED,
        uid_validity=0,
        uid=uid,
        raw=raw,
        received_at=timezone.now(),
        communities=communities,
    )


# -- the coordinators' inbox -----------------------------------------------------------------------------


def inbound_attach(*, inbound_id: int, reference: str, actor: Actor) -> InboundMessage:
    """A coordinator attaches an unmatched message to the request or batch with `reference`: the reply is
    recorded in its history and the message leaves the inbox."""
    reference = reference.strip()
    if not reference:
        raise RequestEngineError("Give the reference of the request or batch this message belongs to.")
    forms = list(dict.fromkeys([reference, reference.upper()]))
    with transaction.atomic():
        try:
            inbound = InboundMessage.objects.select_for_update().get(pk=inbound_id)
        except InboundMessage.DoesNotExist:
            raise RequestEngineError(f"There is no inbound message with id {inbound_id}.") from None
        if inbound.status != Status.UNMATCHED:
            where = inbound.request or inbound.batch
            raise RequestEngineError(
                f"This message is already {inbound.get_status_display().lower()}"
                + (f" ({where})." if where else ".")
            )
        request = DataRightsRequest.objects.filter(reference__in=forms).only("pk", "batch_id").first()
        if request:
            inbound.request_id, inbound.batch_id = request.pk, request.batch_id
        else:
            batch_id = Batch.objects.filter(reference__in=forms).values_list("pk", flat=True).first()
            if not batch_id:
                raise RequestEngineError(f"No request or batch has the reference {reference!r}.")
            inbound.batch_id = batch_id
        inbound.status = Status.HANDLED
        inbound.matched_by = "coordinator"
        inbound.save(update_fields=["status", "matched_by", "batch", "request"])
        _record_reply(inbound, actor=actor, excerpt=reply_excerpt(plain_text(parsed_message(inbound))))
    return inbound


def inbound_dismiss(*, inbound_id: int, actor: Actor) -> InboundMessage:
    """A coordinator clears a message that belongs to no request (spam, an out-of-office) from the inbox."""
    with transaction.atomic():
        try:
            inbound = InboundMessage.objects.select_for_update().get(pk=inbound_id)
        except InboundMessage.DoesNotExist:
            raise RequestEngineError(f"There is no inbound message with id {inbound_id}.") from None
        if inbound.status != Status.UNMATCHED:
            raise RequestEngineError(f"This message is already {inbound.get_status_display().lower()}.")
        inbound.status = Status.HANDLED
        inbound.save(update_fields=["status"])
    logger.info("Inbound message %s dismissed by %s %s", inbound_id, actor.kind, actor.id)
    return inbound
