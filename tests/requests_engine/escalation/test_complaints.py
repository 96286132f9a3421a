"""The complaints ladder, through time: requests are sent, one controller stays silent, the sweep marks them
overdue on the right day, escalation waits for the latest plausible deadline, a collective s.164A complaint
is drafted, approved and sent, nobody acknowledges it, and the ICO pack is built for the members who
authorised representation before the ICO (Art 80(1))."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import subprocess
import zipfile

import pytest
import time_machine
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory

from communities.models import Mandate
from core import crypto, outbox
from core.audit import Actor
from core.models import OutboundMessage
from core.pdf import verify_seal
from requests_engine import services, sweep
from requests_engine.admin.complaints import (
    ComplaintAdmin,
    draft_complaints_action,
    draft_complaints_for_requests_action,
)
from requests_engine.campaigns import launch
from requests_engine.escalation import complaints, ico_pack, selectors
from requests_engine.events import chain_breaks, record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    Campaign,
    Complaint,
    Controller,
    DataRightsRequest,
    InboundMessage,
    RequestEvent,
)
from tests.factories import make_art80_record, make_campaign, make_mandate, make_member

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()
CONTROLLER_ACTOR = Actor(Actor.CONTROLLER, "1")


def at(day: dt.date):
    """Travel to late morning of `day`, the same date in UTC and in London (GMT or BST)."""
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, 11, tzinfo=dt.UTC), tick=False)


def fresh(request: DataRightsRequest) -> DataRightsRequest:
    return DataRightsRequest.objects.select_related("controller").get(pk=request.pk)


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, check=True).stdout
    return " ".join(text.decode().split())


# -- the cast: a campaign to a silent controller (Acme) and one that answers (Globex) ---------------------


@pytest.fixture
def globex(db):
    return Controller.objects.create(slug="globex", name="Globex plc", email="dpo@globex.test")


@pytest.fixture
def ladder(community, controller, globex, coordinator):
    """Launched on Monday 2 March 2026; every request received on Tuesday 3 March 2026, so due on Friday
    3 April, which is Good Friday: the deadline rolls past Easter Monday to Tuesday 7 April (E&W).
    Ada and Charles authorised representation before the ICO; Mary did not."""
    make_art80_record(community)
    with at(dt.date(2026, 3, 2)):
        members = {}
        for name, ico in [("Ada Lovelace", True), ("Mary Shelley", False), ("Charles Babbage", True)]:
            member = make_member(community, name)
            mandate = make_mandate(member, rights=["access"])
            Mandate.objects.filter(pk=mandate.pk).update(may_represent_before_ico=ico)
            members[name.split()[0].lower()] = member
        campaign = make_campaign(
            community,
            name="Training data",
            rights=["access"],
            created_by=coordinator,
            purpose="We want to know whether our writing was used to train AI models.",
            controllers=[controller, globex],
        )
        launch.campaign_launch(campaign_id=campaign.pk, actor=Actor.user(coordinator))
    with at(dt.date(2026, 3, 3)):
        for request in DataRightsRequest.objects.filter(campaign=campaign):
            services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 3, 3), actor=SYSTEM)

    def request_of(who: str, at_controller: Controller) -> DataRightsRequest:
        return DataRightsRequest.objects.get(campaign=campaign, member=members[who], controller=at_controller)

    return {"campaign": campaign, "members": members, "acme": controller, "globex": globex, "of": request_of}


def acme_requests(ladder) -> dict[str, DataRightsRequest]:
    return {who: fresh(ladder["of"](who, ladder["acme"])) for who in ("ada", "mary", "charles")}


def globex_answers(ladder) -> None:
    """Globex refuses Ada's request with a one-word reason and fulfils the others."""
    with at(dt.date(2026, 3, 20)):
        services.request_refuse(
            request_id=ladder["of"]("ada", ladder["globex"]).pk,
            ground="legal_privilege",
            reasons="Exempt.",
            actor=CONTROLLER_ACTOR,
        )
        for who in ("mary", "charles"):
            services.request_fulfil(request_id=ladder["of"](who, ladder["globex"]).pk, actor=CONTROLLER_ACTOR)


def send_acme_complaint(ladder, coordinator_actor, capture, *, on=dt.date(2026, 4, 9)) -> Complaint:
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
    with at(on), capture(execute=True):
        complaints.complaint_approve_and_send(complaint_id=draft.pk, actor=coordinator_actor)
    return Complaint.objects.get(pk=draft.pk)


# -- overdue on the right day, escalation on the latest plausible one ------------------------------------


def test_sweep_marks_overdue_the_day_after_a_deadline_rolled_past_easter(ladder):
    acme = acme_requests(ladder)
    assert {r.due_on for r in acme.values()} == {dt.date(2026, 4, 7)}
    with at(dt.date(2026, 4, 7)):
        assert sweep.deadlines_sweep() == 0
    with at(dt.date(2026, 4, 8)):
        assert sweep.deadlines_sweep() == 6  # Acme's three and Globex's three: nobody answered
    assert {fresh(r).state for r in acme.values()} == {"overdue"}


