"""The response portal: sign-in by single-use link, isolation between controllers, every answer."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from core.audit import Actor
from requests_engine import services
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Controller, ControllerContact, DataRightsRequest, PortalSignInLink
from requests_engine.responses import answers
from requests_engine.responses.files import received_file_data
from tests.factories import make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(controller):
    return ControllerContact.objects.create(controller=controller, email="dpo@acme.test", name="Dee")


def sent_request(member, controller, reference, right="access"):
    request = make_request(member, controller, reference=reference, right=right)
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=Actor.system())
    return request


@pytest.fixture
def acme_requests(community, controller):
    made = []
    for index, name in enumerate(["Ada Lovelace", "Mary Shelley", "Sam Pepys"]):
        member = make_member(community, name)
        make_mandate(member, rights=["access", "portability"])
        made.append(sent_request(member, controller, f"B1-M{index}-AC"))
    return made


def sign_in(client, contact, mailoutbox, capture):
    with capture(execute=True):
        client.post("/respond/", {"email": contact.email.upper()})
    link = re.search(r"https?://\S+/respond/sign-in/\S+/", mailoutbox[-1].body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert "Press the button" in client.get("/" + path).content.decode()  # a GET alone does not sign in
    assert client.post("/" + path).status_code == 302
    return "/" + path


def test_signing_in_by_link_works_once(client, contact, mailoutbox, django_capture_on_commit_callbacks):
    path = sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    assert client.get("/respond/requests/").status_code == 200
    client.post("/respond/sign-out/")
    assert client.post(path).status_code == 410  # reused
    assert client.get("/respond/requests/").status_code == 302


def test_expired_forged_and_revoked_links_fail_closed(
    client, contact, mailoutbox, django_capture_on_commit_callbacks
):
    assert client.get("/respond/sign-in/forged-token/").status_code == 410
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/respond/", {"email": contact.email})
    token = re.search(r"/respond/sign-in/(\S+)/", mailoutbox[-1].body).group(1)
    PortalSignInLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.post(f"/respond/sign-in/{token}/").status_code == 410
    PortalSignInLink.objects.update(expires_at=timezone.now() + timedelta(minutes=5))
    ControllerContact.objects.update(is_active=False)
    assert client.post(f"/respond/sign-in/{token}/").status_code == 410


def test_an_unknown_address_gets_the_same_answer_and_no_email(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post("/respond/", {"email": "nobody@nowhere.test"}).content.decode()
    assert "Check your email" in page and mailoutbox == []


def test_a_contact_sees_and_changes_only_its_controllers_requests(
    client, contact, acme_requests, community, mailoutbox, django_capture_on_commit_callbacks
):
    other = Controller.objects.create(slug="globex", name="Globex", email="dpo@globex.test")
    stranger = make_member(community, "Other Person")
    make_mandate(stranger)
    theirs = sent_request(stranger, other, "B2-M9-AC")
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    listing = client.get("/respond/requests/").content.decode()
    assert "B1-M0-AC" in listing and "B2-M9-AC" not in listing
    assert client.get(f"/respond/requests/{theirs.reference}/").status_code == 404
    assert client.post(f"/respond/requests/{theirs.reference}/acknowledge/").status_code == 404
    client.post("/respond/requests/bulk/", {"references": [theirs.reference], "action": "acknowledge"})
    assert DataRightsRequest.objects.get(pk=theirs.pk).state == "sent"


def test_filters_and_bulk_acknowledge(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks
):
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    assert "3 requests" in client.get("/respond/requests/?state=sent").content.decode()
    assert "0 requests" in client.get("/respond/requests/?state=refused").content.decode()
    response = client.post(
        "/respond/requests/bulk/",
        {"references": ["B1-M0-AC", "B1-M1-AC"], "action": "acknowledge"},
        follow=True,
    )
    assert "2 request(s) updated" in response.content.decode()
    states = dict(DataRightsRequest.objects.values_list("reference", "state"))
    assert states == {"B1-M0-AC": "acknowledged", "B1-M1-AC": "acknowledged", "B1-M2-AC": "sent"}


def test_fulfil_with_an_upload_stores_it_encrypted_for_the_member(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks, settings
):
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    payload = b'{"books_used_for_training": []}'
    upload = io.BytesIO(payload)
    upload.name = "answer.json"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/respond/requests/B1-M0-AC/fulfil/", {"files": [upload], "note": "All of it."}
        )
    assert response.status_code == 302
    request = DataRightsRequest.objects.get(reference="B1-M0-AC")
    stored = request.files.get()
    assert request.state == "fulfilled" and stored.content_type == "application/json"
    with open(f"{settings.MEDIA_ROOT}/{stored.stored.name}", "rb") as on_disk:
        assert payload not in on_disk.read()
    assert received_file_data(stored) == payload
    assert any("sent your data" in m.subject for m in mailoutbox)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("program.pdf", b"\x7fELF\x02\x01\x01" + b"\0" * 200, "which we do not accept"),
        ("evil.zip", None, "leaves its folder"),
        ("bomb.zip", "bomb", "ZIP bomb"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_stored(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks, name, data, message
):
    if data is None or data == "bomb":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            if data is None:
                archive.writestr("../../etc/passwd", "x")
            else:
                archive.writestr("zeros.txt", b"\0" * 5_000_000)
        data = buffer.getvalue()
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    upload = io.BytesIO(data)
    upload.name = name
    response = client.post("/respond/requests/B1-M0-AC/fulfil/", {"files": [upload]})
    assert response.status_code == 400 and message in response.content.decode()
    request = DataRightsRequest.objects.get(reference="B1-M0-AC")
    assert request.state == "sent" and not request.files.exists()


def test_refusing_needs_a_ground_and_reasons(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks
):
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    bad = client.post("/respond/requests/B1-M1-AC/refuse/", {"ground": "manifestly_excessive", "reasons": ""})
    assert bad.status_code == 400 and "Give your reasons" in bad.content.decode()
    client.post(
        "/respond/requests/B1-M1-AC/refuse/",
        {"ground": "manifestly_excessive", "reasons": "The fourth identical request."},
    )
    assert DataRightsRequest.objects.get(reference="B1-M1-AC").state == "refused"


def test_a_transition_not_allowed_is_refused_with_a_clear_message(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks
):
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    client.post("/respond/requests/B1-M2-AC/refuse/", {"ground": "other", "reasons": "No."})
    page = client.post("/respond/requests/B1-M2-AC/acknowledge/", follow=True).content.decode()
    assert "is refused: it cannot be acknowledged" in page


def test_a_csv_answers_many_and_reports_bad_lines(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks
):
    sign_in(client, contact, mailoutbox, django_capture_on_commit_callbacks)
    text = (
        "reference,action,months,reason,ground\nB1-M0-AC,acknowledge,,,\nB1-M1-AC,extend,2,Many requests,\n"
        "B1-M2-AC,refuse,,,\nNOPE,acknowledge,,,\n"
    )
    upload = io.BytesIO(text.encode())
    upload.name = "answers.csv"
    page = client.post("/respond/requests/csv/", {"csv_file": upload}, follow=True).content.decode()
    assert (
        "2 request(s) updated" in page
        and "Line 4" in page
        and "Line 5: NOPE is not one of your requests" in page
    )
    states = dict(DataRightsRequest.objects.values_list("reference", "state"))
    assert states == {"B1-M0-AC": "acknowledged", "B1-M1-AC": "extended", "B1-M2-AC": "sent"}


def test_the_member_downloads_the_returned_file_and_others_cannot(
    client, contact, acme_requests, mailoutbox, django_capture_on_commit_callbacks
):
    request = acme_requests[0]
    answers.request_answer(
        action="fulfil",
        request_id=request.pk,
        actor=Actor(Actor.CONTROLLER, str(contact.pk)),
        uploads=[
            __import__("requests_engine.responses.files", fromlist=["Upload"]).Upload(
                "data.csv", b"a,b\n1,2\n"
            )
        ],
    )
    stored = request.files.get()
    client.force_login(request.member.user)
    response = client.get(f"/me/files/{stored.pk}/")
    assert response.status_code == 200 and response.getvalue() == b"a,b\n1,2\n"
    client.force_login(acme_requests[1].member.user)
    assert client.get(f"/me/files/{stored.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [("empty.json", b"", "is empty"), ("bad\x07name.txt", b"hello", "control characters")],
)
def test_an_empty_file_or_a_control_character_name_is_refused_by_the_service(
    acme_requests, name, data, message
):
    from requests_engine.responses.files import Upload

    good = Upload("fine.json", b'{"a": 1}')
    with pytest.raises(RequestEngineError, match=message):
        answers.request_answer(
            action="fulfil",
            request_id=acme_requests[0].pk,
            actor=Actor.system(),
            uploads=[good, Upload(name, data)],
        )
    request = DataRightsRequest.objects.get(pk=acme_requests[0].pk)
    assert request.state == "sent" and not request.files.exists()  # the good file was not kept either


def test_the_directory_address_our_letters_went_to_can_sign_in_and_an_unknown_one_gets_no_email(
    client, controller, acme_requests, mailoutbox, django_capture_on_commit_callbacks
):
    assert not ControllerContact.objects.filter(email__iexact=controller.email).exists()
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post("/respond/", {"email": controller.email})
        unknown = client.post("/respond/", {"email": "nobody@elsewhere.test"})
    assert known.status_code == unknown.status_code == 200
    assert "Check your email" in known.content.decode() and "Check your email" in unknown.content.decode()
    [email] = mailoutbox
    assert email.to == [controller.email]
    link = re.search(r"https?://\S+/respond/sign-in/\S+/", email.body).group(0)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    assert client.post(path).status_code == 302
    assert "B1-M1-AC" in client.get("/respond/requests/").content.decode()


def test_a_directory_address_with_nothing_sent_to_it_gets_no_link(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    quiet = Controller.objects.create(slug="quiet", name="Quiet Ltd", email="dpo@quiet.test")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/respond/", {"email": quiet.email})
    assert mailoutbox == [] and not ControllerContact.objects.filter(controller=quiet).exists()
