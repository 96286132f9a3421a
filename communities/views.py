"""Member pages: thin views that load through a permission check (others' records are 404), bind a form,
call one service, and redirect with a message."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.audit import Actor
from core.client_ip import client_ip
from core.downloads import download
from requests_engine.authorities import authority_context, authority_issue
from requests_engine.models import (
    OPEN_STATES,
    Campaign,
    Confirmation,
    DataRightsRequest,
    InformationKind,
    RequestState,
)

from . import identifier_checks, notices, services, tasks
from .accounts import SESSION_JOINING
from .forms import (
    DeleteAccountForm,
    EndingForm,
    IdentifiersForm,
    JoinForm,
    MandateChoicesForm,
    NameForm,
    NotificationsForm,
    RevokeForm,
    SignForm,
)
from .mandate_text import MandateChoices, render_mandate_text, text_sha256
from .models import Authority, Community, Invite, Mandate, Member, Right

SESSION_CHOICES = "mandate_choices"
RECENT_NOTICES = 10  # shown on /me/ for each community


def _own_member(request, reference: str) -> Member:
    return get_object_or_404(
        Member.objects.select_related("community", "user"),
        reference=reference,
        user=request.user,
        left_at__isnull=True,
    )


def _own_mandate(request, reference: str) -> Mandate:
    return get_object_or_404(
        Mandate.objects.select_related("member__community"), reference=reference, member__user=request.user
    )


def home(request):
    communities = Community.objects.filter(join_policy=Community.JoinPolicy.OPEN).order_by("name")
    return render(request, "communities/home.html", {"communities": communities})


@require_http_methods(["GET", "POST"])
def join(request, slug: str):
    community = get_object_or_404(Community, slug=slug)
    if request.session.get(SESSION_JOINING) != community.slug:
        # The sign-up, verification and sign-in pages and emails that follow speak for this community.
        request.session[SESSION_JOINING] = community.slug
    invite_token = request.GET.get("invite") or request.POST.get("invite") or ""
    invite = Invite.objects.filter(community=community, token=invite_token).first() if invite_token else None
    invite_problem = ""
    if community.join_policy == Community.JoinPolicy.INVITE:
        if invite is None:
            invite_problem = (
                "This community is open by invitation only. Ask a coordinator for an invite link."
            )
        elif not invite.is_usable():
            invite_problem = (
                "This invite link has expired or has already been used. Ask a coordinator for a new one."
            )
    membership = None
    verified = False
    if request.user.is_authenticated:
        membership = Member.objects.filter(
            user=request.user, community=community, left_at__isnull=True
        ).first()
        verified = services.email_is_verified(request.user)
    form = JoinForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"{reverse('account_signup')}?next={request.get_full_path()}")
        if membership:
            messages.info(request, f"You are already a member of {community.name}.")
            return redirect("me")
        if form.is_valid():
            try:
                member, _ = services.member_join(
                    user=request.user,
                    community=community,
                    full_name=form.cleaned_data["full_name"],
                    invite_token=invite_token,
                )
            except services.CommunityError as error:
                form.add_error(None, str(error))
            else:
                messages.success(
                    request, f"Welcome to {community.name}. Next, tell us how organisations know you."
                )
                return redirect("member-identifiers", reference=member.reference)
    controllers = community.controllers.order_by("name")
    rights = [label for value, label in Right.choices if value in community.rights]
    next_url = request.get_full_path()
    return render(
        request,
        "communities/join.html",
        {
            "community": community,
            "form": form,
            "membership": membership,
            "verified": verified,
            "invite_problem": invite_problem,
            "invite_token": invite_token,
            "controllers": controllers,
            "rights": rights,
            "next_url": next_url,
        },
    )


@login_required
def me(request):
    members = list(Member.objects.filter(user=request.user, left_at__isnull=True).select_related("community"))
    today = timezone.localdate()
    blocks = []
    for member in members:
        requests = list(
            DataRightsRequest.objects.filter(member=member)
            .select_related("controller")
            .order_by("-created_at")
        )
        blocks.append(
            {
                "member": member,
                "mandates": list(member.mandates.order_by("-signed_at")),
                # Only an open request counts down: once answered or withdrawn, nothing is due any more.
                "requests": [
                    {
                        "request": r,
                        "open": r.state in OPEN_STATES,
                        "days_left": r.days_left(today) if r.state in OPEN_STATES else None,
                        "days_late": -r.days_left(today) if (r.days_left(today) or 0) < 0 else 0,
                    }
                    for r in requests
                ],
                "needs_answer": [
                    r
                    for r in requests
                    if r.state == RequestState.INFO_REQUESTED and r.info_kind != InformationKind.AUTHORITY
                ],
                "campaigns": list(
                    Campaign.objects.filter(requests__member=member)
                    .distinct()
                    .select_related("purpose")
                    .order_by("-launched_at")
                ),
                "to_confirm": list(
                    Confirmation.objects.filter(
                        member=member,
                        state=Confirmation.State.PENDING,
                        campaign__state="draft",
                        campaign__confirm_by__gte=today,
                    ).select_related("campaign")
                ),
                "has_identifiers": member.identifiers.exists(),
                "notices": list(member.notices.all()[:RECENT_NOTICES]),
                "notifications_form": NotificationsForm(
                    initial={"notifications": member.notifications}, auto_id=f"{member.reference}-%s"
                ),
            }
        )
    return render(request, "communities/me.html", {"blocks": blocks, "today": today})


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request, reference: str):
    """Each step by email, or one email a day (the small form on /me/ posts here; errors are shown here)."""
    member = _own_member(request, reference)
    form = NotificationsForm(
        request.POST if request.method == "POST" else None, initial={"notifications": member.notifications}
    )
    if request.method == "POST" and form.is_valid():
        notices.notifications_choose(member=member, notifications=form.cleaned_data["notifications"])
        messages.success(request, f"Saved: {member.get_notifications_display().lower()}.")
        return redirect("me")
    return render(
        request,
        "communities/notifications.html",
        {"member": member, "community": member.community, "form": form},
    )


@login_required
@require_http_methods(["GET", "POST"])
def name_correct(request, reference: str):
    member = _own_member(request, reference)
    form = NameForm(
        request.POST if request.method == "POST" else None, initial={"full_name": member.full_name}
    )
    if request.method == "POST" and form.is_valid():
        try:
            sign_again = services.member_name_correct(
                member=member,
                full_name=form.cleaned_data["full_name"],
                actor=Actor(Actor.MEMBER, str(member.pk)),
            )
        except services.CommunityError as error:
            form.add_error("full_name", str(error))
        else:
            if sign_again:
                messages.success(
                    request,
                    f"Your name is now {member.full_name}. Your mandate was signed as you were named then, "
                    "so sign it again under this name: until you do, organisations see the old one.",
                )
                return redirect("mandate-new", reference=member.reference)
            messages.success(request, f"Your name is now {member.full_name}.")
            return redirect("me")
    return render(
        request, "communities/name.html", {"member": member, "community": member.community, "form": form}
    )


@login_required
@require_http_methods(["GET", "POST"])
def identifiers(request, reference: str):
    member = _own_member(request, reference)
    if request.method == "POST" and "send_checks" in request.POST:
        tasks.send_identifier_checks.delay(member.pk, True)
        messages.success(request, "We have sent a new link to each address not yet checked.")
        return redirect("member-identifiers", reference=member.reference)
    form = IdentifiersForm(request.POST if request.method == "POST" else None, member=member)
    if request.method == "POST" and form.is_valid():
        services.identifiers_save(member=member, entries=form.entries())
        messages.success(request, "Saved. You can change these at any time.")
        if member.mandates.filter(state=Mandate.State.ACTIVE).exists():
            return redirect("me")
        return redirect("mandate-new", reference=member.reference)
    unchecked = member.identifiers.filter(kind="email", verified_at__isnull=True).exists()
    return render(
        request,
        "communities/identifiers.html",
        {"member": member, "community": member.community, "form": form, "unchecked": unchecked},
    )


@require_http_methods(["GET", "POST"])
def identifier_check(request, token: str):
    """The link emailed to an address a member gave: it works without signing in (it may be opened on
    another device), and a GET only shows the question, so a mail scanner following links checks nothing."""
    try:
        member, address, identifiers = identifier_checks.check_link_read(token)
    except identifier_checks.CheckLinkError as error:
        return render(request, "communities/identifier_check.html", {"error": str(error)}, status=400)
    done = next((i.verified_at for i in identifiers if i.verified_at), None)
    if request.method == "POST" and not done:
        identifier_checks.check_link_use(token)
        messages.success(request, f"Thank you: {address} is checked.")
        return redirect("identifier-check", token=token)
    return render(
        request,
        "communities/identifier_check.html",
        {"community": member.community, "address": address, "done": done},
    )


def _choices_to_session(choices: MandateChoices) -> dict:
    data = asdict(choices)
    return {
        k: v.isoformat() if isinstance(v, date) else list(v) if isinstance(v, tuple) else v
        for k, v in data.items()
    }


def _choices_from_session(data: dict) -> MandateChoices:
    names = {f.name for f in fields(MandateChoices)}
    values = {}
    for name, value in data.items():
        if name not in names:
            continue  # a field of an older release: ignore it rather than fail the member's session
        if name in ("valid_from", "valid_until"):
            value = date.fromisoformat(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return MandateChoices(**values)


@login_required
@require_http_methods(["GET", "POST"])
def mandate_new(request, reference: str):
    member = _own_member(request, reference)
    replacing = member.mandates.filter(state=Mandate.State.ACTIVE).first()
    # Changing a mandate starts from what it says now.
    defaults = services.choices_of(replacing) if replacing else services.default_choices(member)
    saved = request.session.get(SESSION_CHOICES, {}).get(member.reference)
    start = _choices_from_session(saved) if saved else defaults
    initial = {
        "rights": list(start.rights),
        # Nothing is chosen for a newcomer; a change starts from what the member signed before.
        "scope": ("all" if start.all_controllers else "some") if start.controller_ids else None,
        "controllers": [] if start.all_controllers else [str(c) for c in start.controller_ids],
        "purposes": [str(p) for p in start.purpose_ids],
        "valid_until": start.valid_until,
        "send_responses_to": start.send_responses_to,
        "may_complain_to_controllers": start.may_complain_to_controllers,
        "may_represent_before_ico": start.may_represent_before_ico,
        "may_represent_in_court": start.may_represent_in_court,
        "irreversible_without_asking": start.irreversible_without_asking,
    }
    form = MandateChoicesForm(
        request.POST if request.method == "POST" else None, initial=initial, community=member.community
    )
    if request.method == "POST" and form.is_valid():
        stash = request.session.get(SESSION_CHOICES, {})
        stash[member.reference] = _choices_to_session(form.choices())
        request.session[SESSION_CHOICES] = stash
        return redirect("mandate-review", reference=member.reference)
    return render(
        request,
        "communities/mandate_new.html",
        {"member": member, "community": member.community, "form": form, "replacing": replacing},
    )


@login_required
@require_http_methods(["GET", "POST"])
def mandate_review(request, reference: str):
    member = _own_member(request, reference)
    saved = request.session.get(SESSION_CHOICES, {}).get(member.reference)
    if not saved:
        return redirect("mandate-new", reference=member.reference)
    choices = _choices_from_session(saved)
    text = render_mandate_text(member=member, choices=choices)
    data = request.POST if request.method == "POST" else None
    form = SignForm(data, initial={"text_sha256": text_sha256(text)})
    no_longer_covered = services.requests_no_longer_covered(member=member, choices=choices)
    ending = EndingForm(data, requests=no_longer_covered, answer_to=member.user.email, prefix="ending")
    if request.method == "POST" and form.is_valid() and ending.is_valid():
        try:
            mandate = services.mandate_sign(
                member=member,
                choices=choices,
                shown_text_sha256=form.cleaned_data["text_sha256"],
                signed_name=form.cleaned_data["signed_name"],
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                keep=ending.kept(),
                answer_to=ending.cleaned_data.get("answer_to", ""),
            )
        except services.CommunityError as error:
            form.add_error("signed_name" if "full name" in str(error) else None, str(error))
        else:
            request.session[SESSION_CHOICES] = {
                k: v for k, v in request.session.get(SESSION_CHOICES, {}).items() if k != member.reference
            }
            messages.success(
                request, f"Mandate {mandate.reference} signed. A sealed copy is on its way to your inbox."
            )
            return redirect("mandate-detail", reference=mandate.reference)
    return render(
        request,
        "communities/mandate_review.html",
        {
            "member": member,
            "community": member.community,
            "form": form,
            "text": text,
            "text_sha256": text_sha256(text),
            "replacing": member.mandates.filter(state=Mandate.State.ACTIVE).first(),
            "no_longer_covered": no_longer_covered,
            "ending": ending,
            "choices": [ending[f"r{r.pk}"] for r in ending.requests],
        },
    )


@login_required
def mandate_detail(request, reference: str):
    mandate = _own_mandate(request, reference)
    requests = mandate.requests.select_related("controller").order_by("controller__name", "right")
    return render(
        request,
        "communities/mandate_detail.html",
        {
            "mandate": mandate,
            "member": mandate.member,
            "community": mandate.member.community,
            "requests": requests,
            "controllers": mandate.controllers.order_by("name"),
            "purposes": mandate.purposes.order_by("name"),
        },
    )


@login_required
def mandate_pdf(request, reference: str):
    mandate = _own_mandate(request, reference)
    if not mandate.pdf:
        raise Http404("The PDF is still being prepared.")
    return FileResponse(
        mandate.pdf.open("rb"),
        as_attachment=True,
        filename=f"mandate-{mandate.reference}.pdf",
        content_type="application/pdf",
    )


@login_required
@require_http_methods(["GET", "POST"])
def mandate_revoke(request, reference: str):
    mandate = _own_mandate(request, reference)
    if mandate.state != Mandate.State.ACTIVE:
        messages.info(
            request, f"Mandate {mandate.reference} is already {mandate.get_state_display().lower()}."
        )
        return redirect("mandate-detail", reference=mandate.reference)
    open_requests = list(
        DataRightsRequest.objects.filter(mandate__in=services.mandate_lineage(mandate), state__in=OPEN_STATES)
        .select_related("controller")
        .order_by("controller__name", "right")
    )
    form = RevokeForm(
        request.POST if request.method == "POST" else None,
        requests=open_requests,
        answer_to=mandate.member.user.email,
    )
    if request.method == "POST" and form.is_valid():
        try:
            withdrawn = services.mandate_revoke(
                mandate_id=mandate.pk,
                actor=Actor(Actor.MEMBER, str(mandate.member_id)),
                reason=form.cleaned_data["reason"],
                keep=form.kept(),
                answer_to=form.cleaned_data.get("answer_to", ""),
            )
        except services.CommunityError as error:
            form.add_error(None, str(error))
        else:
            kept = len(form.kept())
            said = [f"Mandate {mandate.reference} is revoked."]
            if withdrawn:
                said.append(f"{withdrawn} open request(s) were withdrawn.")
            if kept:
                said.append(
                    f"{kept} request(s) are now your own: the organisations will answer you directly."
                )
            if withdrawn or kept:
                said.append("The organisations that have them are being told.")
            messages.success(request, " ".join(said))
            return redirect("mandate-detail", reference=mandate.reference)
    return render(
        request,
        "communities/mandate_revoke.html",
        {
            "mandate": mandate,
            "member": mandate.member,
            "community": mandate.member.community,
            "form": form,
            "open_count": len(open_requests),
            "choices": [form[f"r{r.pk}"] for r in form.requests],
            "unsent": len(open_requests) - len(form.requests),
        },
    )


@login_required
def account_export(request):
    archive = services.account_export(user=request.user)
    # Streamed from its temporary file (closed when sent); personal data, so no cache keeps a copy.
    return download(
        archive, name=f"my-data-{timezone.localdate():%Y-%m-%d}.zip", content_type="application/zip"
    )


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request):
    form = DeleteAccountForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        from django.contrib.auth import logout

        summary = services.account_delete(user=request.user)
        logout(request)
        messages.success(
            request,
            f"Your account is deleted. {summary['requests_withdrawn']} open request(s) were withdrawn.",
        )
        return redirect("home")
    pending = DataRightsRequest.objects.filter(
        member__user=request.user,
        state__in=[RequestState.COMPLAINT_TO_CONTROLLER, RequestState.ESCALATED_TO_ICO],
    ).count()
    return render(request, "communities/account_delete.html", {"form": form, "pending_complaints": pending})


def privacy(request):
    return render(request, "communities/privacy.html", {"retention_days": 90})


def mandate_check(request):
    """Where a controller pastes a check link or token (the QR code leads straight past it)."""
    value = (request.GET.get("link") or "").strip()
    error = ""
    if value:
        token = value.rstrip("/").rsplit("/", 1)[-1]
        known = Authority.objects.filter(token=token).exists()
        if known or Mandate.objects.filter(verification_token=token).exists():
            return redirect("mandate-verify", token=token)
        error = "No mandate has this check link. Copy the whole link from the letter or the PDF."
    return render(request, "communities/mandate_check.html", {"value": value, "error": error})


def _in_force(mandate: Mandate) -> bool:
    today = timezone.localdate()
    return mandate.state == Mandate.State.ACTIVE and mandate.valid_from <= today <= mandate.valid_until


def mandate_verify(request, token: str):
    """Public: lets a controller check its authority document without asking us, and see a revocation at
    once. A controller's link shows only what concerns it; a mandate's own link (the member's) names no
    organisation, since whoever holds it may be any of them."""
    authority = (
        Authority.objects.select_related("mandate__member__community", "controller")
        .filter(token=token)
        .first()
    )
    if authority is not None:
        mandate = authority.mandate
        context = {**authority_context(authority), "in_force": _in_force(mandate)}
        if mandate.state == Mandate.State.REPLACED and mandate.replaced_by:
            successor = mandate.replaced_by
            if successor.controllers.filter(pk=authority.controller_id).exists():
                context["successor"] = authority_issue(mandate=successor, controller=authority.controller)
        response = render(request, "communities/authority_verify.html", context)
    else:
        mandate = get_object_or_404(
            Mandate.objects.select_related("member__community"), verification_token=token
        )
        response = render(
            request,
            "communities/mandate_verify.html",
            {
                "mandate": mandate,
                "community": mandate.member.community,
                "in_force": _in_force(mandate),
                "rights": [label for value, label in Right.choices if value in mandate.rights],
                "organisation_count": mandate.controllers.count(),
            },
        )
    response["X-Robots-Tag"] = "noindex"
    return response
