"""What an answer means in law: "no personal data held" is an answer, never a refusal; a fulfilment has
the data it claims (portability in a machine-readable format); the controller's note reaches the member."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from communities.models import Notice, Right
from core.audit import Actor
from core.pdf import render_pdf
from requests_engine.directory import contacts
from requests_engine.escalation.complaints import escalation_reasons
from requests_engine.models import DataRightsRequest
from requests_engine.portal import signin
from requests_engine.responses import answers
from requests_engine.responses.files import Upload
from tests.requests_engine.api.test_api import client_for, sent_request, url

pytestmark = pytest.mark.django_db
CONTROLLER = Actor(Actor.CONTROLLER, "1")


@pytest.fixture
def api(controller):
    contact = contacts.contact_create(controller_id=controller.pk, email="api@acme.test")
    return client_for(contacts.contact_issue_api_token(contact_id=contact.pk))


@pytest.fixture
def portal(client, controller):
    contact = contacts.contact_create(controller_id=controller.pk, email="dpo@acme.test")
    session = client.session
    session[signin.SESSION_KEY] = contact.pk
    session.save()
    return client


def fresh(request) -> DataRightsRequest:
    return DataRightsRequest.objects.get(pk=request.pk)


def test_no_data_held_through_the_portal_is_an_answer_the_member_is_told_of(
    portal, member, controller, mailbox, django_capture_on_commit_callbacks
):
    request = sent_request(member, controller, "B1-M1-AC")
    refused = portal.post(f"/respond/requests/{request.reference}/no-data/", {"searches": ""})
    assert refused.status_code == 400 and "Say what you searched" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        done = portal.post(
            f"/respond/requests/{request.reference}/no-data/",
            {"searches": "Our customer and marketing systems, by the email address given."},
            follow=True,
        )
    assert f"that you hold no personal data of theirs; request {request.reference} is answered" in (
        done.content.decode()
    )
    answered = fresh(request)
    assert answered.state == "fulfilled" and answered.outcome == "no_data_held"
    assert answered.refusal_ground == "" and answered.answered_on is not None
    assert escalation_reasons(answered) == []  # nothing to complain of
    [notice] = Notice.objects.filter(member=member)
    assert notice.subject == "Acme Ltd says it holds no personal data about you"
    assert "That is an answer, not a refusal" in notice.body and "marketing systems" in notice.body


def test_no_data_held_through_the_api_and_a_csv_line(api, member, controller):
    first = sent_request(member, controller, "B1-M1-AC")
    response = api.post(url(first.reference, "no-data-held"), {"searches": "All systems."}, format="json")
    assert response.status_code == 200, response.json()
    assert (
        response.json()["outcome"] == "no_data_held"
        and response.json()["outcome_statement"] == "All systems."
    )
    assert api.post(url(first.reference, "no-data-held"), {}, format="json").status_code in (400, 409)


def test_access_or_portability_fulfilled_without_the_data_is_refused(api, member, controller):
    access = sent_request(member, controller, "B1-M1-AC")
    response = api.post(url(access.reference, "fulfil"), {"note": "Done."}, format="json")
    assert response.status_code == 400
    assert "needs the data" in str(response.json()) and "No personal data held" in str(response.json())
    assert fresh(access).state == "sent"

    portability = sent_request(member, controller, "B1-M1-PO", right=Right.PORTABILITY)
    pdf_only = api.post(
        url(portability.reference, "fulfil"),
        {"files": [SimpleUploadedFile("export.pdf", render_pdf("<p>plays</p>"))]},
        format="multipart",
    )
    assert pdf_only.status_code == 400 and "machine-readable" in str(pdf_only.json())
    assert fresh(portability).state == "sent" and not fresh(portability).files.exists()
    json_file = api.post(
        url(portability.reference, "fulfil"),
        {"files": [SimpleUploadedFile("export.json", b'{"plays": 3}')]},
        format="multipart",
    )
    assert json_file.status_code == 200 and json_file.json()["outcome"] == "portability_provided"


def test_the_controllers_note_reaches_the_member(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    request = sent_request(member, controller, "B1-M1-AC")
    with django_capture_on_commit_callbacks(execute=True):
        answers.request_answer(
            request_id=request.pk,
            action="fulfil",
            actor=CONTROLLER,
            uploads=[Upload(name="data.json", data=b'{"a": 1}')],
            note="Your reading history is in the second file.",
        )
    assert fresh(request).outcome == "data_provided"
    [email] = [m for m in mailbox.messages() if member.user.email in m["To"]]
    assert "Your reading history is in the second file." in email.get_body(("plain",)).get_content()
