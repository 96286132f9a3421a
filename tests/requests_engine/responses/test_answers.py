"""The one answer path: whatever surface a controller answers through, a refused answer changes nothing and
leaves no stored file behind (the encrypted upload would otherwise be personal data no retention run or key
rotation ever finds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from communities.models import Right
from core.audit import Actor
from requests_engine.directory import contacts
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import ControllerContact, DataRightsRequest, ReceivedFile
from requests_engine.portal import signin
from requests_engine.responses import answers
from requests_engine.responses.files import Upload
from tests.requests_engine.api.test_api import client_for, sent_request, url

pytestmark = pytest.mark.django_db

EXPORT = b'{"plays": [1, 2, 3]}'


def files_in_storage() -> int:
    """Every file under the media root, whatever its folder."""
    root = Path(django_settings.MEDIA_ROOT)
    return sum(1 for path in root.rglob("*") if path.is_file()) if root.exists() else 0


@pytest.fixture
def api(controller):
    contact = contacts.contact_create(controller_id=controller.pk, email="api@acme.test")
    return client_for(contacts.contact_issue_api_token(contact_id=contact.pk))


def upload(name: str = "export.json", data: bytes = EXPORT) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def refused_elsewhere(request: DataRightsRequest) -> DataRightsRequest:
    answers.request_answer(
        request_id=request.pk, action="refuse", actor=Actor.system(), ground="other", reasons="No."
    )
    return request


@pytest.mark.parametrize(
    ("right", "step", "body", "status", "field"),
    [
        # The files pass every check and are stored; the Art 15 items then fail: not an access request.
        (Right.ERASURE, "fulfil", {"art15_items": ["copy"], "recipients_told": "None."}, 400, "art15_items"),
        # An erasure says whom it told (Art 19).
        (Right.ERASURE, "fulfil", {}, 400, "recipients_told"),
        (Right.ACCESS, "fulfil", {"art15_items": ["everything"]}, 400, "art15_items"),
        (
            Right.PORTABILITY,
            "partially-fulfil",
            {"ground": "legal_privilege", "reasons": "Some.", "art15_items": ["copy"]},
            400,
            "art15_items",
        ),
        # One refused file among good ones refuses the upload.
        (Right.ACCESS, "fulfil", {"files": [upload(), upload("empty.json", b"")]}, 400, "files"),
    ],
)
def test_an_api_answer_refused_for_any_reason_leaves_no_file_in_storage(
    api, member, controller, right, step, body, status, field
):
    request = sent_request(member, controller, "B1-M1-XX", right=right)
    before = files_in_storage()
    response = api.post(url(request.reference, step), {"files": [upload()], **body}, format="multipart")
    assert response.status_code == status and field in response.json(), response.json()
    assert files_in_storage() == before
    assert not ReceivedFile.objects.exists()
    assert DataRightsRequest.objects.get(pk=request.pk).state == "sent"


def test_an_api_answer_the_state_no_longer_allows_is_409_and_stores_nothing(api, member, controller):
    request = refused_elsewhere(sent_request(member, controller, "B1-M1-AC"))
    before = files_in_storage()
    response = api.post(url(request.reference, "fulfil"), {"files": [upload()]}, format="multipart")
    assert response.status_code == 409
    assert files_in_storage() == before and not ReceivedFile.objects.exists()


def test_an_api_answer_refused_under_an_idempotency_key_leaves_no_file(api, member, controller):
    request = sent_request(member, controller, "B1-M1-ER", right=Right.ERASURE)
    before = files_in_storage()
    response = api.post(
        url(request.reference, "fulfil"),
        {"files": [upload()], "art15_items": ["copy"]},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="7d1f0c2e-4b8a-4c55-9f0e-2a1b3c4d5e6f",
    )
    assert response.status_code == 400
    assert files_in_storage() == before and not ReceivedFile.objects.exists()


def test_a_portal_answer_refused_leaves_no_file_in_storage(client, member, controller):
    request = sent_request(member, controller, "B1-M1-ER", right=Right.ERASURE)
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test")
    session = client.session
    session[signin.SESSION_KEY] = contact.pk
    session.save()
    before = files_in_storage()
    page = client.post(
        f"/respond/requests/{request.reference}/fulfil/",
        {"files": [upload()], "art15_items": ["copy"], "recipients_told": "None."},
    )
    assert page.status_code == 400 and "for the Erasure (Art 17) checklist" in page.content.decode()
    assert files_in_storage() == before and not ReceivedFile.objects.exists()


def test_the_answer_path_removes_its_files_when_the_transition_fails(member, controller):
    request = sent_request(member, controller, "B1-M1-AC")
    before = files_in_storage()
    with pytest.raises(RequestEngineError, match="reasons"):
        answers.request_answer(
            request_id=request.pk, action="extend", actor=Actor.system(), months=1, reasons=" "
        )
    with pytest.raises(RequestEngineError, match="Files go only with fulfil"):
        answers.request_answer(
            request_id=request.pk,
            action="refuse",
            actor=Actor.system(),
            uploads=[Upload("a.json", EXPORT)],
            ground="other",
            reasons="No.",
        )
    assert files_in_storage() == before


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Partly fulfil", "partially_fulfil"),
        ("partially-fulfil", "partially_fulfil"),
        ("FULFILL", "fulfil"),
        ("request_information", "ask"),
        (" acknowledge ", "acknowledge"),
    ],
)
def test_an_action_is_understood_however_a_csv_writes_it(written, name):
    assert answers.action_named(written).name == name


def test_an_unknown_action_is_refused_naming_the_ones_there_are():
    with pytest.raises(RequestEngineError, match="unknown action “destroy”: use acknowledge, ask, extend"):
        answers.action_named("destroy")


def test_the_actions_offered_are_those_the_state_allows(member, controller):
    request = sent_request(member, controller, "B1-M1-AC")
    assert {a.name for a in answers.actions_allowed(request)} == set(answers.ACTIONS)
    refused_elsewhere(request)
    assert answers.actions_allowed(DataRightsRequest.objects.get(pk=request.pk)) == []
