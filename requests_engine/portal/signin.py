"""Password-less sign-in for controller contacts: a single-use link, valid for a short time, emailed to
the contact's address. Only the token's hash is stored; the link signs in after a POST from its confirm
page (mail scanners open links) and fails closed when expired, reused, forged, superseded by a newer link
or the contact revoked.

Asking for a link answers the same, in the same time, for known and unknown addresses: the page only
queues a task, which looks the address up and sends (or not). Asking is rate-limited per client address
(a 429, which says nothing about the address) and per address asked for (silently: the same page, no
email). A portal session ends after PORTAL_IDLE_MINUTES without a request, and at once when the contact
is deactivated."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from allauth.core import ratelimit
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
SEEN_KEY = "portal_seen_at"  # when the session last made a request (epoch seconds)
# ACCOUNT_RATE_LIMITS in settings.
RATE_PER_CLIENT = "portal_sign_in_per_client"
RATE_PER_ADDRESS = "portal_sign_in_per_address"


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


def idle_limit() -> timedelta:
    return timedelta(minutes=getattr(settings, "PORTAL_IDLE_MINUTES", 30))


def ask_for_sign_in_link(request, *, email: str) -> bool:
    """A sign-in link was asked for on the portal's page. False when the client address has asked too
    often (the caller answers 429); True otherwise, whether or not a link will be sent."""
    if not ratelimit.consume(request, action=RATE_PER_CLIENT):
        return False
    if ratelimit.consume(request, action=RATE_PER_ADDRESS, key=email.strip().lower()):
        from requests_engine import tasks  # the job's task, queued once the page's transaction commits

        address = email.strip()
        transaction.on_commit(lambda: tasks.send_portal_sign_in_link.delay(address))
    return True


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
            # Only the newest link works: one forwarded or left in an old email no longer signs in.
            PortalSignInLink.objects.filter(
                contact=contact, used_at__isnull=True, expires_at__gt=timezone.now()
            ).update(expires_at=timezone.now())
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


def start_session(request, contact: ControllerContact) -> None:
    request.session.cycle_key()
    request.session[SESSION_KEY] = contact.pk
    request.session[SEEN_KEY] = timezone.now().timestamp()


def end_session(request) -> None:
    request.session.pop(SESSION_KEY, None)
    request.session.pop(SEEN_KEY, None)


def current_contact(request) -> ControllerContact | None:
    """The signed-in contact, while the session is in use and the contact active; otherwise the session
    is ended (idle for PORTAL_IDLE_MINUTES, or the contact deactivated) and None."""
    contact_id = request.session.get(SESSION_KEY)
    if not contact_id:
        return None
    now = timezone.now().timestamp()
    seen = request.session.get(SEEN_KEY)
    contact = (
        ControllerContact.objects.filter(pk=contact_id, is_active=True).select_related("controller").first()
    )
    if contact is None or (seen is not None and now - seen > idle_limit().total_seconds()):
        end_session(request)
        return None
    if seen is None or now - seen > 60:  # to the minute: no session write on every page
        request.session[SEEN_KEY] = now
    return contact
