"""Portability forwarding (Art 20(2)): a returned file sent on to another controller, through the outbox to a
real SMTP server, with every refusal explained and nobody else's file reachable."""

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from communities import documents
from communities.models import Authority, Identifier, Right
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine import services
from requests_engine.events import describe
from requests_engine.exceptions import ForwardingError
from requests_engine.models import Controller, PortabilityForward, ReceivedFile, RequestEvent
from requests_engine.responses import answers, forwarding
from requests_engine.responses import files as returned_files
from requests_engine.responses.files import Upload
from tests.factories import make_covered_request, make_mandate, make_member, make_request

pytestmark = pytest.mark.django_db
CONTROLLER = Actor(Actor.CONTROLLER, "1")
EXPORT = b'{"listening_history": [{"track": "Blue Monday", "played_at": "2026-01-02T10:00:00Z"}]}'


@pytest.fixture
def globex(db):
    return Controller.objects.create(slug="globex", name="Globex plc", email="dpo@globex.test")


@pytest.fixture
def porter(community, globex, django_capture_on_commit_callbacks):
    """A member whose mandate covers portability (its PDF sealed), who told us how Globex knows them."""
    member = make_member(community, "Pat Porter")
    community.controllers.add(globex)  # the mandate's "all organisations" names Globex at signing
    mandate = make_mandate(member, rights=(Right.ACCESS, Right.PORTABILITY))
    with django_capture_on_commit_callbacks(execute=True):
        documents.mandate_pdf_issue(mandate_id=mandate.pk)
    Identifier.objects.create(
        member=member, controller=globex, kind="account_id", label="Customer number", value="GX-0042"
    )
    return member


def answered(member, controller, *, right=Right.PORTABILITY, reference="R-PORT"):
    request = make_covered_request(member, controller, right=right, reference=reference)
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=dt.date.today(), actor=Actor.system())
    answers.request_answer(
        action="fulfil", request_id=request.pk, actor=CONTROLLER, uploads=[Upload("history.json", EXPORT)]
    )
    return request


@pytest.fixture
def portability(porter, controller):
    return answered(porter, controller)


def to(mailbox, address):
    return [m for m in mailbox.messages() if address in m["To"]]


def forward(request, target, member=None):
    return forwarding.received_file_forward(
        file=request.files.get(),
        to_controller=target,
        member=member or request.member,
        actor=Actor(Actor.MEMBER, str(request.member_id)),
    )


def refused(request, target, match, member=None):
    """The forward is refused with a clear message, and nothing is queued or recorded."""
    events = RequestEvent.objects.filter(request=request).count()
    queued = OutboundMessage.objects.filter(purpose=forwarding.PURPOSE).count()
    with pytest.raises(ForwardingError, match=match):
        forward(request, target, member=member)
    assert RequestEvent.objects.filter(request=request).count() == events
    assert OutboundMessage.objects.filter(purpose=forwarding.PURPOSE).count() == queued


def test_the_member_has_the_file_sent_to_another_controller_byte_for_byte(
    client, portability, globex, mailbox, django_capture_on_commit_callbacks
):
    client.force_login(portability.member.user)
    detail = client.get(f"/me/requests/{portability.reference}/").content.decode()
    assert f'href="/me/requests/{portability.reference}/forward/"' in detail
    page = client.get(f"/me/requests/{portability.reference}/forward/").content.decode()
    assert "Globex plc" in page and "Acme Ltd" not in page.split("Which organisation")[1]  # not the source
    received = portability.files.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/me/requests/{portability.reference}/forward/",
            {"file": received.pk, "to_controller": globex.pk},
        )
    assert response.status_code == 302 and response["Location"] == f"/me/requests/{portability.reference}/"

    [email] = to(mailbox, "dpo@globex.test")
    attached = {part.get_filename(): part.get_payload(decode=True) for part in email.iter_attachments()}
    assert attached["history.json"] == EXPORT
    mandate = portability.member.mandates.get()
    assert attached[f"authority-{mandate.reference}.pdf"].startswith(b"%PDF")
    letter = email.get_body(("plain",)).get_content()
    for expected in (
        "Article 20(2)",
        "Pat Porter",
        "Customer number: GX-0042",
        "Acme Ltd",
        portability.reference,
        mandate.reference,
        f"/verify/{Authority.objects.get(mandate=mandate, controller=globex).token}/",
        received.sha256,
    ):
        assert expected in letter
    assert email["Reply-To"] == portability.member.community.contact_email

    row = PortabilityForward.objects.get()
    assert (row.file, row.to_controller, row.message.status) == (received, globex, "sent")
    event = RequestEvent.objects.get(request=portability, kind="request.portability_forwarded")
    assert event.payload["to_controller"] == "globex" and event.payload["sha256"] == received.sha256
    assert "sent on to another controller" in describe(event)
    detail = client.get(f"/me/requests/{portability.reference}/").content.decode()
    assert "Globex plc" in detail and "Sent: their mail server accepted it" in detail


