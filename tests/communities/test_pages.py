"""Member pages through the Django test client: permissions, bad input, escaping."""

import re

import pytest
from django.utils import timezone

from communities import services
from communities.mandate_text import render_mandate_text, text_sha256
from communities.models import Community, Invite, Mandate, Member
from tests.factories import full_choices, make_purpose, make_request, verified_user

pytestmark = pytest.mark.django_db
NASTY = 'Zoë <script>alert(1)</script> "Q" O\'Brien עברית 📚'


@pytest.fixture
def person(client):
    user = verified_user("person@example.test")
    client.force_login(user)
    return user


@pytest.fixture
def joined(person, community, controller):
    community.controllers.add(controller)
    member, _ = services.member_join(user=person, community=community, full_name=NASTY)
    return member


def sign(member, capture):
    choices = full_choices(member)
    with capture(execute=True):
        return services.mandate_sign(
            member=member,
            choices=choices,
            signed_name=member.full_name,
            ip=None,
            user_agent="",
            shown_text_sha256=text_sha256(render_mandate_text(member=member, choices=choices)),
        )


def test_the_community_page_explains_and_offers_sign_up_to_a_stranger(client, community):
    page = client.get(f"/join/{community.slug}/").content.decode()
    assert community.name in page and "How you stay in control" in page and "/accounts/signup/" in page


def test_joining_asks_for_a_name_and_keeps_nothing_lost_on_error(client, person, community):
    response = client.post(f"/join/{community.slug}/", {"full_name": "   "})
    assert response.status_code == 200 and "Enter your full name" in response.content.decode()
    response = client.post(f"/join/{community.slug}/", {"full_name": NASTY})
    member = Member.objects.get(user=person)
    assert response.status_code == 302 and response["Location"] == f"/me/{member.reference}/identifiers/"
    again = client.post(f"/join/{community.slug}/", {"full_name": NASTY})
    assert again.status_code == 302 and Member.objects.filter(user=person).count() == 1


def test_an_expired_or_forged_invite_gets_a_clear_page(client, person, community):
    community.join_policy = Community.JoinPolicy.INVITE
    community.save()
    forged = client.get(f"/join/{community.slug}/?invite=nope").content.decode()
    assert "invitation only" in forged
    expired = Invite.objects.create(community=community, expires_at=timezone.now())
    page = client.get(f"/join/{community.slug}/?invite={expired.token}").content.decode()
    assert "expired" in page


def test_identifiers_are_validated_per_type_and_values_kept(client, joined, controller):
    url = f"/me/{joined.reference}/identifiers/"
    page = client.get(url).content.decode()
    field = re.search(r'name="(c\d+_0)"', page).group(1)
    response = client.post(url, {field: "not-an-email", f"{field[:-1]}1": "ACC-1"})
    body = response.content.decode()
    assert response.status_code == 200 and "correct format" in body and 'value="not-an-email"' in body
    assert client.post(url, {field: "me@acme-user.test"}).status_code == 302
    assert joined.identifiers.get(controller=controller, kind="email").value == "me@acme-user.test"


