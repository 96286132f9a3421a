"""Complaints to controllers (s.164A DPA 2018) and the escalation flags that lead to them (issue 6).

The ladder (RULES.md (j)): a request that went wrong is flagged (`escalation_reasons`); a coordinator has
one collective complaint per controller and campaign drafted (`complaint_draft`), reviews
its free text and approves it (`complaint_approve_and_send`): it goes out through the outbox with its PDF,
the covered requests move to `complaint_to_controller`, and the controller owes an acknowledgement by
`deadlines.complaint_acknowledgement_due(sent date)`. The acknowledgement and the outcome are recorded as
events (`complaint_record_acknowledgement`, `complaint_record_outcome`); the daily `complaints_sweep` flags
complaints nobody acknowledged in time, which is the cue for the ICO pack (`ico_pack.py`).

Flags are not stored: they are computed from each request's fields and events, so they can never go
stale, and a complaint's own events say what was sent about which request.

The complaint is two sealed PDFs: the complaint itself (grounds by request reference, which carries only
pseudonymous member references) and an annex naming the members. Keeping the names apart lets the ICO pack
include the complaint exactly as sent while leaving out the names of members who did not authorise
representation before the ICO (data minimisation, Art 5(1)(c) UK GDPR).
"""

from __future__ import annotations

import datetime
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone

from communities.models import Mandate
from core import outbox
from core.audit import Actor
from core.pdf import render_pdf, seal_pdf, sha256_hex
from requests_engine import deadlines, services
from requests_engine.escalation import selectors
from requests_engine.escalation.selectors import ACKNOWLEDGEMENT_MISSED
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.grounds import what_must_be_shown
from requests_engine.letters import copied_to, letterhead, long_date
from requests_engine.models import (
    CHECKLISTS,
    CLOCK_STATES,
    Campaign,
    Complaint,
    Controller,
    DataRightsRequest,
    Outcome,
    RequestEvent,
    RequestState,
)
from requests_engine.responses import completeness

S = RequestState
TEMPLATES = "requests_engine/complaints"
SWEEP_ACTOR = Actor.system("complaints-sweep")
COMPLAINT_PURPOSE = "complaint.controller"  # outbox rows: subject ("complaint", complaint id)
MAX_GROUNDS_CHARS = 100_000

# -- escalation flags -------------------------------------------------------------------------------------

OVERDUE = "overdue"
REFUSED = "refused"
PARTLY_FULFILLED = "partially_fulfilled"
REFUSAL_WITHOUT_REASONS = "refusal_without_reasons"
REFUSAL_WITHOUT_RIGHTS_STATEMENT = "refusal_without_rights_statement"
PORTABILITY_NOT_MACHINE_READABLE = "portability_not_machine_readable"
LATE_EXTENSION = "late_extension"
INCOMPLETE_ANSWER = "incomplete_answer"

REASON_LABELS = {
    OVERDUE: "No answer by the latest possible deadline",
    REFUSED: "Refused",
    PARTLY_FULFILLED: "Partly fulfilled",
    REFUSAL_WITHOUT_REASONS: "Refusal gives no real reasons",
    REFUSAL_WITHOUT_RIGHTS_STATEMENT: "Refusal omits the right to complain to the ICO or go to court",
    PORTABILITY_NOT_MACHINE_READABLE: "Portability answer not machine-readable",
    LATE_EXTENSION: "Extension noticed after the first month",
    INCOMPLETE_ANSWER: "Access answer incomplete; the follow-up went unanswered",
}

# States where nothing is owed to the member any more, or nothing was asked yet.
NOTHING_TO_ESCALATE = {S.DRAFT, S.QUEUED, S.FAILED_DELIVERY, S.WITHDRAWN, S.HANDED_OVER, S.CLOSED}
# "No personal data held" is an answer like a fulfilment (Art 15(1) UK GDPR), never a refusal to complain of.
_ANSWER_EVENTS = (
    "request.fulfilled",
    "request.no_data_held",
    "request.partially_fulfilled",
    "request.refused",
)
_PORTABILITY_FLAG = "request.portability_format_flagged"
_WATCHED_EVENTS = (*_ANSWER_EVENTS, _PORTABILITY_FLAG)
# The states the complain_to_controller transition accepts (DESIGN §3).
_COMPLAINABLE = (S.OVERDUE, S.REFUSED, S.PARTIALLY_FULFILLED)

