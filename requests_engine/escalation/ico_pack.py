"""The ICO complaint pack: what a coordinator submits to the ICO when a controller complaint got nowhere.

`ico_pack_build` turns a sent s.164A complaint into a complaint of kind "ico" covering the requests of the
members who authorised the community to represent them before the ICO (Art 80(1) UK GDPR, s.187 DPA 2018)
and whose requests are still unresolved; everyone else is left out and reported with the reason. The pack
is one ZIP stored on the ICO complaint (`evidence_pack`, with its SHA-256):

* `ico-complaint-<ref>.pdf`, sealed, following the sections of the ICO's online complaint form: the
  community as representative, the organisation and its contact, what happened (at most 2,000 characters,
  the form's limit), a dated timeline generated from the events, the harm, what we ask the ICO to do, the
  evidence enclosed, and an annex of the members represented;
* `mandates/`: each represented member's sealed mandate (the "signed letter of consent" the ICO asks for);
* `messages/sent/`, `messages/failed/` and `messages/received/`: the emails we sent the controller about
  these requests and the complaint (outbox rows; notices to members and reminders to ourselves are not
  correspondence with it), those that could not be delivered, and every reply matched to them (the raw
  message as received); `messages.csv` lists them with hashes, including attachments withheld because they
  name members who are not part of this complaint;
* `requests.csv`, `refusals/`, `controller-complaint/`: each request's dates and flags, the refusal texts,
  the s.164A complaint's dates and acknowledgement and the path of its PDF as sent;
* `manifest.csv`: the SHA-256 of every other file in the ZIP.

A folder with nothing to hold is not in the ZIP; the PDF's list of evidence says what each folder holds,
or that it is absent and why, from what was put in it (`_contents`).

A coordinator then submits the pack through the ICO's web form (there is no API) and records the case
reference (`ico_case_record`), later the outcome (`ico_outcome_record`).

A community without its Art 80(1) record cannot complain for anyone (`self_complaint_kit_due`): instead
`self_complaint_kits_send` gives each member with unresolved requests the same evidence as a kit, addressed
for them to send to the ICO themselves, offered on their request page.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from communities.documents import mandate_pdf_issue
from communities.models import Community, Mandate, Member
from communities.notices import notify_member
from core import crypto
from core.audit import Actor
from core.models import OutboundMessage
from core.pdf import render_pdf, seal_pdf, sha256_hex
from requests_engine import services
from requests_engine.dispatch.batches import LETTER_PURPOSE, REQUEST_PURPOSE
from requests_engine.escalation import complaints, selectors
from requests_engine.escalation.complaints import CoveredRequest
from requests_engine.escalation.selectors import CLOSED, PACK_BUILT, ico_complaint_for, linked_ico_complaint
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.letters import letterhead, long_date
from requests_engine.models import (
    Complaint,
    ControllerContact,
    DataRightsRequest,
    InboundMessage,
    RequestEvent,
    RequestState,
)
from requests_engine.responses.inbound import parsed_message, plain_text

S = RequestState
TEMPLATES = "requests_engine/complaints"
WHAT_HAPPENED_MAX = 2000  # the ICO form's limit for "what happened"
FREE_TEXT_MAX = 5000
LIST_REFERENCES_UP_TO = 5  # a timeline line names at most this many requests; more are "see the annex"


@dataclass(frozen=True)
class Represented:
    member: Member
    mandate: Mandate
    requests: list[CoveredRequest]


@dataclass(frozen=True)
class LeftOut:
    member_name: str
    member_reference: str
    request_references: list[str]
    reason: str

    def __str__(self) -> str:
        return f"{self.member_name} ({self.member_reference}): {self.reason}"


@dataclass
class IcoPack:
    complaint: Complaint  # the complaint of kind "ico"
    represented: list[Represented]
    left_out: list[LeftOut]
    pdf_sha256: str
    pack_sha256: str
    files: list[tuple[str, str]] = field(default_factory=list)  # (path in the ZIP, SHA-256)


def _today() -> datetime.date:
    return timezone.localdate()


def self_complaint_kit_due(community: Community) -> bool:
    """THE rule for the ICO step: a community complains to the ICO for its members only with its Art 80(1)
    record (Art 80(1) UK GDPR, DPA 2018 s.187). Without it, each member may still complain to the ICO
    themselves (Art 77 UK GDPR, DPA 2018 s.165), so they get the same evidence as a kit to send."""
    return not community.art80_eligible


# -- who is in the pack -----------------------------------------------------------------------------------


def _split(
    controller_complaint: Complaint, *, today: datetime.date, needs_authority: bool = True
) -> tuple[list[Represented], list[LeftOut]]:
    """Who the pack is for. A self-complaint kit needs no authority to represent (`needs_authority` False):
    the member sends it themselves."""
    covered = complaints.covered_requests(controller_complaint, today=today)
    by_member: dict[int, list[CoveredRequest]] = defaultdict(list)
    for item in covered:
        by_member[item.request.member_id].append(item)
    mandates = complaints.current_mandates(by_member, today=today)
    represented, left_out = [], []
    for items in by_member.values():
        member = items[0].request.member
        mandate = mandates.get(member.pk)
        open_items = [i for i in items if i.reasons and i.request.state not in (S.CLOSED, S.WITHDRAWN)]
        refs = [i.request.reference for i in items]
        if mandate is None:
            reason = "no mandate in force today (revoked or expired)"
        elif needs_authority and not mandate.may_represent_before_ico:
            reason = "the mandate does not authorise representation before the ICO (Article 80(1) UK GDPR)"
        elif not open_items:
            reason = (
                "nothing left to complain about: the controller has since answered or the request is closed"
            )
        else:
            represented.append(Represented(member, mandate, open_items))
            continue
        left_out.append(LeftOut(member.full_name, member.reference, refs, reason))
    represented.sort(key=lambda r: r.member.reference)
    left_out.sort(key=lambda r: r.member_reference)
    return represented, left_out


def _controller_complaint_of(complaint: Complaint) -> Complaint:
    if complaint.kind == Complaint.Kind.CONTROLLER:
        return complaint
    event = complaint.events.filter(kind=PACK_BUILT).order_by("-seq").first()
    if event is None:
        raise RequestEngineError(f"{complaint} was not built from a complaint to the controller.")
    return Complaint.objects.select_related("controller", "community").get(pk=event.payload["from_complaint"])


# -- the timeline -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    day: datetime.date
    text: str
    order: int = 0

    def sentence(self) -> str:
        return f"On {long_date(self.day)} {self.text}"


def _subject(references: list[str]) -> str:
    if len(references) == 1:
        return f"the request {references[0]}"
    if len(references) <= LIST_REFERENCES_UP_TO:
        return f"{len(references)} requests ({', '.join(references)})"
    return f"{len(references)} requests (listed in the annex)"


def _day(value: Any, fallback: datetime.datetime) -> datetime.date:
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value[:10])
        except ValueError:
            pass
    return timezone.localdate(fallback)


# What each request event says in the timeline, and the payload field holding its real date.
_REQUEST_PHRASES: dict[str, tuple[str, str, int]] = {
    "request.dispatched": ("{controller} received {subject}.", "received_on", 10),
    "request.acknowledged": ("{controller} acknowledged {subject}.", "", 20),
    "request.info_requested": ("{controller} asked for more information about {subject}.", "asked_on", 30),
    "request.info_received": (
        "the information {controller} asked for about {subject} was given.",
        "received_on",
        40,
    ),
    "request.extended": ("{controller} extended the time limit for {subject}.", "noticed_on", 50),
    "request.reply_received": ("{controller} replied about {subject}.", "", 60),
    "request.fulfilled": ("{controller} said it had fulfilled {subject}.", "answered_on", 70),
    "request.partially_fulfilled": ("{controller} answered {subject} only in part.", "answered_on", 70),
    "request.refused": ("{controller} refused {subject}.", "answered_on", 70),
    "request.portability_format_flagged": (
        "the data {controller} returned for {subject} turned out not to be machine-readable.",
        "",
        75,
    ),
    "request.overdue": (
        "the time limit for {subject} ended without an answer from {controller}.",
        "due_on",
        80,
    ),
}


def timeline(controller_complaint: Complaint, requests: list[DataRightsRequest]) -> list[TimelineEntry]:
    """The dated history of these requests and of the complaint to the controller, oldest first; events of
    the same kind on the same day are one line."""
    controller = controller_complaint.controller.name
    references = {r.pk: r.reference for r in requests}
    grouped: dict[tuple[datetime.date, str], list[str]] = defaultdict(list)
    events = RequestEvent.objects.filter(request_id__in=list(references), kind__in=list(_REQUEST_PHRASES))
    for event in events.order_by("created_at", "pk"):
        _phrase, date_field, _order = _REQUEST_PHRASES[event.kind]
        day = _day(event.payload.get(date_field) if date_field else None, event.created_at)
        refs = grouped[(day, event.kind)]
        reference = references[event.request_id or 0]  # the filter above admits request events only
        if reference not in refs:
            refs.append(reference)
    entries = []
    for (day, kind), refs in grouped.items():
        phrase, _date_field, order = _REQUEST_PHRASES[kind]
        entries.append(
            TimelineEntry(day, phrase.format(controller=controller, subject=_subject(sorted(refs))), order)
        )

    complaint = controller_complaint
    if complaint.sent_on:
        entries.append(
            TimelineEntry(
                complaint.sent_on,
                f"we complained to {controller} under section 164A of the Data Protection Act 2018 (complaint "
                f"{complaint.reference}, about {complaint.requests.count()} requests); it had to acknowledge the "
                f"complaint by {long_date(complaint.acknowledgement_due_on)}.",
                90,
            )
        )
    if complaint.acknowledged_on:
        entries.append(
            TimelineEntry(complaint.acknowledged_on, f"{controller} acknowledged the complaint.", 100)
        )
    elif complaint.acknowledgement_due_on and complaint.acknowledgement_due_on < _today():
        entries.append(
            TimelineEntry(
                complaint.acknowledgement_due_on,
                f"the time for {controller} to acknowledge the complaint ended, and it had not acknowledged it.",
                100,
            )
        )
    closed = complaint.events.filter(kind=CLOSED).order_by("-seq").first()
    if closed:
        outcome = closed.payload.get("outcome", "")
        outcome = outcome if len(outcome) <= 300 else outcome[:299].rstrip() + "…"
        entries.append(
            TimelineEntry(
                _day(closed.payload.get("on"), closed.created_at),
                f"{controller} told us the outcome of the complaint: “{outcome}”.",
                110,
            )
        )
    entries.sort(key=lambda e: (e.day, e.order))
    return entries


# -- what happened ----------------------------------------------------------------------------------------


def _truncate(text: str, limit: int) -> str:
    text = re.sub(r"[ \t]+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def what_happened_draft(*, complaint_id: int) -> str:
    """The generated "what happened" text (at most 2,000 characters), for the coordinator to edit."""
    complaint = _controller_complaint_of(
        Complaint.objects.select_related("controller", "community").get(pk=complaint_id)
    )
    if self_complaint_kit_due(complaint.community):
        raise RequestEngineError(
            "Each member's kit says what happened in their own words, drafted from their own requests."
        )
    represented, _left_out = _split(complaint, today=_today())
    return _what_happened(complaint, represented)


def _what_happened(complaint: Complaint, represented: list[Represented]) -> str:
    items = [item for r in represented for item in r.requests]
    received = sorted(i.request.received_on for i in items if i.request.received_on)
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        for reason in item.reasons:
            counts[reason] += 1
    campaigns = sorted({i.request.campaign.name for i in items if i.request.campaign is not None})
    text = render_to_string(
        f"{TEMPLATES}/ico_what_happened.txt",
        {
            "complaint": complaint,
            "community": complaint.community,
            "controller": complaint.controller,
            "member_count": len(represented),
            "request_count": len(items),
            "rights": sorted({i.request.get_right_display() for i in items}),
            "campaigns": campaigns,
            "first_received": received[0] if received else None,
            "last_received": received[-1] if received else None,
            "counts": [(complaints.REASON_LABELS[code], n) for code, n in counts.items()],
            "today": _today(),
        },
    )
    return _truncate(" ".join(text.split()), WHAT_HAPPENED_MAX)


# -- the evidence -----------------------------------------------------------------------------------------


class _Zip:
    """Files for the pack, each with its hash for the manifest."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes, str]] = []  # (path, content, description)

    def add(self, path: str, content: bytes | str, description: str) -> str:
        data = content.encode("utf-8") if isinstance(content, str) else content
        self.files.append((path, data, description))
        return sha256_hex(data)

    def manifest(self) -> list[tuple[str, str, int, str]]:
        return [(path, sha256_hex(data), len(data), desc) for path, data, desc in self.files]

    def build(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["path", "sha256", "bytes", "description"])
        writer.writerows(self.manifest())
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, data, _desc in self.files:
                archive.writestr(path, data)
            archive.writestr("manifest.csv", out.getvalue().encode("utf-8"))
        return buffer.getvalue()


