"""Each way a database writer could rewrite the audit trail (issue 13) is detected by verify_audit_log."""

import base64
import datetime as dt
import hashlib
import hmac
import importlib
import json
from pathlib import Path

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from communities import services as community_services
from communities.mandate_text import render_mandate_text, text_sha256
from communities.models import Mandate
from core.audit import Actor, AuditKey, current_key, event_content, event_digest, generate_key_text
from core.models import OutboundMessage
from requests_engine import services, sweep, tasks
from requests_engine.audit import verification
from requests_engine.events import chain_breaks, record_event
from requests_engine.models import DataRightsRequest, RequestEvent
from tests.factories import full_choices, make_member, make_request
from tests.tampering import behind_the_engines_back

SYSTEM = Actor.system()
CONTROLLER = Actor(Actor.CONTROLLER, "7")


def move_along(request):
    with time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)):
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 3, 2), actor=SYSTEM)
        services.request_acknowledge(request_id=request.pk, actor=CONTROLLER)
    return list(RequestEvent.objects.filter(request=request).order_by("seq"))


@pytest.fixture
def history(data_request):
    return move_along(data_request)


def verify(*args):
    try:
        call_command("verify_audit_log", *args)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, ""


def checkpoint():
    call_command("audit_checkpoint")


def roll_back(request, to_event, *, state=None):
    """Delete the events after `to_event` and put the request's head (and, if given, state) back to it."""
    with behind_the_engines_back():
        RequestEvent.objects.filter(request=request, seq__gt=to_event.seq).delete()
    fields = {"history_seq": to_event.seq, "history_head": to_event.hash}
    DataRightsRequest.objects.filter(pk=request.pk).update(**fields, **({"state": state} if state else {}))


def forge_next_event(request, *, digest, key_id):
    """Append a plausible event to the request's history and move its head, as a writer without the audit
    key would: `digest(fields)` is the writer's best guess at the hash."""
    request.refresh_from_db()
    fields = {
        "prev_hash": request.history_head,
        "stream": f"request:{request.pk}",
        "seq": request.history_seq + 1,
        "kind": "request.fulfilled",
        "actor_kind": Actor.CONTROLLER,
        "actor_id": "7",
        "from_state": request.state,
        "to_state": "fulfilled",
        "created_at": dt.datetime(2026, 3, 21, 9, tzinfo=dt.UTC),
        "payload": {"outcome": "data_provided"},
    }
    forged = digest(fields)
    event = RequestEvent.objects.create(request=request, hash=forged, key_id=key_id, **fields)
    DataRightsRequest.objects.filter(pk=request.pk).update(
        history_seq=fields["seq"], history_head=forged, state="fulfilled"
    )
    return event


def test_an_intact_history_verifies_and_checkpoints(history):
    assert verify() == (0, "")
    checkpoint()
    assert verify() == (0, "")
    assert all(e.key_id == current_key().id for e in history)


# -- the cases of the issue --------------------------------------------------------------------------------


def test_deleting_the_last_events_and_rolling_the_head_back_is_caught(history, data_request):
    roll_back(data_request, history[1])  # the request still says acknowledged
    code, message = verify()
    assert code == 1 and f"request:{data_request.pk}" in message
    assert "state is 'acknowledged' but its history says 'sent'" in message


def test_a_rollback_of_head_and_state_after_a_checkpoint_is_caught(history, data_request):
    checkpoint()
    # Self-consistent: the keyed chain, the head and the state all agree. Only the checkpoint remembers.
    roll_back(data_request, history[1], state="sent")
    assert chain_breaks() == []
    code, message = verify()
    assert code == 1 and f"request:{data_request.pk}" in message and "rolled back" in message
    assert "ends at #2, the checkpoint sealed #3" in message


def test_wiping_a_stream_is_caught(history, data_request):
    checkpoint()
    with behind_the_engines_back():
        RequestEvent.objects.filter(request=data_request).delete()
    DataRightsRequest.objects.filter(pk=data_request.pk).update(
        history_seq=0, history_head="", state="queued"
    )
    code, message = verify()
    assert code == 1 and "has no events, the checkpoint sealed #3" in message


def test_wiping_a_stream_with_no_checkpoint_yet_is_caught_by_the_state(history, data_request):
    with behind_the_engines_back():
        RequestEvent.objects.filter(request=data_request).delete()
    DataRightsRequest.objects.filter(pk=data_request.pk).update(history_seq=0, history_head="")
    code, message = verify()
    assert code == 1 and "state is 'acknowledged' but no event ever moved it" in message


