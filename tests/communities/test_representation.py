"""Art 80(1) eligibility is recorded and shown: only a community with its record offers representation before
the ICO, court is its own opt-in, the register shows the record or its absence, and without it members who
need the ICO get a kit to complain themselves."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from dataclasses import replace

import pytest
import time_machine
from django.utils import timezone

from communities import representation
from communities.forms import MandateChoicesForm
from communities.mandate_text import render_mandate_text, text_sha256
from communities.models import Community, Mandate
from communities.services import CommunityError, mandate_sign
from core.audit import Actor
from requests_engine import services, sweep
from requests_engine.campaigns import launch
from requests_engine.escalation import complaints, ico_pack
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Complaint, DataRightsRequest
from requests_engine.register import figures
from tests.factories import (
    MINIMAL_PDF,
    full_choices,
    make_art80_record,
    make_campaign,
    make_mandate,
    make_member,
    make_purpose,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _lists_a_controller(community, controller):
    community.controllers.add(controller)


def at(day: dt.date):
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


def _form(community: Community, **data) -> MandateChoicesForm:
    purpose = make_purpose(community)
    until = (timezone.localdate() + dt.timedelta(days=200)).isoformat()
    post = {
        "rights": ["access"],
        "scope": "all",
        "purposes": [str(purpose.pk)],
        "valid_until": until,
        "send_responses_to": "community",
        **data,
    }
    return MandateChoicesForm(post, community=community)


def _sign(member, choices) -> Mandate:
    text = render_mandate_text(member=member, choices=choices)
    return mandate_sign(
        member=member,
        choices=choices,
        shown_text_sha256=text_sha256(text),
        signed_name=member.full_name,
        ip=None,
        user_agent="test",
    )


# -- the rule --------------------------------------------------------------------------------------------


def test_a_community_is_eligible_only_with_every_part_of_its_record(community):
    assert not community.art80_eligible
    make_art80_record(community)
    assert community.art80_eligible and not community.offers_court
    for blank in ({"legal_form": ""}, {"not_for_profit": False}, {"statutory_objectives": " "}):
        Community.objects.filter(pk=community.pk).update(**blank)
        assert not Community.objects.get(pk=community.pk).art80_eligible
        make_art80_record(community)
    Community.objects.filter(pk=community.pk).update(constitution="")
    assert not Community.objects.get(pk=community.pk).art80_eligible


def test_the_constitution_is_a_pdf_stored_encrypted_and_read_back_checked(community, settings):
    with pytest.raises(CommunityError, match="must be a PDF"):
        representation.constitution_store(community_id=community.pk, data=b"<html>not a pdf</html>")
    with pytest.raises(CommunityError, match="larger than"):
        representation.constitution_check(MINIMAL_PDF + b"0" * representation.CONSTITUTION_MAX_BYTES)
    stored = representation.constitution_store(community_id=community.pk, data=MINIMAL_PDF)
    with stored.constitution.open("rb") as raw:
        assert MINIMAL_PDF not in raw.read()  # encrypted at rest
    assert representation.constitution_data(stored) == MINIMAL_PDF
    assert stored.constitution_sha256 == hashlib.sha256(MINIMAL_PDF).hexdigest()


# -- the mandate choices ---------------------------------------------------------------------------------


def test_an_ineligible_community_offers_no_representation_and_the_service_refuses_it(community):
    form = _form(community, may_represent_before_ico="on", may_represent_in_court="on")
    assert "may_represent_before_ico" not in form.fields and "may_represent_in_court" not in form.fields
    assert form.is_valid(), form.errors
    choices = form.choices()
    assert not choices.may_represent_before_ico and not choices.may_represent_in_court

    member = make_member(community, "Grace Hopper")
    with pytest.raises(CommunityError, match="may represent members before the ICO"):
        _sign(member, replace(full_choices(member), may_represent_before_ico=True))
    assert not member.mandates.exists()


def test_the_mandate_page_says_plainly_that_members_can_complain_themselves(community, client):
    member = make_member(community, "Grace Hopper")
    client.force_login(member.user)
    page = client.get(f"/me/{member.reference}/mandate/new/").content.decode()
    assert "cannot complain to the ICO for you" in page and "prepare a kit for you" in page
    assert 'name="may_represent_before_ico"' not in page and 'name="may_represent_in_court"' not in page

    make_art80_record(community)
    page = client.get(f"/me/{member.reference}/mandate/new/").content.decode()
    assert 'name="may_represent_before_ico"' in page and "cannot complain to the ICO" not in page
    assert 'name="may_represent_in_court"' not in page  # court stays off unless the community enables it


def test_an_eligible_community_offers_the_ico_unticked_and_court_only_when_it_offers_it(community):
    make_art80_record(community)
    form = MandateChoicesForm(community=community)
    assert "may_represent_before_ico" in form.fields and "may_represent_in_court" not in form.fields
    assert not form["may_represent_before_ico"].value()  # never pre-ticked

    unticked = _form(community)
    assert unticked.is_valid() and not unticked.choices().may_represent_before_ico
    ticked = _form(community, may_represent_before_ico="on", may_represent_in_court="on")
    assert ticked.is_valid()
    assert ticked.choices().may_represent_before_ico and not ticked.choices().may_represent_in_court

    member = make_member(community, "Grace Hopper")
    with pytest.raises(CommunityError, match="does not offer representation in court"):
        _sign(member, replace(full_choices(member), may_represent_in_court=True))

    make_art80_record(community, court=True)
    form = MandateChoicesForm(community=community)
    assert "may_represent_in_court" in form.fields and not form["may_represent_in_court"].value()
    assert "what it could cost and what the risks are" in form.fields["may_represent_in_court"].help_text
    court = _form(community, may_represent_in_court="on")
    assert court.is_valid() and court.choices().may_represent_in_court


def test_mandate_text_v3_gives_ico_and_court_a_sentence_each_only_when_chosen(community):
    make_art80_record(community, court=True)
    member = make_member(community, "Grace Hopper")
    choices = full_choices(member)
    assert choices.may_represent_before_ico and choices.may_represent_in_court
    mandate = _sign(member, choices)
    assert mandate.template_version == "v3"
    assert mandate.may_represent_before_ico and mandate.may_represent_in_court
    assert "It may represent me before the Information Commissioner: it may complain" in mandate.text
    assert "It may represent me in court" in mandate.text and "Articles 79 and 82 UK GDPR" in mandate.text
    assert "and the courts" not in mandate.text

    only_ico = replace(choices, may_represent_in_court=False)
    text = render_mandate_text(member=member, choices=only_ico)
    assert "It may represent me before the Information Commissioner" in text
    assert "It may not represent me in court." in text
    neither = replace(only_ico, may_represent_before_ico=False)
    text = render_mandate_text(member=member, choices=neither)
    assert "It may not represent me before the Information Commissioner." in text
    assert "It may not represent me in court." in text
    # Mandates signed on v2 still render as they were signed.
    assert "and the courts" in render_mandate_text(member=member, choices=choices, version="v2")


def test_a_court_authority_is_shown_on_the_check_page(community, client):
    make_art80_record(community, court=True)
    member = make_member(community, "Grace Hopper")
    mandate = _sign(member, full_choices(member))
    page = client.get(f"/verify/{mandate.verification_token}/").content.decode()
    assert "Representation in court" in page and "Articles 79 and 82 UK GDPR" in page


# -- the register ----------------------------------------------------------------------------------------


def test_the_register_shows_the_record_and_serves_the_constitution(community, client):
    make_art80_record(community)
    page = client.get("/register/").content.decode()
    assert "Company limited by guarantee" in page
    assert "To protect writers&#x27; personal data, for the public benefit." in page
    assert "Makes data rights requests and complaints for its members." in page
    assert "/register/communities/writers/constitution.pdf" in page
    assert "does not represent members before" not in page
    entry = figures.register_index()["communities"][0]["art80_record"]
    assert entry["not_for_profit"] is True and entry["represents_in_court"] is False
    download = client.get("/register/communities/writers/constitution.pdf")
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert download.content == MINIMAL_PDF


def test_the_register_says_plainly_when_there_is_no_record(community, client):
    page = client.get("/register/").content.decode()
    assert "has not recorded that it is eligible under Article 80(1) UK GDPR" in page
    assert "does not represent members before the Information Commissioner" in page
    assert figures.register_index()["communities"][0]["art80_record"] is None
    representation.constitution_store(community_id=community.pk, data=MINIMAL_PDF)  # a record in part
    assert client.get("/register/communities/writers/constitution.pdf").status_code == 404


def test_the_admin_records_the_constitution_through_the_checked_upload(community, client, coordinator):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(coordinator)
    url = f"/admin/communities/community/{community.pk}/change/"
    page = client.get(url).content.decode()
    assert "Representation (Article 80(1))" in page and 'name="constitution_upload"' in page
    form = {
        "name": community.name,
        "slug": community.slug,
        "purpose": community.purpose,
        "contact_email": community.contact_email,
        "join_policy": community.join_policy,
        "rights": '["access", "erasure"]',
        "brand_colour": community.brand_colour,
        "retention_days": community.retention_days,
        "legal_form": "cio",
        "not_for_profit": "on",
        "statutory_objectives": "For the public benefit.",
        "data_protection_activity": "Data rights requests for members.",
        "purposes-TOTAL_FORMS": "0",
        "purposes-INITIAL_FORMS": "0",
    }
    refused = client.post(url, {**form, "constitution_upload": SimpleUploadedFile("c.pdf", b"plain text")})
    assert refused.status_code == 200 and "must be a PDF" in refused.content.decode()
    done = client.post(url, {**form, "constitution_upload": SimpleUploadedFile("c.pdf", MINIMAL_PDF)})
    assert done.status_code == 302, done.content.decode()[:2000]
    community.refresh_from_db()
    assert community.art80_eligible and representation.constitution_data(community) == MINIMAL_PDF


# -- the ICO step without the record: a kit for each member ----------------------------------------------


def _sent_complaint(community, controller, coordinator) -> Complaint:
    """Two members' access requests to a silent controller, taken to a s.164A complaint that was sent."""
    actor = Actor.user(coordinator)
    with at(dt.date(2026, 3, 2)):
        for name in ("Ada Lovelace", "Mary Shelley"):
            make_mandate(make_member(community, name), rights=["access"])
        campaign = make_campaign(
            community,
            name="Training data",
            rights=["access"],
            created_by=coordinator,
            controllers=[controller],
        )
        launch.campaign_launch(campaign_id=campaign.pk, actor=actor)
    with at(dt.date(2026, 3, 3)):
        for request in DataRightsRequest.objects.filter(campaign=campaign):
            services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 3, 3), actor=actor)
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(campaign_id=campaign.pk, controller_id=controller.pk, actor=actor)
    with at(dt.date(2026, 4, 9)):
        complaints.complaint_approve_and_send(complaint_id=draft.pk, actor=actor)
    return Complaint.objects.get(pk=draft.pk)


