"""Is an answer complete? The checklist of what the law says it owes, and the follow-up letter naming what
is missing, for access, erasure and objection answers alike (models.CHECKLISTS).

An answer to an access request owes more than a copy of the data: Art 15(1)-(2) UK GDPR lists the
supplementary information that goes with it (purposes, categories, recipients, retention, rights, source,
automated decision-making, transfer safeguards; RULES.md (k)). An erasure owes the erasure or its Art 17(3)
exception, the recipients told under Art 19 (or that there were none) and what happens to backups and the
suppression record (RULES.md (h)); an objection, which processing stopped and that none continues for direct
marketing (Art 21(3); RULES.md (i)). The steps, one function each:

1. `items_declare`: when a controller answers (portal, API), it says which items its answer provides (an
   erasure's Art 19 statement declares its own). That declaration prefills the checklist; it proves nothing
   by itself.
2. `review_save`: a coordinator (back office) or the member (/me/) ticks what the answer really contains;
   everything unticked is missing.
3. `followup_send`: a targeted letter to the controller names each missing item with its article and gives
   it COMPLETENESS_FOLLOWUP_DAYS days (rolled to a working day) to supply them. It comes before any
   complaint: the ICO expects a person to have gone back to the organisation first (RULES.md (j)).
4. `followup_complete`: the controller supplied what was missing. If instead the follow-up's deadline
   passes, `complaints.escalation_reasons` flags the request for the complaints ladder.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from communities.models import Right
from core import outbox
from core.audit import Actor
from requests_engine import deadlines
from requests_engine.campaigns.eligibility import require_covered
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.letters import copied_to, letterhead, long_date, reply_address
from requests_engine.models import (
    CHECKLISTS,
    Art15Item,
    CompletenessReview,
    DataRightsRequest,
    ErasureItem,
    ObjectionItem,
    RequestState,
)

FOLLOWUP_TEMPLATE = "requests_engine/letters/completeness_followup.txt"
FOLLOWUP_PURPOSE = "request.completeness_followup"  # outbox rows: subject ("request", request id)
DEFAULT_FOLLOWUP_DAYS = 14

# Only an answer can be incomplete: a refusal is judged on its reasons (escalation/complaints.py), silence on time.
REVIEWABLE_STATES = (RequestState.FULFILLED, RequestState.PARTIALLY_FULFILLED)

# Each item in plain words, with the provision that requires it: the follow-up letter and the complaint
# quote these, in the words the request letter used (letters/rights/access.txt).
ITEM_WORDS: dict[str, tuple[str, str]] = {
    Art15Item.COPY: ("a copy of the personal data", "Article 15(3)"),
    Art15Item.PURPOSES: ("the purposes of the processing", "Article 15(1)(a)"),
    Art15Item.CATEGORIES: ("the categories of personal data concerned", "Article 15(1)(b)"),
    Art15Item.RECIPIENTS: (
        "the recipients or categories of recipient to whom the data has been or will be disclosed",
        "Article 15(1)(c)",
    ),
    Art15Item.RETENTION: (
        "how long the data will be stored or, if that is not possible, the criteria used to decide how long",
        "Article 15(1)(d)",
    ),
    Art15Item.RIGHTS: (
        "the existence of the rights to ask for rectification or erasure, to ask for restriction of "
        "processing, to object to processing, and to lodge a complaint with the Information Commissioner",
        "Article 15(1)(e) and (f)",
    ),
    Art15Item.SOURCE: (
        "where the data was not collected from the member, any available information about its source",
        "Article 15(1)(g)",
    ),
    Art15Item.AUTOMATED: (
        "the existence of automated decision-making, including profiling, with meaningful information "
        "about the logic involved and its significance and envisaged consequences for the member",
        "Article 15(1)(h)",
    ),
    Art15Item.SAFEGUARDS: (
        "where the data is transferred outside the UK, the safeguards relied on for the transfer",
        "Article 15(2)",
    ),
    # The words of letters/rights/erasure.txt and objection.txt.
    ErasureItem.ERASED: (
        "confirmation that the personal data has been erased or, if any is kept, which exception in Article "
        "17(3) you rely on and for which data",
        "Article 17(1) and (3)",
    ),
    ErasureItem.RECIPIENTS_TOLD: (
        "the recipients to whom the data was disclosed, and confirmation that each was told of the erasure, "
        "or a statement that there were none",
        "Article 19",
    ),
    ErasureItem.BACKUPS: (
        "what will happen to copies in backup systems, and whether you keep a suppression record so that "
        "the data is not collected or used again",
        "Article 17(1), as the ICO's guidance on erasure explains",
    ),
    ObjectionItem.STOPPED: (
        "which processing you have stopped or, for any you continue, the compelling legitimate grounds you "
        "demonstrate for it",
        "Article 21(1)",
    ),
    ObjectionItem.MARKETING_STOPPED: (
        "confirmation that no processing for direct marketing, including profiling related to it, continues",
        "Article 21(2) and (3)",
    ),
}
# What each right's follow-up letter calls the request.
REQUEST_WORDS: dict[str, tuple[str, str]] = {
    Right.ACCESS: ("access request", "access to personal data, Article 15 UK GDPR"),
    Right.ERASURE: ("erasure request", "erasure of personal data, Articles 17 and 19 UK GDPR"),
    Right.OBJECTION: ("objection", "objection to processing, Article 21 UK GDPR"),
}
LAW_WORDS: dict[str, str] = {
    Right.ACCESS: "Article 15",
    Right.ERASURE: "Articles 17 and 19",
    Right.OBJECTION: "Article 21",
}


def _today() -> datetime.date:
    return timezone.localdate()


def items_of(right: str) -> list[str]:
    """The checklist for an answer to this right, in the order of the law (none for other rights)."""
    checklist = CHECKLISTS.get(right)
    return list(checklist.values) if checklist else []


def labels_of(right: str) -> dict[str, str]:
    checklist = CHECKLISTS.get(right)
    return {value: str(label) for value, label in checklist.choices} if checklist else {}


def item_phrase(item: str) -> str:
    """'the purposes of the processing (Article 15(1)(a) UK GDPR)'."""
    words, article = ITEM_WORDS[item]
    return f"{words} ({article} UK GDPR)"


def items_in_words(items: Iterable[str]) -> str:
    """The items as one phrase: 'a; b; and c' (each phrase may hold commas of its own)."""
    phrases = [item_phrase(item) for item in items]
    if len(phrases) <= 1:
        return "".join(phrases)
    return f"{'; '.join(phrases[:-1])}; and {phrases[-1]}"


def followup_days() -> int:
    days = getattr(settings, "COMPLETENESS_FOLLOWUP_DAYS", DEFAULT_FOLLOWUP_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
        raise RequestEngineError(
            f"COMPLETENESS_FOLLOWUP_DAYS must be a whole number of days from 1 to 366 (it is {days!r})."
        )
    return days


def followup_due_date(sent_on: datetime.date, *, jurisdiction: str) -> datetime.date:
    """The follow-up's deadline: COMPLETENESS_FOLLOWUP_DAYS days after it is sent, moved to the next working
    day of the controller's nation when it falls on a weekend or bank holiday (as every deadline here)."""
    return deadlines.next_working_day_on_or_after(
        sent_on + datetime.timedelta(days=followup_days()), jurisdiction=jurisdiction
    )


