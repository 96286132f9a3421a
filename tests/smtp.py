"""A real SMTP server on loopback for tests (aiosmtpd): what the service sends, as a mail server sees it."""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy


@dataclass
class Mailbox:
    """What the SMTP server received; refuses every recipient when `refuse` is set."""

    received: list = field(default_factory=list)
    refuse: str = ""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(e.original_content, policy=default_policy) for e in self.received]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def use_smtp(settings, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
