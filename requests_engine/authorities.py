"""The per-controller authority document: what a controller is shown of a member's mandate.

A controller may rightly ask a third party to show it is entitled to act (ICO guidance on requests made on
behalf of others), but it needs nothing about the member's dealings with anyone else (Art 5(1)(c) UK GDPR).
So each controller receives, for each member, a sealed PDF saying who the member is, who acts for them, the
rights, purposes and dates as they apply to that controller, the identifiers that controller needs with
how each was checked, and the SHA-256 of the full signed mandate text, which binds the two without showing
the rest. Its check page (`/verify/<token>/`) shows the same, and whether the mandate is in force.

Documents are issued once per mandate × controller, when they are first needed (outside any lock: rendering
is slow); a replacement mandate gets its own. The one thing that can change under a mandate is how the
member is known: when the identifiers a document shows are no longer the ones the letters disclose (the
member changed one, or an address was checked since), the document is issued again before it is next used,
so letter and document never disagree, and the earlier version's hash stays checkable on its page.
"""

from __future__ import annotations

from collections.abc import Iterable

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from communities.documents import authority_filename, authority_url
from communities.models import Authority, Mandate, Right
from core.pdf import qr_svg, render_pdf, seal_pdf, sha256_hex
from requests_engine.letters import disclosed_identifier_rows, letterhead
from requests_engine.models import Controller


def _as_shown(rows) -> list[dict[str, str]]:
    return [{"label": i.plain_label, "value": i.value, "checked": i.checked} for i in rows]


def _identifiers(mandate: Mandate, controller: Controller) -> list[dict[str, str]]:
    """The identifiers this controller may see (the letters' disclosure rule), with how each was checked."""
    return _as_shown(disclosed_identifier_rows(controller, [mandate.member_id]).get(mandate.member_id, []))


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
    """The mandate's document for this controller, up to date: the one already issued, issued again if its
    identifiers are stale, or a new one. A mandate that does not name the controller has none to give
    (RULES.md (e))."""
    current = _identifiers(mandate, controller)
    existing = Authority.objects.filter(mandate=mandate, controller=controller).exclude(pdf="").first()
    if existing:
        return existing if existing.identifiers == current else _reissue(existing, current)
    if not mandate.controllers.filter(pk=controller.pk).exists():
        raise ValueError(f"Mandate {mandate.reference} does not name {controller.name}.")
    authority = Authority(
        mandate=mandate,
        controller=controller,
        identifiers=current,
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


def _reissue(authority: Authority, identifiers: list[dict[str, str]]) -> Authority:
    """The same document (token, mandate, controller) with the identifiers as they are now; the earlier
    version's hash is kept so a PDF already sent still checks out as ours."""
    authority.identifiers = identifiers
    pdf = _render(authority)  # outside the lock: rendering is slow
    with transaction.atomic():
        locked = Authority.objects.select_for_update().get(pk=authority.pk)
        if locked.identifiers == identifiers:  # another worker did it first
            return locked
        old_file = str(locked.pdf.name)
        locked.earlier_versions = [
            *locked.earlier_versions,
            {"sha256": locked.pdf_sha256, "replaced_at": timezone.now().isoformat()},
        ]
        locked.identifiers = identifiers
        locked.pdf.save(authority_filename(locked), ContentFile(pdf), save=False)
        locked.pdf_sha256 = sha256_hex(pdf)
        locked.save(update_fields=["identifiers", "earlier_versions", "pdf", "pdf_sha256"])
        storage = locked.pdf.storage
        transaction.on_commit(lambda: storage.delete(old_file))
    return locked


def authorities_ensure(*, controller: Controller, mandate_ids: Iterable[int] | QuerySet) -> None:
    """Issue the documents still missing, or stale, for these mandates (call outside any lock: rendering is
    slow). One query for what the letters disclose now, one for the documents as issued."""
    mandates = list(
        Mandate.objects.filter(pk__in=mandate_ids).select_related("member__community", "member__user")
    )
    issued = {
        a.mandate_id: a
        for a in Authority.objects.filter(controller=controller, mandate__in=mandates).exclude(pdf="")
    }
    disclosed = disclosed_identifier_rows(controller, [m.member_id for m in mandates])
    for mandate in mandates:
        authority = issued.get(mandate.pk)
        if authority is None:
            authority_issue(mandate=mandate, controller=controller)
            continue
        current = _as_shown(disclosed.get(mandate.member_id, []))
        if authority.identifiers != current:
            _reissue(authority, current)
