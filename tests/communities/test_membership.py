import datetime as dt
import hashlib

import pytest
from django.utils import timezone

from communities import services
from communities.mandate_text import render_mandate_text, text_sha256
from communities.models import Community, Invite, Mandate, Member
from core.audit import Actor
from requests_engine import services as engine
from requests_engine.models import DataRightsRequest, RequestEvent
from tests.factories import full_choices, make_request, verified_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def person():
    return verified_user("new.person@example.test")


@pytest.fixture(autouse=True)
def _listed(community, controller):
    """The community acts towards Acme: a mandate names at least one organisation from its list."""
    community.controllers.add(controller)


def choices_for(member, **changes):
    base = full_choices(member)
    return base.__class__(**{**base.__dict__, **changes})


def test_joining_an_open_community_twice_keeps_one_membership(person, community):
    member, created = services.member_join(user=person, community=community, full_name="  New   Person ")
    again, created_again = services.member_join(user=person, community=community, full_name="Other")
    assert created and not created_again and member.pk == again.pk
    assert member.full_name == "New Person"


def test_an_unverified_email_cannot_join(community, django_user_model):
    user = django_user_model.objects.create_user("u@example.test", "u@example.test", "pw")
    with pytest.raises(services.CommunityError, match="Verify your email"):
        services.member_join(user=user, community=community, full_name="U")


def test_a_closed_community_needs_a_usable_invite(person, community):
    community.join_policy = Community.JoinPolicy.INVITE
    community.save()
    with pytest.raises(services.CommunityError, match="invitation only"):
        services.member_join(user=person, community=community, full_name="P", invite_token="forged")
    expired = Invite.objects.create(community=community, expires_at=timezone.now() - dt.timedelta(minutes=1))
    with pytest.raises(services.CommunityError):
        services.member_join(user=person, community=community, full_name="P", invite_token=expired.token)
    invite = Invite.objects.create(community=community, expires_at=timezone.now() + dt.timedelta(days=7))
    services.member_join(user=person, community=community, full_name="P", invite_token=invite.token)
    invite.refresh_from_db()
    assert invite.uses == 1 and not invite.is_usable()


def test_signing_stores_the_evidence_and_issues_a_sealed_pdf_by_email(
    person, community, controller, mailoutbox, django_capture_on_commit_callbacks
):
    community.controllers.add(controller)
    member, _ = services.member_join(
        user=person, community=community, full_name="Zoë <script>alert(1)</script> O'Brien"
    )
    choices = choices_for(member)
    text = render_mandate_text(member=member, choices=choices)
    with django_capture_on_commit_callbacks(execute=True):
        mandate = services.mandate_sign(
            member=member,
            choices=choices,
            shown_text_sha256=text_sha256(text),
            signed_name="zoë <script>alert(1)</script> o'brien",
            ip="127.0.0.1",
            user_agent="pytest",
        )
    mandate.refresh_from_db()
    assert mandate.text == text and mandate.text_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert mandate.signed_ip == "127.0.0.1" and mandate.signed_user_agent == "pytest"
    assert mandate.pdf and mandate.pdf_sha256 == hashlib.sha256(mandate.pdf.read()).hexdigest()
    assert RequestEvent.objects.get(mandate=mandate).kind == "mandate.signed"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["new.person@example.test"]
    assert mailoutbox[0].attachments[0][0] == f"mandate-{mandate.reference}.pdf"
    assert "Acme Ltd" in text and "Access (Art 15)" in text


def test_signing_refuses_a_different_name_or_a_changed_text(person, community):
    member, _ = services.member_join(user=person, community=community, full_name="Ada Lovelace")
    choices = choices_for(member)
    good_hash = text_sha256(render_mandate_text(member=member, choices=choices))
    with pytest.raises(services.CommunityError, match="full name"):
        services.mandate_sign(
            member=member,
            choices=choices,
            shown_text_sha256=good_hash,
            signed_name="Ada",
            ip=None,
            user_agent="",
        )
    with pytest.raises(services.CommunityError, match="changed"):
        services.mandate_sign(
            member=member,
            choices=choices,
            shown_text_sha256="0" * 64,
            signed_name="Ada Lovelace",
            ip=None,
            user_agent="",
        )
    assert not Mandate.objects.exists()


