"""The back office is accessible: a coordinator and a caseworker walk every admin page they use (the
dashboard, each list, a change page of each model, the add pages, a campaign's preview, a batch's posting
page, the request and complaint step forms, the inbox upload) on a 1280-px desktop and a 390-px phone, and
axe-core finds nothing serious or critical on any of them. Every page's findings are collected and reported
together, so one run shows all there is to fix."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from playwright.sync_api import BrowserContext, ConsoleMessage, Page

from communities import tenancy
from communities.invitations.imports import invitations_import
from communities.models import Identifier, Invitation, Invite, Role
from core import crypto
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services
from requests_engine.campaigns import launch
from requests_engine.models import (
    Batch,
    Complaint,
    Controller,
    ControllerContact,
    InboundMessage,
    RequestEvent,
)
from tests.browser.conftest import AXE_JS, BLOCKING_IMPACTS, screenshot
from tests.factories import make_campaign, make_mandate, make_member, make_purpose, make_request

SYSTEM = Actor.system("test")
CONTROLLER_ACTOR = Actor(Actor.CONTROLLER, "1")
RE = "/admin/requests_engine"
CO = "/admin/communities"


@pytest.fixture
def back_office(transactional_db, community, controller):
    """One community as its staff see it on an ordinary day: a coordinator and a caseworker, members with
    identifiers, an invite, a draft campaign (with its preview) and a launched one by letter, requests sent,
    overdue and refused, a draft complaint, a reply in the inbox and a message in the outbox."""
    staff = {}
    for role in (Role.COORDINATOR, Role.CASEWORKER):
        user = get_user_model().objects.create_user(
            f"{role.value}@community.test", f"{role.value}@community.test", "pw", is_staff=True
        )
        tenancy.staff_role_grant(user=user, community=community, role=role)
        staff[role.value] = user
    postbox = Controller.objects.create(
        slug="postbox", name="Postbox Ltd", transport="letter", postal_address="1 High Street, Leeds LS1 1AA"
    )
    contact = ControllerContact.objects.create(controller=controller, name="Acme DPO", email="dpo@acme.test")
    community.controllers.add(controller, postbox)
    purpose = make_purpose(community, "Find out whether our writing was used to train AI models.")
    ada = make_member(community, "Ada Lovelace")
    make_mandate(ada)
    Identifier.objects.create(member=ada, kind=Identifier.Kind.EMAIL, value="ada@mail.test")
    mary = make_member(community, "Mary Shelley")
    mandate = make_mandate(mary)
    invite = Invite.objects.create(
        community=community, note="For the reading group", expires_at=timezone.now() + dt.timedelta(days=7)
    )
    invitations_import(
        community=community,
        text='name,email,postal address\nElizabeth Gaskell,liz@mail.test,\nGeorge Eliot,,"1 Griff Lane, Nuneaton"\n',
        dry_run=False,
    )
    invitation = Invitation.objects.get(name="George Eliot")
    draft = make_campaign(
        community,
        name="Training data 2026",
        rights=["access"],
        purpose=purpose,
        controllers=[controller, postbox],
    )
    launched = make_campaign(
        community, name="Letters 2025", rights=["access"], purpose=purpose, controllers=[postbox]
    )
    launch.campaign_launch(campaign_id=launched.pk, actor=SYSTEM, dispatch=False)
    batch = Batch.objects.filter(campaign=launched).first()
    sent = make_request(ada, controller, reference="R-SENT")
    services.request_approve(request_id=sent.pk, actor=SYSTEM)
    services.request_dispatch(
        request_id=sent.pk, received_on=timezone.localdate() - dt.timedelta(days=40), actor=SYSTEM
    )
    refused = make_request(mary, controller, reference="R-REFUSED")
    services.request_approve(request_id=refused.pk, actor=SYSTEM)
    services.request_dispatch(
        request_id=refused.pk, received_on=timezone.localdate() - dt.timedelta(days=3), actor=SYSTEM
    )
    services.request_refuse(
        request_id=refused.pk, ground="other", reasons="We hold nothing.", actor=CONTROLLER_ACTOR
    )
    complaint = Complaint.objects.create(
        reference="K-ACME",
        kind=Complaint.Kind.CONTROLLER,
        state=Complaint.State.DRAFT,
        community=community,
        controller=controller,
        grounds="Acme refused without a reason the law allows.",
    )
    complaint.requests.add(refused)
    reply = InboundMessage.objects.create(
        mailbox="replies@host/INBOX",
        uid_validity=1,
        uid=1,
        subject="Re: your members' requests",
        from_address="dpo@acme.test",
        raw=crypto.save_encrypted("inbound/reply.eml.enc", b"Subject: Re: requests\n\nWe will answer.\n"),
        raw_sha256="-",
        status=InboundMessage.Status.MATCHED,
        request=sent,
    )
    mail = OutboundMessage.objects.create(
        to=["privacy@acme.test"],
        from_email="community@host.test",
        subject="Your members' requests",
        body_text="Hello.",
        message_id="<r-sent@host.test>",
        subject_type="request",
        subject_id=str(sent.pk),
        status=OutboundMessage.Status.FAILED,
    )
    event = RequestEvent.objects.filter(request=sent).first()
    assert batch is not None and event is not None
    return {
        "staff": staff,
        # Pages kept as PNGs for a person to look at: the fixed widgets, labels and scrolling inline.
        "screenshots": {
            f"{CO}/member/{ada.pk}/change/": "member",
            f"{RE}/campaign/{draft.pk}/change/": "campaign",
            f"{RE}/controller/{controller.pk}/change/": "controller",
        },
        "pages": pages_used(
            community=community.pk,
            controller=controller.pk,
            contact=contact.pk,
            member=ada.pk,
            mandate=mandate.pk,
            invite=invite.pk,
            invitation=invitation.pk,
            draft=draft.pk,
            launched=launched.pk,
            batch=batch.pk,
            sent=sent.pk,
            refused=refused.pk,
            complaint=complaint.pk,
            reply=reply.pk,
            mail=mail.pk,
            event=event.pk,
        ),
    }


def pages_used(**pk: int) -> dict[str, list[str]]:
    """role → the admin pages that role works on."""
    caseworker = [
        "/admin/",
        f"{RE}/",
        f"{CO}/",
        f"{RE}/datarightsrequest/",
        f"{RE}/datarightsrequest/?due=overdue",
        f"{RE}/datarightsrequest/{pk['sent']}/change/",
        f"{RE}/datarightsrequest/{pk['refused']}/change/",
        f"{RE}/datarightsrequest/{pk['sent']}/completeness/",
        f"{RE}/datarightsrequest/{pk['sent']}/transition/extend/",
        f"{RE}/datarightsrequest/{pk['sent']}/transition/request_information/",
        f"{RE}/datarightsrequest/{pk['sent']}/transition/fulfil/",
        f"{RE}/datarightsrequest/{pk['sent']}/transition/refuse/",
        f"{RE}/campaign/",
        f"{RE}/campaign/{pk['draft']}/change/",
        f"{RE}/campaign/{pk['launched']}/change/",
        f"{RE}/batch/",
        f"{RE}/batch/{pk['batch']}/change/",
        f"{RE}/complaint/",
        f"{RE}/complaint/{pk['complaint']}/change/",
        f"{RE}/inboundmessage/",
        f"{RE}/inboundmessage/{pk['reply']}/change/",
        f"{RE}/inboundmessage/upload/",
        f"{RE}/receivedfile/",
        f"{RE}/requestevent/",
        f"{RE}/requestevent/{pk['event']}/change/",
        f"{RE}/controller/",
        f"{RE}/controller/{pk['controller']}/change/",
        f"{RE}/controllercontact/",
        f"{RE}/controllercontact/{pk['contact']}/change/",
        f"{CO}/community/",
        f"{CO}/community/{pk['community']}/change/",
        f"{CO}/member/",
        f"{CO}/member/{pk['member']}/change/",
        f"{CO}/mandate/",
        f"{CO}/mandate/{pk['mandate']}/change/",
        f"{CO}/invite/",
        f"{CO}/invite/{pk['invite']}/change/",
        "/admin/core/outboundmessage/",
        f"/admin/core/outboundmessage/{pk['mail']}/change/",
    ]
    coordinator = [
        *caseworker,
        f"{RE}/campaign/add/",
        f"{RE}/batch/{pk['batch']}/posted/",
        f"{RE}/complaint/{pk['complaint']}/step/send/",
        f"{RE}/datarightsrequest/{pk['refused']}/transition/escalate_to_ico/",
        f"{RE}/datarightsrequest/{pk['sent']}/transition/close/",
        f"{RE}/controller/add/",
        f"{RE}/controllercontact/add/",
        f"{CO}/invite/add/",
        f"{CO}/invitation/",
        f"{CO}/invitation/{pk['invitation']}/change/",
        f"{CO}/invitation/import/",
    ]
    return {Role.CASEWORKER.value: caseworker, Role.COORDINATOR.value: coordinator}


def sign_in(context: BrowserContext, user, base_url: str) -> None:
    client = Client()
    client.force_login(user)
    context.clear_cookies()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}])


def axe_findings(page: Page) -> list[dict]:
    """axe-core's serious and critical findings on the loaded page (evaluated as conftest.axe_check does)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    violations = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ["violations"]});
            return results.violations.map(v => ({
                id: v.id, impact: v.impact, targets: v.nodes.map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in violations if v["impact"] in BLOCKING_IMPACTS]


def watch_for_errors(page: Page, size: str, errors: list[str]) -> None:
    """Script errors and Content-Security-Policy refusals on the page: the fixes in static/js/admin.js
    must run. (axe's own <style>, added to read an @import, is refused too; that refusal is axe's.)"""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            if not message.text.startswith("Applying inline style"):
                errors.append(f"{size} {page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"{size} {page.url}: {error}"))


# One test, so the records are built once and each size keeps one browser context; the roles take turns
# in it by their session cookie.
def test_axe_finds_nothing_serious_on_any_back_office_page_at_either_size(
    live_server, desktop_context, mobile_context, back_office
):
    findings: list[str] = []
    not_shown: list[str] = []
    errors: list[str] = []
    for size, context in (("1280px", desktop_context), ("390px", mobile_context)):
        page = context.new_page()
        watch_for_errors(page, size, errors)
        for role, user in back_office["staff"].items():
            sign_in(context, user, live_server.url)
            for path in back_office["pages"][role]:
                response = page.goto(f"{live_server.url}{path}")
                if response is None or response.status != 200 or "/accounts/" in page.url:
                    not_shown.append(f"{size} {role} {path}: {response and response.status} {page.url}")
                    continue
                if role == Role.COORDINATOR.value and path in back_office["screenshots"]:
                    screenshot(page, f"admin-{back_office['screenshots'][path]}-{size}")
                for violation in axe_findings(page):
                    findings.append(
                        f"{size} {role} {path}: {violation['impact']} {violation['id']} "
                        f"({len(violation['targets'])}: {', '.join(violation['targets'][:3])})"
                    )
        page.close()
    assert not not_shown, "pages the walk could not open:\n" + "\n".join(not_shown)
    assert not errors, "errors on the pages:\n" + "\n".join(errors)
    assert not findings, f"axe-core found {len(findings)} serious problems:\n" + "\n".join(findings)
