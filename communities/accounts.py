"""Which community an account page or account email speaks for: the one rule the allauth adapter and the
account pages' context share.

An installation may host several communities; a person signing up, signing in or resetting a password
should see and hear from the community they came for, not the host. In order: the only community there is;
the community the person is a member of; the community whose join link brought them (kept in the session,
or the `next` of the sign-up and sign-in links on a join page); else none, and the installation's name and
address from settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from .models import Community, Member

# Set by the join page: the community whose link the person followed before signing up or in.
SESSION_JOINING = "joining_community"
_JOIN_PATH = re.compile(r"^/join/(?P<slug>[-\w]+)/")


@dataclass(frozen=True)
class Sender:
    """The name and address an account page or email carries, and the From it is sent from."""

    name: str
    contact_email: str
    community: Community | None

    @property
    def from_email(self) -> str:
        # headerregistry quotes a name with specials ("Smith, Jones & Co") and keeps non-ASCII for Django
        # to encode, so the outbox's one-address check and the SMTP envelope both read it.
        return str(Address(display_name=self.name, addr_spec=self.contact_email))


def _join_slug(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    for source in (getattr(request, "POST", {}), getattr(request, "GET", {})):
        found = _JOIN_PATH.match(urlsplit(source.get("next") or "").path) if source else None
        if found:
            return found["slug"]
    session = getattr(request, "session", None)
    return str(session.get(SESSION_JOINING, "")) if session is not None else ""


def _user_for(email: str) -> Any:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    address = EmailAddress.objects.filter(email__iexact=email).select_related("user").first()
    if address is not None:
        return address.user
    return get_user_model().objects.filter(email__iexact=email).first()


def community_for(request: HttpRequest | None, *, user: Any = None, email: str = "") -> Community | None:
    """The community an account page or email is for (see the module's docstring), or None."""
    first_two = list(Community.objects.order_by("pk")[:2])
    if len(first_two) < 2:
        return first_two[0] if first_two else None
    if user is None and request is not None and getattr(request, "user", None) is not None:
        user = request.user if request.user.is_authenticated else None
    if user is None and email:
        user = _user_for(email)
    if user is not None and user.pk is not None:
        member = (
            Member.objects.filter(user=user, left_at__isnull=True)
            .select_related("community")
            .order_by("-joined_at", "-pk")
            .first()
        )
        if member is not None:
            return member.community
    slug = _join_slug(request)
    return Community.objects.filter(slug=slug).first() if slug else None


def sender_for(community: Community | None) -> Sender:
    """The community's name and contact address, or the installation's (SITE_NAME, DEFAULT_FROM_EMAIL)."""
    if community is not None and community.contact_email:
        return Sender(name=community.name, contact_email=community.contact_email, community=community)
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    contact = getattr(settings, "SITE_CONTACT_EMAIL", "") or address
    return Sender(name=settings.SITE_NAME or name, contact_email=contact, community=None)


def account_community(request: HttpRequest) -> dict[str, Any]:
    """Context processor: allauth's pages (sign up, sign in, password reset, email verification, two-step
    sign-in) are framed with the community's name, colour and contact address; other pages pass their own
    `community` and are left alone."""
    match = getattr(request, "resolver_match", None)
    url_name = (getattr(match, "url_name", "") or "") if match else ""
    if not url_name.startswith(("account_", "mfa_")):
        return {}
    return {"community": community_for(request)}