def test_the_mandate_flow_shows_the_exact_text_and_signs_it(
    client, joined, controller, mailoutbox, django_capture_on_commit_callbacks
):
    url = f"/me/{joined.reference}/mandate/new/"
    training = make_purpose(joined.community, "Find out about training.")
    first = client.get(url).content.decode()
    # Consent is an unambiguous act (Art 4(11), Art 7 UK GDPR): nothing is ticked or selected for a newcomer.
    assert " checked" not in first
    assert "Ask an organisation to delete my personal data (erasure)" in first and "(Art 17)" not in first
    bad = client.post(
        url,
        {"rights": [], "scope": "some", "valid_until": "2000-01-01", "send_responses_to": "community"},
    )
    text = bad.content.decode()
    assert "Select at least one thing the community may ask for you" in text
    assert "Select at least one organisation" in text and "Select at least one purpose" in text
    assert "in the future" in text
    until = (timezone.localdate().replace(year=timezone.localdate().year + 1)).isoformat()
    ok = client.post(
        url,
        {
            "rights": ["access"],
            "scope": "all",
            "purposes": [training.pk],
            "valid_until": until,
            "send_responses_to": "community",
            "may_represent_before_ico": "on",
        },
    )
    assert ok.status_code == 302
    review = client.get(f"/me/{joined.reference}/mandate/review/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in review and "<script>alert(1)" not in review
    digest = re.search(r'name="text_sha256" value="([0-9a-f]{64})"', review).group(1)
    wrong = client.post(
        f"/me/{joined.reference}/mandate/review/",
        {"text_sha256": digest, "signed_name": "Someone", "confirm": "on"},
    )
    assert "Type your full name" in wrong.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        signed = client.post(
            f"/me/{joined.reference}/mandate/review/",
            {"text_sha256": digest, "signed_name": NASTY, "confirm": "on"},
        )
    mandate = Mandate.objects.get(member=joined)
    assert signed.status_code == 302 and signed["Location"] == f"/me/mandates/{mandate.reference}/"
    assert mandate.text_sha256 == digest
    # "All of them" is the explicit list of the day, named in the text.
    assert mandate.all_controllers and list(mandate.controllers.all()) == [controller]
    assert list(mandate.purposes.all()) == [training]
    assert f"  - {controller.name}\n" in mandate.text and "Find out about training." in mandate.text
    pdf = client.get(f"/me/mandates/{mandate.reference}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"


def test_revoking_takes_a_confirmation_step(client, joined, django_capture_on_commit_callbacks):
    mandate = sign(joined, django_capture_on_commit_callbacks)
    url = f"/me/mandates/{mandate.reference}/revoke/"
    assert "Revoke mandate" in client.get(url).content.decode()
    assert Mandate.objects.get(pk=mandate.pk).state == "active"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"reason": ""}).status_code == 302
    assert Mandate.objects.get(pk=mandate.pk).state == "revoked"
    verify = client.get(f"/verify/{mandate.verification_token}/").content.decode()
    assert "Not in force" in verify


def test_the_public_check_shows_the_mandate_but_nothing_personal(
    client, joined, django_capture_on_commit_callbacks
):
    mandate = sign(joined, django_capture_on_commit_callbacks)
    client.logout()
    page = client.get(f"/verify/{mandate.verification_token}/").content.decode()
    assert "In force" in page and joined.reference in page and mandate.pdf_sha256 in page
    # The name in full ("Zo" alone also turns up in random tokens on the page).
    assert "Zoë" not in page and "Brien" not in page and "person@example.test" not in page
    assert client.get("/verify/not-a-token/").status_code == 404


def test_another_members_records_are_404_whatever_the_url(
    client, joined, controller, community, django_capture_on_commit_callbacks
):
    mandate = sign(joined, django_capture_on_commit_callbacks)
    request = make_request(joined, controller, mandate=mandate)
    client.force_login(verified_user("outsider@example.test"))
    for url in [
        f"/me/{joined.reference}/identifiers/",
        f"/me/{joined.reference}/mandate/new/",
        f"/me/mandates/{mandate.reference}/",
        f"/me/mandates/{mandate.reference}/pdf/",
        f"/me/mandates/{mandate.reference}/revoke/",
        f"/me/requests/{request.reference}/",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/me/mandates/{mandate.reference}/revoke/").status_code == 404
    assert Mandate.objects.get(pk=mandate.pk).state == "active"


def test_member_pages_need_a_sign_in(client, community):
    response = client.get("/me/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_dashboard_shows_days_left_and_the_question_to_answer(
    client, joined, controller, django_capture_on_commit_callbacks
):
    from core.audit import Actor
    from requests_engine import services as engine

    mandate = sign(joined, django_capture_on_commit_callbacks)
    request = make_request(joined, controller, mandate=mandate)
    engine.request_approve(request_id=request.pk, actor=Actor.system())
    engine.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=Actor.system())
    page = client.get("/me/").content.decode()
    assert "days left" in page and "Acme Ltd" in page
    engine.request_ask_for_information(
        request_id=request.pk,
        kind="clarification",
        question="Which account <b>?",
        asked_on=timezone.localdate(),
        actor=Actor(Actor.CONTROLLER, "1"),
    )
    page = client.get("/me/").content.decode()
    assert "needs your answer" in page and "Which account &lt;b&gt;?" in page
    empty = client.post(f"/me/requests/{request.reference}/", {"answer": ""})
    assert "Enter your answer" in empty.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        answered = client.post(f"/me/requests/{request.reference}/", {"answer": "The one with this email."})
    assert answered.status_code == 302
    request.refresh_from_db()
    assert request.state == "acknowledged" and request.paused_days == 1


def test_export_downloads_a_zip_and_delete_needs_confirmation(client, joined, person):
    export = client.get("/me/export/")
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"
    assert "Confirm that you want" in client.post("/me/delete/", {}).content.decode()
    assert client.post("/me/delete/", {"confirm": "on"}).status_code == 302
    person.refresh_from_db()
    assert not person.is_active
