from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from communities.models import Community, Mandate, Member, Purpose, Right
from core import crypto
from core.audit import ChainedHistory
from core.references import new_reference, new_token
from requests_engine import deadlines


class Jurisdiction(models.TextChoices):
    """The UK nation whose bank holidays apply to a controller's deadlines (RULES.md (a))."""

    ENGLAND_AND_WALES = "england-and-wales", "England and Wales"
    SCOTLAND = "scotland", "Scotland"
    NORTHERN_IRELAND = "northern-ireland", "Northern Ireland"


class Transport(models.TextChoices):
    EMAIL = "email", "Email"
    LETTER = "letter", "Letter"
    WEBFORM = "webform", "Web form"
    DRP = "drp", "Data Rights Protocol"


def new_campaign_reference() -> str:
    return new_reference("C", 6)


def new_batch_reference() -> str:
    return new_reference("B", 6)


def new_complaint_reference() -> str:
    return new_reference("K", 6)


class Controller(models.Model):
    """A directory entry: who a controller is and how it takes requests (datenanfragen format on import)."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=300)
    runs = models.JSONField(default=list, blank=True, help_text="Services and brands it runs.")
    categories = models.JSONField(default=list, blank=True)
    email = models.EmailField(blank=True, help_text="Privacy contact address.")
    postal_address = models.TextField(blank=True)
    web = models.URLField(blank=True, max_length=500)
    webform_url = models.URLField(blank=True, max_length=500)
    phone = models.CharField(max_length=60, blank=True)
    fax = models.CharField(max_length=60, blank=True)
    transport = models.CharField(max_length=10, choices=Transport.choices, default=Transport.EMAIL)
    individual_requests = models.BooleanField(
        default=False, help_text="Send one message per member request instead of one collective letter."
    )
    required_identifiers = models.JSONField(
        default=list, blank=True, help_text='What it needs to find a person: [{"desc", "type", "optional"}].'
    )
    needs_id_document = models.BooleanField(default=False)
    jurisdiction = models.CharField(
        max_length=20, choices=Jurisdiction.choices, default=Jurisdiction.ENGLAND_AND_WALES
    )
    drp_endpoint = models.URLField(blank=True, max_length=500, help_text="Base URL of its DRP API, if any.")
    drp_version = models.CharField(max_length=5, blank=True, choices=[("0.5", "DRP 0.5"), ("1.0", "DRP 1.0")])
    # Large batches to one controller are spread out (individual emails, DRP calls) so it is not flooded.
    send_rate_per_minute = models.PositiveIntegerField(default=60)
    request_language = models.CharField(max_length=10, blank=True)
    relevant_countries = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    comments = models.JSONField(default=list, blank=True)
    quality = models.CharField(max_length=20, blank=True)
    # A controller outside the UK that must have one names a UK representative (Art 27 UK GDPR): our
    # letters and complaints go to it as well.
    uk_representative_name = models.CharField("UK representative (Art 27)", max_length=300, blank=True)
    uk_representative_email = models.EmailField("UK representative's email", blank=True)
    uk_representative_address = models.TextField("UK representative's postal address", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ObjectionTo(models.TextChoices):
    PROCESSING = "processing", "Processing for a public task or legitimate interests (Art 21(1))"
    DIRECT_MARKETING = "direct_marketing", "Direct marketing, and profiling for it (Art 21(2))"


class Campaign(ConcurrentTransitionMixin, ChainedHistory):
    """A coordinated exercise of rights by a community's members against a set of controllers."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        LAUNCHED = "launched", "Launched"
        CLOSED = "closed", "Closed"

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    reference = models.CharField(max_length=16, unique=True, default=new_campaign_reference, editable=False)
    rights = models.JSONField(default=list)
    controllers = models.ManyToManyField(Controller, related_name="campaigns")
    # One of the community's purposes: only members whose mandate names it are included (DESIGN §2).
    purpose = models.ForeignKey(
        Purpose,
        null=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="Why the community is asking; its text is quoted in every letter.",
    )
    member_note = models.TextField(blank=True, help_text="Shown to members about this campaign.")
    # What its objection requests object to: an Art 21(1) objection rests on each member's situation and may
    # meet compelling grounds; an objection to direct marketing is absolute (Art 21(2)-(3) UK GDPR).
    objection_to = models.CharField(
        max_length=20,
        choices=ObjectionTo.choices,
        default=ObjectionTo.PROCESSING,
        db_default=ObjectionTo.PROCESSING,
        help_text="For objection requests: what the members object to. An objection to direct marketing "
        "cannot be refused, and members need not explain their situation (Art 21(2)-(3) UK GDPR).",
    )
    # Members asked to confirm its erasure or objection requests answer by this day; silence is "no".
    confirm_by = models.DateField(null=True, blank=True, editable=False)
    state = FSMField(default=State.DRAFT, choices=State.choices, protected=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @transition(
        field=state, source=State.DRAFT, target=State.LAUNCHED, custom={"label": "Approve and launch"}
    )
    def launch(self) -> None:
        self.launched_at = timezone.now()

    @transition(field=state, source=State.LAUNCHED, target=State.CLOSED, custom={"label": "Close"})
    def close(self) -> None:
        """Only the state changes; the service records the event."""


class Confirmation(models.Model):
    """A member's answer, for one campaign, to the erasure or objection requests it would send in their name
    (Art 17, Art 21 UK GDPR: they cannot be undone). Only a confirmed one lets the campaign include them."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the member"
        CONFIRMED = "confirmed", "Confirmed"
        DECLINED = "declined", "Declined"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="confirmations")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="confirmations")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    asked_at = models.DateTimeField(default=timezone.now)
    reminded_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    # Where the campaign also asks the controller for access, erasure waits for the access answer unless the
    # member chose to send it at once (their data would be gone before they saw it).
    erasure_at_once = models.BooleanField(default=False)
    # An objection rests on the member's particular situation (Art 21(1) UK GDPR): in their own words, put in
    # the letters for them (never the campaign's purpose).
    objection_situation = models.TextField(blank=True, max_length=1000)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "member"], name="one_confirmation_per_campaign_member"
            )
        ]

    def __str__(self) -> str:
        return f"{self.member} for {self.campaign}: {self.get_state_display()}"


class Batch(ConcurrentTransitionMixin, ChainedHistory):
    """One campaign's requests to one controller: the collective letter and its member manifest."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Delivery failed"
        HELD = "held", "Held until the access answers are in"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="batches")
    controller = models.ForeignKey(Controller, on_delete=models.PROTECT, related_name="batches")
    transport = models.CharField(max_length=10, choices=Transport.choices, default=Transport.EMAIL)
    message_id = models.CharField(
        max_length=255, blank=True, help_text="Message-ID of the collective letter."
    )
    posted_on = models.DateField(null=True, blank=True, help_text="Letters: the day the pack was posted.")
    reference = models.CharField(max_length=16, unique=True, default=new_batch_reference, editable=False)
    state = FSMField(default=State.PENDING, choices=State.choices, protected=True)
    letter_pdf = models.FileField(
        upload_to="batches/", blank=True, editable=False, storage=crypto.encrypted_storage
    )
    letter_sha256 = models.CharField(max_length=64, blank=True)
    manifest = models.FileField(
        upload_to="batches/", blank=True, editable=False, storage=crypto.encrypted_storage
    )
    # Replies to <reply_token>@… thread back to this batch without trusting the sender's address.
    reply_token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The erasure requests of a campaign that also asks this controller for access: sent once the access
    # answers are in (campaigns/sequencing.py).
    after_access = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "controller", "after_access"], name="one_batch_per_campaign_controller"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference} → {self.controller}"

    @transition(field=state, source=State.HELD, target=State.PENDING)
    def release(self) -> None:
        """The access answers are in: the held erasures may now be sent (campaigns/sequencing.py)."""

    @transition(field=state, source=[State.PENDING, State.FAILED], target=State.SENDING)
    def start_sending(self) -> None:
        self.last_error = ""

    @transition(field=state, source=[State.PENDING, State.SENDING, State.FAILED], target=State.SENT)
    def mark_sent(self) -> None:
        self.sent_at = timezone.now()
        self.last_error = ""

    @transition(field=state, source=[State.PENDING, State.SENDING, State.FAILED], target=State.FAILED)
    def mark_failed(self, *, error: str = "") -> None:
        self.last_error = error


