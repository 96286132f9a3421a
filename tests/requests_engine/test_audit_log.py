import contextlib
import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from core.audit import Actor
from requests_engine import services
from requests_engine.events import chain_breaks
from requests_engine.models import DataRightsRequest, RequestEvent
from tests.tampering import behind_the_engines_back

SYSTEM = Actor.system()


@pytest.fixture
def history(data_request):
    with time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)):
        services.request_approve(request_id=data_request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=data_request.pk, received_on=dt.date(2026, 3, 2), actor=SYSTEM)
        services.request_acknowledge(request_id=data_request.pk, actor=Actor(Actor.CONTROLLER, "7"))
    return list(RequestEvent.objects.filter(request=data_request).order_by("seq"))


def verify():
    try:
        call_command("verify_audit_log")
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, ""


def test_each_event_links_to_the_one_before(history):
    assert [e.seq for e in history] == [1, 2, 3]
    assert history[0].prev_hash == ""
    assert history[1].prev_hash == history[0].hash and history[2].prev_hash == history[1].hash
    assert DataRightsRequest.objects.get(pk=history[0].request_id).history_head == history[2].hash


def test_verify_passes_on_an_intact_history(history):
    assert chain_breaks() == []
    assert verify() == (0, "")


def test_verify_names_an_event_edited_by_hand(history):
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=history[1].pk).update(payload={"received_on": "2026-03-01"})
    code, message = verify()
    assert code != 0
    assert f"event {history[1].pk}" in message and "edited" in message


def test_verify_notices_a_changed_actor_or_time(history):
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=history[0].pk).update(actor_id="someone-else")
        assert chain_breaks()[0].event_id == history[0].pk
        RequestEvent.objects.filter(pk=history[0].pk).update(actor_id=history[0].actor_id)
        RequestEvent.objects.filter(pk=history[2].pk).update(
            created_at=history[2].created_at + dt.timedelta(seconds=1)
        )
    assert chain_breaks()[0].event_id == history[2].pk


def test_verify_notices_a_deleted_event_in_the_middle(history):
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=history[1].pk).delete()
    code, message = verify()
    assert code != 0 and f"event {history[2].pk}" in message


def test_verify_notices_the_latest_event_deleted(history):
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=history[2].pk).delete()
    code, message = verify()
    assert code != 0 and f"request:{history[0].request_id}" in message


def test_verify_names_the_first_of_several_breaks(history):
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk__in=[history[0].pk, history[2].pk]).update(kind="request.fulfilled")
    breaks = chain_breaks()
    assert [b.event_id for b in breaks[:2]] == [history[0].pk, history[2].pk]


@contextlib.contextmanager
def key_changed_behind_the_databases_back(request, column: str, value: int):
    """Point a request's key at nothing with the foreign-key checks off, as a restore with triggers
    disabled would (the database refuses it otherwise: test_request_keys.py); put it back afterwards, so
    the test database's own constraint check at teardown passes."""
    from django.db import connection

    table = request._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [request.pk])
        (original,) = cursor.fetchone()
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, request.pk])
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [original, request.pk])


def test_verify_names_a_request_whose_mandate_was_deleted_behind_djangos_back(history, data_request):
    with key_changed_behind_the_databases_back(data_request, "mandate_id", 999999):
        code, message = verify()
    assert code == 1 and data_request.reference in message and "lost its mandate" in message


def test_verify_names_a_request_whose_batch_is_gone(history, data_request):
    with key_changed_behind_the_databases_back(data_request, "batch_id", 424242):
        code, message = verify()
    assert code == 1 and data_request.reference in message