# Art 12(4) UK GDPR: a controller that does not act must give "the reasons for not taking action and ...
# the possibility of lodging a complaint with a supervisory authority and seeking a judicial remedy".
# Whether reasons are adequate cannot be machine-checked, so the flags are a heuristic the coordinator
# reviews before approving a complaint:
# * fewer than MIN_REASON_WORDS words is a label ("Exempt.", "Manifestly excessive.") rather than reasons;
# * the statement of rights must name both the ICO (or "Information Commissioner", "supervisory
#   authority") and a court or judicial remedy; a refusal that names only one of them is flagged.
MIN_REASON_WORDS = 8
_ICO_WORDS = re.compile(r"\bico\b|information commissioner|supervisory authority", re.IGNORECASE)
_COURT_WORDS = re.compile(r"\bcourts?\b|judicial|legal (?:action|proceedings)", re.IGNORECASE)


def _today() -> datetime.date:
    return timezone.localdate()


def _notice_deadline(request: DataRightsRequest) -> datetime.date:
    """The last day of the first month, when an extension notice was still possible (Art 12A)."""
    assert request.clock_start_on is not None  # asked only of requests the controller received
    return deadlines.extension_notice_due(
        request.clock_start_on, jurisdiction=request.jurisdiction, paused_days=request.paused_days
    )


def extension_was_late(request: DataRightsRequest) -> bool:
    """An extension noticed after the first month is invalid: the original deadline stands (RULES (b))."""
    if not (request.extended_on and request.extension_months and request.clock_start_on):
        return False
    return request.extended_on > _notice_deadline(request)


def latest_deadline(request: DataRightsRequest) -> datetime.date | None:
    """The latest plausible due date (RULES ambiguity table), ignoring an extension noticed too late."""
    if request.clock_start_on is None:
        return None
    return deadlines.latest_plausible_due_date(
        request.clock_start_on,
        jurisdiction=request.jurisdiction,
        extension_months=0 if extension_was_late(request) else request.extension_months,
        paused_days=request.paused_days,
    )


def escalation_date(request: DataRightsRequest) -> datetime.date | None:
    """The first day an unanswered request may be escalated: the day after the latest plausible due date.

    Reminders and the overdue state use the earliest reading (`due_on`); escalation waits until no reading
    of the law leaves the controller any time (RULES.md, "Escalation safety margin"). The latest date is
    already rolled past weekends and bank holidays, and a deadline runs to the end of its day.
    """
    latest = latest_deadline(request)
    return latest + datetime.timedelta(days=1) if latest else None


def _event_kinds(request: DataRightsRequest) -> list[str]:
    return list(
        request.events.filter(kind__in=_WATCHED_EVENTS).order_by("seq").values_list("kind", flat=True)
    )


def _answer(request: DataRightsRequest, kinds: Sequence[str]) -> str | None:
    """How the controller answered: "request.fulfilled", "request.partially_fulfilled", "request.refused",
    or None while unanswered. After a complaint the state no longer says, so the latest answer event does."""
    if request.answered_on is None:
        return None
    answers = [kind for kind in kinds if kind in _ANSWER_EVENTS]
    if answers:
        return answers[-1]
    if request.outcome == Outcome.NO_DATA_HELD:
        return "request.no_data_held"
    return "request.refused" if request.refusal_ground else "request.fulfilled"


