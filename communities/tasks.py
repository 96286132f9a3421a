"""Side effects of member actions, run by Celery after commit (eagerly in the embedded default)."""

from celery import shared_task


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def render_signed_mandate(mandate_id: int) -> str:
    """Render, seal, store and email the signed mandate once; a re-run finds the PDF and stops."""
    from communities import documents

    return documents.mandate_pdf_issue(mandate_id=mandate_id)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_identifier_checks(member_id: int, force: bool = False) -> int:
    """Email a check link to each of the member's email identifiers not yet verified."""
    from communities import identifier_checks

    return identifier_checks.check_links_send(member_id=member_id, force=force)


@shared_task
def expire_mandates() -> dict[str, int]:
    """Daily (beat schedule in settings): warn members whose mandate ends soon; expire those that ended."""
    from communities import services

    return {
        "warned": services.mandate_expiry_warnings_send(),
        "expired": services.mandates_expire(),
    }


@shared_task
def send_member_digests() -> int:
    """Daily (beat schedule in settings): each member's notices not yet emailed, in one email; safe to run
    twice or to overlap, as the notices are claimed before the email is queued."""
    from communities import notices

    return notices.digests_send()
