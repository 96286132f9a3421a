"""Checking the email addresses members give controllers: a link sent to each address proves the member
can read mail there. An address never checked is "stated by the member", and every document says so.

The link is signed (no table of tokens): it names the member and the address, so it checks that address
for every controller the member gave it for, and stops working once the address is removed or changed.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core import outbox

from .models import Identifier, Member

LINK_VALID_FOR = timedelta(days=7)
# A member who saves their identifiers twice in a row is not sent a second link for the same address.
RESEND_AFTER = timedelta(minutes=10)
_SALT = "communities.identifier-check"


class CheckLinkError(Exception):
    """The link cannot check an address; the message says why in plain words."""


def _normal(address: str) -> str:
    return address.strip().casefold()


def check_token(*, member: Member, address: str) -> str:
    return signing.dumps({"m": member.pk, "a": _normal(address)}, salt=_SALT, compress=True)


def check_link(*, member: Member, address: str) -> str:
    token = check_token(member=member, address=address)
    return settings.SITE_URL.rstrip("/") + reverse("identifier-check", args=[token])


def _unchecked_addresses(member: Member) -> list[str]:
    seen: dict[str, str] = {}
    for identifier in member.identifiers.filter(kind=Identifier.Kind.EMAIL, verified_at__isnull=True):
        seen.setdefault(_normal(identifier.value), identifier.value)
    return list(seen.values())


def check_links_send(*, member_id: int, force: bool = False) -> int:
    """Email a check link to each of the member's email identifiers not yet verified; returns how many."""
    member = Member.objects.select_related("community", "user").get(pk=member_id)
    now = timezone.now()
    sent = 0
    for address in _unchecked_addresses(member):
        same = member.identifiers.filter(kind=Identifier.Kind.EMAIL, value__iexact=address)
        with transaction.atomic():
            if not force and same.filter(verification_sent_at__gt=now - RESEND_AFTER).exists():
                continue
            same.update(verification_sent_at=now)
            outbox.queue_email(
                to=[address],
                subject=f"Check this address for {member.community.name}",
                body_text=render_to_string(
                    "communities/email/identifier_check.txt",
                    {
                        "member": member,
                        "community": member.community,
                        "address": address,
                        "link": check_link(member=member, address=address),
                        "days": LINK_VALID_FOR.days,
                    },
                ),
                subject_type="member",
                subject_id=member.reference,
                purpose="identifier_check",
            )
        sent += 1
    return sent


def check_link_read(token: str) -> tuple[Member, str, list[Identifier]]:
    """The member, address and identifiers a link checks; raises CheckLinkError if it cannot."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=LINK_VALID_FOR)
    except signing.SignatureExpired:
        raise CheckLinkError(
            "This link has expired. Ask for a new one from the page where you give your identifiers."
        ) from None
    except signing.BadSignature:
        raise CheckLinkError("This link is not valid. Copy the whole link from the email.") from None
    member = Member.objects.select_related("community").filter(pk=data.get("m")).first()
    identifiers = (
        list(member.identifiers.filter(kind=Identifier.Kind.EMAIL, value__iexact=data.get("a", "")))
        if member
        else []
    )
    if not identifiers:
        raise CheckLinkError(
            "This address is no longer one of your identifiers, so there is nothing to check."
        )
    return member, identifiers[0].value, identifiers  # type: ignore[return-value]


def check_link_use(token: str) -> tuple[Member, str, bool]:
    """Mark the address checked (once: a second use changes nothing). Returns (member, address, newly)."""
    member, address, identifiers = check_link_read(token)
    with transaction.atomic():
        updated = Identifier.objects.filter(
            pk__in=[i.pk for i in identifiers], verified_at__isnull=True
        ).update(verified_at=timezone.now(), verified_by=Identifier.VerifiedBy.LINK)
    return member, address, bool(updated)
