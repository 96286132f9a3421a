"""The page frame (base.html), the GOV.UK form fields and the error pages, in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import axe_check, record_traffic, screenshot
from tests.browser.urls_for_tests import HOSTILE_ABOUT, HOSTILE_NAME

pytestmark = pytest.mark.usefixtures("browser_urls")

OUR_STATIC_FILES = {
    "/static/vendor/govuk-frontend/govuk-frontend.min.css",
    "/static/vendor/govuk-frontend/govuk-frontend.min.js",
    "/static/vendor/htmx/htmx.min.js",
    "/static/css/community.css",
    "/static/js/app.js",
    "/static/js/govuk-supported.js",
}


def test_form_page_loads_only_our_own_files_and_starts_govuk_frontend(desktop_page: Page, live_server):
    traffic = record_traffic(desktop_page)
    desktop_page.goto(f"{live_server.url}/__test__/form/", wait_until="networkidle")

    assert traffic.external() == []
    requested = {re.sub(r"^https?://[^/]+", "", url) for url in traffic.requests}
    assert OUR_STATIC_FILES <= requested
    assert traffic.failures == []
    assert traffic.console_errors == []  # a Content-Security-Policy refusal would be one
    assert traffic.page_errors == []
    # govuk-supported.js ran before render, app.js ran initAll(): the error summary took focus.
    expect(desktop_page.locator("body")).to_have_class(re.compile(r"\bgovuk-frontend-supported\b"))
    assert desktop_page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')")
    # Our own font, never GDS Transport.
    font = desktop_page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontFamily")
    assert font.startswith("system-ui") and "GDS Transport" not in font
    screenshot(desktop_page, "form-errors-desktop")


def test_tab_reaches_the_skip_link_first_and_enter_moves_focus_to_main(desktop_page: Page, live_server):
    desktop_page.goto(f"{live_server.url}/__test__/page/", wait_until="networkidle")

    desktop_page.keyboard.press("Tab")
    focused = desktop_page.evaluate(
        "() => [document.activeElement.className, document.activeElement.textContent]"
    )
    assert focused == ["govuk-skip-link", "Skip to main content"]
    expect(desktop_page.locator(".govuk-skip-link")).to_be_in_viewport()

    desktop_page.keyboard.press("Enter")
    assert desktop_page.evaluate("() => document.activeElement.id") == "main-content"


def test_error_form_on_a_phone_has_no_serious_accessibility_problems(mobile_page: Page, live_server):
    mobile_page.goto(f"{live_server.url}/__test__/form/", wait_until="networkidle")

    axe_check(mobile_page)
    # Nothing wider than the phone: no sideways scrolling.
    assert mobile_page.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(mobile_page, "form-errors-390")


def test_error_summary_links_jump_to_each_field(desktop_page: Page, live_server):
    desktop_page.goto(f"{live_server.url}/__test__/form/", wait_until="networkidle")

    links = desktop_page.locator(".govuk-error-summary__list a")
    hrefs = links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == [
        "#id_full_name",
        "#id_email",
        "#id_age",
        "#id_password",
        "#id_controller",
        "#id_contact_by_0",
        "#id_rights_0",
        "#id_agree",
        "#id_born_on",
        "#id_proof",
    ]
    for href in hrefs:
        tag = desktop_page.locator(href).evaluate("element => element.tagName")
        assert tag in ("INPUT", "SELECT", "TEXTAREA"), href
    # The field-level error is next to each of those inputs, in the same form group.
    assert desktop_page.locator(".govuk-form-group--error").count() == len(hrefs)

    links.filter(has_text="Select how we should contact you").click()
    assert desktop_page.evaluate("() => document.activeElement.id") == "id_contact_by_0"
    links.filter(has_text="Enter a password").click()
    assert desktop_page.evaluate("() => document.activeElement.id") == "id_password"


def test_hostile_and_right_to_left_text_is_shown_escaped_and_intact(desktop_page: Page, live_server):
    traffic = record_traffic(desktop_page)
    response = desktop_page.goto(f"{live_server.url}/__test__/form/", wait_until="networkidle")

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text()
    expect(desktop_page.locator("#id_full_name")).to_have_value(HOSTILE_NAME)
    expect(desktop_page.locator("#id_about")).to_have_value(HOSTILE_ABOUT)
    expect(desktop_page.locator("#echo bdi")).to_have_text(HOSTILE_NAME)
    expect(desktop_page.locator("#id_controller option[value=mega]")).to_have_text("Mega <Corp> & Co")
    expect(desktop_page.locator("label[for=id_contact_by_2]")).to_have_text("Phone <call> me")
    expect(desktop_page.locator("#id_about-hint")).to_have_text("<b>Not bold</b>")
    assert traffic.dialogs == []
    assert desktop_page.locator("script:not([src])").count() == 0


def test_what_was_typed_survives_a_form_sent_back_with_errors(desktop_page: Page, live_server):
    page = desktop_page
    page.goto(f"{live_server.url}/__test__/form/", wait_until="networkidle")

    page.fill("#id_full_name", "فاطمة الزهراء <b>")
    page.fill("#id_email", "fatima@example.com")
    page.fill("#id_age", "30")
    page.fill("#id_about", "Line one\nسطر ثان")
    page.select_option("#id_controller", "mega")
    page.check("#id_contact_by_1")
    page.check("#id_rights_2")
    page.check("#id_agree")
    page.fill("#id_born_on", "1990-05-17")
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state("networkidle")

    expect(page.locator(".govuk-error-summary")).to_be_visible()  # the password and the file are missing
    expect(page.locator("#id_full_name")).to_have_value("فاطمة الزهراء <b>")
    expect(page.locator("#id_email")).to_have_value("fatima@example.com")
    expect(page.locator("#id_age")).to_have_value("30")
    expect(page.locator("#id_about")).to_have_value("Line one\nسطر ثان")
    expect(page.locator("#id_controller")).to_have_value("mega")
    expect(page.locator("#id_contact_by_1")).to_be_checked()
    expect(page.locator("#id_rights_0")).to_be_checked()
    expect(page.locator("#id_rights_2")).to_be_checked()
    expect(page.locator("#id_agree")).to_be_checked()
    expect(page.locator("#id_born_on")).to_have_value("1990-05-17")
    expect(page.locator("#id_password")).to_have_value("")  # never sent back to the browser


def test_phone_menu_and_messages_work_with_the_keyboard_alone(mobile_page: Page, live_server):
    page = mobile_page
    page.goto(f"{live_server.url}/__test__/page/?message=1", wait_until="networkidle")

    expect(page.locator(".govuk-notification-banner--success")).to_contain_text(
        "Your details were saved <really>"
    )
    expect(
        page.locator(".govuk-notification-banner:not(.govuk-notification-banner--success)")
    ).to_contain_text("Another note")
    axe_check(page)
    screenshot(page, "page-messages-390")

    toggle = page.get_by_role("button", name="Menu")
    expect(toggle).to_be_visible()
    expect(page.get_by_role("link", name="Sign in")).to_be_hidden()
    toggle.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.get_by_role("link", name="Join")).to_be_visible()
    screenshot(page, "page-menu-open-390")


def test_not_found_page_is_plain_and_accessible(mobile_page: Page, live_server):
    response = mobile_page.goto(f"{live_server.url}/no-such-page/", wait_until="networkidle")

    assert response.status == 404
    expect(mobile_page.locator("h1")).to_have_text("Page not found")
    axe_check(mobile_page)
    screenshot(mobile_page, "not-found-390")


def test_server_error_page_is_styled_and_accessible(mobile_page: Page, live_server):
    traffic = record_traffic(mobile_page)
    response = mobile_page.goto(f"{live_server.url}/__test__/boom/", wait_until="networkidle")

    assert response.status == 500
    expect(mobile_page.locator("h1")).to_have_text("Sorry, something went wrong")
    assert [f for f in traffic.failures if "/__test__/boom/" not in f] == []
    axe_check(mobile_page)
    screenshot(mobile_page, "server-error-390")
