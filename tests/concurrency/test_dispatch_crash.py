"""A real Celery worker is killed (SIGKILL) in the middle of sending a batch of individual emails; a new
worker and the periodic sweeps finish the job. Every request must reach the SMTP server exactly once, except
at most the one message in flight at the moment of the kill, which arrives twice with the same Message-ID.

from tests.factories import make_campaign
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
KILL_AFTER = 60  # messages received before the first worker is killed


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


class Worker:
    """A `celery worker` process of the project, in its own session so it can be killed without others."""

    def __init__(self, name: str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            "solo",
            "-c",
            "1",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
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


def test_a_worker_killed_mid_batch_loses_nothing_and_resends_at_most_the_message_in_flight(
    settings, tmp_path, slow_smtp, broker
):
    mailbox, port = slow_smtp
    batch = make_batch(settings)
    assert batch.requests.count() == REQUESTS

    first = Worker("crash1", tmp_path / "worker1.log", worker_env(settings, port))
    second = None
    try:
        broker.send_task("requests_engine.tasks.dispatch_batch", args=[batch.pk])
        wait_for(
            lambda: mailbox.count() >= KILL_AFTER, timeout=120, what="the first messages", workers=[first]
        )
        first.kill()
        received_at_kill = mailbox.count()
        assert received_at_kill < REQUESTS, "the worker finished before it could be killed"

        # The new worker treats any row left in 'sending' as stuck at once (nothing else is sending: the
        # pool is solo), as the beat-scheduled sweeps would after their delay.
        second = Worker(
            "crash2", tmp_path / "worker2.log", worker_env(settings, port, OUTBOX_STUCK_AFTER_MINUTES="0")
        )
        letters = OutboundMessage.objects.filter(purpose="request.letter")

        def finished() -> bool:
            return (
                not letters.exclude(status="sent").exists()
                and not DataRightsRequest.objects.exclude(state="sent").exists()
                and Batch.objects.filter(pk=batch.pk, state="sent").exists()
            )

        deadline = time.monotonic() + 180
        while not finished():  # the sweeps, as beat would run them
            if time.monotonic() > deadline:
                pytest.fail(f"the batch did not finish\n{first.output()}\n{second.output()}")
            broker.send_task("core.tasks.sweep_outbox")
            broker.send_task("requests_engine.tasks.sweep_dispatch", kwargs={"older_than_minutes": 0})
            pause = time.monotonic() + 10
            while not finished() and time.monotonic() < pause:
                time.sleep(0.2)
    finally:
        first.kill()
        if second:
            second.kill(signal.SIGTERM)

    requests = list(DataRightsRequest.objects.values_list("message_id", "state", "received_on"))
    sent_ids = [message_id for message_id, _, _ in requests]
    assert all(state == "sent" for _, state, _ in requests)
    assert all(received_on == timezone.localdate() for _, _, received_on in requests)
    assert len(set(sent_ids)) == REQUESTS and "" not in sent_ids
    assert set(letters.values_list("message_id", flat=True)) == set(sent_ids)  # one message per request

    counted = Counter(mailbox.message_ids)
    assert set(counted) == set(sent_ids)  # every request reached the server, nothing else did
    duplicates = {message_id: n for message_id, n in counted.items() if n > 1}
    assert len(duplicates) <= 1 and all(n == 2 for n in duplicates.values()), duplicates
    assert sum(counted.values()) == REQUESTS + len(duplicates)
    assert chain_breaks() == []
