"""Business actions of members: joining, identifiers, signing and revoking mandates, their own data."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from functools import partial
from typing import IO, Any

from allauth.account.models import EmailAddress
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from communities import tasks
from communities.notices import notify_member
from core import crypto
from core.audit import Actor
from core.crypto import CryptoError
from core.downloads import filename_for
from core.operator import operator_alert
from requests_engine import services as engine
from requests_engine import tasks as engine_tasks
from requests_engine.campaigns.eligibility import request_covered
from requests_engine.dispatch.withdrawals import EXPIRED, NARROWED, REVOKED
from requests_engine.events import describe, record_event
from requests_engine.models import HANDOVER_STATES, OPEN_STATES, DataRightsRequest, ReceivedFile, RequestEvent
from requests_engine.responses.files import received_file_open

from .mandate_text import TEMPLATE_VERSION, MandateChoices, render_mandate_text, terms_sha256, text_sha256
from .models import IRREVERSIBLE_RIGHTS, Community, Identifier, Invite, Mandate, Member, Notice, Right


class CommunityError(Exception):
    """A member action was refused; the message says why in plain words."""


def email_is_verified(user) -> bool:

    return EmailAddress.objects.filter(user=user, verified=True).exists()


def _checked_name(full_name: str) -> str:
    full_name = " ".join(full_name.split())
    if not full_name:
        raise CommunityError("Enter your full name.")
    limit = Member._meta.get_field("full_name").max_length or 200
    if len(full_name) > limit:  # never cut a name short: it is what the controllers know the member by
        raise CommunityError(f"Enter your full name in {limit} characters or fewer.")
    return full_name


def member_name_correct(*, member: Member, full_name: str, actor: Actor) -> bool:
    """Correct the member's name. A signed mandate keeps the name it was signed with (it is the evidence),
    so a member with one in force must sign again under the corrected name before organisations see it.
    Returns whether that new signature is needed."""
    full_name = _checked_name(full_name)
    with transaction.atomic():
        locked = Member.objects.select_for_update().get(pk=member.pk)
        if locked.full_name == full_name:
            return False
        old = locked.full_name
        Member.objects.filter(pk=member.pk).update(full_name=full_name)
        active = Mandate.objects.select_for_update().filter(member=locked, state=Mandate.State.ACTIVE).first()
        if active is not None:
            record_event(
                subject=active,
                kind="mandate.name_corrected",
                actor=actor,
                payload={"from": old, "to": full_name},
            )
    member.full_name = full_name
    return active is not None


def member_join(*, user, community: Community, full_name: str, invite_token: str = "") -> tuple[Member, bool]:
    """Join a community (open, or closed with a usable invite). Joining twice returns the membership."""
    full_name = _checked_name(full_name)
    if not email_is_verified(user):
        raise CommunityError("Verify your email address before joining.")
    with transaction.atomic():
        existing = Member.objects.filter(user=user, community=community).first()
        if existing:
            return existing, False
        if community.join_policy == Community.JoinPolicy.INVITE:
            invite = (
                Invite.objects.select_for_update().filter(community=community, token=invite_token).first()
            )
            if invite is None or not invite.is_usable():
                raise CommunityError(
                    "This community is by invitation only, and this invite link is not valid."
                )
            Invite.objects.filter(pk=invite.pk).update(uses=F("uses") + 1)
        member = Member.objects.create(user=user, community=community, full_name=full_name)
    return member, True


def identifiers_save(*, member: Member, entries: list[tuple[int | None, str, str, str]]) -> int:
    """Replace the member's identifiers with `entries` of (controller id or None, kind, label, value).

    An email address already checked stays checked wherever the member gives it; the login address was
    checked when they joined. Every other new address is sent a check link after commit."""
    checked = {
        i.value.casefold(): (i.verified_at, i.verified_by)
        for i in member.identifiers.filter(kind=Identifier.Kind.EMAIL, verified_at__isnull=False)
    }
    sent = {
        i.value.casefold(): i.verification_sent_at
        for i in member.identifiers.filter(kind=Identifier.Kind.EMAIL, verification_sent_at__isnull=False)
    }
    login = member.user.email.casefold() if email_is_verified(member.user) else ""
    now = timezone.now()
    cleaned = []
    for controller_id, kind, label, value in entries:
        value = value.strip()
        if not value:
            continue
        if kind not in Identifier.Kind.values:
            raise CommunityError(f"Unknown kind of identifier '{kind}'.")
        identifier = Identifier(
            member=member, controller_id=controller_id, kind=kind, label=label, value=value
        )
        if kind == Identifier.Kind.EMAIL:
            key = value.casefold()
            if key in checked:
                identifier.verified_at, identifier.verified_by = checked[key]
            elif key == login:
                identifier.verified_at, identifier.verified_by = now, Identifier.VerifiedBy.LOGIN
            identifier.verification_sent_at = sent.get(key)
        cleaned.append(identifier)
    with transaction.atomic():
        member.identifiers.all().delete()
        Identifier.objects.bulk_create(cleaned)
        if any(i.kind == Identifier.Kind.EMAIL and not i.verified_at for i in cleaned):
            transaction.on_commit(lambda: tasks.send_identifier_checks.delay(member.pk))
    return len(cleaned)


def _same_name(typed: str, full_name: str) -> bool:
    return " ".join(typed.split()).casefold() == " ".join(full_name.split()).casefold()


def mandate_sign(
    *,
    member: Member,
    choices: MandateChoices,
    shown_text_sha256: str,
    signed_name: str,
    ip: str | None,
    user_agent: str,
    keep: Iterable[int] = (),
    answer_to: str = "",
) -> Mandate:
    """Sign the text the member was shown. The PDF is rendered, sealed and emailed after commit. Signing
    in place of a mandate ends the community's authority over requests the new one no longer covers: those
    in `keep` stand as the member's own, answered at `answer_to`; the others are withdrawn."""
    keep = set(keep)
    answer_to = _answer_address(keep, answer_to)

    if not choices.rights or any(r not in Right.values for r in choices.rights):
        raise CommunityError("Choose at least one right.")
    community = member.community
    if not choices.controller_ids:
        raise CommunityError("Choose at least one organisation, or all of them.")
    if community.controllers.filter(pk__in=choices.controller_ids).count() != len(
        set(choices.controller_ids)
    ):
        raise CommunityError(f"Choose organisations from those {community.name} acts towards.")
    if not choices.purpose_ids:
        raise CommunityError("Choose at least one purpose.")
    if community.purposes.filter(pk__in=choices.purpose_ids).count() != len(set(choices.purpose_ids)):
        raise CommunityError(f"Choose purposes from {community.name}'s list.")
    if choices.valid_until <= choices.valid_from:
        raise CommunityError("The end date must be after today.")
    # Art 80(1) UK GDPR, DPA 2018 s.187: only a community with its eligibility recorded may represent.
    if choices.may_represent_before_ico and not community.art80_eligible:
        raise CommunityError(
            f"{community.name} has not recorded that it may represent members before the ICO."
        )
    if choices.may_represent_in_court and not community.offers_court:
        raise CommunityError(f"{community.name} does not offer representation in court.")
    if not _same_name(signed_name, member.full_name):
        raise CommunityError(f"Type your full name exactly as it appears in the mandate: {member.full_name}.")
    text = render_mandate_text(member=member, choices=choices)
    if text_sha256(text) != shown_text_sha256:
        raise CommunityError("The mandate text changed since you read it. Read the new text and sign again.")
    actor = Actor(Actor.MEMBER, str(member.pk))
    with transaction.atomic():
        Member.objects.select_for_update().get(pk=member.pk)
        # Signing while a mandate is active replaces it: that is how a member narrows (or widens) it. The old
        # one leaves "active" first, as only one may be active at a time.
        replaced = member.mandates.select_for_update().filter(state=Mandate.State.ACTIVE).first()
        if replaced is not None:
            replaced.replace(by=None)
            replaced.save()
        mandate = Mandate.objects.create(
            member=member,
            rights=list(choices.rights),
            all_controllers=choices.all_controllers,
            valid_from=choices.valid_from,
            valid_until=choices.valid_until,
            send_responses_to=choices.send_responses_to,
            may_complain_to_controllers=choices.may_complain_to_controllers,
            may_represent_before_ico=choices.may_represent_before_ico,
            may_represent_in_court=choices.may_represent_in_court,
            irreversible_without_asking=choices.irreversible_without_asking
            and bool(IRREVERSIBLE_RIGHTS & set(choices.rights)),
            template_version=TEMPLATE_VERSION,
            text=text,
            text_sha256=text_sha256(text),
            signed_name=" ".join(signed_name.split()),
            signed_at=timezone.now(),
            signed_ip=ip,
            signed_user_agent=user_agent[:1000],
        )
        mandate.controllers.set(choices.controller_ids)
        mandate.purposes.set(choices.purpose_ids)
        record_event(
            subject=mandate,
            kind="mandate.signed",
            actor=actor,
            to_state=mandate.state,
            payload={
                "text_sha256": mandate.text_sha256,
                # The stored terms, bound to the signed text: verify_audit_log re-checks them.
                "terms_sha256": terms_sha256(mandate),
                "template_version": TEMPLATE_VERSION,
                "ip": ip,
                **({"replaces": replaced.reference} if replaced else {}),
            },
        )
        if replaced is not None:
            Mandate.objects.filter(pk=replaced.pk).update(replaced_by=mandate)
            record_event(
                subject=replaced,
                kind="mandate.replaced",
                actor=actor,
                from_state=Mandate.State.ACTIVE,
                to_state=replaced.state,
                payload={"replaced_by": mandate.reference},
            )
            _end_authority(
                replaced,
                actor=actor,
                reason=NARROWED,
                still_covered=request_covered,
                keep=keep,
                answer_to=answer_to,
            )

        transaction.on_commit(lambda: tasks.render_signed_mandate.delay(mandate.pk))
    return mandate


