"""Portal page and API list latency with 10,000 requests for one controller, served by gunicorn on
loopback: median and p95 over 200 requests each (targets: page p95 < 150 ms, API p95 < 100 ms).

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default .../datacommunity_bench_portal), dropped and
re-created each run. Prints figures; no pass/fail.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = int(os.environ.get("BENCH_PORTAL_REQUESTS", "10000"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datacommunity_bench_portal"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(env: dict[str, str], *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn serving the project on a free loopback port with these options, once /healthz answers;
    yields (its base URL, its master process)."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            *options,
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def setup(url: str = BENCH_URL, requests: int = REQUESTS) -> tuple[str, str]:
    """Create a controller with `requests` sent access requests in a fresh database at `url`; return (a
    portal session cookie value, an API token)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.run import recreate_database

    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connection

    from communities.models import Community
    from requests_engine.models import Controller, ControllerContact
    from requests_engine.portal.signin import SESSION_KEY

    call_command("migrate", verbosity=0)
    community = Community.objects.create(
        slug="bench", name="Bench", purpose="x", contact_email="b@x.test", rights=["access"]
    )
    controller = Controller.objects.create(slug="acme", name="Acme", email="dpo@acme.test")
    community.controllers.add(controller)  # the mandates' "all organisations" names it
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test")
    with connection.cursor() as c:
        c.execute(
            """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                     is_staff, is_active, date_joined)
                     SELECT '!', false, 'p' || g, '', '', 'p' || g || '@x.test', false, true, now()
                     FROM generate_series(1, %s) g""",
            [requests],
        )
        c.execute(
            """INSERT INTO communities_member (user_id, community_id, reference, full_name, joined_at,
                     notifications)
                     SELECT id, %s, 'M' || id, 'Member ' || id, now(), 'each' FROM auth_user""",
            [community.pk],
        )
        c.execute("""INSERT INTO communities_mandate (member_id, reference, rights, all_controllers,
                     valid_from, valid_until, may_complain_to_controllers, may_represent_before_ico,
                     may_represent_in_court, irreversible_without_asking,
                     template_version, text, text_sha256, signed_name, signed_at, signed_user_agent, pdf,
                     pdf_sha256, verification_token, state, created_at, history_seq, history_head, send_responses_to)
                     SELECT id, 'A' || id, '["access"]', true, current_date - 1, current_date + 365, true,
                     false, false, false, 'v1', 'text', '', full_name, now(), '', '', '', 'tok' || id, 'active', now(), 0, '',
                     'community' FROM communities_member""")
        # The organisations a mandate names when signed (its "all organisations" at that moment).
        c.execute(
            "INSERT INTO communities_mandate_controllers (mandate_id, controller_id) "
            "SELECT id, %s FROM communities_mandate",
            [controller.pk],
        )
        c.execute(f"""INSERT INTO requests_engine_datarightsrequest (reference, member_id, mandate_id, controller_id,
                     "right", state, received_on, clock_start_on, due_on, extension_months, extension_reason,
                     paused_days, clock_paused, info_kind, info_question, message_id, delivery_error, drp_request_id,
                     drp_status, refusal_ground, refusal_reasons, answer_directly_to, outcome, outcome_statement, recipients_told,
            history_seq, history_head, created_at,
                     updated_at)
                     SELECT 'R' || m.id, m.id, md.id, {controller.pk}, 'access', 'sent',
                     current_date - (m.id % 30)::int, current_date - (m.id % 30)::int,
                     current_date - (m.id % 30)::int + 31, 0, '', 0, false, '', '', '', '', '', '', '', '', '', '', '', '', 0, '',
                     now(), now()
                     FROM communities_member m JOIN communities_mandate md ON md.member_id = m.id""")
        c.execute("ANALYZE")
    session = SessionStore()
    session[SESSION_KEY] = contact.pk
    session.create()
    token = ""
    try:
        from requests_engine.directory.contacts import contact_issue_api_token

        token = contact_issue_api_token(contact_id=contact.pk)
    except ImportError:
        pass
    return session.session_key, token


def measure(url: str, headers: dict[str, str]) -> list[float]:
    times = []
    for _ in range(SAMPLES):
        request = urllib.request.Request(url, headers=headers)
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            assert response.status == 200, response.status
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(label: str, times: list[float], target: float) -> None:
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(
        f"  {label}: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms (target p95 < {target:.0f} ms)"
    )


def main() -> int:
    if urlparse(BENCH_URL).scheme not in ("postgres", "postgresql"):
        print("The benchmark needs PostgreSQL: set BENCH_DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    session_key, token = setup()
    env = {**os.environ, "DATABASE_URL": BENCH_URL, "DEBUG": "false", "CONN_MAX_AGE": "60"}
    with serve(env, "--workers", "2", "--threads", "4") as (base, _server):
        print(
            f"Portal and API latency, {REQUESTS:,} requests for one controller, {SAMPLES} samples, gunicorn 2×4"
        )
        page_headers = {"Cookie": f"sessionid={session_key}"}
        measure(f"{base}/respond/requests/", page_headers)[:5]  # warm up
        report("portal list page /respond/requests/", measure(f"{base}/respond/requests/", page_headers), 150)
        report(
            "portal list, filtered and page 100",
            measure(f"{base}/respond/requests/?state=sent&page=100", page_headers),
            150,
        )
        if token:
            api_headers = {"Authorization": f"Bearer {token}"}
            measure(f"{base}/api/v1/requests/", api_headers)[:5]
            report("API list /api/v1/requests/", measure(f"{base}/api/v1/requests/", api_headers), 100)
        else:
            print("  API list: skipped (no API in this build)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
