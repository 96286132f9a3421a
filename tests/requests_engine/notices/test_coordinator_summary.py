"""The coordinators' daily summary of refusals, requests for information and files received."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model

from communities.models import Community
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services, tasks
from requests_engine.notices import coordinators as coordinator_notices
from requests_engine.responses import answers
from requests_engine.responses.files import Upload
from tests.factories import make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db
CONTROLLER = Actor(Actor.CONTROLLER, "1")
DAY = dt.date(2026, 3, 10)


def sent(member, controller, reference):
    request = make_request(member, controller, reference=reference)
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(
        request_id=request.pk, received_on=DAY - dt.timedelta(days=3), actor=Actor.system()
    )
    return request


def member_of(community, name):
    member = make_member(community, name)
    make_mandate(member)
    return member


def text(message):
    return message.get_body(("plain",)).get_content()


@pytest.fixture
def day_of_answers(community, controller):
    """On DAY at noon: a refusal, a partial refusal, a question and a delivery of files; the day before, a
    refusal that belongs to an earlier summary."""
    with time_machine.travel(dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)):
        old = sent(member_of(community, "Old Olga"), controller, "R-OLD")
        services.request_refuse(request_id=old.pk, ground="other", reasons="Earlier.", actor=CONTROLLER)
    with time_machine.travel(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)):
        refused = sent(member_of(community, "Refused Rita"), controller, "R-REF")
        services.request_refuse(
            request_id=refused.pk,
            ground="manifestly_excessive",
            reasons="Third request this month.",
            actor=CONTROLLER,
        )
        partly = sent(member_of(community, "Partly Pat"), controller, "R-PART")
        services.request_partially_fulfil(
            request_id=partly.pk, ground="other", reasons="Loan records are archived.", actor=CONTROLLER
        )
        asked = sent(member_of(community, "Asked Amy"), controller, "R-ASK")
        services.request_ask_for_information(
            request_id=asked.pk,
            kind="identity",
            asked_on=DAY,
            question="Your date of birth, please.",
            actor=CONTROLLER,
        )
        files = sent(member_of(community, "Files Fay"), controller, "R-FILE")
        answers.request_answer(
            action="fulfil",
            request_id=files.pk,
            actor=CONTROLLER,
            uploads=[Upload("loans.csv", b"title,date\nDune,2025-01-02\n")],
        )
    return {"refused": refused, "partly": partly, "asked": asked, "files": files}


def test_coordinators_get_one_email_per_community_with_the_days_refusals_questions_and_files(
    community, coordinator, day_of_answers, mailbox, django_capture_on_commit_callbacks, settings
):
    with (
        time_machine.travel(dt.datetime(2026, 3, 11, 7, tzinfo=dt.UTC)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert tasks.send_coordinator_summaries.delay().get() == 1
    [email] = [m for m in mailbox.messages() if m["Subject"].startswith("Writers,")]
    assert email["To"] == community.contact_email and email["Cc"] == coordinator.email
    assert email["Subject"] == (
        "Writers, 10 March 2026: 2 refusals, 1 request for information, 1 delivery of files"
    )
    body = text(email)
    assert "Tuesday 10 March 2026" in body
    refusals = body[body.index("Refusals (2)") : body.index("Requests for information")]
    assert "R-REF: Acme Ltd, Access (Art 15), refused: Manifestly excessive (Art 12(5))." in refusals
    assert "Third request this month." in refusals
    assert "R-PART: Acme Ltd, Access (Art 15), partly refused: Other." in refusals
    assert "asks for proof of identity: Your date of birth, please." in body and "R-ASK" in body
    assert "R-FILE: Acme Ltd, Access (Art 15), 1 file: loans.csv (text/plain, 27 bytes)" in body
    for request in day_of_answers.values():
        assert f"{settings.SITE_URL}/admin/requests_engine/datarightsrequest/{request.pk}/change/" in body
    assert "R-OLD" not in body  # the day before belongs to its own summary


def test_a_day_is_summarised_once_however_often_the_job_runs(
    community, day_of_answers, mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert coordinator_notices.coordinator_summaries_send(day=DAY) == 1
        assert coordinator_notices.coordinator_summaries_send(day=DAY) == 0
    assert OutboundMessage.objects.filter(purpose="community.daily_summary").count() == 1
    assert len([m for m in mailbox.messages() if m["To"] == community.contact_email]) == 1


def test_nothing_is_sent_for_a_quiet_day(community, day_of_answers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert coordinator_notices.coordinator_summaries_send(day=DAY + dt.timedelta(days=1)) == 0
    assert not OutboundMessage.objects.filter(purpose="community.daily_summary").exists()


def test_each_community_hears_only_about_its_own_requests(
    community, controller, day_of_answers, django_capture_on_commit_callbacks
):
    other = Community.objects.create(
        slug="readers", name="Readers", purpose="Reading.", contact_email="r@readers.test"
    )
    with time_machine.travel(dt.datetime(2026, 3, 10, 15, tzinfo=dt.UTC)):
        theirs = sent(member_of(other, "Reader Rob"), controller, "R-READ")
        services.request_refuse(request_id=theirs.pk, ground="other", reasons="No.", actor=CONTROLLER)
    with django_capture_on_commit_callbacks(execute=True):
        assert coordinator_notices.coordinator_summaries_send(day=DAY) == 2
    by_address = {m.to[0]: m for m in OutboundMessage.objects.filter(purpose="community.daily_summary")}
    assert "R-READ" in by_address["r@readers.test"].body_text
    assert "R-READ" not in by_address[community.contact_email].body_text
    assert "R-REF" not in by_address["r@readers.test"].body_text
    assert by_address["r@readers.test"].subject == "Readers, 10 March 2026: 1 refusal"


def test_inactive_staff_and_members_are_not_copied(community, coordinator):
    user_model = get_user_model()
    user_model.objects.create_user(
        "gone@community.test", "gone@community.test", "pw", is_staff=True, is_active=False
    )
    make_member(community, "Plain Member")
    assert coordinator_notices.coordinator_addresses(community) == (
        community.contact_email,
        [coordinator.email],
    )
