from __future__ import annotations

import datetime
import re
from typing import TypeVar

from django.conf import settings
from django.db import connection, models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from core import crypto
from core.audit import ChainedHistory
from core.references import new_reference, new_token


class Right(models.TextChoices):
    """The data subject rights a community can exercise (UK GDPR Arts 15-21)."""

    ACCESS = "access", "Access (Art 15)"
    PORTABILITY = "portability", "Portability (Art 20)"
    ERASURE = "erasure", "Erasure (Art 17)"
    OBJECTION = "objection", "Objection (Art 21)"
    RECTIFICATION = "rectification", "Rectification (Art 16)"
    RESTRICTION = "restriction", "Restriction (Art 18)"


# Erasure (Art 17) and objection (Art 21) cannot be undone once a controller acts on them: the member confirms
# each campaign's, unless their mandate says not to ask.
IRREVERSIBLE_RIGHTS = frozenset({Right.ERASURE.value, Right.OBJECTION.value})

crypto.register_encrypted_file_field("communities.Community", "constitution")


class Community(models.Model):
    class JoinPolicy(models.TextChoices):
        OPEN = "open", "Anyone may join"
        INVITE = "invite", "By invitation only"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    purpose = models.TextField(help_text="In plain words: what the community does and for whom.")
    description = models.TextField(blank=True)
    contact_email = models.EmailField()
    postal_address = models.TextField(blank=True)
    # Who the mandate names as the agent (RULES.md (e)): the legal person, its number and its contact.
    legal_name = models.CharField(max_length=300, blank=True)
    registration_number = models.CharField(
        max_length=60, blank=True, help_text="Company or charity number, if registered."
    )
    agent_name = models.CharField(
        max_length=200, blank=True, help_text="The named person who acts for members."
    )
    join_policy = models.CharField(max_length=10, choices=JoinPolicy.choices, default=JoinPolicy.OPEN)
    rights = models.JSONField(default=list, help_text="Right codes the community exercises.")
    controllers = models.ManyToManyField(
        "requests_engine.Controller",
        blank=True,
        related_name="communities",
        verbose_name="the organisations we act towards",
        help_text="Members choose among these when they sign; a campaign can only write to these.",
    )
    brand_colour = models.CharField(max_length=7, default="#1d4f91")
    # How long returned files are kept after the member is told (RULES.md: data minimisation).
    retention_days = models.PositiveIntegerField(default=90)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # The Art 80(1) record: what makes the community a body that may represent members. Art 80(1) UK GDPR,
    # given effect by DPA 2018 s.187: a not-for-profit body or organisation, with statutory objectives in the
    # public interest, active in protecting data subjects' rights and freedoms.
    class LegalForm(models.TextChoices):
        COMPANY_LIMITED_BY_GUARANTEE = "clg", "Company limited by guarantee"
        CHARITABLE_INCORPORATED_ORGANISATION = "cio", "Charitable incorporated organisation"
        COMMUNITY_BENEFIT_SOCIETY = "cbs", "Community benefit society"
        UNINCORPORATED_ASSOCIATION = "unincorporated", "Unincorporated association"
        TRADE_UNION = "trade_union", "Trade union"
        OTHER = "other", "Other"

    legal_form = models.CharField(max_length=20, choices=LegalForm.choices, blank=True)
    not_for_profit = models.BooleanField(
        default=False, help_text="Its constitution says it is not run for profit (Art 80(1) UK GDPR)."
    )
    statutory_objectives = models.TextField(
        blank=True,
        help_text="Its objectives in the public interest, as its constitution states them (Art 80(1)).",
    )
    data_protection_activity = models.TextField(
        blank=True,
        help_text="What it does to protect data subjects' rights and freedoms (Art 80(1)).",
    )
    # Encrypted at rest like every uploaded file; served decrypted from the public register.
    constitution = models.FileField(upload_to="constitutions/", max_length=300, blank=True, editable=False)
    constitution_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    offers_court_representation = models.BooleanField(
        default=False,
        help_text="Offer members representation in court as well (Articles 79 and 82 UK GDPR, DPA 2018 "
        "s.187): a separate choice on the mandate, off unless the member ticks it. Only with a full "
        "Article 80(1) record.",
    )

    class Meta:
        verbose_name_plural = "communities"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def art80_eligible(self) -> bool:
        """THE rule for representation (DESIGN §2): the community may represent members before the ICO,
        and offer to in court, only with every part of its Art 80(1) record present (Art 80(1) UK GDPR;
        DPA 2018 s.187)."""
        return bool(
            self.legal_form
            and self.not_for_profit
            and self.statutory_objectives.strip()
            and self.data_protection_activity.strip()
            and self.constitution
        )

    @property
    def offers_court(self) -> bool:
        """Court representation is its own opt-in, on top of the Art 80(1) record."""
        return self.art80_eligible and self.offers_court_representation


