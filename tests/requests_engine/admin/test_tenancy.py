"""Communities are tenants: two communities on one installation, each with its coordinator, caseworker and
viewer, and a staff user with no community. Every admin URL (lists, change, history and delete pages, every
custom view and transition) and every admin action is tried by each of another community's staff against
this community's records: none may show them or change them. Then what each role may do at home."""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client, RequestFactory
from django.utils import timezone

from communities import tenancy
from communities.models import Community, Identifier, Invitation, Invite, Role, StaffMembership
from core import crypto
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services
from requests_engine.admin import dashboard as admin_dashboard
from requests_engine.admin.complaints import STEPS
from requests_engine.campaigns import launch
from requests_engine.models import (
    Batch,
    Campaign,
    Complaint,
    DataRightsRequest,
    InboundMessage,
    ReceivedFile,
    RequestEvent,
)
from requests_engine.notices import coordinators as coordinator_notices
from tests.factories import make_campaign, make_mandate, make_member, make_purpose, make_request

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system()
CONTROLLER_ACTOR = Actor(Actor.CONTROLLER, "1")
TODAY = timezone.localdate


@dataclass
class Tenant:
    """One community's staff and a record of every kind the back office shows."""

    community: Community
    staff: dict[str, Any] = field(default_factory=dict)  # role → user
    objects: dict[str, Any] = field(default_factory=dict)  # model label → a record of this community
    markers: set[str] = field(default_factory=set)  # text that only this community's records carry

    def fingerprint(self) -> tuple:
        """Everything an attempt could change in this community, or send."""
        community = self.community
        return (
            RequestEvent.objects.filter(tenancy._in(RequestEvent, [community.pk])).count(),
            sorted(DataRightsRequest.objects.filter(member__community=community).values_list("pk", "state")),
            sorted(Campaign.objects.filter(community=community).values_list("pk", "state", "name")),
            sorted(
                Batch.objects.filter(campaign__community=community).values_list("pk", "state", "posted_on")
            ),
            sorted(Complaint.objects.filter(community=community).values_list("pk", "state", "grounds")),
            sorted(InboundMessage.objects.values_list("pk", "status", "request_id", "batch_id")),
            sorted(community.members.values_list("pk", "full_name", "left_at")),
            Identifier.objects.filter(member__community=community).count(),
            sorted(Invite.objects.filter(community=community).values_list("pk", "note", "max_uses")),
            sorted(community.purposes.values_list("pk", "name", "text")),
            Community.objects.filter(pk=community.pk).values_list("name", "contact_email", "purpose").get(),
            ReceivedFile.objects.filter(request__member__community=community).count(),
            sorted(StaffMembership.objects.values_list("user_id", "community_id", "role")),
            sorted(OutboundMessage.objects.values_list("pk", "status", "attempts")),
        )


def staff_user(email: str):
    return get_user_model().objects.create_user(email, email, "pw", is_staff=True)


