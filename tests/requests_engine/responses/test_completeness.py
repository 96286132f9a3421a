"""The Art 15 checklist of an access answer: the controller's declaration (portal, API) prefills it, the
member or a coordinator fills it in, a missing item sends a follow-up letter naming exactly what is missing
with its own deadline (a working day), and only a follow-up left unanswered past it is escalated."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
import time_machine
from rest_framework.test import APIClient

from communities.models import Mandate, Right
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services
from requests_engine.directory import contacts
from requests_engine.escalation import complaints
from requests_engine.events import chain_breaks, describe
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    CompletenessReview,
    Controller,
    ControllerContact,
    DataRightsRequest,
    RequestEvent,
)
from requests_engine.portal import signin
from requests_engine.responses import completeness
from tests.factories import make_campaign, make_covered_request, make_mandate, make_member

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()
CONTROLLER_ACTOR = Actor(Actor.CONTROLLER, "1")
RECEIVED = dt.date(2026, 3, 2)  # Monday
ANSWERED = dt.date(2026, 3, 18)  # Wednesday
# Follow-ups sent on Friday 20 March 2026: 14 days later is Good Friday, 3 April; Easter Monday is a bank
# holiday in England and Wales (not in Scotland), so the deadline is Tuesday 7 April (Monday 6 in Scotland).
FOLLOWUP_DAY = dt.date(2026, 3, 20)
EASTER_ROLLED = dt.date(2026, 4, 7)


def at(day: dt.date):
    """Travel to late morning of `day`, the same date in UTC and in London (GMT or BST)."""
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


def fresh(request: DataRightsRequest) -> DataRightsRequest:
    return DataRightsRequest.objects.select_related("controller").get(pk=request.pk)


def sent(member, controller, *, right=Right.ACCESS, reference=None) -> DataRightsRequest:
    request = make_covered_request(member, controller, right=right, reference=reference)
    # The mandate was signed before the request was sent, so it is in force on every day the tests visit.
    Mandate.objects.filter(pk=request.mandate_id).update(valid_from=RECEIVED - dt.timedelta(days=30))
    with at(RECEIVED):
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=RECEIVED, actor=SYSTEM)
    return fresh(request)


def answered(member, controller, *, right=Right.ACCESS, partly=False, reference=None) -> DataRightsRequest:
    request = sent(member, controller, right=right, reference=reference)
    with at(ANSWERED):
        if partly:
            services.request_partially_fulfil(
                request_id=request.pk,
                ground="legal_privilege",
                reasons="Some of it is legally privileged.",
                actor=CONTROLLER_ACTOR,
            )
        else:
            services.request_fulfil(request_id=request.pk, actor=CONTROLLER_ACTOR)
    return fresh(request)


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "https://writers.example"


@pytest.fixture
def access_answer(member, controller):
    return answered(member, controller, reference="AC-1")


def review_of(request: DataRightsRequest) -> CompletenessReview:
    return CompletenessReview.objects.get(request=request)


def kinds(request: DataRightsRequest) -> list[str]:
    return list(RequestEvent.objects.filter(request=request).order_by("seq").values_list("kind", flat=True))


def checkboxes(page: str, name: str) -> list[str]:
    return re.findall(rf'<input type="checkbox" name="{name}"[^>]*>', page)


def ticked(page: str, name: str) -> list[str]:
    """The values of the ticked checkboxes called `name`, in page order."""
    return [
        re.search(r'value="([^"]+)"', tag).group(1) for tag in checkboxes(page, name) if " checked" in tag
    ]


def addressed_to(mailbox, address: str) -> list:
    return [m for m in mailbox.messages() if address in m["To"]]


def followup_to(mailbox, address: str):
    [message] = addressed_to(mailbox, address)
    return message


def body(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def followups():
    return OutboundMessage.objects.filter(purpose=completeness.FOLLOWUP_PURPOSE)


EXPECTED_LETTER = """\
Writers
c@community.test

20 March 2026

The data protection officer or privacy team
Acme Ltd

