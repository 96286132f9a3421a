"""A member's proof of identity: checked, encrypted, seen only by the controller that asked (portal or API,
each view an event), never emailed, deleted 30 days after the request closes."""

import datetime as dt

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import Actor
from core.pdf import render_pdf
from requests_engine import services
from requests_engine.directory import contacts
from requests_engine.models import Controller, DataRightsRequest, IdentityDocument, RequestEvent
from requests_engine.portal import signin
from requests_engine.responses import identity_documents
from tests.factories import make_covered_request

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
PASSPORT = render_pdf("<p>Passport of Ada Lovelace</p>")


@pytest.fixture
def asked(member, controller):
    """Acme asked Ada who she is (Art 12(6))."""
    request = make_covered_request(member, controller, reference="R-ID")
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    services.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=SYSTEM)
    services.request_ask_for_information(
        request_id=request.pk,
        kind="identity",
        question="Please show us who you are.",
        asked_on=timezone.localdate(),
        actor=Actor(Actor.CONTROLLER, "1"),
    )
    return request


def answer(client, member, request, upload):
    client.force_login(member.user)
    return client.post(
        f"/me/requests/{request.reference}/",
        {"answer": "Here is my passport.", "document": upload},
    )


def portal_for(controller, email):
    contact = contacts.contact_create(controller_id=controller.pk, email=email)
    return contact


def test_the_member_uploads_a_document_that_only_the_asking_controller_sees(
    client, member, asked, controller, mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page = answer(client, member, asked, SimpleUploadedFile("passport.pdf", PASSPORT))
    assert page.status_code == 302
    [document] = IdentityDocument.objects.filter(request=asked)
    assert default_storage.open(document.stored.name).read() != PASSPORT  # encrypted at rest
    [email] = [m for m in mailbox.messages() if "privacy@acme.test" in m["To"]]
    assert not list(email.iter_attachments())  # never emailed
    assert "open it in your response portal" in email.get_body(("plain",)).get_content()

    acme = portal_for(controller, "dpo@acme.test")
    token = contacts.contact_issue_api_token(contact_id=acme.pk)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    [listed] = api.get(f"/api/v1/requests/{asked.reference}/").json()["identity_documents"]
    assert listed["name"] == "passport.pdf" and listed["content_type"] == "application/pdf"
    assert api.get(listed["url"]).content == PASSPORT

    other = Controller.objects.create(slug="globex", name="Globex plc", email="privacy@globex.test")
    stranger = APIClient()
    stranger.credentials(
        HTTP_AUTHORIZATION=f"Bearer {contacts.contact_issue_api_token(contact_id=portal_for(other, 'dpo@globex.test').pk)}"
    )
    assert stranger.get(listed["url"]).status_code == 404

    portal = client.__class__()
    session = portal.session
    session[signin.SESSION_KEY] = acme.pk
    session.save()
    page = portal.get(f"/respond/requests/{asked.reference}/").content.decode()
    assert "passport.pdf" in page
    assert portal.get(f"/respond/requests/{asked.reference}/identity/{document.pk}/").content == PASSPORT
    views = RequestEvent.objects.filter(request=asked, kind="request.identity_document_viewed")
    assert views.count() == 2 and {e.actor_id for e in views} == {str(acme.pk)}


def test_a_document_that_is_not_a_pdf_or_photo_is_refused_and_nothing_is_sent(client, member, asked):
    page = answer(client, member, asked, SimpleUploadedFile("notes.txt", b"just some text\n"))
    assert "is not a PDF or a photo" in page.content.decode()
    assert not IdentityDocument.objects.exists()
    assert DataRightsRequest.objects.get(pk=asked.pk).state == "info_requested"


def test_documents_are_deleted_30_days_after_the_request_closes(member, asked):
    with transaction.atomic():
        document = identity_documents.identity_document_store(
            request=DataRightsRequest.objects.select_for_update().get(pk=asked.pk),
            upload=identity_documents.Upload(name="p.pdf", data=PASSPORT),
            actor=SYSTEM,
        )
    services.request_give_information(
        request_id=asked.pk, received_on=timezone.localdate(), actor=SYSTEM, answer="ok"
    )
    answered = timezone.localdate()
    services.request_fulfil(request_id=asked.pk, actor=SYSTEM, answered_on=answered)
    assert identity_documents.identity_documents_expire(today=answered + dt.timedelta(days=29)) == 0
    assert identity_documents.identity_documents_expire(today=answered + dt.timedelta(days=30)) == 1
    document.refresh_from_db()
    assert document.deleted_at is not None and not document.stored
    assert identity_documents.identity_documents_expire(today=answered + dt.timedelta(days=31)) == 0
