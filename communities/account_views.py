"""Where allauth's own pages leave a person stuck: an email confirmation link that was already used, or has
expired, says which, and offers the way forward (sign in, or a new link sent to the same address)."""

from __future__ import annotations

from typing import Any

from allauth.account import app_settings
from allauth.account.internal.flows.email_verification import send_verification_email_to_address
from allauth.account.models import EmailAddress
from allauth.account.views import ConfirmEmailView as AllauthConfirmEmailView
from django.contrib import messages
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST


def _address_of(key: str) -> EmailAddress | None:
    """The address a confirmation link was sent to, whether or not it is still valid: the key is signed by
    us (allauth's HMAC confirmation), so only someone who received the link can ask about it."""
    try:
        pk = signing.loads(key, salt=app_settings.SALT)  # no max_age: an expired link still names its address
    except signing.BadSignature:
        return None
    return EmailAddress.objects.filter(pk=pk).select_related("user").first()


class ConfirmEmailView(AllauthConfirmEmailView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if not context.get("confirmation"):
            address = _address_of(self.kwargs["key"])
            if address is None:
                context["link_state"] = "unknown"
            elif address.verified:
                context["link_state"] = "used"
            else:
                context["link_state"] = "expired"
                context["link_key"] = self.kwargs["key"]
                context["expiry_days"] = app_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS
        return context


@require_POST
def confirmation_new_link(request: HttpRequest, key: str) -> HttpResponse:
    """Send a fresh confirmation link to the address an expired one went to (allauth rate-limits it)."""
    address = _address_of(key)
    if address is None or address.verified:
        messages.info(request, "That address is already confirmed: sign in with it.")
        return redirect("account_login")
    send_verification_email_to_address(request, address)
    messages.success(request, f"We have sent a new confirmation link to {address.email}.")
    return redirect("account_email_verification_sent")
