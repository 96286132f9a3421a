"""One rule for "is an ICO pack due": the list filter, the dashboard count and the reason given all agree."""

import datetime as dt

import pytest

from core.audit import Actor
from requests_engine.escalation import selectors
from requests_engine.events import record_event
from requests_engine.models import Complaint

TODAY = dt.date(2026, 6, 10)
SYSTEM = Actor.system("test")


@pytest.fixture
def ladder(community, controller):
    def complaint(reference: str, state: str, ack_due: dt.date | None = None, kind: str = "controller"):
        return Complaint.objects.create(
            reference=reference,
            kind=kind,
            state=state,
            community=community,
            controller=controller,
            grounds="Grounds.",
            acknowledgement_due_on=ack_due,
        )

    made = {
        "draft": complaint("K-DRAFT", "draft"),
        "awaited": complaint("K-AWAITED", "sent", TODAY),
        # Past due, and the daily sweep has not flagged it yet: already due.
        "late": complaint("K-LATE", "sent", dt.date(2026, 6, 9)),
        "acknowledged": complaint("K-ACKNOWLEDGED", "acknowledged", dt.date(2026, 6, 1)),
        "resolved": complaint("K-RESOLVED", "closed", dt.date(2026, 5, 1)),
        "unresolved": complaint("K-UNRESOLVED", "closed", dt.date(2026, 5, 1)),
        "built": complaint("K-BUILT", "closed", dt.date(2026, 5, 1)),
        "ico": complaint("K-ICO", "draft", kind="ico"),
    }
    record_event(subject=made["resolved"], kind=selectors.CLOSED, actor=SYSTEM, payload={"resolved": True})
    for name in ("unresolved", "built"):
        record_event(subject=made[name], kind=selectors.CLOSED, actor=SYSTEM, payload={"resolved": False})
    record_event(subject=made["built"], kind=selectors.PACK_BUILT, actor=SYSTEM, payload={"ico_complaint": 0})
    return made


def references(rule) -> set[str]:
    return set(Complaint.objects.filter(rule).values_list("reference", flat=True))


def test_an_ico_pack_is_due_when_the_acknowledgement_is_late_or_the_outcome_unresolved(ladder):
    assert references(selectors.ico_pack_warranted(TODAY)) == {"K-LATE", "K-UNRESOLVED", "K-BUILT"}
    assert references(selectors.ico_pack_due(TODAY)) == {"K-LATE", "K-UNRESOLVED"}
    reasons = {name: selectors.ico_pack_reason(c, today=TODAY) for name, c in ladder.items()}
    assert reasons == {
        "draft": "",
        "awaited": "",
        "late": "not acknowledged by 9 June 2026",
        "acknowledged": "",
        "resolved": "",
        "unresolved": "the outcome left requests unresolved",
        "built": "the outcome left requests unresolved",
        "ico": "",
    }


def test_the_next_step_text_follows_the_same_rule(ladder):
    flagged = {c.reference: c for c in Complaint.objects.annotate(**selectors.complaint_flags())}
    steps = {ref: selectors.next_step_text(c, today=TODAY) for ref, c in flagged.items()}
    assert steps == {
        "K-DRAFT": "Review and approve",
        "K-AWAITED": "Waiting for acknowledgement (due 10 June 2026; ICO pack possible from 11 June 2026)",
        "K-LATE": "Build the ICO pack: not acknowledged by 9 June 2026",
        "K-ACKNOWLEDGED": "Waiting for the outcome",
        "K-RESOLVED": "Done",
        "K-UNRESOLVED": "Build the ICO pack: outcome unresolved",
        "K-BUILT": "ICO pack built",
        "K-ICO": "Submit the pack to the ICO, then record the case reference",
    }