def escalation_reasons(
    request: DataRightsRequest,
    *,
    today: datetime.date | None = None,
    event_kinds: Sequence[str] | None = None,
) -> list[str]:
    """What went wrong with a request, as codes from REASON_LABELS; empty when there is nothing (yet) to
    escalate. `event_kinds` (the request's watched event kinds in order) saves a query when the caller
    loaded them for many requests at once."""
    if request.state in NOTHING_TO_ESCALATE:
        return []
    today = today or _today()
    kinds = _event_kinds(request) if event_kinds is None else event_kinds
    reasons: list[str] = []
    answer = _answer(request, kinds)
    if answer is None:
        start = escalation_date(request)
        if start is not None and not request.clock_paused and today >= start:
            reasons.append(OVERDUE)
    elif answer in ("request.refused", "request.partially_fulfilled"):
        reasons.append(REFUSED if answer == "request.refused" else PARTLY_FULFILLED)
        text = request.refusal_reasons or ""
        if len(text.split()) < MIN_REASON_WORDS:
            reasons.append(REFUSAL_WITHOUT_REASONS)
        if not (_ICO_WORDS.search(text) and _COURT_WORDS.search(text)):
            reasons.append(REFUSAL_WITHOUT_RIGHTS_STATEMENT)
    if _PORTABILITY_FLAG in kinds:
        reasons.append(PORTABILITY_NOT_MACHINE_READABLE)
    # An incomplete answer (access, erasure, objection) is followed up first (completeness.py); only a
    # follow-up whose own deadline passed unanswered is a reason to complain.
    if (
        answer in ("request.fulfilled", "request.partially_fulfilled")
        and request.right in CHECKLISTS
        and completeness.followup_unanswered(request, today=today)
    ):
        reasons.append(INCOMPLETE_ANSWER)
    if extension_was_late(request):
        reasons.append(LATE_EXTENSION)
    return reasons


def answer_falls_short(request: DataRightsRequest) -> bool:
    """A "fulfilled" answer can still be complained about when it falls short (an access answer whose
    follow-up for missing Art 15 items went unanswered; a portability answer with no machine-readable
    file); the other source states of the complaint are complaints in themselves."""
    return request.state != S.FULFILLED or bool(escalation_reasons(request))


def request_complain_to_controller(*, request_id: int, actor: Actor) -> DataRightsRequest:
    """The request is taken to a complaint to its controller (s.164A DPA 2018)."""

    def check(request: DataRightsRequest) -> None:
        if not answer_falls_short(request):
            raise RequestEngineError(
                f"Request {request.reference} cannot be taken to a complaint to the controller now."
            )

    return services._perform(
        request_id=request_id,
        transition="complain_to_controller",
        event="request.complaint_to_controller",
        actor=actor,
        check=check,
    )


def reason_sentences(request: DataRightsRequest, reasons: Iterable[str]) -> list[str]:
    """Each reason as a sentence about this request, for complaints and the ICO pack."""
    ground = request.get_refusal_ground_display() if request.refusal_ground else "no legal ground given"
    answered = long_date(request.answered_on) if request.answered_on else ""
    noticed = long_date(request.extended_on) if request.extended_on else ""
    month_ended = long_date(_notice_deadline(request)) if request.clock_start_on else ""
    must_show = what_must_be_shown(request.refusal_ground)  # the burden the complaint puts to it
    sentences = {
        OVERDUE: (
            f"The controller did not answer within the time limit, which ended on "
            f"{long_date(request.due_on) if request.due_on else 'the statutory due date'} "
            "(Article 12(3) UK GDPR)."
        ),
        REFUSED: f"The controller refused the request on {answered} ({ground}). {must_show}".strip(),
        PARTLY_FULFILLED: (
            f"The controller fulfilled the request only in part on {answered} ({ground}). {must_show}".strip()
        ),
        REFUSAL_WITHOUT_REASONS: "The refusal does not give reasons for not acting (Article 12(4) UK GDPR).",
        REFUSAL_WITHOUT_RIGHTS_STATEMENT: (
            "The refusal does not tell the member of the right to complain to the ICO and to seek a "
            "judicial remedy (Article 12(4) UK GDPR)."
        ),
        PORTABILITY_NOT_MACHINE_READABLE: (
            "The data was not provided in a structured, commonly used and machine-readable format "
            "(Article 20(1) UK GDPR)."
        ),
        LATE_EXTENSION: (
            f"The extension was notified on {noticed}, after the first month ended on {month_ended}, so the "
            "original time limit stands (Article 12(3) UK GDPR)."
        ),
    }
    if INCOMPLETE_ANSWER in reasons:
        sentences[INCOMPLETE_ANSWER] = completeness.escalation_sentence(request)
    return [sentences[reason] for reason in reasons]