def build_tenant(community: Community, controller, word: str) -> Tenant:
    """A community with its three staff roles and one record of each kind, named with `word`."""
    tenant = Tenant(community)
    for role in Role:
        user = staff_user(f"{role.value}@{word.lower()}.test")
        tenancy.staff_role_grant(user=user, community=community, role=role)
        tenant.staff[role.value] = user
    community.controllers.add(controller)
    purpose = make_purpose(community, f"Purpose of the {word} people.")
    member = make_member(community, f"{word} Member", email=f"member@{word.lower()}.test")
    mandate = make_mandate(member)
    identifier = Identifier.objects.create(
        member=member, kind=Identifier.Kind.ACCOUNT_ID, value=f"ACCOUNT-{word.upper()}"
    )
    invite = Invite.objects.create(
        community=community, note=f"Invite for {word}", expires_at=timezone.now() + dt.timedelta(days=3)
    )
    invitation = Invitation.objects.create(
        community=community,
        name=f"{word} Invitee",
        postal_address=f"1 {word} Street",
        channel=Invitation.Channel.POST,
        invite=Invite.objects.create(community=community, expires_at=timezone.now() + dt.timedelta(days=3)),
    )
    draft = make_campaign(
        community, name=f"{word} draft campaign", rights=["access"], purpose=purpose, controllers=[controller]
    )
    launched = make_campaign(
        community,
        name=f"{word} launched campaign",
        rights=["access"],
        purpose=purpose,
        controllers=[controller],
    )
    launch.campaign_launch(campaign_id=launched.pk, actor=SYSTEM, dispatch=False)
    launched.refresh_from_db()
    batch = Batch.objects.get(campaign=launched)
    queued = DataRightsRequest.objects.get(campaign=launched)
    draft_request = make_request(member, controller, reference=f"R-{word.upper()}-DRAFT")
    sent = make_request(member, controller, reference=f"R-{word.upper()}-SENT")
    services.request_approve(request_id=sent.pk, actor=SYSTEM)
    services.request_dispatch(request_id=sent.pk, received_on=TODAY() - dt.timedelta(days=40), actor=SYSTEM)
    refused = make_request(member, controller, reference=f"R-{word.upper()}-REFUSED")
    services.request_approve(request_id=refused.pk, actor=SYSTEM)
    services.request_dispatch(request_id=refused.pk, received_on=TODAY() - dt.timedelta(days=3), actor=SYSTEM)
    services.request_refuse(request_id=refused.pk, ground="other", reasons="No.", actor=CONTROLLER_ACTOR)
    received = ReceivedFile.objects.create(
        request=refused,
        original_name=f"{word.lower()}-data.csv",
        stored=crypto.save_encrypted(f"received/{word}.csv.enc", b"a,b\n"),
        size=4,
        content_type="text/csv",
        sha256="0" * 64,
    )
    complaint = Complaint.objects.create(
        reference=f"K-{word.upper()}",
        kind=Complaint.Kind.CONTROLLER,
        state=Complaint.State.DRAFT,
        community=community,
        controller=controller,
        grounds=f"Grounds of the {word} complaint.",
    )
    complaint.requests.add(refused)
    complaint.evidence_pack.save(f"{word}-complaint.pdf", ContentFile(b"%PDF-1.4 evidence"), save=True)
    inbound = InboundMessage.objects.create(
        mailbox="replies@host/INBOX",
        uid_validity=1,
        uid=community.pk,
        subject=f"Re: the {word} request",
        from_address="dpo@acme.test",
        raw=crypto.save_encrypted(f"inbound/{word}.eml.enc", f"Subject: Re: {word}\n\nHello.\n".encode()),
        raw_sha256="-",
        status=InboundMessage.Status.MATCHED,
        request=sent,
    )
    mail = OutboundMessage.objects.create(
        to=["dpo@acme.test"],
        from_email="community@host.test",
        subject=f"Mail about the {word} request",
        body_text="Hello.",
        message_id=f"<{word}@host.test>",
        subject_type="request",
        subject_id=str(sent.pk),
        status=OutboundMessage.Status.FAILED,
    )
    tenant.objects = {
        "communities.community": community,
        "communities.member": member,
        "communities.mandate": mandate,
        "communities.invite": invite,
        "communities.invitation": invitation,
        "requests_engine.campaign": draft,
        "requests_engine.campaign/launched": launched,
        "requests_engine.batch": batch,
        "requests_engine.datarightsrequest": sent,
        "requests_engine.datarightsrequest/draft": draft_request,
        "requests_engine.datarightsrequest/queued": queued,
        "requests_engine.datarightsrequest/refused": refused,
        "requests_engine.receivedfile": received,
        "requests_engine.complaint": complaint,
        "requests_engine.inboundmessage": inbound,
        "requests_engine.requestevent": RequestEvent.objects.filter(request=sent).first(),
        "core.outboundmessage": mail,
    }
    tenant.markers = {
        f"{word} Member",
        member.reference,
        mandate.reference,
        identifier.value,
        invite.note,
        purpose.name,
        draft.name,
        draft.reference,
        launched.name,
        launched.reference,
        batch.reference,
        queued.reference,
        draft_request.reference,
        sent.reference,
        refused.reference,
        received.original_name,
        complaint.reference,
        inbound.subject,
        f"{word} Guild",
        mail.subject,
    }
    return tenant


@pytest.fixture
def second_community_cast(community, controller):
    """The standing community ("Writers") and a second one ("Readers") on the same installation, each with
    its coordinator, caseworker, viewer and records; plus a staff user who belongs to no community."""
    Community.objects.filter(pk=community.pk).update(name="Alpha Guild")
    community.refresh_from_db()
    readers = Community.objects.create(
        slug="readers",
        name="Beta Guild",
        purpose="Reading.",
        contact_email="r@readers.test",
        rights=["access"],
    )
    home = build_tenant(community, controller, "Alpha")
    other = build_tenant(readers, controller, "Beta")
    return {"home": home, "other": other, "nobody": staff_user("nobody@staff.test")}


