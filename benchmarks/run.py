"""`make bench`: figures for the two jobs that must scale, on PostgreSQL. Prints numbers; no pass/fail.

1. Campaign expansion: launching a campaign of 100,000 members × 10 controllers (1,000,000 requests),
   against a bare INSERT … SELECT of as many rows into a copy of the requests table with the same foreign
   keys and indexes, after a warm-up, alternating which runs first, 3 times each: the ratio of the medians
   (target: within 1.3×).
2. The deadline sweep over 1,000,000 open requests: a daily run (target: under 3 s) and a two-week backlog of
   about 300,000 newly overdue (target: under 10 s), then a check of the audit log.

BENCH_SECTIONS=sweep runs only the sweeps, after one untimed launch to create the requests.

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/datacommunity_bench),
dropped and re-created each run, so it never touches real data.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from functools import partial
from urllib.parse import urlparse

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "100000"))
CONTROLLERS = int(os.environ.get("BENCH_CONTROLLERS", "10"))
BENCH_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datacommunity_bench")
SECTIONS = set(os.environ.get("BENCH_SECTIONS", "launch,sweep").split(","))
TARGET_RATIO = 1.3  # the launch against the constrained floor
TARGET_DAILY_SECONDS = 3.0
TARGET_BACKLOG_SECONDS = 10.0


def recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (Linux reports it in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn):
    from django.db import connection

    with connection.cursor() as c:
        # Start each timed step from a clean checkpoint, so one step's WAL does not bill the next.
        c.execute("CHECKPOINT")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.2f} s", flush=True)
    return seconds, result


def main() -> int:
    if urlparse(BENCH_URL).scheme not in ("postgres", "postgresql"):
        print("The benchmark needs PostgreSQL: set BENCH_DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    recreate_database(BENCH_URL)
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from communities.models import Community, Purpose
    from core.audit import Actor
    from requests_engine import sweep as deadline_sweep
    from requests_engine.campaigns import launch
    from requests_engine.events import chain_breaks
    from requests_engine.models import Batch, Campaign, DataRightsRequest

    call_command("migrate", verbosity=0)
    total = MEMBERS * CONTROLLERS
    print(
        f"Benchmark on PostgreSQL {connection.pg_version // 10000}: {MEMBERS:,} members × {CONTROLLERS} controllers"
    )
    today = timezone.localdate()
    with connection.cursor() as c:
        print("Setting up (not timed)…", flush=True)
        community_id = Community.objects.create(
            slug="bench", name="Bench", purpose="x", contact_email="b@x.test", rights=["access"]
        ).pk
        c.execute(
            """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                     is_staff, is_active, date_joined)
                     SELECT '!', false, 'bench' || g, '', '', 'bench' || g || '@x.test', false, true, now()
                     FROM generate_series(1, %s) g""",
            [MEMBERS],
        )
        c.execute(
            """INSERT INTO communities_member (user_id, community_id, reference, full_name, joined_at,
                     notifications)
                     SELECT id, %s, 'M' || id, 'Member ' || id, now(), 'each'
                     FROM auth_user WHERE username LIKE 'bench%%'""",
            [community_id],
        )
        c.execute(
            """INSERT INTO communities_mandate (member_id, reference, rights, all_controllers,
                     valid_from, valid_until, may_complain_to_controllers, may_represent_before_ico,
                     may_represent_in_court, irreversible_without_asking,
                     template_version, text, text_sha256, signed_name, signed_at, signed_user_agent, pdf,
                     pdf_sha256, verification_token, state, created_at, history_seq, history_head,
                     send_responses_to)
                     SELECT id, 'A' || id, '["access", "erasure"]', true, %s::date - 1, %s::date + 365, true,
                     false, false, true, 'v1', 'text', '', full_name, now(), '', '', '', 'tok' || id, 'active', now(), 0, '',
                     'community'
                     FROM communities_member WHERE community_id = %s""",
            [today, today, community_id],
        )
        c.execute(
            """INSERT INTO requests_engine_controller (slug, name, runs, categories, email, postal_address,
                     web, webform_url, phone, fax, transport, individual_requests, required_identifiers,
                     needs_id_document, jurisdiction, drp_endpoint, request_language, relevant_countries,
                     sources, comments, quality, created_at, updated_at, drp_version, send_rate_per_minute,
                     uk_representative_name, uk_representative_email, uk_representative_address)
                     SELECT 'ctrl' || g, 'Controller ' || g, '[]', '[]', 'dpo' || g || '@x.test', '', '', '', '',
                     '', 'email', false, '[]', false, 'england-and-wales', '', '', '[]', '[]', '[]', '', now(), now(),
                     '', 60, '', '', ''
                     FROM generate_series(1, %s) g""",
            [CONTROLLERS],
        )
        # Every member chose all the community's organisations and its one purpose: the launch checks each
        # request against these rows (Mandate.objects.covering).
        purpose_id = Purpose.objects.create(community_id=community_id, name="Bench", text="x").pk
        c.execute(
            """INSERT INTO communities_community_controllers (community_id, controller_id)
                     SELECT %s, id FROM requests_engine_controller""",
            [community_id],
        )
        c.execute(
            """INSERT INTO communities_mandate_controllers (mandate_id, controller_id)
                     SELECT md.id, ct.id FROM communities_mandate md CROSS JOIN requests_engine_controller ct"""
        )
        c.execute(
            """INSERT INTO communities_mandate_purposes (mandate_id, purpose_id)
                     SELECT id, %s FROM communities_mandate""",
            [purpose_id],
        )
        c.execute("ANALYZE")

    def draft_campaign(name: str) -> Campaign:
        campaign = Campaign.objects.create(
            community_id=community_id, name=name, rights=["access"], purpose_id=purpose_id
        )
        campaign.controllers.set(list(range(1, CONTROLLERS + 1)))
        return campaign

    # The floor's requests point at real rows, as the launch's do: one batch per controller of its own.
    floor_campaign = draft_campaign("Floor")
    Batch.objects.bulk_create(
        [Batch(campaign=floor_campaign, controller_id=pk) for pk in range(1, CONTROLLERS + 1)]
    )
    r = DataRightsRequest._meta.db_table
    with connection.cursor() as c:
        # A copy of the requests table with the same indexes and the same foreign keys, so the floor pays
        # every check the launch pays, and nothing else.
        c.execute(f"CREATE TABLE bench_bare (LIKE {r} INCLUDING ALL)")
        c.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass",
            [r],
        )
        keys = c.fetchall()
        for name, definition in keys:
            c.execute(f'ALTER TABLE bench_bare ADD CONSTRAINT "bare_{name}" {definition}')
        c.execute("ANALYZE")

    def bare_insert() -> None:
        with connection.cursor() as c:
            c.execute(
                """INSERT INTO bench_bare (reference, campaign_id, batch_id, member_id, mandate_id,
                controller_id, "right", state, extension_months, extension_reason, paused_days, clock_paused,
                info_kind, info_question, message_id, delivery_error, drp_request_id, drp_status,
                refusal_ground, refusal_reasons, answer_directly_to, outcome, outcome_statement, recipients_told,
            history_seq, history_head, created_at,
                updated_at)
                SELECT 'R' || m.id || '-' || b.id, b.campaign_id, b.id, m.member_id, m.id, b.controller_id,
                'access', 'queued', 0, '', 0, false, '', '', '', '', '', '', '', '', '', '', '', '', 0, '', now(), now()
                FROM communities_mandate m CROSS JOIN requests_engine_batch b
                WHERE b.campaign_id = %s""",
                [floor_campaign.pk],
            )
            if c.rowcount != total:
                raise RuntimeError(f"the floor inserted {c.rowcount:,} rows, not {total:,}")

    def empty(table: str) -> None:
        with connection.cursor() as c:
            # Both runs start from an empty table of the same shape; the deferred key checks fire at commit.
            c.execute(f"TRUNCATE {table} CASCADE")

    def launch_once(campaign: Campaign) -> dict[str, int]:
        created = launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.system("bench"), dispatch=False)
        assert created == {"access": total}, created
        return created

    if "launch" in SECTIONS:
        print(f"1. Creating {total:,} requests ({len(keys)} foreign keys on both tables)")
        print("  warm-up: one bare insert, not counted", flush=True)
        bare_insert()
        floors: list[float] = []
        launches: list[float] = []
        rss_before = peak_rss_mib()
        for round_number in range(3):
            campaign = draft_campaign(f"Bench {round_number + 1}")
            # Alternate which goes first, so neither always meets the other's leftovers (WAL, cache, autovacuum).
            for run in ("floor", "launch") if round_number % 2 == 0 else ("launch", "floor"):
                if run == "floor":
                    empty("bench_bare")
                    seconds, _ = timed(
                        "bare INSERT … SELECT into the copy with the same keys and indexes", bare_insert
                    )
                    floors.append(seconds)
                else:
                    empty(r)
                    # The truncation took the events of an earlier round's campaign with it: drop that campaign
                    # too, so the audit log checked below is whole.
                    earlier = Campaign.objects.filter(name__startswith="Bench ").exclude(
                        state=Campaign.State.DRAFT
                    )
                    Batch.objects.filter(campaign__in=earlier).delete()
                    earlier.delete()
                    seconds, _ = timed(
                        "campaign_launch (batches + eligibility + INSERT … SELECT)",
                        partial(launch_once, campaign),
                    )
                    launches.append(seconds)
        launch_rss = peak_rss_mib()
        bare, ours = statistics.median(floors), statistics.median(launches)
        print(f"  median of 3: launch {ours:.2f} s, floor {bare:.2f} s")
        print(f"  ratio: {ours / bare:.2f}× the constrained floor (target ≤ {TARGET_RATIO}×)")
        print(
            f"  peak memory of this process: {rss_before:.0f} MiB before the launches, {launch_rss:.0f} MiB after "
            "(set-based: it does not grow with the number of members)"
        )
    else:
        print(f"1. Creating {total:,} requests with one launch (not timed)", flush=True)
        launch_once(draft_campaign("Bench 1"))
    empty("bench_bare")

    print(f"2. Sweeping deadlines over {total:,} open requests")

    def spread_receipts(days: int) -> int:
        with connection.cursor() as c:
            c.execute(
                f"""UPDATE {r} SET state = 'sent', received_on = %s::date - (id %% {days})::int,
                          clock_start_on = %s::date - (id %% {days})::int,
                          due_on = (%s::date - (id %% {days})::int + interval '1 month')::date""",
                [today, today, today],
            )
        with connection.cursor() as c:
            # Autovacuum would tidy a real table between sweeps; the setup's million-row UPDATE needs it now.
            c.execute(f"VACUUM ANALYZE {r}")
        return DataRightsRequest.objects.filter(due_on__lt=today).count()

    # Day to day: receipts spread over the last 33 days, so today's sweep meets the requests whose
    # deadline passed yesterday, about 1/33 of those open.
    due = spread_receipts(33)
    sweep, moved = timed(
        f"daily sweep_deadlines ({due:,} newly past their due date)", deadline_sweep.deadlines_sweep
    )
    again, moved_again = timed("sweep_deadlines again (nothing left to move)", deadline_sweep.deadlines_sweep)
    print(f"  marked overdue: {moved:,}, then {moved_again} (target: under {TARGET_DAILY_SECONDS:.0f} s)")
    # A backlog: no sweep for two weeks, so about 30% of the open requests pass their deadline at once.
    backlog_due = spread_receipts(45)
    backlog, backlog_moved = timed(
        f"backlog sweep_deadlines ({backlog_due:,} past their due date)", deadline_sweep.deadlines_sweep
    )
    chain_ok, breaks = timed("verify_audit_log over the swept events", chain_breaks)
    audit = "intact" if not breaks else f"broken: {breaks[0]}"
    print(f"  audit log: {audit}")

    print("\nSummary")
    if "launch" in SECTIONS:
        print(
            f"  expansion (median of 3): {total:,} requests in {ours:.2f} s; constrained floor {bare:.2f} s; "
            f"ratio {ours / bare:.2f}× (target ≤ {TARGET_RATIO}×); peak memory {rss_before:.0f} → "
            f"{launch_rss:.0f} MiB"
        )
    print(
        f"  daily sweep: {total:,} open requests, {moved:,} marked overdue in {sweep:.2f} s "
        f"(target < {TARGET_DAILY_SECONDS:.0f} s); re-run {again:.2f} s"
    )
    print(
        f"  backlog sweep: {backlog_moved:,} marked overdue in {backlog:.2f} s "
        f"(target < {TARGET_BACKLOG_SECONDS:.0f} s); audit log {audit}"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    raise SystemExit(main())