def _csv(rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "file"


def _filtered_manifest(data: bytes, references: set[str]) -> bytes | None:
    """The rows of a collective letter's member manifest that belong to the represented requests."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    except UnicodeDecodeError:
        return None
    if not rows or "reference" not in rows[0]:
        return None
    column = rows[0].index("reference")
    kept = [rows[0]] + [row for row in rows[1:] if len(row) > column and row[column] in references]
    return _csv(kept).encode("utf-8")


def _message_text(message: OutboundMessage) -> str:
    when = message.sent_at or message.queued_at
    lines = [
        f"Message-ID: {message.message_id}",
        f"Date: {timezone.localtime(when):%d %B %Y %H:%M %Z}",
        f"From: {message.from_email}",
        f"To: {', '.join(message.to)}",
    ]
    if message.reply_to:
        lines.append(f"Reply-To: {', '.join(message.reply_to)}")
    lines += [f"Subject: {message.subject}", f"Status: {message.get_status_display()}"]
    if message.status == OutboundMessage.Status.FAILED and message.last_error:
        lines.append(f"Error: {message.last_error}")
    lines += ["", message.body_text]
    return "\n".join(lines)


@dataclass
class _Sent:
    """What `_sent_messages` put in the pack, for the sentences that describe it."""

    sent: int = 0
    failed: int = 0
    withheld: int = 0
    letters_in: set[int] = field(default_factory=set)  # requests whose request letter is among the emails
    complaint_path: str = ""  # the s.164A complaint's PDF as sent, if its email went
    annex_path: str = ""  # its annex, when it names nobody outside the pack


def _sent_messages(
    pack: _Zip,
    *,
    controller_complaint: Complaint,
    requests: list[DataRightsRequest],
    listing: list[list[str]],
) -> _Sent:
    request_ids = {str(r.pk) for r in requests}
    batch_ids = {str(r.batch_id) for r in requests if r.batch_id}
    references = {r.reference for r in requests}
    members = {r.member_id for r in requests}
    # Our own side: a notice to a member or a reminder to the coordinators is not correspondence with the
    # controller, and the ICO would read it as a message the controller received.
    ours = {r.member.user.email.lower() for r in requests} | {
        controller_complaint.community.contact_email.lower()
    }
    rows = (
        OutboundMessage.objects.filter(
            Q(subject_type="request", subject_id__in=request_ids)
            | Q(subject_type="batch", subject_id__in=batch_ids)
            | Q(subject_type="complaint", subject_id=str(controller_complaint.pk))
        )
        .filter(status__in=[OutboundMessage.Status.SENT, OutboundMessage.Status.FAILED])
        .prefetch_related("attachments")
        .order_by("queued_at", "pk")
    )
    # Who a collective message names: whoever is in its batch or complaint.
    named: dict[tuple[str, str], set[int]] = {
        ("complaint", str(controller_complaint.pk)): set(
            controller_complaint.requests.values_list("member_id", flat=True)
        )
    }
    for batch_id, member_id in DataRightsRequest.objects.filter(batch_id__in=batch_ids).values_list(
        "batch_id", "member_id"
    ):
        named.setdefault(("batch", str(batch_id)), set()).add(member_id)
    report = _Sent()
    numbers = {"sent": 0, "failed": 0}
    for message in rows:
        if {address.lower() for address in message.to} <= ours:
            continue
        delivered = message.status == OutboundMessage.Status.SENT
        kind = "sent" if delivered else "failed"  # a failed email never reached anyone: not "sent"
        numbers[kind] += 1
        when = message.sent_at or message.queued_at
        day = timezone.localdate(when)
        folder = f"messages/{kind}/{numbers[kind]:03d}-{day:%Y-%m-%d}-{_safe(message.purpose)}"
        digest = pack.add(
            f"{folder}/message.txt",
            _message_text(message),
            f"Message we sent: {message.subject}"
            if delivered
            else f"Message we tried to send, which failed: {message.subject}",
        )
        listing.append(
            [
                kind,
                f"{timezone.localtime(when):%Y-%m-%d %H:%M}",
                message.from_email,
                ", ".join(message.to),
                message.subject,
                message.message_id,
                message.get_status_display(),
                f"{folder}/message.txt",
                digest,
                "",
            ]
        )
        if delivered:
            report.sent += 1
            if message.subject_type == "request" and message.purpose == REQUEST_PURPOSE:
                report.letters_in.add(int(message.subject_id))
            elif message.subject_type == "batch" and message.purpose == LETTER_PURPOSE:
                report.letters_in |= {r.pk for r in requests if str(r.batch_id) == message.subject_id}
        else:
            report.failed += 1
        others = named.get((message.subject_type, message.subject_id), set()) - members
        for attachment in message.attachments.all():
            content = b""
            if attachment.file:
                with attachment.file.open("rb") as stored:
                    content = stored.read()
            note = ""
            if not attachment.file:
                note = "deleted under the retention policy (its hash and size are as sent)"
            elif others and attachment.filename.lower().endswith(".csv"):
                extract = _filtered_manifest(content, references)
                if extract is not None:
                    path = f"{folder}/extract-of-{_safe(attachment.filename)}"
                    pack.add(path, extract, f"The rows of {attachment.filename} for the members represented")
                    note = f"withheld (lists other members); extract in {path}"
                else:
                    note = "withheld: it lists members who are not part of this complaint"
            elif others and not attachment.filename.lower().endswith(".pdf"):
                note = "withheld: it holds the documents of members who are not part of this complaint"
            elif others and attachment.filename.endswith("-annex.pdf"):
                note = "withheld: it names members who are not part of this complaint (see the pack's annex)"
            else:
                path = f"{folder}/{_safe(attachment.filename)}"
                pack.add(path, content, f"Attachment to the message: {attachment.filename}")
                note = path
                if delivered and message.purpose == complaints.COMPLAINT_PURPOSE:
                    if attachment.filename.endswith("-annex.pdf"):
                        report.annex_path = path
                    elif attachment.filename.endswith(".pdf"):
                        report.complaint_path = path
            if note.startswith("withheld"):
                report.withheld += 1
            listing.append(
                [
                    f"{kind} attachment",
                    "",
                    "",
                    "",
                    attachment.filename,
                    message.message_id,
                    "",
                    note,
                    attachment.sha256,
                    str(attachment.size),
                ]
            )
    return report


def _received_messages(
    pack: _Zip, *, requests: list[DataRightsRequest], listing: list[list[str]]
) -> tuple[int, int]:
    """The replies matched to these requests; returns how many are in the pack and how many could not be
    read (listed only)."""
    request_ids = [r.pk for r in requests]
    batch_ids = {r.batch_id for r in requests if r.batch_id}
    rows = InboundMessage.objects.filter(
        Q(request_id__in=request_ids) | Q(batch_id__in=batch_ids, request__isnull=True)
    )
    number = unreadable = 0
    for inbound in rows.order_by("received_at", "pk"):
        try:
            raw = crypto.read_encrypted(str(inbound.raw.name), storage=inbound.raw.storage)
        except (crypto.CryptoError, OSError) as exc:
            unreadable += 1
            listing.append(
                [
                    "received",
                    f"{timezone.localtime(inbound.received_at):%Y-%m-%d %H:%M}",
                    inbound.from_address,
                    ", ".join(inbound.to_addresses),
                    inbound.subject,
                    inbound.message_id,
                    "unreadable",
                    f"could not be read: {exc}",
                    inbound.raw_sha256,
                    "",
                ]
            )
            continue
        number += 1
        folder = f"messages/received/{number:03d}-{timezone.localdate(inbound.received_at):%Y-%m-%d}"
        pack.add(f"{folder}/message.eml", raw, f"Reply received: {inbound.subject} (exactly as received)")
        try:
            text = plain_text(parsed_message(inbound))
        except Exception:  # noqa: BLE001 - the .eml is the evidence; the text copy is a convenience
            text = ""
        if text:
            pack.add(f"{folder}/message.txt", text, "The text of the reply, for reading")
        listing.append(
            [
                "received",
                f"{timezone.localtime(inbound.received_at):%Y-%m-%d %H:%M}",
                inbound.from_address,
                ", ".join(inbound.to_addresses),
                inbound.subject,
                inbound.message_id,
                inbound.get_status_display(),
                f"{folder}/message.eml",
                inbound.raw_sha256,
                str(len(raw)),
            ]
        )
    return number, unreadable


def _request_files(pack: _Zip, represented: list[Represented]) -> None:
    rows: list[list[Any]] = [
        [
            "reference",
            "member_reference",
            "right",
            "state",
            "received_on",
            "clock_start_on",
            "due_on",
            "latest_possible_due_on",
            "extended_on",
            "extension_months",
            "paused_days",
            "answered_on",
            "refusal_ground",
            "what_went_wrong",
        ]
    ]
    for person in represented:
        for item in person.requests:
            r = item.request
            latest = complaints.latest_deadline(r)
            rows.append(
                [
                    r.reference,
                    person.member.reference,
                    r.right,
                    r.state,
                    r.received_on or "",
                    r.clock_start_on or "",
                    r.due_on or "",
                    latest or "",
                    r.extended_on or "",
                    r.extension_months,
                    r.paused_days,
                    r.answered_on or "",
                    r.refusal_ground,
                    " ".join(item.sentences),
                ]
            )
            if r.refusal_ground or r.refusal_reasons:
                pack.add(
                    f"refusals/{_safe(r.reference)}.txt",
                    f"Request {r.reference}\nAnswered on: {r.answered_on or '-'}\n"
                    f"Legal ground given: {r.get_refusal_ground_display() or '-'}\n\n"
                    f"Reasons given by the controller:\n{r.refusal_reasons or '(none)'}\n",
                    f"The controller's refusal of {r.reference}",
                )
    pack.add("requests.csv", _csv(rows), "Each request: dates, deadlines and what went wrong")


def _controller_complaint_summary(complaint: Complaint, sent: _Sent) -> str:
    letter_name, annex_name = complaints.complaint_file_names(complaint)
    closed = complaint.events.filter(kind=CLOSED).order_by("-seq").first()
    resolved = ("yes" if closed.payload.get("resolved") else "no") if closed else "-"
    lines = [
        f"Complaint to the controller under section 164A Data Protection Act 2018: {complaint.reference}",
        f"Controller: {complaint.controller.name} <{complaint.controller.email}>",
        f"Sent on: {complaint.sent_on or '-'}",
        f"Acknowledgement due by: {complaint.acknowledgement_due_on or '-'} (s.164A(3): 30 days)",
        f"Acknowledged on: {complaint.acknowledged_on or 'not acknowledged'}",
        f"Outcome: {complaint.outcome or 'none given'}",
        f"Outcome resolved the requests: {resolved}",
        f"SHA-256 of {letter_name} as sent: {complaint.evidence_pack_sha256 or '-'}",
    ]
    if sent.complaint_path:
        lines.append(f"The complaint as sent: {sent.complaint_path}")
    else:
        lines.append("No delivered email of the complaint is in this pack (see messages.csv).")
    if sent.annex_path:
        lines.append(f"Its annex as sent: {sent.annex_path}")
    elif sent.complaint_path:
        lines += [
            f"Its annex ({annex_name}) is withheld because it names members who are not part of this",
            "complaint to the ICO; the annex of the ICO complaint lists the members it covers.",
        ]
    return "\n".join(lines) + "\n"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _the(count: int, one: str, many: str) -> str:
    return f"the one {one}" if count == 1 else f"the {count} {many}"


def _contents(
    pack: _Zip,
    *,
    source: Complaint,
    requests: list[DataRightsRequest],
    sent: _Sent,
    received: int,
    unreadable: int,
) -> list[str]:
    """What the pack's folders hold, said from what was put in them: a folder with nothing in it is not in
    the ZIP, and the sentence says so and why."""
    sender, controller = source.community.name, source.controller.name
    paths = [path for path, _data, _desc in pack.files]
    notes = []
    if sent.sent:
        notes.append(
            f"messages/sent/ holds {_the(sent.sent, 'email', 'emails')} {sender} sent to {controller} "
            "about these requests, each in its own folder with its attachments as sent"
            + (
                f" except {_plural(sent.withheld, 'attachment', 'attachments')} withheld because "
                f"{'it names' if sent.withheld == 1 else 'they name'} members who are not part of this "
                "complaint; messages.csv lists every attachment and why any is withheld."
                if sent.withheld
                else "."
            )
        )
    else:
        notes.append(
            f"There is no messages/sent/ folder: no email {sender} sent to {controller} was delivered."
        )
    if sent.failed:
        notes.append(
            f"messages/failed/ holds {_the(sent.failed, 'email', 'emails')} {sender} tried to send to "
            f"{controller} that could not be delivered, with the error given."
        )
    elsewhere = sorted(r.reference for r in requests if r.pk not in sent.letters_in)
    if elsewhere:
        notes.append(
            f"No email carrying the request itself is in the pack for {_subject(elsewhere)}, which reached "
            f"{controller} another way (by post, through its web form or by the Data Rights Protocol); "
            f"requests.csv and timeline.txt give the date {controller} received each."
        )
    if received:
        notes.append(
            f"messages/received/ holds {_the(received, 'reply', 'replies')} matched to these requests, "
            "each exactly as received (message.eml), with a text copy for reading where one could be made."
        )
    else:
        notes.append(
            f"There is no messages/received/ folder: no reply from {controller} matched to these requests "
            "could be read."
            if unreadable
            else f"There is no messages/received/ folder: no reply from {controller} was matched to these "
            "requests."
        )
    if unreadable:
        notes.append(
            f"{_plural(unreadable, 'reply', 'replies')} could not be read: messages.csv lists "
            f"{'it' if unreadable == 1 else 'them'} with the SHA-256 recorded on arrival."
        )
    refusals = sum(1 for path in paths if path.startswith("refusals/"))
    if refusals:
        notes.append(
            f"refusals/ holds the reasons {controller} gave for refusing "
            f"{_plural(refusals, 'request', 'requests')}, in whole or in part."
        )
    else:
        notes.append(
            f"There is no refusals/ folder: {controller} gave no ground or reasons for refusing any of "
            "these requests."
        )
    return notes


# -- building ---------------------------------------------------------------------------------------------


def _evidence(
    source: Complaint, represented: list[Represented], *, mandate_note: str
) -> tuple[_Zip, list[DataRightsRequest], list[TimelineEntry], list[str]]:
    """The evidence of a pack (everything but its covering PDF): the mandates, the requests, the messages
    exchanged with the controller about them, the s.164A complaint and the timeline; and the sentences
    saying what its folders hold."""
    # Mandates are rendered at signing; render any missing first (slow, and outside any lock).
    for person in represented:
        if not person.mandate.pdf:
            mandate_pdf_issue(mandate_id=person.mandate.pk)
    mandates = {m.pk: m for m in Mandate.objects.filter(pk__in=[p.mandate.pk for p in represented])}
    requests = [item.request for person in represented for item in person.requests]
    pack = _Zip()
    listing: list[list[str]] = []
    for person in represented:
        mandate = mandates[person.mandate.pk]
        with mandate.pdf.open("rb") as stored:
            pdf = stored.read()
        pack.add(
            f"mandates/{person.member.reference}-mandate-{mandate.reference}.pdf",
            pdf,
            f"Signed mandate of {person.member.full_name}, {mandate_note}",
        )
    _request_files(pack, represented)
    sent = _sent_messages(pack, controller_complaint=source, requests=requests, listing=listing)
    received, unreadable = _received_messages(pack, requests=requests, listing=listing)
    header = ["direction", "date", "from", "to", "subject", "message_id", "status", "file", "sha256", "bytes"]
    pack.add(
        "messages.csv",
        _csv([header, *listing]),
        "Every email sent to the controller about these requests and every reply matched to them, with "
        "dates and hashes, and every attachment with where it is or why it is withheld",
    )
    pack.add(
        "controller-complaint/summary.txt",
        _controller_complaint_summary(source, sent),
        "The s.164A complaint: dates, acknowledgement, outcome and where the complaint as sent is",
    )
    entries = timeline(source, requests)
    pack.add("timeline.txt", "\n".join(entry.sentence() for entry in entries) + "\n", "The dated timeline")
    contents = _contents(
        pack, source=source, requests=requests, sent=sent, received=received, unreadable=unreadable
    )
    return pack, requests, entries, contents


def _check_text(value: str, *, name: str, limit: int) -> str:
    value = (value or "").replace("\r\n", "\n").strip()
    if not value:
        raise RequestEngineError(f"Describe {name}.")
    if len(value) > limit:
        raise RequestEngineError(f"{name[0].upper()}{name[1:]} is too long: at most {limit} characters.")
    return value


def ico_pack_build(
    *, complaint_id: int, harm: str, ask: str, actor: Actor, what_happened: str | None = None
) -> IcoPack:
    """Build (or rebuild, until it is submitted) the ICO complaint pack for a sent controller complaint.
    `complaint_id` may be the controller complaint or the ICO complaint built from it."""
    harm = _check_text(harm, name="the harm the members suffered", limit=FREE_TEXT_MAX)
    ask = _check_text(ask, name="what the community asks the ICO to do", limit=FREE_TEXT_MAX)
    today = _today()
    start = Complaint.objects.select_related("controller", "community").filter(pk=complaint_id).first()
    if start is None:
        raise RequestEngineError(f"There is no complaint with id {complaint_id}.")
    source = _controller_complaint_of(start)
    if source.sent_on is None:
        raise RequestEngineError(
            f"Complaint {source.reference} has not been sent: the controller must have the chance to answer "
            "a complaint before the ICO is asked (s.165 DPA 2018)."
        )
    if self_complaint_kit_due(source.community):
        raise RequestEngineError(
            f"{source.community.name} has no Article 80(1) record, so it cannot complain to the ICO for its "
            "members: send each member their self-complaint kit instead."
        )
    if not selectors.ico_pack_reason(source, today=today):
        # s.165 DPA 2018: the controller first has its chance to deal with the s.164A complaint.
        raise RequestEngineError(
            selectors.ico_pack_not_yet(source, today=today)
            or f"Complaint {source.reference} was resolved by the controller: there is nothing to take to the ICO."
        )
    existing = linked_ico_complaint(source)
    if existing is not None and existing.state != Complaint.State.DRAFT:
        raise RequestEngineError(
            f"The ICO complaint {existing.reference} was already submitted (case "
            f"{existing.ico_case_reference}): its pack is evidence now and is not rebuilt."
        )
    represented, left_out = _split(source, today=today)
    if not represented:
        reasons = "; ".join(str(item) for item in left_out) or "the complaint covers no request"
        raise RequestEngineError(
            f"No member of complaint {source.reference} can be represented before the ICO: {reasons}."
        )
    if what_happened is not None:
        what_happened = _check_text(what_happened, name="what happened", limit=WHAT_HAPPENED_MAX)
    else:
        what_happened = _what_happened(source, represented)

    reference = existing.reference if existing else Complaint._meta.get_field("reference").get_default()
    pack, requests, entries, contents = _evidence(
        source, represented, mandate_note="sealed (Article 80(1) authority)"
    )

    context = {
        "reference": reference,
        "source": source,
        "community": source.community,
        "controller": source.controller,
        "contacts": ControllerContact.objects.filter(controller=source.controller, is_active=True),
        "represented": represented,
        "request_count": len(requests),
        "what_happened": what_happened,
        "timeline": entries,
        "harm": harm,
        "ask": ask,
        "evidence": pack.manifest(),
        "contents": contents,
        "today": today,
    }
    who = letterhead(source.community)["sender_name"]
    pdf = seal_pdf(
        render_pdf(render_to_string(f"{TEMPLATES}/ico_complaint.html", context)),
        reason=f"ICO complaint {reference} prepared by {who}",
    )
    pdf_name = f"ico-complaint-{reference}.pdf"
    pack.files.insert(0, (pdf_name, pdf, "The complaint to the ICO, following the sections of its form"))
    archive = pack.build()
    pack_sha = sha256_hex(archive)

    payload_left_out = [
        {"member": item.member_reference, "requests": item.request_references, "reason": item.reason}
        for item in left_out
    ]
    with transaction.atomic():
        source = (
            Complaint.objects.select_for_update().select_related("controller", "community").get(pk=source.pk)
        )
        current = linked_ico_complaint(source)
        if (current.pk if current else None) != (existing.pk if existing else None):
            raise RequestEngineError(
                "Another ICO pack was built for this complaint at the same time: reload."
            )
        if current is None:
            ico = Complaint.objects.create(
                kind=Complaint.Kind.ICO,
                community=source.community,
                controller=source.controller,
                reference=reference,
                grounds=what_happened,
            )
            old_file = ""
        else:
            ico = Complaint.objects.select_for_update().get(pk=current.pk)
            if ico.state != Complaint.State.DRAFT:
                raise RequestEngineError(f"The ICO complaint {ico.reference} was submitted meanwhile.")
            old_file = ico.evidence_pack.name
            ico.grounds = what_happened
        ico.evidence_pack.save(f"ico-pack-{reference}.zip", ContentFile(archive), save=False)
        ico.evidence_pack_sha256 = pack_sha
        ico.save()
        ico.requests.set([r.pk for r in requests])
        record_event(
            subject=ico,
            kind=PACK_BUILT,
            actor=actor,
            to_state=ico.state,
            payload={
                "from_complaint": source.pk,
                "from_reference": source.reference,
                "harm": harm,
                "ask": ask,
                "pack_sha256": pack_sha,
                "pdf_sha256": sha256_hex(pdf),
                "members": len(represented),
                "requests": len(requests),
                "left_out": payload_left_out,
            },
        )
        record_event(
            subject=source,
            kind=PACK_BUILT,
            actor=actor,
            payload={
                "ico_complaint": ico.pk,
                "ico_reference": ico.reference,
                "pack_sha256": pack_sha,
                "left_out": payload_left_out,
            },
        )
        if old_file and old_file != ico.evidence_pack.name:
            storage, name = ico.evidence_pack.storage, old_file
            transaction.on_commit(lambda: storage.delete(name))
    files = [(path, digest) for path, digest, _size, _desc in pack.manifest()]
    return IcoPack(ico, represented, left_out, sha256_hex(pdf), pack_sha, files)


def ico_pack_left_out(complaint: Complaint) -> list[dict[str, Any]]:
    """Who the latest pack left out and why (for the back office)."""
    event = complaint.events.filter(kind=PACK_BUILT).order_by("-seq").first()
    return list(event.payload.get("left_out", [])) if event else []


# -- the self-complaint kit ------------------------------------------------------------------------------

KIT_PREPARED = "request.self_complaint_kit_prepared"
# Kits are files no row points to (their events name them): rotate_keys walks the folder.
KITS_FOLDER = "complaint-kits"
crypto.register_encrypted_folder(KITS_FOLDER)
KITS_SENT = "complaint.self_complaint_kits_sent"
ICO_FORM_URL = (
    "https://ico.org.uk/make-a-complaint/data-protection-complaints/personal-information-complaint/"
)


@dataclass
class KitReport:
    source: Complaint  # the complaint to the controller the kits follow
    kits: list[tuple[Member, str]]  # (member, SHA-256 of their kit)
    left_out: list[LeftOut]


def _kit_what_happened(source: Complaint, person: Represented) -> str:
    items = person.requests
    received = sorted(i.request.received_on for i in items if i.request.received_on)
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        for reason in item.reasons:
            counts[reason] += 1
    text = render_to_string(
        f"{TEMPLATES}/ico_kit_what_happened.txt",
        {
            "complaint": source,
            "community": source.community,
            "controller": source.controller,
            "request_count": len(items),
            "rights": sorted({i.request.get_right_display() for i in items}),
            "first_received": received[0] if received else None,
            "last_received": received[-1] if received else None,
            "counts": [(complaints.REASON_LABELS[code], n) for code, n in counts.items()],
            "today": _today(),
        },
    )
    return _truncate(" ".join(text.split()), WHAT_HAPPENED_MAX)


def _kit(source: Complaint, person: Represented, *, harm: str, ask: str) -> bytes:
    """One member's kit: the evidence of their own requests, and a PDF following the ICO's form for them to
    copy from and send (a complaint they make themselves needs no letter of consent)."""
    pack, requests, entries, contents = _evidence(
        source, [person], mandate_note="as signed with the community"
    )
    context = {
        "source": source,
        "community": source.community,
        "controller": source.controller,
        "contacts": ControllerContact.objects.filter(controller=source.controller, is_active=True),
        "person": person,
        "request_count": len(requests),
        "what_happened": _kit_what_happened(source, person),
        "timeline": entries,
        "harm": harm,
        "ask": ask,
        "evidence": pack.manifest(),
        "contents": contents,
        "ico_form_url": ICO_FORM_URL,
        "today": _today(),
    }
    who = letterhead(source.community)["sender_name"]
    pdf = seal_pdf(
        render_pdf(render_to_string(f"{TEMPLATES}/ico_self_complaint.html", context)),
        reason=f"Complaint kit for {person.member.full_name} prepared by {who}",
    )
    pack.files.insert(
        0, ("your-ico-complaint.pdf", pdf, "Your complaint to the ICO, following the sections of its form")
    )
    return pack.build()


def self_complaint_kits_send(*, complaint_id: int, harm: str, ask: str, actor: Actor) -> KitReport:
    """Where the community cannot complain to the ICO for its members (`self_complaint_kit_due`), each member
    whose requests under a sent s.164A complaint are still unresolved gets the pack as a kit to send the ICO
    themselves: stored, offered on their request pages, and announced in a notice. Running it again
    replaces each member's kit with a fresh one."""
    harm = _check_text(harm, name="how this has affected the members", limit=FREE_TEXT_MAX)
    ask = _check_text(ask, name="what members may ask the ICO to do", limit=FREE_TEXT_MAX)
    start = Complaint.objects.select_related("controller", "community").filter(pk=complaint_id).first()
    if start is None:
        raise RequestEngineError(f"There is no complaint with id {complaint_id}.")
    source = _controller_complaint_of(start)
    if not self_complaint_kit_due(source.community):
        raise RequestEngineError(
            f"{source.community.name} has its Article 80(1) record: build the ICO pack for the members who "
            "authorised it instead."
        )
    if source.sent_on is None:
        raise RequestEngineError(
            f"Complaint {source.reference} has not been sent: the controller must have the chance to answer "
            "a complaint before the ICO is asked (s.165 DPA 2018)."
        )
    people, left_out = _split(source, today=_today(), needs_authority=False)
    if not people:
        reasons = "; ".join(str(item) for item in left_out) or "the complaint covers no request"
        raise RequestEngineError(f"No member of complaint {source.reference} needs a kit: {reasons}.")

    report = KitReport(source, [], left_out)
    for person in people:
        archive = _kit(source, person, harm=harm, ask=ask)
        digest = sha256_hex(archive)
        name = crypto.encrypted_storage.save(
            f"{KITS_FOLDER}/{person.member.reference}/ico-kit-{source.reference}.zip", ContentFile(archive)
        )
        try:
            with transaction.atomic():
                for item in person.requests:
                    request = DataRightsRequest.objects.select_for_update().get(pk=item.request.pk)
                    record_event(
                        subject=request,
                        kind=KIT_PREPARED,
                        actor=actor,
                        payload={"file": name, "sha256": digest, "complaint": source.reference},
                    )
                first = person.requests[0].request
                notify_member(
                    person.member,
                    f"Your complaint kit for the ICO about {source.controller.name}",
                    f"{source.controller.name} has not put right the requests we complained about. "
                    f"{source.community.name} cannot complain to the Information Commissioner's Office for "
                    "you, but you can complain yourself: we have prepared your complaint and its evidence "
                    "for you to send. Download the kit from your request page, then follow the steps in it.",
                    link=f"/me/requests/{first.reference}/",
                    purpose="member.self_complaint_kit",
                )
        except BaseException:
            crypto.encrypted_storage.delete(name)
            raise
        report.kits.append((person.member, digest))
    with transaction.atomic():
        source = Complaint.objects.select_for_update().get(pk=source.pk)
        record_event(
            subject=source,
            kind=KITS_SENT,
            actor=actor,
            payload={
                "kits": [{"member": member.reference, "sha256": digest} for member, digest in report.kits],
                "harm": harm,
                "ask": ask,
                "left_out": [
                    {"member": i.member_reference, "requests": i.request_references, "reason": i.reason}
                    for i in left_out
                ],
            },
        )
    return report


def self_complaint_kit_of(request: DataRightsRequest) -> dict[str, Any] | None:
    """The latest kit prepared for this request: {"file", "sha256", "complaint", "at"}, or None."""
    event = request.events.filter(kind=KIT_PREPARED).order_by("-seq").first()
    return {**event.payload, "at": event.created_at} if event else None


def self_complaint_kit_data(request: DataRightsRequest) -> bytes:
    """The request's latest kit, checked against the SHA-256 recorded when it was prepared."""
    kit = self_complaint_kit_of(request)
    if kit is None:
        raise RequestEngineError(f"No complaint kit was prepared for request {request.reference}.")
    with crypto.encrypted_storage.open(kit["file"], "rb") as stored:
        data = stored.read()
    if sha256_hex(data) != kit["sha256"]:
        raise RequestEngineError(f"The complaint kit of request {request.reference} does not match its hash.")
    return data


# -- after submission -------------------------------------------------------------------------------------


def _lock_ico(complaint_id: int) -> Complaint:
    complaint = Complaint.objects.filter(pk=complaint_id).first()
    if complaint is None:
        raise RequestEngineError(f"There is no complaint with id {complaint_id}.")
    ico = ico_complaint_for(complaint)
    if ico is None:
        raise RequestEngineError(f"{complaint} has no ICO pack yet: build it first.")
    return Complaint.objects.select_for_update().select_related("controller").get(pk=ico.pk)


def ico_case_record(
    *, complaint_id: int, case_reference: str, actor: Actor, submitted_on: datetime.date | None = None
) -> Complaint:
    """The coordinator submitted the pack to the ICO and got a case reference: the ICO complaint is sent and
    its requests move to `escalated_to_ico`."""
    case_reference = case_reference.strip()
    if not case_reference:
        raise RequestEngineError("Enter the case reference the ICO gave.")
    submitted_on = submitted_on or _today()
    with transaction.atomic():
        ico = _lock_ico(complaint_id)
        if ico.state != Complaint.State.DRAFT:
            if ico.ico_case_reference == case_reference:
                return ico  # recorded already: a repeat changes nothing
            raise RequestEngineError(
                f"The ICO complaint {ico.reference} already has the case reference {ico.ico_case_reference}."
            )
        if not ico.evidence_pack:
            raise RequestEngineError(f"The ICO complaint {ico.reference} has no pack yet: build it first.")
        from_state = ico.state
        ico.ico_case_reference = case_reference
        ico.send(sent_on=submitted_on)
        ico.save()
        moved, skipped = [], []
        for request_id, ref, state in ico.requests.values_list("pk", "reference", "state"):
            if state != S.COMPLAINT_TO_CONTROLLER:
                skipped.append({"request": ref, "state": state})
                continue
            services.request_escalate_to_ico(
                request_id=request_id, actor=actor, case_reference=case_reference
            )
            moved.append(ref)
        record_event(
            subject=ico,
            kind="complaint.ico_case_recorded",
            actor=actor,
            from_state=from_state,
            to_state=ico.state,
            payload={
                "case_reference": case_reference,
                "submitted_on": submitted_on,
                "moved": len(moved),
                "skipped": skipped,
            },
        )
    return ico


def ico_outcome_record(*, complaint_id: int, outcome: str, actor: Actor) -> Complaint:
    """The ICO told us its outcome: the ICO complaint and its escalated requests are closed with it."""
    outcome = outcome.strip()
    if not outcome:
        raise RequestEngineError("Say what the ICO decided.")
    with transaction.atomic():
        ico = _lock_ico(complaint_id)
        if ico.state not in (Complaint.State.SENT, Complaint.State.ACKNOWLEDGED):
            raise RequestEngineError(
                f"The ICO complaint {ico.reference} is {ico.get_state_display().lower()}: record the case "
                "reference first."
            )
        from_state = ico.state
        ico.close(outcome=outcome)
        ico.save()
        closed = []
        for request_id, ref in ico.requests.filter(state=S.ESCALATED_TO_ICO).values_list("pk", "reference"):
            services.request_close(request_id=request_id, actor=actor, outcome=f"ICO: {outcome}")
            closed.append(ref)
        record_event(
            subject=ico,
            kind="complaint.ico_outcome_recorded",
            actor=actor,
            from_state=from_state,
            to_state=ico.state,
            payload={"outcome": outcome, "closed": len(closed)},
        )
    return ico
