# ruff: noqa: F811  (fixtures shared with test_portal are imported, then named as test arguments)
"""Answering many requests with one ZIP holding a folder per request reference, alone or with the CSV: every
file checked as a single upload is, all applied or none, and no stored file left behind by a failure."""

import io
import stat
import zipfile
from pathlib import Path

import pytest

from core.audit import Actor
from requests_engine import services
from requests_engine.models import (
    Controller,
    ControllerContact,
    DataRightsRequest,
    ReceivedFile,
    RequestEvent,
)
from requests_engine.portal.signin import SESSION_KEY
from requests_engine.responses import answers
from requests_engine.responses.files import received_file_data
from tests.factories import make_mandate, make_member
from tests.requests_engine.portal.test_portal import acme_requests, sent_request  # noqa: F401

pytestmark = pytest.mark.django_db

JSON = b'{"books_used_for_training": []}'
CSV = b"title,used\nFrankenstein,no\n"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def portal(client, controller):
    contact = ControllerContact.objects.create(controller=controller, email="dpo@acme.test", name="Dee")
    session = client.session
    session[SESSION_KEY] = contact.pk
    session.save()
    return client


def zipped(entries: dict[str, bytes], *, links: tuple[str, ...] = ()) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            archive.writestr(path, data)
        for path in links:
            info = zipfile.ZipInfo(path)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    buffer.seek(0)
    buffer.name = "answers.zip"
    return buffer


def csv_file(text: str) -> io.BytesIO:
    upload = io.BytesIO(text.encode())
    upload.name = "answers.csv"
    return upload


def states() -> dict[str, str]:
    return dict(DataRightsRequest.objects.values_list("reference", "state"))


def stored_on_disk(settings) -> list[Path]:
    return [path for path in (Path(settings.MEDIA_ROOT) / "received").rglob("*") if path.is_file()]


def assert_nothing_applied(settings) -> None:
    assert set(states().values()) == {"sent"}
    assert not ReceivedFile.objects.exists()
    assert not RequestEvent.objects.filter(kind__in=["request.files_received", "request.fulfilled"]).exists()
    assert stored_on_disk(settings) == []


