"""The client's address behind the reverse proxy: one helper, used by rate limits and signature evidence."""

import datetime as dt

import pytest
import time_machine
from django.test import RequestFactory

from core.client_ip import client_ip
from tests.factories import verified_user

PROXY = "10.0.0.2"


def from_proxy(forwarded_for: str):
    return RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)


def test_without_a_proxy_the_connections_address_is_the_clients(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    assert client_ip(from_proxy("203.0.113.9")) == PROXY  # a header nobody vouches for is ignored


def test_behind_one_proxy_the_address_it_appended_is_the_clients(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    assert client_ip(from_proxy("203.0.113.9")) == "203.0.113.9"
    # A client cannot pass itself off as another: only the entry the trusted proxy added counts.
    assert client_ip(from_proxy("198.51.100.1, 203.0.113.9")) == "203.0.113.9"


def test_a_header_that_does_not_match_the_proxies_gives_no_address_rather_than_a_wrong_one(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2
    assert client_ip(from_proxy("203.0.113.9")) is None


@pytest.mark.django_db
def test_failed_logins_lock_only_the_account_not_everyone_behind_the_proxy(settings, client):
    # Before: every client shared the proxy's address, so 11 failures for one account locked out all users.
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    verified_user("target@example.test")
    verified_user("bystander@example.test")

    def login(email, password, ip):
        return client.post(
            "/accounts/login/", {"login": email, "password": password}, HTTP_X_FORWARDED_FOR=ip
        )

    for attempt in range(12):
        login("target@example.test", "wrong", f"198.51.100.{attempt}")  # a spread-out attack on one account
    locked = login("target@example.test", "pw-correct-horse-7", "203.0.113.50")
    assert locked.status_code == 429 or "Too many failed login attempts" in locked.content.decode()
    other = login("bystander@example.test", "pw-correct-horse-7", PROXY)
    assert other.status_code == 302  # another member behind the same proxy signs in


@pytest.mark.django_db
def test_a_members_session_ends_when_left_unused(settings, client):
    settings.SESSION_IDLE_MINUTES = 120
    user = verified_user("idle@example.test")
    start = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        client.force_login(user)
        client.get("/accounts/email/")
    with time_machine.travel(start + dt.timedelta(minutes=119), tick=False):
        assert client.get("/accounts/email/").status_code == 200
    with time_machine.travel(start + dt.timedelta(minutes=240), tick=False):
        assert client.get("/accounts/email/").status_code == 302  # to the login page
