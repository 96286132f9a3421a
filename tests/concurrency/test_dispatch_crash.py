"""The workers run as deployed (deploy/compose.yaml: a prefork worker for every task but mail, and a mail
worker of one process) and the mail worker is killed (SIGKILL) three times in the middle of sending a batch
of individual emails; a new mail worker and the periodic sweeps finish the job each time. Every request must
reach the SMTP server exactly once, except at most the one message in flight at each kill, which arrives
twice with the same Message-ID: at most one duplicate per kill.

Needs PostgreSQL (the workers share the test database) and Redis at 127.0.0.1:6379 (the broker, db 14).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from communities.documents import mandate_pdf_bytes
from communities.models import Community, Mandate, Member, Right
from config.celery import app as celery_app
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine.campaigns import launch
from requests_engine.events import chain_breaks
from requests_engine.models import Batch, Controller, DataRightsRequest
from tests.factories import make_campaign
from tests.smtp import free_port

REDIS_URL = "redis://127.0.0.1:6379/14"  # a database of its own, flushed at the start
ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 200
KILLS_AT = (40, 90, 140)  # messages received when the mail worker is killed


def _redis_reason() -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as error:  # any failure to reach it means the test cannot run here
        return f"needs Redis at {REDIS_URL}: {type(error).__name__}"
    return ""


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="needs PostgreSQL: workers share the database"
    ),
]


class SlowMailbox:
    """Counts each message by Message-ID when its data arrives, then takes 20 ms to say 250, so a worker
    killed at the wrong moment has handed over a message without hearing that it was accepted."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        headers = BytesHeaderParser(policy=default_policy).parsebytes(envelope.original_content)
        with self.lock:
            self.message_ids.append(headers["Message-ID"])
        await asyncio.sleep(0.02)
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.message_ids)


@pytest.fixture
def slow_smtp():
    from aiosmtpd.controller import Controller as SMTPController

    box = SlowMailbox()
    server = SMTPController(box, hostname="127.0.0.1", port=free_port())
    server.start()
    yield box, server.port
    server.stop()


@pytest.fixture
def broker():
    reason = _redis_reason()
    if reason:
        pytest.skip(reason)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    client = Celery("dispatch-crash-test", broker=REDIS_URL)
    yield client
    client.close()
    redis.Redis.from_url(REDIS_URL).flushdb()


def database_url() -> str:
    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def deployed_command(service: str) -> list[str]:
    """The worker command of a compose service, as deployed (run with this interpreter)."""
    import yaml

    words = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"][service]["command"]
    assert words[0] == "celery"
    return [sys.executable, "-m", *words]


class Worker:
    """A worker process of the project, started with the deployed command, in its own session so that it
    (the prefork parent with its pool) can be killed without others."""

    def __init__(self, name: str, log: Path, env: dict[str, str], *, service: str = "mail-worker") -> None:
        self.log = log
        command = [
            *deployed_command(service),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def worker_env(settings, smtp_port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "SEAL_DIR": str(settings.SEAL_DIR),
        # The same audit key as the test process, which checks the events the workers sign.
        "KEY_DIR": str(settings.KEY_DIR),
        "DEBUG": "false",
        **extra,
    }


def wait_for(condition, *, timeout: float, what: str, workers=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(w.output() for w in workers)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.1)


def make_batch(settings) -> Batch:
    """A launched campaign of REQUESTS members to one controller that takes requests one by one."""
    community = Community.objects.create(
        slug="crash", name="Crash test", purpose="x", contact_email="c@community.test", rights=["access"]
    )
    controller = Controller.objects.create(
        slug="acme",
        name="Acme Ltd",
        email="privacy@acme.test",
        individual_requests=True,
        send_rate_per_minute=0,
    )
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"w{i}@community.test", email=f"w{i}@community.test", password="!")
        for i in range(REQUESTS)
    )
    members = Member.objects.bulk_create(
        # On the daily digest, so the launch's notices to members wait and only the requests are emailed.
        Member(
            user=user,
            community=community,
            full_name=f"Writer {i}",
            notifications=Member.Notifications.DAILY,
        )
        for i, user in enumerate(users)
    )
    today = timezone.localdate()
    text = "I authorise the community to act for me."
    mandates = Mandate.objects.bulk_create(
        Mandate(
            member=member,
            rights=[Right.ACCESS],
            all_controllers=True,  # make_campaign then names the campaign's controller and purpose
            valid_from=today,
            valid_until=today.replace(year=today.year + 1),
            template_version="t1",
            text=text,
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            signed_name=member.full_name,
            signed_at=timezone.now(),
        )
        for member in members
    )
    # One rendered mandate stands in for all: rendering 200 is not what this test is about.
    pdf = mandate_pdf_bytes(mandates[0])
    name = default_storage.save("mandates/shared.pdf", ContentFile(pdf))
    Mandate.objects.update(pdf=name, pdf_sha256=hashlib.sha256(pdf).hexdigest())
    campaign = make_campaign(
        community, name="Crash", rights=[Right.ACCESS], purpose="x", controllers=[controller]
    )
    # Whatever the launch queues goes nowhere (the in-memory broker): the test sends the dispatch itself.
    celery_app.conf.task_always_eager = False
    try:
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system("test"))
    finally:
        celery_app.conf.task_always_eager = True
    return Batch.objects.get(campaign=campaign)


