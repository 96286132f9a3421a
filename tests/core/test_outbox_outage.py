"""An SMTP outage in the middle of a group costs at most one duplicate: the message the server took as the
connection dropped (its reply lost) is sent again; every later message fails cleanly, waits and goes once.
A real SMTP server on loopback (aiosmtpd) goes down and comes back."""

from __future__ import annotations

from collections import Counter
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller as SMTPController

from core import outbox
from core.models import OutboundMessage
from tests.smtp import free_port, use_smtp

MESSAGES = 20
DROP_AT = 8  # the server takes this message, then the connection drops before it answers


class FailingServer:
    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.down = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.down:
            return "421 4.3.2 Service not available, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        headers = BytesHeaderParser(policy=default_policy).parsebytes(envelope.original_content)
        self.message_ids.append(headers["Message-ID"])
        if len(self.message_ids) == DROP_AT:
            self.down = True  # the outage begins: this message was taken, its reply never arrives
            server.transport.close()
        return "250 Message accepted for delivery"


@pytest.fixture
def failing_smtp(settings):
    handler = FailingServer()
    server = SMTPController(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    use_smtp(settings, server.port)
    yield handler
    server.stop()


@pytest.mark.django_db
def test_an_smtp_outage_mid_group_costs_at_most_one_duplicate(
    settings, failing_smtp, django_capture_on_commit_callbacks
):
    settings.OUTBOX_RETRY_DELAY_SECONDS = 0  # due again at once once the server is back
    with django_capture_on_commit_callbacks():  # queued, not sent: the test sends the group itself
        ids = [
            outbox.queue_email(
                to=[f"dpo{n}@acme.test"], subject=f"Request {n}", body_text="Please answer.", purpose="test"
            ).pk
            for n in range(MESSAGES)
        ]
    first = outbox.send_messages(ids)
    assert len(first) == DROP_AT - 1  # sent and recorded before the outage
    waiting = OutboundMessage.objects.filter(pk__in=ids).exclude(status="sent")
    assert set(waiting.values_list("status", flat=True)) == {"queued"}  # none lost, none "sending"

    failing_smtp.down = False  # the server is back
    outbox.send_messages(ids)
    assert not OutboundMessage.objects.filter(pk__in=ids).exclude(status="sent").exists()
    counted = Counter(failing_smtp.message_ids)
    assert set(counted) == set(
        OutboundMessage.objects.filter(pk__in=ids).values_list("message_id", flat=True)
    )
    duplicates = [message_id for message_id, n in counted.items() if n > 1]
    # Exactly the one message taken as the connection dropped arrives twice (same Message-ID): the bound.
    assert len(duplicates) == 1 and sum(counted.values()) == MESSAGES + len(duplicates)
