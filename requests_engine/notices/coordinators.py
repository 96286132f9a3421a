"""The coordinators' daily summary: for each community, one email about the day before listing the refusals
(with their legal ground), the controllers' requests for information and the files received, each with its
request reference and a link to the request in the back office. A quiet day sends nothing; a day is
summarised once per community (its outbox row carries the day as its tag, checked under the community's
row lock, so a second or overlapping run sends nothing new). The overdue summary is sent beside it by
reminders.py."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.models import Community, Role
from core import outbox
from core.models import OutboundMessage
from requests_engine.models import InformationKind, RefusalGround, RequestEvent

PURPOSE = "community.daily_summary"
REFUSALS = ("request.refused", "request.partially_fulfilled")
QUESTIONS = ("request.info_requested",)
FILES = ("request.files_received",)


@dataclass
class Item:
    reference: str
    controller: str
    right: str
    at: datetime.datetime
    admin_url: str
    what: str  # the ground and reasons, the question, or the files


@dataclass
class Summary:
    community: Community
    refusals: list[Item] = field(default_factory=list)
    questions: list[Item] = field(default_factory=list)
    files: list[Item] = field(default_factory=list)


# Who is copied on a community's summary: those who act on it (a viewer only reads the back office).
COPIED_ROLES = (Role.COORDINATOR, Role.CASEWORKER)


def coordinator_addresses(community: Community) -> tuple[str, list[str]]:
    """The community's own address, and those to copy: its active coordinators and caseworkers, and the
    superusers (who see every community). Staff of other communities are not copied."""
    staff = (
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .filter(
            Q(is_superuser=True) | Q(staff_roles__community=community, staff_roles__role__in=COPIED_ROLES)
        )
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )
    return community.contact_email, [
        email for email in dict.fromkeys(staff) if email != community.contact_email
    ]


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    zone = timezone.get_current_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    return start, end


def _describe(event: RequestEvent) -> str:
    payload = event.payload or {}
    if event.kind in REFUSALS:
        ground = payload.get("ground", "")
        label = RefusalGround(ground).label if ground in RefusalGround.values else ground or "no ground given"
        part = "partly refused" if event.kind == "request.partially_fulfilled" else "refused"
        return f"{part}: {label}. Reasons: {payload.get('reasons', '')}"
    if event.kind in QUESTIONS:
        kind = payload.get("information", "")
        label = InformationKind(kind).label if kind in InformationKind.values else kind
        return f"asks for {str(label).lower()}: {payload.get('question', '')}"
    names = [f"{f.get('name')} ({f.get('type')}, {f.get('size')} bytes)" for f in payload.get("files", [])]
    return f"{len(names)} file{'s' if len(names) != 1 else ''}: {'; '.join(names)}"


def _summaries(day: datetime.date) -> dict[int, Summary]:
    start, end = _day_bounds(day)
    site = settings.SITE_URL.rstrip("/")
    events = (
        RequestEvent.objects.filter(
            kind__in=REFUSALS + QUESTIONS + FILES,
            created_at__gte=start,
            created_at__lt=end,
            request__isnull=False,
        )
        .select_related("request__controller", "request__member__community")
        .order_by("created_at", "pk")
    )
    summaries: dict[int, Summary] = {}
    for event in events.iterator(chunk_size=2000):
        request = event.request
        if request is None:  # excluded by the query; this narrows the type
            continue
        community = request.member.community
        summary = summaries.setdefault(community.pk, Summary(community))
        item = Item(
            reference=request.reference,
            controller=request.controller.name,
            right=request.get_right_display(),
            at=event.created_at,
            admin_url=site + reverse("admin:requests_engine_datarightsrequest_change", args=[request.pk]),
            what=_describe(event),
        )
        if event.kind in REFUSALS:
            summary.refusals.append(item)
        elif event.kind in QUESTIONS:
            summary.questions.append(item)
        else:
            summary.files.append(item)
    return summaries


def _counts(summary: Summary) -> str:
    parts = []
    for items, one, many in (
        (summary.refusals, "refusal", "refusals"),
        (summary.questions, "request for information", "requests for information"),
        (summary.files, "delivery of files", "deliveries of files"),
    ):
        if items:
            parts.append(f"{len(items)} {one if len(items) == 1 else many}")
    return ", ".join(parts)


def coordinator_summaries_send(*, day: datetime.date | None = None) -> int:
    """Queue each community's summary of `day` (yesterday by default); returns how many were queued."""
    day = day or timezone.localdate() - datetime.timedelta(days=1)
    tag_day = day.isoformat()
    sent = 0
    for community_id, summary in _summaries(day).items():
        tag = f"{community_id}:{tag_day}"
        with transaction.atomic():
            # The community's row lock serialises overlapping runs, so the check below cannot race.
            community = Community.objects.select_for_update().get(pk=community_id)
            if OutboundMessage.objects.filter(purpose=PURPOSE, subject_id=tag).exists():
                continue
            to, cc = coordinator_addresses(community)
            outbox.queue_email(
                to=[to],
                cc=cc,
                subject=f"{community.name}, {day:%-d %B %Y}: {_counts(summary)}",
                body_text=render_to_string(
                    "requests_engine/email/coordinator_summary.txt",
                    {
                        "community": community,
                        "day": day,
                        "summary": summary,
                        "admin": settings.SITE_URL.rstrip("/")
                        + reverse("admin:requests_engine_datarightsrequest_changelist"),
                    },
                ),
                subject_type="community",
                subject_id=tag,
                purpose=PURPOSE,
            )
        sent += 1
    return sent
