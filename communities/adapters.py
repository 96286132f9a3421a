from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.utils.encoding import force_str

from core import outbox

from .accounts import Sender, community_for, sender_for


@dataclass(frozen=True)
class _Site:
    """What allauth's own templates call `current_site`: the community's name, the service's address."""

    name: str
    domain: str


class AccountAdapter(DefaultAccountAdapter):
    """Account emails (verification, password reset, notices of changes, two-step sign-in) name the
    community the person belongs to or came to join, with its contact address, and are sent from that
    address (communities/accounts.py decides which). They go through the same outbox as everything else,
    so each one is a row with its status and Message-ID, retried if the mail server is down."""

    _current_sender: Sender | None = None

    def _sender(self, *, email: str = "", user: Any = None) -> Sender:
        return sender_for(community_for(allauth_context.request, user=user, email=email))

    def format_email_subject(self, subject: str) -> str:
        # render_mail calls this without the recipient; send_mail has already put the sender on the adapter.
        sender = self._current_sender or self._sender()
        return f"{sender.name}: {force_str(subject)}"

    def get_from_email(self) -> str:
        sender = self._current_sender or self._sender()
        return sender.from_email

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        request = allauth_context.request
        sender = self._sender(email=email, user=context.get("user"))
        site_url = settings.SITE_URL.rstrip("/")
        self._current_sender = sender
        try:
            message = self.render_mail(
                template_prefix,
                email,
                {
                    "request": request,
                    "email": email,
                    "current_site": _Site(name=sender.name, domain=urlsplit(site_url).netloc or site_url),
                    "community": sender.community,
                    "community_name": sender.name,
                    "community_contact": sender.contact_email,
                    "site_url": site_url,
                    **context,
                },
            )
        finally:
            self._current_sender = None
        html = next((body for body, kind in getattr(message, "alternatives", []) if kind == "text/html"), "")
        text = message.body if message.content_subtype == "plain" else ""
        outbox.queue_email(
            to=list(message.to),
            subject=message.subject,
            body_text=text or "",
            body_html=html or (message.body if message.content_subtype == "html" else ""),
            from_email=message.from_email,
            subject_type="account",
            subject_id=email,
            purpose=f"account.{template_prefix.rsplit('/', 1)[-1]}",
        )
