"""The requests table's keys are the database's foreign keys, not only the ORM's: a raw writer is refused."""

import pytest
from django.db import IntegrityError, connection, transaction

from requests_engine.models import DataRightsRequest

pytestmark = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="reads PostgreSQL's catalogue")

KEYS = {
    "campaign_id": "requests_engine_campaign",
    "batch_id": "requests_engine_batch",
    "member_id": "communities_member",
    "mandate_id": "communities_mandate",
    "controller_id": "requests_engine_controller",
}


def foreign_keys(table: str) -> dict[str, tuple[str, str]]:
    """Column → (referenced table, ON DELETE action letter) for each foreign key on the table."""
    with connection.cursor() as c:
        c.execute(
            """SELECT a.attname, con.confrelid::regclass::text, con.confdeltype
                 FROM pg_constraint con
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
                WHERE con.contype = 'f' AND con.conrelid = %s::regclass""",
            [table],
        )
        return {column: (target, on_delete) for column, target, on_delete in c.fetchall()}


def test_every_key_of_the_requests_table_is_a_database_foreign_key(db) -> None:
    keys = foreign_keys(DataRightsRequest._meta.db_table)
    assert {column: target for column, (target, _) in keys.items() if column in KEYS} == KEYS
    # Django's PROTECT is NO ACTION in the database ('a'): deleting a referenced row is refused.
    assert {keys[column][1] for column in KEYS} == {"a"}


def test_a_raw_insert_pointing_at_no_mandate_is_refused(data_request) -> None:
    table = DataRightsRequest._meta.db_table
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as c:
            # The copy keeps every column of a real request but points at a mandate that does not exist.
            c.execute(f"CREATE TEMP TABLE orphan AS SELECT * FROM {table} WHERE id = %s", [data_request.pk])
            c.execute("UPDATE orphan SET id = id + 1000000, reference = 'ORPHAN', mandate_id = 987654321")
            c.execute(f"INSERT INTO {table} SELECT * FROM orphan")
            # Django's keys are DEFERRABLE INITIALLY DEFERRED: check them now rather than at commit.
            c.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_a_raw_delete_of_a_mandate_with_requests_is_refused(data_request) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as c:
            c.execute("SET CONSTRAINTS ALL IMMEDIATE")
            c.execute("DELETE FROM communities_mandate WHERE id = %s", [data_request.mandate_id])
