import datetime as dt

import pytest
import time_machine

from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services, sweep
from requests_engine.notices import reminders
from tests.factories import make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db


def sent_on(community, controller, name, received):
    member = make_member(community, name)
    request = make_request(member, controller, mandate=make_mandate(member), reference=f"R-{name.split()[0]}")
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=received, actor=Actor.system())
    return request


def test_controllers_are_reminded_a_week_before_and_on_the_day_once(
    community, controller, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)):
        # Reminders go by the earliest plausible reading: the strict one, a day before the corresponding date.
        week = sent_on(community, controller, "Week Wendy", dt.date(2026, 2, 28))  # earliest Fri 27 Mar
        today = sent_on(community, controller, "Today Tom", dt.date(2026, 2, 21))  # earliest Fri 20 Mar
        sent_on(community, controller, "Later Lou", dt.date(2026, 3, 10))
        with django_capture_on_commit_callbacks(execute=True):
            assert reminders.deadline_reminders_send() == 2
            assert reminders.deadline_reminders_send() == 0
    bodies = {m.subject: m.body for m in mailoutbox}
    assert week.reference in bodies["Reminder: 1 data rights request(s) due in 7 days"]
    assert today.reference in bodies["Reminder: 1 data rights request(s) due today"]
    assert all("R-Later" not in body for body in bodies.values())
    # One deadline statement: the date the reminder counts, beside the one escalation waits for.
    due_today = bodies["Reminder: 1 data rights request(s) due today"]
    assert "due 20 March 2026 on the earliest reading of the time limit" in due_today
    assert "we take no further step before the end of 23 March 2026" in due_today
    assert "a posted letter: the day it was delivered" in due_today


def test_members_and_coordinators_are_told_when_a_request_goes_overdue(
    community, controller, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(dt.datetime(2026, 3, 23, 9, tzinfo=dt.UTC)):
        late = sent_on(community, controller, "Late Larry", dt.date(2026, 2, 20))
        sweep.deadlines_sweep()
        with django_capture_on_commit_callbacks(execute=True):
            assert reminders.overdue_notices_send() == 2
            assert reminders.overdue_notices_send() == 0
    to = {tuple(m.to): m for m in mailoutbox}
    assert late.reference in to[(late.member.user.email,)].body
    assert late.reference in to[(community.contact_email,)].body
    assert OutboundMessage.objects.filter(purpose="community.overdue_summary").count() == 1


def test_the_scheduled_sweep_marks_overdue_tells_members_and_reminds_controllers(
    community, controller, mailoutbox, django_capture_on_commit_callbacks
):
    from requests_engine import tasks

    with time_machine.travel(dt.datetime(2026, 3, 23, 9, tzinfo=dt.UTC)):
        late = sent_on(community, controller, "Late Larry", dt.date(2026, 2, 20))
        sent_on(community, controller, "Soon Sue", dt.date(2026, 2, 24))  # earliest due Mon 23 Mar: today
        with django_capture_on_commit_callbacks(execute=True):
            first = tasks.sweep_deadlines()
            again = tasks.sweep_deadlines()  # beat runs it hourly: nothing twice
    assert first == {
        "overdue": 1,
        "erasures_released": 0,
        "notices": 2,
        "reminders": 1,
        "confirmation_reminders": 0,
    }
    assert again == {
        "overdue": 0,
        "erasures_released": 0,
        "notices": 0,
        "reminders": 0,
        "confirmation_reminders": 0,
    }
    assert any(late.reference in m.body and m.to == [late.member.user.email] for m in mailoutbox)
