"""Returned files are deleted after the community's retention period, unless the member keeps them."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.files.storage import default_storage

from core.audit import Actor
from requests_engine import services
from requests_engine.models import ReceivedFile, RequestEvent
from requests_engine.responses import answers
from requests_engine.responses import files as returned_files
from requests_engine.responses.files import Upload
from tests.factories import make_request

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
ANSWERED = dt.datetime(2026, 3, 10, 11, tzinfo=dt.UTC)


@pytest.fixture
def returned(member, controller, community):
    community.retention_days = 30
    community.save()
    request = make_request(member, controller)
    with time_machine.travel(ANSWERED, tick=False):
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 3, 2), actor=SYSTEM)
        answers.request_answer(
            action="fulfil",
            request_id=request.pk,
            uploads=[Upload("data.json", b'{"orders": [1, 2]}')],
            actor=Actor(Actor.CONTROLLER, "1"),
        )
    return ReceivedFile.objects.get(request=request)


def expire(on: dt.date) -> int:
    return returned_files.received_files_expire(today=on)


def test_a_file_is_deleted_the_day_after_its_retention_period_and_not_before(returned, client, member):
    assert returned.delete_after == dt.date(2026, 4, 9)  # 30 days after the member was told
    assert expire(dt.date(2026, 4, 9)) == 0 and default_storage.exists(returned.stored.name)
    assert expire(dt.date(2026, 4, 10)) == 1
    returned.refresh_from_db()
    assert returned.deleted_at is not None and not default_storage.exists(returned.stored.name)
    assert expire(dt.date(2026, 4, 10)) == 0  # a second run has nothing to do
    client.force_login(member.user)
    assert client.get(f"/me/files/{returned.pk}/").status_code == 404


def test_the_member_keeps_a_file_and_later_lets_it_go(returned, client, member):
    client.force_login(member.user)
    page = client.get(f"/me/requests/{returned.request.reference}/").content.decode()
    assert "deleted after 9 April 2026" in page and "Keep it" in page
    response = client.post(f"/me/files/{returned.pk}/keep/", {"keep": "yes"}, follow=True)
    assert "will not be deleted automatically" in response.content.decode()
    assert "kept for you" in response.content.decode()
    assert expire(dt.date(2026, 6, 1)) == 0 and default_storage.exists(returned.stored.name)

    client.post(f"/me/files/{returned.pk}/keep/", {"keep": "no"})
    assert expire(dt.date(2026, 6, 1)) == 1  # past its date: gone at the next run
    kinds = list(RequestEvent.objects.filter(request=returned.request).values_list("kind", flat=True))
    assert kinds[-2:] == ["request.file_kept", "request.file_released"]


def test_only_the_member_can_keep_their_file_and_only_by_post(returned, client, outsider, member):
    client.force_login(outsider)
    assert client.post(f"/me/files/{returned.pk}/keep/", {"keep": "yes"}).status_code == 404
    client.force_login(member.user)
    assert client.get(f"/me/files/{returned.pk}/keep/").status_code == 405
    returned.refresh_from_db()
    assert returned.keep is False