def _kinds_by_request(request_ids: Sequence[int]) -> dict[int, list[str]]:
    kinds: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(request_ids), 1000):
        rows = (
            RequestEvent.objects.filter(
                request_id__in=request_ids[start : start + 1000], kind__in=_WATCHED_EVENTS
            )
            .order_by("request_id", "seq")
            .values_list("request_id", "kind")
        )
        for request_id, kind in rows:
            kinds[request_id].append(kind)
    return kinds


def current_mandates(member_ids: Iterable[int], *, today: datetime.date) -> dict[int, Mandate]:
    """Each member's mandate in force today (at most one is active per member)."""
    mandates = Mandate.objects.filter(
        member_id__in=set(member_ids),
        state=Mandate.State.ACTIVE,
        valid_from__lte=today,
        valid_until__gte=today,
    )
    return {mandate.member_id: mandate for mandate in mandates}


# -- drafting ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoveredRequest:
    request: DataRightsRequest
    reasons: list[str]
    sentences: list[str]


def _covered_by_a_sent_complaint() -> Exists:
    through = Complaint.requests.through
    return Exists(
        through.objects.filter(
            datarightsrequest_id=OuterRef("pk"),
            complaint__kind=Complaint.Kind.CONTROLLER,
            complaint__state__in=[Complaint.State.SENT, Complaint.State.ACKNOWLEDGED, Complaint.State.CLOSED],
        )
    )


def _candidates(*, campaign_id: int, controller_id: int) -> list[DataRightsRequest]:
    """Requests that may carry a flag: cheap filters in SQL, the reasons themselves in Python."""
    flaggable = (
        Q(state__in=[S.OVERDUE, S.REFUSED, S.PARTIALLY_FULFILLED])
        | Q(state__in=CLOCK_STATES, clock_paused=False)
        | Q(extended_on__isnull=False)
        | Q(right="portability", state=S.FULFILLED)
        | Q(completeness__followup_due_on__isnull=False, completeness__completed_on__isnull=True)
    )
    return list(
        DataRightsRequest.objects.filter(flaggable, campaign_id=campaign_id, controller_id=controller_id)
        .exclude(_covered_by_a_sent_complaint())
        .select_related("member", "controller", "completeness")
        .order_by("reference")
    )


def escalated_requests(
    *, campaign_id: int, controller_id: int, today: datetime.date
) -> tuple[list[CoveredRequest], list[dict[str, str]], list[DataRightsRequest]]:
    """(requests to complain about, requests left out with the reason, overdue requests still waiting for
    their latest plausible deadline)."""
    candidates = _candidates(campaign_id=campaign_id, controller_id=controller_id)
    kinds = _kinds_by_request([r.pk for r in candidates])
    mandates = current_mandates((r.member_id for r in candidates), today=today)
    covered, left_out, waiting = [], [], []
    for request in candidates:
        reasons = escalation_reasons(request, today=today, event_kinds=kinds.get(request.pk, []))
        if not reasons:
            if request.state == S.OVERDUE:
                waiting.append(request)
            continue
        mandate = mandates.get(request.member_id)
        if mandate is None:
            left_out.append({"request": request.reference, "reason": "the member has no mandate in force"})
        elif not mandate.may_complain_to_controllers:
            left_out.append(
                {"request": request.reference, "reason": "the member's mandate does not cover complaints"}
            )
        else:
            covered.append(CoveredRequest(request, reasons, reason_sentences(request, reasons)))
    return covered, left_out, waiting


def _grounds_text(*, campaign: Campaign, controller: Controller, covered: list[CoveredRequest]) -> str:
    members = {c.request.member_id for c in covered}
    return render_to_string(
        f"{TEMPLATES}/grounds.txt",
        {
            "campaign": campaign,
            "community": campaign.community,
            "controller": controller,
            "covered": covered,
            "member_count": len(members),
        },
    ).strip()


