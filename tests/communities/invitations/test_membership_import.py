"""Importing a membership list: every line checked and reported, a dry run that writes nothing, invitations
by email through a real SMTP server and by printed letter, and a second import that changes nothing."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from communities import tenancy
from communities.invitations import imports, letters
from communities.models import Invitation, Invite, Role
from core.models import OutboundMessage
from tests.factories import make_member

pytestmark = pytest.mark.django_db

LIST = (
    "Full name,Email address,Postal address,Membership number\n"
    "Ada Lovelace,ADA@example.test,,U-001\n"
    'Mary Shelley,,"12 Marlow Road\nBuckinghamshire SL7 1AA",U-002\n'
    "Percy Shelley,percy@example.test,,U-003\n"
    "Ada again,ada@example.test,,\n"  # the same email as line 2
    ",nobody@example.test,,U-005\n"  # no name
    "Nobody Reachable,,,U-006\n"  # no way to reach them
    "Bad Address,not-an-email,,U-007\n"
    "\n"
    "Same Number,other@example.test,,U-003\n"  # the same membership number as line 4
)


def test_a_dry_run_reports_every_line_and_writes_nothing(community):
    report = imports.invitations_import(community=community, text=LIST, dry_run=True)
    assert [p.name for p in report.by_email] == ["Ada Lovelace", "Percy Shelley"]
    assert [p.name for p in report.by_post] == ["Mary Shelley"]
    assert report.duplicates == [(5, "the same person as line 2"), (9, "the same person as line 4")]
    assert report.rejected == [
        (6, "no name"),
        (7, "no email address and no postal address: we could not reach them"),
        (8, "“not-an-email” is not an email address"),
    ]
    assert str(report).startswith("2 would be invited by email, 1 would be added for a letter")
    assert not Invitation.objects.exists() and not Invite.objects.exists()
    assert not OutboundMessage.objects.exists()


def test_an_import_invites_by_email_and_letter_and_a_second_one_changes_nothing(
    community, mailbox, django_capture_on_commit_callbacks
):
    make_member(community, "Already Here", email="percy@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        report = imports.invitations_import(community=community, text=LIST, dry_run=False)
    assert (len(report.by_email), len(report.by_post), report.unchanged) == (1, 1, [(4, "already a member")])
    [email] = mailbox.messages()
    assert email["To"] == "ada@example.test" and community.name in email["Subject"]
    body = email.get_body(("plain",)).get_content()
    ada = Invitation.objects.get(email="ada@example.test")
    assert imports.join_link(ada.invite) in body and community.contact_email in body
    assert ada.invite.max_uses == 1 and ada.sent_at is not None and ada.membership_number == "U-001"
    mary = Invitation.objects.get(channel="post")
    assert mary.sent_at is None and "Marlow Road" in mary.postal_address

    with django_capture_on_commit_callbacks(execute=True):
        again = imports.invitations_import(community=community, text=LIST, dry_run=False)
    assert (again.by_email, again.by_post) == ([], [])
    assert sorted(reason for _, reason in again.unchanged) == [
        "already a member",
        "already invited",
        "already invited",
    ]
    assert Invitation.objects.count() == 2 and len(mailbox.messages()) == 1


def test_the_letters_carry_the_address_and_the_link_and_are_marked_printed(community):
    imports.invitations_import(community=community, text=LIST, dry_run=False)
    mary = Invitation.objects.get(channel="post")
    pdf, count = letters.letters_print(invitation_ids=list(Invitation.objects.values_list("pk", flat=True)))
    assert count == 1 and pdf.startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "Mary Shelley" in text and "Marlow Road" in text
    # A long link wraps, and may break at a hyphen of the token: compare without line breaks and hyphens.
    assert re.sub(r"[\s-]", "", mary.invite.token) in re.sub(r"[\s-]", "", text)
    mary.refresh_from_db()
    assert mary.sent_at is not None


def test_the_link_joins_once(client, community):
    imports.invitations_import(community=community, text=LIST, dry_run=False)
    ada = Invitation.objects.get(email="ada@example.test")
    assert imports.join_link(ada.invite).endswith(f"/join/{community.slug}/?invite={ada.invite.token}")
    page = client.get(f"/join/{community.slug}/?invite={ada.invite.token}")
    assert page.status_code == 200 and "has expired" not in page.content.decode()


@pytest.mark.parametrize(
    "text, message",
    [
        ("email\nada@example.test\n", "at least “name”"),
        ("name,phone\nAda,0123\n", "an “email” or a “postal address” column"),
        ("name,email\nAda\x00,a@b.test\n", "NUL"),
    ],
)
def test_a_file_that_is_not_a_membership_list_is_refused_in_one_line(community, text, message):
    with pytest.raises(imports.ListRefused, match=message):
        imports.invitations_import(community=community, text=text, dry_run=False)
    assert not Invitation.objects.exists()


def test_the_command_does_the_same_job(community, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_text(LIST, encoding="utf-8")
    call_command("import_members", str(path), "--community", community.slug, "--dry-run")
    out = capsys.readouterr().out
    assert "line 6: refused: no name" in out and "Dry run: 2 would be invited by email" in out
    assert not Invitation.objects.exists()
    call_command("import_members", str(path), "--community", community.slug)
    assert Invitation.objects.count() == 3
    with pytest.raises(CommandError, match="No community"):
        call_command("import_members", str(path), "--community", "nope")
    (tmp_path / "bad.csv").write_bytes(b"name,email\n\xff\xfe\n")
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_members", str(tmp_path / "bad.csv"), "--community", community.slug)


def test_a_coordinator_imports_in_the_admin_and_a_caseworker_cannot(client, community):
    staff = get_user_model().objects.create_user("c@x.test", "c@x.test", "pw", is_staff=True)
    tenancy.staff_role_grant(user=staff, community=community, role=Role.COORDINATOR)
    client.force_login(staff)
    url = "/admin/communities/invitation/import/"
    upload = io.BytesIO(LIST.encode())
    upload.name = "members.csv"
    page = client.post(url, {"community": community.pk, "membership_list": upload, "dry_run": "on"})
    html = page.content.decode()
    assert page.status_code == 200 and "Dry run: nothing was changed" in html and "Line 6: no name" in html
    upload.seek(0)
    page = client.post(url, {"community": community.pk, "membership_list": upload})
    assert "Imported" in page.content.decode() and Invitation.objects.count() == 3
    listing = client.get("/admin/communities/invitation/").content.decode()
    assert "Import members" in listing and "Mary Shelley" in listing

    caseworker = get_user_model().objects.create_user("w@x.test", "w@x.test", "pw", is_staff=True)
    tenancy.staff_role_grant(user=caseworker, community=community, role=Role.CASEWORKER)
    client.force_login(caseworker)
    assert client.get(url).status_code == 403
