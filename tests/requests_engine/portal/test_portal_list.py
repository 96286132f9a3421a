"""The portal's list of requests: ordered by due date, paginated, and a fixed number of queries however
many requests a controller has."""

import datetime

import pytest
from django.utils import timezone

from core.audit import Actor
from requests_engine import services
from requests_engine.models import ControllerContact
from requests_engine.portal.signin import SESSION_KEY
from requests_engine.portal.views import PAGE_SIZE
from tests.factories import make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal(client, controller):
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test", name="Dee")
    session = client.session
    session[SESSION_KEY] = contact.pk
    session.save()
    client.get("/respond/requests/")  # the session's first page records when it was last used
    return client


def make_sent(community, controller, count: int, *, start: int = 0) -> None:
    today = timezone.localdate()
    for number in range(start, start + count):
        member = make_member(community, f"Member {number}", email=f"m{number}@community.test")
        request = make_request(member, controller, mandate=make_mandate(member), reference=f"R{number:03}")
        services.request_approve(request_id=request.pk, actor=Actor.system())
        received = today - datetime.timedelta(days=number % 20)
        services.request_dispatch(request_id=request.pk, received_on=received, actor=Actor.system())


def test_the_list_is_ordered_by_due_date_across_pages(portal, community, controller):
    make_sent(community, controller, PAGE_SIZE + 5)
    first = portal.get("/respond/requests/").content.decode()
    second = portal.get("/respond/requests/?page=2").content.decode()
    assert f"{PAGE_SIZE + 5} requests, page 1 of 2" in first and "page 2 of 2" in second
    # Received 19 days ago, R019 is due first; received today and made last, R040 is due last.
    assert "R019" in first and "R019" not in second
    assert "R040" in second and "R040" not in first


def test_the_list_costs_the_same_queries_for_many_rows(
    portal, community, controller, django_assert_num_queries
):
    make_sent(community, controller, 3)
    with django_assert_num_queries(5):  # session, contact, count, the page's ids, its rows with members
        portal.get("/respond/requests/?state=sent")
    make_sent(community, controller, 60, start=3)
    with django_assert_num_queries(5):
        page = portal.get("/respond/requests/?state=sent&page=2").content.decode()
    assert "63 requests, page 2 of 2" in page
