"""Outbox tasks: they take ids, call one service and own only the retry policy."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=None,  # a message's attempts are bounded by the row (OUTBOX_MAX_ATTEMPTS), not by Celery
    # The database being briefly unreachable: try again soon; the sweeper is the backstop.
    autoretry_for=(OperationalError, InterfaceError),
    retry_kwargs={"max_retries": 8},
    retry_backoff=True,
    retry_backoff_max=600,
)
def send_outbound_message(self, message_id: int) -> bool:
    """Attempt one queued email; after a failed attempt, come back when the row's backoff has passed."""
    from core import outbox

    if outbox.send_message(message_id):
        return True
    due_in = outbox.retry_due_in(message_id)
    # Eager runs (the embedded default, tests) would retry at once and ignore the countdown: there the
    # sweeper picks the row up once it is due.
    if due_in is not None and not self.request.is_eager:
        raise self.retry(countdown=due_in)
    return False


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_kwargs={"max_retries": 8},
    retry_backoff=True,
    retry_backoff_max=600,
)
def send_outbound_messages(self, message_ids: list[int]) -> int:
    """Attempt a group of queued emails over one SMTP connection; any that failed and wait for another
    attempt come back one by one when their backoff has passed."""
    from core import outbox

    sent = set(outbox.send_messages(message_ids))
    if not self.request.is_eager:
        for message_id in set(message_ids) - sent:
            due_in = outbox.retry_due_in(message_id)
            if due_in is not None:
                send_outbound_message.apply_async((message_id,), countdown=due_in)
    return len(sent)


@shared_task
def sweep_outbox() -> int:
    """The periodic outbox sweep; idempotent, so overlapping runs are harmless."""
    from core import outbox

    minutes = getattr(settings, "OUTBOX_STUCK_AFTER_MINUTES", 15)
    return outbox.requeue_stuck(older_than=timedelta(minutes=minutes))
