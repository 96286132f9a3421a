"""The controller API: token sign-in, isolation between controllers, every action and its errors,
Idempotency-Key, uploads kept safe, throttling and the OpenAPI schema."""

from __future__ import annotations

import io
import re
import threading
import types
import zipfile
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections, connection
from django.urls import NoReverseMatch, include, path, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from communities.models import Authority, Identifier
from core.audit import Actor
from requests_engine import services
from requests_engine.authorities import authority_issue
from requests_engine.directory import contacts
from requests_engine.events import chain_breaks
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    Controller,
    ControllerContact,
    DataRightsRequest,
    IdempotentResponse,
    ReceivedFile,
    RequestEvent,
)
from requests_engine.responses.files import received_file_data
from tests.factories import make_campaign, make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db


def api_urlconf() -> types.ModuleType | None:
    """Until config/urls.py routes /api/v1/, tests route it themselves (a no-op once it does)."""
    try:
        reverse("api-requests")
        return None
    except NoReverseMatch:
        module = types.ModuleType("api_test_urls")
        base = import_module(django_settings.ROOT_URLCONF).urlpatterns
        module.urlpatterns = [path("api/v1/", include("requests_engine.api.urls")), *base]
        return module


@pytest.fixture(autouse=True)
def _api_routed_and_unthrottled(settings):
    urlconf = api_urlconf()
    if urlconf is not None:
        settings.ROOT_URLCONF = urlconf
    # Members are users with passwords; the slow hasher would make the many-row tests crawl.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # throttle counts live in the cache
    yield
    cache.clear()


# -- the cast ------------------------------------------------------------------------------------------------


def sent_request(member, controller, reference, right="access"):
    request = make_request(member, controller, reference=reference, right=right)
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=Actor.system())
    authority_issue(mandate=request.mandate, controller=controller)  # as the letter's dispatch does
    return DataRightsRequest.objects.get(pk=request.pk)


def client_for(token: str, keyword: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token}")
    return client


@pytest.fixture
def contact(controller):
    return contacts.contact_create(controller_id=controller.pk, email="dpo@acme.test", name="Dee")


@pytest.fixture
def token(contact):
    return contacts.contact_issue_api_token(contact_id=contact.pk)


@pytest.fixture
def api(token):
    return client_for(token)


@pytest.fixture
def other_controller(db):
    return Controller.objects.create(slug="globex", name="Globex plc", email="privacy@globex.test")


@pytest.fixture
def other_api(other_controller):
    other = contacts.contact_create(controller_id=other_controller.pk, email="dpo@globex.test")
    return client_for(contacts.contact_issue_api_token(contact_id=other.pk))


@pytest.fixture
def sent(member, controller):
    return sent_request(member, controller, "B1-M1-AC")


@pytest.fixture
def theirs(community, other_controller):
    member = make_member(community, "Mary Shelley")
    make_mandate(member)
    return sent_request(member, other_controller, "B2-M2-AC")


def url(reference: str, step: str = "") -> str:
    return f"/api/v1/requests/{reference}/" + (f"{step}/" if step else "")


def refreshed(request: DataRightsRequest) -> DataRightsRequest:
    return DataRightsRequest.objects.get(pk=request.pk)


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def stored_files() -> list[Path]:
    root = Path(django_settings.MEDIA_ROOT) / "received"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# -- authentication ------------------------------------------------------------------------------------------


def test_without_a_token_the_api_answers_401_in_json(sent):
    response = APIClient().get("/api/v1/requests/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer", "Bearer a b", "Basic dXNlcjpwdw=="])
