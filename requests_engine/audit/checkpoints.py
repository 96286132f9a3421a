"""Sealed checkpoints of every event stream's head, kept outside the database.

A keyed chain stops a database writer forging or editing events, but not rolling a whole stream back to an
earlier, self-consistent state (delete its last events and put the owner's head back), nor wiping it. A
checkpoint records each stream's (seq, head hash) and totals, sealed with the audit key, in a file under
AUDIT_CHECKPOINT_DIR and, if AUDIT_CHECKPOINT_EMAIL is set, in an email: both are out of the database's
reach. verify_audit_log compares the database with the latest checkpoint; a stream missing, shorter, or with
another event at the sealed position is a rollback. A checkpoint is only written over a history that
verifies, so it never blesses tampering it could have seen.
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from core import outbox
from core.audit import AuditKey, canonical_json, current_key, key_by_id, keyed_hex
from requests_engine.events import STREAM_LABELS

FORMAT = 1
PREFIX = "checkpoint-"
PURPOSE = "audit.checkpoint"


class CheckpointError(Exception):
    """The latest checkpoint cannot be trusted: unreadable, unsealed or sealed with another key."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    taken_at: str
    key_id: str
    heads: dict[str, tuple[int, str]]
    totals: dict[str, int]


def checkpoint_dir() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def stream_heads() -> dict[str, tuple[int, str]]:
    """Every stream's (seq, head hash), as its owner records it (verification checks they agree)."""
    heads: dict[str, tuple[int, str]] = {}
    for model, label in STREAM_LABELS.items():
        rows = model._default_manager.filter(history_seq__gt=0).values_list(
            "pk", "history_seq", "history_head"
        )
        for pk, seq, head in rows.order_by("pk").iterator(chunk_size=5000):
            heads[f"{label}:{pk}"] = (seq, head)
    return heads


def _seal(key: AuditKey, body: dict[str, Any]) -> str:
    return keyed_hex(key, canonical_json(body))


def checkpoint_write() -> Checkpoint:
    """Write a sealed checkpoint of the current heads, and queue its email. Each head read is one that a
    committed transaction wrote, and a head only ever moves forward, so a later check finds every event
    the checkpoint names however busy the database was while it was read."""
    key = current_key()
    heads = stream_heads()
    taken_at = timezone.now()
    totals = {"streams": len(heads), "events": sum(seq for seq, _ in heads.values())}
    for label in STREAM_LABELS.values():
        totals[f"{label}_streams"] = sum(1 for s in heads if s.startswith(f"{label}:"))
    body: dict[str, Any] = {
        "format": FORMAT,
        "taken_at": taken_at.isoformat(),
        "key_id": key.id,
        "totals": totals,
        "streams": {stream: [seq, head] for stream, (seq, head) in heads.items()},
    }
    data = json.dumps({"checkpoint": body, "seal": _seal(key, body)}, sort_keys=True, indent=0).encode()
    name = f"{PREFIX}{taken_at:%Y%m%dT%H%M%S%fZ}.json"
    folder = checkpoint_dir()
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, folder / name)  # never a half-written checkpoint under a real name
    if address := getattr(settings, "AUDIT_CHECKPOINT_EMAIL", ""):
        outbox.queue_email(
            to=[address],
            subject=f"Audit checkpoint {taken_at:%Y-%m-%d %H:%M} UTC: {totals['events']} events",
            body_text=(
                f"The sealed audit checkpoint {name} is attached: {totals['streams']} histories, "
                f"{totals['events']} events, sealed with audit key {key.id}.\n\n"
                "Keep this email. If the database is ever rolled back or its history truncated, "
                "`manage.py verify_audit_log --checkpoint FILE` with this attachment shows where.\n"
            ),
            attachments=[(name, data, "application/json")],
            subject_type="audit",
            subject_id=name,
            purpose=PURPOSE,
        )
    return Checkpoint(name, body["taken_at"], key.id, heads, totals)


def checkpoint_read(path: Path) -> Checkpoint:
    """Read and check one checkpoint file; CheckpointError says why it cannot be trusted."""
    try:
        document = json.loads(path.read_bytes())
        body, seal = document["checkpoint"], document["seal"]
        key_id = body["key_id"]
        streams = body["streams"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path.name} cannot be read ({exc.__class__.__name__})") from None
    key = key_by_id(key_id)
    if key is None:
        raise CheckpointError(f"checkpoint {path.name} is sealed with audit key {key_id!r}, not configured")
    if not isinstance(seal, str) or not hmac.compare_digest(_seal(key, body), seal):
        raise CheckpointError(f"checkpoint {path.name} does not match its seal (edited or forged)")
    heads = {stream: (int(seq), str(head)) for stream, (seq, head) in streams.items()}
    return Checkpoint(path.name, body.get("taken_at", ""), key_id, heads, body.get("totals", {}))


def latest_checkpoint() -> Checkpoint | None:
    """The newest checkpoint in AUDIT_CHECKPOINT_DIR, or None when none was taken yet."""
    folder = checkpoint_dir()
    if not folder.is_dir():
        return None
    names = sorted(p for p in folder.glob(f"{PREFIX}*.json") if p.is_file())
    return checkpoint_read(names[-1]) if names else None
