"""Two digest runs at once: each notice goes out in exactly one email. Runs on PostgreSQL (real row locks
across connections); SQLite serialises writers anyway."""

import threading

import pytest
from django.db import close_old_connections, connection  # noqa: F401  (the skipif reads it)

from communities import notices
from communities.models import Notice
from core.models import OutboundMessage

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL row locks"),
]


def test_overlapping_digest_runs_send_each_notice_once(member):
    notices.notifications_choose(member=member, notifications="daily")
    for n in range(20):
        notices.notify_member(member, f"Step {n}", "Something happened.", f"/me/requests/R{n}/")
    barrier = threading.Barrier(2)
    outcomes = [None, None]

    def run(i):
        try:
            barrier.wait()
            outcomes[i] = notices.digests_send()
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [0, 1]
    [digest] = OutboundMessage.objects.filter(purpose="member.digest")
    assert all(f"Step {n} " in digest.body_text for n in range(20))
    assert not Notice.objects.filter(emailed_at__isnull=True).exists()
