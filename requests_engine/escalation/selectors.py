"""Where each complaint stands on the ladder, and what may be done next: one home for these rules.

The complaints admin's filter and buttons, the coordinators' dashboard, the daily complaints sweep and
the ICO pack all read them from here, so "is an ICO pack due" means the same thing on every page.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from requests_engine.deadlines import add_months
from requests_engine.letters import long_date
from requests_engine.models import Complaint, RequestEvent

K = Complaint.Kind
ST = Complaint.State

# Event kinds the ladder's rules read.
ACKNOWLEDGEMENT_MISSED = "complaint.acknowledgement_missed"
PACK_BUILT = "complaint.ico_pack_built"
CLOSED = "complaint.closed"


def _event(kind: str, **payload) -> Exists:
    return Exists(RequestEvent.objects.filter(complaint_id=OuterRef("pk"), kind=kind, **payload))


def acknowledgement_flagged() -> Exists:
    return _event(ACKNOWLEDGEMENT_MISSED)


def _closed_unresolved() -> Exists:
    return _event(CLOSED, payload__resolved=False)


def _pack_built() -> Exists:
    return _event(PACK_BUILT)


def complaint_flags() -> dict:
    """Annotations the complaints list shows and `next_step_text` reads."""
    return {
        "_requests": Count("requests", distinct=True),
        "_ack_missed": acknowledgement_flagged(),
        "_unresolved": _closed_unresolved(),
        "_ico_built": _pack_built(),
    }


# -- the ladder's stages, as querysets filter them ---------------------------------------------------------


def waiting_for_approval() -> Q:
    return Q(kind=K.CONTROLLER, state=ST.DRAFT)


def acknowledgement_awaited(today: datetime.date) -> Q:
    """Sent s.164A complaints whose acknowledgement deadline has not passed yet."""
    return Q(kind=K.CONTROLLER, state=ST.SENT, acknowledgement_due_on__gte=today)


def acknowledgement_due_soon(today: datetime.date, *, within_days: int) -> Q:
    """Sent s.164A complaints whose acknowledgement is due today or within `within_days`, not yet given."""
    return acknowledgement_awaited(today) & Q(
        acknowledgement_due_on__lte=today + datetime.timedelta(days=within_days)
    )


def acknowledgement_missed(today: datetime.date) -> Q:
    """Sent s.164A complaints still unacknowledged after their deadline (DPA 2018 s.164A(3)(a))."""
    return Q(kind=K.CONTROLLER, state=ST.SENT, acknowledgement_due_on__lt=today)


def outcome_wait() -> datetime.timedelta:
    return datetime.timedelta(days=getattr(settings, "ICO_OUTCOME_WAIT_DAYS", 30))


def ico_pack_warranted(today: datetime.date) -> Q:
    """Controller complaints that may now go to the ICO (s.165 DPA 2018: the controller first has its chance
    under s.164A): the acknowledgement date passed without an acknowledgement; or the outcome left requests
    unresolved; or no outcome came within ICO_OUTCOME_WAIT_DAYS of the acknowledgement. Never on the day the
    complaint is sent."""
    return Q(kind=K.CONTROLLER) & (
        acknowledgement_missed(today)
        | Q(acknowledgement_flagged(), state=ST.SENT)
        | Q(_closed_unresolved(), state=ST.CLOSED)
        | Q(state=ST.ACKNOWLEDGED, acknowledged_on__lte=today - outcome_wait())
    )


def ico_pack_due(today: datetime.date) -> Q:
    """Warranted and not built yet: the "ICO pack to build" list."""
    return ico_pack_warranted(today) & ~Q(_pack_built())


def ico_pack_to_submit() -> Q:
    return Q(kind=K.ICO, state=ST.DRAFT)


def ico_case_open() -> Q:
    return Q(kind=K.ICO, state__in=[ST.SENT, ST.ACKNOWLEDGED])


# -- one complaint ----------------------------------------------------------------------------------------


def ico_pack_reason(complaint: Complaint, *, today: datetime.date | None = None) -> str:
    """Why a controller complaint is ready for an ICO pack, or "" when it is not (yet)."""
    today = today or timezone.localdate()
    if not Complaint.objects.filter(ico_pack_warranted(today), pk=complaint.pk).exists():
        return ""
    if complaint.state == ST.SENT and complaint.acknowledgement_due_on:
        return f"not acknowledged by {long_date(complaint.acknowledgement_due_on)}"
    if complaint.state == ST.ACKNOWLEDGED and complaint.acknowledged_on:
        return (
            f"acknowledged on {long_date(complaint.acknowledged_on)}, with no outcome within "
            f"{outcome_wait().days} days"
        )
    return "the outcome left requests unresolved"


def ico_pack_ready_on(complaint: Complaint) -> datetime.date | None:
    """The first day an ICO pack may be built for this controller complaint, while it is not yet warranted;
    None when no date is coming (a draft, or an outcome that resolved it)."""
    if complaint.kind != K.CONTROLLER:
        return None
    if complaint.state == ST.SENT and complaint.acknowledgement_due_on:
        return complaint.acknowledgement_due_on + datetime.timedelta(days=1)
    if complaint.state == ST.ACKNOWLEDGED and complaint.acknowledged_on:
        return complaint.acknowledged_on + outcome_wait()
    return None


def ico_pack_not_yet(complaint: Complaint, *, today: datetime.date | None = None) -> str:
    """Why the ICO may not be asked yet, and from when: "" once it may (or when it never will)."""
    today = today or timezone.localdate()
    if complaint.kind != K.CONTROLLER or ico_pack_reason(complaint, today=today):
        return ""
    ready = ico_pack_ready_on(complaint)
    if ready is None:
        return ""
    if complaint.state == ST.SENT:
        return (
            f"The ICO pack can be built from {long_date(ready)}: {complaint.controller.name} has until "
            f"{long_date(complaint.acknowledgement_due_on)} to acknowledge the complaint (s.164A(3) DPA 2018)."
        )
    return (
        f"The ICO pack can be built from {long_date(ready)}, if no outcome has come by then: "
        f"{complaint.controller.name} acknowledged the complaint on {long_date(complaint.acknowledged_on)} and "
        f"must tell us the outcome without undue delay (s.164A(4)); we allow {outcome_wait().days} days."
    )


# The ICO expects a complaint within three months of the last meaningful contact with the organisation.
ICO_WINDOW_MONTHS = 3
ICO_WINDOW_REMINDER_DAYS = 14


def last_contact_on(complaint: Complaint) -> datetime.date | None:
    """The last contact with the controller about this complaint: its outcome, acknowledgement or sending."""
    outcome = complaint.events.filter(kind=CLOSED).order_by("-seq").first()
    outcome_on = None
    if outcome is not None:
        on = outcome.payload.get("on")
        outcome_on = (
            datetime.date.fromisoformat(on) if isinstance(on, str) else timezone.localdate(outcome.created_at)
        )
    return max((d for d in (complaint.sent_on, complaint.acknowledged_on, outcome_on) if d), default=None)


def ico_window_closes_on(complaint: Complaint) -> datetime.date | None:
    """When the ICO's three-month window from the last contact with the controller closes."""
    last = last_contact_on(complaint)
    return add_months(last, ICO_WINDOW_MONTHS) if last else None


