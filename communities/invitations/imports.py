"""Importing a membership list (CSV: name, email or postal address, optional membership number).

Every line is checked before anything is written, and the report says what happens to each: invited by
email, to be invited by letter, already on the list or a member (unchanged), a duplicate of an earlier
line, or refused with the reason. A dry run reports the same and writes nothing. Importing the same list
again changes nothing: people are known by email address or membership number."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from communities.models import Community, Invitation, Invite
from core import outbox

PURPOSE = "community.invitation"
# How long an invitation's link works.
INVITATION_DAYS = 60
MAX_LINES = 100_000
# Column names as membership systems export them, in any case, mapped to ours.
COLUMNS = {
    "name": "name",
    "full name": "name",
    "full_name": "name",
    "email": "email",
    "email address": "email",
    "e-mail": "email",
    "postal address": "postal_address",
    "postal_address": "postal_address",
    "address": "postal_address",
    "membership number": "membership_number",
    "membership_number": "membership_number",
    "member number": "membership_number",
    "number": "membership_number",
}


class ListRefused(ValueError):
    """The file as a whole cannot be read (its lines are reported one by one otherwise)."""


@dataclass(frozen=True)
class Person:
    line: int
    name: str
    email: str
    postal_address: str
    membership_number: str

    @property
    def channel(self) -> str:
        return Invitation.Channel.EMAIL if self.email else Invitation.Channel.POST


@dataclass
class ImportReport:
    dry_run: bool
    by_email: list[Person] = field(default_factory=list)
    by_post: list[Person] = field(default_factory=list)
    unchanged: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (
            f"{len(self.by_email)} {verb} invited by email, {len(self.by_post)} {verb} added for a letter, "
            f"{len(self.unchanged)} unchanged, {len(self.duplicates)} duplicate line(s), "
            f"{len(self.rejected)} refused."
        )


def _text(value: str | None) -> str:
    return " ".join((value or "").split())


def _problem(name: str, email: str, address: str, number: str) -> str:
    if not name:
        return "no name"
    for label, value in (("name", name), ("membership number", number)):
        if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in value):
            return f"the {label} contains control characters"
    if len(name) > 200:
        return "the name is longer than 200 characters"
    if len(number) > 60:
        return "the membership number is longer than 60 characters"
    if len(address) > 1000:
        return "the postal address is longer than 1,000 characters"
    if email:
        try:
            validate_email(email)
        except ValidationError:
            return f"“{email}” is not an email address"
    if not email and not address:
        return "no email address and no postal address: we could not reach them"
    return ""


def people_read(text: str) -> tuple[list[Person], list[tuple[int, str]]]:
    """The people the file lists, and the lines refused with why. Raises ListRefused for a file that is not
    a membership list at all."""
    if "\x00" in text:
        raise ListRefused("The file is not a text CSV file (it contains NUL bytes).")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        headings = reader.fieldnames or []
    except csv.Error as error:
        raise ListRefused(f"The file is not a readable CSV file ({error}).") from None
    columns = {heading: COLUMNS.get(heading.strip().lower()) for heading in headings if heading}
    if "name" not in columns.values():
        raise ListRefused(
            "The first line must name the columns, with at least “name”, and “email” or “postal address” "
            "(optionally “membership number”)."
        )
    if not {"email", "postal_address"} & set(columns.values()):
        raise ListRefused("The file needs an “email” or a “postal address” column to reach people.")
    people, rejected = [], []
    try:
        # Numbered as a spreadsheet numbers its rows (the headings are row 1), whatever line breaks an
        # address holds.
        for line, row in enumerate(reader, start=2):
            if line > MAX_LINES + 1:
                raise ListRefused(f"The file has more than {MAX_LINES:,} people: split it.")
            values = {ours: "" for ours in COLUMNS.values()}
            for heading, ours in columns.items():
                if ours:
                    raw = row.get(heading) or ""
                    values[ours] = raw.strip() if ours == "postal_address" else _text(raw)
            if not any(values.values()):
                continue  # a blank line
            email = values["email"].lower()
            problem = _problem(values["name"], email, values["postal_address"], values["membership_number"])
            if problem:
                rejected.append((line, problem))
                continue
            people.append(
                Person(line, values["name"], email, values["postal_address"], values["membership_number"])
            )
    except csv.Error as error:
        raise ListRefused(f"Row {reader.line_num} cannot be read as CSV ({error}).") from None
    return people, rejected


def _sorted(report: ImportReport, community: Community, people: list[Person]) -> list[Person]:
    """Who is new, filling in the report's unchanged and duplicate lines (two queries, whatever the size)."""
    known = community.invitations.values_list("email", "membership_number")
    emails = {email for email, _ in known if email}
    numbers = {number for _, number in known if number}
    members = {
        email.lower()
        for email in get_user_model()
        .objects.filter(memberships__community=community)
        .values_list("email", flat=True)
    }
    seen_emails: dict[str, int] = {}
    seen_numbers: dict[str, int] = {}
    new = []
    for person in people:
        earlier = seen_emails.get(person.email) or seen_numbers.get(person.membership_number)
        if earlier:
            report.duplicates.append((person.line, f"the same person as line {earlier}"))
            continue
        if person.email:
            seen_emails[person.email] = person.line
        if person.membership_number:
            seen_numbers[person.membership_number] = person.line
        if person.email in members:
            report.unchanged.append((person.line, "already a member"))
        elif person.email in emails or person.membership_number in numbers:
            report.unchanged.append((person.line, "already invited"))
        else:
            new.append(person)
    return new


