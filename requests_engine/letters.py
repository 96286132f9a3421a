"""What a controller receives: the request letters, the member manifest and the members' mandates.

All wording lives in templates/requests_engine/letters/ (one template per right, plus AI-developer variants);
this module chooses the variants, gathers what each letter may disclose, and renders:

* a collective letter (one per batch): the cover letter as a sealed PDF, the same text as the email body,
  a member manifest (CSV, one row per request) and a ZIP of the members' sealed authority documents for
  this controller (see authorities.py);
* an individual letter (controllers marked `individual_requests`): one member's request as the email body,
  sent with that member's authority document.

Disclosure (data minimisation, Art 5(1)(c) UK GDPR): a controller learns each member's full name, pseudonymous
member reference, and only the identifiers meant for it: those the member gave for that controller, plus
general ones (given for no controller in particular) of the kinds its directory entry asks for, or an email
address when the entry asks for nothing (as the identifiers form assumes).

AI developers: a controller counts as one when one of its directory categories names AI: the word "AI" on
its own, or "artificial intelligence", "machine learning", "generative", "LLM" or "language model" in it.
The datenanfragen directory has no such category, so coordinators tag these controllers in the admin. Their
access, erasure and objection sections add questions on training data, its sources, and inferences and
outputs about the member (RULES.md (i)).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.documents import authorities_for, authority_filename, authority_pdf, authority_url
from communities.models import Authority, Community, Identifier, Right
from core.pdf import qr_svg, render_pdf, seal_pdf
from requests_engine import deadlines
from requests_engine.models import Batch, Confirmation, Controller, DataRightsRequest, RequestState

TEMPLATES = "requests_engine/letters"
AI_VARIANTS = frozenset({Right.ACCESS, Right.ERASURE, Right.OBJECTION})
_AI_WORD = re.compile(r"\bai\b|artificial intelligence|machine learning|generative|\bllms?\b|language model")

# The directory's `required-elements` types as identifier kinds (as the identifiers form reads them).
_TYPE_TO_KIND = {
    "email": Identifier.Kind.EMAIL,
    "name": Identifier.Kind.NAME,
    "address": Identifier.Kind.POSTAL_ADDRESS,
    "phone": Identifier.Kind.PHONE,
}

MANIFEST_COLUMNS = [
    "reference",
    "member_reference",
    "member_name",
    "right",
    "identifiers",
    "mandate_reference",
    "mandate_check_url",
    "particular_situation",
]


# -- what a letter may say -----------------------------------------------------------------------------------


def letterhead(community: Community) -> dict[str, str]:
    """Who writes, as every letter, complaint and ICO pack names them."""
    return {
        "sender_name": community.legal_name or community.name,
        "contact_name": community.agent_name or f"The coordinators of {community.name}",
    }


def long_date(day: date | None) -> str:
    """'9 April 2026': how a date reads in letters, notices and the back office."""
    if day is None:
        # A letter must never print a blank where a deadline belongs.
        raise ValueError("There is no date to write here.")
    return f"{day.day} {day:%B %Y}"


def is_ai_developer(controller: Controller) -> bool:
    return any(_AI_WORD.search(str(category).lower()) for category in controller.categories or [])


def needed_kinds(controller: Controller) -> set[str]:
    """The identifier kinds the controller's directory entry asks for; an email address if it names none."""
    kinds = {
        _TYPE_TO_KIND.get(element.get("type", ""), Identifier.Kind.OTHER)
        for element in controller.required_identifiers or []
        if isinstance(element, dict)
    }
    return {str(kind) for kind in kinds} or {str(Identifier.Kind.EMAIL)}