class RequestState(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued to send"
    SENT = "sent", "Sent, waiting for the controller"
    FAILED_DELIVERY = "failed_delivery", "Delivery failed"
    ACKNOWLEDGED = "acknowledged", "Acknowledged by the controller"
    INFO_REQUESTED = "info_requested", "Controller asked for information"
    EXTENDED = "extended", "Deadline extended by the controller"
    OVERDUE = "overdue", "Overdue: no answer in time"
    FULFILLED = "fulfilled", "Fulfilled"
    PARTIALLY_FULFILLED = "partially_fulfilled", "Partly fulfilled"
    REFUSED = "refused", "Refused"
    COMPLAINT_TO_CONTROLLER = "complaint_to_controller", "Complaint made to the controller"
    ESCALATED_TO_ICO = "escalated_to_ico", "Complaint made to the ICO"
    CLOSED = "closed", "Closed"
    WITHDRAWN = "withdrawn", "Withdrawn"
    HANDED_OVER = "handed_over", "Now the member's own request"


S = RequestState
# States in which the controller still owes an answer (DESIGN §3): a revoked mandate withdraws these.
OPEN_STATES = [
    S.DRAFT,
    S.QUEUED,
    S.SENT,
    S.FAILED_DELIVERY,
    S.ACKNOWLEDGED,
    S.INFO_REQUESTED,
    S.EXTENDED,
    S.OVERDUE,
]
# A request the controller has, when the community's authority ends: the member chooses whether it stands as
# their own (answered to them directly) or is withdrawn. One not yet sent is simply withdrawn.
HANDOVER_STATES = [S.SENT, S.ACKNOWLEDGED, S.INFO_REQUESTED, S.EXTENDED, S.OVERDUE]
# States whose statutory clock can run out.
CLOCK_STATES = [S.SENT, S.ACKNOWLEDGED, S.EXTENDED, S.INFO_REQUESTED]
ANSWERABLE_STATES = [
    S.SENT,
    S.ACKNOWLEDGED,
    S.INFO_REQUESTED,
    S.EXTENDED,
    S.OVERDUE,
    S.COMPLAINT_TO_CONTROLLER,
]


class InformationKind(models.TextChoices):
    IDENTITY = "identity", "Proof of identity"
    AUTHORITY = "authority", "Proof of the community's authority"
    CLARIFICATION = "clarification", "Clarification of the request"


class Outcome(models.TextChoices):
    """What a controller's answer means in law, whatever path it came by (DESIGN §3). "No personal data held"
    is an answer, never a refusal: confirming that nothing is held is compliance with Art 15(1) UK GDPR."""

    DATA_PROVIDED = "data_provided", "Data provided"
    NO_DATA_HELD = "no_data_held", "No personal data held"
    PARTLY_PROVIDED = "partly_provided", "Partly provided"
    REFUSED = "refused", "Refused"
    ERASURE_DONE = "erasure_done", "Erasure done"
    OBJECTION_UPHELD = "objection_upheld", "Objection upheld: processing stopped"
    PORTABILITY_PROVIDED = "portability_provided", "Portable data provided"
    DONE = "done", "Done as asked"


# The outcome of a full answer, by right (rectification and restriction: done as asked).
FULFILLED_OUTCOME = {
    "access": Outcome.DATA_PROVIDED,
    "portability": Outcome.PORTABILITY_PROVIDED,
    "erasure": Outcome.ERASURE_DONE,
    "objection": Outcome.OBJECTION_UPHELD,
}
# Outcomes that answer the request: counted as answered, on time or late, never as refusals.
ANSWERED_OUTCOMES = [o for o in Outcome if o != Outcome.REFUSED]


class RefusalGround(models.TextChoices):
    """Grounds a controller can give for not acting (RULES.md (d)); reasons are always required too."""

    MANIFESTLY_UNFOUNDED = "manifestly_unfounded", "Manifestly unfounded (Art 12(5))"
    MANIFESTLY_EXCESSIVE = "manifestly_excessive", "Manifestly excessive (Art 12(5))"
    ART11_2 = "art11_2", "Cannot identify the member (Art 11(2))"
    CRIME_TAXATION = "crime_taxation", "Crime and taxation (DPA 2018 Sch 2 para 2)"
    THIRD_PARTY_DATA = "third_party_data", "Another person's data (DPA 2018 Sch 2 para 16; Art 15(4))"
    LEGAL_PRIVILEGE = "legal_privilege", "Legal professional privilege (DPA 2018 Sch 2 para 19)"
    MANAGEMENT_FORECASTS = "management_forecasts", "Management forecasts (DPA 2018 Sch 2 para 22)"
    NEGOTIATIONS = "negotiations", "Negotiations with the member (DPA 2018 Sch 2 para 23)"
    CONFIDENTIAL_REFERENCES = "confidential_references", "Confidential references (DPA 2018 Sch 2 para 24)"
    # Recorded before grounds were given at the level of the paragraph; no longer offered (grounds.py).
    EXEMPTION = "exemption", "Exemption under DPA 2018 Schedules 2-4"
    ART17_3 = "art17_3", "Erasure exception (Art 17(3))"
    ART20_NOT_APPLICABLE = "art20_not_applicable", "Portability does not apply (Art 20)"
    ART21_COMPELLING_GROUNDS = "art21_compelling_grounds", "Compelling legitimate grounds (Art 21(1))"
    IDENTITY_NOT_VERIFIED = "identity_not_verified", "Identity not verified"
    AUTHORITY_NOT_SHOWN = "authority_not_shown", "Authority not shown"
    OTHER = "other", "Other"


class DataRightsRequest(ConcurrentTransitionMixin, ChainedHistory):
    """One member × one controller × one right: the state machine and the statutory clock (DESIGN §3-§4).

    `received_on` is when the controller received the request; `clock_start_on` is the "relevant time" of
    Art 12A (the latest of receipt and receipt of identity or authority evidence); `due_on` is always
    derived from them, the extension and the paused days, never typed.
    """

    reference = models.CharField(max_length=40)
    # Every key is also a foreign key in the database (PROTECT in Django, NO ACTION there): this is an
    # evidence store, and its integrity must not depend on every writer going through the ORM.
    # campaign, controller and member repeat what the batch and the mandate say, for fast reads; campaign
    # and controller lookups use the composite indexes in Meta.
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="requests", db_index=False
    )
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="requests")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="requests")
    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, related_name="requests")
    controller = models.ForeignKey(
        Controller, on_delete=models.PROTECT, related_name="requests", db_index=False
    )
    right = models.CharField(max_length=20, choices=Right.choices)
    state = FSMField(default=S.DRAFT, choices=S.choices, protected=True)

    received_on = models.DateField(null=True, blank=True, editable=False)
    clock_start_on = models.DateField(null=True, blank=True, editable=False)
    due_on = models.DateField(null=True, blank=True, editable=False)
    extension_months = models.PositiveSmallIntegerField(default=0, editable=False)
    extension_reason = models.TextField(blank=True, editable=False)
    extended_on = models.DateField(null=True, blank=True, editable=False)
    paused_days = models.PositiveIntegerField(default=0, editable=False)
    clock_paused = models.BooleanField(default=False, editable=False)
    info_kind = models.CharField(max_length=20, choices=InformationKind.choices, blank=True, editable=False)
    info_question = models.TextField(blank=True, editable=False)
    info_requested_on = models.DateField(null=True, blank=True, editable=False)
    answered_on = models.DateField(null=True, blank=True, editable=False)
    message_id = models.CharField(
        max_length=255, blank=True, editable=False, help_text="Message that carried it."
    )
    delivery_error = models.TextField(blank=True, editable=False)
    drp_request_id = models.CharField(max_length=100, blank=True, editable=False)
    drp_status = models.CharField(max_length=40, blank=True, editable=False)
    refusal_ground = models.CharField(
        max_length=30, choices=RefusalGround.choices, blank=True, editable=False
    )
    refusal_reasons = models.TextField(blank=True, editable=False)
    # Where the member asked the controller to answer once the request became their own.
    answer_directly_to = models.CharField(max_length=500, blank=True, editable=False)
    outcome = models.CharField(max_length=24, choices=Outcome.choices, blank=True, editable=False)
    # What the controller states with its outcome: the searches it made for "no data held" (Art 15(1A)).
    outcome_statement = models.TextField(blank=True, editable=False)
    # Art 19 UK GDPR: with an erasure, who the controller told of it, or its statement that there was no one.
    recipients_told = models.TextField(blank=True, editable=False)
    closed_on = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "data rights request"
        ordering = ["-created_at"]
        constraints = [
            # A plain unique index: letters and replies quote the reference (no LIKE index needed).
            models.UniqueConstraint(fields=["reference"], name="request_reference_unique"),
            # One request per member, controller and right within a campaign: makes expansion idempotent,
            # and serves "this campaign's requests".
            models.UniqueConstraint(
                fields=["campaign", "member", "controller", "right"],
                condition=Q(campaign__isnull=False),
                name="one_request_per_campaign_member_controller_right",
            ),
        ]
        indexes = [
            # The deadline sweep and the "due this week" lists: only requests whose clock is running are
            # indexed, so the sweep finds its few rows by range and other writes skip this index.
            models.Index(
                fields=["due_on"],
                condition=Q(state__in=CLOCK_STATES, clock_paused=False),
                name="request_running_clock_due",
            ),
            # The API and portal lists: a controller's requests by due date.
            models.Index(fields=["controller", "due_on", "id"], name="request_controller_due"),
            # The portal and register: a controller's requests by state.
            models.Index(fields=["controller", "state"], name="request_controller_state"),
        ]

    def __str__(self) -> str:
        return self.reference

    # -- the clock -------------------------------------------------------------------------------------

    @property
    def jurisdiction(self) -> str:
        return self.controller.jurisdiction

    def _recompute_due_on(self) -> None:
        if self.clock_start_on is None:
            self.due_on = None
            return
        self.due_on = deadlines.statutory_due_date(
            self.clock_start_on,
            jurisdiction=self.jurisdiction,
            extension_months=self.extension_months,
            paused_days=self.paused_days,
        )

    def days_left(self, today: datetime.date | None = None) -> int | None:
        if self.due_on is None or self.clock_paused:
            return None
        return (self.due_on - (today or timezone.localdate())).days

    @property
    def objects_to_direct_marketing(self) -> bool:
        """An objection to direct marketing: absolute, no ground answers it (Art 21(2)-(3) UK GDPR)."""
        return (
            self.right == Right.OBJECTION
            and self.campaign is not None
            and self.campaign.objection_to == ObjectionTo.DIRECT_MARKETING
        )

    def deadline_has_passed(self) -> bool:
        # The deadline is the end of the due day (ICO): overdue from the day after.
        return self.due_on is not None and not self.clock_paused and timezone.localdate() > self.due_on

    def extension_is_possible(self) -> bool:
        # Art 12(3)/12A: once, by up to two months, noticed within the first month (as moved by pauses).
        return self.extension_months == 0 and self.due_on is not None and timezone.localdate() <= self.due_on

    # -- transitions (one per arrow of DESIGN §3; services call them and record the event) -------------

    @transition(field=state, source=S.DRAFT, target=S.QUEUED, custom={"label": "Approve"})
    def approve(self) -> None:
        """Only the state changes; the service records the event."""

    @transition(field=state, source=[S.QUEUED, S.FAILED_DELIVERY], target=S.SENT, custom={"admin": False})
    def dispatch(self, *, received_on: datetime.date, message_id: str = "") -> None:
        self.message_id = message_id
        self.delivery_error = ""
        self.received_on = received_on
        self.clock_start_on = received_on
        self._recompute_due_on()

    @transition(field=state, source=[S.QUEUED, S.SENT], target=S.FAILED_DELIVERY, custom={"admin": False})
    def fail_delivery(self, *, error: str = "") -> None:
        self.delivery_error = error

    @transition(field=state, source=S.FAILED_DELIVERY, target=S.QUEUED, custom={"label": "Send again"})
    def requeue(self) -> None:
        """Only the state changes; the service records the event."""

    @transition(field=state, source=S.SENT, target=S.ACKNOWLEDGED, custom={"label": "Record acknowledgement"})
    def acknowledge(self) -> None:
        """Only the state changes; the service records the event."""

    @transition(
        field=state,
        source=[S.SENT, S.ACKNOWLEDGED, S.EXTENDED],
        target=S.INFO_REQUESTED,
        custom={"label": "Record a request for information"},
    )
    def request_information(self, *, kind: str, question: str, asked_on: datetime.date) -> None:
        self.info_kind = kind
        self.info_question = question
        self.info_requested_on = asked_on
        # Identity/authority evidence restarts the clock on receipt, so it stands still meanwhile; a
        # clarification pauses it for access requests only (Art 12A; RULES.md (c) and ambiguity #9).
        self.clock_paused = kind != InformationKind.CLARIFICATION or self.right == Right.ACCESS

    @transition(
        field=state,
        source=S.INFO_REQUESTED,
        target=RETURN_VALUE(S.ACKNOWLEDGED, S.EXTENDED),
        custom={"label": "Mark the evidence as already supplied"},
    )
    def dispute_information(self) -> str:
        # The request already carried the evidence asked for (the sealed authority document, the verified
        # identifiers): the question does not restart the clock, which runs from receipt as before (Art 12A;
        # RULES.md: escalate on the latest plausible date only where the law is unclear, and it is not here).
        self.clock_paused = False
        self._recompute_due_on()
        return S.EXTENDED if self.extension_months else S.ACKNOWLEDGED

    @transition(
        field=state,
        source=S.INFO_REQUESTED,
        target=RETURN_VALUE(S.ACKNOWLEDGED, S.EXTENDED),
        custom={"label": "Record that the information was given"},
    )
    def receive_information(self, *, received_on: datetime.date) -> str:
        if self.info_kind in (InformationKind.IDENTITY, InformationKind.AUTHORITY):
            # The relevant time becomes receipt of the evidence: the month starts again (Art 12A).
            self.clock_start_on = max(received_on, self.clock_start_on or received_on)
            self.paused_days = 0
        elif self.clock_paused and self.info_requested_on is not None:
            # Stop-the-clock: the days from asking to answering, both included, do not count (Art 12A).
            self.paused_days += (received_on - self.info_requested_on).days + 1
        self.clock_paused = False
        self._recompute_due_on()
        return S.EXTENDED if self.extension_months else S.ACKNOWLEDGED

    @transition(
        field=state,
        source=[S.SENT, S.ACKNOWLEDGED],
        target=S.EXTENDED,
        conditions=[extension_is_possible],  # type: ignore[list-item]  # the library types conditions over Model
        custom={"label": "Record an extension"},
    )
    def extend(self, *, months: int, reason: str, noticed_on: datetime.date) -> None:
        self.extension_months = months
        self.extension_reason = reason
        self.extended_on = noticed_on
        self._recompute_due_on()

    @transition(
        field=state, source=ANSWERABLE_STATES, target=S.FULFILLED, custom={"label": "Record fulfilment"}
    )
    def fulfil(
        self, *, answered_on: datetime.date, outcome: str = "", statement: str = "", recipients_told: str = ""
    ) -> None:
        self.answered_on = answered_on
        self.outcome = outcome or FULFILLED_OUTCOME.get(self.right, Outcome.DONE)
        self.outcome_statement = statement
        self.recipients_told = recipients_told
        self.clock_paused = False

    @transition(
        field=state,
        source=ANSWERABLE_STATES,
        target=S.PARTIALLY_FULFILLED,
        custom={"label": "Record partial fulfilment"},
    )
    def partially_fulfil(self, *, answered_on: datetime.date, ground: str, reasons: str) -> None:
        self.answered_on = answered_on
        self.outcome = Outcome.PARTLY_PROVIDED
        self.refusal_ground = ground
        self.refusal_reasons = reasons
        self.clock_paused = False

    @transition(field=state, source=ANSWERABLE_STATES, target=S.REFUSED, custom={"label": "Record refusal"})
    def refuse(self, *, answered_on: datetime.date, ground: str, reasons: str) -> None:
        self.answered_on = answered_on
        self.outcome = Outcome.REFUSED
        self.refusal_ground = ground
        self.refusal_reasons = reasons
        self.clock_paused = False

    @transition(
        field=state,
        source=CLOCK_STATES,
        target=S.OVERDUE,
        conditions=[deadline_has_passed],  # type: ignore[list-item]  # the library types conditions over Model
        custom={"admin": False},
    )
    def mark_overdue(self) -> None:
        """Only the state changes; the service records the event."""

    @transition(
        field=state,
        source=[S.OVERDUE, S.REFUSED, S.PARTIALLY_FULFILLED, S.FULFILLED],
        target=S.COMPLAINT_TO_CONTROLLER,
        custom={"label": "Complain to the controller"},
    )
    def complain_to_controller(self) -> None:
        """Only the state changes; the service records the event. A fulfilled answer qualifies only when it
        falls short: escalation.complaints.request_complain_to_controller guards that."""

    @transition(
        field=state,
        source=S.COMPLAINT_TO_CONTROLLER,
        target=S.ESCALATED_TO_ICO,
        custom={"label": "Escalate to the ICO"},
    )
    def escalate_to_ico(self) -> None:
        """Only the state changes; the service records the event."""

    @transition(
        field=state,
        source=[S.FULFILLED, S.PARTIALLY_FULFILLED, S.REFUSED, S.COMPLAINT_TO_CONTROLLER, S.ESCALATED_TO_ICO],
        target=S.CLOSED,
        custom={"label": "Close"},
    )
    def close(self, *, closed_on: datetime.date) -> None:
        self.closed_on = closed_on

    @transition(
        field=state, source=HANDOVER_STATES, target=S.HANDED_OVER, custom={"label": "Hand over to the member"}
    )
    def hand_over(self, *, answer_to: str, handed_over_on: datetime.date) -> None:
        # A request made by an agent is the data subject's request (Art 12(2), Art 15(1) UK GDPR): when the
        # agent's authority ends, the member may keep it; the clock the controller is under does not restart.
        self.answer_directly_to = answer_to
        self.closed_on = handed_over_on
        self.clock_paused = False

    @transition(field=state, source=OPEN_STATES, target=S.WITHDRAWN, custom={"label": "Withdraw"})
    def withdraw(self, *, withdrawn_on: datetime.date) -> None:
        self.closed_on = withdrawn_on
        self.clock_paused = False


