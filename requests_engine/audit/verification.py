"""The whole audit check that verify_audit_log and its beat task run, and who is told when it fails."""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from communities.models import Community, Mandate
from core import outbox
from core.models import OutboundMessage
from requests_engine.audit import checkpoints, consistency
from requests_engine.events import ChainBreak, chain_breaks
from requests_engine.models import Batch, Campaign, Complaint, DataRightsRequest

logger = logging.getLogger(__name__)
ALERT_PURPOSE = "audit.failure"


@dataclass
class AuditReport:
    problems: list[ChainBreak] = field(default_factory=list)
    checkpoint: str = ""  # the checkpoint compared against, if any

    @property
    def intact(self) -> bool:
        return not self.problems


def audit_verify(*, checkpoint_file: Path | None = None) -> AuditReport:
    """Check the chains (against the latest checkpoint, or `checkpoint_file`), then the records against
    their histories. Problems come in that order, each part earliest first."""
    report = AuditReport()
    try:
        sealed = (
            checkpoints.checkpoint_read(checkpoint_file)
            if checkpoint_file
            else checkpoints.latest_checkpoint()
        )
    except checkpoints.CheckpointError as exc:
        report.problems.append(ChainBreak(None, "checkpoint", str(exc)))
        sealed = None
    if sealed is not None:
        report.checkpoint = sealed.name
    report.problems += chain_breaks(checkpoint=sealed.heads if sealed else None)
    report.problems += consistency.state_mismatches()
    report.problems += consistency.mandate_term_problems()
    report.problems += consistency.requests_missing_their_evidence()
    return report


def _communities_of(problems: list[ChainBreak]) -> dict[int | None, list[ChainBreak]]:
    """Problems by the community whose record they concern (None: the installation as a whole)."""
    ids: dict[str, set[int]] = defaultdict(set)
    for problem in problems:
        label, _, pk = problem.stream.partition(":")
        if pk.isdigit():
            ids[label].add(int(pk))
    lookups = {
        "request": DataRightsRequest.objects.values_list("pk", "member__community_id"),
        "campaign": Campaign.objects.values_list("pk", "community_id"),
        "batch": Batch.objects.values_list("pk", "campaign__community_id"),
        "mandate": Mandate.objects.values_list("pk", "member__community_id"),
        "complaint": Complaint.objects.values_list("pk", "community_id"),
    }
    owner: dict[str, int] = {}
    for label, pks in ids.items():
        if label in lookups:
            owner.update({f"{label}:{pk}": c for pk, c in lookups[label].filter(pk__in=pks)})
    grouped: dict[int | None, list[ChainBreak]] = defaultdict(list)
    for problem in problems:
        grouped[owner.get(problem.stream)].append(problem)
    return grouped


def _lines(problems: list[ChainBreak]) -> str:
    shown = "\n".join(f"- {p}" for p in problems[:50])
    more = f"\n- … and {len(problems) - 50} more" if len(problems) > 50 else ""
    return shown + more


def audit_failure_notify(report: AuditReport, *, today: datetime.date | None = None) -> int:
    """Tell the operator (OPERATOR_EMAIL, else ADMINS) everything, and the coordinators of each community
    concerned what concerns it. Once a day per recipient: a nightly check that keeps failing does not
    flood anyone. Returns how many emails were queued."""
    if report.intact:
        return 0
    from requests_engine.notices.coordinators import coordinator_addresses

    day = (today or timezone.localdate()).isoformat()
    logger.error("The audit log failed its check: %s (%d problems)", report.problems[0], len(report.problems))
    # ADMINS is (name, address) pairs up to Django 5.2 and plain addresses from 6.0.
    admins = [a if isinstance(a, str) else a[1] for a in settings.ADMINS]
    operator = [settings.OPERATOR_EMAIL] if settings.OPERATOR_EMAIL else admins
    queued = 0
    with transaction.atomic():
        for community_id, problems in _communities_of(report.problems).items():
            if community_id is None:
                continue
            tag = f"{community_id}:{day}"
            community = Community.objects.select_for_update().get(pk=community_id)
            if OutboundMessage.objects.filter(purpose=ALERT_PURPOSE, subject_id=tag).exists():
                continue
            to, cc = coordinator_addresses(community)
            outbox.queue_email(
                to=[to],
                cc=cc,
                subject=f"{community.name}: the audit log failed its check",
                body_text=(
                    f"The nightly check of the audit log found records of {community.name} that no longer "
                    "match their history. The history is the evidence of every request made for your "
                    "members: do not act on these records until the operator has looked at them.\n\n"
                    f"{_lines(problems)}\n\nThe operator has been told.\n"
                ),
                subject_type="community",
                subject_id=tag,
                purpose=ALERT_PURPOSE,
            )
            queued += 1
        tag = f"operator:{day}"
        if operator and not OutboundMessage.objects.filter(purpose=ALERT_PURPOSE, subject_id=tag).exists():
            outbox.queue_email(
                to=operator,
                subject=f"{settings.SITE_NAME}: the audit log failed its check ({len(report.problems)} problems)",
                body_text=(
                    "verify_audit_log found the following"
                    + (f" (compared with checkpoint {report.checkpoint})" if report.checkpoint else "")
                    + f":\n\n{_lines(report.problems)}\n\n"
                    "Run `manage.py verify_audit_log` for the first break; the coordinators of the "
                    "communities concerned have been told.\n"
                ),
                subject_type="audit",
                subject_id=tag,
                purpose=ALERT_PURPOSE,
            )
            queued += 1
    return queued


def audit_verify_and_notify() -> bool:
    """The beat job: verify, and tell people if it fails. Returns whether the log is intact."""
    report = audit_verify()
    audit_failure_notify(report)
    return report.intact
