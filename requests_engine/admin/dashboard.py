"""The coordinators' dashboard on the admin index: what needs attention today, each figure a link to the
changelist that shows exactly its rows.

A figure and its list filter share one `Q` (below), so the number on the dashboard and the rows behind its
link cannot drift apart. The figures cost three aggregate queries however many requests there are: one
over requests, one over refusals grouped by ground, one over complaints.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from communities import tenancy
from requests_engine.escalation import selectors
from requests_engine.models import CLOCK_STATES, Complaint, DataRightsRequest, RefusalGround, RequestState

S = RequestState
SOON_DAYS = 7  # "due this week": today and the seven days after it
# Answered with a refusal (in whole or in part) and not yet taken further by a complaint.
REFUSAL_STATES = [S.REFUSED, S.PARTIALLY_FULFILLED]
NO_GROUND = "none"  # the filter value for a refusal recorded without a legal ground


# -- what each figure counts --------------------------------------------------------------------------------


def _running_clock() -> Q:
    return Q(state__in=CLOCK_STATES, clock_paused=False)


def due_soon(today: datetime.date) -> Q:
    """Requests whose clock is running and whose (earliest) deadline is today or within a week."""
    return _running_clock() & Q(due_on__gte=today, due_on__lte=today + timedelta(days=SOON_DAYS))


def overdue(today: datetime.date) -> Q:
    """Marked overdue by the sweep, or past the deadline and waiting for today's sweep."""
    return Q(state=S.OVERDUE) | (_running_clock() & Q(due_on__lt=today))


def refused_on(ground: str) -> Q:
    return Q(state__in=REFUSAL_STATES, refusal_ground="" if ground == NO_GROUND else ground)


# -- list filters the dashboard links to --------------------------------------------------------------------


class RefusalGroundFilter(admin.SimpleListFilter):
    """Requests refused or partly fulfilled on one legal ground, not yet taken to a complaint."""

    title = "refused on the ground of"
    parameter_name = "refusal"

    def lookups(self, request, model_admin):
        return [*RefusalGround.choices, (NO_GROUND, "No ground given")]

    def queryset(self, request, queryset):
        value = self.value()
        if value in RefusalGround.values or value == NO_GROUND:
            return queryset.filter(refused_on(value))
        return queryset


class AcknowledgementFilter(admin.SimpleListFilter):
    """Complaints to controllers by where their s.164A acknowledgement stands."""

    title = "acknowledgement (s.164A)"
    parameter_name = "acknowledgement"

    def lookups(self, request, model_admin):
        return [("soon", f"Due within {SOON_DAYS} days"), ("missed", "Missed: not acknowledged in time")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "soon":
            return queryset.filter(selectors.acknowledgement_due_soon(today, within_days=SOON_DAYS))
        if self.value() == "missed":
            return queryset.filter(selectors.acknowledgement_missed(today))
        return queryset


# -- the figures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    label: str  # what is counted, read after the number: "12 requests overdue"
    count: int
    url: str


@dataclass
class Dashboard:
    today: datetime.date
    requests: list[Figure] = field(default_factory=list)
    refusals: list[Figure] = field(default_factory=list)
    complaints: list[Figure] = field(default_factory=list)


def _changelist(model: type[models.Model], **params: str) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist") + "?" + urlencode(params)


def _requests_url(**params: str) -> str:
    return _changelist(DataRightsRequest, **params)


def request_figures(
    today: datetime.date, requests: QuerySet[DataRightsRequest] | None = None
) -> tuple[list[Figure], list[Figure]]:
    """(deadline figures, refusals by ground) over `requests` (every request by default); two queries."""
    requests = DataRightsRequest.objects.all() if requests is None else requests
    counts = requests.filter(due_soon(today) | overdue(today)).aggregate(
        soon=Count("pk", filter=due_soon(today)), late=Count("pk", filter=overdue(today))
    )
    deadlines = [
        Figure(f"requests due within {SOON_DAYS} days", counts["soon"], _requests_url(due="week")),
        Figure("requests overdue", counts["late"], _requests_url(due="overdue")),
    ]
    by_ground = dict(
        requests.filter(state__in=REFUSAL_STATES)
        .order_by()
        .values_list("refusal_ground")
        .annotate(n=Count("pk"))
        .values_list("refusal_ground", "n")
    )
    labels = dict(RefusalGround.choices)
    refusals = [
        Figure(
            f"refused: {labels.get(ground) or 'no ground given'}",
            n,
            _requests_url(refusal=ground or NO_GROUND),
        )
        for ground, n in sorted(by_ground.items(), key=lambda item: (-item[1], item[0]))
        if n
    ]
    return deadlines, refusals


def complaint_figures(today: datetime.date, complaints: QuerySet[Complaint] | None = None) -> list[Figure]:
    """One query, over `complaints` (every complaint by default). The "next step" filter of the complaints admin already lists drafts and ICO complaints;
    the acknowledgement filter above lists what it cannot express."""
    queries = {
        "approve": selectors.waiting_for_approval(),
        "ack_soon": selectors.acknowledgement_due_soon(today, within_days=SOON_DAYS),
        "ack_missed": selectors.acknowledgement_missed(today),
        "ico_pack": selectors.ico_pack_due(today),
        "ico_submit": selectors.ico_pack_to_submit(),
        "ico_open": selectors.ico_case_open(),
    }
    complaints = Complaint.objects.all() if complaints is None else complaints
    counts = complaints.aggregate(**{name: Count("pk", filter=q) for name, q in queries.items()})
    return [
        Figure("complaints waiting for approval", counts["approve"], _changelist(Complaint, next="approve")),
        Figure(
            f"acknowledgements due within {SOON_DAYS} days",
            counts["ack_soon"],
            _changelist(Complaint, acknowledgement="soon"),
        ),
        Figure(
            "acknowledgements missed",
            counts["ack_missed"],
            _changelist(Complaint, acknowledgement="missed"),
        ),
        Figure("ICO packs to build", counts["ico_pack"], _changelist(Complaint, next="ico_pack")),
        Figure("ICO packs to submit", counts["ico_submit"], _changelist(Complaint, next="ico_submit")),
        Figure("ICO cases open", counts["ico_open"], _changelist(Complaint, next="ico_open")),
    ]


def dashboard(*, user, today: datetime.date | None = None) -> Dashboard:
    """The figures this user may see: requests and complaints each need their view permission, and count
    only the user's communities (the same tenant filter as the lists they link to)."""
    board = Dashboard(today=today or timezone.localdate())
    if user.has_perm("requests_engine.view_datarightsrequest"):
        board.requests, board.refusals = request_figures(
            board.today, tenancy.scope(DataRightsRequest.objects.all(), user)
        )
    if user.has_perm("requests_engine.view_complaint"):
        board.complaints = complaint_figures(board.today, tenancy.scope(Complaint.objects.all(), user))
    return board