class RequestEvent(models.Model):
    """Append-only history of every transition and message, hash-chained per aggregate with a keyed HMAC
    (core.audit). On PostgreSQL a trigger refuses UPDATE and DELETE of its rows (migration 0021)."""

    stream = models.CharField(max_length=40, editable=False, help_text="Whose chain: e.g. request:42.")
    seq = models.PositiveIntegerField(editable=False)
    # Exactly one owner is set. The rarely used owners get partial indexes (see Meta) so that the bulk of
    # events, a request's, do not pay for four indexes of NULLs.
    request = models.ForeignKey(
        DataRightsRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    mandate = models.ForeignKey(
        Mandate, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    complaint = models.ForeignKey(
        "Complaint", null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    kind = models.CharField(
        max_length=64, editable=False, help_text="Stable dotted code, e.g. request.extended."
    )
    actor_kind = models.CharField(max_length=20, editable=False)
    actor_id = models.CharField(max_length=64, blank=True, editable=False)
    from_state = models.CharField(max_length=30, blank=True, editable=False)
    to_state = models.CharField(max_length=30, blank=True, editable=False)
    payload = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    # Which AUDIT_KEYS key signed `hash`, so events stay verifiable after the key is rotated. Empty only on
    # events from before keyed signing that the upgrade could not re-sign (their chain was already broken).
    key_id = models.CharField(max_length=16, blank=True, db_default="", editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "seq"], name="one_event_per_stream_position")
        ]
        indexes = [
            models.Index(fields=["campaign"], condition=Q(campaign__isnull=False), name="event_campaign"),
            models.Index(fields=["batch"], condition=Q(batch__isnull=False), name="event_batch"),
            models.Index(fields=["mandate"], condition=Q(mandate__isnull=False), name="event_mandate"),
            models.Index(fields=["complaint"], condition=Q(complaint__isnull=False), name="event_complaint"),
        ]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.kind}"