def mandate_revoke(
    *, mandate_id: int, actor: Actor, reason: str = "", keep: Iterable[int] = (), answer_to: str = ""
) -> int:
    """End a mandate now. Each open request under it that the member keeps (`keep`, request ids) stands as
    their own, to be answered to them at `answer_to`; every other is withdrawn. Each controller that has one
    is told, through the way the request reached it. Returns how many requests were withdrawn."""

    keep = set(keep)
    answer_to = _answer_address(keep, answer_to)
    with transaction.atomic():
        mandate = Mandate.objects.select_for_update().get(pk=mandate_id)
        if mandate.state != Mandate.State.ACTIVE:
            raise CommunityError(f"This mandate is already {mandate.get_state_display().lower()}.")
        from_state = mandate.state
        mandate.revoke()
        mandate.save()
        record_event(
            subject=mandate,
            kind="mandate.revoked",
            actor=actor,
            from_state=from_state,
            to_state=mandate.state,
            payload={"reason": reason} if reason else None,
        )
        return sum(
            _end_authority(each, actor=actor, reason=REVOKED, keep=keep, answer_to=answer_to)[0]
            for each in mandate_lineage(mandate)
        )


def _answer_address(keep: set[int], answer_to: str) -> str:
    answer_to = " ".join(answer_to.split())
    if keep and not answer_to:
        raise CommunityError("Enter the email or postal address where organisations should answer you.")
    if len(answer_to) > 500:
        raise CommunityError("Enter an address of 500 characters or fewer.")
    return answer_to