def draft_complaint(*, campaign_id: int, controller_id: int) -> Complaint | None:
    """The draft controller complaint of a campaign and controller, if there is one."""
    return (
        Complaint.objects.filter(
            kind=Complaint.Kind.CONTROLLER,
            controller_id=controller_id,
            state=Complaint.State.DRAFT,
            requests__campaign_id=campaign_id,
        )
        .distinct()
        .order_by("pk")
        .first()
    )


def complaint_draft(*, campaign_id: int, controller_id: int, actor: Actor) -> Complaint:
    """Draft (or bring up to date) the one collective s.164A complaint to a controller about a campaign's
    escalated requests. Calling it again updates the same draft."""
    today = _today()
    with transaction.atomic():
        # The campaign's row lock serialises drafting, so two coordinators never create two drafts.
        campaign = Campaign.objects.select_for_update().select_related("community").get(pk=campaign_id)
        controller = Controller.objects.get(pk=controller_id)
        covered, left_out, waiting = escalated_requests(
            campaign_id=campaign_id, controller_id=controller_id, today=today
        )
        if not covered:
            message = (
                f"No request of campaign {campaign.reference} to {controller.name} needs a complaint today."
            )
            if waiting:
                first = min(escalation_date(r) for r in waiting)  # type: ignore[type-var]
                message += (
                    f" {len(waiting)} overdue request(s) wait for their latest possible deadline to pass; "
                    f"the first can be escalated on {long_date(first)}."
                )
            if left_out:
                message += (
                    f" {len(left_out)} request(s) are left out: their members' mandates do not allow it."
                )
            raise RequestEngineError(message)

        grounds = _grounds_text(campaign=campaign, controller=controller, covered=covered)
        request_ids = [c.request.pk for c in covered]
        payload = {
            "campaign": campaign.reference,
            "requests": len(covered),
            "reasons": dict(Counter(reason for c in covered for reason in c.reasons)),
            "left_out": left_out,
        }
        complaint = draft_complaint(campaign_id=campaign_id, controller_id=controller_id)
        if complaint is None:
            complaint = Complaint.objects.create(
                kind=Complaint.Kind.CONTROLLER,
                community=campaign.community,
                controller=controller,
                grounds=grounds,
            )
            complaint.requests.set(request_ids)
            record_event(
                subject=complaint,
                kind="complaint.drafted",
                actor=actor,
                to_state=complaint.state,
                payload=payload,
            )
            return complaint
        complaint = Complaint.objects.select_for_update().get(pk=complaint.pk)
        before = set(complaint.requests.values_list("pk", flat=True))
        if before != set(request_ids) or complaint.grounds != grounds:
            complaint.grounds = grounds
            complaint.save(update_fields=["grounds"])
            complaint.requests.set(request_ids)
            record_event(subject=complaint, kind="complaint.redrafted", actor=actor, payload=payload)
    return complaint


# -- approving and sending --------------------------------------------------------------------------------


@dataclass
class SendReport:
    complaint: Complaint
    moved: list[str] = field(default_factory=list)  # request references now complaint_to_controller
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (reference, why its state stays)

    def summary(self) -> str:
        text = (
            f"Complaint {self.complaint.reference} sent to {self.complaint.controller.name}; "
            f"acknowledgement due by {long_date(self.complaint.acknowledgement_due_on)}. "
            f"{len(self.moved)} request(s) moved to “complaint to the controller”."
        )
        if self.skipped:
            text += " Not moved: " + "; ".join(f"{ref} ({why})" for ref, why in self.skipped) + "."
        return text


def covered_requests(complaint: Complaint, *, today: datetime.date | None = None) -> list[CoveredRequest]:
    requests = list(
        complaint.requests.select_related("member__user", "controller", "campaign", "completeness").order_by(
            "reference"
        )
    )
    kinds = _kinds_by_request([r.pk for r in requests])
    result = []
    for request in requests:
        reasons = escalation_reasons(request, today=today, event_kinds=kinds.get(request.pk, []))
        result.append(CoveredRequest(request, reasons, reason_sentences(request, reasons)))
    return result


