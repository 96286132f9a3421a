"""The one rule of authority: a request exists only where the member's mandate in force names the controller,
the right and the campaign's purpose, within its dates; and every path that makes or re-sends a request
obeys it."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from communities.models import Right
from core.audit import Actor
from requests_engine import services
from requests_engine.campaigns import eligibility, launch
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Controller, DataRightsRequest, RequestState
from tests.factories import make_campaign, make_mandate, make_member, make_purpose

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def acme(community, controller):
    community.controllers.add(controller)
    return controller


@pytest.fixture
def training(community):
    return make_purpose(community, "Find out whether AI developers used members' work.")


def _launch(campaign) -> int:
    return sum(launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system(), dispatch=False).values())


def test_a_mandate_naming_controller_right_and_purpose_is_covered(community, acme, training):
    make_mandate(make_member(community), rights=[Right.ACCESS], purposes=[training])
    campaign = make_campaign(
        community, name="C", rights=[Right.ACCESS], purpose=training, controllers=[acme], authorised=False
    )
    assert _launch(campaign) == 1


def test_a_controller_the_mandate_does_not_name_gets_nothing(community, acme, training):
    other = Controller.objects.create(slug="other", name="Other Ltd", email="dpo@other.test")
    community.controllers.add(other)
    make_mandate(make_member(community), all_controllers=False, controllers=[other], purposes=[training])
    campaign = make_campaign(
        community, name="C", rights=[Right.ACCESS], purpose=training, controllers=[acme], authorised=False
    )
    assert _launch(campaign) == 0


def test_a_purpose_the_member_did_not_choose_gets_nothing(community, acme, training):
    objecting = make_purpose(community, "Object to AI training on members' data.")
    make_mandate(make_member(community), rights=[Right.OBJECTION], purposes=[objecting])
    campaign = make_campaign(
        community, name="C", rights=[Right.OBJECTION], purpose=training, controllers=[acme], authorised=False
    )
    assert _launch(campaign) == 0


def test_all_controllers_means_the_list_of_the_day_it_was_signed(community, acme, training):
    make_mandate(make_member(community), all_controllers=True, purposes=[training])
    later = Controller.objects.create(slug="later", name="Later Ltd", email="dpo@later.test")
    community.controllers.add(later)  # added after signing
    campaign = make_campaign(
        community, name="C", rights=[Right.ACCESS], purpose=training, controllers=[later], authorised=False
    )
    [row] = eligibility_rows(campaign)
    assert (row.eligible, row.not_authorised) == (0, 1)
    assert _launch(campaign) == 0


def test_a_right_not_chosen_gets_nothing(community, acme, training):
    make_mandate(make_member(community), rights=[Right.ACCESS], purposes=[training])
    campaign = make_campaign(
        community, name="C", rights=[Right.ERASURE], purpose=training, controllers=[acme], authorised=False
    )
    assert _launch(campaign) == 0


def test_outside_the_mandate_s_dates_gets_nothing(community, acme, training):
    make_mandate(make_member(community, "Ed Expired"), purposes=[training], days=-1)
    campaign = make_campaign(
        community, name="C", rights=[Right.ACCESS], purpose=training, controllers=[acme], authorised=False
    )
    assert _launch(campaign) == 0


def test_a_campaign_outside_the_community_s_lists_cannot_launch(community, controller, training):
    make_mandate(make_member(community), purposes=[training])
    campaign = make_campaign(community, name="C", rights=[Right.ERASURE], purpose=training, authorised=False)
    campaign.controllers.set([controller])  # in the directory, not on the community's list
    with pytest.raises(RequestEngineError, match="not among the organisations"):
        _launch(campaign)
    assert not DataRightsRequest.objects.exists()


def test_members_not_authorised_are_asked_never_included(community, acme, training, mailbox):
    asked = make_member(community, "Mary Shelley")
    make_mandate(asked, purposes=[make_purpose(community, "Something else.")])
    campaign = make_campaign(
        community, name="C", rights=[Right.ACCESS], purpose=training, controllers=[acme], authorised=False
    )
    from requests_engine.campaigns.authorise import campaign_ask_to_authorise

    assert campaign_ask_to_authorise(campaign_id=campaign.pk, actor=Actor.system()) == 1
    assert campaign_ask_to_authorise(campaign_id=campaign.pk, actor=Actor.system()) == 0  # once a day
    notice = asked.notices.get()
    assert notice.link == f"/me/{asked.reference}/mandate/new/"
    assert "Access (Art 15) with Acme Ltd" in notice.body and "nothing is sent for you" in notice.body
    assert _launch(campaign) == 0


def _covered_request(community, acme, training):
    member = make_member(community)
    mandate = make_mandate(member, purposes=[training])
    campaign = make_campaign(
        community, name="C", rights=[Right.ACCESS], purpose=training, controllers=[acme], authorised=False
    )
    _launch(campaign)
    return DataRightsRequest.objects.get(), mandate


def test_re_sending_a_request_the_mandate_no_longer_covers_is_refused(community, acme, training):
    request, mandate = _covered_request(community, acme, training)
    DataRightsRequest.objects.filter(pk=request.pk).update(state=RequestState.FAILED_DELIVERY)
    mandate.purposes.clear()  # as if the member had narrowed it (a replacement names other purposes)
    with pytest.raises(RequestEngineError, match="no longer covers"):
        services.request_requeue(request_id=request.pk, actor=Actor.system())
    request.refresh_from_db()
    assert request.state == RequestState.FAILED_DELIVERY


def test_a_batch_sent_again_leaves_out_requests_no_longer_covered(community, acme, training):
    from requests_engine.dispatch import batches
    from requests_engine.models import Batch

    request, mandate = _covered_request(community, acme, training)
    DataRightsRequest.objects.filter(pk=request.pk).update(state=RequestState.FAILED_DELIVERY)
    Batch.objects.filter(pk=request.batch_id).update(state=Batch.State.FAILED)
    mandate.valid_until = timezone.localdate() - timedelta(days=1)
    mandate.save(update_fields=["valid_until"])
    assert batches.batch_requeue(batch_id=request.batch_id, actor=Actor.system()) == 0


def test_request_covered_reads_the_mandate_in_force(community, acme, training):
    request, mandate = _covered_request(community, acme, training)
    assert eligibility.request_covered(request)
    mandate.rights = [Right.ERASURE]
    mandate.save(update_fields=["rights"])
    assert not eligibility.request_covered(request)


def eligibility_rows(campaign):
    from requests_engine.campaigns.selectors import campaign_preview

    return campaign_preview(campaign)


# Every place in the application that could write a request row. Only the launch may, and it selects
# through eligibility.covered_mandates.
_CREATES_A_REQUEST = re.compile(
    r"(?<!class )DataRightsRequest\(|DataRightsRequest\.objects\.(create|bulk_create|get_or_create|update_or_create)"
    r"|INSERT INTO \{r\}|INSERT INTO requests_engine_datarightsrequest"
)


def test_no_path_creates_a_request_outside_the_eligibility_rule():
    writers = {}
    for path in [
        *ROOT.glob("requests_engine/**/*.py"),
        *ROOT.glob("communities/**/*.py"),
        *ROOT.glob("core/**/*.py"),
    ]:
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        if _CREATES_A_REQUEST.search(text):
            writers[str(path.relative_to(ROOT))] = text
    assert set(writers) == {"requests_engine/campaigns/launch.py"}
    assert "covered_mandates(" in writers["requests_engine/campaigns/launch.py"]
