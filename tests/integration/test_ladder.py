"""The whole ladder on PostgreSQL, day by day through time (time-machine).

A campaign is launched on Wednesday 28 October 2026 and sent by email to a real SMTP server on loopback.
The month ends on Saturday 28 November, so every deadline rolls past the weekend: to Monday 30 November in
England and Wales, and to Tuesday 1 December in Scotland, where 30 November is St Andrew's Day. Two
controllers (Acme, English; Thistle, Scottish) stay silent; Globex answers two members and extends the third
member's request. The daily jobs run every morning (`sweep_deadlines` and the complaints sweep, as beat
runs them). A coordinator then does in the back office what the admin offers: draft the s.164A complaint,
approve and send it (acknowledgement due on Monday 4 January 2027, as 1 January is a bank holiday), and,
when no acknowledgement came, build the ICO pack, which leaves out the member who gave no Art 80(1)
authority and says why. Escalation of the extended request waits for the latest plausible deadline
(RULES.md ambiguity #1) although the request was overdue days earlier.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import re
import subprocess
import zipfile

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection  # noqa: F401  (read by the skipif condition)

from communities.models import Mandate
from core.audit import Actor
from core.models import OutboundMessage
from core.pdf import verify_seal
from requests_engine import deadlines, services, tasks
from requests_engine.campaigns import launch as campaign_launching
from requests_engine.escalation import complaints, selectors
from requests_engine.events import chain_breaks
from requests_engine.models import Complaint, Controller, DataRightsRequest, RequestEvent
from tests.factories import make_art80_record, make_campaign, make_mandate, make_member

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="the ladder runs on PostgreSQL, as in production (set DATABASE_URL to a PostgreSQL database)",
    ),
]

LAUNCH = dt.date(2026, 10, 28)  # a Wednesday
LAST_DAY = dt.date(2027, 2, 2)
GLOBEX = Actor(Actor.CONTROLLER, "globex")
HARM = "Our members cannot find out whether their books were used to train AI models; they feel ignored."
ASK = "Please tell Acme Ltd to answer our members' requests, and consider enforcement action."


def at(day: dt.date):
    """Late morning of `day`: the same date in UTC and in London, in summer and winter time."""
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


def days(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def messages_on(page: str) -> list[str]:
    """The admin's messages on a rendered page, as text."""
    block = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    items = re.findall(r"<li[^>]*>(.*?)</li>", block.group(1), re.S) if block else []
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split()) for item in items]