def mandate_lineage(mandate: Mandate) -> list[Mandate]:
    """The mandate and each one it replaced in turn, newest first. A request made under a replaced mandate
    that its replacement still covered stays open under the mandate it cited; revoking the one in force
    must end it too."""
    lineage = [mandate]
    while (earlier := lineage[-1].replaces.first()) is not None:
        lineage.append(earlier)
    return lineage


def requests_no_longer_covered(*, member: Member, choices: MandateChoices) -> list:
    """The open requests that signing `choices` would withdraw (shown before the member signs)."""

    active = member.mandates.filter(state=Mandate.State.ACTIVE).first()
    if active is None:
        return []
    return [
        request
        for request in DataRightsRequest.objects.filter(mandate=active, state__in=OPEN_STATES)
        .select_related("controller", "campaign")
        .order_by("controller__name", "right")
        if not _choices_cover(choices, request)
    ]


def _choices_cover(choices: MandateChoices, request) -> bool:
    """Whether a mandate signed with `choices` would cover this request: the same terms as
    Mandate.objects.covering, read from choices not yet signed."""
    today = timezone.localdate()
    return (
        request.right in choices.rights
        and request.controller_id in choices.controller_ids
        and request.campaign is not None
        and request.campaign.purpose_id in choices.purpose_ids
        and choices.valid_from <= today <= choices.valid_until
    )