# -- every URL and action, tried across tenants ----------------------------------------------------------

OBJECT_PARAMS = {"object_id", "campaign_id", "batch_id", "complaint_id", "request_id"}
FORM_DATA = {
    # Enough for any step's form to be valid, so that a missing check would let it through.
    "months": "1",
    "reason": "Because.",
    "noticed_on": "2026-01-05",
    "kind": "identity",
    "question": "Who?",
    "asked_on": "2026-01-05",
    "received_on": "2026-01-05",
    "answer": "Here.",
    "note": "Note.",
    "answered_on": "2026-01-05",
    "ground": "other",
    "reasons": "No.",
    "outcome": "Done.",
    "case_reference": "IC-1",
    "posted_on": "2026-01-05",
    "confirm_by": "2027-01-31",
    "grounds": "Grounds.",
    "acknowledged_on": "2026-01-05",
    "submitted_on": "2026-01-05",
    "what_happened": "It happened.",
    "harm": "Harm.",
    "ask": "Ask.",
    "present": ["purposes"],
    "name": "Changed",
    "full_name": "Changed",
    "text": "Changed",
    "contact_email": "changed@x.test",
    "purpose": "Changed",
    "note_": "x",
    "max_uses": "9",
    "post": "yes",  # confirms a delete page
}


def _route_values(param: str, model_admin, obj) -> list[str]:
    if param in OBJECT_PARAMS:
        return [str(obj.pk)]
    if param == "which":
        return ["letter", "manifest"]
    if param == "step":
        return [*STEPS, "download", "ico-pack"]
    if param == "transition_name":
        return sorted(getattr(model_admin, "service_actions", {}) or ["none"])
    return ["x"]


def admin_urls(model_admin, obj) -> list[str]:
    """Every URL the model admin serves, filled in with `obj` (and every step, file or transition)."""
    opts = model_admin.model._meta
    base = f"/admin/{opts.app_label}/{opts.model_name}/"
    urls: list[str] = []
    for pattern in model_admin.get_urls():
        route = str(pattern.pattern)
        params = re.findall(r"<(?:\w+:)?(\w+)>", route)
        if not params or not (set(params) & OBJECT_PARAMS):
            continue
        filled = [route]
        for param in params:
            values = _route_values(param, model_admin, obj)
            filled = [re.sub(rf"<(?:\w+:)?{param}>", value, r, count=1) for r in filled for value in values]
        urls += [base + r for r in filled]
    return urls


EXPECTED_ATTEMPTS = 1536
AUTOCOMPLETE_USERS = (
    "/admin/autocomplete/?app_label=communities&model_name=staffmembership&field_name=user&term=alpha"
)


def _superuser_request():
    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    return request


def _leaked(response, markers: set[str]) -> str | None:
    if response.status_code in (301, 302, 403, 404, 405):
        return None
    if getattr(response, "streaming", False):
        return f"a file ({response.status_code})"
    body = response.content.decode(errors="replace")
    shown = sorted(m for m in markers if m in body)
    if response.status_code != 200:
        return f"status {response.status_code}"
    return f"shows {shown}" if shown else None


