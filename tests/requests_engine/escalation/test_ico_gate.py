"""The ICO may be asked only once the controller has had its chance (s.165 DPA 2018 after s.164A): not on
the day the complaint is sent; from the day after the acknowledgement date if unacknowledged; after an
acknowledgement, once the outcome is unresolved or has not come within the allowed days."""

import datetime as dt

import pytest

from requests_engine.escalation import complaints, ico_pack, selectors
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Complaint
from tests.requests_engine.escalation.test_complaints import (  # noqa: F401 (fixtures)
    ASK,
    HARM,
    at,
    globex,
    ladder,
    send_acme_complaint,
)

pytestmark = pytest.mark.django_db


def ready(complaint, day) -> bool:
    with at(day):
        complaint = Complaint.objects.get(pk=complaint.pk)
        offered = "ico-pack" in dict(selectors.available_steps(complaint, today=day))
        reason = selectors.ico_pack_reason(complaint, today=day)
        assert offered == bool(reason)  # the button is there exactly when a pack may be built
        return offered


def test_unacknowledged_the_pack_waits_until_the_day_after_the_acknowledgement_date(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    due = complaint.acknowledgement_due_on
    assert not ready(complaint, complaint.sent_on)
    with at(complaint.sent_on), pytest.raises(RequestEngineError, match="can be built from"):
        ico_pack.ico_pack_build(complaint_id=complaint.pk, harm=HARM, ask=ASK, actor=coordinator_actor)
    assert selectors.ico_pack_not_yet(complaint, today=complaint.sent_on).startswith(
        f"The ICO pack can be built from {selectors.long_date(due + dt.timedelta(days=1))}"
    )
    assert not ready(complaint, due)
    assert ready(complaint, due + dt.timedelta(days=1))


def test_acknowledged_it_is_ready_after_the_allowed_days_without_an_outcome_or_at_once_if_unresolved(
    ladder, coordinator_actor, django_capture_on_commit_callbacks, settings
):
    settings.ICO_OUTCOME_WAIT_DAYS = 30
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    acknowledged = complaint.sent_on + dt.timedelta(days=5)
    with at(acknowledged):
        complaints.complaint_record_acknowledgement(
            complaint_id=complaint.pk, acknowledged_on=acknowledged, actor=coordinator_actor
        )
    far_later = complaint.acknowledgement_due_on + dt.timedelta(days=1)  # the ack date alone no longer counts
    assert not ready(complaint, far_later)
    assert not ready(complaint, acknowledged + dt.timedelta(days=29))
    assert ready(complaint, acknowledged + dt.timedelta(days=30))

    with at(acknowledged + dt.timedelta(days=10)):
        complaints.complaint_record_outcome(
            complaint_id=complaint.pk, outcome="We will not answer.", resolved=False, actor=coordinator_actor
        )
    assert ready(complaint, acknowledged + dt.timedelta(days=10))


def test_a_resolved_complaint_never_goes_to_the_ico(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(complaint.sent_on + dt.timedelta(days=2)):
        complaints.complaint_record_outcome(
            complaint_id=complaint.pk, outcome="All answered.", resolved=True, actor=coordinator_actor
        )
    assert not ready(complaint, complaint.sent_on + dt.timedelta(days=90))


def test_the_icos_three_month_window_is_shown_and_reminded_a_fortnight_ahead_once(
    ladder, coordinator_actor, django_capture_on_commit_callbacks, mailoutbox
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    closes = selectors.ico_window_closes_on(complaint)
    assert closes == selectors.add_months(complaint.sent_on, 3)
    assert complaints.ico_window_reminders_send(today=closes - dt.timedelta(days=15)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert complaints.ico_window_reminders_send(today=closes - dt.timedelta(days=14)) == 1
        assert complaints.ico_window_reminders_send(today=closes - dt.timedelta(days=13)) == 0
    [reminder] = [m for m in mailoutbox if "ICO window closes" in m.subject]
    assert complaint.reference in reminder.subject