# Your answer to access request AC-1 is incomplete

Request: AC-1 (access to personal data, Article 15 UK GDPR), member reference {member}.

Dear data protection team,

On 18 March 2026 you answered the access request AC-1, which we made as the agent of our member under \
Article 15 UK GDPR. Thank you for your answer. It does not, however, contain everything that Article 15 \
requires. It lacks:

- the recipients or categories of recipient to whom the data has been or will be disclosed (Article \
15(1)(c) UK GDPR);
- where the data was not collected from the member, any available information about its source (Article \
15(1)(g) UK GDPR);
- where the data is transferred outside the UK, the safeguards relied on for the transfer (Article 15(2) \
UK GDPR).

Please send these to us by the end of Tuesday 7 April 2026, quoting the reference AC-1. You can answer \
through our response portal at https://writers.example/respond/ or by replying to this email.

If we do not have them by then, we will take the matter further: first with a complaint to you under \
section 164A of the Data Protection Act 2018 and, if need be, to the Information Commissioner's Office.

Yours faithfully,

The coordinators of Writers
for Writers
"""
PRESENT = ["copy", "purposes", "categories", "retention", "rights", "automated"]
MISSING = ["recipients", "source", "safeguards"]


# -- the controller's declaration -------------------------------------------------------------------------


def test_the_portal_declaration_prefills_the_members_checklist(client, member, controller, access_answer):
    request = sent(member, controller, reference="AC-2")
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test")
    session = client.session
    session[signin.SESSION_KEY] = contact.pk
    session.save()
    page = client.get(f"/respond/requests/{request.reference}/").content.decode()
    # Offered in the fulfil and the partly-fulfil forms, none ticked.
    assert len(checkboxes(page, "art15_items")) == 18 and ticked(page, "art15_items") == []
    assert 'id="fulfil-art15-items_8"' in page and 'id="partial-art15-items_8"' in page

    upload = io.BytesIO(b'{"name": "Ada"}')
    upload.name = "data.json"
    response = client.post(
        f"/respond/requests/{request.reference}/fulfil/",
        {"files": [upload], "art15_items": ["purposes", "copy"]},
    )
    assert response.status_code == 302
    assert fresh(request).state == "fulfilled"
    review = review_of(request)
    assert (review.declared, review.present, review.reviewed_at) == (["copy", "purposes"], [], None)
    event = RequestEvent.objects.get(request=request, kind="request.art15_declared")
    assert (event.actor_kind, event.payload) == ("controller", {"items": ["copy", "purposes"]})

    client.force_login(member.user)
    detail = client.get(f"/me/requests/{request.reference}/").content.decode()
    assert "Is their answer complete?" in detail
    assert len(checkboxes(detail, "present")) == 9
    assert ticked(detail, "present") == ["copy", "purposes"]


def test_the_portal_asks_an_erasure_whom_it_told_and_declares_that(client, member, controller):
    # Art 19 UK GDPR: an erasure done names the recipients told, or says there were none.
    erasure = sent(member, controller, right=Right.ERASURE, reference="ER-1")
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test")
    session = client.session
    session[signin.SESSION_KEY] = contact.pk
    session.save()
    page = client.get("/respond/requests/ER-1/").content.decode()
    assert "art15_items" not in page and 'name="recipients_told"' in page
    missing = client.post("/respond/requests/ER-1/fulfil/", {"note": "Erased."})
    assert missing.status_code == 400 and "Say whom you told of the erasure" in missing.content.decode()
    assert fresh(erasure).state == "sent"
    client.post(
        "/respond/requests/ER-1/fulfil/", {"note": "Erased.", "recipients_told": "Our mailing house."}
    )
    assert (fresh(erasure).state, fresh(erasure).recipients_told) == ("fulfilled", "Our mailing house.")
    assert review_of(erasure).declared == ["erased", "recipients_told"]
    # A forged Art 15 list on another right is refused in words, and the answer with it is not recorded.
    other = sent(member, controller, right=Right.ERASURE, reference="ER-2")
    page = client.post(
        "/respond/requests/ER-2/fulfil/", {"art15_items": ["copy"], "recipients_told": "None."}
    ).content.decode()
    assert "Unknown item &#x27;copy&#x27; for the Erasure (Art 17) checklist" in page
    assert fresh(other).state == "sent"


def test_the_portal_partial_answer_declares_its_items(client, member, controller):
    request = sent(member, controller, reference="AC-3")
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test")
    session = client.session
    session[signin.SESSION_KEY] = contact.pk
    session.save()
    response = client.post(
        f"/respond/requests/{request.reference}/partially-fulfil/",
        {
            "ground": "legal_privilege",
            "reasons": "Some of it is legally privileged.",
            "art15_items": ["copy"],
        },
    )
    assert response.status_code == 302 and fresh(request).state == "partially_fulfilled"
    assert review_of(request).declared == ["copy"]


# -- the API field ------------------------------------------------------------------------------------------


@pytest.fixture
def api(controller):
    contact = contacts.contact_create(controller_id=controller.pk, email="api@acme.test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {contacts.contact_issue_api_token(contact_id=contact.pk)}")
    return client


def test_the_api_takes_the_art15_items_with_a_fulfilment(api, member, controller):
    request = sent(member, controller, reference="AC-4")
    upload = io.BytesIO(b"name,email\nAda,ada@example.test\n")
    upload.name = "data.csv"
    response = api.post(
        "/api/v1/requests/AC-4/fulfil/",
        {"files": [upload], "note": "Attached.", "art15_items": ["safeguards", "copy", "copy"]},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    assert review_of(request).declared == ["copy", "safeguards"]


def test_the_api_takes_repeated_art15_items_in_a_multipart_partial_answer(api, member, controller):
    request = sent(member, controller, reference="AC-5")
    upload = io.BytesIO(b"name,email\nAda,ada@example.test\n")
    upload.name = "data.csv"
    response = api.post(
        "/api/v1/requests/AC-5/partially-fulfil/",
        {
            "files": [upload],
            "ground": "legal_privilege",
            "reasons": "Some of it is legally privileged.",
            "art15_items": ["copy", "purposes", "rights"],
        },
        format="multipart",
    )
    assert response.status_code == 200, response.content
    assert review_of(request).declared == ["copy", "purposes", "rights"]


def test_the_api_leaves_the_declaration_out_when_the_field_is(api, member, controller):
    request = sent(member, controller, reference="AC-6")
    upload = io.BytesIO(b"name,email\nAda,ada@example.test\n")
    upload.name = "data.csv"
    answered = api.post("/api/v1/requests/AC-6/fulfil/", {"files": [upload], "note": "x"}, format="multipart")
    assert answered.status_code == 200
    assert not CompletenessReview.objects.filter(request=request).exists()


def test_the_api_refuses_bad_art15_items_as_field_errors_and_records_nothing(api, member, controller):
    access = sent(member, controller, reference="AC-7")
    unknown = api.post("/api/v1/requests/AC-7/fulfil/", {"art15_items": ["everything"]}, format="json")
    assert unknown.status_code == 400 and "art15_items" in unknown.json()
    erasure = sent(member, controller, right=Right.ERASURE, reference="ER-3")
    wrong_right = api.post(
        "/api/v1/requests/ER-3/fulfil/", {"art15_items": ["copy"], "recipients_told": "None."}, format="json"
    )
    assert wrong_right.status_code == 400
    assert "for the Erasure (Art 17) checklist" in wrong_right.json()["art15_items"][0]
    assert fresh(access).state == "sent" and fresh(erasure).state == "sent"  # the answer was rolled back
    assert not CompletenessReview.objects.exists()
    assert "art15_items" in api.get("/api/schema/").content.decode()


# -- the member's checklist and the follow-up letter ------------------------------------------------------


def test_the_member_checklist_sends_a_follow_up_naming_exactly_the_missing_items(
    client, member, controller, access_answer, mailbox, django_capture_on_commit_callbacks
):
    completeness.items_declare(access_answer, ["copy", "purposes", "recipients"], CONTROLLER_ACTOR)
    client.force_login(member.user)
    with at(FOLLOWUP_DAY), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/me/requests/AC-1/", {"art15_checklist": "1", "present": PRESENT}, follow=True
        )
    page = response.content.decode()
    assert "We have written to Acme Ltd asking for what is missing; they have until 7 April 2026." in page
    assert "It has until the end of Tuesday 7 April 2026" in page

    review = review_of(access_answer)
    assert (review.present, review.missing) == (PRESENT, MISSING)
    assert review.reviewed_by == f"member:{member.pk}"
    assert (review.followup_sent_on, review.followup_due_on) == (FOLLOWUP_DAY, EASTER_ROLLED)
    assert review.followup_message.purpose == completeness.FOLLOWUP_PURPOSE
    assert review.followup_message.status == OutboundMessage.Status.SENT

    letter = followup_to(mailbox, "privacy@acme.test")
    assert letter["Subject"] == "Access request AC-1: your answer of 18 March 2026 is incomplete"
    assert letter["Reply-To"] == "c@community.test"
    assert body(letter) == EXPECTED_LETTER.format(member=member.reference)
    assert len(addressed_to(mailbox, "privacy@acme.test")) == 1
    assert kinds(access_answer)[-3:] == [
        "request.art15_declared",
        "request.art15_reviewed",
        "request.art15_followup_sent",
    ]
    assert chain_breaks() == []

    # Saving again while the follow-up runs sends nothing new.
    with at(FOLLOWUP_DAY + dt.timedelta(days=2)), django_capture_on_commit_callbacks(execute=True):
        again = client.post("/me/requests/AC-1/", {"art15_checklist": "1", "present": PRESENT}, follow=True)
    assert "We have already asked Acme Ltd" in again.content.decode()
    assert len(addressed_to(mailbox, "privacy@acme.test")) == 1


def test_a_complete_checklist_sends_nothing(
    client, member, access_answer, mailbox, django_capture_on_commit_callbacks
):
    client.force_login(member.user)
    everything = completeness.items_of(Right.ACCESS)
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post("/me/requests/AC-1/", {"art15_checklist": "1", "present": everything}, follow=True)
    assert "answer has everything the law asks of it" in page.content.decode()
    assert review_of(access_answer).missing == [] and addressed_to(mailbox, "privacy@acme.test") == []


def test_the_member_sees_no_checklist_on_other_requests_and_cannot_post_one(client, member, controller):
    portability = answered(member, controller, right=Right.PORTABILITY, reference="PO-4")
    waiting = sent(member, controller, reference="AC-8")
    client.force_login(member.user)
    assert "Is their answer complete?" not in client.get("/me/requests/PO-4/").content.decode()
    assert "Is their answer complete?" not in client.get("/me/requests/AC-8/").content.decode()
    page = client.post("/me/requests/AC-8/", {"art15_checklist": "1", "present": ["copy"]}, follow=True)
    assert "only a fulfilled or partly fulfilled request can be checked" in page.content.decode()
    page = client.post("/me/requests/PO-4/", {"art15_checklist": "1", "present": ["copy"]}, follow=True)
    assert "answers are checked for access, erasure and objection requests" in page.content.decode()
    assert not CompletenessReview.objects.filter(request__in=[portability, waiting]).exists()
    answered(member, controller, reference="AC-F")
    forged = client.post(
        "/me/requests/AC-F/", {"art15_checklist": "1", "present": ["everything"]}, follow=True
    )
    assert "Choose only items from the checklist." in forged.content.decode()
    assert not CompletenessReview.objects.exists()


def test_an_outsider_cannot_see_or_fill_a_members_checklist(client, outsider, access_answer):
    client.force_login(outsider)
    assert client.get("/me/requests/AC-1/").status_code == 404
    assert client.post("/me/requests/AC-1/", {"art15_checklist": "1", "present": []}).status_code == 404
    assert not CompletenessReview.objects.exists()


# -- the coordinator's checklist in the back office -------------------------------------------------------


def test_the_coordinator_fills_the_checklist_reviews_and_sends_the_follow_up(
    client, coordinator, member, access_answer, mailbox, django_capture_on_commit_callbacks
):
    completeness.items_declare(access_answer, ["copy", "purposes"], CONTROLLER_ACTOR)
    client.force_login(coordinator)
    change = client.get(
        f"/admin/requests_engine/datarightsrequest/{access_answer.pk}/change/"
    ).content.decode()
    url = f"/admin/requests_engine/datarightsrequest/{access_answer.pk}/completeness/"
    assert "Declared by the controller: copy, purposes." in change and url in change

    page = client.get(url).content.decode()
    assert "A copy of the personal data (Art 15(3))" in page
    assert ticked(page, "present") == ["copy", "purposes"]

    with at(FOLLOWUP_DAY):
        saved = client.post(url, {"_save": "1", "present": PRESENT}, follow=True).content.decode()
    assert "Checklist saved: 3 item(s) missing" in saved
    assert "Your answer to access request AC-1 is incomplete" in saved  # the letter, to review
    assert not followups().exists()
    review = review_of(access_answer)
    assert (review.missing, review.reviewed_by) == (MISSING, f"coordinator:{coordinator.pk}")

    with at(FOLLOWUP_DAY), django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {"_send": "1"}, follow=True).content.decode()
    assert "Follow-up letter queued to privacy@acme.test: the controller has until 7 April 2026" in done
    letter = followup_to(mailbox, "privacy@acme.test")
    assert body(letter) == EXPECTED_LETTER.format(member=member.reference)

    with at(FOLLOWUP_DAY):
        twice = client.post(url, {"_send": "1"}, follow=True).content.decode()
    assert "was already sent on 20 March 2026; the controller has until 7 April 2026" in twice
    assert len(addressed_to(mailbox, "privacy@acme.test")) == 1

    with at(dt.date(2026, 3, 30)):
        client.post(url, {"_complete": "1"})
    review = review_of(access_answer)
    assert (review.completed_on, review.missing) == (dt.date(2026, 3, 30), [])
    event = RequestEvent.objects.get(request=access_answer, kind="request.art15_followup_completed")
    assert event.payload["supplied"] == MISSING


def test_the_checklist_page_refuses_a_request_that_cannot_be_reviewed(
    client, coordinator, member, controller
):
    waiting = sent(member, controller, reference="AC-9")
    client.force_login(coordinator)
    url = f"/admin/requests_engine/datarightsrequest/{waiting.pk}/completeness/"
    page = client.get(url).content.decode()
    assert "only a fulfilled or partly fulfilled request can be checked" in page
    assert 'name="_save"' not in page
    refused = client.post(url, {"_save": "1", "present": ["copy"]}, follow=True).content.decode()
    assert "only a fulfilled or partly fulfilled request can be checked" in refused
    assert not CompletenessReview.objects.exists()


# -- the follow-up's deadline -----------------------------------------------------------------------------


def test_the_follow_up_deadline_is_rolled_past_easter_to_a_working_day_of_the_controllers_nation():
    assert completeness.followup_due_date(FOLLOWUP_DAY, jurisdiction="england-and-wales") == EASTER_ROLLED
    # Scotland has Good Friday but no Easter Monday.
    assert completeness.followup_due_date(FOLLOWUP_DAY, jurisdiction="scotland") == dt.date(2026, 4, 6)
    # A weekday needs no roll; a Saturday moves to Monday.
    assert completeness.followup_due_date(dt.date(2026, 3, 4), jurisdiction="england-and-wales") == dt.date(
        2026, 3, 18
    )
    assert completeness.followup_due_date(dt.date(2026, 3, 7), jurisdiction="england-and-wales") == dt.date(
        2026, 3, 23
    )


def test_the_number_of_follow_up_days_is_a_setting(settings):
    settings.COMPLETENESS_FOLLOWUP_DAYS = 10
    assert completeness.followup_due_date(FOLLOWUP_DAY, jurisdiction="england-and-wales") == dt.date(
        2026, 3, 30
    )
    settings.COMPLETENESS_FOLLOWUP_DAYS = 0
    with pytest.raises(RequestEngineError, match="COMPLETENESS_FOLLOWUP_DAYS"):
        completeness.followup_due_date(FOLLOWUP_DAY, jurisdiction="england-and-wales")


def test_a_scottish_controllers_follow_up_is_due_on_easter_monday(
    community, mailbox, django_capture_on_commit_callbacks
):
    scot = Controller.objects.create(
        slug="scot", name="Scot Ltd", email="dp@scot.test", jurisdiction="scotland"
    )
    ada = make_member(community, "Ada Scott")
    make_mandate(ada)
    request = answered(ada, scot, reference="AC-S")
    with at(FOLLOWUP_DAY), django_capture_on_commit_callbacks(execute=True):
        review = completeness.review_save_and_follow_up(request, ["copy"], SYSTEM)
    assert review.followup_due_on == dt.date(2026, 4, 6)
    assert "by the end of Monday 6 April 2026" in body(followup_to(mailbox, "dp@scot.test"))


# -- escalation -------------------------------------------------------------------------------------------


def test_an_unanswered_follow_up_is_escalated_only_after_its_deadline(access_answer):
    with at(FOLLOWUP_DAY):
        completeness.review_save_and_follow_up(access_answer, PRESENT, SYSTEM)
    with at(ANSWERED + dt.timedelta(days=1)):
        assert complaints.escalation_reasons(fresh(access_answer)) == []  # checked, follow-up running
    for running in (FOLLOWUP_DAY, dt.date(2026, 4, 3), EASTER_ROLLED):
        with at(running):
            assert complaints.escalation_reasons(fresh(access_answer)) == []
    with at(EASTER_ROLLED + dt.timedelta(days=1)):
        request = fresh(access_answer)
        reasons = complaints.escalation_reasons(request)
        assert reasons == [complaints.INCOMPLETE_ANSWER]
        [sentence] = complaints.reason_sentences(request, reasons)
    assert sentence == (
        "The answer lacks the recipients or categories of recipient to whom the data has been or will "
        "be disclosed (Article 15(1)(c) UK GDPR); where the data was not collected from the member, any "
        "available information about its source (Article 15(1)(g) UK GDPR); and where the data is "
        "transferred outside the UK, the safeguards relied on for the transfer (Article 15(2) UK GDPR); "
        "the follow-up of 20 March 2026 went unanswered by 7 April 2026 (Article 15 UK GDPR)."
    )


def test_a_follow_up_answered_in_time_is_no_reason_to_escalate(access_answer):
    with at(FOLLOWUP_DAY):
        review = completeness.review_save_and_follow_up(access_answer, PRESENT, SYSTEM)
    with at(dt.date(2026, 4, 1)):
        completeness.followup_complete(review, SYSTEM)
    with at(dt.date(2026, 5, 1)):
        assert complaints.escalation_reasons(fresh(access_answer)) == []
        with pytest.raises(RequestEngineError, match="already completed on 1 April 2026"):
            completeness.followup_complete(review, SYSTEM)


def test_a_re_checked_answer_with_nothing_missing_completes_the_follow_up(access_answer):
    with at(FOLLOWUP_DAY):
        completeness.review_save_and_follow_up(access_answer, PRESENT, SYSTEM)
    with at(dt.date(2026, 4, 2)):
        review = completeness.review_save(access_answer, PRESENT + MISSING, SYSTEM)
    assert (review.completed_on, review.missing) == (dt.date(2026, 4, 2), [])
    with at(dt.date(2026, 5, 1)):
        assert complaints.escalation_reasons(fresh(access_answer)) == []


def test_a_partial_answer_keeps_its_own_flags_and_gains_the_incompleteness_one(member, controller):
    request = answered(member, controller, partly=True, reference="AC-P")
    with at(FOLLOWUP_DAY):
        completeness.review_save_and_follow_up(request, PRESENT, SYSTEM)
    with at(EASTER_ROLLED):
        assert complaints.INCOMPLETE_ANSWER not in complaints.escalation_reasons(fresh(request))
    with at(EASTER_ROLLED + dt.timedelta(days=1)):
        reasons = complaints.escalation_reasons(fresh(request))
    assert reasons[0] == complaints.PARTLY_FULFILLED and complaints.INCOMPLETE_ANSWER in reasons


def test_the_complaint_draft_names_what_the_answer_lacks(community, controller, coordinator):
    campaign = make_campaign(
        community, name="Training data", rights=["access"], purpose="Find out about AI training."
    )
    with at(RECEIVED):  # a mandate in force on the day the complaint is drafted
        writer = make_member(community, "Mary Shelley")
        make_mandate(writer)
    request = answered(writer, controller, reference="AC-C")
    DataRightsRequest.objects.filter(pk=request.pk).update(campaign=campaign)
    with at(FOLLOWUP_DAY):
        completeness.review_save_and_follow_up(request, PRESENT, SYSTEM)
    with at(EASTER_ROLLED), pytest.raises(RequestEngineError, match="needs a complaint today"):
        complaints.complaint_draft(
            campaign_id=campaign.pk, controller_id=controller.pk, actor=Actor.user(coordinator)
        )
    with at(EASTER_ROLLED + dt.timedelta(days=1)):
        draft = complaints.complaint_draft(
            campaign_id=campaign.pk, controller_id=controller.pk, actor=Actor.user(coordinator)
        )
    assert list(draft.requests.values_list("reference", flat=True)) == ["AC-C"]
    assert "the follow-up of 20 March 2026 went unanswered by 7 April 2026" in draft.grounds


# -- refusals ---------------------------------------------------------------------------------------------


def test_only_answered_access_erasure_and_objection_requests_can_be_checked(member, controller):
    erasure = answered(member, controller, right=Right.PORTABILITY, reference="PO-5")
    waiting = sent(member, controller, reference="AC-W")
    refused = sent(member, controller, reference="AC-R")
    services.request_refuse(
        request_id=refused.pk,
        ground="manifestly_excessive",
        reasons="Too much work for us this month.",
        actor=CONTROLLER_ACTOR,
    )
    for action in (
        lambda r: completeness.items_declare(r, ["copy"], CONTROLLER_ACTOR),
        lambda r: completeness.review_save(r, ["copy"], SYSTEM),
        lambda r: completeness.review_save_and_follow_up(r, ["copy"], SYSTEM),
    ):
        with pytest.raises(
            RequestEngineError, match="PO-5 is a Portability \\(Art 20\\) request: answers are checked"
        ):
            action(erasure)
        with pytest.raises(
            RequestEngineError, match="AC-W is sent, waiting for the controller: only a fulfilled"
        ):
            action(fresh(waiting))
        with pytest.raises(RequestEngineError, match="AC-R is refused: only a fulfilled or partly fulfilled"):
            action(fresh(refused))
    assert not CompletenessReview.objects.exists()


def test_a_follow_up_needs_a_checklist_something_missing_and_an_address(member, controller, access_answer):
    review = completeness.items_declare(access_answer, ["copy"], CONTROLLER_ACTOR)
    with pytest.raises(RequestEngineError, match="Fill in the checklist for request AC-1 first"):
        completeness.followup_send(review, SYSTEM)
    with pytest.raises(RequestEngineError, match="No follow-up was sent for request AC-1"):
        completeness.followup_complete(review, SYSTEM)
    everything = completeness.review_save(access_answer, completeness.items_of(Right.ACCESS), SYSTEM)
    with pytest.raises(RequestEngineError, match="Nothing is missing from the answer to request AC-1"):
        completeness.followup_send(everything, SYSTEM)
    with pytest.raises(RequestEngineError, match="Unknown item 'all' for the Access \\(Art 15\\) checklist"):
        completeness.review_save(access_answer, ["all"], SYSTEM)
    Controller.objects.filter(pk=controller.pk).update(email="")
    partial = completeness.review_save(access_answer, ["copy"], SYSTEM)
    with pytest.raises(RequestEngineError, match="Acme Ltd has no usable email address"):
        completeness.followup_send(partial, SYSTEM)
    assert review_of(access_answer).followup_sent_on is None and not followups().exists()


def test_every_checklist_event_reads_as_a_sentence():
    for kind in (
        "request.art15_declared",
        "request.art15_reviewed",
        "request.art15_followup_sent",
        "request.art15_followup_completed",
    ):
        assert describe(RequestEvent(kind=kind)) != kind


def test_a_fulfilled_answer_can_be_complained_about_only_once_its_follow_up_went_unanswered(access_answer):
    with at(FOLLOWUP_DAY):
        completeness.review_save_and_follow_up(access_answer, PRESENT, SYSTEM)
    with at(EASTER_ROLLED), pytest.raises(RequestEngineError):
        complaints.request_complain_to_controller(request_id=access_answer.pk, actor=SYSTEM)
    assert fresh(access_answer).state == "fulfilled"
    with at(EASTER_ROLLED + dt.timedelta(days=1)):
        complaints.request_complain_to_controller(request_id=access_answer.pk, actor=SYSTEM)
    assert fresh(access_answer).state == "complaint_to_controller"


def test_a_complete_fulfilled_answer_gives_nothing_to_complain_about(member, controller):
    request = answered(member, controller, reference="AC-OK")
    with at(EASTER_ROLLED + dt.timedelta(days=30)), pytest.raises(RequestEngineError):
        complaints.request_complain_to_controller(request_id=request.pk, actor=SYSTEM)
    assert fresh(request).state == "fulfilled"


def test_an_erasure_answer_is_checked_against_art_17_and_19_and_followed_up(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    # RULES.md (h): the erasure or its Art 17(3) exception, the Art 19 recipients, backups and suppression.
    mandate = member.mandates.first()
    mandate.rights = [Right.ACCESS, Right.ERASURE]
    mandate.save(update_fields=["rights"])
    erasure = answered(member, controller, right=Right.ERASURE, reference="ER-9")
    with at(FOLLOWUP_DAY), django_capture_on_commit_callbacks(execute=True):
        review = completeness.review_save_and_follow_up(erasure, ["erased"], SYSTEM)
    assert review.missing == ["recipients_told", "backups"]
    letter = followup_to(mailbox, "privacy@acme.test")
    assert letter["Subject"] == "Erasure request ER-9: your answer of 18 March 2026 is incomplete"
    text = " ".join(body(letter).split())
    assert "under Articles 17 and 19 UK GDPR" in text
    assert "or a statement that there were none (Article 19 UK GDPR)" in text
    assert "whether you keep a suppression record" in text
    with at(EASTER_ROLLED + dt.timedelta(days=1)):
        request = fresh(erasure)
        assert complaints.escalation_reasons(request) == [complaints.INCOMPLETE_ANSWER]
        [sentence] = complaints.reason_sentences(request, [complaints.INCOMPLETE_ANSWER])
    assert sentence.endswith("(Articles 17 and 19 UK GDPR).")


def test_an_objection_answer_must_say_what_stopped_and_that_no_marketing_continues(member, controller):
    # RULES.md (i): Art 21(1) processing stopped (or grounds shown); direct marketing stopped absolutely.
    objection = answered(member, controller, right=Right.OBJECTION, reference="OB-9")
    with at(FOLLOWUP_DAY):
        review = completeness.review_save(objection, ["stopped"], SYSTEM)
    assert review.missing == ["marketing_stopped"]
    subject, text = completeness.followup_letter(review, sent_on=FOLLOWUP_DAY)
    assert subject == "Objection OB-9: your answer of 18 March 2026 is incomplete"
    assert (
        "direct marketing, including profiling related to it, continues (Article 21(2) and (3) UK GDPR)"
        in (" ".join(text.split()))
    )