def disclosed_identifier_rows(
    controller: Controller, member_ids: Iterable[int] | QuerySet
) -> dict[int, list[Identifier]]:
    """THE disclosure rule: per member (ids, or a subquery of them), the identifiers this controller may see,
    one per label and value, in one query."""
    rows = (
        Identifier.objects.filter(member_id__in=member_ids)
        .filter(Q(controller=controller) | Q(controller__isnull=True, kind__in=needed_kinds(controller)))
        .order_by("member_id", "kind", "pk")
    )
    found: dict[int, list[Identifier]] = defaultdict(list)
    seen: set[tuple[int, str, str]] = set()
    for identifier in rows:
        key = (identifier.member_id, identifier.plain_label, identifier.value)
        if key not in seen:
            seen.add(key)
            found[identifier.member_id].append(identifier)
    return found


def disclosed_identifiers(
    controller: Controller, member_ids: Iterable[int] | QuerySet
) -> dict[int, list[tuple[str, str]]]:
    """Per member: the (label, value) pairs this controller may see, the value saying how it was checked."""
    return {
        member_id: [(i.plain_label, f"{i.value} ({i.checked})") for i in identifiers]
        for member_id, identifiers in disclosed_identifier_rows(controller, member_ids).items()
    }


# A batch's reply address is `reply+<the batch's reply token>@<REPLY_DOMAIN>`: built here for letters and
# emails, and read back here when a reply arrives (responses/inbound.py). The mailbox must accept `+` tags.
REPLY_LOCAL_PART = "reply"
_REPLY_ADDRESS = re.compile(rf"^{REPLY_LOCAL_PART}\+([A-Za-z0-9_-]{{8,64}})@", re.IGNORECASE)


def reply_address_of(reply_token: str, *, domain: str = "") -> str:
    """The signed per-batch address for a reply token, at `domain` or the configured reply domain."""
    domain = domain or getattr(settings, "REPLY_DOMAIN", "") or "community.localhost"
    return f"{REPLY_LOCAL_PART}+{reply_token}@{domain}"


def reply_address(batch: Batch) -> str:
    """The batch's own reply address: a reply to it threads back to the batch whoever sends it."""
    return reply_address_of(batch.reply_token)


def reply_token_in(address: str) -> str | None:
    """The reply token a recipient address carries, or None for any other address."""
    match = _REPLY_ADDRESS.match(address.strip())
    return match.group(1) if match else None


def portability_target(batch: Batch) -> str:
    """The controller to transmit portable data to (Art 20(2)). Nothing records one yet: the letter then
    says we will name it when a member asks."""
    return ""


@dataclass(frozen=True)
class Section:
    right: str
    template: str
    whom: str  # "Ada Lovelace", or "the 12 members listed for this right in the manifest"
    one: bool  # a single member: "the member asks" rather than "the members ask"
    situation: str = ""  # one member's particular situation, in their words (Art 21(1))
    individual: bool = False  # a letter about one member's request (not a collective letter)


def _sections(
    controller: Controller, counts: dict[str, int], *, member: str = "", situation: str = ""
) -> list[Section]:
    ai = is_ai_developer(controller)
    sections = []
    for right in Right.values:  # the order of the Articles
        if right not in counts:
            continue
        variant = f"{right}_ai" if ai and right in AI_VARIANTS else right
        n = counts[right]
        whom = member or f"the {n} member{'s' if n != 1 else ''} listed for this right in the manifest"
        sections.append(
            Section(
                right,
                f"{TEMPLATES}/rights/{variant}.txt",
                whom=whom,
                one=bool(member) or n == 1,
                situation=situation if member else "",
                individual=bool(member),
            )
        )
    return sections


def letter_context(batch: Batch, *, today: date | None = None) -> dict:
    """What every letter of the batch says alike: who writes to whom, the dates, how to answer."""
    today = today or timezone.localdate()
    controller, campaign = batch.controller, batch.campaign
    community = campaign.community
    site = settings.SITE_URL.rstrip("/")
    return {
        "batch": batch,
        "campaign": campaign,
        "community": community,
        "controller": controller,
        **letterhead(community),
        "today": today,
        # Art 12(3): one month from receipt, rolled past the controller's nation's weekends and bank holidays.
        "due": deadlines.statutory_due_date(today, jurisdiction=controller.jurisdiction),
        "portal_url": f"{site}/respond/",
        "api_url": f"{site}/api/v1/",
        "reply_to": reply_address(batch),
        "verify_url_pattern": f"{site}{reverse('mandate-verify', args=['CODE'])}".replace("CODE", "<code>"),
        "portability_target": portability_target(batch),
    }


