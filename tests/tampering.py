"""Writing to the database behind the engine's back, as an attacker with database access would."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection


@contextlib.contextmanager
def behind_the_engines_back() -> Iterator[None]:
    """Row triggers off for the block (PostgreSQL: `session_replication_role = replica`, which a superuser
    or the table's owner can set), so that the events table's append-only trigger does not stop the
    tampering the audit checks must then detect. Inside the test's transaction; restored afterwards."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
