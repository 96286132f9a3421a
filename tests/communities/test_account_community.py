"""Account pages and account emails speak for the community: its name and contact address on every page,
in every email, and as the email's sender (on the SMTP envelope too)."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from allauth.mfa.totp.internal.auth import yield_hotp_counters_from_time as counters
from django.contrib.auth import get_user_model

from communities.models import Community, Member
from core.models import OutboundMessage
from tests.factories import make_member

PASSWORD = "a-long-Passphrase-9"


@pytest.fixture
def unions(db):
    return Community.objects.create(
        slug="unions",
        name="Smith, Jones & Co Union",
        purpose="Ask employers what they hold on us.",
        contact_email="help@union.test",
    )


def _received(mailbox) -> list[tuple[str, EmailMessage]]:
    return [
        (envelope.mail_from, message_from_bytes(envelope.content, policy=policy.default))
        for envelope in mailbox.received
    ]


def _only_email(mailbox) -> tuple[str, EmailMessage]:
    received = _received(mailbox)
    assert len(received) == 1, [m["Subject"] for _, m in received]
    return received[0]


def _text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def assert_speaks_for(mailbox, community, *, purpose: str) -> str:
    sender, message = _only_email(mailbox)
    assert sender == community.contact_email
    assert message["From"].addresses[0].display_name == community.name
    assert message["From"].addresses[0].addr_spec == community.contact_email
    assert message["Subject"].startswith(f"{community.name}: ")
    body = _text(message)
    assert community.name in body and community.contact_email in body
    assert "127.0.0.1:8000!" not in body and "Data community" not in body
    assert OutboundMessage.objects.get(purpose=purpose).status == "sent"
    return body


def _verified_user(email: str, password: str = PASSWORD):
    user = get_user_model().objects.create_user(email, email, password)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def test_sign_up_page_carries_the_only_communitys_name_and_contact(client, community):
    response = client.get("/accounts/signup/")
    page = response.content.decode()
    assert "<title>" in page and f"– {community.name}</title>" in page
    assert community.contact_email in page


def test_with_several_communities_the_join_link_decides_the_account_pages(client, community, unions):
    client.get(f"/join/{unions.slug}/")
    for url in ("/accounts/signup/", "/accounts/login/", "/accounts/password/reset/"):
        page = client.get(url).content.decode()
        assert "Smith, Jones &amp; Co Union" in page and unions.contact_email in page, url
        assert community.contact_email not in page, url


def test_with_several_communities_and_no_join_link_the_pages_carry_the_installations_name(
    client, community, unions, settings
):
    settings.SITE_NAME = "Our host"
    page = client.get("/accounts/login/").content.decode()
    assert "– Our host</title>" in page and unions.contact_email not in page


def test_the_sign_up_verification_email_comes_from_the_join_links_community(
    client, community, unions, mailbox, django_capture_on_commit_callbacks
):
    client.get(f"/join/{unions.slug}/")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/accounts/signup/?next=/join/{unions.slug}/",
            {"email": "new@example.test", "password1": PASSWORD, "password2": PASSWORD},
        )
    assert response.status_code == 302
    body = assert_speaks_for(mailbox, unions, purpose="account.email_confirmation_signup")
    assert re.search(r"/accounts/confirm-email/[^/\s]+/", body)
    # The From header quotes the name's comma, so the outbox and the mail server read one address.
    assert OutboundMessage.objects.get().from_email == '"Smith, Jones & Co Union" <help@union.test>'


def test_the_join_links_next_decides_even_without_the_session(
    client, community, unions, mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/accounts/signup/?next=/join/{unions.slug}/",
            {"email": "new@example.test", "password1": PASSWORD, "password2": PASSWORD},
        )
    assert_speaks_for(mailbox, unions, purpose="account.email_confirmation_signup")


def test_signing_up_again_with_a_members_address_tells_them_from_their_community(
    client, community, unions, mailbox, django_capture_on_commit_callbacks
):
    member = make_member(unions, email="ada@union.test")
    EmailAddress.objects.create(user=member.user, email="ada@union.test", primary=True, verified=True)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/", {"email": "ada@union.test", "password1": PASSWORD, "password2": PASSWORD}
        )
    body = assert_speaks_for(mailbox, unions, purpose="account.account_already_exists")
    assert "/accounts/password/reset/" in body


def test_a_password_reset_email_comes_from_the_members_community(
    client, community, unions, mailbox, django_capture_on_commit_callbacks
):
    member = make_member(unions, email="ada@union.test")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "ada@union.test"})
    body = assert_speaks_for(mailbox, unions, purpose="account.password_reset_key")
    assert OutboundMessage.objects.get().subject == "Smith, Jones & Co Union: Reset your password"
    assert "/accounts/password/reset/key/" in body
    assert member.user.email == "ada@union.test"


def test_a_reset_asked_for_an_unknown_address_comes_from_the_join_links_community(
    client, community, unions, mailbox, django_capture_on_commit_callbacks
):
    client.get(f"/join/{unions.slug}/")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "nobody@example.test"})
    assert_speaks_for(mailbox, unions, purpose="account.unknown_account")


def _sign_in(client, email: str) -> None:
    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()


def test_a_password_change_is_told_to_the_member_from_their_community(
    client, community, unions, mailbox, django_capture_on_commit_callbacks
):
    user = _verified_user("ada@union.test")
    Member.objects.create(user=user, community=unions, full_name="Ada Lovelace")
    _sign_in(client, "ada@union.test")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/password/change/",
            {
                "oldpassword": PASSWORD,
                "password1": "another-Passphrase-7",
                "password2": "another-Passphrase-7",
            },
        )
    assert response.status_code == 302
    assert_speaks_for(mailbox, unions, purpose="account.password_changed")


def test_turning_on_two_step_sign_in_is_told_from_the_only_community(
    client, community, mailbox, django_capture_on_commit_callbacks
):
    _verified_user("ada@community.test")
    _sign_in(client, "ada@community.test")
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    assert community.name in page and community.contact_email in page
    secret = client.session[SECRET_SESSION_KEY]
    now = list(counters())
    code = format_hotp_value(hotp_value(secret, now[len(now) // 2]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": code})
    assert response.status_code == 302, response.content.decode()
    sender, message = _received(mailbox)[0]
    assert sender == community.contact_email and message["Subject"].startswith(f"{community.name}: ")
    assert community.contact_email in _text(message)
    assert OutboundMessage.objects.filter(purpose="account.totp_activated", status="sent").exists()


def test_the_sign_up_error_summary_names_each_field_and_links_to_it(client, community):
    response = client.post("/accounts/signup/", {"email": "", "password1": "", "password2": ""})
    page = response.content.decode()
    summary = page[page.index("govuk-error-summary") : page.index("</ul>", page.index("govuk-error-summary"))]
    links = dict(re.findall(r'<a href="#([^"]+)">([^<]+)</a>', summary))
    assert set(links) == {"id_email", "id_password1", "id_password2"}
    assert links["id_email"].startswith("Email: ")
    assert links["id_password1"].startswith("Password: ")
    assert links["id_password2"].startswith("Password (again): ")
    for anchor in links:
        assert f'id="{anchor}"' in page


def test_the_sign_up_error_summary_names_the_field_of_a_mismatch(client, community):
    response = client.post(
        "/accounts/signup/", {"email": "new@example.test", "password1": PASSWORD, "password2": PASSWORD + "x"}
    )
    page = response.content.decode()
    assert re.search(r'<a href="#id_password2">Password \(again\): [^<]+</a>', page)