def test_a_scottish_controller_is_overdue_a_day_earlier_as_scotland_has_no_easter_monday(community, member):
    scottish = Controller.objects.create(
        slug="scot", name="Scot Ltd", email="dp@scot.test", jurisdiction="scotland"
    )
    english = Controller.objects.create(slug="eng", name="Eng Ltd", email="dp@eng.test")
    with at(dt.date(2026, 3, 3)):
        made = {}
        for controller in (scottish, english):
            request = DataRightsRequest.objects.create(
                reference=f"R-{controller.slug}",
                member=member,
                mandate=member.mandates.get(),
                controller=controller,
                right="access",
            )
            services.request_approve(request_id=request.pk, actor=SYSTEM)
            made[controller.slug] = services.request_dispatch(
                request_id=request.pk, received_on=dt.date(2026, 3, 3), actor=SYSTEM
            )
    assert made["scot"].due_on == dt.date(2026, 4, 6) and made["eng"].due_on == dt.date(2026, 4, 7)
    with at(dt.date(2026, 4, 7)):
        assert sweep.deadlines_sweep() == 1
        assert complaints.escalation_reasons(fresh(made["scot"])) == ["overdue"]
        assert complaints.escalation_reasons(fresh(made["eng"])) == []
    assert (fresh(made["scot"]).state, fresh(made["eng"]).state) == ("overdue", "sent")


def test_escalation_waits_for_the_latest_plausible_deadline_of_an_extended_request(ladder, coordinator_actor):
    """Received Saturday 31 January 2026, extended by two months: due 30 April (3 months from receipt),
    but chained from the rolled one-month deadline (Monday 2 March) it is 2 May, a Saturday, rolled past the
    early May bank holiday to Tuesday 5 May. Overdue from 1 May; escalated only from 6 May."""
    member = make_member(ladder["campaign"].community, "Edith Clarke")
    with at(dt.date(2026, 1, 20)):
        mandate = make_mandate(member)
        request = DataRightsRequest.objects.create(
            reference="R-EXT",
            campaign=ladder["campaign"],
            member=member,
            mandate=mandate,
            controller=ladder["acme"],
            right="access",
        )
        services.request_approve(request_id=request.pk, actor=SYSTEM)
    with at(dt.date(2026, 2, 2)):
        services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 1, 31), actor=SYSTEM)
    with at(dt.date(2026, 2, 20)):
        services.request_extend(
            request_id=request.pk, months=2, reason="Many requests", actor=CONTROLLER_ACTOR
        )
    # The campaign's other Acme requests get answered, so only this one is in question.
    with at(dt.date(2026, 3, 20)):
        for who in ("ada", "mary", "charles"):
            services.request_fulfil(request_id=ladder["of"](who, ladder["acme"]).pk, actor=CONTROLLER_ACTOR)
    assert fresh(request).due_on == dt.date(2026, 4, 30)

    with at(dt.date(2026, 5, 1)):
        sweep.deadlines_sweep()
        assert fresh(request).state == "overdue"
        assert complaints.escalation_reasons(fresh(request)) == []
    with at(dt.date(2026, 5, 5)), pytest.raises(RequestEngineError, match="can be escalated on 6 May 2026"):
        complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
    with at(dt.date(2026, 5, 6)):
        assert complaints.escalation_reasons(fresh(request)) == ["overdue"]
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
    assert list(draft.requests.values_list("reference", flat=True)) == ["R-EXT"]


# -- what else escalates ---------------------------------------------------------------------------------


def answered(controller, **fields) -> DataRightsRequest:
    """An unsaved request as the controller left it (escalation_reasons reads fields and given events)."""
    defaults = {
        "reference": "R-X",
        "right": "access",
        "received_on": dt.date(2026, 3, 3),
        "clock_start_on": dt.date(2026, 3, 3),
        "due_on": dt.date(2026, 4, 7),
    }
    return DataRightsRequest(controller=controller, **{**defaults, **fields})


def test_a_refusal_with_a_bare_label_lacks_reasons_and_the_rights_statement(controller):
    request = answered(
        controller,
        state="refused",
        answered_on=dt.date(2026, 3, 20),
        refusal_ground="legal_privilege",
        refusal_reasons="Exempt.",
    )
    reasons = complaints.escalation_reasons(request, event_kinds=["request.refused"])
    assert reasons == ["refused", "refusal_without_reasons", "refusal_without_rights_statement"]


def test_a_reasoned_partial_answer_naming_the_ico_and_the_courts_is_flagged_only_as_partial(controller):
    request = answered(
        controller,
        state="partially_fulfilled",
        answered_on=dt.date(2026, 3, 20),
        refusal_ground="legal_privilege",
        refusal_reasons="We withheld the emails of other customers because they hold third-party data (DPA "
        "2018 Sch 2 para 16). You may complain to the Information Commissioner or apply to a court.",
    )
    kinds = ["request.partially_fulfilled"]
    assert complaints.escalation_reasons(request, event_kinds=kinds) == ["partially_fulfilled"]


def test_naming_the_ico_without_a_judicial_remedy_is_still_flagged(controller):
    request = answered(
        controller,
        state="refused",
        answered_on=dt.date(2026, 3, 20),
        refusal_ground="manifestly_excessive",
        refusal_reasons="Your community sent thousands of identical requests in one week; you can complain "
        "to the ICO.",
    )
    reasons = complaints.escalation_reasons(request, event_kinds=["request.refused"])
    assert reasons == ["refused", "refusal_without_rights_statement"]


