"""The deadline sweep: every request whose deadline has passed becomes overdue, with its event."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.audit import SQL_FUNCTION, current_key, event_digest, timestamp_text
from requests_engine.models import (
    CLOCK_STATES,
    DataRightsRequest,
    RequestEvent,
    RequestState,
)
from requests_engine.services import _today


def deadlines_sweep(*, today: datetime.date | None = None) -> int:
    """Mark every request whose deadline has passed as overdue, with its event. Set-based: on PostgreSQL
    one statement per chunk claims the rows (skipping rows another transaction holds), moves them and writes
    their events, hashes computed in SQL. Safe to run twice: a second run finds nothing left to move."""
    today = today or _today()
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _sweep_postgresql(today=today, now=now)
    return _sweep_portable(today=today, now=now)


def _digest_sql(prev: str, stream: str, seq: str, from_state: str, payload: str) -> str:
    """The SQL twin of core.audit.event_digest for a system 'request.overdue' event: audit_hmac() is the
    keyed digest on both backends (core.audit), with the key passed as the %(audit_key)s parameter."""
    parts = [
        prev,
        stream,
        f"({seq})::text",
        "'request.overdue'",
        "'system'",
        "'sweep'",
        from_state,
        "'overdue'",
        "%(ts)s",
        payload,
    ]
    return f"{SQL_FUNCTION}(concat_ws(chr(31), {', '.join(parts)}), %(audit_key)s)"


def _sweep_postgresql(*, today: datetime.date, now: datetime.datetime, chunk: int = 10000) -> int:
    r = DataRightsRequest._meta.db_table
    e = RequestEvent._meta.db_table
    payload_text = """'{"due_on":"' || to_char(d.due_on, 'YYYY-MM-DD') || '"}'"""
    candidates = "state = ANY(%(states)s) AND due_on < %(today)s AND clock_paused = FALSE"
    sql = f"""
        WITH d AS (
            SELECT id, state AS from_state, history_seq + 1 AS seq, history_head AS prev_hash, due_on,
                   'request:' || id AS stream
            FROM {r}
            WHERE id = ANY(%(ids)s) AND {candidates}
            FOR UPDATE SKIP LOCKED
        ), moved AS (
            UPDATE {r} AS t
            SET state = 'overdue', history_seq = d.seq, updated_at = %(now)s,
                history_head = {_digest_sql("d.prev_hash", "d.stream", "d.seq", "d.from_state", payload_text)}
            FROM d WHERE t.id = d.id
            RETURNING t.id, d.stream, d.seq, d.from_state, d.prev_hash, d.due_on, t.history_head
        )
        INSERT INTO {e} (stream, seq, request_id, kind, actor_kind, actor_id, from_state, to_state, payload,
                         created_at, prev_hash, hash, key_id)
        SELECT stream, seq, id, 'request.overdue', 'system', 'sweep', from_state, 'overdue',
               jsonb_build_object('due_on', to_char(due_on, 'YYYY-MM-DD')), %(now)s, prev_hash, history_head,
               %(key_id)s
        FROM moved
    """
    key = current_key()
    params: dict[str, Any] = {
        "audit_key": key.secret,
        "key_id": key.id,
        "states": [str(s) for s in CLOCK_STATES],
        "today": today,
        "now": now,
        "ts": timestamp_text(now),
    }
    # The candidates are found once by the running-clock index, then moved in primary-key order, a chunk per
    # transaction: neighbouring rows share heap and index pages, so each page is read, written and logged
    # once rather than once per due date (a backlog spans every page). Each chunk re-checks the conditions
    # under its row locks; rows another transaction holds, or that became due meanwhile, wait for the next
    # run.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {r} WHERE {candidates} ORDER BY id", params)
        ids = [row[0] for row in cursor.fetchall()]
    moved = 0
    for start in range(0, len(ids), chunk):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {**params, "ids": ids[start : start + chunk]})
            moved += cursor.rowcount
    return moved


def _sweep_portable(*, today: datetime.date, now: datetime.datetime, chunk: int = 2000) -> int:
    """The same sweep for SQLite (the embedded default): chunks of candidate rows, each claimed with a
    conditional UPDATE on its current state, events bulk-inserted."""
    moved = 0
    key = current_key()
    while True:
        with transaction.atomic():
            rows = list(
                DataRightsRequest.objects.filter(
                    state__in=CLOCK_STATES, due_on__lt=today, clock_paused=False
                ).values_list("pk", "state", "history_seq", "history_head", "due_on")[:chunk]
            )
            if not rows:
                return moved
            events = []
            for pk, state, seq, head, due_on in rows:
                payload = {"due_on": due_on.isoformat()}
                stream = f"request:{pk}"
                digest = event_digest(
                    key=key,
                    prev_hash=head,
                    stream=stream,
                    seq=seq + 1,
                    kind="request.overdue",
                    actor_kind="system",
                    actor_id="sweep",
                    from_state=state,
                    to_state="overdue",
                    created_at=now,
                    payload=payload,
                )
                claimed = DataRightsRequest.objects.filter(pk=pk, state=state, history_seq=seq).update(
                    state=RequestState.OVERDUE, history_seq=seq + 1, history_head=digest, updated_at=now
                )
                if claimed:
                    events.append(
                        RequestEvent(
                            stream=stream,
                            seq=seq + 1,
                            request_id=pk,
                            kind="request.overdue",
                            actor_kind="system",
                            actor_id="sweep",
                            from_state=state,
                            to_state="overdue",
                            payload=payload,
                            created_at=now,
                            prev_hash=head,
                            hash=digest,
                            key_id=key.id,
                        )
                    )
            RequestEvent.objects.bulk_create(events)
            moved += len(events)
