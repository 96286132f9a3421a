"""Replies read from a real IMAP server (Dovecot on loopback), matched, stored encrypted and recorded once."""

from __future__ import annotations

import hashlib
import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from core import crypto
from requests_engine import letters, tasks
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, InboundMessage, RequestEvent
from requests_engine.responses import inbound
from tests.factories import make_campaign, make_member, make_request
from tests.smtp import free_port

USER, PASSWORD = "replies@community.test", "replies-pw"


# -- a private Dovecot -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imap:
    port: int
    user: str = USER
    password: str = PASSWORD

    def connect(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn


def _unavailable(reason: str) -> None:
    # CI installs dovecot-imapd (.ci/run): there a missing server is a failure, locally a skip.
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Dovecot is needed for the IMAP tests: {reason}")
    pytest.skip(f"Dovecot is not available: {reason}")


def _dovecot_config(root: Path, port: int) -> str:
    """A minimal single-user IMAP server on 127.0.0.1:<port>, plaintext login, Maildir under `root`."""
    if os.geteuid() == 0:
        internal_user, login_user = "dovecot", "dovenull"
    else:  # unprivileged: Dovecot runs every process as us
        internal_user = login_user = pwd.getpwuid(os.geteuid()).pw_name
    return "\n".join(
        [
            f"base_dir = {root}/run",
            f"state_dir = {root}/state",
            f"log_path = {root}/dovecot.log",
            "protocols = imap",
            "listen = 127.0.0.1",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_failure_delay = 0",
            f"default_internal_user = {internal_user}",
            f"default_login_user = {login_user}",
            "first_valid_uid = 1",
            "mail_location = maildir:~/Maildir",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {root}/users",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {root}/users",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
            "",
        ]
    )


@pytest.fixture(scope="session")
def dovecot():
    binary = shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )
    if not binary:
        _unavailable("the dovecot binary is not installed (Debian package dovecot-imapd)")
    # Not under pytest's own tmp folder: that one is private to us, and mail processes run as `nobody`.
    root = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        mail_uid, mail_gid = nobody.pw_uid, nobody.pw_gid
    else:
        mail_uid, mail_gid = os.getuid(), os.getgid()
    home = root / "home"
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True)
    for path in [home, *home.rglob("*")]:
        os.chown(path, mail_uid, mail_gid)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{mail_uid}:{mail_gid}::{home}\n")
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(_dovecot_config(root, port))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = Imap(port)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                _unavailable(
                    f"dovecot exited with {process.returncode}: {output.strip()} {log.strip()}"[:2000]
                )
            try:
                server.connect().logout()
                break
            except (OSError, imaplib.IMAP4.error) as exc:
                if time.monotonic() > deadline:
                    _unavailable(f"no IMAP login on 127.0.0.1:{port} after 15 s: {exc}")
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def deliver(db, dovecot, settings, tmp_path):
    """A fresh IMAP folder for this test, and the poller pointed at it."""
    folder = f"Test-{uuid.uuid4().hex[:10]}"
    conn = dovecot.connect()
    assert conn.create(folder)[0] == "OK"
    conn.logout()
    settings.INBOUND_IMAP_HOST = "127.0.0.1"
    settings.INBOUND_IMAP_PORT = dovecot.port
    settings.INBOUND_IMAP_SSL = False
    settings.INBOUND_IMAP_USER = dovecot.user
    settings.INBOUND_IMAP_PASSWORD = dovecot.password
    settings.INBOUND_IMAP_FOLDER = folder
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.KEY_DIR = str(tmp_path / "keys")

    def deliver(message: EmailMessage) -> bytes:
        raw = message.as_bytes()
        conn = dovecot.connect()
        typ, data = conn.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
        conn.logout()
        assert typ == "OK", data
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # what IMAP stores: CRLF lines

    return deliver


# -- the cast ---------------------------------------------------------------------------------------------


@pytest.fixture
def batch(community, controller, coordinator):
    campaign = make_campaign(community, name="Training data", purpose="Find out.")
    return Batch.objects.create(
        campaign=campaign, controller=controller, message_id="<letter-1@community.test>"
    )


@pytest.fixture
def batch_requests(batch, member, community, controller):
    other = make_member(community, name="Grace Hopper")
    first = make_request(member, controller, reference=f"{batch.reference}-{member.reference}-AC")
    second = make_request(other, controller, reference=f"{batch.reference}-{other.reference}-AC")
    for request in (first, second):
        request.batch = batch
        request.message_id = batch.message_id  # the collective letter carried both
        request.save()
    return first, second


ACKNOWLEDGEMENT = "We have received your request and will answer within one month."
QUOTED_LETTER = (
    "\n\nOn Mon, 2 Mar 2026 at 09:00, Data Community <community@localhost> wrote:\n"
    "> Dear Acme Ltd,\n> We write on behalf of our members under Article 15.\n"
)


def reply(
    *,
    to: str = "community@community.test",
    subject: str = "Re: your request",
    body: str = "",
    in_reply_to: str = "",
    references: str = "",
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Acme Privacy <dpo@acme.test>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = f"<{uuid.uuid4().hex}@acme.test>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(
        (body or "We have received your request and will answer within one month.") + QUOTED_LETTER
    )
    return message


