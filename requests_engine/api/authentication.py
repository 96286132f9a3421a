"""Who is calling the controller API: a controller contact holding a token, and how often it may call.

The token travels as `Authorization: Bearer <token>` (or `Token <token>`). Only its SHA-256 is stored, so
the lookup is by digest; the digests are then compared in constant time. A revoked contact, an unknown
token or a malformed header is a 401 with a JSON body, never a hint about which of these it was.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling
from rest_framework.settings import api_settings

from requests_engine.directory.contacts import token_digest
from requests_engine.models import ControllerContact

KEYWORDS = ("bearer", "token")
# last_seen_at is written at most this often per contact, so reads stay reads.
SEEN_RESOLUTION = timedelta(minutes=5)
DEFAULT_RATE = "600/min"


class ControllerPrincipal:
    """What `request.user` is in the API: the contact, for a controller. Never a Django user, so nothing
    that checks staff or superuser flags can be fooled by it."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, contact: ControllerContact) -> None:
        self.contact = contact

    @property
    def pk(self) -> int:
        return self.contact.pk

    @property
    def controller_id(self) -> int:
        return self.contact.controller_id

    def __str__(self) -> str:
        return f"contact {self.contact.pk} of controller {self.contact.controller_id}"


class ControllerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in KEYWORDS:
            return None  # no credentials: the permission check answers 401
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        digest = token_digest(token)
        contact = ControllerContact.objects.filter(api_token_sha256=digest, is_active=True).first()
        if contact is None or not hmac.compare_digest(contact.api_token_sha256, digest):
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        self._note_seen(contact)
        return ControllerPrincipal(contact), contact

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _note_seen(contact: ControllerContact) -> None:
        now = timezone.now()
        if contact.last_seen_at is None or now - contact.last_seen_at > SEEN_RESOLUTION:
            ControllerContact.objects.filter(pk=contact.pk).update(last_seen_at=now)
            contact.last_seen_at = now


class ControllerRateThrottle(throttling.SimpleRateThrottle):
    """Requests per contact, at REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["controller"] (default 600/min).
    The rate is read when the throttle runs, not when the class is imported, so settings changes apply."""

    scope = "controller"

    def get_rate(self) -> str | None:
        rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope, DEFAULT_RATE)
        return None if rate is None else str(rate)

    def get_cache_key(self, request, view) -> str | None:
        user = request.user
        if not isinstance(user, ControllerPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.contact.pk}


class ControllerTokenScheme(OpenApiAuthenticationExtension):
    target_class = ControllerTokenAuthentication
    name = "controllerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A controller contact's API token, issued by a coordinator and shown once. "
            "`Authorization: Token <token>` is accepted too.",
        }
