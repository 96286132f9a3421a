"""The outbox against a real SMTP server on loopback (aiosmtpd): what is queued goes out once, after commit,
with the Message-ID stored on its row; failures are recorded and retried; stuck rows are picked up again."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from celery import shared_task
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from django.db import close_old_connections, connection, transaction
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from core import outbox
from core.models import OutboundAttachment, OutboundMessage
from core.outbox import OutboxError, queue_email, requeue_stuck, retry_failed, send_message
from core.tasks import send_outbound_message
from tests.smtp import free_port, use_smtp  # noqa: F401  (the mailbox fixture is in tests/conftest.py)

pytestmark = pytest.mark.django_db

Status = OutboundMessage.Status


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def queue(**overrides) -> OutboundMessage:
    fields = {
        "to": ["member@community.test"],
        "subject": "Your signed mandate",
        "body_text": "Attached is your mandate.",
        "subject_type": "mandate",
        "subject_id": "7",
        "purpose": "mandate.signed_copy",
    }
    return queue_email(**{**fields, **overrides})


def state(message: OutboundMessage) -> dict:
    return OutboundMessage.objects.filter(pk=message.pk).values().get()


def test_a_queued_email_is_delivered_after_commit_with_its_message_id_reply_to_and_attachment(
    mailbox, django_capture_on_commit_callbacks
):
    pdf = b"%PDF-1.7 a mandate"
    with django_capture_on_commit_callbacks(execute=True):
        message = queue(
            to=["Ada Member <member@community.test>"],
            cc=["coordinator@community.test"],
            reply_to=["hello@writers.community.test"],
            body_html="<p>Attached is your mandate.</p>",
            headers={"X-Community": "writers"},
            attachments=[("mandate-M-1.pdf", pdf, "application/pdf")],
        )
        assert mailbox.received == []  # not before commit

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1
    assert message.sent_at is not None
    assert message.message_id.startswith("<") and message.message_id.endswith("@community.localhost>")

    [envelope] = mailbox.received
    assert sorted(envelope.rcpt_tos) == ["coordinator@community.test", "member@community.test"]
    [received] = mailbox.messages()
    assert received["Message-ID"] == message.message_id
    assert received["Reply-To"] == "hello@writers.community.test"
    assert received["To"] == "Ada Member <member@community.test>"
    assert received["X-Community"] == "writers"
    assert received.get_body(("plain",)).get_content().strip() == "Attached is your mandate."
    assert received.get_body(("html",)).get_content().strip() == "<p>Attached is your mandate.</p>"
    [attached] = list(received.iter_attachments())
    assert attached.get_filename() == "mandate-M-1.pdf"
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_content() == pdf

    stored = OutboundAttachment.objects.get(message=message)
    assert stored.size == len(pdf)
    assert stored.file.name.startswith("outbox/") and "mandate" not in stored.file.name


def test_nothing_is_sent_or_stored_when_the_transaction_rolls_back(
    mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            queue(attachments=[("a.txt", "text", None)])
            raise RuntimeError("the caller's action failed")

    assert callbacks == []
    assert mailbox.received == []
    assert not OutboundMessage.objects.exists()


def test_a_refused_connection_is_recorded_and_retried_with_backoff_until_the_last_attempt_fails(
    settings, time_machine, django_capture_on_commit_callbacks
):
    use_smtp(settings, free_port())  # nothing listens there: the connection is refused
    settings.OUTBOX_MAX_ATTEMPTS = 3
    time_machine.move_to(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        message = queue()

    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert message.attempts == 1
    assert "ConnectionRefusedError" in message.last_error
    assert message.not_before == timezone.now() + timedelta(minutes=1)
    assert outbox.retry_due_in(message.pk) == 60

    assert send_message(message.pk) is False  # not due yet: no attempt
    assert state(message)["attempts"] == 1

    time_machine.move_to(message.not_before)
    assert send_message(message.pk) is False
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.QUEUED, 2)
    assert message.not_before == timezone.now() + timedelta(minutes=4)

    time_machine.move_to(message.not_before)
    assert send_message(message.pk) is False
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.FAILED, 3)
    assert "ConnectionRefusedError" in message.last_error
    assert outbox.retry_due_in(message.pk) is None

    time_machine.move_to(timezone.now() + timedelta(days=1))
    assert send_message(message.pk) is False
    assert requeue_stuck() == 0
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.FAILED, 3)


def test_a_recipient_refused_for_good_fails_at_once_without_retrying(
    mailbox, django_capture_on_commit_callbacks
):
    mailbox.refuse = "550 5.1.1 No such mailbox"
    with django_capture_on_commit_callbacks(execute=True):
        message = queue(to=["gone@community.test"])

    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.FAILED, 1)
    assert "550" in message.last_error
    assert mailbox.received == []


def test_send_message_twice_sends_once(mailbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        message = queue()

    assert send_message(message.pk) is True
    after_first = state(message)
    assert send_message(message.pk) is False

    assert len(mailbox.received) == 1
    assert state(message) == after_first


def test_requeue_stuck_resends_a_row_stuck_in_sending_and_a_second_run_changes_nothing(
    mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        message = queue()
    # A worker claimed it twenty minutes ago and died.
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, attempts=1, claimed_at=timezone.now() - timedelta(minutes=20)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stuck() == 1
    after_first = state(message)
    assert after_first["status"] == Status.SENT
    assert after_first["attempts"] == 2
    assert "did not finish" in after_first["last_error"]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert requeue_stuck() == 0
    assert callbacks == []
    assert state(message) == after_first
    assert len(mailbox.received) == 1


def test_requeue_stuck_sends_a_queued_row_whose_task_was_lost_and_leaves_recent_rows_alone(
    mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the send tasks are never run: "lost"
        lost = queue(subject="Lost")
        recent = queue(subject="Recent")
    OutboundMessage.objects.filter(pk=lost.pk).update(not_before=timezone.now() - timedelta(minutes=16))

    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stuck() == 1
        assert requeue_stuck() == 0

    assert state(lost)["status"] == Status.SENT
    assert state(recent)["status"] == Status.QUEUED
    assert [m["Subject"] for m in mailbox.messages()] == ["Lost"]


def test_a_row_stuck_on_its_last_attempt_is_marked_failed_not_resent(
    mailbox, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    with django_capture_on_commit_callbacks(execute=False):
        message = queue()
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, attempts=2, claimed_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert requeue_stuck() == 1
    assert callbacks == []
    assert state(message)["status"] == Status.FAILED
    assert "may or may not have gone out" in state(message)["last_error"]
    assert mailbox.received == []


@pytest.mark.parametrize(
    "to",
    [["not-an-address"], ["a@community.test, b@community.test"], ["x@community.test\nBcc: y@evil.test"], []],
)
def test_an_invalid_address_raises_outbox_error_and_stores_nothing(to, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(OutboxError):
            queue(to=to)
    assert callbacks == []
    assert not OutboundMessage.objects.exists()


def test_an_invalid_reply_to_raises_outbox_error_and_stores_nothing():
    with pytest.raises(OutboxError, match="reply_to"):
        queue(reply_to=["hello at community"])
    assert not OutboundMessage.objects.exists()


def test_retry_failed_sends_a_failed_email_again_once(mailbox, django_capture_on_commit_callbacks):
    mailbox.refuse = "550 5.1.1 No such mailbox"
    with django_capture_on_commit_callbacks(execute=True):
        message = queue()
    assert state(message)["status"] == Status.FAILED

    mailbox.refuse = ""  # the address was fixed at the other end
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_failed([message.pk]) == 1
        assert retry_failed([message.pk]) == 0

    assert state(message)["status"] == Status.SENT
    assert len(mailbox.received) == 1


def test_the_back_office_send_again_action_resends_failed_emails_only(
    mailbox, admin_client, django_capture_on_commit_callbacks
):
    mailbox.refuse = "550 5.1.1 No such mailbox"
    with django_capture_on_commit_callbacks(execute=True):
        failed = queue(subject="Failed")
    mailbox.refuse = ""
    with django_capture_on_commit_callbacks(execute=True):
        sent = queue(subject="Sent")
    assert len(mailbox.received) == 1

    changelist = reverse("admin:core_outboundmessage_changelist")
    assert admin_client.get(changelist).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            changelist, {"action": "send_again", "_selected_action": [failed.pk, sent.pk]}, follow=True
        )

    assert response.status_code == 200
    assert "1 email(s) queued to be sent again." in response.content.decode()
    assert state(failed)["status"] == Status.SENT
    assert [m["Subject"] for m in mailbox.messages()] == ["Sent", "Failed"]
    assert admin_client.get(reverse("admin:core_outboundmessage_change", args=[sent.pk])).status_code == 200


def test_the_sweep_command_reports_what_it_did(mailbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        message = queue()
    OutboundMessage.objects.filter(pk=message.pk).update(not_before=timezone.now() - timedelta(hours=1))

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("sweep_outbox", stdout=out)
    assert out.getvalue().startswith("1 stuck email(s) re-queued")
    assert len(mailbox.received) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: concurrent connections")
def test_two_workers_sending_the_same_row_at_once_send_it_once(mailbox):
    message = OutboundMessage.objects.create(
        to=["member@community.test"],
        from_email="community@localhost",
        subject="Raced",
        body_text="Once only.",
        message_id="<raced@community.localhost>",
    )
    barrier = threading.Barrier(2)
    outcomes = []

    def worker():
        try:
            barrier.wait()
            outcomes.append(send_message(message.pk))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [False, True]
    assert len(mailbox.received) == 1
    assert state(message)["attempts"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_retries_after_each_backoff_until_the_last_attempt_fails(settings):
    """The non-eager path: a real worker on the in-memory broker turns the row's backoff into a countdown."""
    use_smtp(settings, free_port())  # connection refused
    settings.OUTBOX_RETRY_DELAY_SECONDS = 0.2
    settings.OUTBOX_MAX_ATTEMPTS = 3
    message = OutboundMessage.objects.create(
        to=["member@community.test"],
        from_email="community@localhost",
        subject="Retried",
        body_text="Again.",
        message_id="<retried@community.localhost>",
    )
    celery_app.conf.task_always_eager = False
    try:
        # Outgoing mail has its own queue (settings.CELERY_TASK_ROUTES); this worker serves both.
        with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["celery", "mail"]):
            send_outbound_message.delay(message.pk)
            deadline = time.monotonic() + 30
            while state(message)["status"] != Status.FAILED and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        celery_app.conf.task_always_eager = True

    final = state(message)
    assert (final["status"], final["attempts"]) == (Status.FAILED, 3)
    assert "ConnectionRefusedError" in final["last_error"]


