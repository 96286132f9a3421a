"""The public register on a 390-px-wide phone: no serious accessibility problems, nothing loaded from
elsewhere, the charts drawn from our own SVG under the pages' Content-Security-Policy, screenshots kept."""

from __future__ import annotations

import datetime

import pytest
from django.urls import include, path
from django.utils import timezone
from playwright.sync_api import Page, expect

from communities.models import Community, Right
from core.audit import Actor
from requests_engine import services as engine
from requests_engine import sweep
from requests_engine.models import Controller, RefusalGround
from requests_engine.register import views as register_views
from tests.browser.conftest import axe_check, record_traffic, screenshot
from tests.factories import make_mandate, make_member, make_request

# This module is the URLconf of its tests: the register where config/urls.py mounts it, and the site.
urlpatterns = [
    path("register/", include("requests_engine.register.urls")),
    path("api/v1/register/", register_views.register_json),
    path("", include("config.urls")),
]
pytestmark = pytest.mark.urls(__name__)

ROBOT = Actor.system("test")


@pytest.fixture
def register_data(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    today = timezone.localdate()
    received = today - datetime.timedelta(days=60)
    community = Community.objects.create(
        slug="writers",
        name="Writers' Data Collective",
        purpose="We ask AI developers about our work.",
        contact_email="hello@writers.test",
        rights=[Right.ACCESS, Right.OBJECTION],
    )
    acme = Controller.objects.create(slug="acme-ai", name="Acme AI Ltd", email="privacy@acme-ai.test")
    globex = Controller.objects.create(
        slug="globex", name="Globex Corporation International Holdings", email="dpo@globex.test"
    )
    members = [make_member(community, name=f"Member {n}", email=f"m{n}@writers.test") for n in range(7)]
    for number, member in enumerate(members):
        make_mandate(member)
        for controller in (acme, globex) if number < 2 else (acme,):
            request = make_request(member, controller)
            engine.request_approve(request_id=request.pk, actor=ROBOT)
            engine.request_dispatch(request_id=request.pk, received_on=received, actor=ROBOT)
            answered_on = received + datetime.timedelta(days=10 + 5 * number)
            if number == 6:
                engine.request_refuse(
                    request_id=request.pk,
                    ground=RefusalGround.MANIFESTLY_EXCESSIVE,
                    reasons="Too many.",
                    answered_on=answered_on,
                    actor=ROBOT,
                )
            elif number != 5:
                engine.request_fulfil(request_id=request.pk, answered_on=answered_on, actor=ROBOT)
    sweep.deadlines_sweep()  # member 5's request to Acme is past its month with no answer
    return community


def test_register_on_a_phone_is_accessible_and_loads_only_our_own_files(
    mobile_page: Page, live_server, register_data
):
    page = mobile_page
    traffic = record_traffic(page)
    page.goto(f"{live_server.url}/register/", wait_until="networkidle")

    expect(page.get_by_role("heading", level=1)).to_have_text("Public register")
    expect(page.get_by_role("link", name="Acme AI Ltd")).to_be_visible()
    chart = page.get_by_role("img", name="Bar chart of requests answered on time")
    expect(chart).to_be_visible()
    # The SVG loaded and decoded as an image (a refused or broken one has no natural width).
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
    assert any(url.endswith("/register/charts/outcomes.svg") for url in traffic.requests)
    assert traffic.external() == []
    assert traffic.failures == []
    assert traffic.console_errors == []  # a Content-Security-Policy refusal would be one
    assert traffic.page_errors == []
    axe_check(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(page, "register-390")

    page.get_by_role("link", name="Acme AI Ltd").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme AI Ltd")
    page.wait_for_load_state("networkidle")
    refusals = page.get_by_role("img", name="Bar chart of refusals by legal ground")
    assert refusals.evaluate("img => img.complete && img.naturalWidth > 0")
    axe_check(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert traffic.external() == [] and traffic.failures == [] and traffic.console_errors == []
    screenshot(page, "register-controller-390")

    page.go_back()
    page.get_by_role("link", name="Globex Corporation International Holdings").click()
    expect(page.get_by_text("fewer than 5").first).to_be_visible()
    axe_check(page)
    screenshot(page, "register-controller-suppressed-390")


def _inside(inner: dict[str, float] | None, outer: dict[str, float] | None) -> bool:
    assert inner is not None and outer is not None
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def test_the_chart_key_stays_inside_its_figure_on_a_phone_and_a_desktop(
    mobile_page: Page, desktop_page: Page, live_server, register_data
):
    # A charted organisation with a long name: it widened the chart's label column, which pushed a key
    # drawn inside the SVG past the image's right edge.
    long_name = Controller.objects.create(
        slug="long", name="The Very Long Named Holding Company Of Great Britain", email="dpo@long.test"
    )
    received = timezone.localdate() - datetime.timedelta(days=60)
    for member in list(register_data.members.all())[:5]:
        request = make_request(member, long_name)
        engine.request_approve(request_id=request.pk, actor=ROBOT)
        engine.request_dispatch(request_id=request.pk, received_on=received, actor=ROBOT)
        engine.request_fulfil(
            request_id=request.pk, answered_on=received + datetime.timedelta(days=9), actor=ROBOT
        )

    for page, width, name in (
        (mobile_page, 390, "register-key-390"),
        (desktop_page, 1280, "register-key-1280"),
    ):
        page.goto(f"{live_server.url}/register/#outcomes", wait_until="networkidle")
        figure = page.locator("figure.register-chart")
        key = figure.locator(".register-legend")
        items = key.get_by_role("listitem")
        expect(items).to_have_text(["On time", "Answered late", "No answer after the deadline"])
        figure_box = figure.bounding_box()
        assert _inside(key.bounding_box(), figure_box)
        for index in range(items.count()):
            item = items.nth(index)
            expect(item).to_be_visible()
            assert _inside(item.bounding_box(), figure_box), item.text_content()
            # Nothing in an item is cut off: it is as wide as its content.
            assert item.evaluate("li => li.scrollWidth <= li.clientWidth + 1")
        assert figure_box is not None and figure_box["x"] + figure_box["width"] <= width
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        axe_check(page)
        screenshot(page, name)
