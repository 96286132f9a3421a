"""Sending a launched campaign by email, against a real SMTP server on loopback (aiosmtpd): one collective
letter per batch (sealed PDF, manifest, mandates), or one email per request for `individual` controllers;
requests become sent on acceptance, failed on a refusal, and go again after the address is fixed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import zipfile
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from communities.models import Authority, Identifier, Member
from core import outbox
from core.models import OutboundMessage
from core.pdf import sha256_hex, verify_seal
from core.tasks import send_outbound_message
from requests_engine import letters
from requests_engine.campaigns import launch as campaign_launching
from requests_engine.dispatch import batches
from requests_engine.events import chain_breaks
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, Confirmation, Controller, DataRightsRequest, RequestEvent
from tests.factories import erasure_at_once, make_campaign, make_mandate, make_member
from tests.smtp import Mailbox, free_port, use_smtp

pytestmark = pytest.mark.django_db

# A Friday; one month later is Monday 20 April 2026 (England and Wales).
LAUNCH = dt.datetime(2026, 3, 20, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def launch_day(time_machine):
    """Request it first: members, mandates and the launch all happen on LAUNCH day."""
    time_machine.move_to(LAUNCH)
    return time_machine


@pytest.fixture
def acme(controller):
    controller.required_identifiers = [
        {"desc": "Name", "type": "name", "optional": False},
        {"desc": "Email", "type": "email", "optional": False},
    ]
    controller.save()
    return controller


@pytest.fixture
def globex(db):
    return Controller.objects.create(
        slug="globex",
        name="Globex plc",
        email="dpo@globex.test",
        required_identifiers=[{"desc": "Phone", "type": "phone"}],
    )


@pytest.fixture
def cast(community, acme, globex):
    """Ada (access and erasure, everywhere) and Mary (access, Acme only), with identifiers for each
    controller and general ones."""
    ada = make_member(community, "Ada Lovelace")
    make_mandate(ada, rights=["access", "erasure"])
    Identifier.objects.create(member=ada, controller=acme, kind="email", value="ada.shop@mail.test")
    Identifier.objects.create(member=ada, controller=globex, kind="email", value="ada.globex@mail.test")
    Identifier.objects.create(member=ada, kind="email", value="ada.general@mail.test")
    Identifier.objects.create(member=ada, kind="phone", value="+44 7700 900123")
    mary = make_member(community, "Mary Shelley")
    make_mandate(mary, rights=["access"], all_controllers=False, controllers=[acme])
    Identifier.objects.create(member=mary, controller=acme, kind="account_id", value="ACME-0042")
    return {"ada": ada, "mary": mary}


@pytest.fixture
def campaign(community, acme, globex, coordinator):
    campaign = make_campaign(
        community,
        name="Training data",
        rights=["access", "erasure"],
        created_by=coordinator,
        purpose="We want to know whether our writing was used to train AI models.",
        controllers=[acme, globex],
    )
    return campaign


def launch(campaign, actor, capture):
    # The letters here carry every right at once: members asked for their erasure not to wait for the
    # access answer (test_sequencing covers the wait).
    for member in Member.objects.filter(community=campaign.community):
        erasure_at_once(campaign, member)
    with capture(execute=True):
        campaign_launching.campaign_launch(campaign_id=campaign.pk, actor=actor)
        batches.campaign_dispatch_queue(campaign_id=campaign.pk)


def addressed_to(mailbox: Mailbox, address: str) -> list:
    return [m for m in mailbox.messages() if address in m["To"]]


def attachments(message) -> dict[str, bytes]:
    return {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True).stdout
    return " ".join(text.decode().split())


def manifest_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_a_launched_campaign_sends_each_controller_one_letter_with_manifest_and_mandates(
    launch_day,
    campaign,
    cast,
    acme,
    globex,
    coordinator_actor,
    mailbox,
    django_capture_on_commit_callbacks,
    tmp_path,
):
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    batch = Batch.objects.get(campaign=campaign, controller=acme, after_access=False)
    [letter] = addressed_to(mailbox, "privacy@acme.test")
    assert batch.reference in letter["Subject"]
    assert letter["Reply-To"] == f"reply+{batch.reply_token}@community.localhost"
    files = attachments(letter)
    assert set(files) == {
        f"letter-{batch.reference}.pdf",
        f"manifest-{batch.reference}.csv",
        f"authorities-{batch.reference}.zip",
    }

    pdf = files[f"letter-{batch.reference}.pdf"]
    assert verify_seal(pdf).ok
    text = pdf_text(pdf, tmp_path)
    compact = "".join(text.split())  # long addresses wrap across lines
    for address in [
        f"{django_settings.SITE_URL}/respond/",
        f"{django_settings.SITE_URL}/api/v1/",
        f"reply+{batch.reply_token}@community.localhost",
    ]:
        assert address in compact, address
    for phrase in [
        "Access to personal data (Article 15 UK GDPR)",
        "Article 15(1)(c)",
        "Article 15(2)",
        "Erasure (Article 17 UK GDPR)",
        "Article 19",
        "Article 17(2)",
        "within one month of receiving it",
        "Article 12(3)",
        "the month ends on 20 April 2026",
        "response portal",
        "c@community.test",
        campaign.reference,
        "written authority",
        "2 members",
    ]:
        assert phrase in text, phrase
    assert "train, fine-tune" not in text  # Acme is no AI developer

    requests = DataRightsRequest.objects.filter(batch=batch).select_related("member", "mandate")
    rows = manifest_rows(files[f"manifest-{batch.reference}.csv"])
    assert sorted((r["reference"], r["member_name"], r["right"]) for r in rows) == sorted(
        (q.reference, q.member.full_name, q.get_right_display()) for q in requests
    )
    ada_rows = [r for r in rows if r["member_name"] == "Ada Lovelace"]
    assert {r["identifiers"] for r in ada_rows} == {
        "Email address used there: ada.shop@mail.test (stated by the member); "
        "Email address used there: ada.general@mail.test (stated by the member)"
    }
    [mary_row] = [r for r in rows if r["member_name"] == "Mary Shelley"]
    assert mary_row["identifiers"] == "Account or customer number: ACME-0042 (stated by the member)"
    assert mary_row["mandate_check_url"].startswith(f"{django_settings.SITE_URL}/verify/")

    with zipfile.ZipFile(io.BytesIO(files[f"authorities-{batch.reference}.zip"])) as archive:
        mandates = {name: archive.read(name) for name in archive.namelist()}
    assert set(mandates) == {f"authority-{q.mandate.reference}.pdf" for q in requests}
    assert len(mandates) == 2 and all(verify_seal(pdf).ok for pdf in mandates.values())

    # Globex sees Ada's Globex address and the phone number it asks for, nothing meant for Acme.
    globex_batch = Batch.objects.get(campaign=campaign, controller=globex, after_access=False)
    [globex_letter] = addressed_to(mailbox, "dpo@globex.test")
    globex_files = attachments(globex_letter)
    globex_manifest = globex_files[f"manifest-{globex_batch.reference}.csv"].decode("utf-8-sig")
    assert "ada.globex@mail.test" in globex_manifest and "+44 7700 900123" in globex_manifest
    for private in ("ada.shop@mail.test", "ada.general@mail.test", "ACME-0042", "Mary Shelley"):
        assert private not in globex_manifest
        assert private not in globex_letter.get_body(("plain",)).get_content()
    for private in ("ada.globex@mail.test", "+44 7700 900123"):
        assert private not in files[f"manifest-{batch.reference}.csv"].decode("utf-8-sig")

    # On acceptance every request is sent, received that day, and the clock runs from it.
    for request in DataRightsRequest.objects.filter(campaign=campaign):
        letter_for = letter if request.batch_id == batch.pk else globex_letter
        assert request.state == "sent"
        assert request.received_on == dt.date(2026, 3, 20)
        assert request.due_on == dt.date(2026, 4, 20)
        assert request.message_id == letter_for["Message-ID"]
    batch.refresh_from_db()
    assert batch.state == "sent" and batch.message_id == letter["Message-ID"]
    assert batch.letter_sha256 == sha256_hex(pdf) == sha256_hex(batch.letter_pdf.read())
    assert manifest_rows(batch.manifest.read()) == rows
    row = OutboundMessage.objects.get(message_id=letter["Message-ID"])
    assert (row.subject_type, row.subject_id, row.purpose) == ("batch", str(batch.pk), "batch.letter")
    assert row.on_sent_task == "requests_engine.tasks.record_delivery_accepted"
    assert list(RequestEvent.objects.filter(batch=batch).values_list("kind", flat=True)) == [
        "batch.sending",
        "batch.sent",
    ]
    assert chain_breaks() == []


def test_dispatching_or_recording_acceptance_again_changes_nothing(
    campaign, cast, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)
    sent, events = len(mailbox.received), RequestEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        assert batches.campaign_dispatch_queue(campaign_id=campaign.pk) == 0
        for batch in Batch.objects.filter(campaign=campaign):
            assert batches.batch_dispatch(batch_id=batch.pk) == "already sent"
        for message in OutboundMessage.objects.filter(purpose="batch.letter"):
            assert batches.delivery_accepted_record(message_ids=[message.pk]) == 0
        assert batches.dispatch_sweep(older_than=timedelta(0)) == {"outcomes": 0, "restarted": 0}

    assert (len(mailbox.received), RequestEvent.objects.count()) == (sent, events)


def test_the_send_decision_is_committed_before_anything_is_sent(
    campaign, cast, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    campaign_launching.campaign_launch(campaign_id=campaign.pk, actor=coordinator_actor)
    batch = Batch.objects.get(campaign=campaign, controller=acme, after_access=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batches.batch_dispatch(batch_id=batch.pk)

    batch.refresh_from_db()
    assert batch.state == "sending"
    assert OutboundMessage.objects.get(purpose="batch.letter").status == "queued"
    assert not addressed_to(mailbox, "privacy@acme.test")
    assert set(DataRightsRequest.objects.filter(batch=batch).values_list("state", flat=True)) == {"queued"}
    assert callbacks  # the send task is queued only once this commits


def test_an_individual_controller_gets_one_email_per_request_spread_at_its_rate(
    launch_day, community, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    acme.individual_requests = True
    acme.send_rate_per_minute = 30  # one every two seconds
    acme.save()
    members = [make_member(community, f"Member{i} Writer", f"m{i}@community.test") for i in range(3)]
    for member in members:
        make_mandate(member, rights=["access", "objection"])
        Identifier.objects.create(
            member=member, controller=acme, kind="email", value=f"{member.pk}@acme.test"
        )
    campaign = make_campaign(
        community, name="Objections", rights=["access", "objection"], purpose="My novels.", controllers=[acme]
    )
    # Each member wrote their own situation when confirming the objection (Art 21(1)).
    for member in members:
        Confirmation.objects.create(
            campaign=campaign,
            member=member,
            state="confirmed",
            objection_situation=f"{member.full_name}'s novels are how they earn a living.",
        )
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    rows = list(OutboundMessage.objects.filter(purpose="request.letter").order_by("not_before"))
    assert len(rows) == 6 == DataRightsRequest.objects.filter(campaign=campaign).count()
    assert [b.not_before - a.not_before for a, b in zip(rows, rows[1:], strict=False)] == [
        timedelta(seconds=2)
    ] * 5
    assert len(addressed_to(mailbox, "privacy@acme.test")) == 1  # the first one was due at once
    batch = Batch.objects.get(campaign=campaign)
    assert batch.state == "sending"

    launch_day.move_to(LAUNCH + timedelta(minutes=20))  # the sweeper sends rows that are due
    with django_capture_on_commit_callbacks(execute=True):
        outbox.requeue_stuck()

    emails = addressed_to(mailbox, "privacy@acme.test")
    assert len(emails) == 6
    for email in emails:
        request = DataRightsRequest.objects.select_related("member", "mandate").get(
            message_id=email["Message-ID"]
        )
        assert request.reference in email["Subject"]
        assert email["Reply-To"] == f"reply+{batch.reply_token}@community.localhost"
        assert list(attachments(email)) == [f"authority-{request.mandate.reference}.pdf"]
        body = email.get_body(("plain",)).get_content()
        assert request.member.full_name in body and f"{request.member.pk}@acme.test" in body
        others = [m for m in members if m != request.member]
        assert not any(m.full_name in body or f"{m.pk}@acme.test" in body for m in others)
        authority = Authority.objects.get(mandate=request.mandate, controller=request.controller)
        assert f"{django_settings.SITE_URL}/verify/{authority.token}/" in body
        assert "Article 12(3)" in body and f"{django_settings.SITE_URL}/respond/" in body
        assert request.state == "sent" and request.received_on == dt.date(2026, 3, 20)
    objection = DataRightsRequest.objects.filter(campaign=campaign, right="objection").first()
    objection_email = next(e for e in emails if e["Message-ID"] == objection.message_id)
    objection_text = objection_email.get_body(("plain",)).get_content()
    assert (
        f"in their words: “{objection.member.full_name}'s novels are how they earn a living.”"
        in objection_text
    )
    assert "Their particular situation: My novels." not in objection_text  # never the campaign's purpose
    batch.refresh_from_db()
    assert batch.state == "sent"
    assert chain_breaks() == []


def test_an_ai_developer_is_asked_about_training_sources_and_outputs(
    community, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    acme.categories = ["social media", "Artificial Intelligence"]
    acme.save()
    member = make_member(community)
    make_mandate(member, rights=["access", "objection", "erasure"])
    campaign = make_campaign(
        community,
        name="AI",
        rights=["access", "objection", "erasure"],
        purpose="My poems.",
        controllers=[acme],
    )
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    [letter] = addressed_to(mailbox, "privacy@acme.test")
    body = " ".join(letter.get_body(("plain",)).get_content().split())
    for phrase in [
        "used to train, fine-tune, test or evaluate any of your AI models",
        "from which sources you obtained it",
        "outputs of your systems that name or describe them",
        "object to the use of their personal data, and of works they made that contain it",
        "Article 21(1)",
        "particular situation, in their own words where they gave one, is in the manifest",
        "remove their data from your training datasets",
        "training, fine-tuning and evaluation datasets",
    ]:
        assert phrase in body, phrase


def test_every_right_has_its_own_section_citing_its_articles(
    community, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    rights = ["access", "portability", "erasure", "objection", "rectification", "restriction"]
    make_mandate(make_member(community), rights=rights)
    campaign = make_campaign(community, name="All", rights=rights, purpose="Our reasons.", controllers=[acme])
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    [letter] = addressed_to(mailbox, "privacy@acme.test")
    body = " ".join(letter.get_body(("plain",)).get_content().split())
    assert (
        "Rights exercised: Access (Art 15), Portability (Art 20), Erasure (Art 17), Objection (Art 21),"
        in body
    )
    for phrase in [
        "Access to personal data (Article 15 UK GDPR)",
        "Data portability (Article 20 UK GDPR)",
        "structured, commonly used and machine-readable format: CSV or JSON",
        "transmitted directly to another controller (Article 20(2))",
        "Erasure (Article 17 UK GDPR)",
        "the member asks for this under Article 19",
        "Objection (Article 21 UK GDPR)",
        "we object under Article 21(1)",
        "particular situation, in their own words where they gave one, is in the manifest",
        "compelling legitimate grounds",
        "Article 21(2)",
        "Rectification (Article 16 UK GDPR)",
        "Restriction of processing (Article 18 UK GDPR)",
        "Article 18(3)",
    ]:
        assert phrase in body, phrase
    assert "train" not in body  # no AI variant for an ordinary controller


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        (["AI"], True),
        (["machine learning"], True),
        (["Generative AI"], True),
        (["LLMs"], True),
        (["email marketing"], False),
        (["retail"], False),
        ([], False),
    ],
)
def test_which_controllers_count_as_ai_developers(categories, expected):
    assert letters.is_ai_developer(Controller(categories=categories)) is expected


class RefusingMailbox(Mailbox):
    """Refuses one address for good (550), as a server does for a mailbox that does not exist."""

    refused: str = "privacy@acme.test"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refused:
            return "550 5.1.1 No such mailbox"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def refusing_mailbox(settings):
    from aiosmtpd.controller import Controller as SMTPController

    box = RefusingMailbox()
    server = SMTPController(box, hostname="127.0.0.1", port=free_port())
    server.start()
    use_smtp(settings, server.port)
    yield box
    server.stop()


@pytest.mark.parametrize("individual", [False, True], ids=["collective", "individual"])
def test_a_refused_address_fails_the_requests_and_after_fixing_it_the_batch_goes_again(
    individual, community, acme, coordinator_actor, refusing_mailbox, django_capture_on_commit_callbacks
):
    acme.individual_requests = individual
    acme.send_rate_per_minute = 0  # no spreading: everything is due at once
    acme.save()
    for i in range(2):
        make_mandate(make_member(community, f"Writer{i} Person", f"w{i}@community.test"))
    campaign = make_campaign(community, name="Bounce", rights=["access"], purpose="x", controllers=[acme])
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    batch = Batch.objects.get(campaign=campaign)
    requests = DataRightsRequest.objects.filter(batch=batch)
    assert batch.state == "failed" and "550" in batch.last_error
    assert set(requests.values_list("state", flat=True)) == {"failed_delivery"}
    assert all("550" in r.delivery_error and "No such mailbox" in r.delivery_error for r in requests)
    first = set(OutboundMessage.objects.filter(status="failed").values_list("pk", flat=True))
    assert len(first) == (2 if individual else 1)
    assert not addressed_to(refusing_mailbox, "acme")

    pending = Batch.objects.create(
        campaign=make_campaign(community, name="Other", rights=["access"], purpose="x"),
        controller=acme,
    )
    with pytest.raises(RequestEngineError, match="only a batch whose delivery failed"):
        batches.batch_requeue(batch_id=pending.pk, actor=coordinator_actor)

    acme.email = "dpo@acme.test"  # the coordinator fixes the address
    acme.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert batches.batch_requeue(batch_id=batch.pk, actor=coordinator_actor) == 2

    emails = addressed_to(refusing_mailbox, "dpo@acme.test")
    assert len(emails) == (2 if individual else 1)
    new_ids = {e["Message-ID"] for e in emails}
    assert not new_ids & set(
        OutboundMessage.objects.filter(pk__in=first).values_list("message_id", flat=True)
    )
    assert set(requests.values_list("state", flat=True)) == {"sent"}
    assert set(requests.values_list("message_id", flat=True)) <= new_ids
    batch.refresh_from_db()
    assert batch.state == "sent" and batch.last_error == ""
    kinds = list(RequestEvent.objects.filter(request=requests[0]).values_list("kind", flat=True))
    assert kinds == ["request.delivery_failed", "request.requeued", "request.dispatched"]
    assert chain_breaks() == []


def test_a_controller_without_an_email_address_fails_the_batch_with_the_reason(
    campaign, cast, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    acme.email = ""
    acme.save()
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    batch = Batch.objects.get(campaign=campaign, controller=acme, after_access=False)
    assert batch.state == "failed" and "no usable email address" in batch.last_error
    assert set(DataRightsRequest.objects.filter(batch=batch).values_list("state", flat=True)) == {
        "failed_delivery"
    }
    with pytest.raises(RequestEngineError, match="working email address"):
        batches.batch_requeue(batch_id=batch.pk, actor=coordinator_actor)


def test_with_the_smtp_server_down_the_outbox_retries_and_no_request_is_lost(
    launch_day, campaign, cast, acme, coordinator_actor, mailbox, settings, django_capture_on_commit_callbacks
):
    port = settings.EMAIL_PORT
    use_smtp(settings, free_port())  # nothing listens there: connection refused
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)

    letters_out = OutboundMessage.objects.filter(purpose="batch.letter")
    assert {(m.status, m.attempts) for m in letters_out} == {("queued", 1)}
    assert all("ConnectionRefusedError" in m.last_error for m in letters_out)
    assert set(DataRightsRequest.objects.values_list("state", flat=True)) == {"queued"}
    assert set(Batch.objects.values_list("state", flat=True)) == {"sending"}
    assert batches.dispatch_sweep(older_than=timedelta(0)) == {"outcomes": 0, "restarted": 0}

    use_smtp(settings, port)  # the server is back
    launch_day.move_to(LAUNCH + timedelta(days=1, minutes=5))  # after the backoff, on the next day
    with django_capture_on_commit_callbacks(execute=True):
        for message in letters_out:
            send_outbound_message(message.pk)

    assert (
        len(addressed_to(mailbox, "privacy@acme.test")) == len(addressed_to(mailbox, "dpo@globex.test")) == 1
    )
    requests = DataRightsRequest.objects.all()
    assert set(requests.values_list("state", flat=True)) == {"sent"}
    # Received when the server finally accepted it, and the month runs from then.
    assert set(requests.values_list("received_on", "due_on")) == {
        (dt.date(2026, 3, 21), dt.date(2026, 4, 21))
    }
    assert set(Batch.objects.values_list("state", flat=True)) == {"sent"}


def test_the_sweep_applies_an_acceptance_whose_hook_was_lost_and_restarts_a_lost_dispatch(
    launch_day, campaign, cast, acme, globex, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    erasure_at_once(campaign, cast["ada"])  # every request in the first letters
    campaign_launching.campaign_launch(campaign_id=campaign.pk, actor=coordinator_actor)
    acme_batch = Batch.objects.get(campaign=campaign, controller=acme, after_access=False)
    with django_capture_on_commit_callbacks(execute=False):  # the send task is lost
        batches.batch_dispatch(batch_id=acme_batch.pk)
    [row] = OutboundMessage.objects.filter(purpose="batch.letter")
    with django_capture_on_commit_callbacks(execute=False):  # sent, then the worker dies: no hook
        assert outbox.send_message(row.pk)
    assert set(acme_batch.requests.values_list("state", flat=True)) == {"queued"}

    # Globex's dispatch task was lost altogether; too recent to restart at first.
    with django_capture_on_commit_callbacks(execute=True):
        assert batches.dispatch_sweep() == {"outcomes": 3, "restarted": 0}
    assert set(acme_batch.requests.values_list("state", flat=True)) == {"sent"}
    acme_batch.refresh_from_db()
    assert acme_batch.state == "sent"
    assert not addressed_to(mailbox, "dpo@globex.test")

    launch_day.move_to(LAUNCH + timedelta(minutes=16))
    with django_capture_on_commit_callbacks(execute=True):
        assert batches.dispatch_sweep() == {"outcomes": 0, "restarted": 1}
    assert len(addressed_to(mailbox, "dpo@globex.test")) == 1
    assert Batch.objects.get(campaign=campaign, controller=globex, after_access=False).state == "sent"
    assert timezone.localdate() == dt.date(2026, 3, 20)


def test_an_individual_dispatch_interrupted_between_chunks_resumes_without_sending_twice(
    community, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    acme.individual_requests = True
    acme.send_rate_per_minute = 0
    acme.save()
    for i in range(4):
        make_mandate(make_member(community, f"Writer{i} Person", f"w{i}@community.test"))
    campaign = make_campaign(community, name="Resume", rights=["access"], purpose="x", controllers=[acme])
    campaign_launching.campaign_launch(campaign_id=campaign.pk, actor=coordinator_actor)
    batch = Batch.objects.get(campaign=campaign)
    with django_capture_on_commit_callbacks(execute=False):  # the worker dies before anything is sent…
        batches.batch_dispatch(batch_id=batch.pk)
    # …and after writing only its first chunk: the other requests have no message yet.
    written = OutboundMessage.objects.filter(purpose="request.letter").order_by("pk")
    OutboundMessage.objects.filter(pk__in=[m.pk for m in written[2:]]).delete()
    assert Batch.objects.get(pk=batch.pk).state == "sending"

    with django_capture_on_commit_callbacks(execute=True):
        outbox.requeue_stuck(older_than=timedelta(0))  # the first chunk's send tasks were lost too
        assert batches.dispatch_sweep(older_than=timedelta(0)) == {"outcomes": 0, "restarted": 1}

    emails = addressed_to(mailbox, "privacy@acme.test")
    assert len(emails) == 4 == len({e["Message-ID"] for e in emails})
    requests = DataRightsRequest.objects.filter(batch=batch)
    assert {r.message_id for r in requests} == {e["Message-ID"] for e in emails}
    assert set(requests.values_list("state", flat=True)) == {"sent"}
    assert Batch.objects.get(pk=batch.pk).state == "sent"


def test_a_controller_with_a_uk_representative_has_it_copied_into_the_letter(
    launch_day, campaign, cast, acme, coordinator_actor, mailbox, django_capture_on_commit_callbacks
):
    acme.uk_representative_name = "Acme UK Representative Ltd"
    acme.uk_representative_email = "rep@acme-uk.test"
    acme.save()
    launch(campaign, coordinator_actor, django_capture_on_commit_callbacks)
    [letter] = addressed_to(mailbox, "privacy@acme.test")
    assert letter["Cc"] == "rep@acme-uk.test"
    body = letter.get_body(("plain",)).get_content()
    assert "A copy goes to your UK representative, Acme UK Representative Ltd" in body
    assert "Article 27" in body
