"""Sessions, private pages and files that cannot be read.

Signed-in sessions end when left idle: a member or coordinator who walks away from a shared computer is
signed out after SESSION_IDLE_MINUTES without a request (0: no idle limit). The controller portal has its
own, shorter limit (portal/signin.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from core.crypto import CryptoError
from core.downloads import private
from core.operator import operator_alert

SEEN_KEY = "_last_seen_at"  # epoch seconds, written at most once a minute


class IdleSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = getattr(settings, "SESSION_IDLE_MINUTES", 0) * 60
        if limit and request.user.is_authenticated:
            now = timezone.now().timestamp()
            seen = request.session.get(SEEN_KEY)
            if seen is not None and now - seen > limit:
                logout(request)
                messages.info(request, "You were signed out because the page was left unused. Sign in again.")
            elif seen is None or now - seen > 60:
                request.session[SEEN_KEY] = now
        return self.get_response(request)


# Pages that show someone's personal data to whoever holds the link or the session.
PRIVATE_PREFIXES = (
    "/me/",
    "/respond/",
    "/admin/",
    "/accounts/",
    "/api/v1/requests",
    "/verify/",
    "/identifiers/",
)


class PrivatePagesMiddleware:
    """Personal pages, PDFs and downloads are sent with Cache-Control: no-store, so no shared or browser
    cache keeps a copy after the session ends; public pages (the register, the home page) stay cacheable."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(PRIVATE_PREFIXES)
            or response.has_header("Content-Disposition")
            or getattr(request, "user", None) is not None
            and request.user.is_authenticated
        ):
            private(response)
        return response


class UnreadableFileMiddleware:
    """A stored file that fails to decrypt (a key removed too soon, a damaged file) gives whoever asked a
    page saying so, never a 500, and tells the operator, who can put the keys right. Views with more to say
    (the member's returned files) catch it themselves."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, CryptoError):
            return None
        operator_alert(
            subject="A stored file could not be decrypted",
            body=f"{request.method} {request.path}: {exception} Check FIELD_ENCRYPTION_KEYS (a key removed "
            "before `rotate_keys` ran?).",
            purpose="operator.file_unreadable",
        )
        return private(render(request, "file_unreadable.html", status=503))