# -- preconditions ----------------------------------------------------------------------------------------


def why_not_reviewable(request: DataRightsRequest) -> str:
    """Why this request's answer cannot be checked against its checklist, or "" when it can."""
    if request.right not in CHECKLISTS:
        return (
            f"Request {request.reference} is a {request.get_right_display()} request: answers are checked "
            "for access, erasure and objection requests."
        )
    if request.state not in REVIEWABLE_STATES:
        return (
            f"Request {request.reference} is {request.get_state_display().lower()}: only a fulfilled or "
            "partly fulfilled request can be checked for completeness."
        )
    return ""


def _lock(request_id: int) -> DataRightsRequest:
    try:
        return (
            # Only the request's row: the batch is an outer join, which PostgreSQL cannot lock.
            DataRightsRequest.objects.select_for_update(of=("self",))
            .select_related("controller", "member__community", "batch")
            .get(pk=request_id)
        )
    except DataRightsRequest.DoesNotExist:
        raise RequestEngineError(f"There is no request with id {request_id}.") from None


def _lock_reviewable(request_id: int) -> DataRightsRequest:
    request = _lock(request_id)
    problem = why_not_reviewable(request)
    if problem:
        raise RequestEngineError(problem)
    return request


def _clean(items: Iterable[str], right: str) -> list[str]:
    """Known items of this right's checklist only, each once, in the order of the law."""
    if isinstance(items, str):
        raise RequestEngineError("Give the checklist items as a list, not a single string.")
    known = items_of(right)
    given = set()
    for item in items:
        if item not in known:
            raise RequestEngineError(
                f"Unknown item '{item}' for the {Right(right).label} checklist: use one of {', '.join(known)}."
            )
        given.add(item)
    return [item for item in known if item in given]


