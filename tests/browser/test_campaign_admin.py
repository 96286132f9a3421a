"""A coordinator runs a campaign in the back office, in a real browser: signs in, creates the campaign, reads
the preview (eligible members per controller and right, who lacks an identifier) and asks those members for
it, approves and launches, follows the progress as it updates in place, finds the controller's letter in the
SMTP server with the letter PDF, the manifest and the mandates, and adds the controller's reply, saved as an
.eml file, which threads back to its batch. axe-core checks each page; nothing is fetched from elsewhere."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone
from playwright.sync_api import Page, expect

from communities.models import Identifier, Right
from core.models import OutboundMessage
from requests_engine.models import (
    Batch,
    Campaign,
    Controller,
    DataRightsRequest,
    InboundMessage,
    RequestEvent,
)
from tests.browser.conftest import Traffic, axe_check, record_traffic, screenshot
from tests.factories import make_mandate, make_member, make_purpose

ADMIN = "/admin/requests_engine"


@pytest.fixture
def cast(transactional_db, settings, live_server, coordinator, community, controller):
    """Acme takes email, Postbox takes letters. Ada gave an address for everywhere; Mary gave none; Sam's
    mandate covers only a third controller, so no launch to Acme or Postbox includes him."""
    settings.SITE_URL = live_server.url
    EmailAddress.objects.create(user=coordinator, email=coordinator.email, verified=True, primary=True)
    postbox = Controller.objects.create(
        slug="postbox", name="Postbox Ltd", transport="letter", postal_address="1 High Street, Leeds LS1 1AA"
    )
    elsewhere = Controller.objects.create(slug="elsewhere", name="Elsewhere plc", email="dpo@elsewhere.test")
    # The community's own lists, as members signed against them.
    community.controllers.add(controller, postbox, elsewhere)
    make_purpose(community, "Find out whether our writing was used to train AI models.")
    ada = make_member(community, "Ada Lovelace")
    make_mandate(ada, rights=[Right.ACCESS, Right.ERASURE])
    Identifier.objects.create(member=ada, kind=Identifier.Kind.EMAIL, value="ada@mail.test")
    mary = make_member(community, "Mary Shelley")
    make_mandate(mary)
    sam = make_member(community, "Sam Elsewhere")
    make_mandate(sam, all_controllers=False, controllers=[elsewhere])
    return {"acme": controller, "postbox": postbox, "ada": ada, "mary": mary, "sam": sam}


def axe_check_admin(page: Page, traffic: Traffic) -> None:
    """axe_check on a back-office page.

    To read a stylesheet's @import (Django's forms.css has one) axe adds a <style> element, which our
    Content-Security-Policy rightly refuses: that refusal, logged while axe runs, is axe's, not the page's."""
    logged = len(traffic.console_errors)
    axe_check(page)
    traffic.console_errors[logged:] = [
        error for error in traffic.console_errors[logged:] if not error.startswith("Applying inline style")
    ]


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the SMTP server did not receive the expected message in time")


def messages_to(mailbox, address: str) -> list[EmailMessage]:
    return [message for message in mailbox.messages() if message["To"] == address]


def test_a_coordinator_creates_previews_launches_and_follows_a_campaign(
    desktop_context, live_server, cast, mailbox, coordinator, community, tmp_path
):
    page = desktop_context.new_page()
    traffic = record_traffic(page)

    # Sign in: the back office sends a coordinator to the sign-in page and back.
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Email").fill(coordinator.email)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")

    # Create the campaign.
    page.goto(f"{live_server.url}{ADMIN}/campaign/add/")
    axe_check_admin(page, traffic)
    page.get_by_label("Community").select_option(label=community.name)
    page.get_by_label("Name").fill("Training data 2025")
    page.get_by_label("Access (Art 15)").check()
    page.get_by_label("Erasure (Art 17)").check()
    page.locator("#id_controllers_from").select_option(label="Acme Ltd")
    page.locator("#id_controllers_add").click()
    page.locator("#id_controllers_from").select_option(label="Postbox Ltd")
    page.locator("#id_controllers_add").click()
    page.get_by_label("Purpose").select_option(
        label="Find out whether our writing was used to train AI models."
    )
    page.get_by_role("button", name="Save and continue editing").last.click()
    campaign = Campaign.objects.get(name="Training data 2025")
    page.wait_for_url(f"**{ADMIN}/campaign/{campaign.pk}/change/")
    assert campaign.state == "draft" and campaign.created_by == coordinator
    assert campaign.rights == ["access", "erasure"]

    # The preview: per controller and right, who a launch would include and who lacks an identifier.
    preview = page.locator(
        "fieldset", has=page.get_by_role("heading", name="Preview: who a launch would include")
    )
    rows = [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in preview.locator("tbody tr").all()
    ]
    mary = cast["mary"]
    # Sam named only Elsewhere, and only Ada chose erasure (pre-authorised, so nothing to confirm): the
    # others are counted as not authorised.
    assert rows == [
        ["Acme Ltd", "Access (Art 15)", "2", "1", "0", f"1: Mary Shelley ({mary.reference})"],
        ["Acme Ltd", "Erasure (Art 17)", "1", "2", "0", "0"],
        ["Postbox Ltd (Letter)", "Access (Art 15)", "2", "1", "0", f"1: Mary Shelley ({mary.reference})"],
        ["Postbox Ltd (Letter)", "Erasure (Art 17)", "1", "2", "0", "0"],
    ]
    axe_check_admin(page, traffic)
    screenshot(page, "campaign-admin-01-preview")

    # Enter in a field saves the campaign: it never presses "Approve and launch", the first button below.
    page.get_by_label("Name").press("Enter")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert Campaign.objects.get(pk=campaign.pk).state == "draft"
    page.get_by_role("link", name="Training data 2025").first.click()

    # Ask the members missing an identifier: Mary alone is emailed, once, with the page to add it on.
    page.get_by_role("button", name="Ask members missing an identifier to add it").click()
    expect(page.locator(".messagelist")).to_contain_text("Asked 1 member(s) to add their identifiers.")
    asked = wait_for(lambda: messages_to(mailbox, mary.user.email))
    assert len(asked) == 1 and "how do these organisations know you?" in asked[0]["Subject"]
    body = asked[0].get_body(preferencelist=("plain",)).get_content()
    assert f"{live_server.url}/me/{mary.reference}/identifiers/" in body
    assert "Acme Ltd" in body and "Postbox Ltd" in body
    assert not messages_to(mailbox, cast["ada"].user.email)

    # Approve and launch: Acme's letter goes by email at once; Postbox's waits to be posted.
    page.get_by_role("button", name="Approve and launch").click()
    expect(page.locator(".messagelist")).to_contain_text("Done: Approve and launch.")
    progress = page.locator("fieldset", has=page.get_by_role("heading", name="Progress"))
    expect(progress).to_contain_text("1 of 2 batches sent")
    # Ada's erasures wait for the access answers (sequencing.py): a held batch per organisation.
    expect(progress).to_contain_text("2 more hold erasure requests until the access answers are in")
    states = dict(
        (row.locator("td").first.inner_text().strip(), row.locator("td").nth(1).inner_text().strip())
        for row in progress.locator("tbody tr").all()
    )
    assert states == {
        "Draft": "2",
        "Queued to send": "2",
        "Sent, waiting for the controller": "2",
        "All": "6",
    }
    expect(preview).to_have_count(0)
    axe_check_admin(page, traffic)
    screenshot(page, "campaign-admin-02-launched")

    # The controller's letter reached the SMTP server, with the letter, the manifest and the mandates.
    acme_batch = Batch.objects.get(campaign=campaign, controller=cast["acme"], after_access=False)
    letter = wait_for(lambda: messages_to(mailbox, "privacy@acme.test"))
    assert len(letter) == 1
    letter = letter[0]
    assert letter["Reply-To"].startswith(f"reply+{acme_batch.reply_token}@")
    attachments = {part.get_filename(): part for part in letter.iter_attachments()}
    assert set(attachments) == {
        f"letter-{acme_batch.reference}.pdf",
        f"manifest-{acme_batch.reference}.csv",
        f"authorities-{acme_batch.reference}.zip",
    }
    pdf = attachments[f"letter-{acme_batch.reference}.pdf"]
    assert pdf.get_content_type() == "application/pdf" and pdf.get_content().startswith(b"%PDF")
    manifest = attachments[f"manifest-{acme_batch.reference}.csv"].get_content()
    manifest = manifest.decode() if isinstance(manifest, bytes) else manifest
    listed = list(csv.reader(io.StringIO(manifest)))
    acme_requests = DataRightsRequest.objects.filter(batch=acme_batch)
    assert {r.reference for r in acme_requests} <= {cell for row in listed for cell in row}
    assert "Mary Shelley" in manifest and "Ada Lovelace" in manifest and "Sam Elsewhere" not in manifest
    with zipfile.ZipFile(
        io.BytesIO(attachments[f"authorities-{acme_batch.reference}.zip"].get_content())
    ) as zf:
        mandates = [zf.read(name) for name in zf.namelist()]
    assert len(mandates) == 2 and all(pdf.startswith(b"%PDF") for pdf in mandates)
    assert not messages_to(mailbox, "dpo@elsewhere.test")
    # Accepted by the controller's mail server today: received today, each request carrying the letter's id.
    assert {(r.state, r.received_on, r.message_id) for r in acme_requests} == {
        ("sent", timezone.localdate(), letter["Message-ID"])
    }

    # In another tab the coordinator records that Postbox's letter was posted; the first tab's progress
    # updates in place, without a reload.
    page.evaluate("window.stillTheSamePage = true")
    posting = desktop_context.new_page()
    posting_traffic = record_traffic(posting)
    posting.goto(f"{live_server.url}{ADMIN}/batch/?campaign__id__exact={campaign.pk}")
    postbox_batch = Batch.objects.get(campaign=campaign, controller=cast["postbox"], after_access=False)
    posting.get_by_role("link", name=postbox_batch.reference).click()
    posting.get_by_role("link", name="Record that it was posted").click()
    axe_check_admin(posting, posting_traffic)
    posting.get_by_role("button", name="Record").click()
    expect(posting.locator(".messagelist")).to_contain_text("Recorded as posted: 2 request(s) dispatched.")
    posting.close()

    expect(progress).to_contain_text("2 of 2 batches sent", timeout=10_000)
    expect(progress.locator("tbody")).to_contain_text("Sent, waiting for the controller")
    expect(progress.locator("tbody")).not_to_contain_text("Queued to send")
    assert page.evaluate("window.stillTheSamePage === true")
    assert any(url.endswith(f"/campaign/{campaign.pk}/progress/") for url in traffic.requests)
    screenshot(page, "campaign-admin-03-progress")

    # Acme's privacy team answers the letter; the reply reached the coordinator's own mailbox, so it is
    # saved as .eml and added to the inbox, where it threads back to Acme's batch by its In-Reply-To.
    reply = EmailMessage()
    reply["From"] = "Acme Privacy <privacy@acme.test>"
    reply["To"] = coordinator.email
    reply["Subject"] = f"Re: {letter['Subject']}"
    reply["Date"] = format_datetime(timezone.now())
    reply["Message-ID"] = make_msgid(domain="acme.test")
    reply["In-Reply-To"] = letter["Message-ID"]
    reply["References"] = letter["Message-ID"]
    reply.set_content("We have received your members' requests and will answer within the month.")
    eml = tmp_path / "reply.eml"
    eml.write_bytes(reply.as_bytes())

    page.goto(f"{live_server.url}{ADMIN}/inboundmessage/")
    page.get_by_role("link", name="Add a reply from an .eml file").click()
    axe_check_admin(page, traffic)
    # A file that is not an email is refused with a reason.
    page.get_by_label("The reply, as an .eml file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some notes\n"}]
    )
    page.get_by_role("button", name="Add the reply").click()
    expect(page.locator(".errorlist")).to_contain_text("This is not an email saved as .eml")
    axe_check_admin(page, traffic)
    page.get_by_label("The reply, as an .eml file").set_input_files(str(eml))
    page.get_by_role("button", name="Add the reply").click()
    expect(page.locator(".messagelist")).to_contain_text("The reply was matched and recorded on its batch")
    row = page.locator("#result_list tbody tr", has_text=letter["Subject"])
    expect(row).to_contain_text("in-reply-to")
    expect(row).to_contain_text(acme_batch.reference)
    axe_check_admin(page, traffic)
    screenshot(page, "campaign-admin-04-inbox")

    inbound = InboundMessage.objects.get()
    assert (inbound.batch_id, inbound.request_id, inbound.matched_by) == (acme_batch.pk, None, "in-reply-to")
    assert RequestEvent.objects.filter(batch=acme_batch, kind="batch.reply_received").exists()
    assert OutboundMessage.objects.filter(status="sent").count() == len(mailbox.messages())

    # The admin pages name no icon, so the browser's own guess at /favicon.ico is the one allowed miss.
    for seen in (traffic, posting_traffic):
        assert [failure for failure in seen.failures if not failure.endswith("/favicon.ico")] == []
        assert [error for error in seen.console_errors if "404 (Not Found)" not in error] == []
        assert seen.external() == []
        assert seen.page_errors == [] and seen.dialogs == []
