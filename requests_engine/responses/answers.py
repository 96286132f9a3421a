"""A controller's answer to a request: the one path every surface takes."""

from __future__ import annotations

from django.db import transaction
from django_fsm import can_proceed

from core.audit import Actor
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError, UploadRefused
from requests_engine.models import (
    DataRightsRequest,
)
from requests_engine.notices.member import files_notice_send
from requests_engine.responses import files as returned_files
from requests_engine.services import _check_refusal, request_fulfil, request_partially_fulfil


def request_answer_with_files(
    *,
    request_id: int,
    uploads: list,
    actor: Actor,
    outcome: str = "fulfil",
    note: str = "",
    ground: str = "",
    reasons: str = "",
) -> DataRightsRequest:
    """Fulfil (or partly fulfil) with the data attached: the files are checked and stored encrypted and
    the transition made in one transaction, so a refused file leaves the request as it was. The member is
    told after commit; a portability answer without any structured file is flagged to the coordinator."""

    with transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__community")
            .get(pk=request_id)
        )
        if outcome == "fulfil":
            method = request.fulfil
        elif outcome == "partially_fulfil":
            method = request.partially_fulfil
            _check_refusal(ground, reasons)
        else:
            raise RequestEngineError(f"Unknown outcome '{outcome}'.")
        if not can_proceed(method, check_conditions=False):
            raise RequestEngineError(
                f"Request {request.reference} is {request.get_state_display().lower()}: it cannot be answered now."
            )
        try:
            stored = returned_files.received_files_store(request=request, uploads=uploads, actor=actor)
        except UploadRefused as refused:
            raise RequestEngineError(str(refused)) from None
        if outcome == "fulfil":
            request = request_fulfil(request_id=request_id, actor=actor, note=note)
        else:
            request = request_partially_fulfil(
                request_id=request_id, ground=ground, reasons=reasons, actor=actor
            )
        if (
            request.right == "portability"
            and stored
            and not returned_files.portability_answer_is_structured(stored)
        ):
            record_event(subject=request, kind="request.portability_format_flagged", actor=Actor.system(),
                         payload={"types": sorted({f.content_type for f in stored})})  # fmt: skip
        if stored:
            transaction.on_commit(lambda: _tell_member_of_files(request.pk))
    return request


def _tell_member_of_files(request_id: int) -> None:
    """Files the answer's own notice did not cover (it names those stored with it)."""

    with transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__user", "member__community", "controller")
            .get(pk=request_id)
        )
        files_notice_send(request)