def initial_of(page: str, name: str) -> str:
    """The initial text of a form's <textarea name=…> as the browser would submit it."""
    match = re.search(rf'<textarea name="{name}"[^>]*>\n?(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1))


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "ico-complaint.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, check=True).stdout
    return " ".join(out.decode().split())


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def cast(community, coordinator):
    """Ada and Charles authorised representation before the ICO (Art 80(1)); Mary did not."""
    make_art80_record(community)
    with at(LAUNCH):
        members = {}
        for name, ico in [("Ada Lovelace", True), ("Mary Shelley", False), ("Charles Babbage", True)]:
            member = make_member(community, name)
            mandate = make_mandate(member, rights=["access"])
            Mandate.objects.filter(pk=mandate.pk).update(may_represent_before_ico=ico)
            members[name.split()[0].lower()] = member
        controllers = {
            "acme": Controller.objects.create(slug="acme", name="Acme Ltd", email="privacy@acme.test"),
            "thistle": Controller.objects.create(
                slug="thistle", name="Thistle Data Ltd", email="dpo@thistle.test", jurisdiction="scotland"
            ),
            "globex": Controller.objects.create(slug="globex", name="Globex plc", email="dpo@globex.test"),
        }
        campaign = make_campaign(
            community,
            name="Training data",
            rights=["access"],
            created_by=coordinator,
            purpose="We want to know whether our writing was used to train AI models.",
            controllers=list(controllers.values()),
        )
    return {"members": members, "controllers": controllers, "campaign": campaign}


class Story:
    """What the controllers and the coordinator do, one method per day; the coordinator works in the
    back office through the test client, as a browser would."""

    def __init__(self, cast, coordinator, client, mailbox):
        self.members, self.campaign = cast["members"], cast["campaign"]
        self.acme, self.thistle, self.globex = (cast["controllers"][k] for k in ("acme", "thistle", "globex"))
        self.coordinator, self.client, self.mailbox = coordinator, client, mailbox
        self.first_overdue: dict[int, dt.date] = {}
        self.draft: Complaint | None = None
        self.ico: Complaint | None = None
        self.pack = b""
        self.schedule = {
            dt.date(2026, 11, 5): self.globex_acknowledges_and_extends_one,
            dt.date(2026, 11, 20): self.globex_fulfils_two,
            dt.date(2026, 12, 1): self.coordinator_drafts_the_complaint_to_acme,
            dt.date(2026, 12, 2): self.coordinator_approves_and_sends_it_and_cannot_go_to_the_ico_yet,
            dt.date(2027, 1, 4): self.the_last_day_to_acknowledge_passes_quietly,
            dt.date(2027, 1, 5): self.the_sweep_flags_the_missing_acknowledgement,
            dt.date(2027, 1, 6): self.coordinator_builds_and_downloads_the_ico_pack,
            dt.date(2027, 1, 29): self.globex_is_overdue_but_not_yet_escalated,
            LAST_DAY: self.globex_is_escalated_after_its_latest_deadline,
        }

    # -- helpers --

    def request_of(self, who: str, controller: Controller) -> DataRightsRequest:
        return DataRightsRequest.objects.select_related("controller").get(
            campaign=self.campaign, member=self.members[who], controller=controller
        )

    def get(self, url: str) -> str:
        self.client.force_login(self.coordinator)
        response = self.client.get(url)
        assert response.status_code == 200, url
        return response.content.decode()

    def post(self, url: str, data: dict) -> str:
        self.client.force_login(self.coordinator)
        response = self.client.post(url, data, follow=True)
        assert response.status_code == 200, url
        return response.content.decode()

    def draft_from_overdue_list(self, request_ids: list[int]) -> str:
        return self.post(
            "/admin/requests_engine/datarightsrequest/?due=overdue",
            {"action": "draft_complaints_for_requests_action", "_selected_action": request_ids},
        )

    def the_ico_gate_holds_until_the_acknowledgement_date_passes(self, day: dt.date) -> None:
        """Every morning from the complaint's sending (s.165 DPA 2018: the controller first has its chance
        under s.164A): no ICO pack until the day after the acknowledgement due date, and the admin says
        when. Checked on the page on the first and last day of waiting and the first day it may be built."""
        complaint = Complaint.objects.select_related("controller").get(pk=self.draft.pk)
        if complaint.state == "draft":
            return
        warranted = Complaint.objects.filter(selectors.ico_pack_warranted(day), pk=complaint.pk).exists()
        assert warranted == (day >= dt.date(2027, 1, 5)), day
        assert ("ico-pack" in dict(selectors.available_steps(complaint, today=day))) == warranted, day
        if day in (dt.date(2026, 12, 2), dt.date(2027, 1, 4), dt.date(2027, 1, 5)):
            page = self.get(f"/admin/requests_engine/complaint/{complaint.pk}/change/")
            assert ("/step/ico-pack/" in page) == warranted, day
            waiting = "The ICO pack can be built from 5 January 2027: Acme Ltd has until 4 January 2027"
            assert (waiting in page) != warranted, day

    # -- the days --

    def launch(self) -> None:
        """As the campaign page's "Approve and launch" button does it."""
        campaign_launching.campaign_launch(campaign_id=self.campaign.pk, actor=Actor.user(self.coordinator))

    def morning_jobs(self, day: dt.date) -> None:
        """What beat runs daily: the deadline sweep with its reminders and notices, the complaints sweep."""
        call_command("sweep_deadlines", stdout=io.StringIO())
        tasks.sweep_complaints()
        if self.draft is not None and self.ico is None:
            self.the_ico_gate_holds_until_the_acknowledgement_date_passes(day)
        overdue = DataRightsRequest.objects.filter(campaign=self.campaign, state="overdue")
        for request_id in overdue.values_list("pk", flat=True):
            self.first_overdue.setdefault(request_id, day)

    def globex_acknowledges_and_extends_one(self) -> None:
        for who in ("ada", "mary", "charles"):
            services.request_acknowledge(request_id=self.request_of(who, self.globex).pk, actor=GLOBEX)
        extended = services.request_extend(
            request_id=self.request_of("ada", self.globex).pk,
            months=2,
            reason="We received many requests at once.",
            actor=GLOBEX,
        )
        # 3 months from receipt: Thursday 28 January 2027. Chained onto the rolled one-month deadline
        # (30 November) it is Saturday 30 January, rolled to Monday 1 February: the latest reading.
        assert extended.due_on == dt.date(2027, 1, 28)
        assert complaints.latest_deadline(extended) == dt.date(2027, 2, 1)

    def globex_fulfils_two(self) -> None:
        for who in ("mary", "charles"):
            services.request_fulfil(request_id=self.request_of(who, self.globex).pk, actor=GLOBEX)

    def coordinator_drafts_the_complaint_to_acme(self) -> None:
        acme_ids = [self.request_of(who, self.acme).pk for who in ("ada", "mary", "charles")]
        listing = self.get("/admin/requests_engine/datarightsrequest/?due=overdue")
        for request_id in acme_ids:
            assert f"/admin/requests_engine/datarightsrequest/{request_id}/change/" in listing
        page = self.draft_from_overdue_list(acme_ids)
        self.draft = Complaint.objects.get(kind="controller", controller=self.acme)
        assert messages_on(page) == [
            f"1 draft complaint(s) ready: {self.draft.reference} (Acme Ltd). Review and approve them."
        ]
        assert set(self.draft.requests.values_list("pk", flat=True)) == set(acme_ids)

    def coordinator_approves_and_sends_it_and_cannot_go_to_the_ico_yet(self) -> None:
        draft, today = self.draft, dt.date(2026, 12, 2)
        form = self.get(step_url(draft, "send"))
        grounds = initial_of(form, "grounds") + "\n\nNone of our reminders was answered either."
        page = self.post(step_url(draft, "send"), {"grounds": grounds})
        # 2 December + 30 days is Friday 1 January 2027, New Year's Day: due Monday 4 January.
        assert (
            f"Complaint {draft.reference} sent to Acme Ltd; acknowledgement due by 4 January 2027. "
            "3 request(s) moved to “complaint to the controller”." in messages_on(page)
        )
        complaint = Complaint.objects.get(pk=draft.pk)
        assert (complaint.state, complaint.sent_on) == ("sent", today)
        assert complaint.acknowledgement_due_on == deadlines.complaint_acknowledgement_due(today)
        assert complaint.acknowledgement_due_on == dt.date(2027, 1, 4)
        [sent] = [m for m in self.mailbox.messages() if draft.reference in (m["Subject"] or "")]
        assert sent["To"] == "privacy@acme.test" and sent["Reply-To"] == "c@community.test"
        attached = {part.get_filename(): part.get_payload(decode=True) for part in sent.iter_attachments()}
        names = {f"complaint-{draft.reference}.pdf", f"complaint-{draft.reference}-annex.pdf"}
        assert set(attached) == names and all(verify_seal(pdf).ok for pdf in attached.values())
        assert "None of our reminders was answered either." in sent.get_body(("plain",)).get_content()
        self.the_ico_gate_holds_until_the_acknowledgement_date_passes(today)

    def the_last_day_to_acknowledge_passes_quietly(self) -> None:
        assert not RequestEvent.objects.filter(kind=complaints.ACKNOWLEDGEMENT_MISSED).exists()

    def the_sweep_flags_the_missing_acknowledgement(self) -> None:
        [missed] = RequestEvent.objects.filter(kind=complaints.ACKNOWLEDGEMENT_MISSED)
        assert missed.complaint_id == self.draft.pk
        assert missed.payload == {"acknowledgement_due_on": "2027-01-04"}
        # The dashboard shows it, and its link lists it.
        missed_figure = '?acknowledgement=missed">1<span class="visually-hidden"> acknowledgements missed'
        assert missed_figure in self.get("/admin/")
        assert self.draft.reference in self.get("/admin/requests_engine/complaint/?acknowledgement=missed")

    def coordinator_builds_and_downloads_the_ico_pack(self) -> None:
        form = self.get(step_url(self.draft, "ico-pack"))
        page = self.post(
            step_url(self.draft, "ico-pack"),
            {"what_happened": initial_of(form, "what_happened"), "harm": HARM, "ask": ASK},
        )
        self.ico = Complaint.objects.get(kind="ico", controller=self.acme)
        mary = self.members["mary"]
        # The coordinator is told who is left out of the pack, and why.
        assert messages_on(page) == [
            f"ICO pack {self.ico.reference} built for 2 member(s). Download it, submit it on the ICO's "
            "website, then record the case reference.",
            f"Left out: Mary Shelley ({mary.reference}): the mandate does not authorise "
            "representation before the ICO (Article 80(1) UK GDPR).",
        ]
        assert "Left out of the ICO pack" in page and mary.reference in page
        response = self.client.get(step_url(self.ico, "download"))
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="ico-pack-{self.ico.reference}.zip"'
        self.pack = b"".join(response.streaming_content)

    def globex_is_overdue_but_not_yet_escalated(self) -> None:
        [warning] = messages_on(self.draft_from_overdue_list([self.request_of("ada", self.globex).pk]))
        assert (
            "1 overdue request(s) wait for their latest possible deadline to pass; the first can be "
            "escalated on 2 February 2027." in warning
        )
        assert not Complaint.objects.filter(controller=self.globex).exists()

    def globex_is_escalated_after_its_latest_deadline(self) -> None:
        self.draft_from_overdue_list([self.request_of("ada", self.globex).pk])
        [draft] = Complaint.objects.filter(controller=self.globex)
        assert list(draft.requests.all()) == [self.request_of("ada", self.globex)]


def step_url(complaint: Complaint, step: str) -> str:
    return f"/admin/requests_engine/complaint/{complaint.pk}/step/{step}/"


def test_from_a_silent_controller_to_the_ico_pack_day_by_day(cast, coordinator, client, mailbox, tmp_path):
    story = Story(cast, coordinator, client, mailbox)
    members, acme, thistle, globex = story.members, story.acme, story.thistle, story.globex

    with at(LAUNCH):
        story.launch()
    letters = [m for m in mailbox.messages() if "data rights request" in (m["Subject"] or "").lower()]
    assert sorted(m["To"] for m in letters) == ["dpo@globex.test", "dpo@thistle.test", "privacy@acme.test"]
    requests = list(DataRightsRequest.objects.filter(campaign=story.campaign).select_related("controller"))
    assert len(requests) == 9 and {r.state for r in requests} == {"sent"}
    assert {r.received_on for r in requests} == {LAUNCH}
    # 28 November is a Saturday: Monday 30 November in England and Wales; in Scotland that Monday is St
    # Andrew's Day, so Tuesday 1 December.
    assert {r.controller.slug: r.due_on for r in requests} == {
        "acme": dt.date(2026, 11, 30),
        "globex": dt.date(2026, 11, 30),
        "thistle": dt.date(2026, 12, 1),
    }
    assert not deadlines.is_working_day(dt.date(2026, 11, 30), jurisdiction="scotland")
    for request in requests:  # no reading of the law gives a later date: escalation may start the day after
        assert complaints.escalation_date(request) == request.due_on + dt.timedelta(days=1)

    for day in days(LAUNCH + dt.timedelta(days=1), LAST_DAY):
        with at(day):
            story.morning_jobs(day)
            if day in story.schedule:
                story.schedule[day]()

    # Overdue on the day after the rolled deadline, in each jurisdiction; the extended request on the day
    # after its own deadline, although it could be escalated only from 2 February.
    assert story.first_overdue[story.request_of("ada", acme).pk] == dt.date(2026, 12, 1)
    assert story.first_overdue[story.request_of("mary", thistle).pk] == dt.date(2026, 12, 2)
    assert story.first_overdue[story.request_of("ada", globex).pk] == dt.date(2027, 1, 29)
    assert story.request_of("mary", globex).pk not in story.first_overdue
    overdue_events = RequestEvent.objects.filter(kind="request.overdue", request__controller=thistle)
    assert {e.payload["due_on"] for e in overdue_events} == {"2026-12-01"}

    # Reminders used the earliest plausible reading (Friday 27 November); members were told of overdue.
    tags = set(
        OutboundMessage.objects.filter(
            purpose="request.deadline_reminder", to=["privacy@acme.test"]
        ).values_list("subject_id", flat=True)
    )
    assert tags == {f"{acme.pk}:2026-11-20:week", f"{acme.pk}:2026-11-27:today"}
    ada_notices = [m for m in mailbox.messages() if m["To"] == members["ada"].user.email]
    assert any(m["Subject"] == "Acme Ltd has not answered in time" for m in ada_notices)

    # The pack: the manifest's hashes match its files, and the PDF's timeline has the right dates in order.
    ico = Complaint.objects.get(pk=story.ico.pk)
    assert hashlib.sha256(story.pack).hexdigest() == ico.evidence_pack_sha256
    archive = zipfile.ZipFile(io.BytesIO(story.pack))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert {row["path"] for row in manifest} == set(archive.namelist()) - {"manifest.csv"}
    for row in manifest:
        content = archive.read(row["path"])
        assert hashlib.sha256(content).hexdigest() == row["sha256"], row["path"]
        assert len(content) == int(row["bytes"]), row["path"]
    mandates = sorted(name for name in archive.namelist() if name.startswith("mandates/"))
    assert mandates == sorted(
        f"mandates/{m.reference}-mandate-{m.mandates.get().reference}.pdf"
        for m in (members["ada"], members["charles"])
    )
    assert not any(members["mary"].reference in name for name in archive.namelist())

    text = pdf_text(archive.read(f"ico-complaint-{ico.reference}.pdf"), tmp_path)
    timeline = text[text.index("4. Timeline") : text.index("5. How this has affected")]
    expected = [
        "On 28 October 2026 Acme Ltd received 2 requests (",
        "On 30 November 2026 the time limit for 2 requests (",
        "On 2 December 2026 we complained to Acme Ltd under section 164A of the Data Protection Act 2018",
        "it had to acknowledge the complaint by 4 January 2027.",
        "On 4 January 2027 the time for Acme Ltd to acknowledge the complaint ended, and it had not "
        "acknowledged it.",
    ]
    positions = [timeline.index(phrase) for phrase in expected]
    assert positions == sorted(positions)
    assert HARM in text and ASK in text and "Mary Shelley" not in text

    assert {story.request_of(who, acme).state for who in members} == {"complaint_to_controller"}
    assert chain_breaks() == []