def events(kind: str) -> list[RequestEvent]:
    return list(RequestEvent.objects.filter(kind=kind).order_by("id"))


# -- matching ---------------------------------------------------------------------------------------------


def test_reply_to_the_batch_address_is_matched_to_the_batch_and_recorded_once(deliver, batch, batch_requests):
    deliver(
        reply(to=f"Acme replies <{letters.reply_address_of(batch.reply_token, domain='community.test')}>")
    )

    first = inbound.mailbox_poll()
    second = inbound.mailbox_poll()

    assert (first.new, first.matched, first.unmatched, first.failed) == (1, 1, 0, 0)
    assert (second.new, second.matched) == (0, 0)
    message = InboundMessage.objects.get()
    assert (message.status, message.matched_by, message.batch, message.request) == (
        "matched",
        "reply-address",
        batch,
        None,
    )
    [event] = events("batch.reply_received")
    assert event.batch == batch and event.actor_kind == "system"
    assert event.payload["inbound_id"] == message.pk
    assert event.payload["from"] == "Acme Privacy <dpo@acme.test>"
    assert event.payload["subject"] == "Re: your request"
    assert event.payload["excerpt"] == ACKNOWLEDGEMENT
    assert not events("request.reply_received")


def test_reply_address_with_a_request_reference_narrows_to_that_request(deliver, batch, batch_requests):
    first, _second = batch_requests
    deliver(
        reply(
            to=letters.reply_address_of(batch.reply_token, domain="community.test"),
            subject=f"Re: request {first.reference}: identity needed",
        )
    )

    inbound.mailbox_poll()

    message = InboundMessage.objects.get()
    assert (message.matched_by, message.batch, message.request) == ("reply-address", batch, first)
    [event] = events("request.reply_received")
    assert event.request == first


def test_reply_threading_on_a_requests_message_id_matches_that_request(deliver, member, controller):
    request = make_request(member, controller, reference="R-THREAD-1")
    request.message_id = "<individual-7@community.test>"
    request.save()
    deliver(reply(in_reply_to="<individual-7@community.test>", references="<individual-7@community.test>"))

    report = inbound.mailbox_poll()

    assert report.matched == 1
    message = InboundMessage.objects.get()
    assert (message.status, message.matched_by, message.request) == ("matched", "in-reply-to", request)
    [event] = events("request.reply_received")
    assert event.request == request and event.payload["inbound_id"] == message.pk


def test_reply_threading_on_the_collective_letter_matches_the_batch(deliver, batch, batch_requests):
    deliver(reply(in_reply_to="<unrelated@elsewhere.test>", references=f"<x@y.test> {batch.message_id}"))

    inbound.mailbox_poll()

    message = InboundMessage.objects.get()
    assert (message.matched_by, message.batch, message.request) == ("in-reply-to", batch, None)
    assert len(events("batch.reply_received")) == 1


def test_a_reference_in_the_subject_matches_the_batch(deliver, batch):
    deliver(reply(subject=f"RE: Subject access requests [ref {batch.reference}]"))

    inbound.mailbox_poll()

    message = InboundMessage.objects.get()
    assert (message.status, message.matched_by, message.batch) == ("matched", "reference", batch)
    assert len(events("batch.reply_received")) == 1


def test_a_request_reference_in_the_subject_matches_the_request(deliver, batch, batch_requests):
    _first, second = batch_requests
    deliver(reply(subject=f"Your ref {second.reference.lower()} - data enclosed"))

    inbound.mailbox_poll()

    message = InboundMessage.objects.get()
    assert (message.matched_by, message.request, message.batch) == ("reference", second, batch)


def test_unmatched_mail_waits_in_the_inbox_and_a_coordinator_attaches_it(
    deliver, batch, batch_requests, coordinator_actor
):
    first, _second = batch_requests
    deliver(reply(subject="Question about your members", body="Which of your members use our app?"))

    report = inbound.mailbox_poll()

    assert report.unmatched == 1
    message = InboundMessage.objects.get()
    assert (message.status, message.batch, message.request) == ("unmatched", None, None)
    assert not RequestEvent.objects.filter(kind__endswith="reply_received").exists()

    inbound.inbound_attach(inbound_id=message.pk, reference=f" {first.reference} ", actor=coordinator_actor)

    message.refresh_from_db()
    assert (message.status, message.matched_by, message.request, message.batch) == (
        "handled",
        "coordinator",
        first,
        batch,
    )
    [event] = events("request.reply_received")
    assert event.request == first and event.actor_kind == "coordinator"
    assert event.payload["excerpt"] == "Which of your members use our app?"
    with pytest.raises(RequestEngineError, match="already handled"):
        inbound.inbound_attach(inbound_id=message.pk, reference=first.reference, actor=coordinator_actor)


