"""The coordinators' dashboard on the admin index: each figure is checked against a hand-built fixture, and
each figure's link opens the changelist showing exactly the rows it counted."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from core.audit import Actor
from requests_engine import services, sweep
from requests_engine.admin import dashboard as admin_dashboard
from requests_engine.escalation import complaints
from requests_engine.models import Complaint, InformationKind
from tests.factories import make_member, make_request

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 6, 10)  # a Wednesday; "within 7 days" runs to Wednesday 17 June
SYSTEM = Actor.system()
CONTROLLER_ACTOR = Actor(Actor.CONTROLLER, "1")
REASONS = "We will not search our archives: you may complain to the ICO or apply to a court."

# What each figure must count, by reference.
EXPECTED_REQUESTS = {
    "requests due within 7 days": {"R-FRIDAY", "R-TODAY", "R-DAY-7"},
    "requests overdue": {"R-SWEPT", "R-UNSWEPT"},
    "refused: Legal professional privilege (DPA 2018 Sch 2 para 19)": {"R-EX-1", "R-EX-2", "R-PART"},
    "refused: Manifestly excessive (Art 12(5))": {"R-EXCESS"},
}
EXPECTED_COMPLAINTS = {
    "complaints waiting for approval": {"K-DRAFT-1", "K-DRAFT-2"},
    "acknowledgements due within 7 days": {"K-ACK-TODAY", "K-ACK-DAY-7"},
    "acknowledgements missed": {"K-ACK-MISSED"},
    # The same rule as the complaints list's "ICO pack to build" filter (escalation/selectors.py).
    "ICO packs to build": {"K-ACK-MISSED"},
    "ICO packs to submit": {"K-ICO-DRAFT"},
    "ICO cases open": {"K-ICO-SENT", "K-ICO-ACK"},
}


def at(day: dt.date):
    """Late morning of `day`: the same date in UTC and in London."""
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


@pytest.fixture
def board(community, controller):
    """Requests and complaints in every position a figure tells apart, each named by its reference."""
    member = make_member(community)

    def sent(reference: str, received: dt.date):
        request = make_request(member, controller, reference=reference)
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=received, actor=SYSTEM)
        return request

    def refused(reference: str, ground: str):
        request = sent(reference, dt.date(2026, 5, 20))
        services.request_refuse(request_id=request.pk, ground=ground, reasons=REASONS, actor=CONTROLLER_ACTOR)
        return request

    with at(dt.date(2026, 5, 21)):
        sent("R-SWEPT", dt.date(2026, 4, 20))  # due Wednesday 20 May
        complained = sent("R-COMPLAINED", dt.date(2026, 4, 20))
        assert sweep.deadlines_sweep() == 2
        complaints.request_complain_to_controller(request_id=complained.pk, actor=SYSTEM)
    with at(TODAY):
        sent("R-FRIDAY", dt.date(2026, 5, 12))  # due Friday 12 June
        acknowledged = sent("R-TODAY", dt.date(2026, 5, 10))  # due today: still due, not overdue
        services.request_acknowledge(request_id=acknowledged.pk, actor=CONTROLLER_ACTOR)
        sent("R-DAY-7", dt.date(2026, 5, 17))  # due Wednesday 17 June, the last day of the window
        sent("R-DAY-8", dt.date(2026, 5, 18))  # due Thursday 18 June, the day after it
        paused = sent("R-PAUSED", dt.date(2026, 5, 12))  # due 12 June, but the clock stands still
        services.request_ask_for_information(
            request_id=paused.pk,
            kind=InformationKind.IDENTITY,
            question="Photo ID, please.",
            asked_on=dt.date(2026, 5, 20),
            actor=CONTROLLER_ACTOR,
        )
        sent("R-UNSWEPT", dt.date(2026, 5, 1))  # due Monday 1 June; today's sweep has not run yet
        refused("R-EX-1", "legal_privilege")
        refused("R-EX-2", "legal_privilege")
        refused("R-EXCESS", "manifestly_excessive")
        taken = refused("R-TAKEN", "legal_privilege")  # refused, then taken to a complaint: no longer waiting
        complaints.request_complain_to_controller(request_id=taken.pk, actor=SYSTEM)
        partial = sent("R-PART", dt.date(2026, 5, 20))
        services.request_partially_fulfil(
            request_id=partial.pk, ground="legal_privilege", reasons=REASONS, actor=CONTROLLER_ACTOR
        )
        fulfilled = sent("R-DONE", dt.date(2026, 5, 20))
        services.request_fulfil(request_id=fulfilled.pk, actor=CONTROLLER_ACTOR)

    # Complaints as the complaint services leave them (test_complaints.py drives those services); the
    # dashboard reads only their kind, state and acknowledgement date.
    def complaint(reference: str, kind: str, state: str, ack_due: dt.date | None = None) -> None:
        Complaint.objects.create(
            reference=reference,
            kind=kind,
            state=state,
            community=community,
            controller=controller,
            grounds="Grounds.",
            acknowledgement_due_on=ack_due,
            sent_on=ack_due - dt.timedelta(days=30) if ack_due else None,
        )

    ctrl, ico = Complaint.Kind.CONTROLLER, Complaint.Kind.ICO
    complaint("K-DRAFT-1", ctrl, "draft")
    complaint("K-DRAFT-2", ctrl, "draft")
    complaint("K-ACK-TODAY", ctrl, "sent", TODAY)
    complaint("K-ACK-DAY-7", ctrl, "sent", dt.date(2026, 6, 17))
    complaint("K-ACK-DAY-8", ctrl, "sent", dt.date(2026, 6, 18))
    complaint("K-ACK-MISSED", ctrl, "sent", dt.date(2026, 6, 9))
    complaint("K-ACKNOWLEDGED", ctrl, "acknowledged", dt.date(2026, 6, 1))
    complaint("K-CLOSED", ctrl, "closed", dt.date(2026, 5, 1))
    complaint("K-ICO-DRAFT", ico, "draft")
    complaint("K-ICO-SENT", ico, "sent")
    complaint("K-ICO-ACK", ico, "acknowledged")
    complaint("K-ICO-CLOSED", ico, "closed")
    return member


def figures(user) -> dict[str, admin_dashboard.Figure]:
    board = admin_dashboard.dashboard(user=user, today=TODAY)
    return {figure.label: figure for figure in [*board.requests, *board.refusals, *board.complaints]}


def listed_references(page: str) -> set[str]:
    """The references in a changelist's rows (the first column links each row to its change page)."""
    return set(re.findall(r'<th class="field-reference"><a href="[^"]+">([^<]+)</a>', page))