def _rights_exercised(rights: Iterable[str]) -> str:
    return ", ".join(str(Right(r).label) for r in Right.values if r in set(rights))


# -- text into email body and PDF blocks ---------------------------------------------------------------------


def _plain(text: str) -> str:
    """The rendered letter as an email body: headings underlined, no runs of blank lines."""
    lines = []
    for line in text.strip().splitlines():
        line = line.rstrip()
        if line.startswith("# ") or line.startswith("## "):
            title = line.lstrip("#").strip()
            lines += [title, ("=" if line.startswith("# ") else "-") * len(title)]
        else:
            lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


@dataclass
class Block:
    kind: str  # h1, h2, list, p
    text: str = ""
    items: list[str] = field(default_factory=list)


def _blocks(text: str) -> list[Block]:
    """The rendered letter as blocks for the PDF template, which escapes them."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in chunk.strip().splitlines()]
        if not lines:
            continue
        if lines[0].startswith("## "):
            blocks.append(Block("h2", lines[0][3:].strip()))
            lines = lines[1:]
        elif lines[0].startswith("# "):
            blocks.append(Block("h1", lines[0][2:].strip()))
            lines = lines[1:]
        if lines and all(line.startswith("- ") for line in lines):
            blocks.append(Block("list", items=[line[2:] for line in lines]))
        elif lines:
            blocks.append(Block("p", "\n".join(lines)))
    return blocks


# -- the collective letter -----------------------------------------------------------------------------------


@dataclass
class CollectiveLetter:
    subject: str
    text: str
    pdf: bytes  # sealed
    manifest: bytes  # CSV
    authorities_zip: bytes
    filenames: dict[str, str]
    request_ids: list[int]


def _csv_cell(value: str) -> str:
    # A cell a spreadsheet would run as a formula (OWASP "CSV injection") is shown as text instead.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def collective_letter(batch: Batch, *, today: date | None = None) -> CollectiveLetter:
    """Render the letter, manifest and authorities ZIP for the batch's queued requests. Every mandate needs
    its authority document for this controller already (see dispatch)."""
    today = today or timezone.localdate()
    controller = batch.controller
    requests = list(
        batch.requests.filter(state=RequestState.QUEUED)
        .select_related("member", "mandate")
        .order_by("reference")
    )
    authorities = authorities_for(controller=controller, mandate_ids={r.mandate_id for r in requests})
    # A request is never sent without its authority document: one that joined after they were issued waits.
    requests = [r for r in requests if r.mandate_id in authorities]
    identifiers = disclosed_identifiers(controller, {r.member_id for r in requests})
    counts: dict[str, int] = defaultdict(int)
    for request in requests:
        counts[request.right] += 1
    members = {r.member_id for r in requests}
    filenames = {
        "letter": f"letter-{batch.reference}.pdf",
        "manifest": f"manifest-{batch.reference}.csv",
        "authorities": f"authorities-{batch.reference}.zip",
    }
    context = {
        **letter_context(batch, today=today),
        "single": False,
        "member_count": len(members),
        "sections": _sections(controller, counts),
        "rights_exercised": _rights_exercised(counts),
        "files": filenames,
    }
    raw = render_to_string(f"{TEMPLATES}/letter.txt", context)
    html = render_to_string(
        f"{TEMPLATES}/cover.html",
        {**context, "blocks": _blocks(raw), "portal_qr": qr_svg(context["portal_url"])},
    )
    pdf = seal_pdf(render_pdf(html), reason=f"Letter {batch.reference} from {batch.campaign.community.name}")
    community = batch.campaign.community
    return CollectiveLetter(
        subject=(
            f"Data rights requests for {len(members)} member{'s' if len(members) != 1 else ''} of "
            f"{community.name} [{batch.reference}]"
        ),
        text=_plain(raw),
        pdf=pdf,
        manifest=manifest_csv(requests, identifiers, authorities),
        authorities_zip=authorities_zip(authorities[r.mandate_id] for r in requests),
        filenames=filenames,
        request_ids=[r.pk for r in requests],
    )


def manifest_csv(
    requests: list[DataRightsRequest],
    identifiers: dict[int, list[tuple[str, str]]],
    authorities: dict[int, Authority],
) -> bytes:
    """One row per request. UTF-8 with a byte-order mark, so that spreadsheets read names correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MANIFEST_COLUMNS)
    situations = objection_situations(requests[0].campaign_id, requests) if requests else {}
    for request in requests:
        disclosed = "; ".join(f"{label}: {value}" for label, value in identifiers.get(request.member_id, []))
        row = [
            request.reference,
            request.member.reference,
            request.member.full_name,
            str(Right(request.right).label),
            disclosed,
            request.mandate.reference,
            authority_url(authorities[request.mandate_id]),
            situations.get(request.pk, ""),
        ]
        writer.writerow([_csv_cell(value) for value in row])
    return out.getvalue().encode("utf-8-sig")


