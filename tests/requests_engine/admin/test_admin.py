"""The back office: transition buttons go through the services (guards and events apply)."""

import datetime as dt
import re

import pytest

from core.audit import Actor
from requests_engine import services
from requests_engine.models import DataRightsRequest, RequestEvent


@pytest.fixture
def sent_request(data_request):
    services.request_approve(request_id=data_request.pk, actor=Actor.system())
    services.request_dispatch(request_id=data_request.pk, received_on=dt.date.today(), actor=Actor.system())
    return data_request


def change_url(request):
    return f"/admin/requests_engine/datarightsrequest/{request.pk}/change/"


def press(client, url, button):
    """Submit the change form as a browser does: its hidden inputs (inline management forms) plus a button."""
    page = client.get(url).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    return client.post(url, {**fields, "_fsm_transition_to": button})


def test_the_change_page_offers_only_the_transitions_the_state_allows(client, coordinator, sent_request):
    client.force_login(coordinator)
    page = client.get(change_url(sent_request)).content.decode()
    assert 'value="acknowledge"' in page and 'value="extend"' in page
    assert 'value="close"' not in page and 'value="escalate_to_ico"' not in page


def test_a_button_runs_the_service_and_records_who_did_it(client, coordinator, sent_request):
    client.force_login(coordinator)
    response = press(client, change_url(sent_request), "acknowledge")
    assert response.status_code == 302
    assert DataRightsRequest.objects.get(pk=sent_request.pk).state == "acknowledged"
    event = RequestEvent.objects.get(request=sent_request, kind="request.acknowledged")
    assert (event.actor_kind, event.actor_id) == ("coordinator", str(coordinator.pk))


def test_a_transition_with_a_form_validates_and_applies(client, coordinator, sent_request):
    client.force_login(coordinator)
    url = f"/admin/requests_engine/datarightsrequest/{sent_request.pk}/transition/extend/"
    assert client.get(url).status_code == 200
    bad = client.post(url, {"months": "2", "reason": "", "noticed_on": dt.date.today().isoformat()})
    assert bad.status_code == 200 and DataRightsRequest.objects.get(pk=sent_request.pk).state == "sent"
    good = client.post(
        url, {"months": "2", "reason": "Many requests", "noticed_on": dt.date.today().isoformat()}
    )
    assert good.status_code == 302
    assert DataRightsRequest.objects.get(pk=sent_request.pk).extension_months == 2


def test_a_refused_transition_shows_the_reason_and_changes_nothing(client, coordinator, data_request):
    services.request_approve(request_id=data_request.pk, actor=Actor.system())
    received = dt.date.today() - dt.timedelta(days=60)
    services.request_dispatch(request_id=data_request.pk, received_on=received, actor=Actor.system())
    client.force_login(coordinator)
    url = f"/admin/requests_engine/datarightsrequest/{data_request.pk}/transition/extend/"
    response = client.post(
        url, {"months": "1", "reason": "Late", "noticed_on": dt.date.today().isoformat()}, follow=True
    )
    assert "before the deadline" in response.content.decode()
    assert DataRightsRequest.objects.get(pk=data_request.pk).state == "sent"


def test_lists_and_filters_render(client, coordinator, sent_request):
    client.force_login(coordinator)
    for url in [
        "/admin/requests_engine/datarightsrequest/?due=overdue",
        "/admin/requests_engine/datarightsrequest/?due=week",
        "/admin/requests_engine/datarightsrequest/?state__exact=sent",
        "/admin/requests_engine/campaign/",
        "/admin/requests_engine/controller/",
        "/admin/requests_engine/requestevent/",
        "/admin/communities/mandate/",
        "/admin/communities/member/",
    ]:
        assert client.get(url).status_code == 200, url


def test_an_outsider_cannot_reach_the_back_office(client, outsider, sent_request):
    client.force_login(outsider)
    assert client.get(change_url(sent_request)).status_code == 302
