"""Dispatch benchmark: 10,000 individual emails through two Celery workers to a local SMTP server.

A launched campaign of BENCH_MESSAGES members to one controller that takes requests one by one (no rate limit)
is dispatched over Redis to an aiosmtpd server in this process by the workers as deploy/compose.yaml runs them:
BENCH_WORKERS (2) mail workers of one process each, serving the `mail` queue, and one worker for every other
task (rendering the letters, recording deliveries).
Timed from queueing the batch until every request is recorded as sent; printed as messages per second, against
a plain smtplib loop sending as many copies of the same message to the same server (the ceiling). Prints
figures only.

Uses its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/datacommunity_bench_dispatch), dropped and re-created each run, and its own
Redis database (BENCH_BROKER_URL, default redis://127.0.0.1:6379/13), flushed.

    .venv/bin/python benchmarks/dispatch.py
"""

from __future__ import annotations

import hashlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))  # mail workers
TARGET_RATE = 300  # messages per second end to end (issue 13)
TARGET_SHARE = 0.5  # of the one-connection smtplib ceiling
BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datacommunity_bench_dispatch"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")


def recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Counting:
    """An SMTP handler that only counts what it is given, and notes when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.sample = b""

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.times.append(time.perf_counter())
            if not self.sample:
                self.sample = envelope.original_content
        return "250 OK"

    def reset(self) -> None:
        with self.lock:
            self.times.clear()

    def count(self) -> int:
        with self.lock:
            return len(self.times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_up(community_name: str = "Bench") -> int:
    """A community of MESSAGES members with mandates, one controller, a launched campaign; returns its id."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from communities.documents import mandate_pdf_bytes
    from communities.models import Authority, Community, Identifier, Mandate, Member, Purpose, Right
    from config.celery import app as celery_app
    from core.audit import Actor
    from requests_engine import authorities
    from requests_engine.campaigns import launch
    from requests_engine.letters import disclosed_identifier_rows
    from requests_engine.models import Campaign, Controller

    community = Community.objects.create(
        slug="bench", name=community_name, purpose="x", contact_email="c@bench.test", rights=[Right.ACCESS]
    )
    controller = Controller.objects.create(
        slug="acme",
        name="Acme Ltd",
        email="privacy@acme.test",
        individual_requests=True,
        send_rate_per_minute=0,
    )
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"m{i}@bench.test", email=f"m{i}@bench.test", password="!") for i in range(MESSAGES)
    )
    members = Member.objects.bulk_create(
        Member(user=u, community=community, full_name=f"Member {i}") for i, u in enumerate(users)
    )
    Identifier.objects.bulk_create(
        Identifier(member=m, controller=controller, kind="email", value=f"m{i}@shop.test")
        for i, m in enumerate(members)
    )
    today = timezone.localdate()
    text = "I authorise the community to act for me."
    mandates = Mandate.objects.bulk_create(
        Mandate(
            member=m,
            rights=[Right.ACCESS],
            valid_from=today,
            valid_until=today.replace(year=today.year + 1),
            template_version="t1",
            text=text,
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            signed_name=m.full_name,
            signed_at=timezone.now(),
        )
        for m in members
    )
    # Mandates are rendered when members sign, not at dispatch: one rendered PDF stands in for all.
    pdf = mandate_pdf_bytes(mandates[0])
    name = Mandate._meta.get_field("pdf").storage.save("mandates/bench.pdf", ContentFile(pdf))
    Mandate.objects.update(pdf=name, pdf_sha256=hashlib.sha256(pdf).hexdigest())
    # Likewise each member's authority document for the controller, issued when first needed.
    mandates_named = Mandate.controllers.through.objects.bulk_create(
        Mandate.controllers.through(mandate_id=m.pk, controller_id=controller.pk) for m in mandates
    )
    assert len(mandates_named) == len(mandates)
    community.controllers.add(controller)
    # Issued with the identifiers the letters disclose, as authorities_ensure leaves them; otherwise every
    # document would count as stale and be rendered again during the timed dispatch.
    disclosed = disclosed_identifier_rows(controller, [m.pk for m in members])
    Authority.objects.bulk_create(
        Authority(
            mandate=m,
            controller=controller,
            identifiers=authorities._as_shown(disclosed.get(m.member_id, [])),
            pdf=name,
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        )
        for m in mandates
    )
    purpose = Purpose.objects.create(community=community, name="Bench", text="Benchmarking.")
    Mandate.purposes.through.objects.bulk_create(
        Mandate.purposes.through(mandate_id=m.pk, purpose_id=purpose.pk) for m in mandates
    )
    campaign = Campaign.objects.create(
        community=community, name="Bench", rights=[Right.ACCESS], purpose=purpose
    )
    campaign.controllers.set([controller])
    celery_app.conf.task_always_eager = False
    launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system("bench"), dispatch=False)
    return campaign.pk


