"""Request-engine tasks: they take ids, call one service and own only the retry policy.

Each task imports its service inside its body: the services import this module at their top to queue
tasks after commit, so the one import loop (a job and its tasks) stays a loop of two.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError

# The database briefly unreachable or a deadlock: try again; the dispatch sweep is the backstop.
_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(acks_late=True, autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=8)
def campaign_launch_notices_send(campaign_id: int) -> int:
    """Tell the members a launched campaign included (notices.member); safe to run twice."""
    from requests_engine.notices import member

    return member.campaign_launch_notices_send(campaign_id=campaign_id)


@shared_task
def sweep_deadlines() -> dict[str, int]:
    """The periodic deadline job (beat schedule in settings), as `manage.py sweep_deadlines`: mark what is
    overdue, tell the members, remind controllers. Each step is idempotent (a notice or reminder goes once
    a day), so overlapping or hourly runs are harmless."""
    from requests_engine import sweep
    from requests_engine.campaigns import confirmation, sequencing
    from requests_engine.notices import reminders

    return {
        "overdue": sweep.deadlines_sweep(),
        # After the overdue step: an access request past its deadline releases the erasure held for it.
        "erasures_released": sequencing.held_batches_release(),
        "notices": reminders.overdue_notices_send(),
        "reminders": reminders.deadline_reminders_send(),
        "confirmation_reminders": confirmation.confirmations_remind(),
    }


@shared_task(
    acks_late=True,
    autoretry_for=(*_TRANSIENT, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def dispatch_batch(batch_id: int) -> str:
    """Render a batch's letters and queue its messages in the outbox; a repeat finds them queued and stops."""
    from requests_engine.dispatch import batches

    return batches.batch_dispatch(batch_id=batch_id)


@shared_task(
    acks_late=True, autoretry_for=_TRANSIENT, retry_backoff=True, retry_backoff_max=300, max_retries=8
)
def record_delivery_accepted(message_ids: list[int] | int) -> int:
    """The outbox's on_sent_task: the controller's mail server accepted the messages (a single id is still
    taken, from tasks queued before hooks took lists)."""
    from requests_engine.dispatch import batches

    return batches.delivery_accepted_record(message_ids=_ids(message_ids))


@shared_task(
    acks_late=True, autoretry_for=_TRANSIENT, retry_backoff=True, retry_backoff_max=300, max_retries=8
)
def record_delivery_failed(message_ids: list[int] | int) -> int:
    """The outbox's on_failed_task: the messages were refused for good or ran out of attempts."""
    from requests_engine.dispatch import batches

    return batches.delivery_failed_record(message_ids=_ids(message_ids))


def _ids(message_ids: list[int] | int) -> list[int]:
    return [message_ids] if isinstance(message_ids, int) else list(message_ids)


@shared_task
def sweep_dispatch(older_than_minutes: float = 15) -> dict[str, int]:
    """The periodic dispatch backstop (lost hooks, interrupted dispatches); overlapping runs are harmless."""
    from requests_engine.dispatch import batches

    return batches.dispatch_sweep(older_than=timedelta(minutes=older_than_minutes))


@shared_task
def expire_received_files() -> int:
    """Daily: delete returned files past their retention date that the member did not keep."""
    from requests_engine.responses import files

    return files.received_files_expire()


@shared_task
def expire_identity_documents() -> int:
    """Daily: delete members' proofs of identity 30 days after their request closed."""
    from requests_engine.responses import identity_documents

    return identity_documents.identity_documents_expire()


# Registered under the name the beat schedule and queued messages have always used.
@shared_task(name="requests_engine.inbound.poll_mailbox_task", ignore_result=True)
def poll_mailbox_task() -> str:
    """The periodic poll of the community's mailbox (Celery beat); overlapping runs are harmless."""
    from requests_engine.responses import inbound

    return str(inbound.mailbox_poll())


@shared_task(bind=True, acks_late=True, max_retries=6)
def send_drp_request(self, request_id: int) -> None:
    """One DRP exercise call; a temporary failure (5xx, timeout, 429) retries with backoff, and the last
    failed retry moves the request to failed_delivery with the reason."""
    from requests_engine.dispatch import drp

    try:
        drp.drp_request_send(request_id=request_id)
    except drp.DrpTemporaryError as error:
        if self.request.retries >= self.max_retries:
            drp.drp_sending_give_up(request_id=request_id, error=str(error))
            return
        raise self.retry(exc=error, countdown=min(60 * 2**self.request.retries, 3600)) from error


@shared_task
def poll_drp_requests() -> dict[str, int]:
    """Periodic: Fides and other DRP servers never call back, so open DRP requests are polled."""
    from requests_engine.dispatch import drp

    return drp.drp_requests_poll()


@shared_task(bind=True, acks_late=True, max_retries=6)
def revoke_drp_request(self, request_id: int, reason: str = "") -> None:
    from requests_engine.dispatch import drp

    try:
        drp.drp_request_revoke(request_id=request_id, reason=reason)
    except drp.DrpTemporaryError as error:
        raise self.retry(exc=error, countdown=min(60 * 2**self.request.retries, 3600)) from error


@shared_task(acks_late=True, autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=8)
def tell_controllers_of_withdrawal(
    request_ids: list[int], reason: str = "", handed_over: bool = False
) -> dict[str, int]:
    """After a mandate is revoked, narrowed or expired: tell each controller, the way its requests reached
    it, that they are withdrawn or (`handed_over`) now the members' own."""
    from requests_engine.dispatch import withdrawals

    return withdrawals.withdrawal_notices_queue(
        request_ids=request_ids, reason=reason, handed_over=handed_over
    )


@shared_task(acks_late=True, autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=8)
def flag_complaints_for_ended_authority(request_ids: list[int], reason: str = "") -> int:
    """After a mandate ends: tell the coordinators of complaints covering its requests."""
    from requests_engine.escalation import authority_ended

    return authority_ended.complaints_flag(request_ids=request_ids, reason=reason)


@shared_task
def sweep_complaints() -> int:
    """Daily: complaints a controller did not acknowledge in time (s.164A) are flagged for the ICO pack."""
    from requests_engine.escalation import complaints

    flagged = complaints.complaints_sweep()
    complaints.ico_window_reminders_send()  # the ICO's three-month window, a fortnight ahead
    return flagged


@shared_task
def send_coordinator_summaries() -> int:
    """Daily (beat schedule in settings): each community's coordinators get yesterday's refusals, requests
    for information and files received; a day is summarised once, however often this runs."""
    from requests_engine.notices import coordinators

    return coordinators.coordinator_summaries_send()


@shared_task
def verify_audit_log() -> bool:
    """Nightly, as `manage.py verify_audit_log`: on failure the operator and the coordinators of each
    community concerned are told (once a day)."""
    from requests_engine.audit import verification

    return verification.audit_verify_and_notify()


@shared_task
def audit_checkpoint() -> str:
    """Nightly, as `manage.py audit_checkpoint`: seal the heads outside the database, unless the check fails
    (then the failure is reported instead, as verify_audit_log does)."""
    from requests_engine.audit import checkpoints, verification

    report = verification.audit_verify()
    if not report.intact:
        verification.audit_failure_notify(report)
        return ""
    return checkpoints.checkpoint_write().name


@shared_task(acks_late=True, autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=8)
def send_portal_sign_in_link(email: str) -> bool:
    """Off the web request, so that asking for a link takes the same time for known and unknown addresses."""
    from requests_engine.portal import signin

    return signin.send_sign_in_link(email=email)
