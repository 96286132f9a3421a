"""Reminders and overdue notices, sent by the daily deadline job (RULES.md: reminders use the earliest
plausible deadline, escalation the latest). One email per controller per day and kind, one notice per
overdue request to its member (communities.notices), one summary per community to its coordinators. A
second run sends nothing new: outbox rows carry a tag, and a member's notice is looked up since its event."""

from __future__ import annotations

import datetime
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.notices import notify_member
from core import outbox
from core.models import OutboundMessage
from requests_engine.deadlines import earliest_plausible_due_date
from requests_engine.models import CLOCK_STATES, DataRightsRequest, RequestEvent

REMIND_DAYS_BEFORE = 7


def _already(purpose: str, tag: str) -> bool:
    return OutboundMessage.objects.filter(purpose=purpose, subject_id=tag).exists()


def deadline_reminders_send(*, today: datetime.date | None = None) -> int:
    """Remind each controller of its requests due (on the earliest reading) in 7 days and today."""
    today = today or timezone.localdate()
    # The earliest reading is at most a few days before ours: narrow by our due date in SQL, then compute.
    window = (today - timedelta(days=1), today + timedelta(days=REMIND_DAYS_BEFORE + 6))
    candidates = (
        DataRightsRequest.objects.filter(state__in=CLOCK_STATES, clock_paused=False, due_on__range=window)
        .select_related("controller", "member__community")
        .only(
            "reference",
            "right",
            "clock_start_on",
            "extension_months",
            "paused_days",
            "due_on",
            "controller__name",
            "controller__email",
            "controller__jurisdiction",
            "member__community__name",
            "member__community__contact_email",
        )
    )
    due: dict[tuple[int, str], list[DataRightsRequest]] = defaultdict(list)
    for request in candidates.iterator(chunk_size=2000):
        earliest = earliest_plausible_due_date(
            request.clock_start_on,
            jurisdiction=request.controller.jurisdiction,
            extension_months=request.extension_months,
            paused_days=request.paused_days,
        )
        # One deadline statement (RULES.md): we remind on the earliest plausible date and say so beside the
        # date the engine keeps, which is what escalation waits for.
        request.earliest_due_on = earliest
        if earliest == today + timedelta(days=REMIND_DAYS_BEFORE):
            due[(request.controller_id, "week")].append(request)
        elif earliest == today:
            due[(request.controller_id, "today")].append(request)
    sent = 0
    for (controller_id, kind), requests in due.items():
        controller = requests[0].controller
        tag = f"{controller_id}:{today.isoformat()}:{kind}"
        if not controller.email or _already("request.deadline_reminder", tag):
            continue
        with transaction.atomic():
            outbox.queue_email(
                to=[controller.email],
                reply_to=[requests[0].member.community.contact_email],
                subject=(
                    f"Reminder: {len(requests)} data rights request(s) due "
                    f"{'today' if kind == 'today' else 'in 7 days'}"
                ),
                body_text=render_to_string(
                    "requests_engine/email/deadline_reminder.txt",
                    {
                        "controller": controller,
                        "requests": requests,
                        "kind": kind,
                        "today": today,
                        "portal": settings.SITE_URL.rstrip("/") + "/respond/",
                    },
                ),
                subject_type="controller",
                subject_id=tag,
                purpose="request.deadline_reminder",
            )
        sent += 1
    return sent


def overdue_notices_send(*, since: datetime.datetime | None = None) -> int:
    """Tell each member about each of their requests that went overdue (a notice: emailed at once or in
    their digest), and each community's coordinators once a day about all of theirs."""
    since = since or timezone.now() - timedelta(days=2)
    events = RequestEvent.objects.filter(kind="request.overdue", created_at__gte=since).select_related(
        "request__member__user", "request__member__community", "request__controller"
    )
    by_community: dict[int, list[DataRightsRequest]] = defaultdict(list)
    sent = 0
    for event in events.iterator(chunk_size=2000):
        request = event.request
        if request is None:  # "request.overdue" events always name their request
            continue
        by_community[request.member.community_id].append(request)
        # A notice written since the event is this event's: a second run writes none.
        told = notify_member(
            request.member,
            f"{request.controller.name} has not answered in time",
            render_to_string("requests_engine/email/overdue_member.txt", {"request": request}),
            reverse("request-detail", args=[request.reference]),
            purpose="request.overdue_notice",
            once_since=event.created_at,
        )
        sent += told is not None
    today = timezone.localdate().isoformat()
    for community_id, requests in by_community.items():
        community = requests[0].member.community
        tag = f"{community_id}:{today}"
        if _already("community.overdue_summary", tag):
            continue
        outbox.queue_email(
            to=[community.contact_email],
            subject=f"{len(requests)} request(s) overdue",
            body_text=render_to_string(
                "requests_engine/email/overdue_coordinators.txt",
                {
                    "community": community,
                    "requests": requests,
                    "admin": settings.SITE_URL.rstrip("/")
                    + "/admin/requests_engine/datarightsrequest/?state__exact=overdue",
                },
            ),
            subject_type="community",
            subject_id=tag,
            purpose="community.overdue_summary",
        )
        sent += 1
    return sent
