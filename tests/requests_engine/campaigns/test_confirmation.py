"""Irreversible steps are confirmed: a campaign with erasure or objection sends those requests only for members
who said yes by its confirmation date (or whose mandate says not to ask); silence is no, with one reminder."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from communities.models import Mandate, Notice, Right
from core.audit import Actor
from requests_engine import tasks
from requests_engine.campaigns import confirmation, launch
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Confirmation, DataRightsRequest
from tests.factories import make_campaign, make_mandate, make_member, make_purpose, verified_user

pytestmark = pytest.mark.django_db

ASKED = dt.date(2026, 12, 7)  # Monday
CONFIRM_BY = dt.date(2026, 12, 21)


def at(day: dt.date):
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


@pytest.fixture
def cast(community, controller):
    """Ada asks to be asked; Grace pre-authorised erasure on her mandate; both chose access and erasure."""
    community.controllers.add(controller)
    purpose = make_purpose(community, "Stop AI developers using members' work.")
    with at(ASKED - dt.timedelta(days=10)):
        ada = make_member(community, "Ada Lovelace")
        make_mandate(ada, rights=[Right.ACCESS, Right.ERASURE], irreversible_without_asking=False)
        grace = make_member(community, "Grace Hopper")
        make_mandate(grace, rights=[Right.ACCESS, Right.ERASURE], irreversible_without_asking=True)
        campaign = make_campaign(
            community,
            name="Delete it",
            rights=[Right.ACCESS, Right.ERASURE],
            purpose=purpose,
            controllers=[controller],
            member_note="We ask each developer to delete what it took.",
        )
    return {"ada": ada, "grace": grace, "campaign": campaign, "acme": controller}


def launched(campaign) -> set[tuple[str, str]]:
    launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system(), dispatch=False)
    return set(DataRightsRequest.objects.filter(campaign=campaign).values_list("member__full_name", "right"))


def ask(campaign, confirm_by=CONFIRM_BY) -> int:
    with at(ASKED):
        return confirmation.campaign_ask_to_confirm(
            campaign_id=campaign.pk, confirm_by=confirm_by, actor=Actor.system()
        )


def answer(member, campaign, *, yes: bool, day=ASKED + dt.timedelta(days=3)):
    token = Confirmation.objects.get(member=member, campaign=campaign).token
    with at(day):
        return confirmation.confirmation_answer(
            token=token, member=member, confirm=yes, actor=Actor(Actor.MEMBER, str(member.pk))
        )


def test_only_the_member_who_must_be_asked_is_asked_and_told_exactly_what_of_whom_and_why(cast):
    assert ask(cast["campaign"]) == 1
    [notice] = Notice.objects.filter(member=cast["ada"], subject__contains="cannot be undone")
    assert "Acme Ltd: delete your personal data (Erasure (Art 17))" in notice.body
    assert "Stop AI developers using members' work." in notice.body
    assert "We ask each developer to delete what it took." in notice.body
    assert "21 December 2026" in notice.body
    token = Confirmation.objects.get(member=cast["ada"]).token
    assert notice.link == f"/me/confirm/{token}/"
    assert not Confirmation.objects.filter(member=cast["grace"]).exists()
    assert ask(cast["campaign"]) == 0  # asking again asks nobody twice


def test_launch_waits_for_the_answers_then_includes_only_a_yes(cast):
    campaign = cast["campaign"]
    with at(ASKED), pytest.raises(RequestEngineError, match="not been asked to confirm"):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system(), dispatch=False)
    ask(campaign)
    with at(ASKED + dt.timedelta(days=1)), pytest.raises(RequestEngineError, match="until 21 December 2026"):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system(), dispatch=False)
    answer(cast["ada"], campaign, yes=True)
    with at(ASKED + dt.timedelta(days=4)):  # everyone has answered: no need to wait
        assert launched(campaign) == {
            ("Ada Lovelace", "access"),
            ("Ada Lovelace", "erasure"),
            ("Grace Hopper", "access"),
            ("Grace Hopper", "erasure"),
        }


def test_a_declined_erasure_is_not_sent_but_the_access_request_is(cast):
    campaign = cast["campaign"]
    ask(campaign)
    answer(cast["ada"], campaign, yes=True)
    answer(cast["ada"], campaign, yes=False, day=ASKED + dt.timedelta(days=5))  # a change of mind
    with at(ASKED + dt.timedelta(days=6)):
        assert ("Ada Lovelace", "erasure") not in launched(campaign)
    assert DataRightsRequest.objects.filter(member=cast["ada"], right="access").exists()


def test_silence_by_the_date_is_no_after_one_reminder(cast, mailoutbox):
    campaign = cast["campaign"]
    ask(campaign)
    with at(CONFIRM_BY - dt.timedelta(days=3)):
        assert confirmation.confirmations_remind() == 0  # not yet
    with at(CONFIRM_BY - dt.timedelta(days=2)):
        assert tasks.sweep_deadlines()["confirmation_reminders"] == 1
        assert tasks.sweep_deadlines()["confirmation_reminders"] == 0  # once only
    [reminder] = Notice.objects.filter(member=cast["ada"], subject__startswith="Reminder: confirm")
    assert "We have not had your answer yet." in reminder.body
    with at(CONFIRM_BY), pytest.raises(RequestEngineError, match="until 21 December 2026"):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system(), dispatch=False)
    with at(CONFIRM_BY + dt.timedelta(days=1)):
        with pytest.raises(RequestEngineError, match="time to answer ended"):
            answer(cast["ada"], campaign, yes=True, day=CONFIRM_BY + dt.timedelta(days=1))
        assert launched(campaign) == {
            ("Ada Lovelace", "access"),
            ("Grace Hopper", "access"),
            ("Grace Hopper", "erasure"),
        }


def test_a_confirmation_date_too_soon_for_a_reminder_is_refused(cast):
    with pytest.raises(RequestEngineError, match="at least"):
        ask(cast["campaign"], confirm_by=ASKED + dt.timedelta(days=2))
    assert not Confirmation.objects.exists()


def test_the_member_confirms_from_the_emailed_link_and_nobody_else_can(cast, client, settings):
    ada = cast["ada"]
    ada.user.email = "ada@community.test"
    ask(cast["campaign"])
    token = Confirmation.objects.get(member=ada).token
    stranger = verified_user("stranger@example.test")
    client.force_login(stranger)
    assert client.get(f"/me/confirm/{token}/").status_code == 404
    client.force_login(ada.user)
    with at(ASKED + dt.timedelta(days=1)):
        page = client.get(f"/me/confirm/{token}/").content.decode()
        assert "Do you want these requests sent?" in page and "Acme Ltd: delete your personal data" in page
        assert "Your answer is needed by 21 December 2026" in client.get("/me/").content.decode()
        response = client.post(f"/me/confirm/{token}/", {"answer": "confirm"}, follow=True)
    assert "we will send these requests for you" in response.content.decode()
    assert Confirmation.objects.get(member=ada).state == "confirmed"
    with at(ASKED + dt.timedelta(days=1)):
        response = client.post(f"/me/confirm/{token}/", {"answer": "maybe"}, follow=True)
    assert "Choose “Yes, send them”" in response.content.decode()
    assert Confirmation.objects.get(member=ada).state == "confirmed"


def test_pre_authorising_is_unticked_by_default_and_printed_in_the_mandate(community, controller):
    from communities.forms import MandateChoicesForm
    from communities.mandate_text import render_mandate_text
    from tests.factories import full_choices

    community.controllers.add(controller)
    member = make_member(community)
    form = MandateChoicesForm(community=community)
    assert form.fields["irreversible_without_asking"].initial in (None, False)
    choices = full_choices(member)
    asks = render_mandate_text(member=member, choices=choices)
    assert "sends it only if I confirm" in asks
    told = render_mandate_text(
        member=member, choices=type(choices)(**{**choices.__dict__, "irreversible_without_asking": True})
    )
    assert "without asking me again each time" in told
    assert Mandate._meta.get_field("irreversible_without_asking").default is False
    assert mail.outbox == []


def test_at_launch_each_member_included_is_told_what_is_asked_in_their_name(
    cast, client, django_capture_on_commit_callbacks
):
    campaign = cast["campaign"]
    ask(campaign)
    answer(cast["ada"], campaign, yes=False)
    with at(ASKED + dt.timedelta(days=4)), django_capture_on_commit_callbacks(execute=True):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system())
    [told] = Notice.objects.filter(member=cast["ada"], subject__contains="is now acting for you")
    assert "Access (Art 15) with Acme Ltd" in told.body and "Erasure" not in told.body  # she said no
    assert "Stop AI developers using members' work." in told.body
    assert "We ask each developer to delete what it took." in told.body
    assert "by about 11 January 2027" in told.body  # one month from 11 December 2026
    [grace] = Notice.objects.filter(member=cast["grace"], subject__contains="is now acting for you")
    assert "Erasure (Art 17) with Acme Ltd" in grace.body
    # Told once, however often the task runs.
    assert tasks.campaign_launch_notices_send(campaign.pk) == 0
    client.force_login(cast["ada"].user)
    page = client.get("/me/").content.decode()
    assert "Campaigns acting for you" in page and "Delete it" in page


def test_an_objection_situation_too_long_is_refused_and_what_was_typed_is_kept(community, controller, client):
    community.controllers.add(controller)
    member = make_member(community, "Olive Objector")
    make_mandate(member, rights=[Right.ACCESS, Right.OBJECTION], irreversible_without_asking=False)
    campaign = make_campaign(
        community,
        name="Object",
        rights=[Right.ACCESS, Right.OBJECTION],
        purpose="No AI training.",
        controllers=[controller],
    )
    with at(ASKED):
        confirmation.campaign_ask_to_confirm(
            campaign_id=campaign.pk, confirm_by=CONFIRM_BY, actor=Actor.system()
        )
    token = Confirmation.objects.get(member=member).token
    client.force_login(member.user)
    typed = "My poems are mine. " * 60
    with at(ASKED + dt.timedelta(days=1)):
        page = client.post(f"/me/confirm/{token}/", {"answer": "confirm", "objection_situation": typed})
    assert page.status_code == 400 and "1,000 characters or fewer" in page.content.decode()
    assert "My poems are mine." in page.content.decode()
    assert Confirmation.objects.get(member=member).state == "pending"
    with at(ASKED + dt.timedelta(days=1)):
        client.post(
            f"/me/confirm/{token}/", {"answer": "confirm", "objection_situation": "My poems are mine."}
        )
    assert Confirmation.objects.get(member=member).objection_situation == "My poems are mine."


def test_a_direct_marketing_objection_asks_no_situation_and_says_what_stops(community, controller, client):
    # Art 21(2)-(3) UK GDPR: the objection is absolute, so the member is not asked to justify it.
    community.controllers.add(controller)
    member = make_member(community, "Mo Marketing")
    make_mandate(member, rights=[Right.OBJECTION], irreversible_without_asking=False)
    campaign = make_campaign(
        community,
        name="No more mailings",
        rights=[Right.OBJECTION],
        purpose="Stop junk.",
        controllers=[controller],
    )
    campaign.objection_to = "direct_marketing"
    campaign.save(update_fields=["objection_to"])
    with at(ASKED):
        confirmation.campaign_ask_to_confirm(
            campaign_id=campaign.pk, confirm_by=CONFIRM_BY, actor=Actor.system()
        )
    client.force_login(member.user)
    with at(ASKED + dt.timedelta(days=1)):
        page = client.get(f"/me/confirm/{Confirmation.objects.get(member=member).token}/").content.decode()
    assert "stop using your data for direct marketing" in page
    assert 'name="objection_situation"' not in page
