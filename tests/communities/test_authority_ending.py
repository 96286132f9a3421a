"""Ending a mandate ends the community's authority, not the member's rights: per request, the member keeps
it as their own or withdraws it; expiry keeps them; each controller is told; complaints are flagged."""

import datetime as dt

import pytest
from django.utils import timezone

from communities import services
from communities.models import Mandate, Notice
from core.audit import Actor
from requests_engine import services as engine
from requests_engine.models import Complaint, Controller, DataRightsRequest
from tests.factories import make_covered_request, make_mandate, make_member

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


@pytest.fixture
def writer(community):
    member = make_member(community, "Nia Evans")
    make_mandate(member)
    return member


def sent(member, controller, reference):
    request = make_covered_request(member, controller, reference=reference)
    engine.request_approve(request_id=request.pk, actor=SYSTEM)
    engine.request_dispatch(request_id=request.pk, received_on=timezone.localdate(), actor=SYSTEM)
    return request


def state(request):
    return DataRightsRequest.objects.get(pk=request.pk)


def bodies(mailbox, address):
    return [m.get_body(("plain",)).get_content() for m in mailbox.messages() if address in m["To"]]


@pytest.fixture
def two_sent(writer, controller):
    other = Controller.objects.create(slug="bravo", name="Bravo plc", email="dpo@bravo.test")
    return sent(writer, controller, "R-KEEP"), sent(writer, other, "R-DROP")


def test_revoking_keeps_the_chosen_request_as_the_members_own_and_withdraws_the_other(
    writer, two_sent, mailbox, django_capture_on_commit_callbacks
):
    kept, dropped = two_sent
    due_on = state(kept).due_on
    with django_capture_on_commit_callbacks(execute=True):
        withdrawn = services.mandate_revoke(
            mandate_id=writer.mandates.get().pk,
            actor=SYSTEM,
            keep=[kept.pk],
            answer_to="nia.evans@mail.test",
        )
    assert withdrawn == 1
    assert state(kept).state == "handed_over" and state(kept).answer_directly_to == "nia.evans@mail.test"
    assert state(kept).due_on == due_on  # the controller's clock does not restart
    assert state(dropped).state == "withdrawn"
    [to_acme] = bodies(mailbox, "privacy@acme.test")
    assert "no longer acts for" in to_acme and "R-KEEP" in to_acme
    assert "Nia Evans, answer to nia.evans@mail.test" in to_acme and "R-DROP" not in to_acme
    [to_bravo] = bodies(mailbox, "dpo@bravo.test")
    assert "withdraws" in to_bravo and "R-DROP" in to_bravo and "nia.evans@mail.test" not in to_bravo


def test_keeping_a_request_needs_an_address(writer, two_sent):
    kept, _ = two_sent
    with pytest.raises(services.CommunityError, match="where organisations should answer you"):
        services.mandate_revoke(mandate_id=writer.mandates.get().pk, actor=SYSTEM, keep=[kept.pk])
    assert Mandate.objects.get(member=writer).state == "active"


def test_the_revoke_page_asks_for_each_request_with_nothing_chosen(client, writer, two_sent):
    kept, dropped = two_sent
    client.force_login(writer.user)
    url = f"/me/mandates/{writer.mandates.get().reference}/revoke/"
    page = client.get(url).content.decode()
    assert "Keep it as my own request: Acme Ltd answers me directly" in page
    assert "checked" not in page.split("Your open requests", 1)[1].split("Why are you revoking")[0]

    refused = client.post(url, {f"r{kept.pk}": "keep"})
    assert "Choose what happens to your request to Bravo plc" in refused.content.decode()
    assert Mandate.objects.get(member=writer).state == "active"

    done = client.post(
        url,
        {f"r{kept.pk}": "keep", f"r{dropped.pk}": "withdraw", "answer_to": "nia.evans@mail.test"},
        follow=True,
    )
    assert "1 request(s) are now your own" in done.content.decode()
    assert state(kept).state == "handed_over" and state(dropped).state == "withdrawn"
    detail = client.get(f"/me/requests/{kept.reference}/").content.decode()
    assert "This is now your own request" in detail and "nia.evans@mail.test" in detail


def test_expiry_keeps_every_sent_request_as_the_members_own_and_tells_the_member(
    writer, controller, mailbox, django_capture_on_commit_callbacks
):
    request = sent(writer, controller, "R-EXP")
    today = timezone.localdate()
    Mandate.objects.filter(member=writer).update(valid_until=today - dt.timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.mandates_expire(today=today) == 1
    assert state(request).state == "handed_over"
    assert state(request).answer_directly_to == writer.user.email
    notice = Notice.objects.filter(member=writer).latest("pk")
    assert "1 open request(s) are now your own" in notice.body
    [to_acme] = bodies(mailbox, "privacy@acme.test")
    assert "their mandate ended" in to_acme and "R-EXP" in to_acme


def test_a_complaint_covering_the_member_is_flagged_with_a_notice_drafted_for_the_ico(
    writer, community, controller, mailbox, django_capture_on_commit_callbacks
):
    request = sent(writer, controller, "R-ICO")
    complaint = Complaint.objects.create(
        kind=Complaint.Kind.values[-1],
        community=community,
        controller=controller,
        grounds="No answer.",
        ico_case_reference="IC-123456-A1B2",
    )
    complaint.requests.add(request)
    with django_capture_on_commit_callbacks(execute=True):
        services.mandate_revoke(mandate_id=writer.mandates.get().pk, actor=SYSTEM)
    [to_coordinators] = bodies(mailbox, community.contact_email)
    assert complaint.reference in to_coordinators and "R-ICO" in to_coordinators
    assert "Dear Information Commissioner's Office" in to_coordinators
    assert "IC-123456-A1B2" in to_coordinators and "Nia Evans no longer authorises us" in to_coordinators