def _complaint_context(complaint: Complaint, covered: list[CoveredRequest], sent_on: datetime.date) -> dict:
    community = complaint.community
    members: dict[int, dict] = {}
    for item in covered:
        member = item.request.member
        row = members.setdefault(member.pk, {"member": member, "requests": []})
        row["requests"].append(item.request)
    return {
        "complaint": complaint,
        "community": community,
        "controller": complaint.controller,
        **letterhead(community),
        "sent_on": sent_on,
        "acknowledgement_due": deadlines.complaint_acknowledgement_due(
            sent_on, jurisdiction=complaint.controller.jurisdiction
        ),
        "paragraphs": [p for p in complaint.grounds.split("\n\n") if p.strip()],
        "members": sorted(members.values(), key=lambda row: row["member"].reference),
        "request_count": len(covered),
    }


def complaint_documents(complaint: Complaint, *, sent_on: datetime.date) -> tuple[bytes, bytes]:
    """The sealed complaint PDF and the sealed annex PDF naming the members."""
    context = _complaint_context(complaint, covered_requests(complaint, today=sent_on), sent_on)
    letter = render_pdf(render_to_string(f"{TEMPLATES}/controller_complaint.html", context))
    annex = render_pdf(render_to_string(f"{TEMPLATES}/controller_annex.html", context))
    who = context["sender_name"]
    return (
        seal_pdf(letter, reason=f"Complaint {complaint.reference} made by {who}"),
        seal_pdf(annex, reason=f"Annex to complaint {complaint.reference} made by {who}"),
    )


def complaint_file_names(complaint: Complaint) -> tuple[str, str]:
    return f"complaint-{complaint.reference}.pdf", f"complaint-{complaint.reference}-annex.pdf"


def _lock_complaint(complaint_id: int, *, kind: str | None = None) -> Complaint:
    try:
        complaint = (
            Complaint.objects.select_for_update()
            .select_related("controller", "community")
            .get(pk=complaint_id)
        )
    except Complaint.DoesNotExist:
        raise RequestEngineError(f"There is no complaint with id {complaint_id}.") from None
    if kind and complaint.kind != kind:
        raise RequestEngineError(f"{complaint} is not a {Complaint.Kind(kind).label.lower()}.")
    return complaint


def complaint_approve_and_send(
    *, complaint_id: int, actor: Actor, grounds_text: str | None = None
) -> SendReport:
    """The coordinator approves a draft (optionally with edited grounds): it is sealed and emailed to the
    controller with Reply-To the community, the s.164A acknowledgement clock starts, and each covered
    request that can move (overdue, refused, partly fulfilled) moves to `complaint_to_controller`."""
    today = _today()
    with transaction.atomic():
        complaint = _lock_complaint(complaint_id, kind=Complaint.Kind.CONTROLLER)
        if complaint.state != Complaint.State.DRAFT:
            raise RequestEngineError(
                f"Complaint {complaint.reference} is {complaint.get_state_display().lower()}: "
                "only a draft can be approved and sent."
            )
        if grounds_text is not None:
            grounds_text = grounds_text.replace("\r\n", "\n").strip()
            if not grounds_text:
                raise RequestEngineError("The complaint needs its grounds: the text cannot be empty.")
            if len(grounds_text) > MAX_GROUNDS_CHARS:
                raise RequestEngineError(
                    f"The grounds are too long (at most {MAX_GROUNDS_CHARS} characters)."
                )
            complaint.grounds = grounds_text
        controller, community = complaint.controller, complaint.community
        try:
            validate_email(controller.email)
        except ValidationError:
            raise RequestEngineError(
                f"{controller.name} has no usable email address ({controller.email or 'none recorded'}): "
                "add one to the directory entry first."
            ) from None
        if not complaint.requests.exists():
            raise RequestEngineError(f"Complaint {complaint.reference} covers no request.")

        letter, annex = complaint_documents(complaint, sent_on=today)
        letter_name, annex_name = complaint_file_names(complaint)
        from_state = complaint.state
        complaint.send(sent_on=today)
        complaint.evidence_pack.save(letter_name, ContentFile(letter), save=False)
        complaint.evidence_pack_sha256 = sha256_hex(letter)
        complaint.save()
        covered = covered_requests(complaint, today=today)
        message = outbox.queue_email(
            to=[controller.email],
            cc=copied_to(controller),
            reply_to=[community.contact_email],
            subject=(
                f"Complaint {complaint.reference} under section 164A Data Protection Act 2018: "
                f"{len(covered)} data rights request(s) from {community.name}"
            ),
            body_text=render_to_string(
                f"{TEMPLATES}/controller_email.txt", _complaint_context(complaint, covered, today)
            ),
            attachments=[(letter_name, letter, "application/pdf"), (annex_name, annex, "application/pdf")],
            subject_type="complaint",
            subject_id=str(complaint.pk),
            purpose=COMPLAINT_PURPOSE,
        )
        report = SendReport(complaint)
        for item in covered:
            request = item.request
            try:
                if request.state in CLOCK_STATES and request.deadline_has_passed():
                    # The sweep has not run yet today: the same service it would use.
                    request = services.request_mark_overdue(request_id=request.pk, actor=actor)
                if request.state not in _COMPLAINABLE:
                    report.skipped.append((request.reference, f"it is {request.get_state_display().lower()}"))
                    continue
                request_complain_to_controller(request_id=request.pk, actor=actor)
            except RequestEngineError as refused:
                report.skipped.append((request.reference, str(refused)))
            else:
                report.moved.append(request.reference)
        record_event(
            subject=complaint,
            kind="complaint.sent",
            actor=actor,
            from_state=from_state,
            to_state=complaint.state,
            payload={
                "sent_on": today,
                "acknowledgement_due_on": complaint.acknowledgement_due_on,
                "message_id": message.message_id,
                "pdf_sha256": complaint.evidence_pack_sha256,
                "annex_sha256": sha256_hex(annex),
                "requests": len(covered),
                "moved": len(report.moved),
                "skipped": [{"request": ref, "why": why} for ref, why in report.skipped],
            },
        )
    return report


