"""Demo data for the embedded default: a community, a coordinator, members with mandates, the sample
controller directory and two launched campaigns whose requests stand on every rung of the ladder. Idempotent.

The first campaign is recent: its requests are sent, acknowledged, waiting on a question, extended,
overdue, fulfilled, partly fulfilled or refused, and its silent controllers are left for a coordinator to
take from "overdue" to an ICO pack in the back office. The second, older one has gone up the ladder:
a complaint drafted, one sent and awaiting acknowledgement, one taken to the ICO with its pack, and one
resolved, its requests closed. Everything goes through the services, with past dates where they take one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.html import escape

from communities import identifier_checks, tenancy
from communities.invitations import imports as invitations
from communities.mandate_text import MandateChoices, render_mandate_text, text_sha256
from communities.models import Community, Identifier, Mandate, Member, Purpose, Right, Role, StaffMembership
from communities.representation import constitution_store
from communities.services import identifiers_save, mandate_sign
from core.audit import Actor
from core.pdf import render_pdf
from requests_engine import services, sweep
from requests_engine.campaigns import launch
from requests_engine.directory.controller_import import controller_records, controllers_import
from requests_engine.escalation import complaints, ico_pack
from requests_engine.models import (
    Campaign,
    Complaint,
    Controller,
    ControllerContact,
    DataRightsRequest,
    InformationKind,
    RefusalGround,
)

SAMPLE_CONTROLLERS = Path(__file__).resolve().parent / "data" / "controllers_sample.json"
COORDINATOR_EMAIL = "coordinator@community.test"
COORDINATOR_PASSWORD = "demo-coordinator"  # demo only: seed_demo refuses to run in production
# The back office's other roles in the demo community (communities/tenancy.py): a caseworker answers members
# and handles the inbox but launches and approves nothing; a viewer only reads.
CASEWORKER_EMAIL = "caseworker@community.test"
VIEWER_EMAIL = "viewer@community.test"
STAFF_PASSWORD = "demo-staff"
MEMBER_PASSWORD = "demo-member"
CAMPAIGN_NAME = "Were our books used to train your models?"
CAMPAIGN_CONTROLLERS = ["openai", "google", "meta", "microsoft"]
LADDER_CAMPAIGN_NAME = "Do you keep and share what our readers and listeners do?"
# slug → what the controller does in the older campaign (see _climb_the_ladder)
LADDER_CONTROLLERS = {
    "amazon-gb": "silent; complaint sent, acknowledgement awaited",
    "spotify": "refused or partly answered; complaint drafted",
    "apple": "silent; complaint unresolved, taken to the ICO",
    "adobe": "refused; complaint resolved, requests closed",
}
LADDER_RECEIVED_DAYS_AGO = 100
MEMBERS = [
    ("Ada Lovelace", "ada@community.test"),
    ("Mary Shelley", "mary@community.test"),
    ("Samuel Johnson", "samuel@community.test"),
    ("Zadie Quill", "zadie@community.test"),
    ("Olaudah Equiano", "olaudah@community.test"),
    ("Jane Austen", "jane@community.test"),
    ("George Eliot", "george@community.test"),
    ("Virginia Woolf", "virginia@community.test"),
    ("Charles Dickens", "charles@community.test"),
    ("Toni Morrison", "toni@community.test"),
    ("Chinua Achebe", "chinua@community.test"),
    ("Agatha Christie", "agatha@community.test"),
]
# Not every member lets the community represent them before the ICO (Art 80(1)): ICO packs leave these out.
NO_ICO_AUTHORITY = {"samuel@community.test", "agatha@community.test"}
# The community's purposes: (name, the text that goes into mandates and letters).
PURPOSES = [
    (
        "Find out whether AI developers used members' work",
        "To learn whether you used members' published work, or other personal data about them, to train or "
        "improve AI models, and what you hold about them.",
    ),
    (
        "Object to AI training on members' data",
        "To stop the use of members' personal data, including their published work, to train AI models.",
    ),
    (
        "Learn what is recorded about members' reading and listening",
        "To learn what you record about members' reading and listening, and who you share it with.",
    ),
]
# One member ticked "send erasure and objection requests without asking me each time"; the others are asked
# to confirm each campaign's.
WITHOUT_ASKING = {"zadie@community.test"}
# One member leaves out objecting to AI training: the preview of such a campaign counts them as not
# authorised.
NOT_OBJECTING = {"agatha@community.test"}
# Two members gave another address for the first campaign organisation: one opened the check link sent to
# it (letters say "verified by a link sent to it"), one did not ("stated by the member").
OTHER_ADDRESS_CHECKED = {"zadie@community.test": True, "samuel@community.test": False}


@dataclass
class DemoSummary:
    controllers_created: int = 0
    members: list[str] = field(default_factory=list)
    campaign: str = ""
    requests_by_state: dict[str, int] = field(default_factory=dict)
    complaints: list[str] = field(default_factory=list)


# People on the community's own membership list who are not members yet: invited by email, and one by letter.
MEMBERSHIP_LIST = (
    "name,email,postal address,membership number\n"
    "Elizabeth Gaskell,elizabeth@community.test,,W-0101\n"
    "Anne Brontë,anne@community.test,,W-0102\n"
    'George Eliot,,"Griff House, Nuneaton CV10 7PJ",W-0103\n'
)


def _user(email: str, password: str, **extra) -> Any:

    User = get_user_model()
    user, created = User.objects.get_or_create(username=email, defaults={"email": email, **extra})
    if created:
        user.set_password(password)
        user.save()
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


DEMO_OBJECTIVES = (
    "To advance, for the public benefit, the protection of writers' personal data and their rights over it, "
    "including in the training of artificial intelligence."
)
DEMO_ACTIVITY = (
    "It makes data rights requests, complaints to organisations and complaints to the Information "
    "Commissioner for its members, and publishes how organisations answer them."
)


def _record_demo_art80(community: Community) -> None:
    """The demo community's Art 80(1) record, so its members can authorise representation before the ICO;
    it does not offer court representation."""
    Community.objects.filter(pk=community.pk).update(
        legal_form=Community.LegalForm.COMPANY_LIMITED_BY_GUARANTEE,
        not_for_profit=True,
        statutory_objectives=DEMO_OBJECTIVES,
        data_protection_activity=DEMO_ACTIVITY,
    )
    constitution = render_pdf(
        f"<h1>Constitution of {escape(community.legal_name or community.name)} (demo)</h1>"
        "<p>1. The company is not established or conducted for private gain.</p>"
        f"<p>2. Objects: {escape(DEMO_OBJECTIVES)}</p><p>3. Activities: {escape(DEMO_ACTIVITY)}</p>"
    )
    constitution_store(community_id=community.pk, data=constitution)
    community.refresh_from_db()


def seed_demo() -> DemoSummary:
    summary = DemoSummary()
    with transaction.atomic():
        report = controllers_import(controller_records(SAMPLE_CONTROLLERS))
        summary.controllers_created = len(report.created)
        _user(
            COORDINATOR_EMAIL,
            COORDINATOR_PASSWORD,
            is_staff=True,
            is_superuser=True,
            first_name="Coordinator",
        )
        community, _ = Community.objects.get_or_create(
            slug="writers",
            defaults={
                "name": "Writers' Data Collective",
                "purpose": "We help writers find out whether AI developers trained models on their work, and "
                "object or ask for erasure where they did. Members decide what we ask, and can stop at any time.",
                "contact_email": "hello@writers.community.test",
                "legal_name": "Writers' Data Collective CIC",
                "registration_number": "CIC 00000000 (demo)",
                "agent_name": "The coordinators of the Writers' Data Collective",
                "rights": [Right.ACCESS, Right.OBJECTION, Right.ERASURE, Right.PORTABILITY],
            },
        )
        if not community.constitution:
            _record_demo_art80(community)
        for email, role, first_name in (
            (COORDINATOR_EMAIL, Role.COORDINATOR, "Coordinator"),
            (CASEWORKER_EMAIL, Role.CASEWORKER, "Caseworker"),
            (VIEWER_EMAIL, Role.VIEWER, "Viewer"),
        ):
            staff = _user(email, STAFF_PASSWORD, is_staff=True, first_name=first_name)
            if not StaffMembership.objects.filter(user=staff, community=community).exists():
                tenancy.staff_role_grant(user=staff, community=community, role=role)
        targets = list(Controller.objects.filter(slug__in=CAMPAIGN_CONTROLLERS))
        ladder_targets = list(Controller.objects.filter(slug__in=LADDER_CONTROLLERS))
        community.controllers.add(*targets, *ladder_targets)
        for controller in [*targets, *ladder_targets]:
            # A demo contact per controller on a reserved test domain, to try the response portal.
            ControllerContact.objects.get_or_create(
                controller=controller, email=f"dpo@{controller.slug}.test", defaults={"name": "Demo contact"}
            )
        purposes = [
            Purpose.objects.get_or_create(community=community, name=name, defaults={"text": text})[0]
            for name, text in PURPOSES
        ]
        today = timezone.localdate()
        for name, email in MEMBERS:
            member, _ = Member.objects.get_or_create(
                user=_user(email, MEMBER_PASSWORD, first_name=name.split()[0]),
                community=community,
                defaults={"full_name": name},
            )
            summary.members.append(email)
            if not member.identifiers.exists():
                _give_demo_identifiers(member, email, targets[0])
            if not member.mandates.exists():
                _sign_demo_mandate(member, community, purposes, today=today)
        coordinator = get_user_model().objects.get(username=COORDINATOR_EMAIL)
        # Part of the union's membership list, as imported in the admin (again: nothing changes).
        invitations.invitations_import(
            community=community, text=MEMBERSHIP_LIST, dry_run=False, by=coordinator
        )
        campaign, created = Campaign.objects.get_or_create(
            community=community,
            name=CAMPAIGN_NAME,
            defaults={
                "rights": [Right.ACCESS],
                "purpose": purposes[0],
                "created_by": coordinator,
            },
        )
        if created:
            campaign.controllers.set(targets)
            launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.user(coordinator), dispatch=False)
            _play_out_requests(campaign, Actor.user(coordinator))
        ladder, created = Campaign.objects.get_or_create(
            community=community,
            name=LADDER_CAMPAIGN_NAME,
            defaults={
                "rights": [Right.ACCESS],
                "purpose": purposes[2],
                "created_by": coordinator,
            },
        )
        summary.campaign = f"{campaign.reference} and {ladder.reference}"
        if created:
            ladder.controllers.set(ladder_targets)
            launch.campaign_launch(campaign_id=ladder.pk, actor=Actor.user(coordinator), dispatch=False)
            _climb_the_ladder(ladder, Actor.user(coordinator))
    sweep.deadlines_sweep()
    states = DataRightsRequest.objects.filter(campaign__in=[campaign, ladder]).values_list("state", flat=True)
    for state in states:
        summary.requests_by_state[state] = summary.requests_by_state.get(state, 0) + 1
    for complaint in Complaint.objects.filter(community=community).select_related("controller"):
        summary.complaints.append(
            f"{complaint.reference} {complaint.get_kind_display().lower()} ({complaint.controller.name}): "
            f"{complaint.get_state_display().lower()}"
        )
    return summary


def _give_demo_identifiers(member: Member, email: str, controller: Controller) -> None:
    """As a member does on the identifiers page: the login address everywhere (checked when they joined),
    and for some an address used at one organisation, checked by its link or not."""
    entries: list[tuple[int | None, str, str, str]] = [(None, Identifier.Kind.EMAIL, "", email)]
    other = email.replace("@", f"+{controller.slug}@")
    if email in OTHER_ADDRESS_CHECKED:
        entries.append((controller.pk, Identifier.Kind.EMAIL, "Email address you use there", other))
    identifiers_save(member=member, entries=entries)
    if OTHER_ADDRESS_CHECKED.get(email):
        identifier_checks.check_link_use(identifier_checks.check_token(member=member, address=other))


def _sign_demo_mandate(member: Member, community: Community, purposes: list[Purpose], *, today) -> Mandate:
    """A member's mandate made as a member makes one: the same choices, template and signing service. It
    started 60 days ago, so the demo's requests can have been received weeks ago."""
    email = member.user.email
    choices = MandateChoices(
        rights=(Right.ACCESS, Right.PORTABILITY, Right.ERASURE, Right.OBJECTION),
        controller_ids=tuple(sorted(community.controllers.values_list("pk", flat=True))),
        all_controllers=True,
        purpose_ids=tuple(p.pk for p in purposes if email not in NOT_OBJECTING or p is not purposes[1]),
        valid_from=today - timedelta(days=60),
        valid_until=today + timedelta(days=305),
        send_responses_to=Mandate.ResponsesTo.COMMUNITY,
        may_complain_to_controllers=True,
        may_represent_before_ico=email not in NO_ICO_AUTHORITY,
        irreversible_without_asking=email in WITHOUT_ASKING,
    )
    text = render_mandate_text(member=member, choices=choices)
    mandate = mandate_sign(
        member=member,
        choices=choices,
        shown_text_sha256=text_sha256(text),
        signed_name=member.full_name,
        ip=None,
        user_agent="Demo data",
    )
    Mandate.objects.filter(pk=mandate.pk).update(signed_at=timezone.now() - timedelta(days=60))
    return mandate