def test_a_forged_event_with_the_old_unkeyed_hash_is_caught(history, data_request):
    def unkeyed(fields):
        return hashlib.sha256(event_content(**fields).encode()).hexdigest()

    event = forge_next_event(data_request, digest=unkeyed, key_id=current_key().id)
    code, message = verify()
    assert code == 1 and f"event {event.pk}" in message and "does not match its hash" in message


def test_a_forged_event_claiming_no_key_is_caught(history, data_request):
    def unkeyed(fields):
        return hashlib.sha256(event_content(**fields).encode()).hexdigest()

    event = forge_next_event(data_request, digest=unkeyed, key_id="")
    code, message = verify()
    assert code == 1 and f"event {event.pk}" in message and "not signed with an audit key" in message


def test_a_forged_event_signed_with_another_key_is_caught(history, data_request):
    attacker_key = AuditKey(current_key().id, b"a key the writer made up, 32 bytes+")

    event = forge_next_event(
        data_request, digest=lambda f: event_digest(key=attacker_key, **f), key_id=attacker_key.id
    )
    code, message = verify()
    assert code == 1 and f"event {event.pk}" in message and "does not match its hash" in message


def test_an_event_repointed_at_another_request_is_caught(history, member, controller, data_request):
    other = make_request(member, controller, reference="R-OTHER")
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=history[2].pk).update(request=other)
    code, message = verify()
    assert code == 1 and f"event {history[2].pk}" in message
    assert f"belongs to request:{data_request.pk} but points at request_id={other.pk} (re-pointed)" in message


def test_an_event_moved_to_another_kind_of_owner_is_caught(history, data_request, member):
    mandate = member.mandates.get()
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=history[0].pk).update(request=None, mandate=mandate)
    code, message = verify()
    assert code == 1 and f"event {history[0].pk}" in message and "re-pointed" in message


def test_a_state_changed_without_an_event_is_caught(history, data_request):
    DataRightsRequest.objects.filter(pk=data_request.pk).update(state="fulfilled")
    code, message = verify()
    assert code == 1 and data_request.reference not in message  # names the record by its stream
    assert f"request:{data_request.pk}: state is 'fulfilled' but its history says 'acknowledged'" in message


def test_a_fresh_request_moved_without_any_event_is_caught(data_request):
    assert verify() == (0, "")  # created queued or draft, with no event: as the launch makes them
    DataRightsRequest.objects.filter(pk=data_request.pk).update(state="refused")
    code, message = verify()
    assert code == 1 and "no event ever moved it" in message


@pytest.fixture
def signed_mandate(community, controller):
    community.controllers.add(controller)
    member = make_member(community, "Grace Hopper")
    choices = full_choices(member)
    text = render_mandate_text(member=member, choices=choices)
    return community_services.mandate_sign(
        member=member,
        choices=choices,
        shown_text_sha256=text_sha256(text),
        signed_name="Grace Hopper",
        ip="127.0.0.1",
        user_agent="pytest",
    )


def test_a_signed_mandate_verifies(signed_mandate):
    assert verify() == (0, "")


@pytest.mark.parametrize(
    "edit",
    [
        {"rights": ["access", "erasure", "objection"]},
        {"valid_until": dt.date(2099, 1, 1)},
        {"may_represent_in_court": True},
    ],
    ids=["rights", "end date", "court"],
)
def test_a_mandates_terms_edited_after_signing_are_caught(signed_mandate, edit):
    Mandate.objects.filter(pk=signed_mandate.pk).update(**edit)
    code, message = verify()
    assert code == 1 and f"mandate:{signed_mandate.pk}" in message
    assert "terms (rights, organisations, purposes or dates) differ from those signed" in message


def test_an_organisation_added_to_a_mandate_after_signing_is_caught(signed_mandate):
    from requests_engine.models import Controller

    signed_mandate.controllers.add(Controller.objects.create(slug="other", name="Other", email="o@o.test"))
    code, message = verify()
    assert code == 1 and "differ from those signed" in message


def test_a_mandates_signed_text_edited_is_caught(signed_mandate):
    Mandate.objects.filter(pk=signed_mandate.pk).update(text=signed_mandate.text + "And anything else.\n")
    code, message = verify()
    assert code == 1 and "signed text does not match its hash" in message


