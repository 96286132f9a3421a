"""The client's IP address, as every part of the service reads it: rate limits (allauth's and ours) and
the evidence recorded with a signature. Behind a reverse proxy REMOTE_ADDR is the proxy's; the trusted
proxy count (ALLAUTH_TRUSTED_PROXY_COUNT, from TRUSTED_PROXY_COUNT) says which X-Forwarded-For entry is
the client's. allauth's adapter does the reading, so its rate limits and our evidence agree."""

from __future__ import annotations

from allauth.account.adapter import get_adapter
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, or None when it cannot be known (a header that does not match the proxy
    count is not trusted: the evidence then says "unknown" rather than a wrong address)."""
    try:
        return get_adapter(request).get_client_ip(request)
    except (PermissionDenied, ImproperlyConfigured):
        return None
