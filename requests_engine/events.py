"""Recording, describing and verifying the hash-chained event history (see core.audit)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from communities.models import Mandate
from core.audit import Actor, ChainedHistory, audit_keys, current_key, event_digest, normalise_payload
from requests_engine.models import Batch, Campaign, Complaint, DataRightsRequest, RequestEvent

# Which aggregates own a chain, and the RequestEvent foreign key that points at each.
STREAM_LABELS: dict[type[ChainedHistory], str] = {
    DataRightsRequest: "request",
    Campaign: "campaign",
    Batch: "batch",
    Mandate: "mandate",
    Complaint: "complaint",
}


def record_event(
    *,
    subject: ChainedHistory,
    kind: str,
    actor: Actor,
    from_state: str = "",
    to_state: str = "",
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> RequestEvent:
    """Append one event to the subject's chain. The caller holds the subject's row lock (select_for_update)
    inside its transaction; a racing writer would hit the (stream, seq) unique constraint, never fork."""
    label = STREAM_LABELS[type(subject)]
    payload = normalise_payload(payload)
    created_at = at or timezone.now()
    seq = subject.history_seq + 1
    stream = f"{label}:{subject.pk}"
    key = current_key()
    digest = event_digest(
        key=key,
        prev_hash=subject.history_head,
        stream=stream,
        seq=seq,
        kind=kind,
        actor_kind=actor.kind,
        actor_id=actor.id,
        from_state=from_state,
        to_state=to_state,
        created_at=created_at,
        payload=payload,
    )
    event = RequestEvent.objects.create(
        stream=stream,
        seq=seq,
        kind=kind,
        actor_kind=actor.kind,
        actor_id=actor.id,
        from_state=from_state,
        to_state=to_state,
        payload=payload,
        created_at=created_at,
        prev_hash=subject.history_head,
        hash=digest,
        key_id=key.id,
        **{label: subject},
    )
    type(subject)._default_manager.filter(pk=subject.pk).update(history_seq=seq, history_head=digest)
    subject.history_seq = seq
    subject.history_head = digest
    return event


# -- sentences: one place that turns event codes into words for admin, portal, member pages, packs ------

SENTENCES = {
    "campaign.launched": "The campaign was approved and launched.",
    "campaign.closed": "The campaign was closed.",
    "batch.sending": "The batch is being sent.",
    "batch.sent": "The collective letter was sent.",
    "batch.released": "The access answers are in: the erasure requests held for them were released.",
    "batch.requeued": "The batch was queued to be sent again.",
    "batch.failed": "Sending the collective letter failed.",
    "mandate.signed": "The member signed the mandate.",
    "mandate.revoked": "The member revoked the mandate.",
    "mandate.name_corrected": "The member corrected their name; a new signature under it is needed.",
    "mandate.expired": "The mandate expired.",
    "mandate.replaced": "The member signed a new mandate that replaces this one.",
    "mandate.terms_recorded": "The mandate's terms were recorded for the audit log.",
    "request.approved": "The request was approved.",
    "request.dispatched": "The request was sent to the controller.",
    "request.delivery_failed": "The request could not be delivered.",
    "request.requeued": "The request was queued to be sent again.",
    "request.acknowledged": "The controller acknowledged the request.",
    "request.info_requested": "The controller asked for information.",
    "request.info_received": "The information the controller asked for was given.",
    "request.info_disputed": "The evidence the controller asked for had been supplied with the request: the time limit runs on from receipt.",
    "request.extended": "The controller extended the deadline.",
    "request.fulfilled": "The controller fulfilled the request.",
    "request.no_data_held": "The controller confirmed it holds no personal data of the member.",
    "request.partially_fulfilled": "The controller partly fulfilled the request.",
    "request.refused": "The controller refused the request.",
    "request.overdue": "The deadline passed without an answer.",
    "request.complaint_to_controller": "A complaint was made to the controller.",
    "request.escalated_to_ico": "A complaint was made to the ICO.",
    "request.closed": "The request was closed.",
    "request.withdrawn": "The request was withdrawn.",
    "request.withdrawal_notice": "The controller was told that the request is withdrawn.",
    "request.handed_over": "The community no longer acts for the member: the request is now the member's own.",
    "request.handover_notice": "The controller was told to answer the member directly.",
    "request.files_received": "The controller sent files.",
    "request.identity_document_uploaded": "The member uploaded a document to show who they are.",
    "request.identity_document_viewed": "The controller opened the member's proof of identity.",
    "request.self_complaint_kit_prepared": "A kit was prepared for the member to complain to the ICO themselves.",
    "batch.reply_received": "The controller replied to the collective letter.",
    "request.reply_received": "The controller replied about this request.",
    "request.file_downloaded": "The member downloaded a file.",
    "request.file_kept": "The member chose to keep a file past the retention period.",
    "request.file_released": "The member let a file be deleted at the end of the retention period.",
    "request.portability_format_flagged": "The portability answer has no machine-readable file.",
    "request.portability_forwarded": "A returned file was sent on to another controller (Art 20(2)).",
    # Named when only access answers had a checklist; erasure and objection answers use them too.
    "request.art15_declared": "The controller said which checklist items its answer provides.",
    "request.art15_reviewed": "The answer was checked against its checklist.",
    "request.art15_followup_sent": "A follow-up asked the controller for what its answer lacks.",
    "request.art15_followup_completed": "The controller supplied what its answer lacked.",
    "complaint.sent": "The complaint was sent.",
    "complaint.acknowledged": "The complaint was acknowledged.",
    "complaint.closed": "The controller gave the outcome of the complaint.",
    "complaint.drafted": "A complaint to the controller was drafted.",
    "complaint.redrafted": "The draft complaint was brought up to date.",
    "complaint.acknowledgement_missed": "The controller did not acknowledge the complaint in time (s.164A DPA 2018).",
    "complaint.ico_pack_built": "The ICO complaint pack was built.",
    "complaint.ico_case_recorded": "The complaint was submitted to the ICO and its case reference recorded.",
    "complaint.ico_outcome_recorded": "The ICO's outcome was recorded.",
}


def describe(event: RequestEvent) -> str:
    sentence = SENTENCES.get(event.kind, event.kind)
    if event.kind == "request.files_received":
        names = [f.get("name", "") for f in (event.payload or {}).get("files", []) if isinstance(f, dict)]
        if names:
            sentence = f"{sentence[:-1]}: {', '.join(n for n in names if n)}."
    return sentence


# -- verification -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    event_id: int | None
    stream: str
    problem: str

    def __str__(self) -> str:
        where = f"event {self.event_id} ({self.stream})" if self.event_id else self.stream
        return f"{where}: {self.problem}"


OWNER_COLUMNS = tuple(f"{label}_id" for label in STREAM_LABELS.values())


def _events_in_chain_order() -> Iterator[tuple[Any, ...]]:
    fields = (
        "id",
        "stream",
        "seq",
        "kind",
        "actor_kind",
        "actor_id",
        "from_state",
        "to_state",
        "created_at",
        "payload",
        "prev_hash",
        "hash",
        "key_id",
        *OWNER_COLUMNS,
    )
    return RequestEvent.objects.order_by("stream", "seq").values_list(*fields).iterator(chunk_size=5000)


def _owner_problem(stream: str, owners: tuple[Any, ...]) -> str:
    """The stream (which the hash covers) names the owner; the foreign key, which it does not, must agree,
    or an event could be moved onto another request's history unnoticed."""
    label, _, pk = stream.partition(":")
    expected = tuple(pk if f"{label}_id" == column else None for column in OWNER_COLUMNS)
    found = tuple(None if value is None else str(value) for value in owners)
    if found != expected:
        where = ", ".join(f"{c}={v}" for c, v in zip(OWNER_COLUMNS, found, strict=True) if v is not None)
        return f"belongs to {stream} but points at {where or 'no record'} (re-pointed)"
    return ""


