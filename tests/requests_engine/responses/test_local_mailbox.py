"""The embedded default writes each email as a .eml file; a coordinator adds a controller's reply saved as
.eml in the admin, and it threads to its batch as if the mailbox poller had read it."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from requests_engine.models import Batch, InboundMessage, RequestEvent
from tests.requests_engine.dispatch.test_batches import (  # noqa: F401
    LAUNCH,
    acme,
    campaign,
    cast,
    fast_passwords,
    globex,
    launch,
    launch_day,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def eml_dir(settings, tmp_path):
    settings.EMAIL_BACKEND = "core.mail.EmlDirectoryBackend"
    settings.EMAIL_DIRECTORY = str(tmp_path / "mail")
    return tmp_path / "mail"


def read_all(folder) -> list[EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=default_policy) for p in sorted(folder.glob("*.eml"))
    ]


def answer(letter: EmailMessage, text: str) -> bytes:
    reply = EmailMessage()
    reply["From"] = "Acme Privacy <dpo@acme.test>"
    reply["To"] = "community@community.test"  # not the Reply-To: threading must come from In-Reply-To
    reply["Subject"] = "Re: " + letter["Subject"]
    reply["Date"] = format_datetime(timezone.now())
    reply["Message-ID"] = "<answer-1@acme.test>"
    reply["In-Reply-To"] = letter["Message-ID"]
    reply.set_content(text)
    return reply.as_bytes()


def test_a_dispatched_letter_lands_as_an_eml_file_and_an_uploaded_reply_threads_to_its_batch(
    launch_day,
    campaign,
    cast,
    acme,
    coordinator,
    coordinator_actor,
    eml_dir,
    client,
    django_capture_on_commit_callbacks,
):
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)
    batch = Batch.objects.get(campaign=campaign, controller=acme)
    [letter] = [m for m in read_all(eml_dir) if m["To"] == "privacy@acme.test"]
    names = {part.get_filename() for part in letter.iter_attachments()}
    assert names == {
        f"letter-{batch.reference}.pdf",
        f"manifest-{batch.reference}.csv",
        f"authorities-{batch.reference}.zip",
    }

    client.force_login(coordinator)
    url = reverse("admin:requests_engine_inboundmessage_upload")
    assert (
        "Add a reply from an .eml file"
        in client.get(reverse("admin:requests_engine_inboundmessage_changelist")).content.decode()
    )
    raw = answer(letter, "We have your letter and will answer within the month.")

    response = client.post(url, {"eml": SimpleUploadedFile("reply.eml", raw)}, follow=True)
    assert "matched and recorded" in response.content.decode()
    stored = InboundMessage.objects.get()
    assert (stored.status, stored.batch, stored.matched_by) == ("matched", batch, "in-reply-to")
    [event] = RequestEvent.objects.filter(kind="batch.reply_received")
    assert event.batch == batch and "within the month" in event.payload["excerpt"]

    again = client.post(url, {"eml": SimpleUploadedFile("reply.eml", raw)}, follow=True)
    assert "already added" in again.content.decode() and InboundMessage.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "The submitted file is empty."),
        (b"just some text\nwith lines\n", "not an email saved as .eml"),
    ],
)
def test_a_file_that_is_not_an_email_is_refused_with_a_reason(client, coordinator, content, error):
    client.force_login(coordinator)
    response = client.post(
        reverse("admin:requests_engine_inboundmessage_upload"), {"eml": SimpleUploadedFile("x.eml", content)}
    )
    assert response.status_code == 200 and error in response.content.decode()
    assert not InboundMessage.objects.exists()


def test_a_member_cannot_add_replies(client, member):
    client.force_login(member.user)
    response = client.get(reverse("admin:requests_engine_inboundmessage_upload"))
    assert response.status_code == 302  # to the sign-in page: not staff