def _play_out_requests(campaign: Campaign, coordinator: Actor) -> None:
    """Move the demo requests through the lifecycle as a coordinator recording controllers' replies would."""
    today = timezone.localdate()
    controller_actor = Actor(Actor.CONTROLLER, "demo")
    script = [
        # (days since receipt, steps)
        (45, []),  # silence: the sweep marks it overdue
        (40, ["acknowledge"]),  # acknowledged, then silence: overdue too
        (20, ["acknowledge", "extend"]),
        (12, ["acknowledge", "ask_identity"]),
        (25, ["acknowledge", "ask_clarification", "clarified"]),
        (30, ["refuse"]),
        (28, ["acknowledge", "fulfil"]),
        (28, []),  # silent so far: due within the week (the dashboard's first figure)
        (26, ["acknowledge", "partly_fulfil"]),
    ]
    # Member by member, so each controller meets a mix of the script's replies.
    requests = list(campaign.requests.order_by("member_id", "batch_id", "pk"))
    for index, request in enumerate(requests):
        days_ago, steps = script[index % len(script)]
        rid = request.pk
        received = today - timedelta(days=days_ago)
        services.request_dispatch(
            request_id=rid, received_on=received, actor=Actor.system("dispatch"), channel="email"
        )
        for step in steps:
            if step == "acknowledge":
                services.request_acknowledge(request_id=rid, actor=controller_actor)
            elif step == "extend":
                services.request_extend(
                    request_id=rid,
                    months=2,
                    reason="We received many requests from this community at once.",
                    actor=controller_actor,
                )
            elif step == "ask_identity":
                services.request_ask_for_information(
                    request_id=rid,
                    kind=InformationKind.IDENTITY,
                    question="Please send a copy of photo ID.",
                    asked_on=received + timedelta(days=5),
                    actor=controller_actor,
                )
            elif step == "ask_clarification":
                services.request_ask_for_information(
                    request_id=rid,
                    kind=InformationKind.CLARIFICATION,
                    question="Which of our services did the member use?",
                    asked_on=received + timedelta(days=4),
                    actor=controller_actor,
                )
            elif step == "clarified":
                services.request_give_information(
                    request_id=rid,
                    received_on=received + timedelta(days=9),
                    actor=coordinator,
                    answer="The consumer chat service, with the email address given.",
                )
            elif step == "refuse":
                services.request_refuse(
                    request_id=rid,
                    ground=RefusalGround.MANIFESTLY_EXCESSIVE,
                    reasons="Bulk requests from third parties are excessive.",
                    actor=controller_actor,
                )
            elif step == "fulfil" and index % 2:  # every other answer: nothing held, an answer all the same
                services.request_confirm_no_data(
                    request_id=rid,
                    searches="Our account, support and training-data systems, under the member's email address.",
                    actor=controller_actor,
                )
            elif step == "fulfil":
                services.request_fulfil(
                    request_id=rid, note="Copy of the data sent by email.", actor=controller_actor
                )
            elif step == "partly_fulfil":
                services.request_partially_fulfil(
                    request_id=rid,
                    ground=RefusalGround.LEGAL_PRIVILEGE,
                    reasons=PARTLY_REASONS,
                    actor=controller_actor,
                )


