import datetime as dt

import pytest
import time_machine
from django_fsm import TransitionNotAllowed

from core.audit import Actor
from requests_engine import services
from requests_engine.escalation import complaints
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import DataRightsRequest, InformationKind, RefusalGround, RequestEvent
from tests.factories import make_mandate, make_member, make_request

CONTROLLER = Actor(Actor.CONTROLLER, "1")
SYSTEM = Actor.system()


def sent(data_request, received=dt.date(2026, 3, 2)):
    services.request_approve(request_id=data_request.pk, actor=SYSTEM)
    return services.request_dispatch(request_id=data_request.pk, received_on=received, actor=SYSTEM)


def state_of(data_request):
    return DataRightsRequest.objects.get(pk=data_request.pk).state


@time_machine.travel(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC))
def test_dispatch_sets_receipt_and_derives_the_due_date(data_request):
    request = sent(data_request, received=dt.date(2026, 3, 2))
    assert request.state == "sent"
    assert request.received_on == dt.date(2026, 3, 2)
    assert request.due_on == dt.date(2026, 4, 2)


@time_machine.travel(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC))
def test_a_transition_from_the_wrong_state_is_refused_and_changes_nothing(data_request):
    with pytest.raises(RequestEngineError, match="is draft: it cannot be acknowledged"):
        services.request_acknowledge(request_id=data_request.pk, actor=CONTROLLER)
    assert state_of(data_request) == "draft"
    assert not RequestEvent.objects.filter(request=data_request).exists()


def test_the_state_field_cannot_be_assigned_directly(data_request):
    with pytest.raises(AttributeError):
        data_request.state = "fulfilled"


def test_the_model_refuses_a_transition_the_lifecycle_does_not_allow(data_request):
    with pytest.raises(TransitionNotAllowed):
        data_request.fulfil(answered_on=dt.date(2026, 1, 1))


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_extension_moves_the_due_date_by_up_to_two_months_from_the_start(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))
    request = services.request_extend(
        request_id=data_request.pk, months=2, reason="Many requests", actor=CONTROLLER
    )
    assert request.state == "extended"
    assert request.due_on == dt.date(2026, 6, 2)
    assert (
        RequestEvent.objects.filter(request=data_request, kind="request.extended").get().payload["months"]
        == 2
    )


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_refuses_a_second_extension(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))
    services.request_extend(request_id=data_request.pk, months=1, reason="Complex", actor=CONTROLLER)
    with pytest.raises(RequestEngineError, match="cannot be extended"):
        services.request_extend(request_id=data_request.pk, months=1, reason="Again", actor=CONTROLLER)
    assert DataRightsRequest.objects.get(pk=data_request.pk).extension_months == 1


