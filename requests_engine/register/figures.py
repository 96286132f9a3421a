"""The public register's figures (DESIGN §1 "the public"): each community's entry and each controller's
record, as plain JSON-ready dicts that the HTML pages, the SVG charts and the JSON views all render.

Only aggregates leave this module, and a figure is withheld (None, shown as "fewer than 5") whenever it
would be computed from fewer than SUPPRESS_UNDER requests, so that no member can be picked out of it.
Member numbers are rounded to the nearest MEMBERS_ROUNDED_TO for the same reason. Every figure is counted
in the database (one grouped query per kind of figure); nothing loops over requests in Python.

Definitions:
- received: the request reached the controller (`received_on` is set by dispatch).
- answered: `answered_on` is set (fulfilled, partly fulfilled or refused, whatever happened next).
- on time: answered on or before `due_on` (which already includes any extension and pause);
  answered late: after it; no answer after the deadline: never answered and once marked overdue
  (a `request.overdue` event, so it still counts after a complaint, an escalation or a withdrawal).
  The on-time percentage is on time ÷ (on time + answered late + no answer after the deadline):
  requests still within their time limit are not judged yet.
- median days to answer: calendar days from `received_on` to `answered_on`, over answered requests.
- refusals by legal ground: requests refused in full or in part, by the ground the controller gave.
- complaints: complaints made (not drafts) to the controller (s.164A DPA 2018) and to the ICO; requests
  escalated to the ICO: requests that ever reached `escalated_to_ico`.
"""

from __future__ import annotations

import datetime
from typing import Any, cast

from django.db import connection
from django.db.models import Count, DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet
from django.urls import reverse

from communities.models import Community, Right
from requests_engine.models import (
    Complaint,
    Controller,
    DataRightsRequest,
    RefusalGround,
    RequestEvent,
    RequestState,
)

SUPPRESS_UNDER = 5
MEMBERS_ROUNDED_TO = 5
CHART_TOP = 10
NOTE = (
    "Figures are withheld (null) where they would be computed from fewer than 5 requests, and member "
    "numbers are rounded to the nearest 5, so that no member can be identified."
)

Figures = dict[str, Any]

S = RequestState
# Where a request can be after it was marked overdue without being answered (DESIGN §3), and after it was
# escalated to the ICO.
MAY_HAVE_BEEN_OVERDUE = [
    S.OVERDUE,
    S.COMPLAINT_TO_CONTROLLER,
    S.ESCALATED_TO_ICO,
    S.CLOSED,
    S.WITHDRAWN,
    S.HANDED_OVER,
]
MAY_HAVE_BEEN_ESCALATED = [S.ESCALATED_TO_ICO, S.CLOSED]


def _shown(value: Any, base: int) -> Any:
    """The figure, or None when it rests on fewer than SUPPRESS_UNDER requests."""
    return value if base >= SUPPRESS_UNDER else None


def _percent(part: int, whole: int) -> int:
    # Half up, in integers: 5 of 8 is 63 (round() would give the banker's 62).
    return (200 * part + whole) // (2 * whole)


