"""Small factories for the records tests need; plain functions keep what each test builds visible."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from communities.models import Mandate, Member, Purpose, Right
from requests_engine.models import Campaign, Confirmation, DataRightsRequest


def make_member(community, name="Ada Lovelace", email=None):
    email = email or f"{name.split()[0].lower()}@community.test"
    user = get_user_model().objects.create_user(email, email, "pw")
    return Member.objects.create(user=user, community=community, full_name=name)


def make_purpose(community, text="Testing."):
    name = text[:120]
    return Purpose.objects.get_or_create(community=community, name=name, defaults={"text": text})[0]


def make_mandate(
    member,
    *,
    rights=(Right.ACCESS,),
    all_controllers=True,
    controllers=(),
    purposes=None,
    days=365,
    irreversible_without_asking=True,
):
    """A signed mandate. "All controllers" names the community's list of today, as signing does;
    `purposes` defaults to every purpose the community has today (a "Testing." one if it has none). It
    pre-authorises erasure and objection (the member ticked "without asking me each time"), as the engine's
    tests are not about confirming them; the confirmation tests pass False."""
    today = timezone.localdate()
    community = member.community
    text = f"{member.full_name} authorises {community.name}."
    mandate = Mandate.objects.create(
        member=member,
        rights=list(rights),
        all_controllers=all_controllers,
        irreversible_without_asking=irreversible_without_asking,
        valid_from=today - timedelta(days=1),
        valid_until=today + timedelta(days=days),
        template_version="t1",
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        signed_name=member.full_name,
        signed_at=timezone.now(),
    )
    mandate.controllers.set(list(community.controllers.all()) if all_controllers else controllers)
    if purposes is None:
        purposes = list(community.purposes.all()) or [make_purpose(community)]
    mandate.purposes.set(purposes)
    return mandate


def make_campaign(community, *, purpose="Testing.", controllers=(), authorised=True, **fields):
    """A draft campaign on the community's own lists: its controllers join the community's list and its
    purpose is one of the community's. With `authorised`, every member's mandate in force is taken to name
    them too (those who chose "all" organisations get the controllers; everyone gets the purpose), as if
    they had signed after these were listed; eligibility tests pass authorised=False and say exactly what
    each mandate names."""
    purpose = purpose if isinstance(purpose, Purpose) else make_purpose(community, purpose)
    campaign = Campaign.objects.create(community=community, purpose=purpose, **fields)
    if controllers:
        community.controllers.add(*controllers)
        campaign.controllers.set(controllers)
    if authorised:
        for mandate in Mandate.objects.filter(member__community=community, state=Mandate.State.ACTIVE):
            if mandate.all_controllers:
                mandate.controllers.add(*controllers)
            mandate.purposes.add(purpose)
    return campaign


def erasure_at_once(campaign, member):
    """The member confirmed the campaign's erasure and chose to send it at once, with the access request,
    instead of after the access answer (campaigns/sequencing.py)."""
    Confirmation.objects.update_or_create(
        campaign=campaign,
        member=member,
        defaults={
            "state": Confirmation.State.CONFIRMED,
            "erasure_at_once": True,
            "answered_at": timezone.now(),
        },
    )


def make_request(member, controller, *, mandate=None, right=Right.ACCESS, reference=None, campaign=None):
    mandate = mandate or member.mandates.first() or make_mandate(member)
    if mandate.all_controllers:  # requests are made only under mandates that name their controller
        member.community.controllers.add(controller)
        mandate.controllers.add(controller)
    return DataRightsRequest.objects.create(
        reference=reference or f"R-{member.pk}-{controller.pk}-{right}",
        campaign=campaign,
        member=member,
        mandate=mandate,
        controller=controller,
        right=right,
    )


def make_covered_request(member, controller, *, right=Right.ACCESS, reference=None):
    """A request made by a campaign the member's mandate covers (controller, right and purpose), as launch
    makes them: the one a re-send or a follow-up may act on."""
    mandate = member.mandates.first() or make_mandate(member, rights=(right,))
    campaign = make_campaign(member.community, name="Test campaign", rights=[right], controllers=[controller])
    return make_request(
        member, controller, mandate=mandate, right=right, reference=reference, campaign=campaign
    )


def verified_user(email: str, password: str = "pw-correct-horse-7"):
    from allauth.account.models import EmailAddress

    user = get_user_model().objects.create_user(email, email, password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def full_choices(member):
    """What a member who ticks everything on the choices page signs: every right the community exercises,
    all its organisations (the list of today) and all its purposes."""
    from communities.mandate_text import MandateChoices

    community = member.community
    today = timezone.localdate()
    if not community.purposes.exists():
        make_purpose(community)
    return MandateChoices(
        rights=tuple(r for r in Right.values if r in (community.rights or Right.values)),
        controller_ids=tuple(sorted(community.controllers.values_list("pk", flat=True))),
        all_controllers=True,
        purpose_ids=tuple(sorted(community.purposes.values_list("pk", flat=True))),
        valid_from=today,
        valid_until=today + timedelta(days=365),
        send_responses_to=Mandate.ResponsesTo.COMMUNITY,
        may_complain_to_controllers=True,
        # Offered, so ticked, only where the community has its Art 80(1) record (and enables court).
        may_represent_before_ico=community.art80_eligible,
        may_represent_in_court=community.offers_court,
    )


# The smallest file libmagic reads as a PDF: constitution uploads are sniffed, not rendered.
MINIMAL_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def make_art80_record(community, *, court=False):
    """The community's full Art 80(1) record, its constitution stored as uploads are, so it may represent
    members before the ICO (and, with `court`, offer representation in court)."""
    from communities.models import Community
    from communities.representation import constitution_store

    Community.objects.filter(pk=community.pk).update(
        legal_form=Community.LegalForm.COMPANY_LIMITED_BY_GUARANTEE,
        not_for_profit=True,
        statutory_objectives="To protect writers' personal data, for the public benefit.",
        data_protection_activity="Makes data rights requests and complaints for its members.",
        offers_court_representation=court,
    )
    constitution_store(community_id=community.pk, data=MINIMAL_PDF)
    community.refresh_from_db()
    return community