def received_file_path(instance: ReceivedFile, filename: str) -> str:
    # Stored names never carry the original filename: it may hold personal data.
    return f"received/{instance.request_id}/{new_token(12)}.bin"


class ReceivedFile(models.Model):
    """Data a controller returned: encrypted at rest, checksummed, deleted after the retention period."""

    request = models.ForeignKey(DataRightsRequest, on_delete=models.PROTECT, related_name="files")
    original_name = models.CharField(max_length=255)
    stored = models.FileField(upload_to=received_file_path, max_length=300)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100, help_text="Sniffed from the content, not the name.")
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)
    member_notified_at = models.DateTimeField(null=True, blank=True)
    keep = models.BooleanField(
        default=False, help_text="The member asked to keep it past the retention period."
    )
    delete_after = models.DateField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return self.original_name


class IdentityDocument(models.Model):
    """Proof of identity a member uploads in answer to a controller's identity question (Art 12(6) UK GDPR).
    Encrypted at rest; shown only to that controller, through its portal or API, each view an event; deleted
    30 days after the request closes (Art 5(1)(c), (e): kept no longer than the question needs)."""

    request = models.ForeignKey(
        DataRightsRequest, on_delete=models.CASCADE, related_name="identity_documents"
    )
    original_name = models.CharField(max_length=255)
    stored = models.FileField(upload_to="identity/", max_length=300)
    size = models.PositiveIntegerField()
    content_type = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["uploaded_at", "pk"]

    def __str__(self) -> str:
        return self.original_name


