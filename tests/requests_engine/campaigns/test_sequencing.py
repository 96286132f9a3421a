"""Erasure after access in one campaign: the erasure waits for the access answer (or its deadline), unless
the member chose to send it at once; released erasures go out like any batch, each re-checked."""

import datetime as dt

import pytest
import time_machine

from communities import services as member_services
from communities.models import Right
from core.audit import Actor
from requests_engine import services, tasks
from requests_engine.campaigns import confirmation, launch
from requests_engine.models import Batch, Confirmation, DataRightsRequest
from tests.factories import make_campaign, make_mandate, make_member, make_purpose

pytestmark = pytest.mark.django_db
ASKED = dt.date(2026, 12, 7)
CONFIRM_BY = dt.date(2026, 12, 21)
CONTROLLER = Actor(Actor.CONTROLLER, "1")


def at(day: dt.date):
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


@pytest.fixture
def campaign(community, controller):
    """Ada confirms and chooses whether to wait; Grace pre-authorised erasure, so she is not asked."""
    community.controllers.add(controller)
    purpose = make_purpose(community, "See, then delete, what AI developers hold.")
    with at(ASKED - dt.timedelta(days=10)):
        for name, without_asking in (("Ada Lovelace", False), ("Grace Hopper", True)):
            member = make_member(community, name)
            make_mandate(
                member, rights=[Right.ACCESS, Right.ERASURE], irreversible_without_asking=without_asking
            )
        campaign = make_campaign(
            community,
            name="See then delete",
            rights=[Right.ACCESS, Right.ERASURE],
            purpose=purpose,
            controllers=[controller],
        )
    with at(ASKED):
        confirmation.campaign_ask_to_confirm(
            campaign_id=campaign.pk, confirm_by=CONFIRM_BY, actor=Actor.system()
        )
    return campaign


def confirm(campaign, *, at_once: bool):
    found = Confirmation.objects.get(campaign=campaign)
    with at(ASKED + dt.timedelta(days=1)):
        confirmation.confirmation_answer(
            token=found.token,
            member=found.member,
            confirm=True,
            erasure_at_once=at_once,
            actor=Actor.system(),
        )


def go(campaign, capture):
    with at(ASKED + dt.timedelta(days=2)), capture(execute=True):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system())


def states(campaign, right):
    rows = DataRightsRequest.objects.filter(campaign=campaign, right=right)
    return dict(rows.values_list("member__full_name", "state"))


def letters_to(mailbox, address):
    return [m for m in mailbox.messages() if address in m["To"]]


def test_erasure_waits_for_the_access_answers_then_goes_out(
    campaign, mailbox, django_capture_on_commit_callbacks
):
    confirm(campaign, at_once=False)
    go(campaign, django_capture_on_commit_callbacks)
    assert set(states(campaign, "access").values()) == {"sent"}
    assert states(campaign, "erasure") == {"Ada Lovelace": "draft", "Grace Hopper": "draft"}
    held = Batch.objects.get(campaign=campaign, after_access=True)
    assert held.state == "held"
    [first] = letters_to(mailbox, "privacy@acme.test")

    ada, grace = DataRightsRequest.objects.filter(campaign=campaign, right="access").order_by(
        "member__full_name"
    )
    with at(ASKED + dt.timedelta(days=5)):
        services.request_fulfil(request_id=ada.pk, actor=CONTROLLER)
        assert tasks.sweep_deadlines()["erasures_released"] == 0  # Grace's answer is not in yet
        services.request_refuse(
            request_id=grace.pk, ground="manifestly_excessive", reasons="No.", actor=CONTROLLER
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.sweep_deadlines()["erasures_released"] == 1
            assert tasks.sweep_deadlines()["erasures_released"] == 0  # safe to run twice
    assert set(states(campaign, "erasure").values()) == {"sent"}
    assert Batch.objects.get(pk=held.pk).state == "sent"
    second = [m for m in letters_to(mailbox, "privacy@acme.test") if m["Message-ID"] != first["Message-ID"]]
    assert len(second) == 1


def test_a_member_may_send_the_erasure_at_once(campaign, mailbox, django_capture_on_commit_callbacks):
    confirm(campaign, at_once=True)
    go(campaign, django_capture_on_commit_callbacks)
    assert states(campaign, "erasure") == {"Ada Lovelace": "sent", "Grace Hopper": "draft"}


def test_an_access_deadline_passing_releases_the_erasure(
    campaign, mailbox, django_capture_on_commit_callbacks
):
    confirm(campaign, at_once=False)
    go(campaign, django_capture_on_commit_callbacks)
    due = max(
        DataRightsRequest.objects.filter(campaign=campaign, right="access").values_list("due_on", flat=True)
    )
    with at(due), django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_deadlines()["erasures_released"] == 0  # the last day is still in time
    with at(due + dt.timedelta(days=1)), django_capture_on_commit_callbacks(execute=True):
        result = tasks.sweep_deadlines()
    assert result["overdue"] == 2 and result["erasures_released"] == 1
    assert set(states(campaign, "erasure").values()) == {"sent"}


def test_a_held_erasure_the_member_no_longer_authorises_is_never_sent(
    campaign, mailbox, django_capture_on_commit_callbacks
):
    confirm(campaign, at_once=False)
    go(campaign, django_capture_on_commit_callbacks)
    grace = DataRightsRequest.objects.get(campaign=campaign, right="access", member__full_name="Grace Hopper")
    with at(ASKED + dt.timedelta(days=3)), django_capture_on_commit_callbacks(execute=True):
        member_services.mandate_revoke(
            mandate_id=grace.mandate_id, actor=Actor.system(), keep=[grace.pk], answer_to="g@x.test"
        )
    assert states(campaign, "erasure")["Grace Hopper"] == "withdrawn"  # a draft: nothing was sent
    ada = DataRightsRequest.objects.get(campaign=campaign, right="access", member__full_name="Ada Lovelace")
    with at(ASKED + dt.timedelta(days=4)), django_capture_on_commit_callbacks(execute=True):
        services.request_fulfil(request_id=ada.pk, actor=CONTROLLER)
        tasks.sweep_deadlines()
    assert states(campaign, "erasure") == {"Ada Lovelace": "sent", "Grace Hopper": "withdrawn"}
