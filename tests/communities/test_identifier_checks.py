"""Checking the email addresses members give: a link emailed to each, used once, valid for a week, and
documents that say exactly what was checked."""

import datetime as dt
import re

import pytest
import time_machine
from allauth.account.models import EmailAddress

from communities import identifier_checks
from communities.models import Identifier
from communities.services import identifiers_save

pytestmark = pytest.mark.django_db


def give(member, controller, *addresses):
    return identifiers_save(
        member=member,
        entries=[(controller.pk, Identifier.Kind.EMAIL, f"Email {n}", a) for n, a in enumerate(addresses)],
    )


def link_in(mailbox, address):
    [email] = [m for m in mailbox.messages() if address in m["To"]]
    body = email.get_body(("plain",)).get_content()
    return re.search(r"http://\S+/identifiers/check/\S+/", body).group(0)


def test_an_address_given_is_emailed_a_link_that_checks_it_once(
    client, member, controller, mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        give(member, controller, "ada.reader@mail.test")
    link = link_in(mailbox, "ada.reader@mail.test")
    identifier = member.identifiers.get()
    assert identifier.verification_sent_at and not identifier.verified_at
    assert identifier.checked == "stated by the member"

    path = link.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path)  # opening it asks; a mail scanner's GET checks nothing
    assert page.status_code == 200 and b"Is this address yours?" in page.content
    assert not member.identifiers.get().verified_at

    client.post("/" + path)
    identifier = member.identifiers.get()
    assert identifier.verified_by == "link" and identifier.checked.startswith("verified by a link sent to it")
    first = identifier.verified_at

    again = client.post("/" + path, follow=True)  # used: says so, changes nothing
    assert b"This address is checked" in again.content
    assert member.identifiers.get().verified_at == first


def test_an_expired_or_forged_link_checks_nothing(client, member, controller):
    give(member, controller, "ada.reader@mail.test")
    token = identifier_checks.check_token(member=member, address="ada.reader@mail.test")
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=8)):
        expired = client.post(f"/identifiers/check/{token}/")
    forged = client.post(f"/identifiers/check/{token[:-3]}abc/")
    assert expired.status_code == 400 and b"This link has expired" in expired.content
    assert forged.status_code == 400 and b"This link is not valid" in forged.content
    assert not member.identifiers.get().verified_at


def test_a_link_stops_working_when_the_address_is_changed(client, member, controller):
    give(member, controller, "old@mail.test")
    token = identifier_checks.check_token(member=member, address="old@mail.test")
    give(member, controller, "new@mail.test")
    page = client.post(f"/identifiers/check/{token}/")
    assert page.status_code == 400 and b"no longer one of your identifiers" in page.content
    assert not member.identifiers.get().verified_at


def test_a_checked_address_stays_checked_when_saved_again_and_the_login_address_is_checked_already(
    member, controller
):
    EmailAddress.objects.create(user=member.user, email=member.user.email, verified=True, primary=True)
    give(member, controller, "ada.reader@mail.test", member.user.email)
    identifier_checks.check_link_use(
        identifier_checks.check_token(member=member, address="ada.reader@mail.test")
    )
    give(member, controller, "Ada.Reader@mail.test", member.user.email)
    reader, login = member.identifiers.order_by("label")
    assert reader.verified_by == "link"
    assert login.verified_by == "login" and "login address" in login.checked
    assert identifier_checks.check_links_send(member_id=member.pk) == 0  # nothing left to check