def test_without_the_record_each_member_gets_a_kit_to_complain_to_the_ico_themselves(
    community, controller, coordinator, client, django_capture_on_commit_callbacks
):
    actor = Actor.user(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        complaint = _sent_complaint(community, controller, coordinator)
    assert ico_pack.self_complaint_kit_due(community)
    with at(dt.date(2026, 5, 13)):
        with pytest.raises(RequestEngineError, match="no Article 80\\(1\\) record"):
            ico_pack.ico_pack_build(complaint_id=complaint.pk, harm="Harm.", ask="Ask.", actor=actor)
        with django_capture_on_commit_callbacks(execute=True):
            report = ico_pack.self_complaint_kits_send(
                complaint_id=complaint.pk, harm="I cannot find out.", ask="Please act.", actor=actor
            )
    assert not Complaint.objects.filter(kind=Complaint.Kind.ICO).exists()  # nobody complains for them
    assert sorted(m.full_name for m, _digest in report.kits) == ["Ada Lovelace", "Mary Shelley"]

    ada = community.members.get(full_name="Ada Lovelace")
    notice = ada.notices.get(subject=f"Your complaint kit for the ICO about {controller.name}")
    request = DataRightsRequest.objects.get(member=ada)
    assert notice.link == f"/me/requests/{request.reference}/"
    client.force_login(ada.user)
    page = client.get(notice.link).content.decode()
    assert "Complain to the ICO yourself" in page and f"/me/requests/{request.reference}/ico-kit/" in page
    download = client.get(f"/me/requests/{request.reference}/ico-kit/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    names = archive.namelist()
    assert "your-ico-complaint.pdf" in names and "timeline.txt" in names and "manifest.csv" in names
    assert any(n.startswith(f"mandates/{ada.reference}-") for n in names)
    mary = community.members.get(full_name="Mary Shelley")
    assert not any(mary.reference in n for n in names)  # one member's kit holds only their own requests
    assert hashlib.sha256(download.content).hexdigest() == {m.pk: d for m, d in report.kits}[ada.pk]

    # Someone else's kit is not theirs to download.
    theirs = DataRightsRequest.objects.get(member=mary).reference
    assert client.get(f"/me/requests/{theirs}/ico-kit/").status_code == 404


def test_with_the_record_the_ico_pack_is_built_and_no_kit_is_sent(community, controller, coordinator):
    make_art80_record(community)
    actor = Actor.user(coordinator)
    complaint = _sent_complaint(community, controller, coordinator)
    Mandate.objects.update(may_represent_before_ico=True)
    assert not ico_pack.self_complaint_kit_due(community)
    with at(dt.date(2026, 5, 13)):
        with pytest.raises(RequestEngineError, match="build the ICO pack"):
            ico_pack.self_complaint_kits_send(complaint_id=complaint.pk, harm="H.", ask="A.", actor=actor)
        pack = ico_pack.ico_pack_build(complaint_id=complaint.pk, harm="H.", ask="A.", actor=actor)
    assert len(pack.represented) == 2