def rounded_members(count: int) -> int | None:
    """Nearest multiple of MEMBERS_ROUNDED_TO (half up); None under SUPPRESS_UNDER."""
    if count < SUPPRESS_UNDER:
        return None
    step = MEMBERS_ROUNDED_TO
    return step * ((count + step // 2) // step)


# -- the counts ------------------------------------------------------------------------------------------


def _received_requests() -> QuerySet[DataRightsRequest]:
    return DataRightsRequest.objects.filter(received_on__isnull=False).order_by()


def _request_counts(controller_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """One grouped query: per controller, the counts every other figure derives from."""
    reached = RequestEvent.objects.filter(request=OuterRef("pk"))
    answered = Q(answered_on__isnull=False)
    # The event look-ups run only for the few rows whose state says they may have been there (PostgreSQL
    # evaluates the cheap conditions first), not for every request.
    unanswered_late = cast(
        Q,
        Q(answered_on__isnull=True, state__in=MAY_HAVE_BEEN_OVERDUE)
        & Exists(reached.filter(to_state=RequestState.OVERDUE)),
    )
    escalated = cast(
        Q,
        Q(state__in=MAY_HAVE_BEEN_ESCALATED) & Exists(reached.filter(to_state=RequestState.ESCALATED_TO_ICO)),
    )
    requests = _received_requests()
    if controller_ids is not None:
        requests = requests.filter(controller_id__in=controller_ids)
    rows = requests.values("controller_id").annotate(
        received=Count("pk"),
        answered=Count("pk", filter=answered),
        on_time=Count("pk", filter=answered & Q(answered_on__lte=F("due_on"))),
        answered_late=Count("pk", filter=answered & Q(answered_on__gt=F("due_on"))),
        unanswered_late=Count("pk", filter=unanswered_late),
        extended=Count("pk", filter=Q(extension_months__gt=0)),
        escalated_to_ico=Count("pk", filter=escalated),
    )
    counts: dict[int, dict[str, int]] = {}
    for row in rows:
        figures: dict[str, Any] = dict(row)
        counts[int(figures.pop("controller_id"))] = figures
    return counts


def _medians(controller_ids: list[int]) -> dict[int, float]:
    """Median calendar days from receipt to answer, per controller (only those asked for)."""
    if not controller_ids:
        return {}
    if connection.vendor == "postgresql":
        # date - date is an integer number of days in PostgreSQL; percentile_cont interpolates the middle
        # two values of an even count, as a median should.
        sql = f"""
            SELECT controller_id,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY answered_on - received_on)
            FROM {DataRightsRequest._meta.db_table}
            WHERE answered_on IS NOT NULL AND received_on IS NOT NULL AND controller_id = ANY(%s)
            GROUP BY controller_id
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [controller_ids])
            return {controller_id: float(median) for controller_id, median in cursor.fetchall()}
    # SQLite (the embedded default) has no percentile function: per controller, the database sorts the
    # durations and returns only the middle one or two (LIMIT/OFFSET), never the whole list.
    duration = ExpressionWrapper(F("answered_on") - F("received_on"), output_field=DurationField())
    medians = {}
    for controller_id, count in (
        _received_requests()
        .filter(controller_id__in=controller_ids, answered_on__isnull=False)
        .values_list("controller_id")
        .annotate(count=Count("pk"))
    ):
        middle = (
            _received_requests()
            .filter(controller_id=controller_id, answered_on__isnull=False)
            .annotate(days=duration)
            .order_by("days")
            .values_list("days", flat=True)[(count - 1) // 2 : count // 2 + 1]
        )
        values: list[datetime.timedelta] = list(middle)
        medians[controller_id] = sum(value.days for value in values) / len(values)
    return medians


def _summary(controller: Controller, counts: dict[str, int], median: float | None) -> Figures:
    received = counts["received"]
    judged = counts["on_time"] + counts["answered_late"] + counts["unanswered_late"]
    answered = counts["answered"]
    return {
        "slug": controller.slug,
        "name": controller.name,
        "requests_received": _shown(received, received),
        "answered": _shown(answered, received),
        "answered_on_time": _shown(counts["on_time"], judged),
        "answered_late": _shown(counts["answered_late"], judged),
        "unanswered_after_deadline": _shown(counts["unanswered_late"], judged),
        "on_time_percent": _shown(_percent(counts["on_time"], judged), judged) if judged else None,
        "median_days_to_answer": (
            _shown(round(median, 1), answered) if median is not None and answered else None
        ),
    }


# -- the register ----------------------------------------------------------------------------------------


def community_entries() -> list[Figures]:
    rights = dict(Right.choices)
    communities = Community.objects.annotate(
        active_members=Count("members", filter=Q(members__left_at__isnull=True))
    ).order_by("name")
    return [
        {
            "slug": community.slug,
            "name": community.name,
            "purpose": community.purpose,
            "rights": [{"code": code, "label": rights[code]} for code in community.rights if code in rights],
            "members": rounded_members(community.active_members),
            "contact_email": community.contact_email,
            "art80_record": _art80_record(community),
        }
        for community in communities
    ]


def _art80_record(community: Community) -> Figures | None:
    """The community's Art 80(1) record, or None while it is incomplete: it then represents no member before
    the ICO (Art 80(1) UK GDPR, DPA 2018 s.187), and the register says so."""
    if not community.art80_eligible:
        return None
    return {
        "legal_form": community.get_legal_form_display(),
        "not_for_profit": community.not_for_profit,
        "statutory_objectives": community.statutory_objectives,
        "data_protection_activity": community.data_protection_activity,
        "constitution_url": reverse("register-constitution", args=[community.slug]),
        "represents_in_court": community.offers_court,
    }


def controller_summaries() -> list[Figures]:
    """Every controller that received at least one request, by name, with its headline figures."""
    counts = _request_counts()
    medians = _medians([cid for cid, row in counts.items() if row["answered"] >= SUPPRESS_UNDER])
    controllers = (
        Controller.objects.filter(pk__in=counts.keys()).only("slug", "name").order_by("name", "slug")
    )
    return [_summary(c, counts[c.pk], medians.get(c.pk)) for c in controllers]


def outcomes_chart_rows(summaries: list[Figures], *, top: int = CHART_TOP) -> list[Figures]:
    """The controllers with the most requests whose outcome figures are shown, most requests first."""
    shown = [s for s in summaries if s["answered_on_time"] is not None]
    shown.sort(key=lambda s: (-s["requests_received"], s["name"]))
    return [
        {
            "slug": s["slug"],
            "name": s["name"],
            "answered_on_time": s["answered_on_time"],
            "answered_late": s["answered_late"],
            "unanswered_after_deadline": s["unanswered_after_deadline"],
        }
        for s in shown[:top]
    ]


def register_index() -> Figures:
    """The whole register's front page: communities, controllers, and the outcomes chart's rows."""
    summaries = controller_summaries()
    return {
        "suppression_threshold": SUPPRESS_UNDER,
        "members_rounded_to": MEMBERS_ROUNDED_TO,
        "note": NOTE,
        "communities": community_entries(),
        "controllers": summaries,
        "outcomes_chart": outcomes_chart_rows(summaries),
    }


def controller_record(controller: Controller) -> Figures | None:
    """One controller's record, or None when no request has reached it (it is not on the register)."""
    counts = _request_counts([controller.pk]).get(controller.pk)
    if counts is None:
        return None
    received = counts["received"]
    median = _medians([controller.pk]).get(controller.pk) if counts["answered"] >= SUPPRESS_UNDER else None
    labels = dict(RefusalGround.choices)
    refusals = list(
        _received_requests()
        .filter(controller=controller)
        .exclude(refusal_ground="")
        .values("refusal_ground")
        .annotate(count=Count("pk"))
        .order_by("-count", "refusal_ground")
    )
    complaints = dict(
        Complaint.objects.filter(controller=controller)
        .exclude(state=Complaint.State.DRAFT)
        .order_by()
        .values_list("kind")
        .annotate(count=Count("pk"))
    )
    return {
        "suppression_threshold": SUPPRESS_UNDER,
        "note": NOTE,
        **_summary(controller, counts, median),
        "extensions": _shown(counts["extended"], received),
        "refusals": _shown(sum(row["count"] for row in refusals), received),
        "refusals_by_ground": _shown(
            [
                {
                    "ground": row["refusal_ground"],
                    "label": labels.get(row["refusal_ground"], row["refusal_ground"]),
                    "count": row["count"],
                }
                for row in refusals
            ],
            received,
        ),
        "complaints_to_controller": _shown(complaints.get(Complaint.Kind.CONTROLLER, 0), received),
        "complaints_to_ico": _shown(complaints.get(Complaint.Kind.ICO, 0), received),
        "requests_escalated_to_ico": _shown(counts["escalated_to_ico"], received),
    }


def registered_controller(slug: str) -> tuple[Controller, Figures] | None:
    controller = Controller.objects.filter(slug=slug).first()
    if controller is None:
        return None
    record = controller_record(controller)
    return (controller, record) if record is not None else None
