import csv
import datetime
import hashlib
import html
import io
import re
import zipfile
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from communities.models import Mandate, Member
from core import crypto
from core.models import OutboundMessage
from requests_engine import demo
from requests_engine.admin import dashboard as admin_dashboard
from requests_engine.events import chain_breaks
from requests_engine.models import Campaign, Complaint, Controller, DataRightsRequest, RequestEvent
from tests.tampering import behind_the_engines_back


@pytest.mark.django_db
def test_seed_demo_builds_a_campaign_with_requests_in_several_states_and_says_where_to_log_in(capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "/admin/" in out and "coordinator@community.test" in out and "demo-coordinator" in out
    assert Controller.objects.count() == 200
    assert Mandate.objects.filter(state="active").count() == Member.objects.count() == 12
    states = set(DataRightsRequest.objects.values_list("state", flat=True))
    assert {"sent", "acknowledged", "extended", "info_requested", "refused", "fulfilled", "overdue"} <= states
    assert RequestEvent.objects.filter(kind="campaign.launched").count() == 2
    no_data = DataRightsRequest.objects.filter(outcome="no_data_held")
    assert no_data.exists() and set(no_data.values_list("state", "refusal_ground")) == {("fulfilled", "")}
    assert chain_breaks() == []


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    counts = (
        Campaign.objects.count(),
        DataRightsRequest.objects.count(),
        RequestEvent.objects.count(),
        Complaint.objects.count(),
        OutboundMessage.objects.count(),
    )
    call_command("seed_demo")
    assert (
        Campaign.objects.count(),
        DataRightsRequest.objects.count(),
        RequestEvent.objects.count(),
        Complaint.objects.count(),
        OutboundMessage.objects.count(),
    ) == counts
    assert Controller.objects.count() == 200


@pytest.mark.django_db
def test_verify_audit_log_passes_on_the_demo_and_fails_after_a_hand_edit():
    call_command("seed_demo")
    call_command("verify_audit_log")
    event = RequestEvent.objects.filter(kind="request.refused").first()
    with behind_the_engines_back():
        RequestEvent.objects.filter(pk=event.pk).update(payload={**event.payload, "reasons": "softened"})
    with pytest.raises(CommandError, match=f"event {event.pk}"):
        call_command("verify_audit_log")


# -- every rung of the ladder, and a silent controller taken to the ICO in a few clicks --------------------

RUNGS = {
    "sent",
    "acknowledged",
    "info_requested",
    "extended",
    "overdue",
    "fulfilled",
    "partially_fulfilled",
    "refused",
    "complaint_to_controller",
    "escalated_to_ico",
    "closed",
}


def messages_on(page: str) -> list[str]:
    block = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    items = re.findall(r"<li[^>]*>(.*?)</li>", block.group(1), re.S) if block else []
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split()) for item in items]


def textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea name="{name}"[^>]*>\n?(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1))