KEEP_ALL = "all"


def _end_authority(
    mandate: Mandate,
    *,
    actor: Actor,
    reason: str,
    still_covered=None,
    keep: Collection[int] | str = (),
    answer_to: str = "",
) -> tuple[int, int]:
    """The community stops acting under `mandate` on its open requests (all, or those `still_covered(request)`
    rejects). A request the controller has that the member keeps (`keep`: its ids, or KEEP_ALL) stands as the
    member's own, answered to them at `answer_to`; every other is withdrawn. After commit each controller that
    has one is told, and the coordinators are told of complaints covering them. Call inside the caller's
    transaction. Returns (withdrawn, kept)."""

    withdrawn: list[int] = []  # those the controller has, so must be told of
    withdrawn_count = 0
    kept: list[int] = []
    open_requests = DataRightsRequest.objects.filter(mandate=mandate, state__in=OPEN_STATES)
    for request in open_requests.select_related("campaign", "controller"):
        if still_covered is not None and still_covered(request):
            continue
        has_it = request.state in HANDOVER_STATES
        if has_it and (keep == KEEP_ALL or request.pk in keep):
            engine.request_hand_over(request_id=request.pk, actor=actor, answer_to=answer_to, reason=reason)
            kept.append(request.pk)
            continue
        engine.request_withdraw(request_id=request.pk, actor=actor, reason=reason)
        withdrawn_count += 1
        if has_it:
            withdrawn.append(request.pk)
    if withdrawn:
        transaction.on_commit(
            partial(engine_tasks.tell_controllers_of_withdrawal.delay, withdrawn, reason), robust=True
        )
    if kept:
        transaction.on_commit(
            partial(engine_tasks.tell_controllers_of_withdrawal.delay, kept, reason, True), robust=True
        )
    if withdrawn or kept:
        transaction.on_commit(
            partial(engine_tasks.flag_complaints_for_ended_authority.delay, withdrawn + kept, reason),
            robust=True,
        )
    return withdrawn_count, len(kept)


def account_export(*, user) -> IO[bytes]:
    """Everything the service holds on the member, as a ZIP: data.json, their signed mandate PDFs and the
    files controllers returned to them (those not yet deleted), each under its request's reference.

    Written to a temporary file, never held in memory (returned files may be large), and handed back at its
    start; the caller closes it. Each returned file put in it is recorded as downloaded by the member."""

    members = list(Member.objects.filter(user=user).select_related("community"))
    data: dict[str, Any] = {
        "exported_at": timezone.now(),
        "account": {"email": user.email, "date_joined": user.date_joined, "last_login": user.last_login},
        "memberships": [],
    }
    spool = tempfile.TemporaryFile()
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            entry: dict[str, Any] = {
                "community": member.community.name,
                "reference": member.reference,
                "full_name": member.full_name,
                "joined_at": member.joined_at,
                "identifiers": [
                    {
                        "controller": i.controller.name if i.controller else None,
                        "kind": i.kind,
                        "label": i.label,
                        "value": i.value,
                    }
                    for i in member.identifiers.select_related("controller")
                ],
                "mandates": [],
                "requests": [],
                "notices": [
                    {"at": n.created_at, "subject": n.subject, "body": n.body, "emailed_at": n.emailed_at}
                    for n in member.notices.all()
                ],
            }
            for mandate in member.mandates.all():
                entry["mandates"].append(
                    {
                        "reference": mandate.reference,
                        "state": mandate.state,
                        "rights": mandate.rights,
                        "valid_from": mandate.valid_from,
                        "valid_until": mandate.valid_until,
                        "signed_at": mandate.signed_at,
                        "signed_name": mandate.signed_name,
                        "text": mandate.text,
                        "text_sha256": mandate.text_sha256,
                        "pdf_sha256": mandate.pdf_sha256,
                    }
                )
                if mandate.pdf:
                    with mandate.pdf.open("rb") as pdf:
                        archive.writestr(f"mandates/{mandate.reference}.pdf", pdf.read())
            for request in DataRightsRequest.objects.filter(member=member).select_related("controller"):
                events = RequestEvent.objects.filter(request=request).order_by("seq")
                entry["requests"].append(
                    {
                        "reference": request.reference,
                        "controller": request.controller.name,
                        "right": request.right,
                        "state": request.state,
                        "received_on": request.received_on,
                        "due_on": request.due_on,
                        "history": [
                            {"at": e.created_at, "what": describe(e), "code": e.kind} for e in events
                        ],
                        "returned_files": _export_returned_files(archive, request, member=member),
                    }
                )
            data["memberships"].append(entry)
        archive.writestr("data.json", json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))
    spool.seek(0)
    return spool