def test_a_portability_answer_without_a_machine_readable_file_escalates(controller):
    request = answered(controller, state="fulfilled", right="portability", answered_on=dt.date(2026, 3, 20))
    kinds = ["request.fulfilled", "request.portability_format_flagged"]
    assert complaints.escalation_reasons(request, event_kinds=kinds) == ["portability_not_machine_readable"]
    assert complaints.escalation_reasons(request, event_kinds=["request.fulfilled"]) == []


def test_an_extension_noticed_after_the_first_month_is_flagged_and_the_original_deadline_stands(controller):
    late = {"extension_months": 2, "extended_on": dt.date(2026, 4, 8), "due_on": dt.date(2026, 6, 3)}
    # The invalid extension buys no time: unanswered past the original deadline, it is also overdue.
    request = answered(controller, state="extended", **late)
    assert complaints.escalation_reasons(request, today=dt.date(2026, 4, 10), event_kinds=[]) == [
        "overdue",
        "late_extension",
    ]
    # Answered within the extension it claimed, it was still answered late.
    fulfilled = answered(controller, state="fulfilled", answered_on=dt.date(2026, 5, 20), **late)
    kinds = ["request.fulfilled"]
    assert complaints.escalation_reasons(fulfilled, today=dt.date(2026, 5, 21), event_kinds=kinds) == [
        "late_extension"
    ]
    timely = answered(controller, state="extended", **{**late, "extended_on": dt.date(2026, 3, 20)})
    assert complaints.escalation_reasons(timely, today=dt.date(2026, 4, 10), event_kinds=[]) == []


def test_requests_not_yet_sent_or_closed_never_escalate(controller):
    for state in ("draft", "queued", "failed_delivery", "withdrawn", "closed"):
        request = answered(controller, state=state)
        assert complaints.escalation_reasons(request, today=dt.date(2026, 6, 1), event_kinds=[]) == []


# -- drafting --------------------------------------------------------------------------------------------


def test_one_collective_draft_per_controller_names_each_request_its_dates_and_what_went_wrong(
    ladder, coordinator_actor
):
    globex_answers(ladder)
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        acme = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
        globex = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["globex"].pk, actor=coordinator_actor
        )
    assert (acme.kind, acme.state, acme.requests.count()) == ("controller", "draft", 3)
    for request in acme_requests(ladder).values():
        line = f"{request.reference} (Access (Art 15), member {request.member.reference}): received"
        assert f"{line} 3 March 2026; due 7 April 2026; not answered." in acme.grounds
    assert "did not answer within the time limit, which ended on 7 April 2026" in acme.grounds
    refused = ladder["of"]("ada", ladder["globex"])
    assert list(globex.requests.all()) == [refused]
    assert "refused the request on 20 March 2026" in globex.grounds
    assert "does not give reasons" in globex.grounds and "judicial remedy" in globex.grounds
    assert "Mary" not in acme.grounds  # names go in the annex only


def test_drafting_again_updates_the_same_draft(ladder, coordinator_actor):
    def draft():
        return complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["globex"].pk, actor=coordinator_actor
        )

    globex_answers(ladder)
    with at(dt.date(2026, 3, 21)):
        first = draft()
        again = draft()
    assert again.pk == first.pk and again.requests.count() == 1
    with at(dt.date(2026, 3, 22)):
        # Another member's request of the same campaign is refused: the draft takes it in.
        member = make_member(ladder["campaign"].community, "Grace Hopper")
        request = DataRightsRequest.objects.create(
            reference="R-GH",
            campaign=ladder["campaign"],
            member=member,
            mandate=make_mandate(member),
            controller=ladder["globex"],
            right="access",
        )
        services.request_approve(request_id=request.pk, actor=SYSTEM)
        services.request_dispatch(request_id=request.pk, received_on=dt.date(2026, 3, 22), actor=SYSTEM)
        services.request_refuse(request_id=request.pk, ground="other", reasons="No.", actor=CONTROLLER_ACTOR)
        updated = draft()
    assert updated.pk == first.pk
    assert Complaint.objects.filter(kind="controller", controller=ladder["globex"]).count() == 1
    assert set(updated.requests.values_list("reference", flat=True)) == {
        ladder["of"]("ada", ladder["globex"]).reference,
        "R-GH",
    }
    kinds = list(RequestEvent.objects.filter(complaint=updated).values_list("kind", flat=True))
    assert kinds == ["complaint.drafted", "complaint.redrafted"]


def test_a_member_whose_mandate_excludes_complaints_is_left_out_of_the_draft(ladder, coordinator_actor):
    Mandate.objects.filter(member=ladder["members"]["mary"]).update(may_complain_to_controllers=False)
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
    mary = ladder["of"]("mary", ladder["acme"])
    assert mary not in draft.requests.all() and draft.requests.count() == 2
    event = RequestEvent.objects.get(complaint=draft, kind="complaint.drafted")
    assert event.payload["left_out"] == [
        {"request": mary.reference, "reason": "the member's mandate does not cover complaints"}
    ]


# -- approving and sending -------------------------------------------------------------------------------