class Complaint(ConcurrentTransitionMixin, ChainedHistory):
    """A complaint to a controller (s.164A DPA 2018), then to the ICO, covering one or many requests."""

    class Kind(models.TextChoices):
        CONTROLLER = "controller", "Complaint to the controller"
        ICO = "ico", "Complaint to the ICO"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        CLOSED = "closed", "Closed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="complaints")
    controller = models.ForeignKey(Controller, on_delete=models.PROTECT, related_name="complaints")
    requests = models.ManyToManyField(DataRightsRequest, related_name="complaints")
    reference = models.CharField(max_length=16, unique=True, default=new_complaint_reference, editable=False)
    state = FSMField(default=State.DRAFT, choices=State.choices, protected=True)
    grounds = models.TextField()
    sent_on = models.DateField(null=True, blank=True, editable=False)
    acknowledgement_due_on = models.DateField(null=True, blank=True, editable=False)
    acknowledged_on = models.DateField(null=True, blank=True, editable=False)
    outcome = models.TextField(blank=True)
    ico_case_reference = models.CharField(max_length=60, blank=True)
    evidence_pack = models.FileField(
        upload_to="complaints/", blank=True, editable=False, storage=crypto.encrypted_storage
    )
    evidence_pack_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.reference}"

    @transition(field=state, source=State.DRAFT, target=State.SENT, custom={"label": "Mark sent"})
    def send(self, *, sent_on: datetime.date) -> None:
        self.sent_on = sent_on
        if self.kind == self.Kind.CONTROLLER:
            # s.164A DPA 2018: the controller must acknowledge within 30 days.
            self.acknowledgement_due_on = deadlines.complaint_acknowledgement_due(
                sent_on, jurisdiction=self.controller.jurisdiction
            )

    @transition(
        field=state, source=State.SENT, target=State.ACKNOWLEDGED, custom={"label": "Record acknowledgement"}
    )
    def acknowledge(self, *, acknowledged_on: datetime.date) -> None:
        self.acknowledged_on = acknowledged_on

    @transition(
        field=state, source=[State.SENT, State.ACKNOWLEDGED], target=State.CLOSED, custom={"label": "Close"}
    )
    def close(self, *, outcome: str) -> None:
        self.outcome = outcome


