"""Side effects of member actions, run by Celery after commit (eagerly in the embedded default)."""

from celery import shared_task

from . import documents


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def render_signed_mandate(mandate_id: int) -> str:
    """Render, seal, store and email the signed mandate once; a re-run finds the PDF and stops."""
    return documents.mandate_pdf_issue(mandate_id=mandate_id)


@shared_task
def tell_controller_of_withdrawal(controller_id: int, request_ids: list[int]) -> int:
    return documents.withdrawal_notice_queue(controller_id=controller_id, request_ids=request_ids)
