"""The hash-chained event log's shared parts.

Every aggregate with a history (a request, a campaign, a batch, a mandate, a complaint) owns one chain of
events: event n stores an HMAC-SHA256 over its own content (which names its stream, "request:42", the owner
pointer) and event n-1's hash, and the aggregate row keeps the sequence number and hash of its latest event,
so editing, deleting, inserting or re-pointing any event breaks a check.

Why keyed: with a plain SHA-256 anyone who can write to the database can recompute a forged chain and its
head. The HMAC key lives in the environment (AUDIT_KEYS), never in the database, so a database writer alone
cannot produce a hash that verifies. What a key cannot stop, rolling a whole stream back to an earlier
consistent state, is caught by the sealed checkpoints kept outside the database
(requests_engine.audit.checkpoints).

Rotation: each event stores the id of the key it was signed with, and AUDIT_KEYS lists the current key first
and every older one after it. New events are signed with the current key; old ones keep verifying with
theirs, so rotating never rewrites history (the events table is append-only). Drop an old key only once a
checkpoint sealed with a newer key covers its events: the checkpoint's heads pin everything signed before it.

The digest is defined over plain text so that set-based jobs compute the same value in SQL: `audit_hmac(text,
key)` is pgcrypto's hmac() wrapped in a SQL function on PostgreSQL (migration 0021 of requests_engine) and a
Python function registered on each SQLite connection (CoreConfig.ready); the key is always passed as a query
parameter, never stored.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

logger = logging.getLogger(__name__)

SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in codes, ids or ISO timestamps
GENESIS = ""  # prev_hash of the first event in a chain
SQL_FUNCTION = "audit_hmac"  # audit_hmac(content text, key bytea) -> hex text, on both backends
LOCAL_KEY_ID = "local"
LOCAL_KEY_FILE = "audit.key"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
MIN_KEY_BYTES = 32


# -- keys ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditKey:
    id: str
    secret: bytes = b""

    def __repr__(self) -> str:  # never print the secret
        return f"AuditKey({self.id!r})"


@functools.lru_cache(maxsize=8)  # read on every event recorded: parse each setting's value once
def _parse_keys(value: str | tuple[str, ...]) -> tuple[AuditKey, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    keys: list[AuditKey] = []
    for position, item in enumerate(i.strip() for i in items):
        if not item:
            continue
        key_id, _, encoded = item.partition(":")
        if not KEY_ID.fullmatch(key_id) or not encoded:
            raise ImproperlyConfigured(
                f"AUDIT_KEYS[{position}] must be id:base64key with an id of letters, digits, - or _ "
                "(at most 16)."
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"AUDIT_KEYS[{position}] ({key_id}) is not valid base64.") from None
        if len(secret) < MIN_KEY_BYTES:
            raise ImproperlyConfigured(f"AUDIT_KEYS[{position}] ({key_id}) needs at least 32 random bytes.")
        if any(k.id == key_id for k in keys):
            raise ImproperlyConfigured(f"AUDIT_KEYS names the key id {key_id} twice.")
        keys.append(AuditKey(key_id, secret))
    return tuple(keys)


@functools.cache
def _local_key(key_dir: Path) -> bytes:
    """The embedded default's audit key, created once in KEY_DIR (a file, never the database): written to a
    private temporary file and hard-linked to its name, so concurrent first starts agree on one key."""
    path = key_dir / LOCAL_KEY_FILE
    if not path.exists():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=key_dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)))
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temp_name, path)
                logger.warning("Created a new audit key in %s (embedded default).", path)
            except FileExistsError:
                pass
        finally:
            os.unlink(temp_name)
    return base64.b64decode(path.read_bytes().strip())


def audit_keys() -> tuple[AuditKey, ...]:
    """The configured keys, current first. Production must configure them (settings refuse to start
    without); elsewhere an empty AUDIT_KEYS means the local key file."""
    value = getattr(settings, "AUDIT_KEYS", "") or ""
    configured = _parse_keys(value if isinstance(value, str) else tuple(value))
    if configured:
        return configured
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured("AUDIT_KEYS is empty: production needs a key to sign the audit log.")
    key_dir = Path(getattr(settings, "KEY_DIR", Path(settings.BASE_DIR) / "var" / "keys"))
    return (AuditKey(LOCAL_KEY_ID, _local_key(key_dir)),)


def current_key() -> AuditKey:
    return audit_keys()[0]


def key_by_id(key_id: str) -> AuditKey | None:
    return next((key for key in audit_keys() if key.id == key_id), None)


def generate_key_text(key_id: str = "k1") -> str:
    """An AUDIT_KEYS entry with a fresh random key: `id:base64`."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode('ascii')}"


def keyed_hex(key: AuditKey, content: str) -> str:
    return hmac.new(key.secret, content.encode("utf-8"), hashlib.sha256).hexdigest()


def sqlite_audit_hmac(content: str | None, key: bytes | None) -> str | None:
    """The SQLite twin of the PostgreSQL audit_hmac() function (registered per connection)."""
    if content is None or key is None:
        return None
    return hmac.new(bytes(key), content.encode("utf-8"), hashlib.sha256).hexdigest()


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


def event_content(
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
    return SEPARATOR.join(
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


def event_digest(*, key: AuditKey, **fields: Any) -> str:
    """HMAC-SHA256 (hex) with `key` over event_content(**fields)."""
    return keyed_hex(key, event_content(**fields))