def inbound_raw_path(instance: InboundMessage, filename: str) -> str:
    return f"inbound/{new_token(12)}.eml.enc"


class InboundMessage(models.Model):
    """A reply read from the community's mailbox, matched to its batch or request when it can be."""

    class Status(models.TextChoices):
        MATCHED = "matched", "Matched"
        UNMATCHED = "unmatched", "Unmatched: needs a coordinator"
        HANDLED = "handled", "Handled by a coordinator"

    mailbox = models.CharField(max_length=200, help_text="Which mailbox and folder it was read from.")
    uid_validity = models.BigIntegerField()
    uid = models.BigIntegerField()
    message_id = models.CharField(max_length=998, blank=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    to_addresses = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    raw = models.FileField(upload_to=inbound_raw_path, help_text="The whole message, encrypted at rest.")
    raw_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNMATCHED)
    matched_by = models.CharField(
        max_length=20, blank=True, help_text="reply-address, in-reply-to, reference"
    )
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="replies")
    request = models.ForeignKey(
        DataRightsRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="replies"
    )

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            # Re-reading the same mailbox never stores a message twice.
            models.UniqueConstraint(
                fields=["mailbox", "uid_validity", "uid"], name="one_row_per_mailbox_uid"
            ),
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="inbound_status_received")]

    def __str__(self) -> str:
        return self.subject or self.message_id


