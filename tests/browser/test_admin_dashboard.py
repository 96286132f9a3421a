"""The coordinators' dashboard on a 390-px-wide phone: it fits the screen, a coordinator reaches a figure with
the keyboard alone and lands on its filtered list, axe finds nothing serious and the Content-Security-Policy
refuses nothing."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from core.audit import Actor
from requests_engine import services, sweep
from tests.browser.conftest import axe_check, record_traffic, screenshot
from tests.factories import make_mandate, make_member, make_request

ROBOT = Actor.system("test")


@pytest.fixture
def overdue_request(transactional_db, community, controller):
    member = make_member(community)
    make_mandate(member)
    request = make_request(member, controller, reference="R-SILENT")
    services.request_approve(request_id=request.pk, actor=ROBOT)
    services.request_dispatch(
        request_id=request.pk, received_on=timezone.localdate() - datetime.timedelta(days=45), actor=ROBOT
    )
    sweep.deadlines_sweep()
    return request


def signed_in(page: Page, user, base_url: str) -> Page:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}]
    )
    return page


def test_on_a_phone_the_overdue_figure_is_reached_by_keyboard_and_opens_its_list(
    live_server, mobile_page: Page, coordinator, overdue_request
):
    page = signed_in(mobile_page, coordinator, live_server.url)
    traffic = record_traffic(page)
    page.goto(f"{live_server.url}/admin/")
    figure = page.get_by_role("link", name="1 requests overdue")
    expect(figure).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(page)
    screenshot(page, "admin-dashboard-phone")

    for _ in range(60):  # Tab through the page until the figure has the focus
        page.keyboard.press("Tab")
        if figure.evaluate("link => link === document.activeElement"):
            break
    else:
        pytest.fail("the overdue figure never received the keyboard focus")
    page.keyboard.press("Enter")
    page.wait_for_url("**/datarightsrequest/?due=overdue")
    expect(page.get_by_role("link", name="R-SILENT")).to_be_visible()
    # The admin pages name no icon, so the browser's own guess at /favicon.ico is the one allowed miss.
    failures = [failure for failure in traffic.failures if not failure.endswith("/favicon.ico")]
    refused = [error for error in traffic.console_errors if "Content Security Policy" in error]
    assert not failures and not refused and not traffic.page_errors