def authorities_zip(authorities: Iterable[Authority]) -> bytes:
    """One sealed authority document per member (a member with several rights in the batch has one).
    Stored, not deflated: PDFs are compressed already."""
    out = io.BytesIO()
    seen = set()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for authority in authorities:
            if authority.pk in seen:
                continue
            seen.add(authority.pk)
            archive.writestr(authority_filename(authority), authority_pdf(authority))
    return out.getvalue()


# -- the individual letter -----------------------------------------------------------------------------------


def individual_letter(
    request: DataRightsRequest,
    *,
    batch: Batch,
    identifiers: list[tuple[str, str]],
    authority: Authority,
    base: dict | None = None,
) -> tuple[str, str]:
    """Subject and body of one member's request, for controllers that take requests one by one, sent with
    the member's authority document for this controller. `base` is `letter_context(batch)`, computed once
    when writing many letters."""
    member, mandate = request.member, request.mandate
    context = {
        **(base or letter_context(batch)),
        "single": True,
        "member_count": 1,
        "request": request,
        "member": member,
        "mandate": mandate,
        "authority_url": authority_url(authority),
        "identifiers": [("Full name", member.full_name), *identifiers],
        "sections": _sections(
            batch.controller,
            {request.right: 1},
            member=member.full_name,
            situation=objection_situations(batch.campaign_id, [request]).get(request.pk, ""),
        ),
        "rights_exercised": _rights_exercised([request.right]),
    }
    text = _plain(render_to_string(f"{TEMPLATES}/letter.txt", context))
    community = batch.campaign.community
    subject = f"Data rights request {request.reference} from {community.name}: {Right(request.right).label}"
    return subject, text


def objection_situations(campaign_id: int | None, requests: Iterable[DataRightsRequest]) -> dict[int, str]:
    """Each objection's particular situation (Art 21(1) UK GDPR), as its member wrote it when confirming."""
    objections = {r.member_id: r.pk for r in requests if r.right == Right.OBJECTION}
    if campaign_id is None or not objections:
        return {}
    written = Confirmation.objects.filter(
        campaign_id=campaign_id, member_id__in=list(objections), state=Confirmation.State.CONFIRMED
    ).exclude(objection_situation="")
    return {objections[c.member_id]: c.objection_situation for c in written}


def copied_to(controller: Controller) -> list[str]:
    """Who gets a copy of what we send a controller: its UK representative, where it has one (Art 27(4) UK
    GDPR: the representative is addressed in addition to, or instead of, the controller on all issues)."""
    return [controller.uk_representative_email] if controller.uk_representative_email else []