def test_the_upgrade_records_the_terms_of_mandates_signed_before_they_were_recorded(member):
    """Migration 0022, on a mandate whose signing event predates the terms record."""
    mandate = member.mandates.get()
    record_event(
        subject=mandate,
        kind="mandate.signed",
        actor=Actor(Actor.MEMBER, str(member.pk)),
        to_state="active",
        payload={"text_sha256": mandate.text_sha256},
    )
    migration = importlib.import_module("requests_engine.migrations.0022_terms_of_mandates_signed_before")
    migration.record_terms(apps, None)
    migration.record_terms(apps, None)  # once only
    kinds = list(RequestEvent.objects.filter(mandate=mandate).order_by("seq").values_list("kind", flat=True))
    assert kinds == ["mandate.signed", "mandate.terms_recorded"]
    assert verify() == (0, "")
    Mandate.objects.filter(pk=mandate.pk).update(valid_until=dt.date(2099, 1, 1))
    code, message = verify()
    assert code == 1 and "differ from those signed" in message


# -- checkpoints -------------------------------------------------------------------------------------------


def latest_file(settings) -> Path:
    return sorted(Path(settings.AUDIT_CHECKPOINT_DIR).glob("checkpoint-*.json"))[-1]


def test_a_checkpoint_records_every_head_sealed_and_is_emailed(history, data_request, settings):
    settings.AUDIT_CHECKPOINT_EMAIL = "audit@operator.test"
    checkpoint()
    document = json.loads(latest_file(settings).read_text())
    body = document["checkpoint"]
    assert body["streams"][f"request:{data_request.pk}"] == [3, history[2].hash]
    assert body["totals"]["events"] == RequestEvent.objects.count()
    assert body["key_id"] == current_key().id and len(document["seal"]) == 64
    message = OutboundMessage.objects.get(purpose="audit.checkpoint")
    assert message.to == ["audit@operator.test"] and message.attachments.get().filename.endswith(".json")


def test_an_edited_checkpoint_is_refused(history, data_request, settings):
    checkpoint()
    path = latest_file(settings)
    document = json.loads(path.read_text())
    document["checkpoint"]["streams"][f"request:{data_request.pk}"] = [2, history[1].hash]
    path.write_text(json.dumps(document))
    code, message = verify()
    assert code == 1 and "does not match its seal" in message


def test_an_older_checkpoint_from_an_email_can_be_compared(history, data_request, settings, tmp_path):
    checkpoint()
    kept = tmp_path / "kept.json"
    kept.write_bytes(latest_file(settings).read_bytes())
    roll_back(data_request, history[1], state="sent")
    for path in Path(settings.AUDIT_CHECKPOINT_DIR).glob("*.json"):
        path.unlink()  # the writer also removed the checkpoints on the server
    assert verify() == (0, "")
    code, message = verify("--checkpoint", str(kept))
    assert code == 1 and "rolled back" in message


def test_a_checkpoint_is_refused_over_a_broken_history(history, data_request, settings):
    DataRightsRequest.objects.filter(pk=data_request.pk).update(state="fulfilled")
    with pytest.raises(CommandError, match="not checkpointed"):
        checkpoint()
    assert not list(Path(settings.AUDIT_CHECKPOINT_DIR).glob("checkpoint-*.json"))


# -- keys ----------------------------------------------------------------------------------------------------


def test_rotating_the_key_keeps_old_events_verifiable(history, data_request, settings):
    old = f"local:{base64.b64encode(current_key().secret).decode()}"
    settings.AUDIT_KEYS = f"{generate_key_text('k2')},{old}"
    assert current_key().id == "k2"
    checkpoint()  # sealed with the new key, over events signed with the old one
    with time_machine.travel(dt.datetime(2026, 3, 25, 12, tzinfo=dt.UTC)):
        services.request_extend(
            request_id=data_request.pk, months=1, reason="Complex request.", actor=CONTROLLER
        )
    keys = list(
        RequestEvent.objects.filter(request=data_request).order_by("seq").values_list("key_id", flat=True)
    )
    assert keys == ["local", "local", "local", "k2"]
    assert verify() == (0, "")


def test_an_event_whose_key_was_removed_is_reported(history, settings):
    settings.AUDIT_KEYS = generate_key_text("k2")
    code, message = verify()
    assert code == 1 and "signed with an unknown key 'local'" in message