def test_a_zip_alone_fulfils_each_request_named_by_a_folder(
    portal, acme_requests, mailoutbox, django_capture_on_commit_callbacks, settings
):
    litter = {"__MACOSX/B1-M0-AC/._data.json": b"\0\5\26\7", "B1-M2-AC/.DS_Store": b"\0\0\0\1Bud1"}
    upload = zipped(
        {"B1-M0-AC/data.json": JSON, "B1-M0-AC/letter.pdf": PDF, "B1-M2-AC/export.csv": CSV, **litter}
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post("/respond/requests/csv/", {"answers_zip": upload})
    page = response.content.decode()
    assert response.status_code == 200 and "Answers applied" in page
    assert "2 requests answered" in page and "letter.pdf" in page and "export.csv" in page
    assert states() == {"B1-M0-AC": "fulfilled", "B1-M1-AC": "sent", "B1-M2-AC": "fulfilled"}
    first = DataRightsRequest.objects.get(reference="B1-M0-AC")
    files = {f.original_name: f for f in first.files.all()}
    assert set(files) == {"data.json", "letter.pdf"}
    assert (
        files["data.json"].content_type == "application/json"
        and received_file_data(files["data.json"]) == JSON
    )
    assert files["letter.pdf"].content_type == "application/pdf"
    assert all(JSON not in path.read_bytes() for path in stored_on_disk(settings))  # encrypted at rest
    told = sorted(m.to[0] for m in mailoutbox if "sent your data" in m.subject)
    assert told == ["ada@community.test", "sam@community.test"]


def test_an_upload_spooled_to_disk_is_unpacked_and_stored_in_chunks(portal, acme_requests, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # Django writes every upload to a temporary file
    big = b"row,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(300_000))  # ~4.6 MB: 5 chunks
    upload = zipped({"B1-M0-AC/export.csv": big, "B1-M2-AC/data.json": JSON})
    response = portal.post("/respond/requests/csv/", {"answers_zip": upload})
    assert response.status_code == 200 and "Answers applied" in response.content.decode()
    stored = DataRightsRequest.objects.get(reference="B1-M0-AC").files.get()
    assert (stored.size, stored.content_type) == (len(big), "text/csv")
    assert received_file_data(stored) == big
    assert all(b"299999," not in path.read_bytes() for path in stored_on_disk(settings))


def test_a_zip_with_the_csv_partly_fulfils_acknowledges_and_fulfils_in_one_go(
    portal, acme_requests, django_capture_on_commit_callbacks
):
    text = (
        "reference,action,months,reason,ground\n"
        "B1-M0-AC,partially_fulfil,,Some records are about other people.,third_party_data\n"
        "B1-M1-AC,acknowledge,,,\n"
    )
    upload = zipped({"B1-M0-AC/data.json": JSON, "B1-M2-AC/nested/export.csv": CSV})
    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post("/respond/requests/csv/", {"csv_file": csv_file(text), "answers_zip": upload})
    assert response.status_code == 200, response.content.decode()
    assert states() == {
        "B1-M0-AC": "partially_fulfilled",
        "B1-M1-AC": "acknowledged",
        "B1-M2-AC": "fulfilled",
    }
    partial = DataRightsRequest.objects.get(reference="B1-M0-AC")
    assert partial.refusal_ground == "third_party_data" and partial.files.get().original_name == "data.json"
    assert DataRightsRequest.objects.get(reference="B1-M2-AC").files.get().original_name == "export.csv"
    page = response.content.decode()
    assert "Partly fulfil" in page and "Acknowledge" in page and "Partly fulfilled" in page


def test_a_folder_for_another_controllers_request_refuses_the_whole_upload(
    portal, acme_requests, community, settings
):
    other = Controller.objects.create(slug="globex", name="Globex", email="dpo@globex.test")
    stranger = make_member(community, "Other Person")
    make_mandate(stranger)
    theirs = sent_request(stranger, other, "B2-M9-AC")
    upload = zipped({"B1-M0-AC/data.json": JSON, "B2-M9-AC/data.json": JSON, "NOPE/data.json": JSON})
    response = portal.post("/respond/requests/csv/", {"answers_zip": upload})
    page = response.content.decode()
    assert response.status_code == 400 and "Nothing was applied" in page
    assert "Folder B2-M9-AC: B2-M9-AC is not one of your requests" in page
    assert "Folder NOPE: NOPE is not one of your requests" in page
    assert DataRightsRequest.objects.get(pk=theirs.pk).state == "sent"
    assert_nothing_applied(settings)


def test_folders_are_checked_against_the_callers_requests_before_anything_is_unpacked(
    portal, acme_requests, settings
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("B1-M0-AC/data.json", JSON)
        archive.writestr("NOT-OURS/data.json", b"x" * 64 + b"SECRET" + b"x" * 64)
    damaged = bytearray(buffer.getvalue())
    at = damaged.index(b"SECRET")
    damaged[at : at + 6] = b"S3CRET"  # unpacking this entry would fail its CRC check
    upload = io.BytesIO(bytes(damaged))
    upload.name = "answers.zip"
    page = portal.post("/respond/requests/csv/", {"answers_zip": upload}).content.decode()
    assert "Folder NOT-OURS: NOT-OURS is not one of your requests" in page
    assert "cannot be unpacked" not in page  # refused from the directory: the entry was never read
    assert_nothing_applied(settings)


def test_a_damaged_entry_is_refused_in_plain_words(portal, acme_requests, settings):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("B1-M0-AC/data.json", b'{"secret": "SECRET"}')
    damaged = buffer.getvalue().replace(b'"SECRET"', b'"S3CRET"')  # fails its CRC check
    upload = io.BytesIO(damaged)
    upload.name = "answers.zip"
    response = portal.post("/respond/requests/csv/", {"answers_zip": upload})
    assert response.status_code == 400 and "cannot be unpacked" in response.content.decode()
    assert_nothing_applied(settings)


def test_a_folder_for_a_request_that_cannot_be_fulfilled_is_named(portal, acme_requests, settings):
    services.request_refuse(
        request_id=acme_requests[1].pk, ground="other", reasons="No.", actor=Actor.system()
    )
    upload = zipped({"B1-M0-AC/data.json": JSON, "B1-M1-AC/data.json": JSON})
    page = portal.post("/respond/requests/csv/", {"answers_zip": upload}).content.decode()
    assert "Folder B1-M1-AC: request B1-M1-AC is refused, so it cannot be answered now" in page
    assert states()["B1-M0-AC"] == "sent" and not ReceivedFile.objects.exists()
    assert stored_on_disk(settings) == []


def bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.txt", b"\0" * 5_000_000)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("entries", "links", "message"),
    [
        ({"B1-M1-AC/program.pdf": b"\x7fELF\x02\x01\x01" + b"\0" * 200}, (), "which we do not accept"),
        ({"B1-M1-AC/empty.json": b""}, (), "is empty"),
        ({"B1-M1-AC/../../etc/passwd": b"x"}, (), "leaves its folder"),
        ({}, ("B1-M1-AC/link.json",), "links are not accepted"),
        ({"B1-M1-AC/bad\x07name.json": JSON}, (), "control characters"),
        ({"B1-M1-AC/zeros.txt": b"\0" * 5_000_000}, (), "ZIP bomb"),
        ({"B1-M1-AC/inner.zip": bomb()}, (), "ZIP bomb"),
        ({"loose.json": JSON}, (), "is not in a folder"),
        ({"B1-M1-AC/": b""}, (), "Folder B1-M1-AC holds no files"),
    ],
)
def test_one_bad_file_refuses_the_whole_upload(portal, acme_requests, settings, entries, links, message):
    upload = zipped({"B1-M0-AC/data.json": JSON, **entries}, links=links)
    response = portal.post("/respond/requests/csv/", {"answers_zip": upload})
    assert response.status_code == 400 and message in response.content.decode()
    assert_nothing_applied(settings)


def test_a_file_over_the_size_limit_and_an_upload_that_is_not_a_zip_are_refused(
    portal, acme_requests, settings
):
    settings.UPLOAD_MAX_BYTES = 1000
    page = portal.post(
        "/respond/requests/csv/", {"answers_zip": zipped({"B1-M0-AC/big.csv": b"a,b\n" * 600})}
    )
    assert "is larger than the" in page.content.decode()
    settings.UPLOAD_MAX_BYTES = 100 * 1024 * 1024
    not_zip = io.BytesIO(PDF)
    not_zip.name = "answers.zip"
    page = portal.post("/respond/requests/csv/", {"answers_zip": not_zip}).content.decode()
    assert "is not a ZIP file" in page
    assert_nothing_applied(settings)


def test_a_failure_while_applying_rolls_everything_back_and_removes_stored_files(
    portal, acme_requests, settings, mailoutbox, django_capture_on_commit_callbacks
):
    # The folder passes every check and is stored first (B1-M0 sorts before B1-M1); the extension then
    # fails in the service, so the whole upload is undone, files included.
    text = "reference,action,months,reason\nB1-M1-AC,extend,2,\n"
    upload = zipped({"B1-M0-AC/data.json": JSON})
    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post("/respond/requests/csv/", {"csv_file": csv_file(text), "answers_zip": upload})
    page = response.content.decode()
    assert response.status_code == 400 and "Line 2: An extension must state its reasons" in page
    assert_nothing_applied(settings)
    assert not any("sent your data" in m.subject for m in mailoutbox)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reference,action\nB1-M0-AC,acknowledge\n", "files go only with fulfil or partially_fulfil"),
        ("reference,action\nB1-M1-AC,destroy\n", "Line 2: unknown action “destroy”"),
        (
            "reference,action,reason,ground\nB1-M0-AC,partially_fulfil,,other\n",
            "must give its reasons (Art 12(4)",
        ),
    ],
)
def test_csv_lines_that_do_not_fit_the_folders_refuse_the_upload(
    portal, acme_requests, settings, text, message
):
    upload = zipped({"B1-M0-AC/data.json": JSON})
    response = portal.post("/respond/requests/csv/", {"csv_file": csv_file(text), "answers_zip": upload})
    assert response.status_code == 400 and message in response.content.decode()
    assert_nothing_applied(settings)


