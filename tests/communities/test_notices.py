"""Member notices: an email at each step, or one digest a day, through the outbox to a real SMTP server."""

import datetime as dt

import pytest

from communities import notices, tasks
from communities import services as community_services
from communities.models import Member, Notice
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services
from requests_engine.responses import answers
from tests.factories import make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db
CONTROLLER = Actor(Actor.CONTROLLER, "1")


def sent(member, controller, reference):
    request = make_request(member, controller, reference=reference)
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=dt.date.today(), actor=Actor.system())
    return request


def to(mailbox, address):
    return [m for m in mailbox.messages() if address in m["To"]]


def text(message):
    return message.get_body(("plain",)).get_content()


def test_a_member_who_wants_each_step_is_emailed_at_once(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    request = sent(member, controller, "R-EACH")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_refuse(
            request_id=request.pk,
            ground="manifestly_excessive",
            reasons="Too many requests this year.",
            actor=CONTROLLER,
        )
    [email] = to(mailbox, member.user.email)
    assert email["Subject"] == "Acme Ltd refused your request"
    body = text(email)
    assert "R-EACH" in body and "Too many requests this year." in body and "Manifestly excessive" in body
    assert "complain to the ICO yourself" in body and "/me/requests/R-EACH/" in body
    assert f"/me/{member.reference}/notifications/" in body  # how to switch to the digest
    notice = Notice.objects.get(member=member)
    assert notice.emailed_at is not None and notice.link == "/me/requests/R-EACH/"
    assert OutboundMessage.objects.get(subject_type="notice").status == "sent"


def test_a_member_on_the_digest_gets_one_email_listing_every_new_notice_once(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    notices.notifications_choose(member=member, notifications=Member.Notifications.DAILY)
    asked = sent(member, controller, "R-ASKED")
    extended = sent(member, controller, "R-LONGER")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_ask_for_information(
            request_id=asked.pk,
            kind="clarification",
            asked_on=dt.date.today(),
            question="Which of your accounts?",
            actor=CONTROLLER,
        )
        services.request_extend(
            request_id=extended.pk, months=2, reason="Many requests at once.", actor=CONTROLLER
        )
    assert to(mailbox, member.user.email) == []
    assert Notice.objects.filter(member=member, emailed_at__isnull=True).count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_member_digests.delay().get() == 1
    [digest] = to(mailbox, member.user.email)
    assert digest["Subject"] == "Writers: 2 updates on your requests"
    body = text(digest)
    assert "Acme Ltd asks you to clarify your request" in body and "Which of your accounts?" in body
    assert (
        "Acme Ltd has extended the time to answer your request" in body and "Many requests at once." in body
    )
    assert "/me/requests/R-ASKED/" in body and "/me/requests/R-LONGER/" in body
    assert not Notice.objects.filter(member=member, emailed_at__isnull=True).exists()

    # Idempotent: a second run (or one overlapping it) finds nothing left to send.
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.digests_send() == 0
    assert len(to(mailbox, member.user.email)) == 1

    # Only what is new goes into the next one.
    with django_capture_on_commit_callbacks(execute=True):
        services.request_fulfil(request_id=extended.pk, actor=CONTROLLER)
        assert notices.digests_send() == 1
    latest = text(to(mailbox, member.user.email)[-1])
    assert "Acme Ltd answered your request" in latest and "R-ASKED" not in latest


def test_digest_skips_members_with_nothing_new_and_members_who_want_each_step(
    community, controller, mailbox, django_capture_on_commit_callbacks
):
    each = make_member(community, "Each Eve")
    make_mandate(each)
    idle = make_member(community, "Idle Ida")
    notices.notifications_choose(member=idle, notifications="daily")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_refuse(
            request_id=sent(each, controller, "R-EVE").pk, ground="other", reasons="No.", actor=CONTROLLER
        )
        assert notices.digests_send() == 0
    assert [m["To"] for m in mailbox.messages()] == [each.user.email]


def test_notices_waiting_for_the_digest_still_go_out_after_switching_back_to_each(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    notices.notifications_choose(member=member, notifications="daily")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_refuse(
            request_id=sent(member, controller, "R-SW").pk, ground="other", reasons="No.", actor=CONTROLLER
        )
    notices.notifications_choose(member=member, notifications="each")
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.digests_send() == 1
    assert "Acme Ltd refused your request" in text(to(mailbox, member.user.email)[0])


def test_a_question_about_the_communitys_authority_is_not_put_to_the_member(member, controller):
    request = sent(member, controller, "R-AUTH")
    services.request_ask_for_information(
        request_id=request.pk,
        kind="authority",
        asked_on=dt.date.today(),
        question="Show the mandate.",
        actor=CONTROLLER,
    )
    assert not Notice.objects.filter(member=member).exists()


def test_an_answer_with_files_is_one_notice_naming_the_files(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    from requests_engine.responses.files import Upload

    request = sent(member, controller, "R-FILES")
    with django_capture_on_commit_callbacks(execute=True):
        answers.request_answer(
            action="fulfil",
            request_id=request.pk,
            actor=CONTROLLER,
            uploads=[Upload("export.json", b'{"loans": []}')],
        )
    [email] = to(mailbox, member.user.email)
    assert email["Subject"] == "Acme Ltd sent your data" and "export.json" in text(email)
    assert Notice.objects.filter(member=member).count() == 1
    assert not request.files.filter(member_notified_at__isnull=True).exists()


def test_notify_member_refuses_a_link_off_the_site(member):
    for link in ("https://evil.example/", "//evil.example/x", "me/requests/"):
        with pytest.raises(ValueError, match="path on this site"):
            notices.notify_member(member, "Hello", "Body", link)
    with pytest.raises(ValueError, match="subject"):
        notices.notify_member(member, " \n ", "Body")
    assert not Notice.objects.exists()


def test_the_settings_form_on_me_saves_the_choice(client, member):
    client.force_login(member.user)
    page = client.get("/me/").content.decode()
    assert f'action="/me/{member.reference}/notifications/"' in page and "One email a day" in page
    response = client.post(f"/me/{member.reference}/notifications/", {"notifications": "daily"}, follow=True)
    assert response.redirect_chain[-1][0] == "/me/"
    assert "Saved: one email a day" in response.content.decode()
    assert Member.objects.get(pk=member.pk).notifications == "daily"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose how often we email you"),
        ({"notifications": "weekly"}, "Choose an email at each step or one email a day"),
    ],
)
def test_the_settings_form_refuses_bad_input_with_a_clear_error(client, member, data, message):
    client.force_login(member.user)
    response = client.post(f"/me/{member.reference}/notifications/", data)
    page = response.content.decode()
    assert response.status_code == 200 and message in page and "govuk-error-summary" in page
    assert page.count(message) == 2  # in the summary and beside the field
    assert Member.objects.get(pk=member.pk).notifications == "each"


def test_another_persons_settings_are_not_found(client, member, outsider):
    client.force_login(outsider)
    assert (
        client.post(f"/me/{member.reference}/notifications/", {"notifications": "daily"}).status_code == 404
    )
    assert Member.objects.get(pk=member.pk).notifications == "each"


def test_me_lists_recent_notices_and_which_wait_for_the_digest(client, member, controller):
    notices.notify_member(member, "Acme Ltd refused your request", "Body", "/me/requests/R1/")
    notices.notifications_choose(member=member, notifications="daily")
    notices.notify_member(member, "Acme Ltd sent your data <b>", "Body", "/me/requests/R2/")
    client.force_login(member.user)
    page = client.get("/me/").content.decode()
    assert '<a class="govuk-link" href="/me/requests/R1/">Acme Ltd refused your request</a>' in page
    assert "Acme Ltd sent your data &lt;b&gt;" in page and "In your next daily email" in page


def test_deleting_the_account_deletes_the_notices(member):
    notices.notify_member(member, "Something", "Body")
    community_services.account_delete(user=member.user)
    assert not Notice.objects.filter(member=member).exists()
