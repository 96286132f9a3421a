"""Launching a campaign: one batch per controller and one queued request per eligible member ×
controller × right, in one set-based insert, then the dispatch of every batch."""

from __future__ import annotations

import datetime
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_fsm import can_proceed

from communities.models import Mandate, Member, Right
from core.audit import Actor
from requests_engine import tasks
from requests_engine.campaigns import confirmation, sequencing
from requests_engine.campaigns.eligibility import covered_mandates, scope_problem
from requests_engine.dispatch import batches, drp
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    Batch,
    Campaign,
    DataRightsRequest,
    RequestState,
)
from requests_engine.services import _today

RIGHT_CODES = {
    Right.ACCESS: "AC",
    Right.PORTABILITY: "PO",
    Right.ERASURE: "ER",
    Right.OBJECTION: "OB",
    Right.RECTIFICATION: "RE",
    Right.RESTRICTION: "RS",
}


def _expand_requests(
    *,
    campaign: Campaign,
    batch: Batch,
    right: str,
    today: datetime.date,
    now: datetime.datetime,
    at_once: bool | None = None,
) -> int:
    """INSERT … SELECT one queued request per covered mandate for one batch and right: set-based, so a
    campaign of 100k members costs about what the bare insert costs. Who is covered is
    eligibility.covered_mandates, the rule every path obeys; its query is embedded, not restated. A member
    has at most one active mandate and a campaign launches once (under its row lock), so no row can
    conflict; the unique constraint still guards. `at_once` picks the erasures to send now (True) or to hold
    until the access answers are in (False, created as drafts in the held batch)."""
    covered = covered_mandates(campaign=campaign, controller_id=batch.controller_id, right=right, on=today)
    if at_once is not None:
        covered = sequencing.split_erasures(covered, campaign=campaign, at_once=at_once)
    covered_sql, covered_params = covered.values("pk").query.sql_with_params()
    r = DataRightsRequest._meta.db_table
    sql = f"""
        INSERT INTO {r} (reference, campaign_id, batch_id, member_id, mandate_id, controller_id, "right",
            state, extension_months, extension_reason, paused_days, clock_paused, info_kind, info_question,
            message_id, delivery_error, drp_request_id, drp_status,
            refusal_ground, refusal_reasons, answer_directly_to, outcome, outcome_statement, recipients_told,
            history_seq, history_head, created_at,
            updated_at)
        SELECT %s || '-' || m.reference || '-' || %s, %s, %s, m.id, md.id,
            %s, %s, %s, 0, '', 0, FALSE, '', '', '', '', '', '', '', '', '', '', '', '', 0, '', %s, %s
        FROM {Mandate._meta.db_table} md
        JOIN {Member._meta.db_table} m ON m.id = md.member_id
        WHERE md.id IN ({covered_sql})
        -- Member order makes the member, mandate and campaign indexes grow at their right edge, as in
        -- a plain bulk load, instead of splitting pages all over them.
        ORDER BY m.id
    """
    params: list[Any] = [
        batch.reference,
        RIGHT_CODES[Right(right)],
        campaign.pk,
        batch.pk,
        batch.controller_id,
        right,
        RequestState.DRAFT if batch.state == Batch.State.HELD else RequestState.QUEUED,
        now,
        now,
        *covered_params,
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Room to sort a million rows in memory for this transaction only, not on disk.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(sql, params)
        return cursor.rowcount


def campaign_launch(*, campaign_id: int, actor: Actor, dispatch: bool = True) -> dict[str, int]:
    """Approve a draft campaign: one batch per controller, one queued request per eligible member ×
    controller × right, and (after commit) the dispatch of every batch by its controller's transport.
    Returns the number of requests created per right. `dispatch=False` leaves the batches pending (the demo
    data records its own history)."""
    now = timezone.now()
    today = _today()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if not can_proceed(campaign.launch):
            raise RequestEngineError(
                f"Campaign {campaign.reference} is {campaign.get_state_display().lower()}."
            )
        controllers = list(campaign.controllers.values_list("pk", "transport"))
        controller_ids = [pk for pk, _ in controllers]
        if not controller_ids:
            raise RequestEngineError("Choose at least one controller before launching the campaign.")
        bad_rights = [r for r in campaign.rights if r not in Right.values]
        if not campaign.rights or bad_rights:
            raise RequestEngineError("Choose the rights the campaign exercises.")
        if problem := scope_problem(campaign) or confirmation.launch_problem(campaign):
            raise RequestEngineError(problem)
        Batch.objects.bulk_create(
            [
                Batch(campaign=campaign, controller_id=cid, transport=transport)
                for cid, transport in controllers
            ],
            ignore_conflicts=True,
        )
        sequenced = sequencing.is_sequenced(campaign)
        created: dict[str, int] = {}
        for right in campaign.rights:
            created[right] = 0
            for batch in campaign.batches.filter(after_access=False).order_by("pk"):
                common = {"campaign": campaign, "right": right, "today": today, "now": now}
                if not (sequenced and right == Right.ERASURE):
                    created[right] += _expand_requests(batch=batch, **common)
                    continue
                created[right] += _expand_requests(batch=batch, at_once=True, **common)
                if held := sequencing.held_batch_for(batch, today=today):
                    created[right] += _expand_requests(batch=held, at_once=False, **common)
        from_state = campaign.state
        campaign.launch()
        campaign.launched_by_id = int(actor.id) if actor.kind == Actor.COORDINATOR and actor.id else None
        campaign.save()
        record_event(
            subject=campaign,
            kind="campaign.launched",
            actor=actor,
            from_state=from_state,
            to_state=campaign.state,
            payload={"requests_created": created, "controllers": len(controller_ids)},
        )
        if dispatch:
            batches.campaign_dispatch_queue(campaign_id=campaign.pk)
            drp.drp_requests_queue(campaign_id=campaign.pk)
            # Each member included is told the community now acts in their name (DESIGN §2).
            transaction.on_commit(partial(tasks.campaign_launch_notices_send.delay, campaign.pk), robust=True)
    return created