class Purpose(models.Model):
    """One of the community's named purposes: a member authorises some of them, a campaign serves one, and
    its text is what the mandate and the letters say the community acts for."""

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="purposes")
    name = models.CharField(
        max_length=120,
        help_text="Short, in plain words: “Find out whether AI developers used members' work”.",
    )
    text = models.TextField(help_text="The sentence that goes into mandates and letters.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["community", "name"], name="purpose_name_per_community")
        ]

    def __str__(self) -> str:
        return self.name


_Q = TypeVar("_Q", bound=models.QuerySet)


class MandateQuerySet(models.QuerySet):
    def covering(
        self, *, controller_id: int, right: str, purpose_id: int, on: datetime.date
    ) -> MandateQuerySet:
        """THE rule of authority (DESIGN §2): mandates in force on `on` that name this controller, this
        right and this purpose. Nothing else counts: not "all controllers" (stored as the list of the
        day it was signed), not a controller or purpose the community added later (RULES.md (e)-(f))."""
        in_force = self.filter(state=Mandate.State.ACTIVE, valid_from__lte=on, valid_until__gte=on)
        return with_right(in_force.filter(controllers=controller_id).filter(purposes=purpose_id), right)


def with_right(mandates: _Q, right: str) -> _Q:
    """Mandates whose rights list holds `right`. JSON containment is PostgreSQL's; SQLite (the embedded
    default) matches the quoted code in the JSON text, which is exact for our plain-word codes."""
    if connection.vendor == "postgresql":
        return mandates.filter(rights__contains=[right])
    return mandates.filter(rights__icontains=f'"{right}"')


def new_invite_token() -> str:
    return new_token(18)


class Invite(models.Model):
    """A link that lets people join a closed community until it expires or is used up."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="invites")
    token = models.CharField(max_length=64, unique=True, default=new_invite_token, editable=False)
    note = models.CharField(max_length=200, blank=True, help_text="Who it was for (for coordinators).")
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invite to {self.community} ({self.note or self.token[:6]})"

    def is_usable(self) -> bool:
        return self.uses < self.max_uses and timezone.now() < self.expires_at


class Invitation(models.Model):
    """Someone on the community's membership list, invited to join: by email with a link, or by letter
    (for those without email) with the same link printed and as a QR code. Importing the list again
    changes nothing for people already on it: they are known by email address or membership number."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        POST = "post", "Letter"

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="invitations")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, help_text="Stored in lower case.")
    postal_address = models.TextField(blank=True)
    membership_number = models.CharField(max_length=60, blank=True)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    # A single-use link of its own: the invitation is accepted when it is used.
    invite = models.OneToOneField(Invite, on_delete=models.PROTECT, related_name="invitation")
    imported_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Emailed, or its letter printed.")

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["community", "email"], condition=~models.Q(email=""), name="one_invitation_per_email"
            ),
            models.UniqueConstraint(
                fields=["community", "membership_number"],
                condition=~models.Q(membership_number=""),
                name="one_invitation_per_membership_number",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.email or 'by letter'})"


def new_member_reference() -> str:
    return new_reference("M", 8)


