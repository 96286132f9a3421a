"""A confirmation link that was used, or has expired, says so and offers the way forward."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from allauth.account.models import EmailAddress

from core.models import OutboundMessage

PASSWORD = "a-long-Passphrase-9"


@pytest.fixture
def link(client, community, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/", {"email": "new@example.test", "password1": PASSWORD, "password2": PASSWORD}
        )
    body = OutboundMessage.objects.get(purpose="account.email_confirmation_signup").body_text
    return re.search(r"/accounts/confirm-email/[^/\s]+/", body).group(0)


def test_a_used_link_says_so_and_offers_to_sign_in(client, link, community):
    assert client.post(link).status_code == 302
    assert EmailAddress.objects.get(email="new@example.test").verified
    client.logout()

    page = client.get(link).content.decode()

    assert "This link has already been used" in page and "Your email address is confirmed" in page
    assert re.search(r'<a class="govuk-button"[^>]*href="/accounts/login/">Sign in</a>', page)
    assert community.name in page and community.contact_email in page


def test_an_expired_link_offers_a_new_one_sent_to_the_same_address(
    client, link, community, django_capture_on_commit_callbacks
):
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=10)):
        page = client.get(link).content.decode()
        assert "This link no longer works" in page and "Send me a new link" in page
        assert "/accounts/login/" in page
        new_link_url = re.search(r'action="([^"]+/new-link/)"', page).group(1)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(new_link_url)
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    sent = OutboundMessage.objects.filter(purpose="account.email_confirmation", to=["new@example.test"])
    assert sent.count() == 1 and sent.get().status == "sent"
    fresh = re.search(r"/accounts/confirm-email/[^/\s]+/", sent.get().body_text).group(0)
    assert client.post(fresh).status_code == 302
    assert EmailAddress.objects.get(email="new@example.test").verified


def test_a_mangled_link_offers_to_sign_in(client, link):
    page = client.get(link[:-6] + "XXXXX/").content.decode()
    assert "This link no longer works" in page and "/accounts/login/" in page
