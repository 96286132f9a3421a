"""The audit log becomes keyed and append-only (core.audit).

1. Each event records the id of the AUDIT_KEYS key that signed it.
2. PostgreSQL: pgcrypto and the audit_hmac(text, bytea) function the set-based jobs sign events with (SQLite
   gets a Python function of the same name on each connection, core.apps).
3. Every history that verifies under the old unkeyed SHA-256 is re-signed with the current key, chain by
   chain, and its owner's head moved along. A history that is already broken is left as it is, unsigned, so
   that verify_audit_log keeps reporting it: re-signing it would launder the damage.
4. PostgreSQL: a trigger refuses UPDATE and DELETE of event rows, so that the history is appended to and
   never rewritten (TRUNCATE, which test flushes use, is not a row operation and is not affected).
"""

import hashlib
import hmac

from django.db import migrations, models

EVENTS = "requests_engine_requestevent"
OWNERS = {
    "request": ("requests_engine", "DataRightsRequest"),
    "campaign": ("requests_engine", "Campaign"),
    "batch": ("requests_engine", "Batch"),
    "mandate": ("communities", "Mandate"),
    "complaint": ("requests_engine", "Complaint"),
}

CREATE_FUNCTIONS = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE OR REPLACE FUNCTION audit_hmac(content text, key bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT encode(hmac(convert_to(content, 'UTF8'), key, 'sha256'), 'hex') $$;
"""
DROP_FUNCTIONS = "DROP FUNCTION IF EXISTS audit_hmac(text, bytea);"

CREATE_TRIGGER = f"""
CREATE OR REPLACE FUNCTION requests_engine_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{EVENTS} is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END $$;
DROP TRIGGER IF EXISTS requestevent_append_only ON {EVENTS};
CREATE TRIGGER requestevent_append_only BEFORE UPDATE OR DELETE ON {EVENTS}
    FOR EACH ROW EXECUTE FUNCTION requests_engine_event_append_only();
"""
DROP_TRIGGER = f"""
DROP TRIGGER IF EXISTS requestevent_append_only ON {EVENTS};
DROP FUNCTION IF EXISTS requests_engine_event_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


def _content(event, prev_hash):
    # core.audit.event_content as it stands at this migration (the text is unchanged by keying).
    from core.audit import event_content

    return event_content(
        prev_hash=prev_hash,
        stream=event.stream,
        seq=event.seq,
        kind=event.kind,
        actor_kind=event.actor_kind,
        actor_id=event.actor_id,
        from_state=event.from_state,
        to_state=event.to_state,
        created_at=event.created_at,
        payload=event.payload,
    )


def resign(apps, schema_editor):
    from core.audit import current_key

    RequestEvent = apps.get_model("requests_engine", "RequestEvent")
    if not RequestEvent.objects.filter(key_id="").exists():
        return
    key = current_key()
    heads = {}
    for label, (app, name) in OWNERS.items():
        model = apps.get_model(app, name)
        for pk, seq, head in model.objects.filter(history_seq__gt=0).values_list(
            "pk", "history_seq", "history_head"
        ):
            heads[f"{label}:{pk}"] = (seq, head)

    def finish(stream, events):
        owner = heads.get(stream)
        intact = owner is not None and owner == (events[-1].seq, events[-1].hash)
        prev = ""
        for position, event in enumerate(events, start=1):
            legacy = hashlib.sha256(_content(event, event.prev_hash).encode("utf-8")).hexdigest()
            intact = intact and event.seq == position and event.prev_hash == prev and legacy == event.hash
            prev = event.hash
        if not intact:
            return  # left unsigned: verify_audit_log reports it
        prev = ""
        for event in events:
            event.prev_hash = prev
            event.hash = hmac.new(
                key.secret, _content(event, prev).encode("utf-8"), hashlib.sha256
            ).hexdigest()
            event.key_id = key.id
            prev = event.hash
        RequestEvent.objects.bulk_update(events, ["prev_hash", "hash", "key_id"], batch_size=1000)
        label, _, pk = stream.partition(":")
        app, name = OWNERS[label]
        apps.get_model(app, name).objects.filter(pk=pk).update(history_head=prev)

    stream, events = None, []
    for event in RequestEvent.objects.filter(key_id="").order_by("stream", "seq").iterator(chunk_size=2000):
        if event.stream != stream:
            if events:
                finish(stream, events)
            stream, events = event.stream, []
        events.append(event)
    if events:
        finish(stream, events)


class Migration(migrations.Migration):
    dependencies = [
        ("communities", "0012_authority_versions"),
        ("requests_engine", "0020_erasure_recipients_told"),
    ]

    operations = [
        migrations.AddField(
            model_name="requestevent",
            name="key_id",
            field=models.CharField(blank=True, db_default="", editable=False, max_length=16),
        ),
        migrations.RunPython(_on_postgresql(CREATE_FUNCTIONS), _on_postgresql(DROP_FUNCTIONS)),
        # Not reversible in substance: the unkeyed hashes are gone once re-signed.
        migrations.RunPython(resign, migrations.RunPython.noop),
        migrations.RunPython(_on_postgresql(CREATE_TRIGGER), _on_postgresql(DROP_TRIGGER)),
    ]