def pack_is_sound(data: bytes) -> zipfile.ZipFile:
    """The ZIP holds the ICO complaint and a manifest whose hashes match every other file."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert {row["path"] for row in manifest} == set(archive.namelist()) - {"manifest.csv"}
    for row in manifest:
        assert hashlib.sha256(archive.read(row["path"])).hexdigest() == row["sha256"], row["path"]
    assert any(name.startswith("ico-complaint-") for name in archive.namelist())
    return archive


@pytest.fixture
def demo_coordinator(client):
    call_command("seed_demo", stdout=io.StringIO())
    client.force_login(get_user_model().objects.get(username=demo.COORDINATOR_EMAIL))
    return client


@pytest.mark.django_db
def test_the_demo_has_a_request_on_every_rung_of_the_ladder(demo_coordinator):
    client = demo_coordinator
    states = set(DataRightsRequest.objects.values_list("state", flat=True))
    assert RUNGS <= states, RUNGS - states
    today = timezone.localdate()
    controller_complaints = Complaint.objects.filter(kind="controller")

    # A complaint drafted for a coordinator to review, and one sent that waits for its acknowledgement.
    draft = controller_complaints.get(state="draft")
    assert draft.controller.slug == "spotify" and draft.requests.filter(state="refused").exists()
    awaiting = controller_complaints.get(controller__slug="amazon-gb")
    assert awaiting.state == "sent" and awaiting.acknowledged_on is None
    assert awaiting.acknowledgement_due_on > today
    assert set(awaiting.requests.values_list("state", flat=True)) == {"complaint_to_controller"}

    # Taken to the ICO: the case is recorded, the pack downloads from the back office, and the members
    # without Art 80(1) authority are left out and listed with the reason.
    ico = Complaint.objects.get(kind="ico")
    assert (ico.state, ico.ico_case_reference, ico.controller.slug) == ("sent", "IC-000000-DEMO", "apple")
    assert set(ico.requests.values_list("state", flat=True)) == {"escalated_to_ico"}
    page = client.get(f"/admin/requests_engine/complaint/{ico.pk}/change/").content.decode()
    download = f"/admin/requests_engine/complaint/{ico.pk}/step/download/"
    assert download in page and "Samuel Johnson" not in page
    response = client.get(download)
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    assert hashlib.sha256(data).hexdigest() == ico.evidence_pack_sha256
    archive = pack_is_sound(data)
    assert not any("Samuel" in name or "Agatha" in name for name in archive.namelist())
    apple = controller_complaints.get(controller__slug="apple")
    left_out = client.get(f"/admin/requests_engine/complaint/{apple.pk}/change/").content.decode()
    assert "does not authorise representation before the ICO" in left_out

    # The dashboard has something in each of its main figures.
    board = admin_dashboard.dashboard(user=get_user_model().objects.get(username=demo.COORDINATOR_EMAIL))
    figures = {figure.label: figure.count for figure in [*board.requests, *board.complaints]}
    for label in (
        "requests due within 7 days",
        "requests overdue",
        "complaints waiting for approval",
        "ICO cases open",
    ):
        assert figures[label] >= 1, label
    assert len(board.refusals) == 2  # manifestly excessive, and the exemption of the partial answers

    # Resolved by the controller: its requests are closed with the outcome.
    resolved = controller_complaints.get(controller__slug="adobe")
    assert resolved.state == "closed"
    assert set(resolved.requests.values_list("state", flat=True)) == {"closed"}


@pytest.mark.django_db
def test_a_coordinator_takes_a_silent_demo_controller_from_overdue_to_an_ico_pack_in_a_few_clicks(
    demo_coordinator,
):
    client = demo_coordinator
    # Google left some of the recent campaign's requests unanswered (the others: a question, answers).
    google = Controller.objects.get(slug="google")
    # 1. The dashboard's overdue figure opens the overdue list; Google's unanswered requests are on it.
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/requests_engine/datarightsrequest/?due=overdue"' in index
    listing = client.get("/admin/requests_engine/datarightsrequest/?due=overdue").content.decode()
    silent = list(
        DataRightsRequest.objects.filter(controller=google, state="overdue").values_list("pk", flat=True)
    )
    assert silent
    for pk in silent:
        assert f"/admin/requests_engine/datarightsrequest/{pk}/change/" in listing
    # 2. Select them and run "Draft complaints to their controllers".
    page = client.post(
        "/admin/requests_engine/datarightsrequest/?due=overdue",
        {"action": "draft_complaints_for_requests_action", "_selected_action": silent},
        follow=True,
    ).content.decode()
    draft = Complaint.objects.get(kind="controller", controller=google, state="draft")
    assert any(f"{draft.reference} (Google LLC)" in message for message in messages_on(page))
    assert set(draft.requests.values_list("pk", flat=True)) == set(silent)
    # 3. "Review and approve them" lists the draft; 4. its page offers "Approve and send".
    assert draft.reference in client.get("/admin/requests_engine/complaint/?next=approve").content.decode()
    send = f"/admin/requests_engine/complaint/{draft.pk}/step/send/"
    assert send in client.get(f"/admin/requests_engine/complaint/{draft.pk}/change/").content.decode()
    # 5. Approve and send the text as drafted.
    page = client.post(send, {"grounds": textarea(client.get(send).content.decode(), "grounds")}, follow=True)
    assert any("sent to Google LLC" in message for message in messages_on(page.content.decode()))
    # 6. Google has until the acknowledgement date to answer the complaint (s.164A(3)): the page says when the
    # ICO pack can be built, and offers no button before then.
    build = f"/admin/requests_engine/complaint/{draft.pk}/step/ico-pack/"
    assert build not in page.content.decode() and "The ICO pack can be built from" in page.content.decode()
    due = Complaint.objects.get(pk=draft.pk).acknowledgement_due_on
    with time_machine.travel(
        datetime.datetime(due.year, due.month, due.day, 11, tzinfo=datetime.UTC) + datetime.timedelta(days=1),
        tick=False,
    ):
        client.force_login(get_user_model().objects.get(username="coordinator@community.test"))  # a month on
        # "Build the ICO pack": the drafted account of what happened, and the harm in the coordinator's words.
        assert build in client.get(f"/admin/requests_engine/complaint/{draft.pk}/change/").content.decode()
        form = client.get(build).content.decode()
        page = client.post(
            build,
            {
                "what_happened": textarea(form, "what_happened"),
                "ask": textarea(form, "ask"),
                "harm": "Members cannot find out whether their books trained Google's models.",
            },
            follow=True,
        ).content.decode()
    ico = Complaint.objects.get(kind="ico", controller=google)
    told = messages_on(page)
    assert any(f"ICO pack {ico.reference} built" in message for message in told)
    # 7. "Download the pack".
    download = f"/admin/requests_engine/complaint/{ico.pk}/step/download/"
    assert download in page
    response = client.get(download)
    assert response.status_code == 200
    pack_is_sound(b"".join(response.streaming_content))


@pytest.mark.django_db
def test_every_file_the_demo_stores_is_encrypted_at_rest(settings):
    call_command("seed_demo")
    stored = [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]
    folders = {path.relative_to(settings.MEDIA_ROOT).parts[0] for path in stored}
    assert {"mandates", "outbox", "complaints", "constitutions"} <= folders, folders
    plain = [str(path) for path in stored if not path.read_bytes().startswith(crypto.STREAM_MAGIC)]
    assert plain == []
