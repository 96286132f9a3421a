"""A member corrects their name: the signed mandate keeps the name it was signed with, so they sign again."""

import pytest

from communities.models import Mandate, Member

pytestmark = pytest.mark.django_db


def test_correcting_the_name_asks_for_a_new_signature_under_it(client, member):
    client.force_login(member.user)
    old = member.mandates.get()
    page = client.post(f"/me/{member.reference}/name/", {"full_name": "  Augusta   Ada King "})
    assert page.status_code == 302 and page["Location"] == f"/me/{member.reference}/mandate/new/"
    assert Member.objects.get(pk=member.pk).full_name == "Augusta Ada King"
    assert Mandate.objects.get(pk=old.pk).signed_name == "Ada Lovelace"  # the evidence is unchanged
    assert old.events.filter(kind="mandate.name_corrected").exists()


def test_a_name_too_long_is_refused_with_a_clear_error(client, member):
    client.force_login(member.user)
    page = client.post(f"/me/{member.reference}/name/", {"full_name": "A" * 201})
    assert "Enter your full name in 200 characters or fewer" in page.content.decode()
    assert Member.objects.get(pk=member.pk).full_name == "Ada Lovelace"


def test_someone_elses_name_page_is_not_found(client, member, outsider):
    client.force_login(outsider)
    assert client.get(f"/me/{member.reference}/name/").status_code == 404
