"""A coordinator brings in the community's membership list of 1,000 people in a real browser: a dry run
that changes nothing, the import, whose invitations arrive in the SMTP server, and the same file again,
which changes nothing. axe-core checks the page."""

from __future__ import annotations

import time

import pytest
from allauth.account.models import EmailAddress

from communities.models import Invitation
from tests.browser.conftest import record_traffic, screenshot
from tests.browser.test_campaign_admin import axe_check_admin

PEOPLE = 1000


@pytest.fixture
def membership_list(tmp_path):
    rows = ["name,email,postal address,membership number"]
    for n in range(1, PEOPLE + 1):
        if n % 10:  # one in ten has only a postal address
            rows.append(f"Member {n},member{n}@union.test,,U-{n:05}")
        else:
            rows.append(f'Member {n},,"{n} High Street, Leeds LS1 1AA",U-{n:05}')
    rows.append("Unreachable Person,,,")  # refused: no way to reach them
    rows.append("Member 1 Again,member1@union.test,,")  # a duplicate of the first row
    path = tmp_path / "members.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_coordinator_imports_a_thousand_members_and_they_are_invited_once(
    transactional_db, settings, live_server, desktop_context, coordinator, community, mailbox, membership_list
):
    settings.SITE_URL = live_server.url
    EmailAddress.objects.create(user=coordinator, email=coordinator.email, verified=True, primary=True)
    page = desktop_context.new_page()
    traffic = record_traffic(page)
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Email").fill(coordinator.email)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")

    page.goto(f"{live_server.url}/admin/communities/invitation/")
    page.get_by_role("link", name="Import members").click()
    axe_check_admin(page, traffic)

    def upload(dry_run: bool) -> str:
        page.get_by_label("Community").select_option(label=community.name)
        page.get_by_label("Membership list (CSV)").set_input_files(str(membership_list))
        page.get_by_label("Dry run", exact=False).set_checked(dry_run)
        page.get_by_role("button", name="Check or import the list").click()
        return page.get_by_role("status").inner_text()

    report = upload(dry_run=True)
    assert "Dry run: nothing was changed" in report
    assert "900 would be invited by email, 100 would be added for a letter" in report
    assert "Line 1002: no email address and no postal address" in report
    assert "Line 1003: the same person as line 2" in report
    assert not Invitation.objects.exists() and not mailbox.messages()
    axe_check_admin(page, traffic)
    screenshot(page, "members-import-dry-run")

    report = upload(dry_run=False)
    assert "900 were invited by email, 100 were added for a letter" in report
    deadline = time.monotonic() + 120
    while len(mailbox.messages()) < 900 and time.monotonic() < deadline:
        time.sleep(0.5)
    invited = {message["To"] for message in mailbox.messages()}
    assert (
        len(mailbox.messages()) == 900
        and "member1@union.test" in invited
        and "member10@union.test" not in invited
    )
    assert Invitation.objects.filter(channel="post", sent_at=None).count() == 100

    report = upload(dry_run=False)
    assert "0 were invited by email, 0 were added for a letter, 1000 unchanged" in report
    time.sleep(1)
    assert len(mailbox.messages()) == 900 and Invitation.objects.count() == PEOPLE
    # The admin pages name no icon, so the browser's own guess at /favicon.ico is the one allowed miss.
    assert [failure for failure in traffic.failures if not failure.endswith("/favicon.ico")] == []
    assert [error for error in traffic.console_errors if "404 (Not Found)" not in error] == []
    assert traffic.external() == []
