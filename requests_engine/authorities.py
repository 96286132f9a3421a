"""The per-controller authority document: what a controller is shown of a member's mandate.

A controller may rightly ask a third party to show it is entitled to act (ICO guidance on requests made on
behalf of others), but it needs nothing about the member's dealings with anyone else (Art 5(1)(c) UK GDPR).
So each controller receives, for each member, a sealed PDF saying who the member is, who acts for them, the
rights, purposes and dates as they apply to that controller, the identifiers that controller needs with
how each was checked, and the SHA-256 of the full signed mandate text, which binds the two without showing
the rest. Its check page (`/verify/<token>/`) shows the same, and whether the mandate is in force.

Documents are issued once per mandate × controller, when they are first needed (outside any lock: rendering
is slow), and never change: a replacement mandate gets its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string

from communities.documents import authority_filename, authority_url
from communities.models import Authority, Mandate, Right
from core.pdf import qr_svg, render_pdf, seal_pdf, sha256_hex
from requests_engine.letters import disclosed_identifier_rows, letterhead
from requests_engine.models import Controller


def _identifiers(mandate: Mandate, controller: Controller) -> list[dict[str, str]]:
    """The identifiers this controller may see (the letters' disclosure rule), with how each was checked."""
    rows = disclosed_identifier_rows(controller, [mandate.member_id]).get(mandate.member_id, [])
    return [{"label": i.plain_label, "value": i.value, "checked": i.checked} for i in rows]


def authority_context(authority: Authority) -> dict:
    """What the document and its check page both say."""
    mandate = authority.mandate
    community = mandate.member.community
    return {
        "authority": authority,
        "mandate": mandate,
        "member": mandate.member,
        "community": community,
        "controller": authority.controller,
        **letterhead(community),
        "rights": [label for value, label in Right.choices if value in mandate.rights],
        "purposes": list(mandate.purposes.order_by("name")),
        "responses_to": {
            str(Mandate.ResponsesTo.COMMUNITY): "to the community, which passes them on to the member",
            str(Mandate.ResponsesTo.MEMBER): "to the member directly",
            str(Mandate.ResponsesTo.BOTH): "to both the member and the community",
        }[mandate.send_responses_to],
        "verify_url": authority_url(authority),
        "portal_url": settings.SITE_URL.rstrip("/") + "/respond/",
    }


def _render(authority: Authority) -> bytes:
    context = authority_context(authority)
    html = render_to_string(
        "requests_engine/authority/pdf.html", {**context, "qr": qr_svg(context["verify_url"])}
    )
    reason = f"Authority of mandate {authority.mandate.reference} for {authority.controller.name}"
    return seal_pdf(render_pdf(html), reason=reason)


def authority_issue(*, mandate: Mandate, controller: Controller) -> Authority:
    """The mandate's document for this controller: the one already issued, or a new one. A mandate that does
    not name the controller has none to give (RULES.md (e))."""
    existing = Authority.objects.filter(mandate=mandate, controller=controller).exclude(pdf="").first()
    if existing:
        return existing
    if not mandate.controllers.filter(pk=controller.pk).exists():
        raise ValueError(f"Mandate {mandate.reference} does not name {controller.name}.")
    authority = Authority(
        mandate=mandate,
        controller=controller,
        identifiers=_identifiers(mandate, controller),
        signer_email_verified=EmailAddress.objects.filter(
            user_id=mandate.member.user_id, email__iexact=mandate.member.user.email, verified=True
        ).exists(),
    )
    pdf = _render(authority)
    try:
        with transaction.atomic():
            authority.pdf.save(authority_filename(authority), ContentFile(pdf), save=False)
            authority.pdf_sha256 = sha256_hex(pdf)
            authority.save()
    except IntegrityError:  # another worker issued it first: theirs stands
        authority.pdf.delete(save=False)
        return Authority.objects.get(mandate=mandate, controller=controller)
    return authority


def authorities_ensure(*, controller: Controller, mandate_ids: Iterable[int] | QuerySet) -> None:
    """Issue the documents still missing for these mandates (call outside any lock: rendering is slow)."""
    have = Authority.objects.filter(controller=controller).exclude(pdf="").values("mandate_id")
    missing = (
        Mandate.objects.filter(pk__in=mandate_ids)
        .exclude(pk__in=have)
        .select_related("member__community", "member__user")
    )
    for mandate in missing:
        authority_issue(mandate=mandate, controller=controller)