def test_a_refused_delivery_shows_on_the_request_page(
    client, portability, globex, mailbox, django_capture_on_commit_callbacks
):
    mailbox.refuse = "550 No such user"
    with django_capture_on_commit_callbacks(execute=True):
        forward(portability, globex)
    assert PortabilityForward.objects.get().message.status == "failed"
    client.force_login(portability.member.user)
    assert "Not delivered" in client.get(f"/me/requests/{portability.reference}/").content.decode()


def test_refuses_a_file_that_is_not_the_members_own(community, portability, globex):
    someone = make_member(community, "Sam Someone")
    make_mandate(someone, rights=(Right.PORTABILITY,))
    refused(portability, globex, "not yours", member=someone)


def test_refuses_a_deleted_file(portability, globex):
    portability.files.update(deleted_at=timezone.now())
    refused(portability, globex, "was deleted on .*nothing left to send")


def test_refuses_a_file_returned_for_another_right(porter, controller, globex):
    access = answered(porter, controller, right=Right.ACCESS, reference="R-ACCESS")
    refused(access, globex, "Only data returned for a data portability request")


def test_refuses_to_send_the_file_back_to_its_source(portability, controller):
    refused(portability, controller, "Acme Ltd sent this file")


def test_refuses_a_controller_without_an_email_address(portability):
    by_post = Controller.objects.create(slug="initech", name="Initech", postal_address="1 Road, Town")
    refused(portability, by_post, "no email address for Initech")


def test_refuses_to_send_the_same_file_to_the_same_controller_twice(portability, globex):
    forward(portability, globex)
    refused(portability, globex, "already sent to Globex plc on")
    assert PortabilityForward.objects.count() == 1


def test_refuses_when_the_mandate_does_not_cover_portability(community, controller, globex):
    member = make_member(community, "Alex Access")
    make_mandate(member, rights=(Right.ACCESS,))
    request = make_request(member, controller, right=Right.PORTABILITY, reference="R-NOPORT")
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=dt.date.today(), actor=Actor.system())
    answers.request_answer(
        action="fulfil", request_id=request.pk, actor=CONTROLLER, uploads=[Upload("a.json", EXPORT)]
    )
    refused(request, globex, "mandate does not let the community")


def test_the_form_explains_bad_input(client, portability):
    client.force_login(portability.member.user)
    url = f"/me/requests/{portability.reference}/forward/"
    empty = client.post(url, {"file": portability.files.get().pk}).content.decode()
    assert "govuk-error-summary" in empty and "Choose the organisation to send it to" in empty
    no_email = Controller.objects.create(slug="initech", name="Initech")
    bad = client.post(url, {"file": "999999", "to_controller": no_email.pk}).content.decode()
    assert "Choose one of the files listed" in bad and "Choose an organisation from the list" in bad
    assert not PortabilityForward.objects.exists()


def test_the_service_refusal_is_shown_on_the_form(client, portability, globex):
    forward(portability, globex)
    client.force_login(portability.member.user)
    page = client.post(
        f"/me/requests/{portability.reference}/forward/",
        {"file": portability.files.get().pk, "to_controller": globex.pk},
    ).content.decode()
    assert "govuk-error-summary" in page and "already sent to Globex plc" in page


def test_another_member_cannot_forward_someone_elses_file(client, community, portability, globex, outsider):
    neighbour = make_member(community, "Nosy Neighbour")
    for user in (outsider, neighbour.user):
        client.force_login(user)
        url = f"/me/requests/{portability.reference}/forward/"
        assert client.get(url).status_code == 404
        post = client.post(url, {"file": portability.files.get().pk, "to_controller": globex.pk})
        assert post.status_code == 404
    assert not PortabilityForward.objects.exists()


def test_an_access_request_offers_no_forwarding(client, porter, controller):
    access = answered(porter, controller, right=Right.ACCESS, reference="R-ACC")
    client.force_login(porter.user)
    assert "/forward/" not in client.get(f"/me/requests/{access.reference}/").content.decode()
    page = client.get(f"/me/requests/{access.reference}/forward/").content.decode()
    assert (
        "Only data returned for a data portability request" in page and "<form" not in page.split("</h1>")[1]
    )


def test_the_forwarded_copy_is_encrypted_and_goes_when_the_returned_file_expires(
    settings, portability, globex, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        forward(portability, globex)
    received = portability.files.get()
    message = PortabilityForward.objects.get().message
    copy = message.attachments.get(filename="history.json")
    on_disk = Path(settings.MEDIA_ROOT, copy.file.name).read_bytes()
    assert EXPORT not in on_disk and b"Blue Monday" not in on_disk  # encrypted at rest
    with copy.file.open("rb") as stored:
        assert stored.read() == EXPORT

    ReceivedFile.objects.filter(pk=received.pk).update(
        delete_after=timezone.localdate() - dt.timedelta(days=1)
    )
    assert returned_files.received_files_expire() == 1

    copy.refresh_from_db()
    assert not copy.file and not Path(settings.MEDIA_ROOT, on_disk_name(received)).exists()
    assert (copy.sha256, copy.size) == (received.sha256, len(EXPORT))  # what was sent stays recorded
    authority = message.attachments.exclude(pk=copy.pk).get()
    assert authority.file  # the member's authority document is not returned data: it stays
    assert not any(
        EXPORT in path.read_bytes() for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()
    )


def on_disk_name(received):
    return received.stored.name
