"""A person who has never seen the service joins, signs a mandate, answers a question and revokes, on a
390-px-wide phone, with axe-core checking the main pages and screenshots kept for a person to look at."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from communities.forms import RIGHT_SENTENCES
from communities.models import Community, Mandate, Member, Purpose, Right
from core.audit import Actor
from requests_engine import services as engine
from requests_engine.models import Controller, DataRightsRequest
from tests.browser.conftest import axe_check, record_traffic, screenshot
from tests.factories import make_request

NAME = 'Zoë O\'Brien "Z" <b>bold</b> עברית'
EMAIL = "zoe.newcomer@example.test"
PASSWORD = "a-long-Passphrase-9"


@pytest.fixture
def writers(transactional_db):
    community = Community.objects.create(
        slug="writers",
        name="Writers' Data Collective",
        purpose="We ask AI developers whether they trained on our work.",
        contact_email="hello@writers.test",
        rights=[Right.ACCESS, Right.OBJECTION],
    )
    community.controllers.add(
        Controller.objects.create(slug="acme-ai", name="Acme AI Ltd", email="privacy@acme-ai.test"),
        Controller.objects.create(
            slug="globex",
            name="Globex",
            email="dpo@globex.test",
            required_identifiers=[{"desc": "Account number", "type": "input", "optional": False}],
        ),
    )
    Purpose.objects.create(
        community=community,
        name="Find out whether AI developers used our work",
        text="To learn whether you used members' published work to train AI models.",
    )
    return community


def confirm_link(mailbox) -> str:
    for message in mailbox.messages():
        body = message.get_body(preferencelist=("plain", "html")).get_content()
        found = re.search(r"https?://\S+/accounts/confirm-email/[^/\s]+/", body)
        if found:
            return found.group(0)
    raise AssertionError("no verification email reached the SMTP server")


def test_a_newcomer_joins_signs_answers_and_revokes_on_a_phone(
    mobile_page: Page, live_server, writers, mailbox, settings
):
    settings.SITE_URL = live_server.url
    page = mobile_page
    traffic = record_traffic(page)

    page.goto(f"{live_server.url}/join/writers/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Join Writers")
    axe_check(page)
    screenshot(page, "01-join")
    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_title(re.compile("Writers' Data Collective$"))  # the community's, not the host's

    page.fill("#id_email", EMAIL)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    screenshot(page, "02-sign-up")
    page.get_by_role("button", name=re.compile("Sign up", re.I)).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("Verify", re.I))

    page.goto(confirm_link(mailbox))
    page.get_by_role("button", name=re.compile("Confirm", re.I)).click()
    # The same link opened again (from the email, later) says it was used and where to go next.
    page.goto(confirm_link(mailbox))
    expect(page.get_by_role("heading", level=1)).to_have_text("This link has already been used")
    expect(page.get_by_role("link", name="Go to your requests")).to_be_visible()
    expect(page.locator("footer")).to_contain_text("hello@writers.test")
    axe_check(page)

    page.goto(f"{live_server.url}/join/writers/")
    page.fill("#id_full_name", NAME)
    page.get_by_role("button", name=re.compile("^Join")).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("How organisations know you")
    page.get_by_role("button", name="Save and continue").click()  # nothing typed for Globex yet
    expect(page.locator(".govuk-error-summary")).to_contain_text("Globex")
    page.get_by_label(re.compile("Globex: Account number")).fill("GX-1234")
    axe_check(page)
    screenshot(page, "03-identifiers")
    page.get_by_role("button", name="Save and continue").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("What may")
    # Consent is an act of the member's (Art 4(11), Art 7 UK GDPR; Planet49, C-673/17): nothing is ticked.
    choices = page.locator("form")
    expect(choices.locator("input[type=checkbox]:checked, input[type=radio]:checked")).to_have_count(0)
    axe_check(page)
    screenshot(page, "04-mandate-choices")
    page.get_by_role("button", name="Continue to read the mandate").click()
    summary = page.locator(".govuk-error-summary")
    for missing in (
        "Select at least one thing the community may ask for you",
        "Choose which organisations the community may write to for you",
        "Select at least one purpose the community may act for",
        "Choose where answers should go",
    ):
        expect(summary).to_contain_text(missing)
    page.get_by_label(RIGHT_SENTENCES[Right.ACCESS]).check()
    page.get_by_label("All the organisations listed below, as the list stands today").check()
    page.get_by_label(re.compile("^Find out whether AI developers used our work")).check()
    page.get_by_label("To me directly").check()
    axe_check(page)
    page.get_by_role("button", name="Continue to read the mandate").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Read and sign your mandate")
    expect(page.locator(".mandate-text")).to_contain_text(NAME)  # shown as text, not markup
    axe_check(page)
    screenshot(page, "05-sign")
    # Signing with the keyboard alone: type the name, tick the box with Space, press the button with Enter.
    page.locator("#id_signed_name").focus()
    page.keyboard.type(NAME)
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_contain_text("Mandate A")
    mandate = Mandate.objects.get(member__user__email=EMAIL)
    assert mandate.signed_name == NAME and mandate.state == "active"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the sealed PDF").click()
    pdf = Path(download.value.path())
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "O'Brien" in text and "Acme AI Ltd" in text and mandate.text_sha256 in text
    screenshot(page, "06-mandate")

    # A controller asks for clarification; the member sees it on their page and answers.
    member = Member.objects.get(user__email=EMAIL)
    request = make_request(
        member, Controller.objects.get(slug="acme-ai"), mandate=mandate, reference="B1-M1-AC"
    )
    engine.request_approve(request_id=request.pk, actor=Actor.system())
    engine.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=Actor.system())
    engine.request_ask_for_information(
        request_id=request.pk,
        kind="clarification",
        question="Which pen name?",
        asked_on=timezone.localdate(),
        actor=Actor(Actor.CONTROLLER, "1"),
    )
    page.goto(f"{live_server.url}/me/")
    expect(page.get_by_text("Which pen name?")).to_be_visible()
    axe_check(page)
    screenshot(page, "07-dashboard")
    page.get_by_role("link", name="Answer Acme AI Ltd").click()
    page.get_by_label("Your answer").fill("I publish as Z. O'Brien.")
    page.get_by_role("button", name="Send my answer").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("sent to the organisation")
    assert DataRightsRequest.objects.get(pk=request.pk).state == "acknowledged"
    assert any(
        "I publish as Z. O'Brien." in m.get_body(("plain",)).get_content()
        for m in mailbox.messages()
        if m["To"] == "privacy@acme-ai.test"
    )

    # Revoking: the member chooses what happens to the open request (nothing chosen for them), then it ends
    # at once, the organisation is told to answer the member, and the public check says so.
    page.goto(f"{live_server.url}/me/mandates/{mandate.reference}/")
    page.get_by_role("link", name="Revoke this mandate").click()
    keep = page.get_by_label("Keep it as my own request: Acme AI Ltd answers me directly")
    expect(keep).not_to_be_checked()
    expect(page.get_by_label("Withdraw it: Acme AI Ltd stops working on it")).not_to_be_checked()
    axe_check(page)
    screenshot(page, "08-revoke")
    page.get_by_role("button", name="Revoke the mandate").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text(
        "Choose what happens to your request to Acme AI Ltd"
    )
    axe_check(page)
    page.get_by_label("Keep it as my own request: Acme AI Ltd answers me directly").check()
    expect(page.get_by_label("Where should organisations answer you?")).to_have_value(EMAIL)
    page.get_by_role("button", name="Revoke the mandate").click()
    expect(page.locator(".govuk-tag")).to_have_text("Revoked")
    expect(page.locator(".govuk-notification-banner")).to_contain_text("1 request(s) are now your own")
    kept = DataRightsRequest.objects.get(pk=request.pk)
    assert kept.state == "handed_over" and kept.answer_directly_to == EMAIL
    page.goto(f"{live_server.url}/me/requests/{kept.reference}/")
    expect(page.locator(".govuk-inset-text").first).to_contain_text("This is now your own request")
    axe_check(page)
    page.goto(f"{live_server.url}/verify/{mandate.verification_token}/")
    expect(page.get_by_text("Not in force")).to_be_visible()

    assert traffic.external() == [] and traffic.page_errors == [] and traffic.dialogs == []