def test_a_bad_token_or_header_is_401(sent, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/requests/")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_token_keyword_is_accepted_as_well_as_bearer(sent, token):
    assert client_for(token, "Token").get("/api/v1/requests/").status_code == 200
    assert client_for(token, "bearer").get("/api/v1/requests/").status_code == 200


def test_a_revoked_contact_or_withdrawn_token_is_401(sent, contact, token):
    client = client_for(token)
    assert client.get("/api/v1/requests/").status_code == 200
    contacts.contact_revoke_api_token(contact_id=contact.pk)
    assert client.get("/api/v1/requests/").status_code == 401

    fresh = contacts.contact_issue_api_token(contact_id=contact.pk)
    assert client_for(fresh).get("/api/v1/requests/").status_code == 200
    contacts.contact_revoke(contact_id=contact.pk)
    assert client_for(fresh).get("/api/v1/requests/").status_code == 401
    assert client_for(fresh).post(url(sent.reference, "acknowledge"), {}, format="json").status_code == 401
    assert refreshed(sent).state == "sent"


def test_a_contact_marked_inactive_in_the_back_office_is_401(sent, contact, token):
    ControllerContact.objects.filter(pk=contact.pk).update(is_active=False)
    assert client_for(token).get("/api/v1/requests/").status_code == 401


def test_rotating_a_token_retires_the_old_one(sent, contact, token):
    new = contacts.contact_issue_api_token(contact_id=contact.pk)
    assert new != token
    assert client_for(token).get("/api/v1/requests/").status_code == 401
    assert client_for(new).get("/api/v1/requests/").status_code == 200


def test_using_the_api_records_when_the_contact_was_last_seen(sent, contact, api):
    api.get("/api/v1/requests/")
    assert ControllerContact.objects.get(pk=contact.pk).last_seen_at is not None


# -- contacts and their tokens -------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_digest_and_hint_are_kept(contact):
    token = contacts.contact_issue_api_token(contact_id=contact.pk)
    stored = ControllerContact.objects.get(pk=contact.pk)
    assert token.startswith("dcc_") and len(token) > 40
    assert stored.api_token_sha256 == contacts.token_digest(token)
    assert stored.api_token_hint == token[-4:]
    assert token not in str(ControllerContact.objects.filter(pk=contact.pk).values().get())


def test_a_revoked_contact_gets_no_new_token(contact):
    contacts.contact_revoke(contact_id=contact.pk)
    revoked = ControllerContact.objects.get(pk=contact.pk)
    assert not revoked.is_active and revoked.api_token_sha256 == ""
    with pytest.raises(RequestEngineError, match="revoked"):
        contacts.contact_issue_api_token(contact_id=contact.pk)


def test_the_same_address_cannot_be_added_twice_to_one_controller(contact, controller):
    with pytest.raises(RequestEngineError, match="already a contact"):
        contacts.contact_create(controller_id=controller.pk, email="dpo@acme.test")


# -- list and detail -----------------------------------------------------------------------------------------


def test_the_list_shows_only_this_controllers_sent_requests(api, sent, theirs, member, controller):
    make_request(member, controller, reference="DRAFT-1", right="erasure")  # not sent yet: ours alone
    response = api.get("/api/v1/requests/")
    assert response.status_code == 200
    assert [row["reference"] for row in response.json()["results"]] == [sent.reference]
    assert response.json()["count"] == 1


def test_a_listed_request_carries_what_the_controller_needs(api, sent, member, controller, other_controller):
    Identifier.objects.create(member=member, controller=controller, kind="account_id", value="ACME-42")
    Identifier.objects.create(member=member, controller=None, kind="email", value="ada@example.test")
    Identifier.objects.create(member=member, controller=other_controller, kind="account_id", value="GLOBEX-7")

    row = api.get("/api/v1/requests/").json()["results"][0]

    assert row["state"] == "sent" and row["state_label"] == "Sent, waiting for the controller"
    assert row["right"] == "access"
    assert row["received_on"] == timezone.localdate().isoformat()
    assert row["due_on"] == sent.due_on.isoformat()
    assert row["days_left"] == (sent.due_on - timezone.localdate()).days
    assert row["clock_paused"] is False
    assert row["member"]["full_name"] == "Ada Lovelace"
    assert row["member"]["reference"] == member.reference
    assert sorted(i["value"] for i in row["member"]["identifiers"]) == ["ACME-42", "ada@example.test"]
    assert row["mandate"]["reference"] == sent.mandate.reference
    # The controller's own authority document, never the full mandate (which names other organisations).
    authority = Authority.objects.get(mandate=sent.mandate, controller=sent.controller)
    assert row["mandate"]["pdf_sha256"] == authority.pdf_sha256 != sent.mandate.pdf_sha256
    assert row["mandate"]["verify_url"].endswith(f"/verify/{authority.token}/")
    assert row["information_request"] is None
    assert row["url"].endswith(url(sent.reference))
    steps = {link["action"] for link in row["actions"]}
    assert steps == {
        "acknowledge",
        "request-information",
        "extend",
        "fulfil",
        "no-data-held",
        "partially-fulfil",
        "refuse",
    }
    assert all(link["href"].startswith("http") and link["method"] == "POST" for link in row["actions"])


def test_the_list_filters_by_state_right_campaign_and_due_date(api, community, controller, coordinator):
    campaign = make_campaign(community, name="AI", rights=["access"], purpose="Why.")
    rows = []
    for index, name in enumerate(["Ada Lovelace", "Mary Shelley", "Sam Pepys"]):
        member = make_member(community, name)
        make_mandate(member, rights=["access", "erasure"])
        rows.append(
            sent_request(member, controller, f"B1-M{index}-AC", right="erasure" if index == 2 else "access")
        )
    DataRightsRequest.objects.filter(pk=rows[0].pk).update(campaign=campaign)
    services.request_acknowledge(request_id=rows[1].pk, actor=Actor.system())
    due = rows[0].due_on

    def refs(query: str) -> list[str]:
        response = api.get(f"/api/v1/requests/?{query}")
        assert response.status_code == 200, response.json()
        return sorted(row["reference"] for row in response.json()["results"])

    assert refs("state=acknowledged") == [rows[1].reference]
    assert refs("state=acknowledged&state=sent") == sorted(r.reference for r in rows)
    assert refs("right=erasure") == [rows[2].reference]
    assert refs(f"campaign={campaign.reference.lower()}") == [rows[0].reference]
    assert refs(f"due_before={due - timedelta(days=1)}") == []
    assert refs(f"due_after={due}&due_before={due}") == sorted(r.reference for r in rows)
    assert api.get("/api/v1/requests/?state=draft").status_code == 400
    assert "due_before" in api.get("/api/v1/requests/?due_before=2025-13-45").json()


def test_the_list_is_ordered_by_due_date_and_paginated(api, community, controller):
    made = []
    for index in range(5):
        member = make_member(community, f"Member {index}", email=f"m{index}@community.test")
        make_mandate(member)
        made.append(sent_request(member, controller, f"B1-M{index}-AC"))
    # An earlier receipt means an earlier due date.
    DataRightsRequest.objects.filter(pk=made[3].pk).update(due_on=made[3].due_on - timedelta(days=3))
    first = api.get("/api/v1/requests/?page_size=2").json()
    assert first["count"] == 5
    assert [r["reference"] for r in first["results"]] == [made[3].reference, made[0].reference]
    second = api.get(first["next"]).json()
    assert [r["reference"] for r in second["results"]] == [made[1].reference, made[2].reference]
    assert api.get("/api/v1/requests/?page=99").status_code == 404


def test_the_list_costs_the_same_queries_for_many_rows(api, community, controller, django_assert_num_queries):
    def add(count: int, start: int) -> None:
        for index in range(start, start + count):
            member = make_member(community, f"Member {index}", email=f"m{index}@community.test")
            make_mandate(member)
            Identifier.objects.create(
                member=member, controller=controller, kind="email", value=f"{index}@x.test"
            )
            sent_request(member, controller, f"B1-M{index}-AC")

    add(2, 0)
    api.get("/api/v1/requests/")  # last_seen_at is written once; measure afterwards
    # token lookup, count, the page's ids, the controller's needs, its rows (with campaign, member,
    # mandate), their identifiers, their authority documents
    with django_assert_num_queries(7):
        assert len(api.get("/api/v1/requests/").json()["results"]) == 2
    add(20, 2)
    with django_assert_num_queries(7):
        assert len(api.get("/api/v1/requests/").json()["results"]) == 22


def test_detail_shows_the_history_in_words(api, sent):
    response = api.get(url(sent.reference))
    assert response.status_code == 200
    body = response.json()
    assert [e["code"] for e in body["history"]] == ["request.approved", "request.dispatched"]
    assert body["history"][1]["sentence"] == "The request was sent to the controller."
    assert body["files"] == [] and body["refusal"] is None


def test_another_controllers_request_is_404_like_a_missing_one(api, theirs, sent, member, controller):
    make_request(member, controller, reference="DRAFT-1", right="erasure")
    missing = api.get(url("NO-SUCH-REF"))
    assert missing.status_code == 404
    for reference in (theirs.reference, "DRAFT-1"):
        response = api.get(url(reference))
        assert response.status_code == 404
        assert response.json() == missing.json()
    assert api.get("/api/v1/nowhere/").status_code == 404
    assert api.get("/api/v1/nowhere/").json() == {"detail": "Not found."}


# -- actions -------------------------------------------------------------------------------------------------


def test_acknowledge_moves_the_request_and_records_the_contact(api, sent, contact):
    response = api.post(url(sent.reference, "acknowledge"), {"note": "On it."}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "acknowledged"
    event = RequestEvent.objects.filter(request=sent).order_by("seq").last()
    assert (event.kind, event.actor_kind, event.actor_id) == (
        "request.acknowledged",
        "controller",
        str(contact.pk),
    )
    assert event.payload == {"note": "On it."}
    assert response.json()["history"][-1]["code"] == "request.acknowledged"


def test_acknowledge_twice_is_a_409_with_the_reason(api, sent):
    api.post(url(sent.reference, "acknowledge"), {}, format="json")
    response = api.post(url(sent.reference, "acknowledge"), {}, format="json")
    assert response.status_code == 409
    assert "cannot be acknowledged" in response.json()["detail"]


def test_actions_on_another_controllers_request_are_404_and_change_nothing(api, theirs):
    for step, body in [
        ("acknowledge", {}),
        ("request-information", {"kind": "identity", "question": "Who?"}),
        ("extend", {"months": 1, "reason": "Many."}),
        ("fulfil", {}),
        ("partially-fulfil", {"ground": "other", "reasons": "Some."}),
        ("refuse", {"ground": "other", "reasons": "No."}),
    ]:
        response = api.post(url(theirs.reference, step), body, format="json")
        assert response.status_code == 404, step
    assert refreshed(theirs).state == "sent"
    assert RequestEvent.objects.filter(request=theirs).count() == 2


def test_request_information_stops_the_clock_and_shows_the_question(api, sent):
    response = api.post(
        url(sent.reference, "request-information"),
        {"kind": "clarification", "question": "Which accounts?"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "info_requested" and body["clock_paused"] is True and body["days_left"] is None
    assert body["information_request"] == {
        "kind": "clarification",
        "question": "Which accounts?",
        "asked_on": timezone.localdate().isoformat(),
    }


def test_request_information_needs_a_kind_and_a_question(api, sent):
    response = api.post(url(sent.reference, "request-information"), {"kind": "shoe size"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"kind", "question"}
    blank = api.post(
        url(sent.reference, "request-information"), {"kind": "identity", "question": "  "}, format="json"
    )
    assert blank.status_code == 400 and "question" in blank.json()
    assert refreshed(sent).state == "sent"


def test_request_information_after_an_answer_is_409(api, sent):
    api.post(url(sent.reference, "no-data-held"), {"searches": "Everything."}, format="json")
    response = api.post(
        url(sent.reference, "request-information"), {"kind": "identity", "question": "?"}, format="json"
    )
    assert response.status_code == 409


def test_extend_moves_the_due_date(api, sent):
    response = api.post(
        url(sent.reference, "extend"), {"months": 2, "reason": "Numerous requests."}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "extended" and body["extension_months"] == 2
    assert body["extension_reason"] == "Numerous requests."
    assert body["due_on"] > sent.due_on.isoformat()
    assert "extend" not in {link["action"] for link in body["actions"]}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"months": 3, "reason": "Many."}, "months"),
        ({"months": 1}, "reason"),
        ({"months": 1, "reason": ""}, "reason"),
    ],
)
def test_extend_with_bad_input_is_400_naming_the_field(api, sent, body, field):
    response = api.post(url(sent.reference, "extend"), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert refreshed(sent).state == "sent"


def test_extending_twice_is_409(api, sent):
    api.post(url(sent.reference, "extend"), {"months": 1, "reason": "Many."}, format="json")
    response = api.post(url(sent.reference, "extend"), {"months": 1, "reason": "More."}, format="json")
    assert response.status_code == 409
    assert "cannot be extended" in response.json()["detail"]


def test_extending_after_the_due_date_is_409(api, sent):
    services.request_acknowledge(request_id=sent.pk, actor=Actor.system())
    with time_machine.travel(sent.due_on + timedelta(days=1), tick=False):
        response = api.post(url(sent.reference, "extend"), {"months": 1, "reason": "Late."}, format="json")
    assert response.status_code == 409
    assert refreshed(sent).state == "acknowledged"


def test_fulfil_without_files_as_json(api, sent, member, controller):
    # An access answer needs the data (or "no personal data held"); an erasure needs none.
    assert api.post(url(sent.reference, "fulfil"), {"note": "Done."}, format="json").status_code == 400
    erasure = sent_request(member, controller, "B1-M1-ER", right="erasure")
    unsaid = api.post(url(erasure.reference, "fulfil"), {"note": "Erased everywhere."}, format="json")
    assert unsaid.status_code == 400 and "Art 19" in unsaid.json()["recipients_told"][0]
    response = api.post(
        url(erasure.reference, "fulfil"),
        {"note": "Erased everywhere.", "recipients_told": "It was disclosed to no one."},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "fulfilled" and response.json()["outcome"] == "erasure_done"
    assert response.json()["answered_on"] == timezone.localdate().isoformat()
    assert api.post(url(erasure.reference, "fulfil"), {}, format="json").status_code == 409


def test_fulfil_with_files_stores_them_encrypted_for_the_member(api, sent):
    data = b"name,email\nAda Lovelace,ada@example.test\n"
    response = api.post(
        url(sent.reference, "fulfil"),
        {
            "files": [SimpleUploadedFile("export.csv", data), SimpleUploadedFile("letter.txt", b"Dear Ada")],
            "note": "Your data.",
        },
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "fulfilled"
    assert sorted(f["name"] for f in response.json()["files"]) == ["export.csv", "letter.txt"]
    received = ReceivedFile.objects.get(request=sent, original_name="export.csv")
    on_disk = Path(received.stored.path).read_bytes()
    assert data not in on_disk and on_disk != data
    assert received_file_data(received) == data
    assert received.content_type in ("text/csv", "text/plain") and received.size == len(data)


def test_files_can_be_sent_as_files_brackets(api, sent):
    response = api.post(
        url(sent.reference, "fulfil"),
        {"files[]": [SimpleUploadedFile("a.txt", b"hello")]},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    assert [f["name"] for f in response.json()["files"]] == ["a.txt"]


def bomb() -> bytes:
    return zip_bytes({"zeros.bin": b"\0" * (5 * 1024 * 1024)})


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("bomb.zip", bomb(), "ZIP bomb"),
        ("escape.zip", zip_bytes({"../../etc/cron.d/x": b"* * * * * boom"}), "leaves its folder"),
        ("empty.csv", b"", "is empty"),
        ("bad\x07name.csv", b"a,b\n1,2\n", "control characters"),
        ("program.exe", b"MZ\x90\x00\x03" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200, "do not accept"),
    ],
)
def test_refused_uploads_are_400_and_nothing_is_stored(api, sent, name, data, message):
    good = SimpleUploadedFile("good.csv", b"a,b\n1,2\n")
    response = api.post(
        url(sent.reference, "fulfil"), {"files": [good, SimpleUploadedFile(name, data)]}, format="multipart"
    )
    assert response.status_code == 400, response.json()
    assert message in " ".join(response.json()["files"])
    assert refreshed(sent).state == "sent"
    assert not ReceivedFile.objects.exists()
    assert stored_files() == []


def test_partially_fulfil_with_files_and_a_ground(api, sent):
    response = api.post(
        url(sent.reference, "partially-fulfil"),
        {
            "files": [SimpleUploadedFile("part.json", b'{"orders": []}')],
            "ground": "legal_privilege",
            "reasons": "Third-party data withheld (DPA 2018 Sch 2 para 16).",
        },
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "partially_fulfilled"
    assert body["refusal"] == {
        "ground": "legal_privilege",
        "reasons": "Third-party data withheld (DPA 2018 Sch 2 para 16).",
    }
    assert [f["name"] for f in body["files"]] == ["part.json"]


@pytest.mark.parametrize(
    "body, field",
    [({"ground": "because", "reasons": "x"}, "ground"), ({"ground": "legal_privilege"}, "reasons")],
)
def test_partially_fulfil_with_bad_input_is_400(api, sent, body, field):
    response = api.post(url(sent.reference, "partially-fulfil"), body, format="multipart")
    assert response.status_code == 400
    assert field in response.json()
    assert refreshed(sent).state == "sent"


def test_partially_fulfil_when_already_refused_is_409_and_stores_nothing(api, sent):
    api.post(url(sent.reference, "refuse"), {"ground": "other", "reasons": "No."}, format="json")
    response = api.post(
        url(sent.reference, "partially-fulfil"),
        {"files": [SimpleUploadedFile("part.json", b"{}")], "ground": "other", "reasons": "Some."},
        format="multipart",
    )
    assert response.status_code == 409
    assert not ReceivedFile.objects.exists() and stored_files() == []


def test_refuse_with_ground_and_reasons(api, sent):
    response = api.post(
        url(sent.reference, "refuse"),
        {"ground": "manifestly_excessive", "reasons": "The fourth request this month."},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "refused"
    assert response.json()["refusal"] == {
        "ground": "manifestly_excessive",
        "reasons": "The fourth request this month.",
    }
    assert response.json()["outcome"] == "refused"
    assert response.json()["actions"] == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"reasons": "x"}, "ground"),
        ({"ground": "nope", "reasons": "x"}, "ground"),
        ({"ground": "other"}, "reasons"),
    ],
)
def test_refuse_with_bad_input_is_400(api, sent, body, field):
    response = api.post(url(sent.reference, "refuse"), body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_refuse_twice_is_409(api, sent):
    api.post(url(sent.reference, "refuse"), {"ground": "other", "reasons": "No."}, format="json")
    response = api.post(url(sent.reference, "refuse"), {"ground": "other", "reasons": "No."}, format="json")
    assert response.status_code == 409


def test_a_body_that_is_not_an_object_is_400(api, sent):
    response = api.post(url(sent.reference, "refuse"), [1, 2], format="json")
    assert response.status_code == 400
    response = api.post(url(sent.reference, "refuse"), "{not json", content_type="application/json")
    assert response.status_code == 400


# -- Idempotency-Key -----------------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_the_first_answer_without_acting_again(api, sent):
    headers = {"Idempotency-Key": "5b8c7f5e-0001"}
    first = api.post(url(sent.reference, "acknowledge"), {}, format="json", headers=headers)
    again = api.post(url(sent.reference, "acknowledge"), {}, format="json", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert RequestEvent.objects.filter(request=sent, kind="request.acknowledged").count() == 1
    # Without the key, the same action is attempted again, and refused.
    assert api.post(url(sent.reference, "acknowledge"), {}, format="json").status_code == 409


def test_a_409_is_replayed_as_a_409(api, sent):
    api.post(url(sent.reference, "acknowledge"), {}, format="json")
    headers = {"Idempotency-Key": "k-409"}
    first = api.post(url(sent.reference, "acknowledge"), {}, format="json", headers=headers)
    again = api.post(url(sent.reference, "acknowledge"), {}, format="json", headers=headers)
    assert first.status_code == again.status_code == 409
    assert again.json() == first.json()


def test_the_same_key_for_a_different_request_is_422(api, sent, member, controller):
    headers = {"Idempotency-Key": "k-1"}
    api.post(
        url(sent.reference, "refuse"), {"ground": "other", "reasons": "No."}, format="json", headers=headers
    )
    body_changed = api.post(
        url(sent.reference, "refuse"),
        {"ground": "other", "reasons": "Never."},
        format="json",
        headers=headers,
    )
    assert body_changed.status_code == 422
    assert "Idempotency-Key" in body_changed.json()["detail"]
    other = sent_request(member, controller, "B1-M1-ER", right="erasure")
    path_changed = api.post(
        url(other.reference, "refuse"), {"ground": "other", "reasons": "No."}, format="json", headers=headers
    )
    assert path_changed.status_code == 422
    assert refreshed(other).state == "sent"


def test_keys_belong_to_one_contact(api, sent, contact, controller):
    colleague = contacts.contact_create(controller_id=controller.pk, email="privacy-team@acme.test")
    colleague_api = client_for(contacts.contact_issue_api_token(contact_id=colleague.pk))
    headers = {"Idempotency-Key": "shared"}
    assert api.post(url(sent.reference, "acknowledge"), {}, format="json", headers=headers).status_code == 200
    assert (
        colleague_api.post(url(sent.reference, "acknowledge"), {}, format="json", headers=headers).status_code
        == 409
    )


def test_invalid_input_is_not_stored_so_the_corrected_request_can_reuse_the_key(api, sent):
    headers = {"Idempotency-Key": "k-fix"}
    assert (
        api.post(
            url(sent.reference, "refuse"), {"ground": "other"}, format="json", headers=headers
        ).status_code
        == 400
    )
    assert not IdempotentResponse.objects.exists()
    fixed = api.post(
        url(sent.reference, "refuse"), {"ground": "other", "reasons": "No."}, format="json", headers=headers
    )
    assert fixed.status_code == 200


def test_a_multipart_retry_is_recognised_by_its_file_contents(api, sent):
    headers = {"Idempotency-Key": "k-files"}

    def send(content: bytes):
        files = {"files": [SimpleUploadedFile("a.csv", content)]}
        return api.post(url(sent.reference, "fulfil"), files, format="multipart", headers=headers)

    first = send(b"a,b\n1,2\n")
    assert first.status_code == 200
    again = send(b"a,b\n1,2\n")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert ReceivedFile.objects.count() == 1
    assert send(b"a,b\n3,4\n").status_code == 422


@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "ünïcode"])
def test_a_malformed_key_is_400(api, sent, key):
    response = api.post(
        url(sent.reference, "acknowledge"), {}, format="json", headers={"Idempotency-Key": key}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert refreshed(sent).state == "sent"


# -- throttling ----------------------------------------------------------------------------------------------


def test_each_contact_is_throttled_at_the_configured_rate(settings, sent, api, other_api):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"controller": "3/min"}}
    for _ in range(3):
        assert api.get("/api/v1/requests/").status_code == 200
    throttled = api.get("/api/v1/requests/")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert "detail" in throttled.json()
    assert api.post(url(sent.reference, "acknowledge"), {}, format="json").status_code == 429
    assert refreshed(sent).state == "sent"
    assert other_api.get("/api/v1/requests/").status_code == 200  # another contact has its own budget


# -- the schema ----------------------------------------------------------------------------------------------


def test_the_openapi_schema_is_valid_and_describes_the_api():
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    paths = schema["paths"]
    for step in ("acknowledge", "request-information", "extend", "fulfil", "partially-fulfil", "refuse"):
        operation = paths[f"/api/v1/requests/{{reference}}/{step}/"]["post"]
        assert {"400", "401", "404", "409", "422", "429"} <= set(operation["responses"])
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
        assert operation["security"] == [{"controllerToken": []}]
    assert schema["components"]["securitySchemes"]["controllerToken"]["scheme"] == "bearer"
    fulfil = paths["/api/v1/requests/{reference}/fulfil/"]["post"]["requestBody"]["content"]
    assert set(fulfil) == {"multipart/form-data", "application/json"}


def test_the_schema_is_served(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/requests/" in response.json()["paths"]


# -- races (PostgreSQL) --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL row locks")
def test_two_retries_racing_with_one_key_act_once(sent, token):
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def post(index: int) -> None:
        try:
            barrier.wait()
            results[index] = client_for(token).post(
                url(sent.reference, "no-data-held"),
                {"searches": "Every system, by the email address given."},
                format="json",
                headers={"Idempotency-Key": "race"},
            )
        finally:
            close_old_connections()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200, 200]
    assert results[0].json() == results[1].json()
    assert sorted(r.has_header("Idempotent-Replayed") for r in results) == [False, True]
    assert RequestEvent.objects.filter(request=sent, kind="request.no_data_held").count() == 1
    assert IdempotentResponse.objects.count() == 1
    assert chain_breaks() == []
    assert connection.vendor == "postgresql"


def test_options_on_every_action_endpoint_describes_what_its_post_takes(api, sent):
    steps = ["acknowledge", "request-information", "extend", "fulfil", "no-data-held", "partially-fulfil"]
    for step in [*steps, "refuse"]:
        response = api.options(url(sent.reference, step))
        assert response.status_code == 200, step
        assert "POST" in response.json()["actions"], step
    assert "recipients_told" in api.options(url(sent.reference, "fulfil")).json()["actions"]["POST"]
    assert APIClient().options(url(sent.reference, "fulfil")).status_code == 401


def test_a_filter_given_empty_or_a_bad_page_size_is_refused_not_ignored(api, sent):
    for query in ("right=", "campaign=", "due_after=", "page_size=", "page_size=0", "page_size=x"):
        response = api.get(f"/api/v1/requests/?{query}")
        assert response.status_code == 400, query
    assert api.get("/api/v1/requests/?right=access&page_size=5").status_code == 200


def test_a_page_that_is_not_a_whole_number_is_refused(api, sent):
    # "²" passes str.isdigit() but not int(): it was a server error as a page size.
    for query in ("page=", "page=0", "page=last", "page=x", "page=%C2%B2", "page_size=%C2%B2"):
        response = api.get(f"/api/v1/requests/?{query}")
        assert response.status_code == 400, query
    assert api.get("/api/v1/requests/?page=1").status_code == 200


def test_the_schema_states_what_the_server_enforces_on_text(api):
    schema = api.get("/api/schema/?format=json").json()
    inputs = schema["components"]["schemas"]
    # A required text needs one character that is neither NUL nor whitespace (DRF strips it first).
    reason = inputs["ExtendInputRequest"]["properties"]["reason"]
    assert reason["minLength"] == 1 and reason["pattern"] == "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    assert re.fullmatch(reason["pattern"], " \t\n") is None and re.fullmatch(reason["pattern"], " ok ")
    assert inputs["AcknowledgeInputRequest"]["properties"]["note"]["pattern"] == "^[^\\u0000]*$"
    listing = {p["name"]: p for p in schema["paths"]["/api/v1/requests/"]["get"]["parameters"]}
    assert (
        listing["campaign"]["schema"]["minLength"] == 1 and listing["page_size"]["schema"]["maximum"] == 200
    )


def test_a_text_of_spaces_alone_is_refused_as_blank(api, sent):
    response = api.post(url(sent.reference, "extend"), {"months": 1, "reason": " \t "}, format="json")
    assert response.status_code == 400 and "reason" in response.json()


def test_the_schema_links_each_answer_to_the_calls_it_makes_possible(api):
    paths = api.get("/api/schema/?format=json").json()["paths"]
    listed = paths["/api/v1/requests/"]["get"]["responses"]["200"]["links"]
    assert listed["requests_read"]["parameters"] == {"reference": "$response.body#/results/0/reference"}
    assert listed["requests_refuse"]["operationId"] == "requests_refuse"
    read = paths["/api/v1/requests/{reference}/"]["get"]["responses"]["200"]["links"]
    assert read["requests_identity_document"]["parameters"]["document_id"] == (
        "$response.body#/identity_documents/0/id"
    )
    fulfilled = paths["/api/v1/requests/{reference}/fulfil/"]["post"]["responses"]["200"]["links"]
    assert fulfilled["requests_read"]["parameters"] == {"reference": "$response.body#/reference"}