# -- what the controller does next ------------------------------------------------------------------------


def _check_day(value: datetime.date, *, name: str, not_before: datetime.date | None) -> None:
    if value > _today():
        raise RequestEngineError(f"The {name} ({long_date(value)}) is in the future.")
    if not_before and value < not_before:
        raise RequestEngineError(f"The {name} ({long_date(value)}) is before {long_date(not_before)}.")


def complaint_record_acknowledgement(
    *, complaint_id: int, acknowledged_on: datetime.date, actor: Actor
) -> Complaint:
    """The controller acknowledged the complaint (s.164A(3)): from the portal, the API or a reply."""
    with transaction.atomic():
        complaint = _lock_complaint(complaint_id, kind=Complaint.Kind.CONTROLLER)
        if complaint.state != Complaint.State.SENT:
            raise RequestEngineError(
                f"Complaint {complaint.reference} is {complaint.get_state_display().lower()}: "
                "an acknowledgement can only be recorded for a sent complaint."
            )
        _check_day(acknowledged_on, name="date of the acknowledgement", not_before=complaint.sent_on)
        from_state = complaint.state
        complaint.acknowledge(acknowledged_on=acknowledged_on)
        complaint.save()
        due = complaint.acknowledgement_due_on
        record_event(
            subject=complaint,
            kind="complaint.acknowledged",
            actor=actor,
            from_state=from_state,
            to_state=complaint.state,
            payload={"acknowledged_on": acknowledged_on, "on_time": due is None or acknowledged_on <= due},
        )
    return complaint


