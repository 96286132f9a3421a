"""Documents and messages about mandates: the sealed PDF, the copy emailed to the member, the notice a
controller gets when a member withdraws. Everything sent goes through the outbox in core."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from core import outbox
from core.pdf import qr_svg, render_pdf, seal_pdf, sha256_hex

from .models import Authority, Mandate


def verification_url(mandate: Mandate) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("mandate-verify", args=[mandate.verification_token])


def authority_url(authority: Authority) -> str:
    """The check page of one controller's authority document (requests_engine/authorities.py issues it)."""
    return settings.SITE_URL.rstrip("/") + reverse("mandate-verify", args=[authority.token])


def authority_filename(authority: Authority) -> str:
    return f"authority-{authority.mandate.reference}.pdf"


def authority_pdf(authority: Authority) -> bytes:
    with authority.pdf.open("rb") as stored:
        return stored.read()


def authorities_for(*, controller, mandate_ids: Iterable[int]) -> dict[int, Authority]:
    """Issued documents for this controller, by mandate id."""
    rows = Authority.objects.filter(controller=controller, mandate_id__in=list(mandate_ids)).exclude(pdf="")
    return {a.mandate_id: a for a in rows.select_related("mandate")}


def mandate_pdf_bytes(mandate: Mandate) -> bytes:
    url = verification_url(mandate)
    html = render_to_string(
        "communities/mandate/pdf.html",
        {
            "mandate": mandate,
            "member": mandate.member,
            "community": mandate.member.community,
            "verify_url": url,
            "qr": qr_svg(url),
            "paragraphs": mandate.text.split("\n\n"),
        },
    )
    return seal_pdf(render_pdf(html), reason=f"Mandate {mandate.reference} signed by the member")


def mandate_pdf_issue(*, mandate_id: int) -> str:
    """Render and seal the PDF of the exact signed text, store it with its SHA-256, email the member a copy."""
    mandate = Mandate.objects.select_related("member__community", "member__user").get(pk=mandate_id)
    if mandate.pdf:
        return "already issued"
    pdf = mandate_pdf_bytes(mandate)
    digest = sha256_hex(pdf)
    with transaction.atomic():
        locked = Mandate.objects.select_for_update().get(pk=mandate_id)
        if locked.pdf:  # another worker finished first
            return "already issued"
        locked.pdf.save(f"{locked.reference}.pdf", ContentFile(pdf), save=False)
        Mandate.objects.filter(pk=mandate_id).update(pdf=locked.pdf.name, pdf_sha256=digest)
        member = mandate.member
        outbox.queue_email(
            to=[member.user.email],
            subject=f"Your signed mandate {mandate.reference} for {member.community.name}",
            body_text=render_to_string(
                "communities/email/mandate_signed.txt",
                {
                    "mandate": mandate,
                    "member": member,
                    "community": member.community,
                    "pdf_sha256": digest,
                    "verify_url": verification_url(mandate),
                    "site_url": settings.SITE_URL.rstrip("/"),
                },
            ),
            attachments=[(f"mandate-{mandate.reference}.pdf", pdf, "application/pdf")],
            subject_type="mandate",
            subject_id=str(mandate.pk),
            purpose="mandate.signed_copy",
        )
    return digest
