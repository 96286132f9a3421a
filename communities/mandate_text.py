"""The mandate's exact wording, from a versioned template (RULES.md (e) lists what it must say).

The text a member reads is the text hashed and signed: it is rendered once from the member's choices, shown
in full, and re-rendered at signing to prove the signed text is the one shown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.template.loader import render_to_string

from .models import IRREVERSIBLE_RIGHTS, Community, Mandate, Member, Purpose, Right

TEMPLATE_VERSION = "v3"
# v1 said "every controller in the community's directory"; v2 names each controller and purpose, the only
# scope there is; v3 gives representation before the ICO and in court a sentence each, as separate choices
# (Art 80(1) UK GDPR, DPA 2018 s.187). Signed texts stay as they were signed.
TEMPLATES = {
    "v1": "communities/mandate/v1.txt",
    "v2": "communities/mandate/v2.txt",
    "v3": "communities/mandate/v3.txt",
}


@dataclass(frozen=True)
class MandateChoices:
    rights: tuple[str, ...]
    controller_ids: tuple[int, ...]  # the explicit list, even when the member chose "all of them"
    purpose_ids: tuple[int, ...]
    valid_from: date
    valid_until: date
    send_responses_to: str
    may_complain_to_controllers: bool
    may_represent_before_ico: bool
    all_controllers: bool = False  # the member chose "all of them": the list of that day
    irreversible_without_asking: bool = False  # erasure/objection sent without asking each time
    may_represent_in_court: bool = False  # Art 79/82 UK GDPR via DPA 2018 s.187, its own opt-in


def _controller_names(community: Community, controller_ids: tuple[int, ...]) -> list[str]:
    controllers = community.controllers.filter(pk__in=controller_ids)
    return [c.name for c in controllers.order_by("name")]


def _purposes(community: Community, purpose_ids: tuple[int, ...]) -> list[Purpose]:
    return list(community.purposes.filter(pk__in=purpose_ids).order_by("name"))


def _identifier_lines(member: Member) -> list[str]:
    lines = []
    for identifier in member.identifiers.select_related("controller").order_by("controller__name", "kind"):
        where = f" with {identifier.controller.name}" if identifier.controller else ""
        lines.append(f"{identifier.plain_label}{where}: {identifier.value}")
    return lines


def render_mandate_text(*, member: Member, choices: MandateChoices, version: str = TEMPLATE_VERSION) -> str:
    community = member.community
    labels = dict(Right.choices)
    context = {
        "version": version,
        "member_name": member.full_name,
        "member_reference": member.reference,
        "identifiers": _identifier_lines(member),
        "community_name": community.name,
        "community_legal_name": community.legal_name or community.name,
        "registration_number": community.registration_number,
        "contact_email": community.contact_email,
        "postal_address": " ".join(community.postal_address.split()),
        "agent_name": community.agent_name,
        "rights": [labels[r] for r in Right.values if r in choices.rights],
        "all_controllers": choices.all_controllers,
        "controllers": _controller_names(community, choices.controller_ids),
        "purposes": _purposes(community, choices.purpose_ids),
        "responses_to": {  # keyed by value: a choice read back from a form is a plain string
            str(Mandate.ResponsesTo.COMMUNITY): "to the community, which passes them on to me",
            str(Mandate.ResponsesTo.MEMBER): "to me directly",
            str(Mandate.ResponsesTo.BOTH): "to both me and the community",
        }[choices.send_responses_to],
        "may_complain_to_controllers": choices.may_complain_to_controllers,
        "may_represent_before_ico": choices.may_represent_before_ico,
        "may_represent_in_court": choices.may_represent_in_court,
        "irreversible": bool(IRREVERSIBLE_RIGHTS & set(choices.rights)),
        "irreversible_without_asking": choices.irreversible_without_asking,
        "valid_from": f"{choices.valid_from:%d %B %Y}",
        "valid_until": f"{choices.valid_until:%d %B %Y}",
        "revoke_url": settings.SITE_URL.rstrip("/") + "/me/",
    }
    return render_to_string(TEMPLATES[version], context).strip() + "\n"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


TERMS_VERSION = 1


def terms_sha256(mandate: Mandate) -> str:
    """SHA-256 over the terms stored on the mandate's row and its lists, bound to the hash of the signed text.
    The signing event carries it (under the audit key), so verify_audit_log can tell when what the engine
    acts on (rights, organisations, purposes, dates, choices) no longer says what the member signed."""
    terms = {
        "version": TERMS_VERSION,
        "member": mandate.member_id,
        "rights": sorted(mandate.rights),
        "all_controllers": mandate.all_controllers,
        # .all() so that a caller checking many mandates can prefetch the lists
        "controllers": sorted(c.pk for c in mandate.controllers.all()),
        "purposes": sorted(p.pk for p in mandate.purposes.all()),
        "valid_from": mandate.valid_from.isoformat(),
        "valid_until": mandate.valid_until.isoformat(),
        "send_responses_to": mandate.send_responses_to,
        "may_complain_to_controllers": mandate.may_complain_to_controllers,
        "may_represent_before_ico": mandate.may_represent_before_ico,
        "may_represent_in_court": mandate.may_represent_in_court,
        "irreversible_without_asking": mandate.irreversible_without_asking,
        "template_version": mandate.template_version,
        "text_sha256": mandate.text_sha256,
    }
    return hashlib.sha256(json.dumps(terms, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