def _review_of(request: DataRightsRequest) -> CompletenessReview:
    review, _ = CompletenessReview.objects.select_for_update().get_or_create(request=request)
    return review


def _who(actor: Actor) -> str:
    return f"{actor.kind}:{actor.id}" if actor.id else actor.kind


def review_for(request: DataRightsRequest) -> CompletenessReview | None:
    """The request's checklist, if anyone has declared or reviewed anything yet."""
    try:
        return request.completeness
    except CompletenessReview.DoesNotExist:
        return None


# -- the steps --------------------------------------------------------------------------------------------


def items_declare(request: DataRightsRequest, items: Iterable[str], actor: Actor) -> CompletenessReview:
    """The controller says which checklist items its answer provides (portal or API, with the answer)."""
    with transaction.atomic():
        locked = _lock_reviewable(request.pk)
        declared = _clean(items, locked.right)
        review = _review_of(locked)
        review.declared = declared
        review.save(update_fields=["declared"])
        record_event(subject=locked, kind="request.art15_declared", actor=actor, payload={"items": declared})
    return review


def _complete(
    review: CompletenessReview, request: DataRightsRequest, actor: Actor, *, on: datetime.date
) -> None:
    supplied = list(review.missing)
    review.completed_on = on
    review.present = items_of(request.right)
    review.missing = []
    record_event(
        subject=request,
        kind="request.art15_followup_completed",
        actor=actor,
        payload={"supplied": supplied, "completed_on": on},
    )


def review_save(request: DataRightsRequest, present: Iterable[str], actor: Actor) -> CompletenessReview:
    """Record what the answer contains; every other item is missing. Once a follow-up is out, a checklist
    with nothing missing means the controller supplied the rest, and the follow-up is complete."""
    with transaction.atomic():
        locked = _lock_reviewable(request.pk)
        found = _clean(present, locked.right)
        review = _review_of(locked)
        review.present = found
        review.missing = [item for item in items_of(locked.right) if item not in found]
        review.reviewed_at = timezone.now()
        review.reviewed_by = _who(actor)
        record_event(
            subject=locked,
            kind="request.art15_reviewed",
            actor=actor,
            payload={"present": review.present, "missing": review.missing, "declared": review.declared},
        )
        if review.followup_sent_on and not review.completed_on and not review.missing:
            _complete(review, locked, actor, on=_today())
        review.save()
    return review


def followup_letter(review: CompletenessReview, *, sent_on: datetime.date | None = None) -> tuple[str, str]:
    """(subject, body) of the follow-up letter as it would be sent on `sent_on` (today by default)."""
    request = review.request
    sent_on = sent_on or _today()
    controller, community = request.controller, request.member.community
    site = settings.SITE_URL.rstrip("/")
    context = {
        "request": request,
        "controller": controller,
        "community": community,
        "member": request.member,
        **letterhead(community),
        "sent_on": sent_on,
        "answered_on": request.answered_on,
        "due_on": followup_due_date(sent_on, jurisdiction=controller.jurisdiction),
        "missing": [item_phrase(item) for item in review.missing],
        "portal_url": f"{site}/respond/",
        "request_kind": REQUEST_WORDS[request.right][0],
        "request_law": REQUEST_WORDS[request.right][1],
        "law": LAW_WORDS[request.right],
    }
    answered = f" of {long_date(request.answered_on)}" if request.answered_on else ""
    kind = REQUEST_WORDS[request.right][0]
    subject = f"{kind[0].upper()}{kind[1:]} {request.reference}: your answer{answered} is incomplete"
    return subject, render_to_string(FOLLOWUP_TEMPLATE, context)