def test_revoking_withdraws_open_requests_and_tells_each_controller_once(
    person, community, controller, mailoutbox, django_capture_on_commit_callbacks
):
    member, _ = services.member_join(user=person, community=community, full_name="Ada Lovelace")
    choices = choices_for(member)
    mandate = services.mandate_sign(
        member=member,
        choices=choices,
        shown_text_sha256=text_sha256(render_mandate_text(member=member, choices=choices)),
        signed_name="Ada Lovelace",
        ip=None,
        user_agent="",
    )
    sent = make_request(member, controller, mandate=mandate, reference="R-sent")
    queued = make_request(member, controller, mandate=mandate, right="erasure", reference="R-queued")
    system = Actor.system()
    for r in (sent, queued):
        engine.request_approve(request_id=r.pk, actor=system)
    engine.request_dispatch(request_id=sent.pk, received_on=timezone.localdate(), actor=system)
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        withdrawn = services.mandate_revoke(mandate_id=mandate.pk, actor=Actor(Actor.MEMBER, str(member.pk)))

    assert withdrawn == 2
    assert set(DataRightsRequest.objects.values_list("state", flat=True)) == {"withdrawn"}
    assert Mandate.objects.get(pk=mandate.pk).state == "revoked"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["privacy@acme.test"]
    assert "R-sent" in mailoutbox[0].body and "R-queued" not in mailoutbox[0].body
    with pytest.raises(services.CommunityError, match="already revoked"):
        services.mandate_revoke(mandate_id=mandate.pk, actor=Actor(Actor.MEMBER, str(member.pk)))


def test_export_holds_everything_and_delete_erases_the_login_but_keeps_evidence(
    person, community, django_capture_on_commit_callbacks
):
    import json
    import zipfile

    member, _ = services.member_join(user=person, community=community, full_name="Ada Lovelace")
    services.identifiers_save(member=member, entries=[(None, "email", "", "ada@elsewhere.test")])
    choices = choices_for(member)
    with django_capture_on_commit_callbacks(execute=True):
        mandate = services.mandate_sign(
            member=member,
            choices=choices,
            shown_text_sha256=text_sha256(render_mandate_text(member=member, choices=choices)),
            signed_name="Ada Lovelace",
            ip=None,
            user_agent="",
        )
    archive = zipfile.ZipFile(services.account_export(user=person))
    data = json.loads(archive.read("data.json"))
    assert data["memberships"][0]["identifiers"][0]["value"] == "ada@elsewhere.test"
    assert f"mandates/{mandate.reference}.pdf" in archive.namelist()

    summary = services.account_delete(user=person)
    person.refresh_from_db()
    assert summary["mandates_revoked"] == 1
    assert not person.is_active and person.email == "" and not person.has_usable_password()
    assert not Member.objects.get(pk=member.pk).identifiers.exists()
    assert Mandate.objects.get(pk=mandate.pk).state == "revoked"  # kept, as evidence


def test_a_name_too_long_is_refused_with_a_clear_error_not_cut_short(person, community, client):
    from communities.forms import JoinForm

    long_name = "Ada " + "Lovelace-" * 30
    form = JoinForm({"full_name": long_name})
    assert not form.is_valid()
    assert form.errors["full_name"] == ["Enter your full name in 200 characters or fewer"]
    assert "maxlength" not in str(JoinForm()["full_name"])  # the browser must not cut it silently
    with pytest.raises(services.CommunityError, match="200 characters or fewer"):
        services.member_join(user=person, community=community, full_name=long_name)