PARTLY_REASONS = (
    "We have sent the account data. We withheld the legal advice we took about model training, which is "
    "privileged (DPA 2018 Schedule 2 paragraph 19). You may complain to the ICO or apply to a court."
)
REFUSAL_REASONS = "Requests made in bulk by a third party are excessive."


def _climb_the_ladder(campaign: Campaign, coordinator: Actor) -> None:
    """The older campaign, received LADDER_RECEIVED_DAYS_AGO days ago, as far up the ladder as each controller
    took it (LADDER_CONTROLLERS). Complaints are made today: the services date them."""
    today = timezone.localdate()
    received = today - timedelta(days=LADDER_RECEIVED_DAYS_AGO)
    answered = received + timedelta(days=21)
    controller_actor = Actor(Actor.CONTROLLER, "demo")
    by_controller: dict[str, list[int]] = {slug: [] for slug in LADDER_CONTROLLERS}
    for request in campaign.requests.select_related("controller").order_by("pk"):
        services.request_dispatch(
            request_id=request.pk, received_on=received, actor=Actor.system("dispatch"), channel="email"
        )
        by_controller[request.controller.slug].append(request.pk)
    for number, rid in enumerate(by_controller["spotify"]):
        if number % 2:
            services.request_partially_fulfil(
                request_id=rid,
                ground=RefusalGround.LEGAL_PRIVILEGE,
                reasons=PARTLY_REASONS,
                answered_on=answered,
                actor=controller_actor,
            )
        else:
            services.request_refuse(
                request_id=rid,
                ground=RefusalGround.MANIFESTLY_EXCESSIVE,
                reasons=REFUSAL_REASONS,
                answered_on=answered,
                actor=controller_actor,
            )
    for rid in by_controller["adobe"]:
        services.request_refuse(
            request_id=rid,
            ground=RefusalGround.MANIFESTLY_EXCESSIVE,
            reasons=REFUSAL_REASONS,
            answered_on=answered,
            actor=controller_actor,
        )
    sweep.deadlines_sweep()  # Amazon's and Apple's silence is overdue

    drafts = {
        controller.slug: complaints.complaint_draft(
            campaign_id=campaign.pk, controller_id=controller.pk, actor=coordinator
        )
        for controller in campaign.controllers.all()
    }
    for slug in ("amazon-gb", "apple", "adobe"):  # Spotify's stays a draft for a coordinator to review
        complaints.complaint_approve_and_send(complaint_id=drafts[slug].pk, actor=coordinator)
    complaints.complaint_record_outcome(
        complaint_id=drafts["adobe"].pk,
        resolved=True,
        actor=coordinator,
        outcome="Adobe reconsidered and sent each member a copy of their data with the Art 15 information.",
    )
    complaints.complaint_record_outcome(
        complaint_id=drafts["apple"].pk,
        resolved=False,
        actor=coordinator,
        outcome="Apple replied that it will not answer requests made through a community.",
    )
    pack = ico_pack.ico_pack_build(
        complaint_id=drafts["apple"].pk,
        actor=coordinator,
        harm="Members cannot learn what Apple records about their reading and listening, or who it shares "
        "it with; several stopped using its services for their work because of it.",
        ask="Please tell Apple to answer each request without further delay, and consider enforcement.",
    )
    ico_pack.ico_case_record(
        complaint_id=pack.complaint.pk, case_reference="IC-000000-DEMO", actor=coordinator
    )