class ControllerContact(models.Model):
    """A person at a controller who answers our requests: signs in to the portal by emailed link, and
    may hold an API token (only its SHA-256 is stored)."""

    controller = models.ForeignKey(Controller, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True, help_text="Untick to revoke portal and API access at once.")
    api_token_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    api_token_hint = models.CharField(max_length=12, blank=True, editable=False, help_text="Last characters.")
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["controller", "email"]
        constraints = [
            models.UniqueConstraint(fields=["controller", "email"], name="one_contact_per_address")
        ]
        # Serves API authentication by token.
        indexes = [models.Index(fields=["api_token_sha256"], name="contact_api_token")]

    def __str__(self) -> str:
        return f"{self.email} ({self.controller})"


class PortalSignInLink(models.Model):
    """A single-use, expiring sign-in link for a contact. Only the token's SHA-256 is stored; the link
    signs in after a POST from its confirm page, because mail scanners open links."""

    contact = models.ForeignKey(ControllerContact, on_delete=models.CASCADE, related_name="sign_in_links")
    token_sha256 = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Sign-in link for {self.contact.email}"


class IdempotentResponse(models.Model):
    """The first answer to an API POST with an Idempotency-Key, replayed for retries of the same key."""

    contact = models.ForeignKey(ControllerContact, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "key"], name="one_response_per_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key}"


