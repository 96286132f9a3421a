"""A mandate ends on its end date: the member is warned two weeks before, then it expires, its open requests
are withdrawn and their controllers told, as on a revocation."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from communities import services as member_services
from communities.models import Mandate
from communities.tasks import expire_mandates
from core.audit import Actor
from requests_engine import services
from requests_engine.models import DataRightsRequest, RequestEvent
from tests.factories import make_request

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
ENDS = dt.date(2026, 6, 30)


def at(day: dt.date):
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 8, tzinfo=dt.UTC), tick=False)


@pytest.fixture
def ending(member, controller):
    """Ada's mandate ends on 30 June 2026; an access request under it is with the controller."""
    mandate = member.mandates.get()
    Mandate.objects.filter(pk=mandate.pk).update(valid_from=dt.date(2026, 1, 1), valid_until=ENDS)
    request = make_request(member, controller)
    with at(dt.date(2026, 6, 1)):
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 6, 1), actor=SYSTEM)
    return mandate, request


def test_the_member_is_warned_once_two_weeks_before_the_end(
    ending, member, mailoutbox, django_capture_on_commit_callbacks
):
    with at(dt.date(2026, 6, 15)), django_capture_on_commit_callbacks(execute=True):
        assert member_services.mandate_expiry_warnings_send() == 0  # 15 days before: not yet
    with at(dt.date(2026, 6, 17)), django_capture_on_commit_callbacks(execute=True):
        assert member_services.mandate_expiry_warnings_send() == 1
    with at(dt.date(2026, 6, 18)), django_capture_on_commit_callbacks(execute=True):
        assert member_services.mandate_expiry_warnings_send() == 0  # once
    [warning] = [m for m in mailoutbox if "ends on 30 June 2026" in m.subject]
    assert warning.to == [member.user.email] and f"/me/{member.reference}/mandate/new/" in warning.body


def test_on_the_day_after_its_end_the_mandate_expires_and_its_requests_become_the_members_own(
    ending, member, client, mailoutbox, django_capture_on_commit_callbacks
):
    mandate, request = ending
    with at(ENDS), django_capture_on_commit_callbacks(execute=True):
        assert member_services.mandates_expire() == 0  # still in force on its last day
    with at(ENDS + dt.timedelta(days=1)), django_capture_on_commit_callbacks(execute=True):
        assert expire_mandates() == {"warned": 0, "expired": 1}
        assert expire_mandates() == {"warned": 0, "expired": 0}
    mandate.refresh_from_db()
    assert mandate.state == "expired"
    assert DataRightsRequest.objects.get(pk=request.pk).state == "handed_over"
    kinds = list(RequestEvent.objects.filter(request=request).values_list("kind", flat=True))
    assert kinds[-2:] == ["request.handed_over", "request.handover_notice"]
    to_controller = [m for m in mailoutbox if m.to == ["privacy@acme.test"]]
    assert len(to_controller) == 1 and request.reference in to_controller[0].body
    assert "answer the member directly" in to_controller[0].body
    assert any(m.subject == f"Your mandate {mandate.reference} has ended" for m in mailoutbox)
    assert "Not in force" in client.get(f"/verify/{mandate.verification_token}/").content.decode()
