"""A question for evidence the request already carried does not restart the clock (Art 12A UK GDPR)."""

import datetime as dt

import pytest
import time_machine

from core.audit import Actor
from requests_engine import services, sweep
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import DataRightsRequest
from tests.factories import make_covered_request

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
CONTROLLER = Actor(Actor.CONTROLLER, "1")
RECEIVED = dt.date(2026, 3, 3)


def at(day):
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


def asked(member, controller, kind, reference):
    with at(RECEIVED):
        request = make_covered_request(member, controller, reference=reference)
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=RECEIVED, actor=SYSTEM)
    with at(RECEIVED + dt.timedelta(days=10)):
        services.request_ask_for_information(
            request_id=request.pk,
            kind=kind,
            question="Show us.",
            asked_on=RECEIVED + dt.timedelta(days=10),
            actor=CONTROLLER,
        )
    return DataRightsRequest.objects.get(pk=request.pk)


def test_already_supplied_keeps_the_original_clock_and_tells_the_controller(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    request = asked(member, controller, "authority", "R-AUTH")
    original = request.due_on
    with at(RECEIVED + dt.timedelta(days=12)), django_capture_on_commit_callbacks(execute=True):
        disputed = services.request_dispute_information(request_id=request.pk, actor=SYSTEM)
    assert disputed.state == "acknowledged" and disputed.due_on == original and not disputed.clock_paused
    [email] = [m for m in mailbox.messages() if "privacy@acme.test" in m["To"]]
    assert "does not restart the time limit" in email.get_body(("plain",)).get_content()
    with at(original + dt.timedelta(days=1)):
        assert sweep.deadlines_sweep() == 1  # overdue on the original date
    assert DataRightsRequest.objects.get(pk=request.pk).state == "overdue"


def test_evidence_given_restarts_the_clock_instead(member, controller):
    request = asked(member, controller, "identity", "R-ID")
    with at(RECEIVED + dt.timedelta(days=20)):
        given = services.request_give_information(
            request_id=request.pk, received_on=RECEIVED + dt.timedelta(days=20), actor=SYSTEM, answer="ID."
        )
    assert given.due_on > request.due_on  # the month runs from the evidence


def test_a_clarification_cannot_be_marked_as_already_supplied(member, controller):
    request = asked(member, controller, "clarification", "R-CL")
    with pytest.raises(RequestEngineError, match="Only a question about identity or authority"):
        services.request_dispute_information(request_id=request.pk, actor=SYSTEM)


def test_the_member_can_say_from_their_page_that_the_request_already_carried_it(
    client, member, controller, mailbox, django_capture_on_commit_callbacks
):
    request = asked(member, controller, "identity", "R-ME")
    client.force_login(member.user)
    with at(RECEIVED + dt.timedelta(days=11)):
        page = client.get("/me/requests/R-ME/").content.decode()
        assert "Our request already carried this" in page
        with django_capture_on_commit_callbacks(execute=True):
            done = client.post(
                "/me/requests/R-ME/", {"already_supplied": "yes"}, follow=True
            ).content.decode()
    assert "so its deadline does not restart" in done
    marked = DataRightsRequest.objects.get(pk=request.pk)
    assert marked.state == "acknowledged" and marked.due_on == request.due_on
    event = marked.events.get(kind="request.info_disputed")
    assert (event.actor_kind, event.actor_id) == ("member", str(member.pk))
    assert [m for m in mailbox.messages() if "privacy@acme.test" in m["To"]]
    # Once answered, nothing more can be marked.
    again = client.post("/me/requests/R-ME/", {"already_supplied": "yes"}, follow=True).content.decode()
    assert "There is no question about who you are" in again
