"""The database goes down while the deployed mail worker is sending, and comes back: nothing is lost and at
most one message (sent, not yet recorded) arrives twice. The database is a second PostgreSQL this test
starts on a port of its own (the shared one is never stopped); the broker is Redis, the SMTP server a real
one on loopback.

Needs PostgreSQL's server binaries, root (to run them as the postgres user) and Redis at 127.0.0.1:6379."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.concurrency.test_dispatch_crash import (  # noqa: F401  (slow_smtp is a fixture used here)
    REDIS_URL,
    ROOT,
    Worker,
    _redis_reason,
    slow_smtp,
)
from tests.smtp import free_port

MESSAGES = 60
DOWN_AT = 15  # messages received when the database is stopped
BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _reason() -> str:
    if not BINARIES or os.geteuid() != 0:
        return "needs PostgreSQL's server binaries and root to start a second PostgreSQL"
    return _redis_reason()


pytestmark = pytest.mark.skipif(bool(_reason()), reason=_reason() or "runs")


class SecondPostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="outage-pg-"))
        os.chmod(self.dir, 0o755)
        owner = pwd.getpwnam("postgres")
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data, self.port = self.dir / "data", free_port()
        self.as_postgres(
            [str(BINARIES[-1] / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        )

    def as_postgres(self, command: list[str]) -> None:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)], check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"'-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off'"
        self.as_postgres(
            [
                str(BINARIES[-1] / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.dir / "log"),
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        self.as_postgres(
            [str(BINARIES[-1] / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def query(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def second_postgres():
    pg = SecondPostgres()
    pg.start()
    yield pg
    try:
        pg.stop()
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(pg.dir, ignore_errors=True)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_database_outage_mid_send_loses_nothing_and_costs_at_most_one_duplicate(
    second_postgres, slow_smtp, tmp_path
):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    mailbox, port = slow_smtp
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": second_postgres.url,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_URL": f"smtp://127.0.0.1:{port}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "KEY_DIR": str(tmp_path / "keys"),
        "SEAL_DIR": str(tmp_path / "seal"),
        "DEBUG": "false",
        "CONN_MAX_AGE": "0",
    }
    manage(env, "migrate", "--noinput", "-v0")
    worker = Worker("mail", tmp_path / "mail.log", env)
    try:
        manage(
            env,
            "shell",
            "-c",
            "from django.db import transaction\n"
            "from core import outbox\n"
            "with transaction.atomic():\n"
            f"    for n in range({MESSAGES}):\n"
            "        outbox.queue_email(to=[f'dpo{n}@acme.test'], subject=f'Request {n}', body_text='Answer.', "
            "purpose='test')\n",
        )
        deadline = time.monotonic() + 120
        while mailbox.count() < DOWN_AT:
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.05)
        second_postgres.stop()  # the database goes away mid-send
        time.sleep(3)
        second_postgres.start()

        def left() -> dict[str, int]:
            return dict(
                second_postgres.query("SELECT status, count(*) FROM core_outboundmessage GROUP BY status")
            )

        deadline = time.monotonic() + 180
        while left().get("sent", 0) < MESSAGES:
            assert time.monotonic() < deadline, f"{left()}\n{worker.output()}"
            if set(left()) <= {"sent", "sending"}:
                # Only what the outage left "sending" remains: the sweep hands it back, as beat would.
                manage(env, "sweep_outbox", "--older-than", "0")
            time.sleep(1)
    finally:
        worker.kill()

    sent = {row[0] for row in second_postgres.query("SELECT message_id FROM core_outboundmessage")}
    counted = Counter(mailbox.message_ids)
    assert set(counted) == sent and len(sent) == MESSAGES  # every message arrived; nothing else did
    duplicates = [message_id for message_id, n in counted.items() if n > 1]
    print(f"{MESSAGES} messages, database stopped mid-send: 0 lost, {len(duplicates)} duplicate(s)")
    assert len(duplicates) <= 1 and sum(counted.values()) == MESSAGES + len(duplicates)
