import re

import pytest

from core.models import OutboundMessage


@pytest.mark.django_db
def test_sign_up_sends_the_verification_email_through_the_outbox(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/signup/",
            {
                "email": "new@example.test",
                "password1": "a-long-Passphrase-9",
                "password2": "a-long-Passphrase-9",
            },
        )
    assert response.status_code == 302
    row = OutboundMessage.objects.get(purpose="account.email_confirmation_signup")
    assert row.status == "sent" and row.to == ["new@example.test"]
    assert len(mailoutbox) == 1 and re.search(r"/accounts/confirm-email/[^/\s]+/", mailoutbox[0].body)
