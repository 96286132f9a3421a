"""What a member changes after joining, on a 390-px-wide phone: they narrow their mandate with the keyboard
(the review warns of the request it withdraws, the controller is told by email), choose a daily digest of
their notices, fill in the Art 15 checklist of an answer (the follow-up names what is missing) and send a
returned file on to another organisation. Every page: axe-core, no request leaves the machine, nothing in
the console, nothing wider than the screen."""

from __future__ import annotations

import datetime
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from communities import documents
from communities.forms import RIGHT_SENTENCES
from communities.models import Community, Mandate, Member, Right
from core.audit import Actor
from requests_engine import services as engine
from requests_engine.letters import long_date
from requests_engine.models import Controller, DataRightsRequest, PortabilityForward
from requests_engine.responses import answers, completeness
from requests_engine.responses.files import Upload
from tests.browser.conftest import Traffic, axe_check, record_traffic, screenshot
from tests.factories import make_covered_request, make_mandate, make_member

ROBOT = Actor.system("test")
CONTROLLER = Actor(Actor.CONTROLLER, "1")
NAME = "Ada Lovelace"
ACME = "privacy@acme-ai.test"
GLOBEX = "dpo@globex.test"


@pytest.fixture
def cast(transactional_db, settings, live_server):
    """A community writing to Acme and Globex; Initech is in the directory but not the community's."""
    settings.SITE_URL = live_server.url
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    community = Community.objects.create(
        slug="writers",
        name="Writers' Data Collective",
        purpose="We ask AI developers about our work.",
        contact_email="hello@writers.test",
        rights=[Right.ACCESS, Right.ERASURE, Right.PORTABILITY],
    )
    acme = Controller.objects.create(slug="acme-ai", name="Acme AI Ltd", email=ACME)
    globex = Controller.objects.create(slug="globex", name="Globex plc", email=GLOBEX)
    initech = Controller.objects.create(slug="initech", name="Initech", email="privacy@initech.test")
    community.controllers.add(acme, globex)
    member = make_member(community, NAME, email="ada@writers.test")
    return {"community": community, "member": member, "acme": acme, "globex": globex, "initech": initech}


def sent(member, controller, *, right=Right.ACCESS, reference=None) -> DataRightsRequest:
    request = make_covered_request(member, controller, right=right, reference=reference)
    engine.request_approve(request_id=request.pk, actor=ROBOT)
    engine.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=ROBOT)
    return DataRightsRequest.objects.get(pk=request.pk)


def signed_in(page: Page, member: Member, base_url: str) -> Page:
    client = Client()
    client.force_login(member.user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}]
    )
    return page