# zipfile must know before writing an entry whether it may pass 2 GiB (deflate can grow incompressible data).
ZIP64_FROM = 2**30


def _export_returned_files(
    archive: zipfile.ZipFile, request: DataRightsRequest, *, member: Member
) -> list[dict]:
    """Copy the request's returned files into the export as `returned-files/<reference>/<name>`, each
    decrypted and checked against its checksum on the way; one that cannot be decrypted is listed, not
    included, and the operator told."""
    listed: list[dict] = []
    taken: set[str] = set()
    for received in ReceivedFile.objects.filter(request=request, deleted_at__isnull=True).order_by(
        "received_at", "pk"
    ):
        name = filename_for(received.original_name, received.content_type)
        path = f"returned-files/{request.reference}/{name}"
        copy = 2
        while path in taken:  # two files of one answer with the same name
            path = f"returned-files/{request.reference}/{copy}-{name}"
            copy += 1
        taken.add(path)
        entry = {
            "name": received.original_name,
            "received_at": received.received_at,
            "size": received.size,
            "sha256": received.sha256,
        }
        try:
            data = received_file_open(received)
        except CryptoError as unreadable:
            operator_alert(
                subject="A returned file could not be decrypted for a member's export",
                body=f"Received file {received.pk} of request {request.reference}: {unreadable}. "
                "Check FIELD_ENCRYPTION_KEYS (a key removed before `rotate_keys` ran?).",
                purpose="operator.file_unreadable",
            )
            listed.append(
                {**entry, "in_this_zip": None, "why": "It could not be decrypted; we are looking into it."}
            )
            continue
        with data, archive.open(path, "w", force_zip64=received.size > ZIP64_FROM) as target:
            shutil.copyfileobj(data, target, crypto.CHUNK_BYTES)
        with transaction.atomic():
            locked = DataRightsRequest.objects.select_for_update().get(pk=request.pk)
            record_event(
                subject=locked,
                kind="request.file_downloaded",
                actor=Actor(Actor.MEMBER, str(member.pk)),
                payload={"file": received.pk, "sha256": received.sha256, "in": "account export"},
            )
        listed.append({**entry, "in_this_zip": path})
    return listed


def account_delete(*, user) -> dict[str, int]:
    """Close the account: active mandates are revoked (open requests withdrawn, controllers told), the
    identifiers and the login are erased. Signed mandates and the request history stay as evidence of the
    requests made in the member's name (Art 17(3)(e) UK GDPR: legal claims), under a pseudonymous name."""
    summary = {"mandates_revoked": 0, "requests_withdrawn": 0}
    actor = Actor(Actor.MEMBER, str(user.pk))
    for mandate_id in Mandate.objects.filter(member__user=user, state=Mandate.State.ACTIVE).values_list(
        "pk", flat=True
    ):
        summary["requests_withdrawn"] += mandate_revoke(
            mandate_id=mandate_id, actor=actor, reason="Account deleted."
        )
        summary["mandates_revoked"] += 1
    with transaction.atomic():
        Identifier.objects.filter(member__user=user).delete()
        Notice.objects.filter(member__user=user).delete()  # what we told them: no evidence of a request
        Member.objects.filter(user=user).update(left_at=timezone.now())

        EmailAddress.objects.filter(user=user).delete()
        user.username = f"deleted-{user.pk}"
        user.email = ""
        user.first_name = user.last_name = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
    return summary


def choices_of(mandate: Mandate, *, today: date | None = None) -> MandateChoices:
    """A mandate's choices, as the starting point for the one that replaces it."""
    today = today or timezone.localdate()
    return MandateChoices(
        rights=tuple(mandate.rights),
        controller_ids=tuple(sorted(mandate.controllers.values_list("pk", flat=True))),
        all_controllers=mandate.all_controllers,
        purpose_ids=tuple(sorted(mandate.purposes.values_list("pk", flat=True))),
        valid_from=today,
        valid_until=max(mandate.valid_until, today + timedelta(days=1)),
        send_responses_to=mandate.send_responses_to,
        may_complain_to_controllers=mandate.may_complain_to_controllers,
        may_represent_before_ico=mandate.may_represent_before_ico,
        may_represent_in_court=mandate.may_represent_in_court,
        irreversible_without_asking=mandate.irreversible_without_asking,
    )


