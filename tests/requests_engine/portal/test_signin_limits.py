"""Asking for portal sign-in links: the same answer for known and unknown addresses, sent from a task,
rate-limited per client and per address; only the newest link works; portal sessions end when idle or
when the contact is deactivated."""

import datetime as dt
import re

import pytest
import time_machine

from requests_engine.models import ControllerContact

pytestmark = pytest.mark.django_db
KNOWN = "dpo@acme.test"


@pytest.fixture
def contact(controller):
    return ControllerContact.objects.create(controller=controller, email=KNOWN, name="Dee")


def ask(client, email, ip="203.0.113.7"):
    return client.post("/respond/", {"email": email}, REMOTE_ADDR=ip)


def without_csrf(page: bytes) -> str:
    """The page without its CSRF tokens and CSP nonces, which differ on every response by design."""
    text = re.sub(r'"X-CSRFToken": "[^"]+"', "", page.decode())
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    return re.sub(r'nonce="[^"]+"', "", text)


def links(mailoutbox) -> list[str]:
    return [re.search(r"/respond/sign-in/(\S+)/", m.body).group(1) for m in mailoutbox]


def test_known_and_unknown_addresses_get_the_same_page_and_only_the_known_one_an_email(
    client, contact, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued_known:
        known = ask(client, KNOWN)
    with django_capture_on_commit_callbacks() as queued_unknown:
        unknown = ask(client, "nobody@nowhere.test")
    assert (known.status_code, unknown.status_code) == (200, 200)
    assert without_csrf(known.content) == without_csrf(unknown.content)
    # The page only queues the lookup and the email: nothing about the address is done while it waits.
    assert len(queued_known) == len(queued_unknown) == 1 and mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        for callback in [*queued_known, *queued_unknown]:
            callback()
    assert [m.to for m in mailoutbox] == [[KNOWN]]


def test_one_address_is_sent_three_links_in_a_quarter_of_an_hour_and_then_the_same_page(
    client, contact, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        pages = [ask(client, KNOWN, ip=f"203.0.113.{n}") for n in range(5)]
    assert {p.status_code for p in pages} == {200} and len(mailoutbox) == 3
    assert len({without_csrf(p.content) for p in pages}) == 1


def test_one_client_asking_too_often_is_told_to_wait(client, contact, mailoutbox):
    for n in range(20):
        assert ask(client, f"someone{n}@example.test").status_code == 200
    refused = ask(client, KNOWN)
    assert refused.status_code == 429 and "Too many sign-in links" in refused.content.decode()
    assert ask(client, KNOWN, ip="198.51.100.1").status_code == 200  # another client is not held up


def test_a_new_link_replaces_the_older_one(client, contact, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ask(client, KNOWN)
        ask(client, KNOWN)
    older, newer = links(mailoutbox)
    assert client.post(f"/respond/sign-in/{older}/").status_code == 410
    assert client.post(f"/respond/sign-in/{newer}/").status_code == 302


def signed_in(client, mailoutbox, capture):
    with capture(execute=True):
        ask(client, KNOWN)
    assert client.post(f"/respond/sign-in/{links(mailoutbox)[-1]}/").status_code == 302


def test_a_portal_session_ends_after_thirty_idle_minutes(
    client, contact, mailoutbox, django_capture_on_commit_callbacks
):
    start = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        signed_in(client, mailoutbox, django_capture_on_commit_callbacks)
    with time_machine.travel(start + dt.timedelta(minutes=29), tick=False):
        assert client.get("/respond/requests/").status_code == 200  # in use: the idle time starts again
    with time_machine.travel(start + dt.timedelta(minutes=58), tick=False):
        assert client.get("/respond/requests/").status_code == 200
    with time_machine.travel(start + dt.timedelta(minutes=89), tick=False):
        assert client.get("/respond/requests/").status_code == 302
        assert client.get("/respond/requests/").status_code == 302  # ended, not only refused once


def test_a_deactivated_contacts_session_ends_at_once(
    client, contact, mailoutbox, django_capture_on_commit_callbacks
):
    signed_in(client, mailoutbox, django_capture_on_commit_callbacks)
    ControllerContact.objects.filter(pk=contact.pk).update(is_active=False)
    assert client.get("/respond/requests/").status_code == 302
    ControllerContact.objects.filter(pk=contact.pk).update(is_active=True)
    assert client.get("/respond/requests/").status_code == 302  # reactivating does not revive the session
