import datetime as dt

import pytest
import time_machine
from django.core.management import call_command

from core.audit import Actor
from requests_engine import services, sweep
from requests_engine.events import chain_breaks
from requests_engine.models import DataRightsRequest, RequestEvent
from tests.factories import make_mandate, make_member, make_request

SYSTEM = Actor.system()


def sent_on(member, controller, received, **kwargs):
    request = make_request(member, controller, **kwargs)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    services.request_dispatch(request_id=request.pk, received_on=received, actor=SYSTEM)
    return request


@pytest.fixture
def requests_at_various_points(community, controller):
    with time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)):
        made = {}
        for name, received in [
            ("Late Larry", dt.date(2026, 1, 5)),
            ("Due Today", dt.date(2026, 2, 20)),
            ("Early Erin", dt.date(2026, 3, 10)),
            ("Paused Pat", dt.date(2026, 1, 6)),
        ]:
            member = make_member(community, name)
            made[name] = sent_on(member, controller, received, mandate=make_mandate(member))
        services.request_ask_for_information(
            request_id=made["Paused Pat"].pk,
            kind="clarification",
            question="Which account?",
            asked_on=dt.date(2026, 1, 10),
            actor=Actor(Actor.CONTROLLER, "1"),
        )
    return made


def states(made):
    return {name: DataRightsRequest.objects.get(pk=r.pk).state for name, r in made.items()}


def test_sweep_marks_only_requests_past_their_due_day_and_records_an_event_each(requests_at_various_points):
    with time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)):  # "Due Today" is due 20 March
        moved = sweep.deadlines_sweep()
    assert moved == 1
    assert states(requests_at_various_points) == {
        "Late Larry": "overdue",
        "Due Today": "sent",
        "Early Erin": "sent",
        "Paused Pat": "info_requested",
    }
    event = RequestEvent.objects.get(kind="request.overdue")
    assert event.request_id == requests_at_various_points["Late Larry"].pk
    assert event.payload == {"due_on": "2026-02-05"}
    assert event.actor_kind == "system" and event.from_state == "sent" and event.to_state == "overdue"
    assert chain_breaks() == []


def test_sweep_is_safe_to_run_twice(requests_at_various_points):
    with time_machine.travel(dt.datetime(2026, 3, 23, 12, tzinfo=dt.UTC)):
        first = sweep.deadlines_sweep()
        second = sweep.deadlines_sweep()
    assert (first, second) == (2, 0)
    assert RequestEvent.objects.filter(kind="request.overdue").count() == 2
    assert chain_breaks() == []


def test_sweep_command_reports_what_it_did(requests_at_various_points, capsys):
    with time_machine.travel(dt.datetime(2026, 3, 23, 12, tzinfo=dt.UTC)):
        call_command("sweep_deadlines")
    assert "2 request(s) marked overdue" in capsys.readouterr().out


def test_the_sweep_task_runs_the_same_job(requests_at_various_points):
    from requests_engine.tasks import sweep_deadlines

    with time_machine.travel(dt.datetime(2026, 3, 23, 12, tzinfo=dt.UTC)):
        assert sweep_deadlines.delay().get()["overdue"] == 2
