"""The member's export holds the files controllers returned to them, byte for byte, by request reference."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile

from django.utils import timezone

from core.audit import Actor
from requests_engine import services
from requests_engine.models import ReceivedFile, RequestEvent
from requests_engine.responses import answers
from requests_engine.responses.files import Upload
from tests.factories import make_request

CONTROLLER = Actor(Actor.CONTROLLER, "1")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# 3 MB: more than one encrypted chunk, little that deflate can shrink.
BIG = "".join(f"{hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(48_000)).encode()


def _answered(member, controller, reference, uploads):
    request = make_request(member, controller, reference=reference)
    services.request_approve(request_id=request.pk, actor=Actor.system())
    services.request_dispatch(request_id=request.pk, received_on=dt.date.today(), actor=Actor.system())
    answers.request_answer(action="fulfil", request_id=request.pk, actor=CONTROLLER, uploads=uploads)
    return request


def test_the_export_holds_the_returned_files_byte_for_byte_and_skips_deleted_ones(
    client, member, controller, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = _answered(
            member,
            controller,
            "R-EXPORT",
            [
                Upload("../../statement.pdf", PDF),
                Upload("loans.json", b'{"loans": []}'),
                Upload("gone.json", b'{"old": true}'),
                Upload("big.txt", BIG),
            ],
        )
    ReceivedFile.objects.filter(request=request, original_name="gone.json").update(deleted_at=timezone.now())
    client.force_login(member.user)

    response = client.get("/me/export/")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "no-store" in response["Cache-Control"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    folder = "returned-files/R-EXPORT/"
    assert sorted(n for n in archive.namelist() if n.startswith(folder)) == [
        f"{folder}big.txt",
        f"{folder}loans.json",
        f"{folder}statement.pdf",
    ]
    assert archive.read(f"{folder}statement.pdf") == PDF
    assert archive.read(f"{folder}loans.json") == b'{"loans": []}'
    assert archive.read(f"{folder}big.txt") == BIG
    data = json.loads(archive.read("data.json"))
    [listed] = [r for r in data["memberships"][0]["requests"] if r["reference"] == "R-EXPORT"]
    assert {f["in_this_zip"] for f in listed["returned_files"]} == {
        f"{folder}big.txt",
        f"{folder}loans.json",
        f"{folder}statement.pdf",
    }
    assert RequestEvent.objects.filter(request=request, kind="request.file_downloaded").count() == 3


def test_another_members_files_are_not_in_the_export(
    client, member, controller, outsider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _answered(member, controller, "R-THEIRS", [Upload("loans.json", b'{"loans": []}')])
    client.force_login(outsider)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get("/me/export/").streaming_content)))
    assert not [n for n in archive.namelist() if n.startswith("returned-files/")]