def test_a_mail_worker_killed_three_times_mid_batch_loses_nothing_and_resends_at_most_one_per_kill(
    settings, tmp_path, slow_smtp, broker
):
    mailbox, port = slow_smtp
    batch = make_batch(settings)
    assert batch.requests.count() == REQUESTS
    # A row left "sending" for 6 seconds is taken as a dead worker's; sending one takes a few milliseconds.
    env = worker_env(settings, port, OUTBOX_STUCK_AFTER_MINUTES="0.1")
    others = Worker("tasks", tmp_path / "tasks.log", env, service="worker")
    mail = [Worker("mail0", tmp_path / "mail0.log", env)]
    letters = OutboundMessage.objects.filter(purpose="request.letter")

    def finished() -> bool:
        return (
            not letters.exclude(status="sent").exists()
            and not DataRightsRequest.objects.exclude(state="sent").exists()
            and Batch.objects.filter(pk=batch.pk, state="sent").exists()
        )

    try:
        broker.send_task("requests_engine.tasks.dispatch_batch", args=[batch.pk])
        for kill, at_count in enumerate(KILLS_AT, start=1):
            wait_for(
                lambda at_count=at_count: mailbox.count() >= at_count,
                timeout=180,
                what=f"{at_count} messages",
                workers=[others, *mail],
            )
            mail[-1].kill()
            assert mailbox.count() < REQUESTS, "the batch finished before the worker could be killed"
            mail.append(Worker(f"mail{kill}", tmp_path / f"mail{kill}.log", env))

        deadline = time.monotonic() + 240
        while not finished():  # the sweeps, as beat would run them
            if time.monotonic() > deadline:
                pytest.fail("the batch did not finish\n" + "\n".join(w.output() for w in [others, *mail]))
            broker.send_task("core.tasks.sweep_outbox")
            broker.send_task("requests_engine.tasks.sweep_dispatch", kwargs={"older_than_minutes": 0})
            pause = time.monotonic() + 8
            while not finished() and time.monotonic() < pause:
                time.sleep(0.2)
    finally:
        for worker in mail[:-1]:
            worker.kill()
        mail[-1].kill(signal.SIGTERM)
        others.kill(signal.SIGTERM)

    requests = list(DataRightsRequest.objects.values_list("message_id", "state", "received_on"))
    sent_ids = [message_id for message_id, _, _ in requests]
    assert all(state == "sent" for _, state, _ in requests)
    assert all(received_on == timezone.localdate() for _, _, received_on in requests)
    assert len(set(sent_ids)) == REQUESTS and "" not in sent_ids
    assert set(letters.values_list("message_id", flat=True)) == set(sent_ids)  # one message per request

    counted = Counter(mailbox.message_ids)
    assert set(counted) == set(sent_ids)  # every request reached the server, nothing else did
    duplicates = {message_id: n for message_id, n in counted.items() if n > 1}
    print(f"{REQUESTS} requests, {len(KILLS_AT)} kills: 0 lost, {len(duplicates)} duplicate(s)")
    assert len(duplicates) <= len(KILLS_AT) and all(n == 2 for n in duplicates.values()), duplicates
    assert sum(counted.values()) == REQUESTS + len(duplicates)
    assert chain_breaks() == []