def in_own_thread(function, **kwargs):
    """Playwright's event loop runs in the test's thread, and sealing a PDF runs one of its own."""

    def run():
        try:
            return function(**kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def check_page(page: Page, traffic: Traffic, name: str) -> None:
    """axe, no horizontal scrolling on the phone, a screenshot; nothing external, failed or in the console."""
    axe_check(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{name} is too wide"
    screenshot(page, f"member-changes-{name}")
    assert traffic.external() == [], traffic.external()
    assert traffic.console_errors == [] and traffic.page_errors == [] and traffic.dialogs == []
    assert [f for f in traffic.failures if "favicon" not in f] == []


def tab_to(page: Page, target: Locator, limit: int = 80) -> None:
    """Press Tab until `target` has the focus: proof it is reachable with the keyboard."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} never got the focus with Tab")


def banner(page: Page) -> Locator:
    return page.locator(".govuk-notification-banner")


def to(mailbox, address: str) -> list:
    return [m for m in mailbox.messages() if address in m["To"]]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


# -- 1. changing a mandate -------------------------------------------------------------------------------


def test_a_member_narrows_their_mandate_with_the_keyboard_and_the_erasure_request_is_withdrawn(
    cast, mobile_page: Page, live_server, mailbox
):
    member, acme = cast["member"], cast["acme"]
    old = make_mandate(member, rights=(Right.ACCESS, Right.ERASURE))
    access = sent(member, acme, reference="B1-M1-AC")
    erasure = sent(member, acme, right=Right.ERASURE, reference="B1-M1-ER")
    page = signed_in(mobile_page, member, live_server.url)
    traffic = record_traffic(page)

    page.goto(f"{live_server.url}/me/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your requests")
    check_page(page, traffic, "01-me")
    change = page.get_by_role("link", name="Change what the community may do")
    tab_to(page, change)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("What may Writers' Data Collective do for you?")
    expect(page.locator(".govuk-inset-text")).to_contain_text(f"You are changing mandate {old.reference}")
    # The form starts from the mandate as it is.
    expect(page.get_by_label(RIGHT_SENTENCES[Right.ACCESS])).to_be_checked()
    erasure_box = page.get_by_label(RIGHT_SENTENCES[Right.ERASURE])
    expect(erasure_box).to_be_checked()
    expect(page.get_by_label("All the organisations listed below, as the list stands today")).to_be_checked()
    expect(page.get_by_label(re.compile(r"^Testing\.:"))).to_be_checked()
    expect(page.get_by_role("link", name="Back")).to_have_attribute("href", f"/me/mandates/{old.reference}/")
    check_page(page, traffic, "02-change-choices")
    tab_to(page, erasure_box)
    page.keyboard.press("Space")
    expect(erasure_box).not_to_be_checked()
    tab_to(page, page.get_by_role("button", name="Continue to read the mandate"))
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Read and sign your mandate")
    expect(
        page.get_by_text(f"This mandate replaces mandate {old.reference} when you sign it.")
    ).to_be_visible()
    warning = page.locator(".govuk-warning-text")
    expect(warning).to_contain_text(
        "Your new choices do not cover 1 open request: the community stops acting on it"
    )
    withdrawn_list = page.locator(".govuk-warning-text + ul")
    expect(withdrawn_list).to_have_text(f"{erasure.reference}: Erasure (Art 17) to Acme AI Ltd")
    expect(page.locator(".mandate-text")).not_to_contain_text("erasure")
    # The member chooses for the request, with the keyboard; nothing is chosen for them.
    withdraw = page.get_by_label("Withdraw it: Acme AI Ltd stops working on it")
    expect(withdraw).not_to_be_checked()
    check_page(page, traffic, "03-change-review")
    tab_to(page, page.get_by_label("Keep it as my own request: Acme AI Ltd answers me directly"))
    page.keyboard.press("ArrowDown")  # moves to, and chooses, the next answer in the group
    expect(withdraw).to_be_checked()
    page.get_by_label("Type your full name to sign").focus()
    page.keyboard.type(NAME)
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/me/mandates/\w+/$"))
    new = Mandate.objects.get(member=member, state=Mandate.State.ACTIVE)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Mandate {new.reference}")
    expect(banner(page)).to_contain_text(f"Mandate {new.reference} signed")
    assert new.rights == [Right.ACCESS] and new.all_controllers and new.pk != old.pk
    check_page(page, traffic, "04-new-mandate")

    page.goto(f"{live_server.url}/me/mandates/{old.reference}/")
    expect(page.locator(".govuk-tag").first).to_have_text("Replaced by a newer mandate")
    expect(page.get_by_role("link", name=f"Mandate {new.reference}")).to_be_visible()
    expect(page.get_by_role("link", name="Change what the community may do")).to_have_count(0)
    check_page(page, traffic, "05-old-mandate")

    page.goto(f"{live_server.url}/me/")
    old_line = page.locator("p", has=page.get_by_role("link", name=f"Mandate {old.reference}"))
    expect(old_line.locator(".govuk-tag")).to_have_text("Replaced by a newer mandate")
    rows = page.locator("tbody tr")
    expect(rows.filter(has_text="Erasure (Art 17)").locator("[data-label='Where it stands']")).to_have_text(
        "Withdrawn"
    )
    expect(rows.filter(has_text="Access (Art 15)").locator("[data-label='Where it stands']")).to_have_text(
        re.compile("^Sent")
    )
    # A withdrawn request counts no days down.
    expect(rows.filter(has_text="Erasure (Art 17)").locator("[data-label='Due']")).to_have_text(
        "Nothing: withdrawn"
    )
    expect(rows.filter(has_text="Access (Art 15)").locator("[data-label='Due']")).to_contain_text("days left")
    check_page(page, traffic, "06-me-after-change")

    assert DataRightsRequest.objects.get(pk=erasure.pk).state == "withdrawn"
    assert DataRightsRequest.objects.get(pk=access.pk).state == "sent"
    [notice] = [m for m in to(mailbox, ACME) if m["Subject"].startswith("Withdrawn")]
    body = text_of(notice)
    assert erasure.reference in body and access.reference not in body and "narrowed their mandate" in body

    # Revoking the mandate in force ends the request the old one made and the new one still covered.
    page.goto(f"{live_server.url}/me/mandates/{new.reference}/revoke/")
    expect(page.get_by_text("Your open requests")).to_be_visible()
    check_page(page, traffic, "07-revoke-new-mandate")
    page.get_by_label("Withdraw it: Acme AI Ltd stops working on it").check()
    page.get_by_role("button", name="Revoke the mandate").click()
    expect(page.locator(".govuk-tag").first).to_have_text("Revoked")
    assert DataRightsRequest.objects.get(pk=access.pk).state == "withdrawn"
    notices = [m for m in to(mailbox, ACME) if m["Subject"].startswith("Withdrawn")]
    assert len(notices) == 2 and access.reference in text_of(notices[1])
    assert "revoked their mandate" in text_of(notices[1])


# -- 2. notifications -----------------------------------------------------------------------------------


def test_a_member_chooses_a_daily_digest_and_a_tampered_choice_is_refused_with_an_error_summary(
    cast, mobile_page: Page, live_server, mailbox
):
    member, acme = cast["member"], cast["acme"]
    make_mandate(member)
    request = sent(member, acme, reference="B1-M1-AC")
    engine.request_extend(request_id=request.pk, months=2, reason="Many records to search.", actor=CONTROLLER)
    page = signed_in(mobile_page, member, live_server.url)
    traffic = record_traffic(page)

    page.goto(f"{live_server.url}/me/")
    notices = page.get_by_role("list").filter(has_text="has extended the time")
    link = notices.get_by_role("link", name="Acme AI Ltd has extended the time to answer your request")
    expect(link).to_have_attribute("href", f"/me/requests/{request.reference}/")
    expect(notices.locator(".govuk-tag")).to_have_count(0)  # emailed at once, as chosen when joining
    assert [m["Subject"] for m in to(mailbox, "ada@writers.test")] == [
        "Acme AI Ltd has extended the time to answer your request"
    ]
    expect(page.get_by_label("An email at each step")).to_be_checked()
    check_page(page, traffic, "08-notifications")
    daily = page.get_by_label("One email a day with everything new (a digest)")
    tab_to(page, page.get_by_label("An email at each step"))
    page.keyboard.press("ArrowDown")  # radios: the arrow moves the choice
    expect(daily).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Save how we email you"))
    page.keyboard.press("Enter")

    expect(banner(page)).to_contain_text("Saved: one email a day with everything new (a digest).")
    expect(daily).to_be_checked()
    assert Member.objects.get(pk=member.pk).notifications == Member.Notifications.DAILY

    # The next step waits for the digest, and /me/ says so.
    engine.request_fulfil(request_id=request.pk, actor=CONTROLLER)
    page.reload()
    latest = notices.locator("li").first
    expect(latest).to_contain_text("Acme AI Ltd answered your request")
    expect(latest.locator(".govuk-tag")).to_have_text("In your next daily email")
    assert len(to(mailbox, "ada@writers.test")) == 1
    due = page.locator("tbody tr [data-label='Due']")
    expect(due).to_have_text(f"Answered {timezone.localdate():%-d %b %Y}")  # no countdown once answered
    check_page(page, traffic, "09-notices-waiting")

    # A value that is not one of the choices (a tampered form) is refused with a GOV.UK error summary.
    page.evaluate("document.querySelector('input[name=notifications]:checked').value = 'hourly'")
    page.get_by_role("button", name="Save how we email you").click()
    expect(page).to_have_title(re.compile("^Error: How we email you"))
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("There is a problem")
    expect(
        summary.get_by_role("link", name="Choose an email at each step or one email a day")
    ).to_be_visible()
    expect(page.locator(".govuk-error-message")).to_contain_text(
        "Choose an email at each step or one email a day"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("How should we email you about your requests?")
    traffic.failures.clear()  # nothing failed: the refused form is a 200 page
    check_page(page, traffic, "10-notifications-error")
    summary.get_by_role("link").click()
    expect(page.get_by_label("An email at each step")).to_be_focused()
    assert Member.objects.get(pk=member.pk).notifications == Member.Notifications.DAILY


# -- 3. the Art 15 checklist -----------------------------------------------------------------------------


def test_the_art15_checklist_sends_a_follow_up_naming_the_unticked_items(
    cast, mobile_page: Page, live_server, mailbox
):
    member, acme = cast["member"], cast["acme"]
    make_mandate(member)
    request = sent(member, acme, reference="B1-M1-AC")
    engine.request_fulfil(request_id=request.pk, actor=CONTROLLER)
    completeness.items_declare(request, ["copy", "purposes", "categories"], CONTROLLER)
    page = signed_in(mobile_page, member, live_server.url)
    traffic = record_traffic(page)

    page.goto(f"{live_server.url}/me/requests/{request.reference}/")
    expect(page.get_by_role("heading", name="Is their answer complete?")).to_be_visible()
    expect(page.get_by_text("Acme AI Ltd said its answer includes the items ticked below.")).to_be_visible()
    answered = page.locator(".govuk-summary-list__row", has_text="Answer due").locator("dd")
    expect(answered).to_contain_text(f"Answered on {long_date(timezone.localdate())}")
    expect(answered).not_to_contain_text("left")
    copy = page.get_by_label("A copy of the personal data (Art 15(3))")
    purposes = page.get_by_label("The purposes of the processing (Art 15(1)(a))")
    recipients = page.get_by_label("The recipients or categories of recipient (Art 15(1)(c))")
    retention = page.get_by_label("How long the data will be kept, or the criteria (Art 15(1)(d))")
    for box in (copy, purposes, page.get_by_label("The categories of personal data (Art 15(1)(b))")):
        expect(box).to_be_checked()  # prefilled from what Acme declared
    expect(recipients).not_to_be_checked()
    check_page(page, traffic, "11-checklist")
    # The member found no purposes after all, but did find the recipients and the retention period.
    tab_to(page, purposes)
    page.keyboard.press("Space")
    tab_to(page, recipients)
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(retention).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Save my checklist"))
    page.keyboard.press("Enter")

    today = timezone.localdate()
    due = completeness.followup_due_date(today, jurisdiction=acme.jurisdiction)
    assert due >= today + datetime.timedelta(days=14)
    expect(banner(page)).to_contain_text(
        f"Saved. We have written to Acme AI Ltd asking for what is missing; they have until {long_date(due)}."
    )
    expect(page.get_by_text("Acme AI Ltd said its answer includes")).to_have_count(
        0
    )  # the ticks are now ours
    expect(page.get_by_text("The items ticked below are those found in its answer")).to_be_visible()
    inset = page.locator("#art15 ~ .govuk-inset-text")
    expect(inset).to_contain_text(f"It has until the end of {due:%A} {long_date(due)}.")
    expect(inset.locator("li")).to_have_count(5)
    expect(inset).to_contain_text("the purposes of the processing (Article 15(1)(a) UK GDPR)")
    check_page(page, traffic, "12-checklist-saved")

    [letter] = [m for m in to(mailbox, ACME) if "is incomplete" in m["Subject"]]
    assert request.reference in letter["Subject"]
    body = text_of(letter)
    lacks = body.split("It lacks:")[1].split("Please send")[0]
    for missing in (
        "the purposes of the processing (Article 15(1)(a) UK GDPR)",
        "about its source",
        "the existence of the rights to ask for rectification",
        "automated decision-making",
        "safeguards relied on for the transfer (Article 15(2) UK GDPR)",
    ):
        assert missing in lacks, missing
    for found in (
        "a copy of the personal data",
        "the categories of personal data",
        "the recipients",
        "how long the data will be stored",
    ):
        assert found not in lacks, found
    assert f"by the end of {due:%A} {long_date(due)}" in body


# -- 4. portability forwarding ---------------------------------------------------------------------------


def test_a_member_sends_returned_data_on_to_another_organisation_and_a_bad_choice_is_explained(
    cast, mobile_page: Page, live_server, mailbox
):
    member, acme, globex, initech = cast["member"], cast["acme"], cast["globex"], cast["initech"]
    mandate = make_mandate(
        member, rights=(Right.ACCESS, Right.PORTABILITY), all_controllers=False, controllers=(acme, globex)
    )
    in_own_thread(documents.mandate_pdf_issue, mandate_id=mandate.pk)
    request = sent(member, acme, right=Right.PORTABILITY, reference="B2-M1-PO")
    answers.request_answer(
        action="fulfil",
        request_id=request.pk,
        actor=CONTROLLER,
        uploads=[Upload("history.json", b'{"plays": 12}')],
    )
    page = signed_in(mobile_page, member, live_server.url)
    traffic = record_traffic(page)

    page.goto(f"{live_server.url}/me/requests/{request.reference}/")
    expect(page.get_by_role("heading", name="Sent on to other organisations")).to_be_visible()
    send_on = page.get_by_role("link", name="Send this data to another organisation")
    tab_to(page, send_on)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Send your data to another organisation")
    expect(page.get_by_label(re.compile(r"^history\.json"))).to_be_checked()  # the only file
    choice = page.get_by_label("Which organisation should receive it?")
    assert "Acme AI Ltd" not in choice.locator("option").all_inner_texts()  # not back to the sender
    check_page(page, traffic, "13-forward")

    # Nothing chosen: the field says what to do.
    page.get_by_role("button", name="Send the file").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link", name="Choose the organisation to send it to")).to_be_visible()
    expect(page).to_have_title(re.compile("^Error: "))
    check_page(page, traffic, "14-forward-nothing-chosen")

    # An organisation the mandate does not name: refused, saying why and what to do.
    choice.select_option(label="Initech")
    page.get_by_role("button", name="Send the file").click()
    refusal = (
        "Your mandate does not let the community exercise your right to data portability with Initech. "
        "Sign a new mandate that includes it, then ask again."
    )
    expect(summary.get_by_role("link", name=refusal)).to_have_attribute("href", "#id_to_controller")
    expect(page.locator("#id_to_controller-error")).to_contain_text(refusal)
    expect(choice).to_have_value(str(initech.pk))  # the choice is kept for the member to change
    check_page(page, traffic, "15-forward-refused")
    assert not PortabilityForward.objects.exists() and to(mailbox, "privacy@initech.test") == []

    # A value that is no organisation at all (a tampered form).
    page.evaluate("document.querySelector('#id_to_controller').selectedOptions[0].value = '999999'")
    page.get_by_role("button", name="Send the file").click()
    expect(summary.get_by_role("link", name="Choose an organisation from the list")).to_be_visible()

    tab_to(page, choice)
    choice.select_option(label="Globex plc")
    tab_to(page, page.get_by_role("button", name="Send the file"))
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Acme AI Ltd: Portability (Art 20)")
    expect(banner(page)).to_contain_text(
        "We are sending “history.json” to Globex plc. You can follow it here."
    )
    row = page.locator("tbody tr").filter(has_text="Globex plc")
    expect(row.locator("[data-label='File']")).to_have_text("history.json")
    expect(row.locator("[data-label='Delivery']")).to_have_text("Sent: their mail server accepted it")
    check_page(page, traffic, "16-forwarded")
    [email] = to(mailbox, GLOBEX)
    attached = {part.get_filename(): part.get_payload(decode=True) for part in email.iter_attachments()}
    assert attached["history.json"] == b'{"plays": 12}'
    assert PortabilityForward.objects.get().message.status == "sent"


# -- 5. confirming an erasure, checking an address, correcting a name ------------------------------------


def test_a_member_confirms_an_erasure_from_the_emailed_link_and_checks_an_address_on_a_phone(
    cast, mobile_page: Page, live_server, mailbox
):
    from communities.services import identifiers_save
    from requests_engine.campaigns import confirmation
    from requests_engine.models import Confirmation
    from tests.factories import make_campaign

    member, acme = cast["member"], cast["acme"]
    make_mandate(member, rights=(Right.ACCESS, Right.ERASURE), irreversible_without_asking=False)
    campaign = make_campaign(
        cast["community"],
        name="See, then delete",
        rights=[Right.ACCESS, Right.ERASURE],
        purpose="Delete what AI developers took from our books.",
        controllers=[acme],
    )
    confirmation.campaign_ask_to_confirm(
        campaign_id=campaign.pk, confirm_by=timezone.localdate() + datetime.timedelta(days=10), actor=ROBOT
    )
    [asked] = [m for m in to(mailbox, member.user.email) if "cannot be undone" in m["Subject"]]
    link = re.search(r"https?://\S+/me/confirm/\S+/", text_of(asked)).group(0)
    page = signed_in(mobile_page, member, live_server.url)
    traffic = record_traffic(page)

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Do you want these requests sent?")
    expect(page.locator("main")).to_contain_text("Acme AI Ltd: delete your personal data")
    at_once = page.get_by_label("Send my request to delete my data at once, without waiting for the copy")
    expect(at_once).not_to_be_checked()
    check_page(page, traffic, "17-confirm-erasure")
    tab_to(page, page.get_by_role("button", name="Yes, send them"))
    page.keyboard.press("Enter")
    expect(banner(page)).to_contain_text("we will send these requests for you")
    expect(page.locator(".govuk-inset-text")).to_contain_text("yes, send them")
    check_page(page, traffic, "18-confirmed")
    answer = Confirmation.objects.get(member=member, campaign=campaign)
    assert answer.state == "confirmed" and not answer.erasure_at_once  # waits for the access answer

    identifiers_save(
        member=member, entries=[(acme.pk, "email", "Email address you use there", "ada.reading@mail.test")]
    )
    [check] = to(mailbox, "ada.reading@mail.test")
    page.goto(re.search(r"https?://\S+/identifiers/check/\S+/", text_of(check)).group(0))
    expect(page.get_by_role("heading", level=1)).to_have_text("Is this address yours?")
    check_page(page, traffic, "19-check-address")
    page.get_by_role("button", name="Yes, this address is mine").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This address is checked")
    check_page(page, traffic, "20-address-checked")

    page.goto(f"{live_server.url}/me/{member.reference}/name/")
    expect(page.get_by_label("Your full name")).to_have_value(NAME)
    check_page(page, traffic, "21-correct-name")

    # What Acme can check of its own authority document: the address is now marked checked.
    from requests_engine.authorities import authority_issue

    authority = in_own_thread(authority_issue, mandate=member.mandates.get(state="active"), controller=acme)
    page.goto(f"{live_server.url}/verify/{authority.token}/")
    expect(page.locator("main")).to_contain_text("Acme AI Ltd")
    expect(page.locator("main")).not_to_contain_text("Globex")
    expect(page.locator("main")).to_contain_text("verified by a link sent to it")
    check_page(page, traffic, "22-authority-check")
