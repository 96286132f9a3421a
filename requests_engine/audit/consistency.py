"""What the records say against what their histories say: a request's state against its last transition,
a mandate's terms against what the member signed, and each request's evidence rows still there.

The hash chains prove the events were not altered; these checks catch the other half of tampering, a row
changed without an event (`state` set by hand, a mandate's rights or end date widened), which would
otherwise let the engine act on authority nobody gave it.
"""

from __future__ import annotations

from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce

from communities.mandate_text import terms_sha256, text_sha256
from communities.models import Mandate, Member
from requests_engine.events import ChainBreak
from requests_engine.models import Batch, Campaign, Controller, DataRightsRequest, RequestEvent, RequestState

# A request is created in one of these with no event (the launch inserts them in bulk); any other state
# must have been reached by a transition, which records its event.
UNRECORDED_REQUEST_STATES = (RequestState.DRAFT, RequestState.QUEUED)
TERMS_RECORDS = ("mandate.signed", "mandate.terms_recorded")
LIMIT = 100  # enough to name the damage; a wholesale rewrite is obvious long before


def state_mismatches() -> list[ChainBreak]:
    """Requests and mandates whose state is not the to_state of their latest event that has one."""
    problems: list[ChainBreak] = []
    for model, label, unrecorded in (
        (DataRightsRequest, "request", UNRECORDED_REQUEST_STATES),
        (Mandate, "mandate", (Mandate.State.ACTIVE,)),
    ):
        last = (
            RequestEvent.objects.filter(**{label: OuterRef("pk")})
            .exclude(to_state="")
            .order_by("-seq")
            .values("to_state")[:1]
        )
        # One correlated lookup per row: what the state should be is the last recorded one, or, with none
        # recorded, the state itself if it is one a record may have without an event.
        expected = Coalesce(
            Subquery(last), Case(When(state__in=unrecorded, then=F("state")), default=Value(""))
        )
        wrong = list(
            model._default_manager.exclude(state=expected).order_by("pk").values_list("pk", flat=True)[:LIMIT]
        )
        rows = (
            model._default_manager.filter(pk__in=wrong)
            .annotate(recorded=Subquery(last))
            .order_by("pk")
            .values_list("pk", "state", "recorded")
        )
        for pk, state, recorded in rows:
            said = f"its history says {recorded!r}" if recorded else "no event ever moved it"
            problems.append(ChainBreak(None, f"{label}:{pk}", f"state is {state!r} but {said}"))
    return problems


def mandate_term_problems() -> list[ChainBreak]:
    """Mandates whose signed text no longer matches its hash or the hash its signing recorded, or whose
    stored terms are not the ones recorded with it. (A mandate with no history at all, as tests and the
    benchmarks make them, has only its text checked.)"""
    signed: dict[int, dict] = {}
    # The signing event, or for a mandate signed before the terms were recorded, the event the upgrade
    # appended (migration 0022): the later one holds the terms.
    records = RequestEvent.objects.filter(kind__in=TERMS_RECORDS, mandate__isnull=False).order_by("seq")
    for mandate_id, payload in records.values_list("mandate_id", "payload").iterator(chunk_size=5000):
        signed[mandate_id] = {**signed.get(mandate_id, {}), **payload}
    problems: list[ChainBreak] = []
    mandates = Mandate.objects.prefetch_related("controllers", "purposes").order_by("pk")
    for mandate in mandates.iterator(chunk_size=2000):
        stream = f"mandate:{mandate.pk}"
        record = signed.get(mandate.pk) or {}
        if text_sha256(mandate.text) != mandate.text_sha256:
            problems.append(ChainBreak(None, stream, "signed text does not match its hash (edited)"))
        elif record and record.get("text_sha256") != mandate.text_sha256:
            problems.append(ChainBreak(None, stream, "signed text is not the one its signing recorded"))
        elif "terms_sha256" in record and record["terms_sha256"] != terms_sha256(mandate):
            problems.append(
                ChainBreak(
                    None, stream, "terms (rights, organisations, purposes or dates) differ from those signed"
                )
            )
        if len(problems) >= LIMIT:
            break
    return problems


def requests_missing_their_evidence() -> list[ChainBreak]:
    """Requests whose mandate, member, batch, campaign or controller row is gone. The database's foreign
    keys refuse such rows; this catches what got past them (a restore with triggers off, an SQLite file
    edited by hand)."""
    gone = (
        ~Exists(Mandate.objects.filter(pk=OuterRef("mandate_id")))
        | ~Exists(Member.objects.filter(pk=OuterRef("member_id")))
        | ~Exists(Controller.objects.filter(pk=OuterRef("controller_id")))
        | (Q(batch_id__isnull=False) & ~Exists(Batch.objects.filter(pk=OuterRef("batch_id"))))
        | (Q(campaign_id__isnull=False) & ~Exists(Campaign.objects.filter(pk=OuterRef("campaign_id"))))
    )
    rows = DataRightsRequest.objects.filter(gone).order_by("pk").values_list("pk", "reference")[:20]
    return [
        ChainBreak(
            None,
            f"request:{pk}",
            f"request {reference} has lost its mandate, member, batch, campaign or controller",
        )
        for pk, reference in rows
    ]