def deployed_command(service: str) -> list[str]:
    """The worker command of a compose service as deployed (deploy/compose.yaml), run with this interpreter."""
    import yaml

    words = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"][service]["command"]
    assert words[0] == "celery", words
    return [sys.executable, "-m", *words]


def start_worker(service: str, name: str, log_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    log_level = os.environ.get("BENCH_LOG", "WARNING")  # INFO logs each task's duration
    command = [
        *deployed_command(service),
        "--loglevel",  # the last one given wins
        log_level,
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    out = open(log_dir / f"{name}.log", "wb")  # the process keeps it open until it exits
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def queues_served(names: list[str], timeout: float = 20) -> dict[str, list[str]]:
    """The queues each named worker consumes from, as the workers themselves report them."""
    from config.celery import app as celery_app

    destination = [f"{name}@{socket.gethostname()}" for name in names]
    deadline = time.monotonic() + timeout
    while True:
        replies = celery_app.control.inspect(destination=destination, timeout=1).active_queues() or {}
        if len(replies) == len(names) or time.monotonic() > deadline:
            return {
                worker.partition("@")[0]: sorted(q["name"] for q in queues)
                for worker, queues in replies.items()
            }
        time.sleep(0.5)


def ceiling(port: int, sample: bytes, n: int, *, reconnect: bool) -> float:
    """Seconds for a plain smtplib loop to send `n` copies of `sample`, on one connection or one each."""
    start = time.perf_counter()
    smtp = None
    for _ in range(n):
        if smtp is None:
            smtp = smtplib.SMTP("127.0.0.1", port)
        smtp.sendmail("community@localhost", ["privacy@acme.test"], sample)
        if reconnect:
            smtp.quit()
            smtp = None
    if smtp:
        smtp.quit()
    return time.perf_counter() - start


def main() -> int:
    if urlparse(BENCH_URL).scheme not in ("postgres", "postgresql"):
        print("The benchmark needs PostgreSQL: set BENCH_DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    import redis
    from aiosmtpd.controller import Controller as SMTPController

    redis.Redis.from_url(BROKER_URL).flushdb()
    recreate_database(BENCH_URL)
    handler = Counting()
    smtp_port = free_port()
    server = SMTPController(handler, hostname="127.0.0.1", port=smtp_port)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": BENCH_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "MEDIA_ROOT": str(work / "media"),
        "SEAL_DIR": str(work / "seal"),
        "DEBUG": "false",
        "CONN_MAX_AGE": "60",  # as deploy/.env.example: workers keep their database connection
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from core.models import OutboundMessage
    from requests_engine.dispatch import batches
    from requests_engine.models import Batch, DataRightsRequest

    call_command("migrate", verbosity=0)
    print(
        f"Dispatch benchmark on PostgreSQL {connection.pg_version // 10000}: {MESSAGES:,} individual emails, "
        f"{WORKERS} mail workers and one worker for other tasks, as deployed, over Redis, aiosmtpd on "
        f"loopback; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print("Setting up (not timed)…", flush=True)
    campaign_id = set_up()
    redis.Redis.from_url(BROKER_URL).flushdb()  # whatever the launch queued: the benchmark queues it below
    names = [f"mail{i}" for i in range(WORKERS)]
    workers = [start_worker("mail-worker", name, work, {**os.environ, **env}) for name in names]
    workers.append(start_worker("worker", "tasks", work, {**os.environ, **env}))
    try:
        # Waits until the workers are up (Django setup) before the clock starts.
        served = queues_served([*names, "tasks"])
        if any(w.poll() is not None for w in workers) or len(served) != WORKERS + 1:
            print(f"A worker did not start: see {work}", file=sys.stderr)
            return 1
        if any(served[name] != ["mail"] for name in names) or "mail" in served["tasks"]:
            print(f"The workers do not serve the queues deployed: {served}", file=sys.stderr)
            return 1
        print(
            "  queues served: "
            + ", ".join(f"{name} {'+'.join(queues)}" for name, queues in sorted(served.items())),
            flush=True,
        )
        handler.reset()
        start = time.perf_counter()
        with transaction.atomic():
            batches.campaign_dispatch_queue(campaign_id=campaign_id)
        queued_at = accepted_at = None
        rows = OutboundMessage.objects.filter(purpose=batches.REQUEST_PURPOSE)
        while True:
            time.sleep(0.25)
            now = time.perf_counter()
            if queued_at is None and rows.count() >= MESSAGES:
                queued_at = now
            if accepted_at is None and handler.count() >= MESSAGES:
                accepted_at = now
            recorded = not DataRightsRequest.objects.exclude(state="sent").exists()
            if (
                accepted_at
                and recorded
                and Batch.objects.filter(campaign_id=campaign_id, state="sent").exists()
            ):
                recorded_at = now
                break
            if now - start > 3600:
                print(f"Gave up after an hour: {handler.count()} accepted; logs in {work}", file=sys.stderr)
                return 1
        first = handler.times[0] - start
        last = handler.times[-1] - start
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
        redis.Redis.from_url(BROKER_URL).flushdb()

    received = handler.count()
    print(f"  messages accepted by the SMTP server: {received:,}")
    print(f"  letters rendered and outbox rows written after {queued_at - start:.1f} s")
    print(f"  first message accepted after {first:.2f} s")
    print(f"  last message accepted after {last:.1f} s: {MESSAGES / last:,.0f} messages/s end to end")
    print(f"  sending phase (first to last message): {(MESSAGES - 1) / (last - first):,.0f} messages/s")
    print(
        f"  every request and the batch recorded as sent after {recorded_at - start:.1f} s: "
        f"{MESSAGES / (recorded_at - start):,.0f} requests/s"
    )

    sample = handler.sample
    one_connection = ceiling(smtp_port, sample, MESSAGES, reconnect=False)
    per_message = ceiling(smtp_port, sample, MESSAGES, reconnect=True)
    server.stop()
    print(f"Ceiling: plain smtplib loop, {MESSAGES:,} copies of one {len(sample) / 1024:.0f} KiB message")
    print(f"  one connection: {MESSAGES / one_connection:,.0f} messages/s")
    print(f"  a connection per message: {MESSAGES / per_message:,.0f} messages/s")
    print(f"  end to end through the workers = {one_connection / last:.2f} of the one-connection ceiling")
    rate, share = MESSAGES / last, one_connection / last
    print("\nSummary")
    print(
        f"  dispatch: {rate:,.0f} msg/s, {share:.2f} of the smtplib ceiling {MESSAGES / one_connection:,.0f}/s "
        f"(targets ≥ {TARGET_RATE}/s, ≥ {TARGET_SHARE}): "
        f"{'met' if rate >= TARGET_RATE and share >= TARGET_SHARE else 'missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