def default_choices(member: Member, *, today: date | None = None) -> MandateChoices:
    """A newcomer's starting point: nothing chosen (Art 4(11), Art 7 UK GDPR), a year's term to edit."""
    today = today or timezone.localdate()
    return MandateChoices(
        rights=(),
        controller_ids=(),
        purpose_ids=(),
        valid_from=today,
        valid_until=today.replace(year=today.year + 1)
        if not (today.month == 2 and today.day == 29)
        else date(today.year + 1, 2, 28),
        send_responses_to="",
        may_complain_to_controllers=False,
        may_represent_before_ico=False,
        may_represent_in_court=False,
    )


EXPIRY_WARNING_DAYS = 14


def mandates_expire(*, today: date | None = None) -> int:
    """The daily job: a mandate past its end date expires, and the open requests made under it (and under
    the mandates it replaced) are withdrawn as on a revocation, each controller told. The member is told
    and can sign a new one. Returns how many mandates expired; a second run finds none."""

    today = today or timezone.localdate()
    expired = 0
    for mandate_id in Mandate.objects.filter(state=Mandate.State.ACTIVE, valid_until__lt=today).values_list(
        "pk", flat=True
    ):
        actor = Actor.system("mandate-expiry")
        with transaction.atomic():
            mandate = Mandate.objects.select_for_update().select_related("member").get(pk=mandate_id)
            if mandate.state != Mandate.State.ACTIVE or mandate.valid_until >= today:
                continue  # changed since the list was read
            mandate.expire()
            mandate.save()
            record_event(
                subject=mandate,
                kind="mandate.expired",
                actor=actor,
                from_state="active",
                to_state=mandate.state,
                payload={"valid_until": mandate.valid_until},
            )
            # Expiry keeps every request the controller has as the member's own: the member did not
            # choose to give up their rights, only the community's authority has run out.
            answer_to = mandate.member.user.email
            ended = [
                _end_authority(each, actor=actor, reason=EXPIRED, keep=KEEP_ALL, answer_to=answer_to)
                for each in mandate_lineage(mandate)
            ]
            withdrawn, kept = sum(w for w, _ in ended), sum(k for _, k in ended)
            said = []
            if kept:
                said.append(
                    f" {kept} open request(s) are now your own: each organisation was told to answer you "
                    f"directly, at {answer_to}."
                )
            if withdrawn:
                said.append(f" {withdrawn} request(s) not yet sent were withdrawn.")
            notify_member(
                mandate.member,
                f"Your mandate {mandate.reference} has ended",
                f"Your mandate ended on {mandate.valid_until:%-d %B %Y}, so the community can no longer act "
                f"for you.{''.join(said)} To go on, sign a new mandate.",
                link=f"/me/{mandate.member.reference}/mandate/new/",
            )
        expired += 1
    return expired


def mandate_expiry_warnings_send(*, today: date | None = None) -> int:
    """The daily job: members whose mandate ends within EXPIRY_WARNING_DAYS are told once, with a link to
    renew it (signing a new mandate replaces the old one, keeping its open requests)."""

    today = today or timezone.localdate()
    soon = Mandate.objects.filter(
        state=Mandate.State.ACTIVE,
        valid_until__gte=today,
        valid_until__lt=today + timedelta(days=EXPIRY_WARNING_DAYS),
    ).select_related("member")
    sent = 0
    for mandate in soon:
        notice = notify_member(
            mandate.member,
            f"Your mandate {mandate.reference} ends on {mandate.valid_until:%-d %B %Y}",
            "After that date the community can no longer act for you: organisations that have requests "
            "from us for you are told to answer you directly, and requests not yet sent are withdrawn. To go on, change your mandate: you sign a new one with a later end date, and your "
            "open requests carry on.",
            link=f"/me/{mandate.member.reference}/mandate/new/",
            once_since=timezone.now() - timedelta(days=EXPIRY_WARNING_DAYS + 1),
        )
        sent += notice is not None
    return sent