def followup_send(review: CompletenessReview, actor: Actor) -> CompletenessReview:
    """Queue the follow-up letter naming each missing item to the controller, with its own deadline."""

    with transaction.atomic():
        request = _lock_reviewable(review.request_id)
        review = _review_of(request)
        if review.reviewed_at is None:
            raise RequestEngineError(
                f"Fill in the checklist for request {request.reference} first: it says what is missing."
            )
        if review.followup_sent_on:
            raise RequestEngineError(
                f"A follow-up for request {request.reference} was already sent on "
                f"{long_date(review.followup_sent_on)}; the controller has until "
                f"{long_date(review.followup_due_on)}."
            )
        if not review.missing:
            raise RequestEngineError(
                f"Nothing is missing from the answer to request {request.reference}: there is nothing to "
                "follow up."
            )
        # A follow-up acts for the member again: only while their mandate still covers it (DESIGN §2).
        require_covered(request, doing="follow it up")
        controller, community = request.controller, request.member.community
        try:
            validate_email(controller.email)
        except ValidationError:
            raise RequestEngineError(
                f"{controller.name} has no usable email address ({controller.email or 'none recorded'}): "
                "add one to the directory entry first."
            ) from None
        today = _today()
        review.request = request
        subject, body = followup_letter(review, sent_on=today)
        replies = [reply_address(request.batch)] if request.batch else []
        message = outbox.queue_email(
            to=[controller.email],
            cc=copied_to(controller),
            reply_to=[*replies, community.contact_email],
            subject=subject,
            body_text=body,
            subject_type="request",
            subject_id=str(request.pk),
            purpose=FOLLOWUP_PURPOSE,
        )
        review.followup_sent_on = today
        review.followup_due_on = followup_due_date(today, jurisdiction=controller.jurisdiction)
        review.followup_message = message
        review.save(update_fields=["followup_sent_on", "followup_due_on", "followup_message"])
        record_event(
            subject=request,
            kind="request.art15_followup_sent",
            actor=actor,
            payload={
                "missing": review.missing,
                "due_on": review.followup_due_on,
                "message_id": message.message_id,
            },
        )
    return review


def review_save_and_follow_up(
    request: DataRightsRequest, present: Iterable[str], actor: Actor
) -> CompletenessReview:
    """The member's checklist: saved, and anything missing asked for at once unless a follow-up is out."""
    with transaction.atomic():
        review = review_save(request, present, actor)
        if review.missing and not review.followup_sent_on:
            review = followup_send(review, actor)
    return review


def followup_complete(review: CompletenessReview, actor: Actor) -> CompletenessReview:
    """The controller supplied what the follow-up asked for: the checklist is complete."""
    with transaction.atomic():
        request = _lock(review.request_id)
        review = _review_of(request)
        if not review.followup_sent_on:
            raise RequestEngineError(
                f"No follow-up was sent for request {request.reference}: there is nothing to complete."
            )
        if review.completed_on:
            raise RequestEngineError(
                f"The follow-up for request {request.reference} was already completed on "
                f"{long_date(review.completed_on)}."
            )
        _complete(review, request, actor, on=_today())
        review.save(update_fields=["completed_on", "present", "missing"])
    return review


# -- escalation -------------------------------------------------------------------------------------------


def followup_unanswered(request: DataRightsRequest, *, today: datetime.date | None = None) -> bool:
    """True once a follow-up's deadline has passed (it runs to the end of its day) without the controller
    supplying what was missing. While it runs, incompleteness is no reason to escalate."""
    review = review_for(request)
    if review is None or review.followup_due_on is None or review.completed_on or not review.missing:
        return False
    return (today or _today()) > review.followup_due_on


def escalation_sentence(request: DataRightsRequest) -> str:
    review = review_for(request)
    if review is None or review.followup_sent_on is None:
        return ""
    return (
        f"The answer lacks {items_in_words(review.missing)}; the follow-up of "
        f"{long_date(review.followup_sent_on)} went unanswered by {long_date(review.followup_due_on)} "
        f"({LAW_WORDS[request.right]} UK GDPR)."
    )