def complaint_record_outcome(*, complaint_id: int, outcome: str, resolved: bool, actor: Actor) -> Complaint:
    """The controller told us the outcome (s.164A(4)); an outcome without an acknowledgement is both.

    Resolved: the covered requests still waiting on the complaint are closed with the outcome. Unresolved:
    they stay in `complaint_to_controller`, and the complaint is ready for an ICO pack."""
    outcome = outcome.strip()
    if not outcome:
        raise RequestEngineError("Say what the controller decided.")
    with transaction.atomic():
        complaint = _lock_complaint(complaint_id, kind=Complaint.Kind.CONTROLLER)
        if complaint.state not in (Complaint.State.SENT, Complaint.State.ACKNOWLEDGED):
            raise RequestEngineError(
                f"Complaint {complaint.reference} is {complaint.get_state_display().lower()}: "
                "an outcome can only be recorded for a sent or acknowledged complaint."
            )
        from_state = complaint.state
        complaint.close(outcome=outcome)
        complaint.save()
        record_event(
            subject=complaint,
            kind=selectors.CLOSED,
            actor=actor,
            from_state=from_state,
            to_state=complaint.state,
            payload={"outcome": outcome, "resolved": resolved, "on": _today()},
        )
        if resolved:
            waiting = complaint.requests.filter(state=S.COMPLAINT_TO_CONTROLLER).values_list("pk", flat=True)
            for request_id in list(waiting):
                services.request_close(request_id=request_id, actor=actor, outcome=outcome)
    return complaint


# -- the daily sweep --------------------------------------------------------------------------------------


def complaints_sweep(*, today: datetime.date | None = None) -> int:
    """Flag each sent complaint whose acknowledgement deadline has passed unacknowledged, once: the cue to
    build the ICO pack. Returns how many were flagged; a second run flags nothing new."""
    today = today or _today()
    due = (
        Complaint.objects.filter(selectors.acknowledgement_missed(today))
        .exclude(selectors.acknowledgement_flagged())
        .values_list("pk", flat=True)
    )
    flagged = 0
    for complaint_id in list(due):
        with transaction.atomic():
            # Re-checked under the row lock: an acknowledgement or another sweep may have come first.
            complaint = (
                Complaint.objects.select_for_update(skip_locked=True)
                .filter(selectors.acknowledgement_missed(today), pk=complaint_id)
                .exclude(selectors.acknowledgement_flagged())
                .first()
            )
            if complaint is None:
                continue
            record_event(
                subject=complaint,
                kind=ACKNOWLEDGEMENT_MISSED,
                actor=SWEEP_ACTOR,
                payload={"acknowledgement_due_on": complaint.acknowledgement_due_on},
            )
            flagged += 1
    return flagged


ICO_WINDOW_REMINDED = "complaint.ico_window_reminder"


def ico_window_reminders_send(*, today: datetime.date | None = None) -> int:
    """Once, a fortnight before the ICO's three-month window from the last contact with the controller
    closes, remind the coordinators of each complaint that could still go to the ICO and has not."""
    today = today or _today()
    open_ones = (
        Complaint.objects.filter(kind=Complaint.Kind.CONTROLLER)
        .filter(
            Q(state__in=[Complaint.State.SENT, Complaint.State.ACKNOWLEDGED])
            | Q(selectors.ico_pack_warranted(today), state=Complaint.State.CLOSED)
        )
        .select_related("community", "controller")
    )
    sent = 0
    for complaint in open_ones:
        closes = selectors.ico_window_closes_on(complaint)
        if closes is None or not (
            today <= closes <= today + datetime.timedelta(days=selectors.ICO_WINDOW_REMINDER_DAYS)
        ):
            continue
        if selectors.linked_ico_complaint(complaint) is not None:
            continue  # a pack was built: the coordinators are on it
        with transaction.atomic():
            locked = Complaint.objects.select_for_update().get(pk=complaint.pk)
            if locked.events.filter(kind=ICO_WINDOW_REMINDED, payload__closes_on=closes.isoformat()).exists():
                continue
            record_event(
                subject=locked,
                kind=ICO_WINDOW_REMINDED,
                actor=SWEEP_ACTOR,
                payload={"closes_on": closes.isoformat()},
            )
            outbox.queue_email(
                to=[complaint.community.contact_email],
                subject=f"Complaint {complaint.reference}: the ICO window closes on {long_date(closes)}",
                body_text=(
                    f"The ICO expects a complaint within three months of the last contact with the organisation. "
                    f"For complaint {complaint.reference} about {complaint.controller.name}, that is "
                    f"{long_date(closes)}. "
                    + (selectors.ico_pack_not_yet(complaint, today=today) or "The ICO pack can be built now.")
                ),
                subject_type="complaint",
                subject_id=str(complaint.pk),
                purpose="complaint.ico_window_reminder",
            )
        sent += 1
    return sent
