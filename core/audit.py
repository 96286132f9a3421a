"""The hash-chained event log's shared parts.

Every aggregate with a history (a request, a campaign, a batch, a mandate, a complaint) owns one chain of
events: event n stores SHA-256 over its own content and event n-1's hash, and the aggregate row keeps the
sequence number and hash of its latest event, so editing, deleting or inserting any event breaks a check.
The digest is defined over plain text so that set-based jobs can compute the same value in SQL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in codes, ids or ISO timestamps
GENESIS = ""  # prev_hash of the first event in a chain


class ChainedHistory(models.Model):
    """The head of an aggregate's event chain (written only by the event recorder)."""

    history_seq = models.PositiveIntegerField(default=0, editable=False)
    history_head = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        abstract = True


@dataclass(frozen=True)
class Actor:
    """Who caused an event: the system, a member, a coordinator or a controller contact."""

    kind: str
    id: str = ""

    SYSTEM = "system"
    MEMBER = "member"
    COORDINATOR = "coordinator"
    CONTROLLER = "controller"

    @classmethod
    def system(cls, name: str = "engine") -> Actor:
        return cls(cls.SYSTEM, name)

    @classmethod
    def user(cls, user: Any, kind: str = COORDINATOR) -> Actor:
        return cls(kind, str(user.pk))


def normalise_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """Dates, decimals and UUIDs become strings once, so the stored JSON re-serialises identically."""
    return json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder))


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def timestamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_digest(
    *,
    prev_hash: str,
    stream: str,
    seq: int,
    kind: str,
    actor_kind: str,
    actor_id: str,
    from_state: str,
    to_state: str,
    created_at: datetime,
    payload: dict[str, Any],
) -> str:
    content = SEPARATOR.join(
        [
            prev_hash,
            stream,
            str(seq),
            kind,
            actor_kind,
            actor_id,
            from_state,
            to_state,
            timestamp_text(created_at),
            canonical_json(payload),
        ]
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()
