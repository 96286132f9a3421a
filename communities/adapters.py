from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site

from core import outbox


class AccountAdapter(DefaultAccountAdapter):
    """Account emails (verification, password reset) go through the same outbox as everything else, so
    each one is a row with its status and Message-ID, retried if the mail server is down."""

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:

        request = allauth_context.request
        message = self.render_mail(
            template_prefix,
            email,
            {"request": request, "email": email, "current_site": get_current_site(request), **context},
        )
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