@time_machine.travel(dt.datetime(2026, 4, 10, 12, tzinfo=dt.UTC))
def test_refuses_extension_after_due_date(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))  # due 2 April
    with pytest.raises(RequestEngineError, match="before the deadline"):
        services.request_extend(request_id=data_request.pk, months=2, reason="Late", actor=CONTROLLER)
    assert state_of(data_request) == "sent"


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
@pytest.mark.parametrize(
    ("months", "reason", "message"),
    [(3, "Too long", "one or two further months"), (0, "None", "one or two"), (2, "  ", "reasons")],
)
def test_refuses_a_malformed_extension(data_request, months, reason, message):
    sent(data_request)
    with pytest.raises(RequestEngineError, match=message):
        services.request_extend(request_id=data_request.pk, months=months, reason=reason, actor=CONTROLLER)
    assert state_of(data_request) == "sent"


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_clarification_pauses_an_access_request_for_the_days_asked_to_answered_inclusive(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))
    services.request_ask_for_information(
        request_id=data_request.pk,
        kind=InformationKind.CLARIFICATION,
        question="Which account?",
        asked_on=dt.date(2026, 3, 4),
        actor=CONTROLLER,
    )
    paused = DataRightsRequest.objects.get(pk=data_request.pk)
    assert paused.state == "info_requested" and paused.clock_paused and paused.days_left() is None
    request = services.request_give_information(
        request_id=data_request.pk, received_on=dt.date(2026, 3, 10), actor=Actor(Actor.MEMBER, "1")
    )
    assert request.state == "acknowledged"
    assert request.paused_days == 7
    assert request.due_on == dt.date(2026, 4, 9)  # 2 April + 7 days


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_clarification_does_not_pause_an_erasure_request(community, controller):
    other = make_member(community, "Eve Erasure")
    request = make_request(
        other, controller, right="erasure", mandate=make_mandate(other, rights=["erasure"])
    )
    sent(request, received=dt.date(2026, 3, 2))
    services.request_ask_for_information(
        request_id=request.pk,
        kind="clarification",
        question="Which?",
        asked_on=dt.date(2026, 3, 4),
        actor=CONTROLLER,
    )
    assert not DataRightsRequest.objects.get(pk=request.pk).clock_paused


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_proof_of_identity_restarts_the_month_from_its_receipt(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))
    services.request_ask_for_information(
        request_id=data_request.pk,
        kind=InformationKind.IDENTITY,
        question="Photo ID please",
        asked_on=dt.date(2026, 3, 5),
        actor=CONTROLLER,
    )
    request = services.request_give_information(
        request_id=data_request.pk, received_on=dt.date(2026, 3, 16), actor=SYSTEM
    )
    assert request.clock_start_on == dt.date(2026, 3, 16)
    assert request.received_on == dt.date(2026, 3, 2)
    assert request.due_on == dt.date(2026, 4, 16)


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_refusal_needs_a_known_ground_and_reasons(data_request):
    sent(data_request)
    with pytest.raises(RequestEngineError, match="reasons"):
        services.request_refuse(
            request_id=data_request.pk, ground=RefusalGround.OTHER, reasons="", actor=CONTROLLER
        )
    with pytest.raises(RequestEngineError, match="Unknown legal ground"):
        services.request_refuse(request_id=data_request.pk, ground="because", reasons="x", actor=CONTROLLER)
    request = services.request_refuse(
        request_id=data_request.pk,
        ground=RefusalGround.MANIFESTLY_EXCESSIVE,
        reasons="The fourth identical request this month.",
        actor=CONTROLLER,
    )
    assert request.state == "refused"


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_refuses_dates_in_the_future(data_request):
    services.request_approve(request_id=data_request.pk, actor=SYSTEM)
    with pytest.raises(RequestEngineError, match="in the future"):
        services.request_dispatch(request_id=data_request.pk, received_on=dt.date(2026, 3, 21), actor=SYSTEM)
    assert state_of(data_request) == "queued"


@time_machine.travel(dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC))
def test_the_full_escalation_path_is_recorded_step_by_step(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))
    services.request_mark_overdue(request_id=data_request.pk)
    complaints.request_complain_to_controller(request_id=data_request.pk, actor=SYSTEM)
    services.request_escalate_to_ico(request_id=data_request.pk, actor=SYSTEM, case_reference="IC-1234")
    services.request_close(request_id=data_request.pk, actor=SYSTEM, outcome="ICO upheld the complaint")
    kinds = list(
        RequestEvent.objects.filter(request=data_request).order_by("seq").values_list("kind", flat=True)
    )
    assert kinds == [
        "request.approved",
        "request.dispatched",
        "request.overdue",
        "request.complaint_to_controller",
        "request.escalated_to_ico",
        "request.closed",
    ]


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_refuses_to_mark_overdue_before_the_deadline(data_request):
    sent(data_request, received=dt.date(2026, 3, 2))
    with pytest.raises(RequestEngineError, match="not overdue"):
        services.request_mark_overdue(request_id=data_request.pk)


@time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC))
def test_withdrawal_ends_any_open_request_but_not_a_closed_one(member, controller, community):
    open_request = make_request(member, controller)
    sent(open_request)
    assert (
        services.request_withdraw(request_id=open_request.pk, actor=SYSTEM, reason="revoked").state
        == "withdrawn"
    )
    other = make_member(community, "Mary Shelley")
    done = make_request(other, controller, mandate=make_mandate(other))
    sent(done)
    services.request_fulfil(request_id=done.pk, actor=CONTROLLER)
    with pytest.raises(RequestEngineError, match="fulfilled: it cannot be withdrawn"):
        services.request_withdraw(request_id=done.pk, actor=SYSTEM)