def join_link(invite: Invite) -> str:
    return (
        settings.SITE_URL.rstrip("/")
        + reverse("join", args=[invite.community.slug])
        + f"?invite={invite.token}"
    )


def _email(community: Community, invitation: Invitation) -> outbox.Draft:
    until = timezone.localtime(invitation.invite.expires_at)
    body = (
        f"Dear {invitation.name},\n\n"
        f"{community.name} invites you to join it as a member.\n\n"
        f"{community.purpose}\n\n"
        "As a member you can ask the community to use your data rights for you, together with other members: "
        "for example to ask organisations what personal data they hold about you. You choose which "
        "organisations and which rights, and you can stop at any time.\n\n"
        f"To join, open this link (it works until {until:%d %B %Y}):\n{join_link(invitation.invite)}\n\n"
        "If you do not want to join, you need do nothing: we will not write to you about this again.\n\n"
        f"Questions? Write to {community.contact_email}.\n\n{community.name}\n"
    )
    return outbox.draft_email(
        to=[invitation.email],
        reply_to=[community.contact_email],
        subject=f"You are invited to join {community.name}",
        body_text=body,
        subject_type="community",
        subject_id=f"{community.pk}:invitation",  # the community's, like its daily summary
        purpose=PURPOSE,
    )


def invitations_import(*, community: Community, text: str, dry_run: bool, by=None) -> ImportReport:
    """Check the list and, unless `dry_run`, invite everyone new on it in one transaction: a single-use
    join link each, emailed after commit to those with an email address; the others wait for their letter
    (`letters.py`). Raises ListRefused for a file that is not a membership list."""
    people, rejected = people_read(text)
    report = ImportReport(dry_run=dry_run, rejected=rejected)
    with transaction.atomic():
        Community.objects.select_for_update().get(pk=community.pk)  # one import of a community at a time
        for person in _sorted(report, community, people):
            (report.by_email if person.email else report.by_post).append(person)
        if dry_run:
            return report
        new = report.by_email + report.by_post
        expires = timezone.now() + timedelta(days=INVITATION_DAYS)
        invites = Invite.objects.bulk_create(
            Invite(
                community=community,
                note=f"Invitation for {person.name}"[:200],
                expires_at=expires,
                max_uses=1,
                created_by=by,
            )
            for person in new
        )
        now = timezone.now()
        invitations = Invitation.objects.bulk_create(
            Invitation(
                community=community,
                name=person.name,
                email=person.email,
                postal_address=person.postal_address,
                membership_number=person.membership_number,
                channel=person.channel,
                invite=invite,
                sent_at=now if person.email else None,
            )
            for person, invite in zip(new, invites, strict=True)
        )
        outbox.queue_drafts([_email(community, i) for i in invitations if i.email])
    return report