def linked_ico_complaint(controller_complaint: Complaint) -> Complaint | None:
    """The ICO complaint the latest pack built from this controller complaint, if any."""
    event = controller_complaint.events.filter(kind=PACK_BUILT).order_by("-seq").first()
    if event is None:
        return None
    return Complaint.objects.filter(pk=event.payload.get("ico_complaint")).first()


def ico_complaint_for(complaint: Complaint) -> Complaint | None:
    """The ICO complaint itself, or the one built from a controller complaint."""
    return complaint if complaint.kind == K.ICO else linked_ico_complaint(complaint)


def available_steps(complaint: Complaint, *, today: datetime.date | None = None) -> list[tuple[str, str]]:
    """(step, button label) for what a coordinator can do next with this complaint. The ICO pack is offered
    only once it is warranted (`ico_pack_warranted`); before then `ico_pack_not_yet` says when."""
    steps: list[tuple[str, str]] = []
    if complaint.kind == K.CONTROLLER:
        if complaint.state == ST.DRAFT:
            steps += [("send", "Approve and send"), ("redraft", "Update the draft")]
        if complaint.state == ST.SENT:
            steps.append(("acknowledge", "Record acknowledgement"))
        if complaint.state in (ST.SENT, ST.ACKNOWLEDGED):
            steps.append(("outcome", "Record outcome"))
        if complaint.state != ST.DRAFT and ico_pack_reason(complaint, today=today):
            linked = ico_complaint_for(complaint)
            if linked is None or linked.state == ST.DRAFT:
                steps.append(("ico-pack", "Rebuild the ICO pack" if linked else "Build the ICO pack"))
        if complaint.evidence_pack:
            steps.append(("download", "Download the complaint as sent"))
    else:
        if complaint.evidence_pack:
            steps.append(("download", "Download the pack"))
        if complaint.state == ST.DRAFT:
            steps += [("ico-pack", "Rebuild the ICO pack"), ("ico-case", "Record the ICO case reference")]
        if complaint.state in (ST.SENT, ST.ACKNOWLEDGED):
            steps.append(("ico-outcome", "Record the ICO's outcome"))
    return steps


def next_step_text(complaint: Complaint, *, today: datetime.date | None = None) -> str:
    """The complaints list's "next step" column; reads the `complaint_flags` annotations."""
    today = today or timezone.localdate()
    built = getattr(complaint, "_ico_built", False)
    if complaint.kind == K.CONTROLLER:
        if complaint.state == ST.DRAFT:
            return "Review and approve"
        if complaint.state == ST.SENT:
            due = complaint.acknowledgement_due_on
            if due and due >= today:
                return (
                    f"Waiting for acknowledgement (due {long_date(due)}; ICO pack possible from "
                    f"{long_date(due + datetime.timedelta(days=1))})"
                )
            if built:
                return "ICO pack built"
            return (
                f"Build the ICO pack: not acknowledged by {long_date(due)}" if due else "Build the ICO pack"
            )
        if complaint.state == ST.ACKNOWLEDGED:
            ready = ico_pack_ready_on(complaint)
            if ready and ready <= today:
                return "ICO pack built" if built else "Build the ICO pack: no outcome in time"
            return (
                f"Waiting for the outcome (ICO pack possible from {long_date(ready)})"
                if ready
                else ("Waiting for the outcome")
            )
        if getattr(complaint, "_unresolved", False):
            return "ICO pack built" if built else "Build the ICO pack: outcome unresolved"
        return "Done"
    if complaint.state == ST.DRAFT:
        return "Submit the pack to the ICO, then record the case reference"
    if complaint.state in (ST.SENT, ST.ACKNOWLEDGED):
        return "ICO case open: record the ICO's outcome"
    return "Done"
