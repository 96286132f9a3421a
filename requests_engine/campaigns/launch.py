"""Launching a campaign: one batch per controller and one queued request per eligible member ×
controller × right, in one set-based insert, then the dispatch of every batch."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_fsm import can_proceed

from communities.models import Mandate, Member, Right
from core.audit import Actor
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


def _mandate_has_right_sql() -> str:
    if connection.vendor == "postgresql":
        return "md.rights @> jsonb_build_array(%s::text)"
    return "EXISTS (SELECT 1 FROM json_each(md.rights) WHERE json_each.value = %s)"


def _expand_requests(*, campaign: Campaign, right: str, today: datetime.date, now: datetime.datetime) -> int:
    """INSERT … SELECT one queued request per eligible member × batch for one right: set-based, so a
    campaign of 100k members × 10 controllers costs about what the bare insert costs. Eligible = an active,
    unexpired mandate covering the right and the controller. A member has at most one active mandate and a
    campaign launches once (under its row lock), so no row can conflict; the unique constraint still guards."""
    r = DataRightsRequest._meta.db_table
    sql = f"""
        INSERT INTO {r} (reference, campaign_id, batch_id, member_id, mandate_id, controller_id, "right",
            state, extension_months, extension_reason, paused_days, clock_paused, info_kind, info_question,
            message_id, delivery_error, drp_request_id, drp_status,
            refusal_ground, refusal_reasons, history_seq, history_head, created_at, updated_at)
        SELECT b.reference || '-' || m.reference || '-' || %s, b.campaign_id, b.id, m.id, md.id,
            b.controller_id, %s, %s, 0, '', 0, FALSE, '', '', '', '', '', '', '', '', 0, '', %s, %s
        FROM {Batch._meta.db_table} b
        JOIN {Mandate._meta.db_table} md ON md.state = 'active' AND md.valid_from <= %s AND md.valid_until >= %s
        JOIN {Member._meta.db_table} m ON m.id = md.member_id
        WHERE b.campaign_id = %s AND m.community_id = %s AND m.left_at IS NULL
          AND {_mandate_has_right_sql()}
          AND (md.all_controllers OR EXISTS (
                SELECT 1 FROM {Mandate.controllers.through._meta.db_table} mc
                WHERE mc.mandate_id = md.id AND mc.controller_id = b.controller_id))
        -- Member order makes the member, mandate and campaign indexes grow at their right edge, as in
        -- a plain bulk load, instead of splitting pages all over them.
        ORDER BY m.id, b.id
    """
    params: list[Any] = [
        RIGHT_CODES[Right(right)],
        right,
        RequestState.QUEUED,
        now,
        now,
        today,
        today,
        campaign.pk,
        campaign.community_id,
        right,
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
        Batch.objects.bulk_create(
            [
                Batch(campaign=campaign, controller_id=cid, transport=transport)
                for cid, transport in controllers
            ],
            ignore_conflicts=True,
        )
        created = {
            right: _expand_requests(campaign=campaign, right=right, today=today, now=now)
            for right in campaign.rights
        }
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
    return created