# -- delivery hooks: the app that queued a message records its outcome through a task named on the row ------

HOOK_CALLS: list[tuple[str, int]] = []


@shared_task(name="tests.outbox.record_sent")
def record_sent(message_ids: list[int]) -> None:
    HOOK_CALLS.extend(("sent", pk) for pk in message_ids)


@shared_task(name="tests.outbox.record_failed")
def record_failed(message_ids: list[int]) -> None:
    HOOK_CALLS.extend(("failed", pk) for pk in message_ids)


@pytest.fixture
def hook_calls():
    HOOK_CALLS.clear()
    yield HOOK_CALLS
    HOOK_CALLS.clear()


def queue_with_hooks(**overrides) -> OutboundMessage:
    return queue(
        on_sent_task="tests.outbox.record_sent", on_failed_task="tests.outbox.record_failed", **overrides
    )


def test_the_sent_hook_runs_once_after_the_message_is_accepted(
    mailbox, hook_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_with_hooks()
    assert hook_calls == [("sent", message.pk)]

    with django_capture_on_commit_callbacks(execute=True):
        assert send_message(message.pk) is False
        assert requeue_stuck(older_than=timedelta(0)) == 0
    assert hook_calls == [("sent", message.pk)]


def test_the_failed_hook_runs_on_a_refusal_for_good_but_not_on_a_failure_worth_retrying(
    mailbox, settings, hook_calls, time_machine, django_capture_on_commit_callbacks
):
    mailbox.refuse = "550 5.1.1 No such mailbox"
    with django_capture_on_commit_callbacks(execute=True):
        refused = queue_with_hooks()
    assert hook_calls == [("failed", refused.pk)]

    hook_calls.clear()
    settings.OUTBOX_MAX_ATTEMPTS = 2
    use_smtp(settings, free_port())  # connection refused: worth retrying
    with django_capture_on_commit_callbacks(execute=True):
        retried = queue_with_hooks()
    assert state(retried)["status"] == Status.QUEUED
    assert hook_calls == []

    time_machine.move_to(state(retried)["not_before"])
    with django_capture_on_commit_callbacks(execute=True):
        assert send_message(retried.pk) is False  # the last attempt
    assert state(retried)["status"] == Status.FAILED
    assert hook_calls == [("failed", retried.pk)]


def test_a_row_stuck_on_its_last_attempt_runs_the_failed_hook(
    mailbox, settings, hook_calls, django_capture_on_commit_callbacks
):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    with django_capture_on_commit_callbacks(execute=False):
        message = queue_with_hooks()
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, attempts=1, claimed_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stuck() == 1
    assert hook_calls == [("failed", message.pk)]


def test_an_unknown_hook_task_is_logged_and_the_message_still_counts_as_sent(
    mailbox, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = queue(on_sent_task="no.such.task")
    assert state(message)["status"] == Status.SENT
    assert "unknown task 'no.such.task'" in caplog.text


def test_a_message_held_back_is_not_sent_before_its_time(
    mailbox, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False)
    later = timezone.now() + timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        message = queue(not_before=later)
    assert state(message)["status"] == Status.QUEUED and state(message)["attempts"] == 0
    assert outbox.retry_due_in(message.pk) == 300
    assert mailbox.received == []

    time_machine.move_to(later)
    assert send_message(message.pk) is True
    assert len(mailbox.received) == 1
