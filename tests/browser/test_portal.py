"""A controller's privacy officer answers through the response portal in a real browser: asks for a sign-in
link, opens it from the email, confirms, filters, acknowledges several requests at once, sends data with a
file (which the member then downloads from /me/), refuses with a legal ground, is told when an action is
not allowed, answers many requests with one ZIP, and uses the main form with the keyboard alone; axe-core
checks every page and screenshots are kept for a person to look at."""

from __future__ import annotations

import datetime
import io
import re
import time
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from communities.models import Community, Right
from core.audit import Actor
from requests_engine import services as engine
from requests_engine.models import Controller, ControllerContact, DataRightsRequest
from tests.browser.conftest import axe_check, record_traffic, screenshot
from tests.factories import make_campaign, make_mandate, make_member, make_request

ROBOT = Actor.system("test")
CONTACT_EMAIL = "dpo@acme-ai.test"
ANSWER = b'{"books_used_for_training": ["Frankenstein"]}'


@pytest.fixture
def acme(transactional_db, settings):
    """Six requests to Acme from two campaigns: four access requests received today, one received three
    weeks ago, one portability request; a second controller's request that Acme must never see."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    community = Community.objects.create(
        slug="writers",
        name="Writers' Data Collective",
        purpose="We ask AI developers about our work.",
        contact_email="hello@writers.test",
        rights=[Right.ACCESS, Right.PORTABILITY],
    )
    acme = Controller.objects.create(slug="acme-ai", name="Acme AI Ltd", email="privacy@acme-ai.test")
    globex = Controller.objects.create(slug="globex", name="Globex", email="dpo@globex.test")
    ControllerContact.objects.create(controller=acme, email=CONTACT_EMAIL, name="Dee Pio")
    training = make_campaign(community, name="Training data", purpose="Find out.")
    moving = make_campaign(community, name="Take it with us", purpose="Move it.")
    today = timezone.localdate()
    plan = [  # reference, right, campaign, received
        ("B1-M0-AC", Right.ACCESS, training, today),
        ("B1-M1-AC", Right.ACCESS, training, today),
        ("B1-M2-AC", Right.ACCESS, training, today),
        ("B1-M3-AC", Right.ACCESS, training, today),
        ("B1-M4-AC", Right.ACCESS, training, today - datetime.timedelta(days=21)),
        ("B2-M5-PO", Right.PORTABILITY, moving, today),
    ]
    for number, (reference, right, campaign, received) in enumerate(plan):
        member = make_member(community, f"Member {number}", email=f"m{number}@writers.test")
        mandate = make_mandate(member, rights=[Right.ACCESS, Right.PORTABILITY])
        request = make_request(member, acme, mandate=mandate, right=right, reference=reference)
        DataRightsRequest.objects.filter(pk=request.pk).update(campaign=campaign)
        engine.request_approve(request_id=request.pk, actor=ROBOT)
        engine.request_dispatch(request_id=request.pk, received_on=received, actor=ROBOT)
    other = make_member(community, "Someone Else", email="else@writers.test")
    request = make_request(other, globex, mandate=make_mandate(other), reference="B3-M9-GX")
    engine.request_approve(request_id=request.pk, actor=ROBOT)
    engine.request_dispatch(request_id=request.pk, received_on=today, actor=ROBOT)
    return {"training": training, "moving": moving}


def sign_in_link(mailbox, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in mailbox.messages():
            if message["To"] == CONTACT_EMAIL:
                body = message.get_body(preferencelist=("plain",)).get_content()
                found = re.search(r"https?://\S+/respond/sign-in/[^/\s]+/", body)
                if found:
                    return found.group(0)
        time.sleep(0.1)
    raise AssertionError("no sign-in link reached the SMTP server")


def states() -> dict[str, str]:
    return dict(DataRightsRequest.objects.values_list("reference", "state"))


def banner(page: Page):
    return page.locator(".govuk-notification-banner")


def sign_in(page: Page, live_server, mailbox) -> None:
    page.goto(f"{live_server.url}/respond/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Answer data rights requests")
    axe_check(page)
    screenshot(page, "portal-01-home")
    # The keyboard alone: Tab to the address, type it, Enter submits.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_email":
            break
    page.keyboard.type(CONTACT_EMAIL)
    page.keyboard.press("Enter")
    expect(page.locator(".govuk-panel__title")).to_have_text("Check your email")
    axe_check(page)

    link = sign_in_link(mailbox)
    assert link.startswith(live_server.url)
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    # Opening the link (as a mail scanner would) signs nobody in.
    assert page.request.get(f"{live_server.url}/respond/requests/", max_redirects=0).status == 302
    axe_check(page)
    screenshot(page, "portal-02-confirm")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Requests to Acme AI Ltd")
    expect(banner(page)).to_contain_text(f"Signed in as {CONTACT_EMAIL} for Acme AI Ltd")


def test_a_controller_signs_in_filters_acknowledges_fulfils_and_refuses(
    desktop_page: Page, live_server, acme, mailbox, settings
):
    settings.SITE_URL = live_server.url
    page = desktop_page
    traffic = record_traffic(page)
    sign_in(page, live_server, mailbox)

    # The list: Acme's six requests, never Globex's.
    expect(page.get_by_text("6 requests.")).to_be_visible()
    expect(page.get_by_role("link", name="B3-M9-GX")).to_have_count(0)
    axe_check(page)
    screenshot(page, "portal-03-list")

    # Filters, one at a time, then together.
    def apply_filters(**choices: str) -> None:
        page.goto(f"{live_server.url}/respond/requests/")
        page.get_by_text("Filter", exact=True).click()
        for field, value in choices.items():
            if field in ("state", "right"):
                page.locator(f"#id_{field}").select_option(value)
            else:
                page.locator(f"#id_{field}").fill(value)
        page.get_by_role("button", name="Apply filters").click()

    def listed() -> set[str]:
        return set(page.locator("tbody a.govuk-link").all_inner_texts())

    apply_filters(right="portability")
    assert listed() == {"B2-M5-PO"}
    apply_filters(campaign=acme["training"].reference.lower())
    assert listed() == {"B1-M0-AC", "B1-M1-AC", "B1-M2-AC", "B1-M3-AC", "B1-M4-AC"}
    due_soon = (timezone.localdate() + datetime.timedelta(days=20)).isoformat()
    apply_filters(due_before=due_soon)
    assert listed() == {"B1-M4-AC"}  # received three weeks ago: due within the next fortnight
    apply_filters(state="sent", right="access", campaign=acme["training"].reference)
    assert len(listed()) == 5
    expect(page.locator("details.govuk-details")).to_have_attribute("open", "")
    axe_check(page)
    screenshot(page, "portal-04-filtered")
    page.goto(f"{live_server.url}/respond/requests/?due_before=31-02-2026")  # a date picker cannot send this
    expect(page.locator("#id_due_before-error")).to_contain_text("Enter a valid date")
    axe_check(page)

    # Bulk acknowledge: tick two, choose the action, apply.
    page.goto(f"{live_server.url}/respond/requests/")
    page.get_by_label("Select B1-M0-AC").check()
    page.get_by_label("Select B1-M1-AC").check()
    page.get_by_label("Action", exact=True).select_option("acknowledge")
    page.get_by_role("button", name="Apply to the selected requests").click()
    expect(banner(page)).to_contain_text("2 request(s) updated")
    assert states()["B1-M0-AC"] == states()["B1-M1-AC"] == "acknowledged"
    assert states()["B1-M2-AC"] == "sent"
    page.get_by_role("button", name="Apply to the selected requests").click()  # nothing ticked
    expect(banner(page)).to_contain_text("Select at least one request")

    # Fulfil one with a file.
    page.get_by_role("link", name="B1-M0-AC").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request B1-M0-AC")
    axe_check(page)
    screenshot(page, "portal-05-detail")
    page.get_by_text("Send the data", exact=True).click()
    fulfil = page.locator("form[action$='/fulfil/']")
    fulfil.locator("input[type=file]").set_input_files(
        files=[{"name": "answer.json", "mimeType": "application/json", "buffer": ANSWER}]
    )
    fulfil.get_by_label("A note for the member (optional)").fill("Everything we hold about you.")
    fulfil.get_by_role("button", name="Send and mark fulfilled").click()
    expect(banner(page)).to_contain_text("request B1-M0-AC is answered")
    fulfilled = DataRightsRequest.objects.get(reference="B1-M0-AC")
    assert fulfilled.state == "fulfilled" and fulfilled.files.get().original_name == "answer.json"
    expect(page.locator("ol.govuk-list")).to_contain_text("The controller sent files: answer.json.")
    expect(page.get_by_role("navigation", name="Menu")).not_to_contain_text("Join")

    # A file we cannot accept is refused on the page, with nothing kept.
    page.goto(f"{live_server.url}/respond/requests/B1-M1-AC/")
    page.get_by_text("Send the data", exact=True).click()
    fulfil = page.locator("form[action$='/fulfil/']")
    fulfil.locator("input[type=file]").set_input_files(
        files=[
            {"name": "answer.pdf", "mimeType": "application/pdf", "buffer": b"\x7fELF\x02\x01" + b"\0" * 99}
        ]
    )
    fulfil.get_by_role("button", name="Send and mark fulfilled").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("which we do not accept")
    axe_check(page)
    assert states()["B1-M1-AC"] == "acknowledged"

    # A colleague has the same request open in another tab (it still offers "Acknowledge").
    stale = page.context.new_page()
    stale.goto(f"{live_server.url}/respond/requests/B1-M2-AC/")

    # Refuse: the page reminds of Art 12(4); reasons are required.
    page.goto(f"{live_server.url}/respond/requests/B1-M2-AC/")
    page.locator("summary", has_text="Refuse").click()
    warning = page.locator(".govuk-warning-text")
    expect(warning).to_contain_text("Art 12(4)")
    expect(warning).to_contain_text("complain to the ICO")
    refuse = page.locator("form[action$='/refuse/']")
    refuse.get_by_label("Legal ground").select_option("manifestly_excessive")
    refuse.get_by_role("button", name="Refuse").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Give your reasons")
    expect(summary).to_be_focused()  # govuk-frontend moves focus to the summary
    axe_check(page)
    screenshot(page, "portal-06-refuse-error")
    summary.get_by_role("link").first.click()  # the error links to the field it is about
    expect(page.locator("form[action$='/refuse/'] textarea")).to_be_focused()
    page.keyboard.type("This repeats a request we answered last week.")
    page.locator("form[action$='/refuse/']").get_by_role("button", name="Refuse").click()
    expect(banner(page)).to_contain_text("request B1-M2-AC is refused")
    refused = DataRightsRequest.objects.get(reference="B1-M2-AC")
    assert refused.state == "refused" and refused.refusal_ground == "manifestly_excessive"

    # A refused request offers no more answers; the stale tab's "Acknowledge" is refused with a clear
    # message, and nothing changes.
    expect(page.get_by_text("This request is refused: there is nothing to answer now.")).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    stale.get_by_role("button", name="Acknowledge").click()
    expect(banner(stale)).to_contain_text("Request B1-M2-AC is refused: it cannot be acknowledged now.")
    assert states()["B1-M2-AC"] == "refused"
    axe_check(stale)
    stale.close()

    # Another controller's request is not found, whatever the URL.
    response = page.goto(f"{live_server.url}/respond/requests/B3-M9-GX/")
    assert response.status == 404

    assert traffic.external() == [] and traffic.page_errors == [] and traffic.dialogs == []
    # The only console errors are the 400 and 404 answers above: no Content-Security-Policy refusal.
    assert [e for e in traffic.console_errors if "Failed to load resource" not in e] == []


def test_the_member_downloads_what_the_controller_sent(
    desktop_context, live_server, acme, mailbox, settings, tmp_path
):
    settings.SITE_URL = live_server.url
    page = desktop_context.new_page()
    sign_in(page, live_server, mailbox)
    page.goto(f"{live_server.url}/respond/requests/B2-M5-PO/")
    page.get_by_text("Send the data", exact=True).click()
    expect(page.locator(".govuk-inset-text")).to_contain_text("machine-readable")
    fulfil = page.locator("form[action$='/fulfil/']")
    fulfil.locator("input[type=file]").set_input_files(
        files=[{"name": "export.csv", "mimeType": "text/csv", "buffer": b"title,year\nFrankenstein,1818\n"}]
    )
    fulfil.get_by_role("button", name="Send and mark fulfilled").click()
    expect(banner(page)).to_contain_text("is answered")

    # The member, in their own browser, finds the file on the request's page and downloads it.
    request = DataRightsRequest.objects.select_related("member__user").get(reference="B2-M5-PO")
    assert any(
        m["To"] == request.member.user.email and "sent your data" in m["Subject"] for m in mailbox.messages()
    )
    client = Client()
    client.force_login(request.member.user)
    member_context = desktop_context.browser.new_context(locale="en-GB")
    session_cookie = django_settings.SESSION_COOKIE_NAME
    member_context.add_cookies(
        [{"name": session_cookie, "url": live_server.url, "value": client.cookies[session_cookie].value}]
    )
    member_page = member_context.new_page()
    member_page.goto(f"{live_server.url}/me/")
    member_page.get_by_role("link", name=re.compile("Acme AI Ltd")).first.click()
    expect(member_page.get_by_role("heading", name="What they sent")).to_be_visible()
    axe_check(member_page)
    with member_page.expect_download() as download:
        member_page.get_by_role("link", name="export.csv").click()
    assert Path(download.value.path()).read_bytes() == b"title,year\nFrankenstein,1818\n"
    member_context.close()


def test_a_zip_of_folders_answers_many_requests_at_once(
    desktop_page: Page, live_server, acme, mailbox, settings
):
    settings.SITE_URL = live_server.url
    page = desktop_page
    sign_in(page, live_server, mailbox)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("B1-M3-AC/data.json", ANSWER)
        archive.writestr("B1-M4-AC/data.json", ANSWER)
        archive.writestr("B3-M9-GX/data.json", ANSWER)  # Globex's: the whole upload is refused
    page.get_by_label("ZIP file of answers (optional)").set_input_files(
        files=[{"name": "answers.zip", "mimeType": "application/zip", "buffer": buffer.getvalue()}]
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing was applied")
    expect(page.locator(".govuk-error-summary")).to_contain_text("B3-M9-GX is not one of your requests")
    axe_check(page)
    screenshot(page, "portal-07-zip-refused")
    assert states()["B1-M3-AC"] == "sent" and states()["B1-M4-AC"] == "sent"

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("B1-M3-AC/data.json", ANSWER)
        archive.writestr("B1-M4-AC/letter.txt", b"Dear member, here is your data.")
    page.goto(f"{live_server.url}/respond/requests/")
    page.get_by_label("ZIP file of answers (optional)").set_input_files(
        files=[{"name": "answers.zip", "mimeType": "application/zip", "buffer": buffer.getvalue()}]
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator(".govuk-panel__title")).to_have_text("Answers applied")
    expect(page.locator("table")).to_contain_text("letter.txt")
    axe_check(page)
    screenshot(page, "portal-08-zip-applied")
    assert states()["B1-M3-AC"] == states()["B1-M4-AC"] == "fulfilled"


def test_the_refusal_form_works_with_the_keyboard_alone_on_a_phone(
    mobile_page: Page, live_server, acme, mailbox, settings
):
    settings.SITE_URL = live_server.url
    page = mobile_page
    sign_in(page, live_server, mailbox)
    axe_check(page)
    screenshot(page, "portal-09-list-phone")
    page.goto(f"{live_server.url}/respond/requests/B1-M3-AC/")
    summary = page.locator("summary", has_text="Refuse")
    summary.focus()
    page.keyboard.press("Enter")  # opens the details
    page.keyboard.press("Tab")  # the legal ground
    assert page.evaluate("document.activeElement.tagName") == "SELECT"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    chosen = page.evaluate("document.activeElement.value")
    page.keyboard.press("Tab")  # the reasons
    page.keyboard.type("The request is manifestly excessive: it repeats one answered last week.")
    page.keyboard.press("Tab")  # the button
    assert page.evaluate("document.activeElement.textContent").strip() == "Refuse"
    page.keyboard.press("Enter")
    expect(banner(page)).to_contain_text("request B1-M3-AC is refused")
    refused = DataRightsRequest.objects.get(reference="B1-M3-AC")
    assert refused.state == "refused" and refused.refusal_ground == chosen
    axe_check(page)
    screenshot(page, "portal-10-refused-phone")


def test_a_used_link_fails_closed(desktop_page: Page, live_server, acme, mailbox, settings):
    settings.SITE_URL = live_server.url
    page = desktop_page
    sign_in(page, live_server, mailbox)
    page.get_by_role("button", name="Sign out").click()
    expect(banner(page)).to_contain_text("You are signed out")
    response = page.goto(sign_in_link(mailbox))
    assert response.status == 410
    axe_check(page)
    page.goto(f"{live_server.url}/respond/requests/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Answer data rights requests")
