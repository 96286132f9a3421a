import datetime as dt

import pytest
import time_machine

from core.audit import Actor
from requests_engine.campaigns import launch
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, Controller, DataRightsRequest, RequestEvent
from tests.factories import make_campaign, make_mandate, make_member


@pytest.fixture
def campaign(community, controller, coordinator):
    other = Controller.objects.create(slug="globex", name="Globex", email="dpo@globex.test")
    campaign = make_campaign(
        community,
        name="Training data",
        rights=["access", "erasure"],
        purpose="Find out.",
        created_by=coordinator,
        controllers=[controller, other],
    )
    return campaign


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_launch_creates_a_batch_per_controller_and_a_request_per_eligible_member_controller_right(
    campaign, community, controller, coordinator_actor
):
    everyone = make_member(community, "Ada Lovelace")
    make_mandate(everyone, rights=["access", "erasure"])
    access_only_acme = make_member(community, "Mary Shelley")
    make_mandate(access_only_acme, rights=["access"], all_controllers=False, controllers=[controller])
    revoked = make_member(community, "Sam Revoked")
    mandate = make_mandate(revoked, rights=["access"])
    mandate.revoke()
    mandate.save()
    expired = make_member(community, "Ed Expired")
    make_mandate(expired, rights=["access"], days=-2)

    created = launch.campaign_launch(campaign_id=campaign.pk, actor=coordinator_actor)

    assert created == {"access": 3, "erasure": 2}
    # One batch per controller, and one more holding each controller's erasures until the access answers
    # are in (campaigns/sequencing.py).
    assert Batch.objects.filter(campaign=campaign, after_access=False).count() == 2
    assert set(
        Batch.objects.filter(campaign=campaign, after_access=True).values_list("state", flat=True)
    ) == {"held"}
    rows = set(
        DataRightsRequest.objects.filter(campaign=campaign).values_list(
            "member__full_name", "controller__slug", "right"
        )
    )
    assert rows == {
        ("Ada Lovelace", "acme", "access"),
        ("Ada Lovelace", "globex", "access"),
        ("Ada Lovelace", "acme", "erasure"),
        ("Ada Lovelace", "globex", "erasure"),
        ("Mary Shelley", "acme", "access"),
    }
    assert set(DataRightsRequest.objects.filter(right="access").values_list("state", flat=True)) == {"queued"}
    assert set(DataRightsRequest.objects.filter(right="erasure").values_list("state", flat=True)) == {"draft"}
    request = DataRightsRequest.objects.get(member=everyone, controller=controller, right="access")
    assert request.reference == f"{request.batch.reference}-{everyone.reference}-AC"
    campaign.refresh_from_db()
    assert campaign.state == "launched"
    event = RequestEvent.objects.get(campaign=campaign)
    assert event.kind == "campaign.launched" and event.payload["requests_created"] == created


def test_a_launched_campaign_cannot_be_launched_again(campaign, member, coordinator_actor):
    launch.campaign_launch(campaign_id=campaign.pk, actor=coordinator_actor)
    with pytest.raises(RequestEngineError, match="launched"):
        launch.campaign_launch(campaign_id=campaign.pk, actor=coordinator_actor)
    assert DataRightsRequest.objects.count() == 2


def test_a_campaign_without_controllers_is_refused(community, coordinator_actor):
    campaign = make_campaign(community, name="Empty", rights=["access"], purpose="x")
    with pytest.raises(RequestEngineError, match="at least one controller"):
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system())
    campaign.refresh_from_db()
    assert campaign.state == "draft"
