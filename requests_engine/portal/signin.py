"""Password-less sign-in for controller contacts: a single-use link, valid for a short time, emailed to
the contact's address. Only the token's hash is stored; the link signs in after a POST from its confirm
page (mail scanners open links) and fails closed when expired, reused, forged or the contact revoked."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core import outbox
from core.references import new_token
from requests_engine.models import (
    Controller,
    ControllerContact,
    DataRightsRequest,
    PortalSignInLink,
    RequestState,
)

# What a controller cannot see yet (answers.HIDDEN_STATES): a directory address signs in only once it has
# requests to answer.
HIDDEN = [RequestState.DRAFT, RequestState.QUEUED]

SESSION_KEY = "portal_contact_id"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_lifetime() -> timedelta:
    return timedelta(minutes=getattr(settings, "PORTAL_LINK_MINUTES", 30))


def _directory_contacts(email: str) -> None:
    """The address our letters went to is the controller's directory address: it may sign in like any
    contact a coordinator added, once that controller has requests from us. A contact row is made for it
    the first time (a coordinator may deactivate it like any other)."""
    sent_to = Controller.objects.filter(email__iexact=email).filter(
        Exists(DataRightsRequest.objects.filter(controller=OuterRef("pk")).exclude(state__in=HIDDEN))
    )
    for controller in sent_to.exclude(contacts__email__iexact=email):
        ControllerContact.objects.get_or_create(
            controller=controller, email=controller.email, defaults={"name": "Address in the directory"}
        )


def send_sign_in_link(*, email: str) -> bool:
    """Email a link to every active contact with this address, including a controller's directory address
    our letters went to. Says nothing about whether one exists (the caller shows the same message either
    way; an unknown address gets no email). Returns whether anything was sent."""
    email = email.strip()
    _directory_contacts(email)
    contacts = list(
        ControllerContact.objects.filter(email__iexact=email, is_active=True).select_related("controller")
    )
    for contact in contacts:
        token = new_token(32)
        with transaction.atomic():
            PortalSignInLink.objects.create(
                contact=contact, token_sha256=_hash(token), expires_at=timezone.now() + link_lifetime()
            )
            url = settings.SITE_URL.rstrip("/") + reverse("portal-sign-in", args=[token])
            outbox.queue_email(
                to=[contact.email],
                subject=f"Sign in to answer data rights requests for {contact.controller.name}",
                body_text=render_to_string(
                    "requests_engine/portal/email_sign_in.txt",
                    {"contact": contact, "url": url, "minutes": link_lifetime().seconds // 60},
                ),
                subject_type="contact",
                subject_id=str(contact.pk),
                purpose="portal.sign_in_link",
            )
    return bool(contacts)


def link_is_usable(token: str) -> bool:
    return PortalSignInLink.objects.filter(
        token_sha256=_hash(token),
        used_at__isnull=True,
        expires_at__gt=timezone.now(),
        contact__is_active=True,
    ).exists()


def redeem(token: str) -> ControllerContact | None:
    """Use the link once: the conditional UPDATE lets exactly one of two racing clicks win."""
    now = timezone.now()
    with transaction.atomic():
        claimed = PortalSignInLink.objects.filter(
            token_sha256=_hash(token), used_at__isnull=True, expires_at__gt=now, contact__is_active=True
        ).update(used_at=now)
        if not claimed:
            return None
        link = PortalSignInLink.objects.select_related("contact").get(token_sha256=_hash(token))
        ControllerContact.objects.filter(pk=link.contact_id).update(last_seen_at=now)
        return link.contact


def current_contact(request) -> ControllerContact | None:
    contact_id = request.session.get(SESSION_KEY)
    if not contact_id:
        return None
    return (
        ControllerContact.objects.filter(pk=contact_id, is_active=True).select_related("controller").first()
    )
