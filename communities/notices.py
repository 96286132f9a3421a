"""What a member is told about their requests. Every step that concerns them becomes a Notice, their record
of it on /me/; it is emailed at once, or gathered into one email a day, as the member chose.

`notify_member` writes the notice in the caller's transaction and, for a member who wants each step, queues
its email through the outbox, so a rolled-back action tells nobody. `digests_send` is the daily job: for
each member with notices not yet emailed it claims them (rows another run holds are skipped, then a
conditional UPDATE) and queues one email listing them in the same transaction, so overlapping or repeated
runs never send a notice twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from django.conf import settings
from django.db import models, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core import outbox

from .models import Member, Notice

MAX_SUBJECT = cast(int, cast(models.Field, Notice._meta.get_field("subject")).max_length)


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path if path else ""


def _settings_url(member: Member) -> str:
    return _site(reverse("member-notifications", args=[member.reference]))


def notify_member(
    member: Member,
    subject: str,
    body: str,
    link: str = "",
    *,
    purpose: str = "member.notice",
    once_since: datetime | None = None,
) -> Notice | None:
    """Tell a member about a step: always a Notice; for a member who chose "each", its email too.

    `link` is a path on this site ("/me/requests/R1/"). `once_since` makes a repeated call harmless: if the
    member already has a notice with this subject and link written since then, nothing new is written and
    None is returned. `purpose` tags the outbox row of the email sent at once.
    """
    subject = " ".join(subject.split())  # one line, as an email subject must be
    if not subject:
        raise ValueError("A notice needs a subject.")
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1] + "…"
    if link and (not link.startswith("/") or link.startswith("//")):
        raise ValueError(f"A notice links to a path on this site, not {link!r}.")
    with transaction.atomic():
        if (
            once_since is not None
            and Notice.objects.filter(
                member=member, subject=subject, link=link, created_at__gte=once_since
            ).exists()
        ):
            return None
        notice = Notice.objects.create(member=member, subject=subject, body=body.strip(), link=link)
        address = member.user.email
        # Without an address (a closed account) the notice stays on record, unsent; the digest skips it.
        if member.notifications == Member.Notifications.EACH and address:
            community = member.community
            outbox.queue_email(
                to=[address],
                reply_to=[community.contact_email],
                subject=subject,
                body_text=render_to_string(
                    "communities/email/notice.txt",
                    {
                        "member": member,
                        "community": community,
                        "notice": notice,
                        "url": _site(link),
                        "settings_url": _settings_url(member),
                    },
                ),
                subject_type="notice",
                subject_id=str(notice.pk),
                purpose=purpose,
            )
            notice.emailed_at = timezone.now()
            Notice.objects.filter(pk=notice.pk).update(emailed_at=notice.emailed_at)
    return notice


def notifications_choose(*, member: Member, notifications: str) -> Member:
    """The member's choice: an email at each step, or one a day. Notices already waiting for the digest
    still go out with the next one."""
    if notifications not in Member.Notifications.values:
        choices = ", ".join(Member.Notifications.values)
        raise ValueError(f"Unknown choice {notifications!r}: use one of {choices}.")
    Member.objects.filter(pk=member.pk).update(notifications=notifications)
    member.notifications = notifications
    return member


def digests_send() -> int:
    """The daily digest: one email per member listing every notice not yet emailed (those of members who
    chose a digest, and any left over when a member switched back to "each"). Returns how many were queued;
    a second run straight after queues none."""
    member_ids = (
        Notice.objects.filter(emailed_at__isnull=True)
        .exclude(member__user__email="")
        .order_by("member_id")
        .values_list("member_id", flat=True)
        .distinct()
    )
    return sum(1 for member_id in list(member_ids) if _digest_send(member_id))


def _digest_send(member_id: int) -> bool:
    now = timezone.now()
    with transaction.atomic():
        member = Member.objects.select_related("user", "community").get(pk=member_id)
        if not member.user.email:
            return False
        # PostgreSQL: rows a concurrent run has locked are skipped, so it alone sends them.
        pending = list(
            Notice.objects.filter(member_id=member_id, emailed_at__isnull=True)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        if not pending:
            return False
        # The claim: a notice another run marked meanwhile is no longer null and stays out of this one.
        if not Notice.objects.filter(pk__in=pending, emailed_at__isnull=True).update(emailed_at=now):
            return False
        notices = list(Notice.objects.filter(pk__in=pending, emailed_at=now).order_by("created_at", "pk"))
        community = member.community
        updates = f"{len(notices)} update{'s' if len(notices) != 1 else ''}"
        outbox.queue_email(
            to=[member.user.email],
            reply_to=[community.contact_email],
            subject=f"{community.name}: {updates} on your requests",
            body_text=render_to_string(
                "communities/email/digest.txt",
                {
                    "member": member,
                    "community": community,
                    "items": [{"notice": n, "url": _site(n.link)} for n in notices],
                    "me_url": _site(reverse("me")),
                    "settings_url": _settings_url(member),
                },
            ),
            subject_type="member",
            subject_id=f"{member.pk}:{timezone.localdate(now).isoformat()}",
            purpose="member.digest",
        )
    return True