def test_no_admin_url_or_action_shows_or_changes_another_community_s_records(second_community_cast):
    home: Tenant = second_community_cast["home"]
    other: Tenant = second_community_cast["other"]
    intruders = [*other.staff.values(), second_community_cast["nobody"]]
    attempts, leaks = 0, []
    before = home.fingerprint()
    # The reference an intruder types into the inbox's "attach" box is echoed in the refusal on the next page:
    # they typed it, so it is not shown to them by us (a listed row would carry the member's name as well).
    typed = home.objects["requests_engine.datarightsrequest"].reference
    markers = home.markers - {typed}

    def attempt(client, method: str, url: str, data: dict | None = None, who: str = "") -> None:
        nonlocal attempts, before
        attempts += 1
        response = getattr(client, method)(url, data or {})
        problem = _leaked(response, markers)
        now = home.fingerprint()
        if now != before:
            problem = f"changed the community's records ({problem or response.status_code})"
            before = now
        if problem:
            leaks.append(f"{who} {method.upper()} {url}: {problem}")

    for intruder in intruders:
        client = Client()
        client.force_login(intruder)
        who = intruder.email
        attempt(client, "get", "/admin/", who=who)
        for model, model_admin in admin.site._registry.items():
            opts = model._meta
            changelist = f"/admin/{opts.app_label}/{opts.model_name}/"
            attempt(client, "get", changelist, who=who)
            attempt(client, "get", changelist + "?q=Alpha", who=who)
            attempt(client, "get", changelist + "add/", who=who)
            targets = [o for label, o in home.objects.items() if label.split("/")[0] == opts.label_lower]
            for target in targets:
                for url in admin_urls(model_admin, target):
                    attempt(client, "get", url, who=who)
                    attempt(client, "post", url, FORM_DATA, who=who)
                # Every action of the model, on this community's record.
                for action in model_admin.get_actions(_superuser_request()):
                    data = {
                        "action": action,
                        "_selected_action": [target.pk],
                        "index": "0",
                        "post": "yes",
                        "reference": typed,
                    }
                    attempt(client, "post", changelist, data, who=who)
        # The one autocomplete over people: choosing whom to give a role.
        attempt(client, "get", AUTOCOMPLETE_USERS, who=who)
    assert leaks == [], "\n".join(leaks)
    # Four intruders × (the index, 19 admins' lists, searches and add pages, every URL and action on each of
    # 16 records, one autocomplete): if a new admin, URL or action appears, this number says so.
    assert (attempts, len(leaks)) == (EXPECTED_ATTEMPTS, 0), f"{attempts} attempts, {len(leaks)} leaks"


# -- what each role may do in its own community ----------------------------------------------------------


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def press(client: Client, url: str, button: str, **data):
    """Submit the change form as a browser does: its hidden inputs plus a transition button."""
    page = client.get(url).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    return client.post(url, {**fields, **data, "_fsm_transition_to": button})


def change_url(obj) -> str:
    opts = obj._meta
    return f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/change/"


def campaign_form(campaign) -> dict:
    return {
        "community": campaign.community_id,
        "name": campaign.name,
        "rights": ["access"],
        "controllers": [c.pk for c in campaign.controllers.all()],
        "purpose": campaign.purpose_id,
    }


def test_a_caseworker_records_answers_but_launches_approves_and_escalates_nothing(second_community_cast):
    home: Tenant = second_community_cast["home"]
    client = logged_in(home.staff["caseworker"])
    draft, sent = home.objects["requests_engine.campaign"], home.objects["requests_engine.datarightsrequest"]
    draft_request = home.objects["requests_engine.datarightsrequest/draft"]
    complaint = home.objects["requests_engine.complaint"]

    page = client.get(change_url(draft)).content.decode()
    assert 'value="launch"' not in page and "Ask members missing an identifier" not in page
    press(client, change_url(draft), "launch", **campaign_form(draft))
    assert Campaign.objects.get(pk=draft.pk).state == "draft"
    assert 'value="approve"' not in client.get(change_url(draft_request)).content.decode()
    press(client, change_url(draft_request), "approve")
    assert DataRightsRequest.objects.get(pk=draft_request.pk).state == "draft"
    for step in ("send", "redraft", "ico-pack"):
        url = f"/admin/requests_engine/complaint/{complaint.pk}/step/{step}/"
        assert client.get(url).status_code == 404
        assert client.post(url, FORM_DATA).status_code == 404
    assert Complaint.objects.get(pk=complaint.pk).state == "draft"
    asked = f"/admin/requests_engine/campaign/{draft.pk}/ask-identifiers/"
    assert client.post(asked).status_code == 404
    drafted = Complaint.objects.count()
    client.post(
        "/admin/requests_engine/datarightsrequest/",
        {"action": "draft_complaints_for_requests_action", "_selected_action": [sent.pk], "index": "0"},
    )
    assert Complaint.objects.count() == drafted

    # What a caseworker is for: recording what the controller answered.
    assert 'value="acknowledge"' in client.get(change_url(sent)).content.decode()
    assert press(client, change_url(sent), "acknowledge").status_code == 302
    assert DataRightsRequest.objects.get(pk=sent.pk).state == "acknowledged"