def test_attaching_to_an_unknown_reference_is_refused(deliver, coordinator_actor):
    deliver(reply(subject="Hello"))
    inbound.mailbox_poll()
    message = InboundMessage.objects.get()

    with pytest.raises(RequestEngineError, match="No request or batch has the reference 'NOPE-1'"):
        inbound.inbound_attach(inbound_id=message.pk, reference="NOPE-1", actor=coordinator_actor)
    message.refresh_from_db()
    assert message.status == "unmatched"


def test_coordinator_inbox_lists_shows_escaped_text_and_attaches(deliver, batch, client, coordinator):
    deliver(reply(subject="Who are you?", body="<script>alert(1)</script> Please tell us more."))
    inbound.mailbox_poll()
    message = InboundMessage.objects.get()
    client.force_login(coordinator)

    changelist = reverse("admin:requests_engine_inboundmessage_changelist")
    listing = client.get(changelist + "?status__exact=unmatched")
    detail = client.get(reverse("admin:requests_engine_inboundmessage_change", args=[message.pk]))
    attach = client.post(
        changelist,
        {"action": "attach_by_reference", "_selected_action": [message.pk], "reference": batch.reference},
        follow=True,
    )

    assert listing.status_code == 200 and b"Who are you?" in listing.content
    assert detail.status_code == 200
    assert b"&lt;script&gt;alert(1)&lt;/script&gt; Please tell us more." in detail.content
    assert b"<script>alert(1)" not in detail.content
    assert (
        attach.status_code == 200 and f"Attached 1 message(s) to {batch.reference}".encode() in attach.content
    )
    message.refresh_from_db()
    assert (message.status, message.batch) == ("handled", batch)
    assert len(events("batch.reply_received")) == 1


# -- storage and idempotency ------------------------------------------------------------------------------


def test_the_raw_message_is_stored_encrypted_and_decrypts_to_the_original(deliver):
    subject = "Confidential: your members' data export"
    original = deliver(reply(subject=subject))

    inbound.mailbox_poll()

    message = InboundMessage.objects.get()
    with default_storage.open(message.raw.name, "rb") as file:
        stored = file.read()
    assert subject.encode() not in stored and b"dpo@acme.test" not in stored
    decrypted = crypto.read_encrypted(message.raw.name)
    assert decrypted == original
    assert message.raw_sha256 == hashlib.sha256(original).hexdigest()
    assert message.subject == subject


def test_a_message_stored_by_a_racing_poller_is_not_stored_or_recorded_again(deliver, batch):
    raw = reply(subject=f"Re: {batch.reference}").as_bytes()
    arguments = dict(mailbox="m@host/INBOX", uid_validity=7, uid=1, raw=raw, received_at=timezone.now())

    assert inbound.inbound_receive(**arguments) == "matched"
    files_before = sorted(default_storage.listdir("inbound")[1])
    assert inbound.inbound_receive(**arguments) == "duplicate"

    assert InboundMessage.objects.count() == 1
    assert len(events("batch.reply_received")) == 1
    assert sorted(default_storage.listdir("inbound")[1]) == files_before  # the loser's file is removed


def test_new_messages_after_a_poll_are_read_on_the_next_one(deliver, batch):
    deliver(reply(subject=f"Re: {batch.reference} (1)"))
    inbound.mailbox_poll()
    deliver(reply(subject=f"Re: {batch.reference} (2)"))
    deliver(reply(subject="Unrelated"))

    report = inbound.mailbox_poll()

    assert (report.new, report.matched, report.unmatched) == (2, 1, 1)
    assert InboundMessage.objects.count() == 3
    assert len(set(InboundMessage.objects.values_list("uid", flat=True))) == 3
    assert len(events("batch.reply_received")) == 2


def test_the_poll_command_reports_and_does_nothing_without_a_mailbox(settings, capsys):
    settings.INBOUND_IMAP_HOST = ""

    call_command("poll_mailbox")

    assert "No mailbox configured" in capsys.readouterr().out


def test_the_poll_command_reads_the_mailbox(deliver, batch, capsys):
    deliver(reply(subject=f"Re: {batch.reference}"))

    call_command("poll_mailbox")

    assert "1 new message(s): 1 matched, 0 unmatched" in capsys.readouterr().out


def test_the_celery_task_polls(deliver, batch):
    deliver(reply(subject=f"Re: {batch.reference}"))

    tasks.poll_mailbox_task.delay()

    assert InboundMessage.objects.filter(batch=batch).count() == 1


def test_a_wrong_password_is_a_clear_error(deliver, settings):
    settings.INBOUND_IMAP_PASSWORD = "wrong"

    with pytest.raises(RequestEngineError, match="Cannot open the mailbox"):
        inbound.mailbox_poll()


def test_quoted_text_is_left_out_of_the_excerpt():
    text = "Thanks, noted.\n\n> older line\n> another\n"
    assert inbound.reply_excerpt(text) == "Thanks, noted."
    assert len(inbound.reply_excerpt("x" * 5000)) == 1000


def test_inbound_messages_are_registered_for_key_rotation():
    assert ("requests_engine.InboundMessage", "raw") in crypto.ENCRYPTED_FILE_FIELDS