def chain_breaks(*, checkpoint: dict[str, tuple[int, str]] | None = None) -> list[ChainBreak]:
    """Every place where the stored history no longer matches its keyed hashes, earliest event first. With
    `checkpoint` (stream -> (seq, hash) as sealed outside the database), also every stream that no longer
    reaches, or no longer has, the event the checkpoint recorded: a rollback or truncation since."""
    keys = {key.id: key for key in audit_keys()}
    pinned = dict(checkpoint or {})
    breaks: list[ChainBreak] = []
    heads: dict[str, tuple[int, str]] = {}  # stream -> (last seq, last hash) as found in the events
    stream, expected_seq, prev = None, 0, ""
    for row in _events_in_chain_order():
        (
            event_id,
            row_stream,
            seq,
            kind,
            actor_kind,
            actor_id,
            from_state,
            to_state,
            at,
            payload,
            prev_hash,
            h,
            key_id,
        ) = row[:13]
        if row_stream != stream:
            stream, expected_seq, prev = row_stream, 1, ""
        key = keys.get(key_id)
        recomputed = (
            event_digest(
                key=key,
                prev_hash=prev_hash,
                stream=row_stream,
                seq=seq,
                kind=kind,
                actor_kind=actor_kind,
                actor_id=actor_id,
                from_state=from_state,
                to_state=to_state,
                created_at=at,
                payload=payload,
            )
            if key is not None
            else None
        )
        if seq != expected_seq:
            breaks.append(ChainBreak(event_id, row_stream, f"expected event #{expected_seq}, found #{seq}"))
        elif prev_hash != prev:
            breaks.append(ChainBreak(event_id, row_stream, "does not link to the event before it"))
        elif key is None:
            problem = (
                f"signed with an unknown key {key_id!r} (forged, or its key was removed)"
                if key_id
                else "not signed with an audit key (forged, or already broken when the upgrade re-signed)"
            )
            breaks.append(ChainBreak(event_id, row_stream, problem))
        elif not hmac.compare_digest(recomputed or "", h):
            breaks.append(ChainBreak(event_id, row_stream, "content does not match its hash (edited)"))
        elif problem := _owner_problem(row_stream, row[13:]):
            breaks.append(ChainBreak(event_id, row_stream, problem))
        if row_stream in pinned and pinned[row_stream][0] == seq:
            if pinned.pop(row_stream)[1] != h:
                breaks.append(
                    ChainBreak(event_id, row_stream, "differs from the event the checkpoint sealed")
                )
        heads[row_stream] = (seq, h)
        expected_seq, prev = seq + 1, h
    for stream_key, (seq, _) in pinned.items():
        found = heads.get(stream_key)
        now = f"ends at #{found[0]}" if found else "has no events"
        breaks.append(
            ChainBreak(None, stream_key, f"history {now}, the checkpoint sealed #{seq} (rolled back)")
        )
    for model, label in STREAM_LABELS.items():
        owners = model._default_manager.filter(history_seq__gt=0).values_list(
            "pk", "history_seq", "history_head"
        )
        for pk, seq, head in owners.iterator(chunk_size=5000):
            stream_key = f"{label}:{pk}"
            found = heads.pop(stream_key, None)
            if found != (seq, head):
                last = f"#{found[0]}" if found else "no events"
                breaks.append(ChainBreak(None, stream_key, f"history ends at {last}, record expects #{seq}"))
    for stream_key in heads:
        breaks.append(ChainBreak(None, stream_key, "events exist for a record whose history is empty"))
    breaks.sort(key=lambda b: (b.event_id is None, b.event_id or 0, b.stream))
    return breaks
