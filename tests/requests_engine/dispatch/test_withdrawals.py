# ruff: noqa: F811  (the DRP fixtures are imported from test_drp, then named as test arguments)
"""A revoked or narrowed mandate withdraws the open requests it no longer covers, and each controller is told
the way its requests reached it: DRP revoke, an email, a letter to post, or text for its web form."""

from __future__ import annotations

import re
import subprocess
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from django.utils import timezone

from communities import services as member_services
from communities.mandate_text import render_mandate_text, text_sha256
from communities.models import Mandate, Right
from core.audit import Actor
from requests_engine import services
from requests_engine.models import Batch, Controller, DataRightsRequest, RequestEvent
from tests.factories import (
    make_campaign,
    make_covered_request,
    make_mandate,
    make_member,
    make_request,
    verified_user,
)
from tests.requests_engine.dispatch.test_drp import drp_settings, fides_like, fresh, sent_by_drp  # noqa: F401

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def emails(mailbox):
    return [message_from_bytes(e.original_content, policy=default_policy) for e in mailbox.received]


def sent(member, controller, *, right=Right.ACCESS, batch=None) -> DataRightsRequest:
    request = make_covered_request(member, controller, right=right)
    if batch is not None:
        DataRightsRequest.objects.filter(pk=request.pk).update(batch=batch)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    services.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=SYSTEM)
    return DataRightsRequest.objects.get(pk=request.pk)


def notice_channels(request) -> list[str]:
    return [
        e.payload["channel"]
        for e in RequestEvent.objects.filter(request=request, kind="request.withdrawal_notice")
    ]


def revoke(member, capture):
    with capture(execute=True):
        return member_services.mandate_revoke(mandate_id=member.mandates.get().pk, actor=SYSTEM)


def test_a_request_exercised_over_drp_is_revoked_there(
    fides_like,
    member,
    controller,
    mailbox,
    django_capture_on_commit_callbacks,
):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    assert fresh(request).state == "sent"
    assert revoke(member, django_capture_on_commit_callbacks) == 1
    request = fresh(request)
    assert request.state == "withdrawn" and request.drp_status == "revoked"
    assert server.statuses[request.drp_request_id]["status"] == "revoked"
    assert notice_channels(request) == ["drp"]
    assert mailbox.received == []  # told over DRP, not by email as well


def test_an_emailed_controller_gets_one_email_listing_its_withdrawn_requests(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    Mandate.objects.filter(member=member).update(rights=[Right.ACCESS, Right.ERASURE])
    first, second = sent(member, controller), sent(member, controller, right=Right.ERASURE)
    assert revoke(member, django_capture_on_commit_callbacks) == 2
    [notice] = emails(mailbox)
    assert notice["To"] == "privacy@acme.test"
    body = notice.get_body(("plain",)).get_content()
    assert first.reference in body and second.reference in body and "revoked their mandate" in body
    assert notice_channels(first) == ["email"] and notice_channels(second) == ["email"]


def test_a_controller_reached_by_post_gets_a_letter_the_coordinators_print_and_post(
    member, community, mailbox, django_capture_on_commit_callbacks, tmp_path
):
    controller = Controller.objects.create(
        slug="postal", name="Postal Ltd", postal_address="1 High Street\nLeeds LS1 1AA", transport="letter"
    )
    campaign = make_campaign(community, name="C", rights=[Right.ACCESS], purpose="x")
    batch = Batch.objects.create(campaign=campaign, controller=controller, transport="letter")
    request = sent(member, controller, batch=batch)
    revoke(member, django_capture_on_commit_callbacks)
    [to_post] = emails(mailbox)
    assert to_post["To"] == community.contact_email
    assert "To post: withdrawal of 1 request(s) to Postal Ltd" == to_post["Subject"]
    assert "1 High Street" in to_post.get_body(("plain",)).get_content()
    [pdf] = [part for part in to_post.iter_attachments() if part.get_content_type() == "application/pdf"]
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf.get_content())
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert request.reference in text and "Postal Ltd" in text and "Withdrawal" in text
    assert notice_channels(request) == ["letter"]


def test_a_web_form_controller_without_email_gives_the_coordinators_text_to_paste(
    member, community, mailbox, django_capture_on_commit_callbacks
):
    controller = Controller.objects.create(
        slug="formonly", name="Form Only plc", transport="webform", webform_url="https://form.example/dsar"
    )
    request = sent(member, controller)
    revoke(member, django_capture_on_commit_callbacks)
    [task] = emails(mailbox)
    assert task["To"] == community.contact_email and task["Subject"].startswith(
        "To send through the web form"
    )
    body = task.get_body(("plain",)).get_content()
    assert "https://form.example/dsar" in body and request.reference in body and "pasting this text" in body
    assert notice_channels(request) == ["webform"]


def test_a_request_not_yet_sent_is_withdrawn_without_telling_anyone(
    member, controller, mailbox, django_capture_on_commit_callbacks
):
    request = make_request(member, controller)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    revoke(member, django_capture_on_commit_callbacks)
    assert fresh(request).state == "withdrawn" and mailbox.received == []


