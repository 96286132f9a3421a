"""Two writers racing on one request: exactly one wins, the other gets a clear refusal, nothing forks.
Runs on PostgreSQL (real row locks across connections); SQLite serialises writers anyway."""

import datetime as dt
import threading

import pytest
from django.db import close_old_connections, connection

from core.audit import Actor
from requests_engine import services, sweep
from requests_engine.events import chain_breaks
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import DataRightsRequest, RequestEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL row locks"),
]


def race(*actions):
    barrier = threading.Barrier(len(actions))
    outcomes = [None] * len(actions)

    def run(i, action):
        try:
            barrier.wait()
            outcomes[i] = action()
        except RequestEngineError as exc:
            outcomes[i] = exc
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_fulfil_and_refuse_at_once_cannot_both_win(data_request):
    services.request_approve(request_id=data_request.pk, actor=Actor.system())
    services.request_dispatch(request_id=data_request.pk, received_on=dt.date.today(), actor=Actor.system())
    controller = Actor(Actor.CONTROLLER, "1")
    outcomes = race(
        lambda: services.request_fulfil(request_id=data_request.pk, actor=controller),
        lambda: services.request_refuse(
            request_id=data_request.pk, ground="other", reasons="No.", actor=controller
        ),
    )
    errors = [o for o in outcomes if isinstance(o, RequestEngineError)]
    assert len(errors) == 1
    final = DataRightsRequest.objects.get(pk=data_request.pk)
    assert final.state in ("fulfilled", "refused")
    assert RequestEvent.objects.filter(request=data_request).count() == 3
    assert chain_breaks() == []


def test_two_sweeps_at_once_mark_each_request_once(data_request):
    services.request_approve(request_id=data_request.pk, actor=Actor.system())
    services.request_dispatch(
        request_id=data_request.pk, received_on=dt.date(2025, 1, 6), actor=Actor.system()
    )
    outcomes = race(sweep.deadlines_sweep, sweep.deadlines_sweep)
    assert sorted(outcomes) == [0, 1]
    assert RequestEvent.objects.filter(kind="request.overdue").count() == 1
    assert chain_breaks() == []
    assert connection.vendor == "postgresql"
