"""Coordinators create, preview, launch and follow a campaign in the back office."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from communities.models import Community, Notice
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine.campaigns import launch
from requests_engine.models import Batch, Campaign, Controller
from tests.factories import make_campaign, make_mandate, make_member, make_purpose

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(community, controller, coordinator):
    campaign = make_campaign(
        community,
        name="Training data",
        rights=["access"],
        purpose="Find out.",
        created_by=coordinator,
        controllers=[controller],
    )
    return campaign


def hidden_inputs(client, url):
    page = client.get(url).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    return fields


def test_a_coordinator_creates_a_campaign_in_the_admin(client, coordinator, community, controller):
    community.controllers.add(controller)
    purpose = make_purpose(community, "See what sets our pay.")
    client.force_login(coordinator)
    response = client.post(
        "/admin/requests_engine/campaign/add/",
        {
            **hidden_inputs(client, "/admin/requests_engine/campaign/add/"),
            "community": community.pk,
            "name": "Pay data",
            "rights": ["access", "portability"],
            "controllers": [controller.pk],
            "purpose": purpose.pk,
            "member_note": "",
        },
    )
    assert response.status_code == 302
    created = Campaign.objects.get(name="Pay data")
    assert created.state == "draft" and created.created_by == coordinator


def test_a_campaign_offers_only_the_community_s_controllers_and_purposes(
    client, coordinator, community, controller
):
    listed = Controller.objects.create(slug="listed", name="Listed Ltd", email="dpo@listed.test")
    community.controllers.add(listed)
    ours = make_purpose(community, "Ours.")
    elsewhere = Community.objects.create(slug="other", name="Other", purpose="x", contact_email="o@o.test")
    theirs = make_purpose(elsewhere, "Theirs.")
    client.force_login(coordinator)
    page = client.get("/admin/requests_engine/campaign/add/").content.decode()
    assert "Listed Ltd" in page and "Acme" not in page
    response = client.post(
        "/admin/requests_engine/campaign/add/",
        {
            **hidden_inputs(client, "/admin/requests_engine/campaign/add/"),
            "community": community.pk,
            "name": "Reaching out",
            "rights": ["erasure"],
            "controllers": [controller.pk],  # in the directory, not on the community's list
            "purpose": theirs.pk,
            "member_note": "",
        },
    )
    assert response.status_code == 200 and not Campaign.objects.filter(name="Reaching out").exists()
    assert ours.pk != theirs.pk


def test_the_preview_counts_eligible_members_and_names_those_missing_an_identifier(
    client, coordinator, campaign, community, controller
):
    with_email = make_member(community, "Ada Lovelace")
    make_mandate(with_email)
    with_email.identifiers.create(kind="email", value="ada@acme-user.test", controller=controller)
    without = make_member(community, "Mary Shelley")
    make_mandate(without)
    other_only = make_member(community, "Sam Elsewhere")
    make_mandate(
        other_only, all_controllers=False, controllers=[Controller.objects.create(slug="x", name="X")]
    )
    client.force_login(coordinator)
    page = client.get(f"/admin/requests_engine/campaign/{campaign.pk}/change/").content.decode()
    assert "Preview: who a launch would include" in page
    row = page[page.index("Acme Ltd") :]
    assert "<td>2</td>" in row and "Mary Shelley" in row and "Ada Lovelace" not in row[:400]


def test_asking_for_missing_identifiers_emails_each_member_once_a_day(
    client, coordinator, campaign, community, mailoutbox, django_capture_on_commit_callbacks
):
    member = make_member(community, "Mary Shelley")
    make_mandate(member)
    client.force_login(coordinator)
    url = f"/admin/requests_engine/campaign/{campaign.pk}/ask-identifiers/"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
        client.post(url)
    assert OutboundMessage.objects.filter(purpose="campaign.identifiers_needed").count() == 1
    assert len(mailoutbox) == 1 and f"/me/{member.reference}/identifiers/" in mailoutbox[0].body


def test_after_launch_the_page_shows_progress_that_refreshes_in_place(
    client, coordinator, campaign, community
):
    make_mandate(make_member(community, "Ada Lovelace"))
    client.force_login(coordinator)
    page = client.get(f"/admin/requests_engine/campaign/{campaign.pk}/change/")
    fields = dict(
        __import__("re").findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode()
        )
    )
    fields.pop("csrfmiddlewaretoken", None)
    response = client.post(
        f"/admin/requests_engine/campaign/{campaign.pk}/change/",
        {
            **fields,
            "community": community.pk,
            "name": campaign.name,
            "rights": ["access"],
            "controllers": [c.pk for c in campaign.controllers.all()],
            "purpose": campaign.purpose_id,
            "_fsm_transition_to": "launch",
        },
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.state == "launched"
    page = client.get(f"/admin/requests_engine/campaign/{campaign.pk}/change/").content.decode()
    assert 'hx-trigger="every 3s"' in page and "batches sent" in page
    fragment = client.get(f"/admin/requests_engine/campaign/{campaign.pk}/progress/").content.decode()
    assert "of 1</strong> batches sent" in fragment and "All" in fragment


def test_an_erasure_campaign_asks_members_to_confirm_from_its_page(
    client, coordinator, community, controller
):
    ada = make_member(community, "Ada Lovelace")
    make_mandate(ada, rights=["access", "erasure"], irreversible_without_asking=False)
    campaign = make_campaign(
        community, name="Delete", rights=["access", "erasure"], purpose="Stop it.", controllers=[controller]
    )
    client.force_login(coordinator)
    change = f"/admin/requests_engine/campaign/{campaign.pk}/change/"
    page = client.get(change).content.decode()
    assert "Ask members to confirm the erasure or objection requests" in page
    assert '<th scope="col">Not confirmed</th>' in page
    url = f"/admin/requests_engine/campaign/{campaign.pk}/ask-confirmation/"
    refused = client.post(url, {"confirm_by": "not a date"}, follow=True).content.decode()
    assert "Enter the date members must answer by" in refused
    today = timezone.localdate()
    too_soon = client.post(url, {"confirm_by": (today + timedelta(days=1)).isoformat()}, follow=True)
    assert "at least" in too_soon.content.decode()
    done = client.post(url, {"confirm_by": (today + timedelta(days=14)).isoformat()}, follow=True)
    assert "Asked 1 member(s) to confirm" in done.content.decode()
    assert Notice.objects.filter(member=ada, link__startswith="/me/confirm/").count() == 1
    # "Approve and launch" is refused while Ada may still answer: nothing is sent.
    response = client.post(
        change,
        {
            **hidden_inputs(client, change),
            "community": community.pk,
            "name": campaign.name,
            "rights": ["access", "erasure"],
            "controllers": [controller.pk],
            "purpose": campaign.purpose_id,
            "_fsm_transition_to": "launch",
        },
        follow=True,
    )
    assert "Members have until" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.state == "draft" and campaign.requests.count() == 0


def test_the_batch_page_downloads_its_stored_letter_and_manifest(
    client, coordinator, campaign, community, mailbox, django_capture_on_commit_callbacks
):
    from core.audit import Actor
    from requests_engine.campaigns import launch
    from requests_engine.models import Batch

    make_mandate(make_member(community, "Ada Lovelace"))
    with django_capture_on_commit_callbacks(execute=True):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.user(coordinator))
    batch = Batch.objects.get(campaign=campaign)
    assert batch.letter_pdf and batch.manifest
    client.force_login(coordinator)
    page = client.get(f"/admin/requests_engine/batch/{batch.pk}/change/").content.decode()
    for which in ("letter", "manifest"):
        url = f"/admin/requests_engine/batch/{batch.pk}/file/{which}/"
        assert url in page
        response = client.get(url)
        assert response.status_code == 200 and b"".join(response.streaming_content)
    assert client.get(f"/admin/requests_engine/batch/{batch.pk}/file/other/").status_code == 404


def test_each_progress_link_lists_only_this_campaign_s_requests_or_batches(
    client, coordinator, campaign, community, controller
):
    for name in ("Ada Lovelace", "Mary Shelley"):
        make_mandate(make_member(community, name))
    other = make_campaign(
        community,
        name="Other",
        rights=["access"],
        purpose="Also.",
        created_by=coordinator,
        controllers=[controller],
    )
    for launched in (campaign, other):
        launch.campaign_launch(campaign_id=launched.pk, actor=Actor.user(coordinator))
    Batch.objects.update(state="failed")  # both campaigns' batches: the "failed" link must pick ours
    client.force_login(coordinator)

    change = client.get(f"/admin/requests_engine/campaign/{campaign.pk}/change/").content.decode()
    start = change.index("<h2>Progress</h2>")
    progress = change[start : change.index("</fieldset>", start)]
    fragment = client.get(f"/admin/requests_engine/campaign/{campaign.pk}/progress/").content.decode()
    for shown in (progress, fragment):  # the page as first drawn, and as refreshed in place
        links = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', shown)]
        assert {link.split("?")[0] for link in links} == {
            "/admin/requests_engine/batch/",
            "/admin/requests_engine/datarightsrequest/",
        }
        for link in links:
            response = client.get(link)
            assert response.status_code == 200, link  # a lookup the admin does not allow redirects, ?e=1
            query = response.context["cl"].params
            assert query.get("campaign__id__exact") == str(campaign.pk), link
            model = response.context["cl"].model
            expected = model.objects.filter(campaign=campaign)
            if "state__exact" in query:
                expected = expected.filter(state=query["state__exact"])
            rows = list(response.context["cl"].result_list)
            assert rows and sorted(r.pk for r in rows) == sorted(expected.values_list("pk", flat=True)), link
