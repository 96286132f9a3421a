"""The signed mandate's PDF: its text says who, what, against whom, when and the fingerprint; the seal
holds, and any change to the file breaks it."""

import subprocess

import pytest

from communities import services
from communities.mandate_text import render_mandate_text, text_sha256
from core.pdf import verify_seal
from tests.factories import full_choices, verified_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(community, controller, django_capture_on_commit_callbacks):
    community.controllers.add(controller)
    member, _ = services.member_join(
        user=verified_user("pdf@example.test"), community=community, full_name="Ada O'Lovelace"
    )
    choices = full_choices(member)
    with django_capture_on_commit_callbacks(execute=True):
        mandate = services.mandate_sign(
            member=member,
            choices=choices,
            signed_name="Ada O'Lovelace",
            ip="127.0.0.1",
            user_agent="test",
            shown_text_sha256=text_sha256(render_mandate_text(member=member, choices=choices)),
        )
    mandate.refresh_from_db()
    return mandate, mandate.pdf.read()


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "mandate.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_the_pdf_says_who_what_against_whom_when_and_the_fingerprint(signed, tmp_path):
    mandate, pdf = signed
    text = " ".join(pdf_text(pdf, tmp_path).split())
    assert "Ada O'Lovelace" in text or "Ada O’Lovelace" in text
    assert "Access (Art 15)" in text and "Erasure (Art 17)" in text
    assert "Acme Ltd" in text
    assert f"{mandate.valid_from:%-d %B %Y}" in text and f"{mandate.valid_until:%-d %B %Y}" in text
    assert mandate.text_sha256 in text.replace(" ", "") and f"/verify/{mandate.verification_token}/" in text


def test_the_seal_validates_and_one_changed_byte_breaks_it(signed):
    _, pdf = signed
    check = verify_seal(pdf)
    assert check.intact and check.trusted and check.covers_whole_file
    position = pdf.index(b"stream") + 40  # inside the first content stream, within the signed range
    tampered = pdf[:position] + bytes([pdf[position] ^ 0x01]) + pdf[position + 1 :]
    assert not verify_seal(tampered).intact


def test_identifier_labels_in_legal_text_are_plain_words():
    from communities.models import Identifier

    def label(kind, text):
        return Identifier(kind=kind, label=text).plain_label

    assert label("email", "E-Mail") == "Email address"
    assert label("account_id", "Account or customer number (optional)") == "Account or customer number"
    assert label("account_id", "") == Identifier.Kind.ACCOUNT_ID.label
    assert label("other", "username on the forum") == "Username on the forum"