class Member(models.Model):
    """A person's membership of one community; the pseudonymous reference is what controllers see first."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships")
    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="members")
    reference = models.CharField(max_length=16, unique=True, default=new_member_reference, editable=False)
    full_name = models.CharField(max_length=200)
    joined_at = models.DateTimeField(default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True)

    class Notifications(models.TextChoices):
        EACH = "each", "An email at each step"
        DAILY = "daily", "One email a day with everything new (a digest)"

    notifications = models.CharField(max_length=10, choices=Notifications.choices, default=Notifications.EACH)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "community"], name="one_membership_per_community")
        ]
        ordering = ["community", "full_name"]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.reference})"


class Identifier(models.Model):
    """What a member is known as at a controller (or everywhere, when controller is empty)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email address used there"
        ACCOUNT_ID = "account_id", "Account or customer number"
        PHONE = "phone", "Phone number"
        POSTAL_ADDRESS = "postal_address", "Postal address"
        NAME = "name", "Name used there"
        OTHER = "other", "Other"

    class VerifiedBy(models.TextChoices):
        LINK = "link", "A link sent to it was opened"
        LOGIN = "login", "It is the member's login address, confirmed when they joined"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="identifiers")
    controller = models.ForeignKey(
        "requests_engine.Controller", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    label = models.CharField(max_length=200, blank=True, help_text="The controller's own name for it.")
    value = models.CharField(max_length=500)
    # An email identifier is verified by a link sent to it; until then (and for every other kind) it is
    # only "stated by the member", and documents say so.
    verification_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    verified_by = models.CharField(max_length=10, choices=VerifiedBy.choices, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["member", "controller", "kind"]
        # Serves "identifiers this member gave for this controller" on letters and manifests.
        indexes = [models.Index(fields=["member", "controller"], name="identifier_member_ctrl")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"

    @property
    def checked(self) -> str:
        """What we can truthfully say about this identifier, in the words documents use."""
        if not self.verified_at:
            return "stated by the member"
        day = timezone.localdate(self.verified_at)
        if self.verified_by == self.VerifiedBy.LOGIN:
            return f"verified: it is the member's login address, confirmed by a link sent to it (as of {day.day} {day:%B %Y})"
        return f"verified by a link sent to it, opened on {day.day} {day:%B %Y}"

    @property
    def plain_label(self) -> str:
        """The name of this identifier in plain words for legal text: the directory's "E-Mail" or a form's
        "(optional)" marker are not words a mandate or letter should carry."""
        label = re.sub(r"\s*\(optional\)", "", self.label, flags=re.IGNORECASE).strip(" :")
        if not label:
            return self.get_kind_display()
        if re.fullmatch(r"e-?mail( address)?", label, flags=re.IGNORECASE):
            return "Email address"
        return label[0].upper() + label[1:]


def new_mandate_token() -> str:
    return new_token(24)


def new_mandate_reference() -> str:
    return new_reference("A", 8)


class Mandate(ConcurrentTransitionMixin, ChainedHistory):
    """A member's written authority for the community to act for them (RULES.md (e)-(f))."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        REPLACED = "replaced", "Replaced by a newer mandate"

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="mandates")
    reference = models.CharField(max_length=16, unique=True, default=new_mandate_reference, editable=False)
    rights = models.JSONField(default=list)
    # The member chose "all of them"; `controllers` still holds the explicit list of that day, and only
    # that list is covered.
    all_controllers = models.BooleanField(default=False)
    controllers = models.ManyToManyField("requests_engine.Controller", blank=True, related_name="mandates")
    purposes = models.ManyToManyField(Purpose, related_name="mandates")
    valid_from = models.DateField()
    valid_until = models.DateField()

    class ResponsesTo(models.TextChoices):
        COMMUNITY = "community", "To the community, which passes them on to me"
        MEMBER = "member", "To me directly"
        BOTH = "both", "To both"

    send_responses_to = models.CharField(
        max_length=10, choices=ResponsesTo.choices, default=ResponsesTo.COMMUNITY
    )
    may_complain_to_controllers = models.BooleanField(default=True)
    # Art 80(1) UK GDPR / s.187 DPA 2018: representation before the ICO needs its own explicit choice.
    may_represent_before_ico = models.BooleanField(default=False)
    # Art 79 and 82 UK GDPR via DPA 2018 s.187: representation in court is a separate choice again.
    may_represent_in_court = models.BooleanField(default=False)
    # Off unless the member ticks it: erasure and objection requests are then sent without asking each time.
    irreversible_without_asking = models.BooleanField(default=False)

    # Signature evidence: what exactly was shown and how the member signed it.
    template_version = models.CharField(max_length=20)
    text = models.TextField(editable=False)
    text_sha256 = models.CharField(max_length=64, editable=False)
    signed_name = models.CharField(max_length=200)
    signed_at = models.DateTimeField()
    signed_ip = models.GenericIPAddressField(null=True, blank=True)
    signed_user_agent = models.TextField(blank=True)
    pdf = models.FileField(
        upload_to="mandates/", blank=True, editable=False, storage=crypto.encrypted_storage
    )
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    verification_token = models.CharField(
        max_length=64, unique=True, default=new_mandate_token, editable=False
    )

    state = FSMField(default=State.ACTIVE, choices=State.choices, protected=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # A member narrows (or widens) what the community may do by signing a new mandate that replaces this one.
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = MandateQuerySet.as_manager()

    class Meta:
        ordering = ["-signed_at"]
        # Serves campaign previews: active mandates of a community's members.
        indexes = [models.Index(fields=["state", "valid_until"], name="mandate_state_until")]
        constraints = [
            # A member changes what the community may do by signing a new mandate that replaces the active
            # one, so "the member's mandate" is never ambiguous (and a campaign makes one request each).
            models.UniqueConstraint(
                fields=["member"], condition=models.Q(state="active"), name="one_active_mandate_per_member"
            ),
        ]

    def __str__(self) -> str:
        return f"Mandate {self.reference} ({self.get_state_display()})"

    def covers(
        self, *, right: str, controller_id: int, purpose_id: int, on: datetime.date | None = None
    ) -> bool:
        return (
            Mandate.objects.filter(pk=self.pk)
            .covering(
                controller_id=controller_id, right=right, purpose_id=purpose_id, on=on or timezone.localdate()
            )
            .exists()
        )

    @transition(field=state, source=State.ACTIVE, target=State.REVOKED, custom={"label": "Revoke"})
    def revoke(self) -> None:
        self.ended_at = timezone.now()

    @transition(field=state, source=State.ACTIVE, target=State.EXPIRED, custom={"admin": False})
    def expire(self) -> None:
        self.ended_at = timezone.now()

    @transition(field=state, source=State.ACTIVE, target=State.REPLACED, custom={"admin": False})
    def replace(self, *, by: Mandate) -> None:
        self.ended_at = timezone.now()
        self.replaced_by = by


class Authority(models.Model):
    """What one controller is shown of a member's mandate (DESIGN §2): the member, the community, the
    rights, purposes and dates as they apply to that controller, the identifiers it needs and how each was
    checked, bound to the full signed text by its hash. A controller never sees another controller's name,
    identifiers or the member's other choices (Art 5(1)(c) UK GDPR); the full mandate stays with the member,
    the community and, for a complaint, the ICO."""

    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, related_name="authorities")
    controller = models.ForeignKey("requests_engine.Controller", on_delete=models.PROTECT, related_name="+")
    token = models.CharField(max_length=64, unique=True, default=new_mandate_token, editable=False)
    # As issued: [{"label", "value", "checked"}], so the document and its check page say the same thing.
    identifiers = models.JSONField(default=list, editable=False)
    signer_email_verified = models.BooleanField(default=False, editable=False)
    pdf = models.FileField(
        upload_to="authorities/", blank=True, editable=False, storage=crypto.encrypted_storage
    )
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    # Earlier versions, when the member changed how this controller knows them: [{"sha256", "replaced_at"}],
    # so a controller holding an older PDF can still check it was ours.
    earlier_versions = models.JSONField(default=list, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "authorities"
        ordering = ["mandate", "controller"]
        constraints = [
            models.UniqueConstraint(fields=["mandate", "controller"], name="one_authority_per_controller")
        ]

    def __str__(self) -> str:
        return f"Authority of mandate {self.mandate.reference} for {self.controller}"


class Notice(models.Model):
    """Something that happened that concerns a member: emailed at once, or gathered into a daily digest
    (the member's choice). The row is also the member's record of what they were told."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="notices")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.CharField(max_length=500, blank=True, help_text="Path on this site where it can be seen.")
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Serves the digest run: a member's notices not yet emailed.
        indexes = [models.Index(fields=["member", "emailed_at"], name="notice_member_emailed")]

    def __str__(self) -> str:
        return self.subject


class Role(models.TextChoices):
    """What a staff user may do in one community's back office (communities/tenancy.py says exactly what)."""

    COORDINATOR = "coordinator", "Coordinator: runs campaigns, approves escalations"
    CASEWORKER = "caseworker", "Caseworker: answers members, handles the inbox"
    VIEWER = "viewer", "Viewer: reads only (an auditor)"


class StaffMembership(models.Model):
    """A staff user works for a community in one role: the one source of who sees and does what in its back
    office. Superusers need none (they see every community)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_roles")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["community", "role", "user"]
        constraints = [
            # Serves "this user's role in this community" on every back-office page.
            models.UniqueConstraint(fields=["user", "community"], name="one_staff_role_per_community")
        ]
        # Steps only a coordinator takes, given to the Coordinator group.
        permissions = [
            ("launch_campaigns", "Can launch campaigns and ask members about them"),
            ("approve_escalations", "Can approve requests, complaints and ICO packs"),
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_role_display().split(':')[0]} of {self.community}"
