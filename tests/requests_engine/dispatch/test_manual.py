"""Letters posted by a coordinator and web forms filled in by hand."""

import datetime as dt
import io

import pytest
import time_machine
from pypdf import PdfReader

from core.audit import Actor
from requests_engine.campaigns import launch
from requests_engine.dispatch import manual
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, Controller, DataRightsRequest
from tests.factories import make_campaign, make_mandate, make_member

pytestmark = pytest.mark.django_db


def launched(community, controller, coordinator, names=("Ada Lovelace", "Mary Shelley")):
    for name in names:
        make_mandate(make_member(community, name))
    campaign = make_campaign(
        community,
        name="Post",
        rights=["access"],
        purpose="Find out.",
        created_by=coordinator,
        controllers=[controller],
    )
    launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.user(coordinator))
    return Batch.objects.get(campaign=campaign)


@time_machine.travel(dt.datetime(2026, 4, 2, 10, tzinfo=dt.UTC))  # Thursday before Easter
def test_a_letter_pack_is_printable_and_posting_it_starts_the_clock_on_expected_delivery(
    community, coordinator, django_capture_on_commit_callbacks
):
    controller = Controller.objects.create(
        slug="post-only", name="Post Only Ltd", transport="letter", postal_address="1 High Street\nLondon"
    )
    with django_capture_on_commit_callbacks(execute=True):
        batch = launched(community, controller, coordinator)
    pdf = manual.letter_pack(batch_id=batch.pk)
    assert len(PdfReader(io.BytesIO(pdf)).pages) >= 3  # the letter, then two mandates
    posted = dt.date(2026, 4, 2)
    count = manual.batch_mark_posted(batch_id=batch.pk, posted_on=posted, actor=Actor.system())
    assert count == 2
    # Posted Thu 2 Apr: Good Friday and Easter Monday are bank holidays, so delivery is expected Wed 8 Apr.
    assert set(DataRightsRequest.objects.values_list("state", "received_on")) == {
        ("sent", dt.date(2026, 4, 8))
    }
    batch.refresh_from_db()
    assert batch.state == "sent" and batch.posted_on == posted
    with pytest.raises(RequestEngineError):
        manual.batch_mark_posted(
            batch_id=batch.pk, posted_on=posted, actor=Actor.system(), received_on=dt.date(2026, 4, 1)
        )


def test_a_web_form_request_is_marked_submitted_with_its_text_ready_to_paste(
    community, coordinator, django_capture_on_commit_callbacks
):
    controller = Controller.objects.create(
        slug="form-only",
        name="Form Only",
        transport="webform",
        webform_url="https://form.example.test/privacy",
    )
    with django_capture_on_commit_callbacks(execute=True):
        batch = launched(community, controller, coordinator, names=("Ada Lovelace",))
    request = batch.requests.get()
    assert "Ada Lovelace" in manual.webform_text(request)
    manual.request_mark_submitted(request_id=request.pk, actor=Actor.system(), submitted_on=dt.date.today())
    request.refresh_from_db()
    assert request.state == "sent" and request.received_on == dt.date.today()
