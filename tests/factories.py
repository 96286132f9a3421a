"""Small factories for the records tests need; plain functions keep what each test builds visible."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from communities.models import Mandate, Member, Right
from requests_engine.models import DataRightsRequest


def make_member(community, name="Ada Lovelace", email=None):
    email = email or f"{name.split()[0].lower()}@community.test"
    user = get_user_model().objects.create_user(email, email, "pw")
    return Member.objects.create(user=user, community=community, full_name=name)


def make_mandate(member, *, rights=(Right.ACCESS,), all_controllers=True, controllers=(), days=365):
    today = timezone.localdate()
    text = f"{member.full_name} authorises {member.community.name}."
    mandate = Mandate.objects.create(
        member=member,
        rights=list(rights),
        all_controllers=all_controllers,
        purposes="Testing.",
        valid_from=today - timedelta(days=1),
        valid_until=today + timedelta(days=days),
        template_version="t1",
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        signed_name=member.full_name,
        signed_at=timezone.now(),
    )
    if controllers:
        mandate.controllers.set(controllers)
    return mandate


def make_request(member, controller, *, mandate=None, right=Right.ACCESS, reference=None):
    mandate = mandate or member.mandates.first() or make_mandate(member)
    return DataRightsRequest.objects.create(
        reference=reference or f"R-{member.pk}-{controller.pk}-{right}",
        member=member,
        mandate=mandate,
        controller=controller,
        right=right,
    )


def verified_user(email: str, password: str = "pw-correct-horse-7"):
    from allauth.account.models import EmailAddress

    user = get_user_model().objects.create_user(email, email, password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user
