"""Signed-in sessions end when left idle: a member or coordinator who walks away from a shared computer is
signed out after SESSION_IDLE_MINUTES without a request (0: no idle limit). The controller portal has its
own, shorter limit (portal/signin.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

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