def test_each_figure_counts_exactly_the_rows_it_describes(board, coordinator, django_assert_num_queries):
    with django_assert_num_queries(3):  # requests, refusals by ground, complaints: however many rows
        shown = figures(coordinator)
    expected = {**EXPECTED_REQUESTS, **EXPECTED_COMPLAINTS}
    assert {label: figure.count for label, figure in shown.items()} == {
        label: len(refs) for label, refs in expected.items()
    }
    # Refusals are listed most frequent ground first; grounds nobody used are not listed.
    board_now = admin_dashboard.dashboard(user=coordinator, today=TODAY)
    assert [f.label for f in board_now.refusals] == [
        "refused: Legal professional privilege (DPA 2018 Sch 2 para 19)",
        "refused: Manifestly excessive (Art 12(5))",
    ]


def test_every_figure_on_the_admin_index_links_to_a_list_of_exactly_its_rows(board, client, coordinator):
    client.force_login(coordinator)
    with at(TODAY):
        index = client.get("/admin/").content.decode()
        shown = figures(coordinator)
        expected = {**EXPECTED_REQUESTS, **EXPECTED_COMPLAINTS}
        assert set(shown) == set(expected)
        for label, references in expected.items():
            figure = shown[label]
            hidden = f'<span class="visually-hidden"> {label}</span>'
            assert f'<a href="{html.escape(figure.url)}">{figure.count}{hidden}</a>' in index, label
            listing = client.get(figure.url)
            assert listing.status_code == 200, label
            assert listed_references(listing.content.decode()) == references, label


def test_the_index_still_lists_the_models_and_says_which_day_the_figures_are_for(board, client, coordinator):
    client.force_login(coordinator)
    with at(TODAY):
        index = client.get("/admin/").content.decode()
    assert "Requests: deadlines on 10 June 2026" in index
    assert "Refusals by legal ground, not yet taken further" in index
    assert 'id="content-main"' in index and "/admin/requests_engine/campaign/" in index


def test_with_nothing_refused_the_refusals_table_says_so(client, coordinator):
    client.force_login(coordinator)
    index = client.get("/admin/").content.decode()
    assert "No refused or partly fulfilled request is waiting." in index
    assert "requests overdue" in index


def test_staff_see_only_the_figures_their_permissions_allow(board, client):
    clerk = get_user_model().objects.create_user("clerk@community.test", "clerk@community.test", "pw")
    clerk.is_staff = True
    clerk.save()
    clerk.user_permissions.add(Permission.objects.get(codename="view_complaint"))
    client.force_login(clerk)
    with at(TODAY):
        index = client.get("/admin/").content.decode()
    assert "complaints waiting for approval" in index
    assert "requests overdue" not in index and "Refusals by legal ground" not in index