def test_approving_sends_the_complaint_with_its_pdfs_and_starts_the_acknowledgement_clock(
    ladder, coordinator_actor, django_capture_on_commit_callbacks, mailoutbox, tmp_path
):
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
    edited = draft.grounds + "\n\nWe also note that none of our reminders was answered."
    # Thursday 9 April 2026 + 30 days is Saturday 9 May: the acknowledgement is due Monday 11 May.
    with at(dt.date(2026, 4, 9)), django_capture_on_commit_callbacks(execute=True):
        report = complaints.complaint_approve_and_send(
            complaint_id=draft.pk, actor=coordinator_actor, grounds_text=edited
        )
    complaint = Complaint.objects.get(pk=draft.pk)
    assert (complaint.state, complaint.sent_on) == ("sent", dt.date(2026, 4, 9))
    assert complaint.acknowledgement_due_on == dt.date(2026, 5, 11)
    assert complaint.grounds == edited
    assert sorted(report.moved) == sorted(r.reference for r in acme_requests(ladder).values())
    assert {r.state for r in acme_requests(ladder).values()} == {"complaint_to_controller"}

    row = OutboundMessage.objects.get(subject_type="complaint", subject_id=str(complaint.pk))
    assert (row.status, row.to, row.reply_to) == ("sent", ["privacy@acme.test"], ["c@community.test"])
    [email] = mailoutbox
    assert complaint.reference in email.subject and email.reply_to == ["c@community.test"]
    assert "none of our reminders was answered" in email.body
    files = {name: content for name, content, _type in email.attachments}
    letter, annex = (
        files[f"complaint-{complaint.reference}.pdf"],
        files[f"complaint-{complaint.reference}-annex.pdf"],
    )
    assert verify_seal(letter).ok and verify_seal(annex).ok
    assert complaint.evidence_pack_sha256 == hashlib.sha256(letter).hexdigest()
    letter_text, annex_text = pdf_text(letter, tmp_path), pdf_text(annex, tmp_path)
    assert "11 May 2026 (section 164A(3): within 30 days of receipt)" in letter_text
    assert "Mary Shelley" not in letter_text
    for who in ("Ada Lovelace", "Mary Shelley", "Charles Babbage"):
        assert who in annex_text
    sent = RequestEvent.objects.get(complaint=complaint, kind="complaint.sent")
    assert sent.payload["acknowledgement_due_on"] == "2026-05-11" and sent.payload["moved"] == 3


