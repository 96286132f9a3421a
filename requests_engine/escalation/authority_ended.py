"""When a member's mandate ends, the complaints that cover their requests are no longer wholly the
community's to pursue: the coordinators are told which, and for a case open at the ICO they get a drafted
notice telling the ICO that the community no longer represents that member (Art 80(1) UK GDPR; DPA 2018
s.187: representation rests on the member's mandate)."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from core import outbox
from requests_engine.models import Complaint, DataRightsRequest


def complaints_flag(*, request_ids: list[int], reason: str) -> int:
    """Email the coordinators about each open complaint covering these requests; returns how many."""
    requests = list(
        DataRightsRequest.objects.filter(pk__in=request_ids).select_related("member__community", "controller")
    )
    if not requests:
        return 0
    complaints = list(
        Complaint.objects.filter(requests__in=requests)
        .exclude(state=Complaint.State.CLOSED, ico_case_reference="")
        .select_related("controller")
        .distinct()
        .order_by("reference")
    )
    if not complaints:
        return 0
    member = requests[0].member
    community = member.community
    site = settings.SITE_URL.rstrip("/")
    items = [
        {
            "complaint": complaint,
            "requests": [r for r in requests if r.controller_id == complaint.controller_id],
            "at_ico": bool(complaint.ico_case_reference or complaint.evidence_pack),
            "admin": site + reverse("admin:requests_engine_complaint_change", args=[complaint.pk]),
        }
        for complaint in complaints
    ]
    outbox.queue_email(
        to=[community.contact_email],
        subject=f"{member.full_name} no longer authorises us: {len(complaints)} complaint(s) to review",
        body_text=render_to_string(
            "requests_engine/complaints/authority_ended.txt",
            {"member": member, "community": community, "items": items, "reason": reason},
        ),
        subject_type="member",
        subject_id=member.reference,
        purpose="complaint.authority_ended",
    )
    return len(complaints)