def test_a_viewer_reads_the_whole_community_and_changes_nothing(second_community_cast):
    home: Tenant = second_community_cast["home"]
    client = logged_in(home.staff["viewer"])
    before = home.fingerprint()
    listing = client.get("/admin/requests_engine/datarightsrequest/").content.decode()
    assert {"R-ALPHA-SENT", "R-ALPHA-REFUSED", "Alpha Member"} <= {m for m in home.markers if m in listing}
    sent, member = home.objects["requests_engine.datarightsrequest"], home.objects["communities.member"]
    page = client.get(change_url(sent)).content.decode()
    assert "R-ALPHA-SENT" in page and "_fsm_transition_to" not in page
    assert press(client, change_url(sent), "acknowledge").status_code == 403
    extend = f"/admin/requests_engine/datarightsrequest/{sent.pk}/transition/extend/"
    client.post(extend, FORM_DATA)
    assert client.post(change_url(member), {"full_name": "Renamed"}).status_code == 403
    complaint = home.objects["requests_engine.complaint"]
    download = client.get(f"/admin/requests_engine/complaint/{complaint.pk}/step/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content).startswith(b"%PDF")
    assert home.fingerprint() == before


def test_a_coordinator_launches_and_approves_in_their_own_community(second_community_cast):
    home: Tenant = second_community_cast["home"]
    client = logged_in(home.staff["coordinator"])
    draft, draft_request = (
        home.objects["requests_engine.campaign"],
        home.objects["requests_engine.datarightsrequest/draft"],
    )
    assert press(client, change_url(draft_request), "approve").status_code == 302
    assert DataRightsRequest.objects.get(pk=draft_request.pk).state == "queued"
    page = client.get(change_url(draft)).content.decode()
    assert 'value="launch"' in page and "Ask members missing an identifier" in page
    assert press(client, change_url(draft), "launch", **campaign_form(draft)).status_code == 302
    assert Campaign.objects.get(pk=draft.pk).state == "launched"
    # The community a new campaign goes in: only theirs is offered.
    add = client.get("/admin/requests_engine/campaign/add/").content.decode()
    assert "Alpha Guild" in add and "Beta Guild" not in add


def test_a_superuser_sees_every_community(second_community_cast, coordinator):
    listing = logged_in(coordinator).get("/admin/requests_engine/datarightsrequest/").content.decode()
    assert "R-ALPHA-SENT" in listing and "R-BETA-SENT" in listing
    communities = logged_in(coordinator).get("/admin/communities/community/").content.decode()
    assert "Alpha Guild" in communities and "Beta Guild" in communities


def test_someone_with_roles_in_two_communities_does_in_each_what_that_role_allows(second_community_cast):
    home: Tenant = second_community_cast["home"]
    other: Tenant = second_community_cast["other"]
    both = home.staff["viewer"]
    tenancy.staff_role_grant(user=both, community=other.community, role=Role.COORDINATOR)
    assert {g.name for g in both.groups.all()} == {"Viewer", "Coordinator"}
    theirs, ours = (
        other.objects["requests_engine.datarightsrequest"],
        home.objects["requests_engine.datarightsrequest"],
    )
    both = get_user_model().objects.get(pk=both.pk)
    assert both.has_perm("requests_engine.change_datarightsrequest", theirs)
    assert not both.has_perm("requests_engine.change_datarightsrequest", ours)
    assert both.has_perm("requests_engine.view_datarightsrequest", ours)
    client = logged_in(both)
    assert press(client, change_url(ours), "acknowledge").status_code == 403
    assert press(client, change_url(theirs), "acknowledge").status_code == 302
    assert DataRightsRequest.objects.get(pk=theirs.pk).state == "acknowledged"
    tenancy.staff_role_revoke(user=both, community=other.community)
    assert {g.name for g in both.groups.all()} == {"Viewer"}


def test_the_dashboard_counts_only_the_user_s_communities(second_community_cast, coordinator):
    home: Tenant = second_community_cast["home"]
    other: Tenant = second_community_cast["other"]

    def counts(user) -> dict[str, int]:
        board = admin_dashboard.dashboard(user=user)
        return {f.label: f.count for f in board.requests + board.refusals + board.complaints if f.count}

    ours = {"requests overdue": 1, "refused: Other": 1, "complaints waiting for approval": 1}
    assert counts(home.staff["viewer"]) == ours
    assert counts(other.staff["coordinator"]) == ours
    assert counts(coordinator) == {label: 2 for label in ours}
    assert counts(second_community_cast["nobody"]) == {}
    index = logged_in(home.staff["caseworker"]).get("/admin/").content.decode()
    assert "requests overdue" in index


def test_the_daily_summary_tells_each_community_s_coordinators_and_caseworkers_only_its_own_day(
    second_community_cast, django_capture_on_commit_callbacks
):
    home: Tenant = second_community_cast["home"]
    other: Tenant = second_community_cast["other"]
    for tenant, word in ((home, "alpha"), (other, "beta")):
        assert coordinator_notices.coordinator_addresses(tenant.community) == (
            tenant.community.contact_email,
            [f"caseworker@{word}.test", f"coordinator@{word}.test"],
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert coordinator_notices.coordinator_summaries_send(day=TODAY()) == 2
    summaries = {m.to[0]: m for m in OutboundMessage.objects.filter(purpose="community.daily_summary")}
    assert "R-ALPHA-REFUSED" in summaries[home.community.contact_email].body_text
    assert "R-BETA-REFUSED" not in summaries[home.community.contact_email].body_text
    assert "R-BETA-REFUSED" in summaries["r@readers.test"].body_text
    assert "coordinator@alpha.test" not in summaries["r@readers.test"].cc


def test_an_unmatched_reply_is_the_only_community_s_or_else_the_superusers(
    community, controller, coordinator
):
    home = build_tenant(community, controller, "Alpha")
    stray = InboundMessage.objects.create(
        mailbox="replies@host/INBOX",
        uid_validity=1,
        uid=999,
        subject="Who is this for?",
        raw=crypto.save_encrypted("inbound/stray.eml.enc", b"Subject: Who is this for?\n\nHello.\n"),
        raw_sha256="-",
    )
    caseworker = get_user_model().objects.get(pk=home.staff["caseworker"].pk)
    inbox = "/admin/requests_engine/inboundmessage/"
    assert "Who is this for?" in logged_in(caseworker).get(inbox).content.decode()
    # A caseworker handles the inbox: attaches a stray reply to one of the community's requests.
    attach = {"action": "attach_by_reference", "_selected_action": [stray.pk], "index": "0"}
    logged_in(caseworker).post(inbox, {**attach, "reference": "R-ALPHA-SENT"})
    stray.refresh_from_db()
    assert (stray.status, stray.request_id) == (
        "handled",
        home.objects["requests_engine.datarightsrequest"].pk,
    )
    InboundMessage.objects.filter(pk=stray.pk).update(status="unmatched", request=None, batch=None)
    Community.objects.create(slug="readers", name="Beta Guild", purpose="Reading.", contact_email="r@r.test")
    assert "Who is this for?" not in logged_in(caseworker).get(inbox).content.decode()
    assert "Who is this for?" in logged_in(coordinator).get(inbox).content.decode()


def test_a_reply_uploaded_by_one_community_s_staff_is_never_recorded_on_another_s_request(
    second_community_cast, coordinator
):
    home: Tenant = second_community_cast["home"]
    theirs = DataRightsRequest.objects.get(reference="R-BETA-SENT")
    events = theirs.events.count()
    eml = io.BytesIO(
        b"From: dpo@acme.test\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
        b"Subject: Re: your request R-BETA-SENT\r\n\r\nHere is the data.\r\n"
    )
    eml.name = "reply.eml"
    url = "/admin/requests_engine/inboundmessage/upload/"
    response = logged_in(home.staff["caseworker"]).post(url, {"eml": eml}, follow=True)
    assert "matched no batch or request" in response.content.decode()
    stored = InboundMessage.objects.get(subject="Re: your request R-BETA-SENT")
    assert (stored.status, stored.request_id, theirs.events.count()) == ("unmatched", None, events)
    eml.seek(0)
    InboundMessage.objects.all().delete()
    logged_in(coordinator).post(url, {"eml": eml})  # a superuser's upload is matched as the poller would
    assert InboundMessage.objects.get().request_id == theirs.pk and theirs.events.count() == events + 1


def test_existing_staff_become_coordinators_of_every_community_so_nobody_loses_access(community, coordinator):
    import importlib

    from django.apps import apps

    readers = Community.objects.create(slug="readers", name="Readers", purpose="R.", contact_email="r@r.test")
    clerk = staff_user("clerk@community.test")
    get_user_model().objects.create_user("member@community.test", "member@community.test", "pw")
    migration = importlib.import_module("communities.migrations.0014_existing_staff_become_coordinators")
    migration.existing_staff_become_coordinators(apps, None)
    assert sorted(StaffMembership.objects.values_list("user__email", "community__slug", "role")) == [
        ("clerk@community.test", "readers", "coordinator"),
        ("clerk@community.test", "writers", "coordinator"),
    ]
    clerk = get_user_model().objects.get(pk=clerk.pk)
    assert clerk.has_perm("communities.launch_campaigns")
    assert clerk.has_perm("requests_engine.change_campaign", make_campaign(readers, name="Theirs"))


def test_only_superusers_give_roles(second_community_cast, coordinator):
    home: Tenant = second_community_cast["home"]
    url = "/admin/communities/staffmembership/"
    assert logged_in(home.staff["coordinator"]).get(url).status_code == 403
    client = logged_in(coordinator)
    newcomer = staff_user("new@alpha.test")
    response = client.post(
        url + "add/", {"user": newcomer.pk, "community": home.community.pk, "role": Role.CASEWORKER}
    )
    assert response.status_code == 302
    assert tenancy.role_in(newcomer, home.community) == Role.CASEWORKER
    assert {g.name for g in newcomer.groups.all()} == {"Caseworker"}


def test_the_demo_gives_its_coordinator_a_role_and_prints_a_caseworker_and_a_viewer_too():
    from requests_engine import demo

    demo.seed_demo()
    community = Community.objects.get(slug="writers")
    users = get_user_model().objects
    for email, role in (
        (demo.COORDINATOR_EMAIL, Role.COORDINATOR),
        (demo.CASEWORKER_EMAIL, Role.CASEWORKER),
        (demo.VIEWER_EMAIL, Role.VIEWER),
    ):
        assert tenancy.role_in(users.get(username=email), community) == role
    assert users.get(username=demo.VIEWER_EMAIL).check_password(demo.STAFF_PASSWORD)


def test_an_operator_gives_and_takes_away_a_role_from_the_command_line(community):
    from django.core.management import CommandError, call_command

    clerk = get_user_model().objects.create_user("clerk@community.test", "clerk@community.test", "pw")
    call_command("staff_role", "clerk@community.test", "writers", "caseworker")
    clerk.refresh_from_db()
    assert clerk.is_staff and tenancy.role_in(clerk, community) == Role.CASEWORKER
    call_command("staff_role", "clerk@community.test", "writers", "--remove")
    assert not StaffMembership.objects.filter(user=clerk).exists() and not clerk.groups.exists()
    with pytest.raises(CommandError, match="No community"):
        call_command("staff_role", "clerk@community.test", "nowhere", "viewer")


def test_a_caseworker_corrects_a_member_s_details_in_their_own_community(second_community_cast):
    home: Tenant = second_community_cast["home"]
    member = home.objects["communities.member"]
    client = logged_in(home.staff["caseworker"])
    page = client.get(change_url(member)).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    response = client.post(
        change_url(member),
        {
            **fields,
            "community": member.community_id,
            "full_name": "Alpha Member-Jones",
            "joined_at_0": "2026-01-05",
            "joined_at_1": "10:00:00",
            "notifications": "each",
            "identifiers-0-kind": "account_id",
            "identifiers-0-value": "ACCOUNT-ALPHA",
        },
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.full_name == "Alpha Member-Jones"
    assert 'name="community"' in page and "Beta Guild" not in page


def test_the_outbox_lists_each_community_s_messages_to_its_own_staff(second_community_cast, coordinator):
    home: Tenant = second_community_cast["home"]
    ours, theirs = "Mail about the Alpha request", "Mail about the Beta request"
    outbox = "/admin/core/outboundmessage/"
    listing = logged_in(home.staff["viewer"]).get(outbox).content.decode()
    assert ours in listing and theirs not in listing
    everything = logged_in(coordinator).get(outbox).content.decode()
    assert ours in everything and theirs in everything
    mail = home.objects["core.outboundmessage"]
    data = {"action": "send_again", "_selected_action": [mail.pk], "index": "0"}
    logged_in(home.staff["caseworker"]).post(outbox, data)
    assert OutboundMessage.objects.get(pk=mail.pk).status == "failed"
    logged_in(home.staff["coordinator"]).post(outbox, data)
    assert OutboundMessage.objects.get(pk=mail.pk).status != "failed"