class Art15Item(models.TextChoices):
    """What an access response must contain (Art 15(1)-(2) and (3) UK GDPR)."""

    COPY = "copy", "A copy of the personal data (Art 15(3))"
    PURPOSES = "purposes", "The purposes of the processing (Art 15(1)(a))"
    CATEGORIES = "categories", "The categories of personal data (Art 15(1)(b))"
    RECIPIENTS = "recipients", "The recipients or categories of recipient (Art 15(1)(c))"
    RETENTION = "retention", "How long the data will be kept, or the criteria (Art 15(1)(d))"
    RIGHTS = (
        "rights",
        "The rights to rectification, erasure, restriction, objection and to complain (Art 15(1)(e)-(f))",
    )
    SOURCE = "source", "Where the data came from, if not from the member (Art 15(1)(g))"
    AUTOMATED = (
        "automated",
        "Automated decision-making and profiling, with its logic and effects (Art 15(1)(h))",
    )
    SAFEGUARDS = "safeguards", "The safeguards for transfers outside the UK (Art 15(2))"


class ErasureItem(models.TextChoices):
    """What an answer to an erasure request must say (Art 17, 19 UK GDPR; RULES.md (h))."""

    ERASED = "erased", "The data is erased, or the Art 17(3) exception relied on is named (Art 17(1), (3))"
    RECIPIENTS_TOLD = (
        "recipients_told",
        "Who the data was disclosed to and that each was told of the erasure, or that there was no one (Art 19)",
    )
    BACKUPS = (
        "backups",
        "What happens to backup copies, and whether a suppression record is kept (Art 17(1); ICO guidance)",
    )


class ObjectionItem(models.TextChoices):
    """What an answer to an objection must say (Art 21 UK GDPR; RULES.md (i))."""

    STOPPED = (
        "stopped",
        "Which processing has stopped, or the compelling grounds for what continues (Art 21(1))",
    )
    MARKETING_STOPPED = (
        "marketing_stopped",
        "That no processing for direct marketing, or profiling for it, continues (Art 21(3))",
    )


# The checklist each answer is held to, by right (responses/completeness.py).
CHECKLISTS: dict[str, type[models.TextChoices]] = {
    "access": Art15Item,
    "erasure": ErasureItem,
    "objection": ObjectionItem,
}


class CompletenessReview(models.Model):
    """The checklist for one answer (access, erasure or objection; CHECKLISTS): what the controller declared
    it sent, what a reviewer found, and the follow-up letter naming what is missing (with its own deadline)
    before any complaint."""

    request = models.OneToOneField(DataRightsRequest, on_delete=models.PROTECT, related_name="completeness")
    declared = models.JSONField(default=list, blank=True, help_text="Items the controller said it provided.")
    present = models.JSONField(default=list, blank=True, help_text="Items the reviewer found in the answer.")
    missing = models.JSONField(default=list, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.CharField(max_length=100, blank=True, help_text="Who filled in the checklist.")
    followup_sent_on = models.DateField(null=True, blank=True)
    followup_due_on = models.DateField(null=True, blank=True)
    followup_message = models.ForeignKey(
        "core.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_on = models.DateField(
        null=True, blank=True, help_text="The controller supplied what was missing."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        # Serves the sweep of follow-ups that ran out.
        indexes = [models.Index(fields=["followup_due_on"], name="completeness_followup_due")]

    def __str__(self) -> str:
        return f"Completeness of {self.request.reference}"


class PortabilityForward(models.Model):
    """A member asked for returned data to be sent on to another controller (Art 20(2))."""

    file = models.ForeignKey(ReceivedFile, on_delete=models.PROTECT, related_name="forwards")
    to_controller = models.ForeignKey(Controller, on_delete=models.PROTECT, related_name="forwards_received")
    requested_at = models.DateTimeField(default=timezone.now)
    message = models.ForeignKey(
        "core.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["file", "to_controller"], name="one_forward_per_file_and_controller"
            )
        ]

    def __str__(self) -> str:
        return f"{self.file} to {self.to_controller}"


# These files are encrypted by their services (chunked, under names the services choose) in the default
# storage; registered here, with the models, so rotate_keys finds them whatever else is imported.
crypto.register_encrypted_file_field("requests_engine.ReceivedFile", "stored")
crypto.register_encrypted_file_field("requests_engine.IdentityDocument", "stored")
crypto.register_encrypted_file_field("requests_engine.InboundMessage", "raw")
