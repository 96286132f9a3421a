"""The per-controller authority document: a controller sees the member, the community, the rights, purposes
and dates, and only its own identifiers, each marked with what was checked; the hash binds it to the full
signed mandate; its check page shows the same and no other organisation."""

import subprocess

import pytest

from communities import services
from communities.mandate_text import render_mandate_text, text_sha256
from communities.models import Identifier
from core.pdf import verify_seal
from requests_engine.authorities import authority_issue
from requests_engine.models import Controller
from tests.factories import full_choices, verified_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_controllers(community, controller):
    other = Controller.objects.create(slug="spotify", name="Spotify AB", email="privacy@spotify.test")
    community.controllers.add(controller, other)
    return controller, other


@pytest.fixture
def mandate(community, two_controllers, django_capture_on_commit_callbacks):
    acme, spotify = two_controllers
    member, _ = services.member_join(
        user=verified_user("ada@example.test"), community=community, full_name="Ada Lovelace"
    )
    Identifier.objects.create(member=member, controller=acme, kind="account_id", value="ACME-42")
    Identifier.objects.create(member=member, controller=spotify, kind="account_id", value="SPOT-777")
    choices = full_choices(member)
    with django_capture_on_commit_callbacks(execute=True):
        signed = services.mandate_sign(
            member=member,
            choices=choices,
            signed_name="Ada Lovelace",
            ip="127.0.0.1",
            user_agent="test",
            shown_text_sha256=text_sha256(render_mandate_text(member=member, choices=choices)),
        )
    signed.refresh_from_db()
    return signed


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "authority.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_the_document_shows_only_what_concerns_its_controller(mandate, two_controllers, tmp_path):
    acme, spotify = two_controllers
    assert "Spotify AB" in mandate.text and "SPOT-777" in mandate.text  # the full mandate names both
    authority = authority_issue(mandate=mandate, controller=acme)
    pdf = authority.pdf.read()
    assert verify_seal(pdf).ok
    text = pdf_text(pdf, tmp_path)
    assert "Ada Lovelace" in text and "Acme" in text and "ACME-42" in text
    assert "Spotify" not in text and "SPOT-777" not in text
    assert "stated by the member" in text and "verified" in text  # the login address only, said so
    assert mandate.text_sha256 in text.replace(" ", "").replace("\n", "")
    assert authority_issue(mandate=mandate, controller=acme).pk == authority.pk  # issued once


def test_the_check_page_shows_that_controller_only_and_the_mandate_page_none(
    client, mandate, two_controllers
):
    acme, _spotify = two_controllers
    authority = authority_issue(mandate=mandate, controller=acme)
    page = client.get(f"/verify/{authority.token}/").content.decode()
    assert "In force" in page and "Acme" in page and "ACME-42" in page and mandate.text_sha256 in page
    assert "Spotify" not in page and "SPOT-777" not in page
    whole = client.get(f"/verify/{mandate.verification_token}/").content.decode()
    assert "In force" in whole and "Spotify" not in whole and "Acme" not in whole
    assert client.get("/verify/", {"link": f"http://x/verify/{authority.token}/"})["Location"].endswith(
        f"/verify/{authority.token}/"
    )


def test_a_controller_the_mandate_does_not_name_gets_no_document(community, mandate):
    stranger = Controller.objects.create(slug="stranger", name="Stranger Ltd", email="p@stranger.test")
    with pytest.raises(ValueError, match="does not name"):
        authority_issue(mandate=mandate, controller=stranger)


def test_a_changed_identifier_issues_the_document_again_and_the_old_version_still_checks(
    client, mandate, two_controllers, tmp_path
):
    acme, spotify = two_controllers
    first = authority_issue(mandate=mandate, controller=acme)
    old_sha = first.pdf_sha256
    services.identifiers_save(
        member=mandate.member,
        entries=[
            (acme.pk, Identifier.Kind.ACCOUNT_ID, "", "ACME-43"),
            (spotify.pk, Identifier.Kind.ACCOUNT_ID, "", "SPOT-777"),
        ],
    )
    again = authority_issue(mandate=mandate, controller=acme)
    assert again.pk == first.pk and again.token == first.token and again.pdf_sha256 != old_sha
    text = pdf_text(again.pdf.read(), tmp_path)
    assert "ACME-43" in text and "ACME-42" not in text  # the letters and the document agree
    page = client.get(f"/verify/{again.token}/").content.decode()
    assert old_sha in page and "issued again" in page
    assert authority_issue(mandate=mandate, controller=acme).pdf_sha256 == again.pdf_sha256  # once