# -- narrowing: a new mandate replaces the active one ------------------------------------------------------


def test_a_narrower_mandate_replaces_the_old_and_withdraws_only_what_it_no_longer_covers(
    community, controller, mailbox, django_capture_on_commit_callbacks
):
    community.controllers.add(controller)
    member = make_member(community)
    old = make_mandate(member, rights=(Right.ACCESS, Right.ERASURE))
    access, erasure = sent(member, controller), sent(member, controller, right=Right.ERASURE)
    choices = member_services.choices_of(old)
    narrower = type(choices)(**{**choices.__dict__, "rights": (Right.ACCESS,)})
    assert [r.pk for r in member_services.requests_no_longer_covered(member=member, choices=narrower)] == [
        erasure.pk
    ]
    text = render_mandate_text(member=member, choices=narrower)
    with django_capture_on_commit_callbacks(execute=True):
        new = member_services.mandate_sign(
            member=member,
            choices=narrower,
            shown_text_sha256=text_sha256(text),
            signed_name=member.full_name,
            ip=None,
            user_agent="",
        )
    old.refresh_from_db()
    assert old.state == "replaced" and old.replaced_by == new and new.state == "active"
    assert fresh(access).state == "sent" and fresh(erasure).state == "withdrawn"
    notices = [e for e in emails(mailbox) if e["To"] == "privacy@acme.test"]
    assert len(notices) == 1
    body = notices[0].get_body(("plain",)).get_content()
    assert erasure.reference in body and access.reference not in body and "narrowed their mandate" in body
    kinds = list(RequestEvent.objects.filter(mandate=old).values_list("kind", flat=True))
    assert kinds[-1] == "mandate.replaced"


def test_changing_a_mandate_in_the_browser_asks_what_happens_to_each_request_no_longer_covered(
    client, community, controller, mailbox, django_capture_on_commit_callbacks
):
    community.controllers.add(controller)
    user = verified_user("narrow@example.test")
    client.force_login(user)
    member, _ = member_services.member_join(user=user, community=community, full_name="Nia Narrow")
    make_mandate(member, rights=(Right.ACCESS, Right.ERASURE))
    erasure = sent(member, controller, right=Right.ERASURE)

    page = client.get(f"/me/{member.reference}/mandate/new/").content.decode()
    assert "You are changing mandate" in page
    # Starts from the mandate as it is: both rights ticked.
    assert re.search(r'value="access"[^>]*checked', page) and re.search(r'value="erasure"[^>]*checked', page)
    until = (timezone.localdate().replace(year=timezone.localdate().year + 1)).isoformat()
    response = client.post(
        f"/me/{member.reference}/mandate/new/",
        {
            "rights": ["access"],
            "scope": "all",
            "purposes": [str(pk) for pk in community.purposes.values_list("pk", flat=True)],
            "valid_until": until,
            "send_responses_to": "community",
        },
    )
    assert response.status_code == 302
    review = client.get(f"/me/{member.reference}/mandate/review/").content.decode()
    assert "the community stops acting on it" in review and erasure.reference in review
    digest = re.search(r'name="text_sha256" value="([0-9a-f]{64})"', review).group(1)
    signing = {"text_sha256": digest, "signed_name": "Nia Narrow", "confirm": "on"}
    unanswered = client.post(f"/me/{member.reference}/mandate/review/", signing)
    assert "Choose what happens to your request to Acme Ltd" in unanswered.content.decode()
    assert member.mandates.filter(state="replaced").count() == 0  # nothing signed without the choice
    with django_capture_on_commit_callbacks(execute=True):
        signed = client.post(
            f"/me/{member.reference}/mandate/review/",
            {**signing, f"ending-r{erasure.pk}": "withdraw", "ending-answer_to": ""},
        )
    assert signed.status_code == 302
    assert fresh(erasure).state == "withdrawn"
    assert member.mandates.filter(state="active").get().rights == ["access"]
    assert member.mandates.filter(state="replaced").count() == 1


def test_the_public_check_of_a_replaced_mandate_points_to_the_one_in_force(
    client, community, controller, django_capture_on_commit_callbacks
):
    community.controllers.add(controller)
    member = make_member(community)
    old = make_mandate(member, rights=(Right.ACCESS, Right.ERASURE))
    choices = member_services.choices_of(old)
    text = render_mandate_text(member=member, choices=choices)
    with django_capture_on_commit_callbacks(execute=True):
        new = member_services.mandate_sign(
            member=member,
            choices=choices,
            shown_text_sha256=text_sha256(text),
            signed_name=member.full_name,
            ip=None,
            user_agent="",
        )
    page = client.get(f"/verify/{old.verification_token}/").content.decode()
    assert f"/verify/{new.verification_token}/" in page and "Replaced on" in page
    assert "In force" in client.get(f"/verify/{new.verification_token}/").content.decode()