def test_a_bad_key_setting_fails_loudly(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.AUDIT_KEYS = "k1:c2hvcnQ="
    with pytest.raises(ImproperlyConfigured, match="at least 32 random bytes"):
        current_key()


def test_the_sql_function_computes_the_same_keyed_digest(db):
    key = current_key()
    content = "a\x1fb\x1fΩ"
    with connection.cursor() as cursor:
        cursor.execute("SELECT audit_hmac(%s, %s)", [content, key.secret])
        (in_sql,) = cursor.fetchone()
    assert in_sql == hmac.new(key.secret, content.encode(), hashlib.sha256).hexdigest()


def test_the_set_based_sweep_signs_with_the_current_key(history, data_request):
    sweep.deadlines_sweep(today=dt.date(2026, 5, 1))
    overdue = RequestEvent.objects.get(request=data_request, kind="request.overdue")
    assert overdue.key_id == current_key().id
    assert verify() == (0, "")


def test_the_upgrade_resigns_intact_unkeyed_histories_and_leaves_broken_ones(history, member, controller):
    """Migration 0021 on events written before keyed signing."""
    broken = move_along(make_request(member, controller, reference="R-BROKEN"))
    with behind_the_engines_back():
        for events in (history, broken):
            prev = ""
            for event in events:
                legacy = hashlib.sha256(
                    event_content(
                        prev_hash=prev,
                        stream=event.stream,
                        seq=event.seq,
                        kind=event.kind,
                        actor_kind=event.actor_kind,
                        actor_id=event.actor_id,
                        from_state=event.from_state,
                        to_state=event.to_state,
                        created_at=event.created_at,
                        payload=event.payload,
                    ).encode()
                ).hexdigest()
                RequestEvent.objects.filter(pk=event.pk).update(prev_hash=prev, hash=legacy, key_id="")
                prev = legacy
            DataRightsRequest.objects.filter(pk=events[0].request_id).update(history_head=prev)
        RequestEvent.objects.filter(pk=broken[1].pk).update(actor_id="someone-else")  # already tampered
        assert len(chain_breaks()) == 6
        migration = importlib.import_module("requests_engine.migrations.0021_keyed_append_only_audit_log")
        migration.resign(apps, None)
    breaks = chain_breaks()
    assert {b.stream for b in breaks} == {f"request:{broken[0].request_id}"}
    assert all("not signed with an audit key" in b.problem for b in breaks)
    assert set(
        RequestEvent.objects.filter(request_id=history[0].request_id).values_list("key_id", flat=True)
    ) == {current_key().id}


# -- the database refuses rewrites (PostgreSQL) --------------------------------------------------------------


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL: the trigger")
def test_postgresql_refuses_to_update_an_event(history):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        RequestEvent.objects.filter(pk=history[0].pk).update(payload={"softened": True})


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL: the trigger")
def test_postgresql_refuses_to_delete_an_event(history):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        RequestEvent.objects.filter(pk=history[2].pk).delete()
    assert RequestEvent.objects.filter(pk=history[2].pk).exists()


# -- the beat jobs ---------------------------------------------------------------------------------------------


def test_the_nightly_check_tells_the_operator_and_the_communitys_coordinators(
    history, data_request, community, coordinator, settings
):
    settings.OPERATOR_EMAIL = "ops@operator.test"
    assert tasks.verify_audit_log() is True and not OutboundMessage.objects.exists()
    DataRightsRequest.objects.filter(pk=data_request.pk).update(state="fulfilled")
    assert tasks.verify_audit_log() is False
    operator = OutboundMessage.objects.get(purpose=verification.ALERT_PURPOSE, to=["ops@operator.test"])
    assert f"request:{data_request.pk}" in operator.body_text
    told = OutboundMessage.objects.get(
        purpose=verification.ALERT_PURPOSE, subject_id__startswith=f"{community.pk}:"
    )
    assert told.to == [community.contact_email] and coordinator.email in told.cc
    assert "Writers" in told.subject
    tasks.verify_audit_log()  # once a day, however often it runs
    assert OutboundMessage.objects.filter(purpose=verification.ALERT_PURPOSE).count() == 2


def test_the_nightly_checkpoint_writes_a_file_or_reports_the_failure(history, data_request, settings):
    settings.OPERATOR_EMAIL = "ops@operator.test"
    assert tasks.audit_checkpoint().startswith("checkpoint-")
    DataRightsRequest.objects.filter(pk=data_request.pk).update(state="fulfilled")
    assert tasks.audit_checkpoint() == ""
    assert OutboundMessage.objects.filter(purpose=verification.ALERT_PURPOSE).exists()


def test_both_jobs_are_on_the_beat_schedule(settings):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"requests_engine.tasks.verify_audit_log", "requests_engine.tasks.audit_checkpoint"} <= scheduled
