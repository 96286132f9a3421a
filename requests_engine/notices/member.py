"""What a member is told about the steps of their requests: a controller asked them something, extended
its time, answered, refused, or sent data. Each becomes a notice (communities.notices), emailed at once or
in the member's daily digest. Called inside the step's transaction, so a step that rolls back tells nobody.
"""

from __future__ import annotations

from itertools import groupby

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.models import Notice, Right
from communities.notices import notify_member
from requests_engine.deadlines import statutory_due_date
from requests_engine.models import Campaign, DataRightsRequest, InformationKind, ReceivedFile

# Steps whose event tells the member something; the overdue notice is sent by the daily reminders instead.
ANSWERS = {"request.fulfilled", "request.no_data_held", "request.partially_fulfilled", "request.refused"}
STEPS = {"request.info_requested", "request.extended", *ANSWERS}


def request_link(request: DataRightsRequest) -> str:
    return reverse("request-detail", args=[request.reference])


def _subject(request: DataRightsRequest, kind: str, files: list[ReceivedFile]) -> str:
    name = request.controller.name
    if kind == "request.info_requested":
        if request.info_kind == InformationKind.IDENTITY:
            return f"{name} asks you to confirm who you are"
        return f"{name} asks you to clarify your request"
    if kind == "request.extended":
        return f"{name} has extended the time to answer your request"
    if kind == "request.refused":
        return f"{name} refused your request"
    if kind == "request.no_data_held":
        return f"{name} says it holds no personal data about you"
    if kind == "request.partially_fulfilled":
        return f"{name} sent part of your data" if files else f"{name} answered part of your request"
    return f"{name} sent your data" if files else f"{name} answered your request"


def step_notice_send(request: DataRightsRequest, kind: str) -> Notice | None:
    """The notice for one step of a request, if the step concerns the member. An answer that comes with
    files names them, so the member gets one notice rather than two."""
    if kind not in STEPS:
        return None
    if kind == "request.info_requested" and request.info_kind == InformationKind.AUTHORITY:
        return None  # proof of the community's authority: the coordinators answer, not the member
    files = _unnotified_files(request) if kind in ANSWERS else []
    member = request.member
    body = render_to_string(
        "requests_engine/notices/step.txt",
        {"request": request, "kind": kind, "files": files, "community": member.community},
    )
    notice = notify_member(
        member, _subject(request, kind, files), body, request_link(request), purpose=f"notice.{kind}"
    )
    _mark_notified(files)
    return notice


def files_notice_send(request: DataRightsRequest) -> Notice | None:
    """Files that arrived without an answer the member was told of (a later upload, a reply by email)."""
    files = _unnotified_files(request)
    if not files:
        return None
    member = request.member
    body = render_to_string(
        "requests_engine/email/files_received.txt",
        {"request": request, "files": files, "community": member.community},
    )
    notice = notify_member(
        member,
        f"{request.controller.name} sent your data",
        body,
        request_link(request),
        purpose="request.files_ready",
    )
    _mark_notified(files)
    return notice


def _unnotified_files(request: DataRightsRequest) -> list[ReceivedFile]:
    return list(
        ReceivedFile.objects.filter(
            request=request, member_notified_at__isnull=True, deleted_at__isnull=True
        ).order_by("received_at", "pk")
    )


def _mark_notified(files: list[ReceivedFile]) -> None:
    if files:
        ReceivedFile.objects.filter(pk__in=[f.pk for f in files], member_notified_at__isnull=True).update(
            member_notified_at=timezone.now()
        )


def campaign_launch_notices_send(*, campaign_id: int) -> int:
    """Tell each member a launched campaign included that the community is now acting in their name: the
    organisations and rights, the purpose, the campaign's note and when answers are due (about a month:
    Art 12(3) UK GDPR). Their digest choice applies. Sending twice tells nobody twice. Returns how many."""
    campaign = Campaign.objects.select_related("community", "purpose").get(pk=campaign_id)
    if campaign.launched_at is None:
        return 0
    # A request received today is due then; one received in a day or two a little later: "by about".
    expected = statutory_due_date(timezone.localdate())
    rows = (
        DataRightsRequest.objects.filter(campaign=campaign)
        .order_by("member_id", "controller__name", "right")
        .values_list("member_id", "controller__name", "right")
    )
    told = 0
    for member_id, group in groupby(rows.iterator(), key=lambda row: row[0]):
        lines = [f"{Right(right).label} with {name}" for _, name, right in group]
        member = campaign.community.members.get(pk=member_id)
        notice = notify_member(
            member,
            f"{campaign.community.name} is now acting for you: {campaign.name}",
            render_to_string(
                "requests_engine/email/campaign_launched.txt",
                {"campaign": campaign, "member": member, "lines": lines, "expected": expected},
            ),
            reverse("me"),
            purpose="campaign.launched",
            once_since=campaign.launched_at,
        )
        told += notice is not None
    return told
