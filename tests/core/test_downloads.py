"""Downloads of personal data: named by what they are, never cached, and a file that cannot be decrypted
gives the member a page that says so while the operator is told."""

import pytest
from cryptography.fernet import Fernet
from django.core.files.base import ContentFile

from core.audit import Actor
from core.downloads import filename_for
from core.models import OutboundMessage
from requests_engine.responses import answers
from requests_engine.responses.files import Upload
from tests.requests_engine.api.test_api import sent_request

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("statement.exe", "application/pdf", "statement.pdf"),  # what it is, not what it was called
        ("data.json", "application/json", "data.json"),
        ("..\\..\\windows\\evil.csv", "text/csv", "evil.csv"),
        ('quote"\x00d.pdf', "application/pdf", "quoted.pdf"),
        ("photo.JPG", "image/jpeg", "photo.JPG"),
        ("export", "application/zip", "export.zip"),
    ],
)
def test_a_download_is_named_by_its_sniffed_type(name, content_type, expected):
    assert filename_for(name, content_type) == expected


@pytest.fixture
def returned_pdf(member, controller):
    request = sent_request(member, controller, "B1-M1-AC")
    answers.request_answer(
        action="fulfil",
        request_id=request.pk,
        actor=Actor(Actor.CONTROLLER, "1"),
        uploads=[Upload("statement.exe", PDF)],
    )
    return request.files.get()


@pytest.mark.django_db
def test_the_member_gets_the_file_under_its_real_type_and_no_cache_keeps_it(client, member, returned_pdf):
    client.force_login(member.user)
    response = client.get(f"/me/files/{returned_pdf.pk}/")
    assert response.status_code == 200 and response.getvalue() == PDF
    assert response["Content-Disposition"] == 'attachment; filename="statement.pdf"'
    assert "no-store" in response["Cache-Control"] and response["X-Content-Type-Options"] == "nosniff"
    for page in ("/me/", f"/me/requests/{returned_pdf.request.reference}/"):
        assert "no-store" in client.get(page)["Cache-Control"], page
    client.logout()
    assert "no-store" not in client.get("/register/").get("Cache-Control", "")  # public: cacheable


@pytest.mark.django_db
def test_a_file_that_cannot_be_decrypted_gives_a_page_and_tells_the_operator(
    client, member, returned_pdf, settings
):
    settings.OPERATOR_EMAIL = "ops@community.test"
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the file's key was lost
    client.force_login(member.user)
    response = client.get(f"/me/files/{returned_pdf.pk}/")
    assert response.status_code == 503
    assert "This file cannot be opened just now" in response.content.decode()
    [alert] = OutboundMessage.objects.filter(purpose="operator.file_unreadable")
    assert alert.to == ["ops@community.test"] and member.full_name not in alert.body_text


@pytest.mark.django_db
def test_a_signed_mandate_that_cannot_be_decrypted_gives_a_page_too(client, member, settings):
    mandate = member.mandates.get()
    mandate.pdf.save(f"{mandate.reference}.pdf", ContentFile(b"%PDF-1.7 mandate"))
    client.force_login(member.user)
    response = client.get(f"/me/mandates/{mandate.reference}/pdf/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"%PDF-1.7 mandate"
    assert response["Content-Length"] == "16" and "no-store" in response["Cache-Control"]

    settings.OPERATOR_EMAIL = "ops@community.test"
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the file's key was lost
    response = client.get(f"/me/mandates/{mandate.reference}/pdf/")
    assert response.status_code == 503 and "no-store" in response["Cache-Control"]
    assert "This file cannot be opened just now" in response.content.decode()
    [alert] = OutboundMessage.objects.filter(purpose="operator.file_unreadable")
    assert f"/me/mandates/{mandate.reference}/pdf/" in alert.body_text