def test_a_request_answered_after_drafting_is_skipped_with_a_note(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
        late = ladder["of"]("charles", ladder["acme"])
        services.request_fulfil(request_id=late.pk, actor=CONTROLLER_ACTOR)
    with at(dt.date(2026, 4, 9)), django_capture_on_commit_callbacks(execute=True):
        report = complaints.complaint_approve_and_send(complaint_id=draft.pk, actor=coordinator_actor)
    assert report.skipped == [(late.reference, "it is fulfilled")]
    assert len(report.moved) == 2 and "Not moved" in report.summary()
    assert fresh(late).state == "fulfilled"


def test_only_a_draft_can_be_sent_and_only_to_a_usable_address(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(dt.date(2026, 4, 10)), pytest.raises(RequestEngineError, match="only a draft"):
        complaints.complaint_approve_and_send(complaint_id=complaint.pk, actor=coordinator_actor)
    globex_answers(ladder)
    Controller.objects.filter(pk=ladder["globex"].pk).update(email="")
    with at(dt.date(2026, 4, 10)):
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["globex"].pk, actor=coordinator_actor
        )
        with pytest.raises(RequestEngineError, match="no usable email address"):
            complaints.complaint_approve_and_send(complaint_id=draft.pk, actor=coordinator_actor)
    assert Complaint.objects.get(pk=draft.pk).state == "draft"


# -- acknowledgement, outcome, and the sweep -------------------------------------------------------------


def test_no_acknowledgement_is_flagged_once_the_day_after_it_was_due(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    assert complaints.complaints_sweep(today=dt.date(2026, 5, 11)) == 0
    with at(dt.date(2026, 5, 12)):
        assert complaints.complaints_sweep() == 1
        assert complaints.complaints_sweep() == 0
    event = RequestEvent.objects.get(complaint=complaint, kind="complaint.acknowledgement_missed")
    assert event.payload == {"acknowledgement_due_on": "2026-05-11"}
    assert selectors.ico_pack_reason(complaint) == "not acknowledged by 11 May 2026"


def test_an_acknowledgement_stops_the_flag(ladder, coordinator_actor, django_capture_on_commit_callbacks):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(dt.date(2026, 4, 20)):
        with pytest.raises(RequestEngineError, match="is before 9 April 2026"):
            complaints.complaint_record_acknowledgement(
                complaint_id=complaint.pk, acknowledged_on=dt.date(2026, 4, 1), actor=coordinator_actor
            )
        complaints.complaint_record_acknowledgement(
            complaint_id=complaint.pk, acknowledged_on=dt.date(2026, 4, 20), actor=coordinator_actor
        )
    complaint.refresh_from_db()
    assert (complaint.state, complaint.acknowledged_on) == ("acknowledged", dt.date(2026, 4, 20))
    assert (
        RequestEvent.objects.get(complaint=complaint, kind="complaint.acknowledged").payload["on_time"]
        is True
    )
    assert complaints.complaints_sweep(today=dt.date(2026, 5, 12)) == 0


def test_a_resolved_outcome_closes_the_requests_and_an_unresolved_one_leaves_them_for_the_ico(
    ladder, coordinator_actor, django_capture_on_commit_callbacks, client, coordinator
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(dt.date(2026, 4, 30)):
        complaints.complaint_record_outcome(
            complaint_id=complaint.pk, outcome="We will not answer.", resolved=False, actor=coordinator_actor
        )
    complaint.refresh_from_db()
    assert complaint.state == "closed" and selectors.ico_pack_reason(complaint) == (
        "the outcome left requests unresolved"
    )
    client.force_login(coordinator)
    with at(dt.date(2026, 4, 30)):
        listing = client.get("/admin/requests_engine/complaint/?next=ico_pack").content.decode()
    assert complaint.reference in listing and "Build the ICO pack: outcome unresolved" in listing
    assert {r.state for r in acme_requests(ladder).values()} == {"complaint_to_controller"}

    globex_answers(ladder)
    with at(dt.date(2026, 4, 30)), django_capture_on_commit_callbacks(execute=True):
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["globex"].pk, actor=coordinator_actor
        )
        complaints.complaint_approve_and_send(complaint_id=draft.pk, actor=coordinator_actor)
        complaints.complaint_record_outcome(
            complaint_id=draft.pk, outcome="We sent the data.", resolved=True, actor=coordinator_actor
        )
    assert fresh(ladder["of"]("ada", ladder["globex"])).state == "closed"


# -- the ICO pack ----------------------------------------------------------------------------------------


HARM = "Members cannot find out whether their novels were used to train AI models, and worry about it."
ASK = "Please tell Acme Ltd to answer the requests and consider enforcement action."


def test_the_ico_pack_holds_the_timeline_the_mandates_and_hashes_and_leaves_out_members_without_authority(
    ladder, coordinator_actor, django_capture_on_commit_callbacks, tmp_path
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    complaints.complaints_sweep(today=dt.date(2026, 5, 12))
    with at(dt.date(2026, 5, 13)), django_capture_on_commit_callbacks(execute=True):
        pack = ico_pack.ico_pack_build(complaint_id=complaint.pk, harm=HARM, ask=ASK, actor=coordinator_actor)

    ada, mary, charles = (ladder["members"][who] for who in ("ada", "mary", "charles"))
    ico = Complaint.objects.get(pk=pack.complaint.pk)
    assert (ico.kind, ico.state, ico.controller) == ("ico", "draft", ladder["acme"])
    assert set(ico.requests.values_list("member_id", flat=True)) == {ada.pk, charles.pk}
    assert [(item.member_reference, item.reason) for item in pack.left_out] == [
        (
            mary.reference,
            "the mandate does not authorise representation before the ICO (Article 80(1) UK GDPR)",
        )
    ]
    assert ico_pack.ico_pack_left_out(ico)[0]["member"] == mary.reference  # shown on the admin page

    data = ico.evidence_pack.open("rb").read()
    assert hashlib.sha256(data).hexdigest() == ico.evidence_pack_sha256 == pack.pack_sha256
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert {row["path"] for row in manifest} == set(archive.namelist()) - {"manifest.csv"}
    for row in manifest:
        assert hashlib.sha256(archive.read(row["path"])).hexdigest() == row["sha256"], row["path"]

    names = archive.namelist()
    mandates = [n for n in names if n.startswith("mandates/")]
    assert sorted(mandates) == sorted(
        f"mandates/{m.reference}-mandate-{m.mandates.get().reference}.pdf" for m in (ada, charles)
    )
    assert all(verify_seal(archive.read(n)).ok for n in mandates)
    assert not any(mary.reference in n for n in names)
    sent = [n for n in names if n.startswith("messages/sent/")]
    assert any(n.endswith(f"complaint-{complaint.reference}.pdf") for n in sent)
    assert not any(n.endswith("-annex.pdf") for n in sent)  # it names Mary
    listing = archive.read("messages.csv").decode()
    assert f"complaint-{complaint.reference}-annex.pdf" in listing and "withheld" in listing
    summary = archive.read("controller-complaint/summary.txt").decode()
    assert "Acknowledged on: not acknowledged" in summary and "2026-05-11" in summary

    pdf = archive.read(f"ico-complaint-{ico.reference}.pdf")
    assert verify_seal(pdf).ok and hashlib.sha256(pdf).hexdigest() == pack.pdf_sha256
    text = pdf_text(pdf, tmp_path)
    refs = [ladder["of"](who, ladder["acme"]).reference for who in ("ada", "charles")]
    assert "On 3 March 2026 Acme Ltd received 2 requests (" in text
    assert "On 7 April 2026 the time limit for 2 requests (" in text
    # The same timeline as text, where references cannot wrap as they may on a PDF line.
    lines = archive.read("timeline.txt").decode().splitlines()
    assert lines[0] == f"On 3 March 2026 Acme Ltd received 2 requests ({', '.join(sorted(refs))})."
    assert lines[1] == (
        f"On 7 April 2026 the time limit for 2 requests ({', '.join(sorted(refs))}) ended without an answer "
        "from Acme Ltd."
    )
    assert "On 9 April 2026 we complained to Acme Ltd under section 164A" in text
    assert "acknowledge the complaint by 11 May 2026" in text
    assert "On 11 May 2026 the time for Acme Ltd to acknowledge the complaint ended" in text
    timeline = text[text.index("4. Timeline") : text.index("5. How this has affected")]
    dates = ["On 3 March 2026", "On 7 April 2026", "On 9 April 2026", "On 11 May 2026"]
    assert [timeline.index(d) for d in dates] == sorted(timeline.index(d) for d in dates)
    assert HARM in text and ASK in text
    assert "Ada Lovelace" in text and "Charles Babbage" in text and "Mary Shelley" not in text
    assert len(ico.grounds) <= ico_pack.WHAT_HAPPENED_MAX and ico.grounds in text


def test_the_pack_holds_replies_as_received_and_only_the_represented_members_rows_of_a_letter(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    acme = acme_requests(ladder)
    manifest = "reference,member_reference,member_name\n" + "".join(
        f"{r.reference},{r.member.reference},{r.member.full_name}\n" for r in acme.values()
    )
    with at(dt.date(2026, 3, 3)), django_capture_on_commit_callbacks(execute=True):
        outbox.queue_email(
            to=["privacy@acme.test"],
            subject="Data rights requests",
            body_text="Please see the letter.",
            attachments=[
                ("letter-B1.pdf", b"%PDF-1.4 letter", "application/pdf"),
                ("manifest-B1.csv", manifest.encode(), "text/csv"),
                ("mandates-B1.zip", b"PK zip of every mandate", "application/zip"),
            ],
            subject_type="batch",
            subject_id=str(acme["ada"].batch_id),
            purpose="batch.letter",
        )
    raw = (
        b"From: privacy@acme.test\r\nTo: c@community.test\r\nSubject: Re: Data rights requests\r\n"
        b"Message-ID: <reply-1@acme.test>\r\n\r\nWe are looking into it.\r\n"
    )
    raw_field = InboundMessage._meta.get_field("raw")
    stored = crypto.save_encrypted("inbound/reply.eml.enc", raw, storage=raw_field.storage)
    InboundMessage.objects.create(
        mailbox="INBOX",
        uid_validity=1,
        uid=1,
        subject="Re: Data rights requests",
        raw=stored,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        status="matched",
        matched_by="in-reply-to",
        batch_id=acme["ada"].batch_id,
    )
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(dt.date(2026, 5, 13)), django_capture_on_commit_callbacks(execute=True):
        pack = ico_pack.ico_pack_build(complaint_id=complaint.pk, harm=HARM, ask=ASK, actor=coordinator_actor)
    archive = zipfile.ZipFile(pack.complaint.evidence_pack.open("rb"))
    [received] = [n for n in archive.namelist() if n.startswith("messages/received/") and n.endswith(".eml")]
    assert archive.read(received) == raw
    assert hashlib.sha256(raw).hexdigest() in archive.read("messages.csv").decode()
    [extract] = [n for n in archive.namelist() if "extract-of-manifest-B1.csv" in n]
    rows = list(csv.DictReader(io.StringIO(archive.read(extract).decode())))
    assert {row["member_name"] for row in rows} == {"Ada Lovelace", "Charles Babbage"}
    assert any(n.endswith("letter-B1.pdf") for n in archive.namelist())
    assert not any(
        n.endswith("mandates-B1.zip") or n.endswith("/manifest-B1.csv") for n in archive.namelist()
    )


def flat(text: str) -> str:
    """Text without whitespace, so that words a PDF wrapped across lines still match."""
    return "".join(text.split())


@pytest.mark.parametrize("mary_authorised", [False, True])
def test_the_evidence_list_says_what_each_folder_holds_and_lists_exactly_the_files_in_the_zip(
    ladder, coordinator_actor, django_capture_on_commit_callbacks, tmp_path, mary_authorised
):
    acme = acme_requests(ladder)
    if mary_authorised:
        Mandate.objects.update(may_represent_before_ico=True)
    with at(dt.date(2026, 3, 3)), django_capture_on_commit_callbacks(execute=True):
        outbox.queue_email(
            to=["privacy@acme.test"],
            subject=f"Data rights request {acme['ada'].reference}",
            body_text="Ada's request.",
            subject_type="request",
            subject_id=str(acme["ada"].pk),
            purpose="request.letter",
        )
    with at(dt.date(2026, 3, 20)):
        failed = outbox.queue_email(
            to=["privacy@acme.test"],
            subject=f"Re: data rights request {acme['charles'].reference}",
            body_text="A follow-up that bounced.",
            subject_type="request",
            subject_id=str(acme["charles"].pk),
            purpose="request.followup",
        )
    OutboundMessage.objects.filter(pk=failed.pk).update(status="failed", last_error="550 mailbox full")
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(dt.date(2026, 6, 26)), django_capture_on_commit_callbacks(execute=True):
        assert complaints.ico_window_reminders_send() == 1  # to the coordinators, not the controller
        pack = ico_pack.ico_pack_build(complaint_id=complaint.pk, harm=HARM, ask=ASK, actor=coordinator_actor)

    archive = zipfile.ZipFile(pack.complaint.evidence_pack.open("rb"))
    names = archive.namelist()
    pdf_name = f"ico-complaint-{pack.complaint.reference}.pdf"
    text = pdf_text(archive.read(pdf_name), tmp_path)
    section = flat(text[text.index("7. Evidence enclosed") : text.index("Annex: the members")])

    # The list of evidence names every file in the ZIP but itself and manifest.csv, and nothing else.
    table = section[section.index("FileWhatitisSHA-256") :]
    listed = [name for name in names if name not in (pdf_name, "manifest.csv")]
    for name in listed:
        assert name in table and hashlib.sha256(archive.read(name)).hexdigest() in table, name
    for name in sorted(listed, key=len, reverse=True):
        table = table.replace(name, "")
    assert "/" not in table  # no path left that the ZIP does not hold

    # Each sentence about a folder is in the PDF, and says what the ZIP holds.
    kinds = ("sent", "failed", "received")
    folders = {kind: {n.split("/")[2] for n in names if n.startswith(f"messages/{kind}/")} for kind in kinds}
    assert len(folders["sent"]) == 2  # Ada's request and the complaint; not the reminder to ourselves
    assert flat("messages/sent/ holds the 2 emails Writers sent to Acme Ltd about these requests") in section
    assert not any("ico_window" in n or "ico-window" in n for n in names)
    assert "the ICO window closes" not in archive.read("messages.csv").decode()
    [failed_folder] = folders["failed"]
    failed_text = archive.read(f"messages/failed/{failed_folder}/message.txt").decode()
    assert "Status: Failed" in failed_text and "Error: 550 mailbox full" in failed_text
    assert flat("messages/failed/ holds the one email Writers tried to send to Acme Ltd") in section
    represented = ["ada", "charles", "mary"] if mary_authorised else ["ada", "charles"]
    without_letter = sorted(acme[who].reference for who in represented if who != "ada")
    which = (
        f"{len(without_letter)} requests ({', '.join(without_letter)})"
        if len(without_letter) > 1
        else f"the request {without_letter[0]}"
    )
    assert flat(f"No email carrying the request itself is in the pack for {which}, which reached") in section
    assert acme["ada"].reference not in section[: section.index("FileWhatitisSHA-256")]
    assert not folders["received"] and flat("There is no messages/received/ folder") in section
    assert not any(n.startswith("refusals/") for n in names)
    assert flat("There is no refusals/ folder") in section

    summary = archive.read("controller-complaint/summary.txt").decode()
    [complaint_pdf] = [n for n in names if n.endswith(f"/complaint-{complaint.reference}.pdf")]
    assert complaint_pdf.startswith("messages/sent/") and f"The complaint as sent: {complaint_pdf}" in summary
    annexes = [n for n in names if n.endswith(f"/complaint-{complaint.reference}-annex.pdf")]
    if mary_authorised:
        # Everyone the controller complaint names is represented: nothing is withheld, and nothing says so.
        assert f"Its annex as sent: {annexes[0]}" in summary and "withheld" not in summary
        assert "withheld" not in archive.read("messages.csv").decode()
        assert "withheld" not in section[: section.index("FileWhatitisSHA-256")]
    else:
        assert annexes == [] and "is withheld because it names members who are not part" in summary
        assert flat("except 1 attachment withheld because it names members") in section


def test_the_pack_is_refused_before_the_complaint_is_sent_or_when_nobody_authorised_the_ico(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
        with pytest.raises(RequestEngineError, match="has not been sent"):
            ico_pack.ico_pack_build(complaint_id=draft.pk, harm=HARM, ask=ASK, actor=coordinator_actor)
    Mandate.objects.update(may_represent_before_ico=False)
    with at(dt.date(2026, 4, 9)), django_capture_on_commit_callbacks(execute=True):
        complaints.complaint_approve_and_send(complaint_id=draft.pk, actor=coordinator_actor)
    with at(dt.date(2026, 5, 13)), pytest.raises(RequestEngineError, match="No member .* can be represented"):
        ico_pack.ico_pack_build(complaint_id=draft.pk, harm=HARM, ask=ASK, actor=coordinator_actor)
    assert not Complaint.objects.filter(kind="ico").exists()


def test_rebuilding_updates_the_same_ico_complaint_until_the_case_is_recorded_then_requests_move_on(
    ladder, coordinator_actor, django_capture_on_commit_callbacks
):
    complaint = send_acme_complaint(ladder, coordinator_actor, django_capture_on_commit_callbacks)
    with at(dt.date(2026, 5, 13)), django_capture_on_commit_callbacks(execute=True):
        first = ico_pack.ico_pack_build(
            complaint_id=complaint.pk, harm=HARM, ask=ASK, actor=coordinator_actor
        )
        second = ico_pack.ico_pack_build(
            complaint_id=first.complaint.pk, harm=HARM + " Some lost work.", ask=ASK, actor=coordinator_actor
        )
    assert second.complaint.pk == first.complaint.pk and Complaint.objects.filter(kind="ico").count() == 1
    with at(dt.date(2026, 5, 14)):
        ico_pack.ico_case_record(
            complaint_id=complaint.pk, case_reference="IC-123456-A1B2", actor=coordinator_actor
        )
        # A repeat with the same reference changes nothing; rebuilding the submitted pack is refused.
        ico_pack.ico_case_record(
            complaint_id=complaint.pk, case_reference="IC-123456-A1B2", actor=coordinator_actor
        )
        with pytest.raises(RequestEngineError, match="already submitted"):
            ico_pack.ico_pack_build(complaint_id=complaint.pk, harm=HARM, ask=ASK, actor=coordinator_actor)
    ico = Complaint.objects.get(pk=first.complaint.pk)
    assert (ico.state, ico.sent_on, ico.ico_case_reference) == (
        "sent",
        dt.date(2026, 5, 14),
        "IC-123456-A1B2",
    )
    acme = acme_requests(ladder)
    assert (acme["ada"].state, acme["charles"].state, acme["mary"].state) == (
        "escalated_to_ico",
        "escalated_to_ico",
        "complaint_to_controller",
    )
    event = RequestEvent.objects.get(request=acme["ada"], kind="request.escalated_to_ico")
    assert event.payload == {"case_reference": "IC-123456-A1B2"}

    with at(dt.date(2026, 11, 2)):
        ico_pack.ico_outcome_record(
            complaint_id=ico.pk,
            outcome="The ICO told Acme Ltd to answer within 28 days.",
            actor=coordinator_actor,
        )
    acme = acme_requests(ladder)
    assert (acme["ada"].state, acme["charles"].state, acme["mary"].state) == (
        "closed",
        "closed",
        "complaint_to_controller",
    )
    assert Complaint.objects.get(pk=ico.pk).state == "closed"
    assert chain_breaks() == []


# -- the back office -------------------------------------------------------------------------------------


def admin_request(user, method="post", data=None):
    request = getattr(RequestFactory(), method)("/admin/", data or {})
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def test_the_campaign_action_drafts_one_complaint_per_controller_with_escalated_requests(ladder, coordinator):
    from django.contrib import admin

    globex_answers(ladder)
    request = admin_request(coordinator)
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft_complaints_action(admin.site._registry[Campaign], request, Campaign.objects.all())
        draft_complaints_action(admin.site._registry[Campaign], request, Campaign.objects.all())
    drafts = Complaint.objects.filter(kind="controller", state="draft")
    assert sorted(drafts.values_list("controller__name", flat=True)) == ["Acme Ltd", "Globex plc"]
    assert any("Review and approve" in str(m) for m in request._messages)


def test_from_an_overdue_request_to_a_downloaded_pack_in_the_admin(
    ladder, client, coordinator, django_capture_on_commit_callbacks, mailoutbox
):
    from django.contrib import admin

    client.force_login(coordinator)
    overdue = ladder["of"]("ada", ladder["acme"])
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft_complaints_for_requests_action(
            admin.site._registry[DataRightsRequest],
            admin_request(coordinator),
            DataRightsRequest.objects.filter(pk=overdue.pk),
        )
    draft = Complaint.objects.get(kind="controller", controller=ladder["acme"])
    assert isinstance(admin.site._registry[Complaint], ComplaintAdmin)
    base = f"/admin/requests_engine/complaint/{draft.pk}"
    with at(dt.date(2026, 4, 9)):
        page = client.get(f"{base}/change/").content.decode()
        assert "Approve and send" in page
        assert "No answer by the latest possible deadline" in page
        form = client.get(f"{base}/step/send/").content.decode()
        assert "received 3 March 2026" in form
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"{base}/step/send/", {"grounds": draft.grounds + "\n\nEdited."})
    assert response.status_code == 302 and Complaint.objects.get(pk=draft.pk).state == "sent"
    assert mailoutbox[0].to == ["privacy@acme.test"]

    with at(dt.date(2026, 5, 12)):
        complaints.complaints_sweep()
        listing = client.get("/admin/requests_engine/complaint/?next=ico_pack").content.decode()
        assert draft.reference in listing and "Build the ICO pack: not acknowledged by 11 May 2026" in listing
        form = client.get(f"{base}/step/ico-pack/").content.decode()
        assert "Article 80(1)" in form and "section 164A" in form  # what happened, drafted
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"{base}/step/ico-pack/",
                {"what_happened": "Acme Ltd ignored 2 requests and our complaint.", "harm": HARM, "ask": ASK},
                follow=True,
            )
    ico = Complaint.objects.get(kind="ico")
    page = response.content.decode()
    assert f"ICO pack {ico.reference} built for 2 member(s)" in page
    assert "Left out: Mary Shelley" in page and "Article 80(1)" in page
    download = client.get(f"/admin/requests_engine/complaint/{ico.pk}/step/download/")
    assert download.status_code == 200
    assert f'filename="ico-pack-{ico.reference}.zip"' in download["Content-Disposition"]
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == ico.evidence_pack_sha256

    with at(dt.date(2026, 5, 14)):
        response = client.post(
            f"/admin/requests_engine/complaint/{ico.pk}/step/ico-case/",
            {"case_reference": "IC-1", "submitted_on": "2026-05-14"},
        )
    assert response.status_code == 302
    assert fresh(overdue).state == "escalated_to_ico"


def test_an_outsider_cannot_reach_the_complaint_steps(ladder, client, outsider, coordinator_actor):
    with at(dt.date(2026, 4, 8)):
        sweep.deadlines_sweep()
        draft = complaints.complaint_draft(
            campaign_id=ladder["campaign"].pk, controller_id=ladder["acme"].pk, actor=coordinator_actor
        )
    client.force_login(outsider)
    response = client.post(f"/admin/requests_engine/complaint/{draft.pk}/step/send/", {"grounds": "x"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert Complaint.objects.get(pk=draft.pk).state == "draft"


def test_an_event_recorded_for_the_portability_flag_is_read_from_the_history(ladder):
    """escalation_reasons loads the request's events itself when none are given."""
    request = ladder["of"]("ada", ladder["acme"])
    with at(dt.date(2026, 3, 20)):
        services.request_fulfil(request_id=request.pk, actor=CONTROLLER_ACTOR)
        request = fresh(request)
        DataRightsRequest.objects.filter(pk=request.pk).update(right="portability")
        request = fresh(request)
        record_event(subject=request, kind="request.portability_format_flagged", actor=SYSTEM)
        assert complaints.escalation_reasons(fresh(request)) == ["portability_not_machine_readable"]