def test_the_form_asks_for_a_file(portal, acme_requests):
    page = portal.post("/respond/requests/csv/", {}, follow=True).content.decode()
    assert "Choose a CSV file, a ZIP file of answers, or both" in page


def test_files_stored_in_a_transaction_that_fails_are_removed_and_kept_when_it_commits(
    acme_requests, settings
):
    from django.db import transaction

    from requests_engine.responses.files import Upload, files_removed_on_failure

    with pytest.raises(RuntimeError), files_removed_on_failure(), transaction.atomic():
        answers.request_answer(
            action="fulfil",
            request_id=acme_requests[0].pk,
            actor=Actor.system(),
            uploads=[Upload("a.json", JSON)],
        )
        assert len(stored_on_disk(settings)) == 1
        raise RuntimeError("something after the answer failed")
    assert_nothing_applied(settings)
    with files_removed_on_failure(), transaction.atomic():
        answers.request_answer(
            action="fulfil",
            request_id=acme_requests[1].pk,
            actor=Actor.system(),
            uploads=[Upload("b.json", JSON)],
        )
    assert len(stored_on_disk(settings)) == 1 and ReceivedFile.objects.count() == 1


def test_a_single_answer_refused_after_its_files_were_stored_keeps_no_file(
    portal, community, controller, settings
):
    # Art 15 items on a portability answer are refused after the file is stored: nothing may stay behind.
    member = make_member(community, "Port Able")
    make_mandate(member, rights=["portability"])
    sent_request(member, controller, "B1-M7-PO", right="portability")
    upload = io.BytesIO(CSV)
    upload.name = "export.csv"
    response = portal.post(
        "/respond/requests/B1-M7-PO/fulfil/", {"files": [upload], "art15_items": ["purposes"]}
    )
    assert response.status_code == 400
    assert states() == {"B1-M7-PO": "sent"}
    assert not ReceivedFile.objects.exists() and stored_on_disk(settings) == []
