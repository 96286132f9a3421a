"""Communities are tenants: the one place that says which communities a staff user works for, in which role,
what each role may do, and how each record reaches its community.

* A staff user holds a role in a community (`StaffMembership`): coordinator, caseworker or viewer.
  Superusers hold none and see everything.
* What a role may do is Django's permission system: one group per role ("Coordinator", "Caseworker",
  "Viewer") holding the model permissions of `ROLE_PERMISSIONS`, kept in step after every migrate.
  A user is in the groups of the roles they hold, so `user.has_perm("requests_engine.change_campaign")`
  answers "may they change campaigns at all".
* Whether they may do it to *this* record is a `rules` predicate: the permission must belong to the role the
  user holds in the record's own community, so `user.has_perm("requests_engine.change_campaign", campaign)`
  is False for another community's campaign, or for a campaign where the user is only a viewer.
* `scope(queryset, user)` keeps only the rows of the user's communities; every back-office list, page,
  action, dashboard figure and export starts from it. Controllers and their contacts (the directory) are
  shared by every community; the outbox follows the record each message is about; models this module does
  not name are for superusers only.

This module imports no requests_engine code: models are named by label, relations by lookup path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import rules
from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Cast

from communities.models import Community, Role, StaffMembership

_QS = TypeVar("_QS", bound=QuerySet)
User = AbstractBaseUser | AnonymousUser

GROUPS = {Role.COORDINATOR: "Coordinator", Role.CASEWORKER: "Caseworker", Role.VIEWER: "Viewer"}

# How each record reaches its community: lookup paths to a Community ("" for the community itself). A row
# belongs to the user's communities if any path leads to one of them.
TENANT_MODELS: dict[str, tuple[str, ...]] = {
    "communities.community": ("",),
    "communities.purpose": ("community",),
    "communities.invite": ("community",),
    "communities.invitation": ("community",),
    "communities.member": ("community",),
    "communities.identifier": ("member__community",),
    "communities.mandate": ("member__community",),
    "communities.notice": ("member__community",),
    "requests_engine.campaign": ("community",),
    "requests_engine.batch": ("campaign__community",),
    "requests_engine.datarightsrequest": ("member__community",),
    "requests_engine.receivedfile": ("request__member__community",),
    "requests_engine.complaint": ("community",),
    "requests_engine.inboundmessage": ("request__member__community", "batch__campaign__community"),
    "requests_engine.requestevent": (
        "request__member__community",
        "campaign__community",
        "batch__campaign__community",
        "mandate__member__community",
        "complaint__community",
    ),
}
# Records that belong to no community yet: a reply the mailbox could not match. On an installation with one
# community they are its own; with several, only superusers see them (and attach them where they belong).
UNASSIGNED: dict[str, Q] = {"requests_engine.inboundmessage": Q(request__isnull=True, batch__isnull=True)}
# The outbox names what each message is about generically (core imports no app): (subject_type, subject_id).
# A message belongs to the community of the record it is about; those about a controller, a contact or an
# account, and members' daily digests, are for superusers.
OUTBOX = "core.outboundmessage"
OUTBOX_SUBJECTS = {
    "request": ("requests_engine.datarightsrequest", "pk"),
    "batch": ("requests_engine.batch", "pk"),
    "complaint": ("requests_engine.complaint", "pk"),
    "mandate": ("communities.mandate", "pk"),
    "notice": ("communities.notice", "pk"),
    "member": ("communities.member", "reference"),
}
# Shared by every community on the installation: the controller directory.
SHARED_MODELS = frozenset({"requests_engine.controller", "requests_engine.controllercontact"})

LAUNCH = "communities.launch_campaigns"
APPROVE = "communities.approve_escalations"


def _perms(model: str, *actions: str) -> set[str]:
    app, name = model.split(".")
    return {f"{app}.{action}_{name}" for action in actions}


_VIEWER = set().union(*(_perms(model, "view") for model in (*TENANT_MODELS, *SHARED_MODELS, OUTBOX)))
_CASEWORKER = _VIEWER | set().union(
    _perms("requests_engine.datarightsrequest", "change"),  # record answers, questions, extensions
    _perms("requests_engine.inboundmessage", "change"),  # attach or dismiss replies
    _perms("communities.member", "change"),
    _perms("communities.identifier", "add", "change", "delete"),
)
_COORDINATOR = (
    _CASEWORKER
    | {LAUNCH, APPROVE}
    | set().union(
        _perms("communities.community", "change"),
        _perms("communities.purpose", "add", "change"),
        _perms("communities.invite", "add", "change", "delete"),
        _perms("communities.invitation", "add", "change"),  # import the membership list, print letters
        _perms("requests_engine.campaign", "add", "change"),
        _perms("requests_engine.batch", "change"),
        _perms("requests_engine.complaint", "change"),
        _perms("requests_engine.receivedfile", "change"),
        _perms("requests_engine.controller", "add", "change"),
        _perms("requests_engine.controllercontact", "add", "change"),
        _perms(OUTBOX, "change"),  # send a failed message again
    )
)
# What each role may do, as Django permissions "app_label.codename"; its group holds exactly these.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.CASEWORKER: frozenset(_CASEWORKER),
    Role.COORDINATOR: frozenset(_COORDINATOR),
}


# -- who works where ----------------------------------------------------------------------------------------


def _roles(user: Any) -> dict[int, str]:
    """community id → role, read once per user object (one request)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return {}
    cached = getattr(user, "_tenancy_roles", None)
    if cached is None:
        cached = dict(StaffMembership.objects.filter(user=user).values_list("community_id", "role"))
        user._tenancy_roles = cached
    return cached


def _forget(user: Any) -> None:
    # Our roles, and ModelBackend's permission caches, are read again on the next check.
    for cache in ("_tenancy_roles", "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        if hasattr(user, cache):
            delattr(user, cache)


def communities_of(user: Any) -> QuerySet[Community]:
    """The communities whose back office this user works in (every one, for a superuser)."""
    if getattr(user, "is_superuser", False) and user.is_active:
        return Community.objects.all()
    return Community.objects.filter(pk__in=list(_roles(user)))


def role_in(user: Any, community: Community | int | None) -> str | None:
    """The user's role in this community, or None. A superuser's is None too: check is_superuser first."""
    if community is None:
        return None
    community_id = community if isinstance(community, int) else community.pk
    return _roles(user).get(community_id)


def community_ids_where(user: Any, perm: str) -> list[int]:
    """The communities in which the user's role grants `perm` ("app_label.codename")."""
    return [cid for cid, role in _roles(user).items() if perm in ROLE_PERMISSIONS.get(role, ())]


def is_tenant_model(model: type[models.Model]) -> bool:
    return model._meta.label_lower in TENANT_MODELS or model._meta.label_lower == OUTBOX


def _outbox_in(ids: list[int]) -> Q:
    """Outbox messages about a record of these communities, or a community summary ("<id>:<day>")."""
    q = Q(pk__in=[])
    for subject_type, (label, key) in OUTBOX_SUBJECTS.items():
        model = apps.get_model(label)
        keys = model._default_manager.filter(_in(model, ids)).annotate(
            _key=Cast(key, output_field=models.CharField())
        )
        q |= Q(subject_type=subject_type, subject_id__in=keys.values("_key"))
    for community_id in ids:
        q |= Q(subject_type="community", subject_id__startswith=f"{community_id}:")
    return q


def _outbox_community(message: Any) -> Community | None:
    if message.subject_type == "community":
        community_id = message.subject_id.split(":", 1)[0]
        return Community.objects.filter(pk=community_id).first() if community_id.isdigit() else None
    if message.subject_type not in OUTBOX_SUBJECTS:
        return None
    label, key = OUTBOX_SUBJECTS[message.subject_type]
    if key == "pk" and not message.subject_id.isdigit():
        return None
    record = apps.get_model(label)._default_manager.filter(**{key: message.subject_id}).first()
    return community_of(record) if record is not None else None


def community_of(obj: models.Model) -> Community | None:
    """The community a record belongs to, following its paths in TENANT_MODELS (None if it has none)."""
    if obj._meta.label_lower == OUTBOX:
        return _outbox_community(obj)
    for path in TENANT_MODELS.get(obj._meta.label_lower, ()):
        target: Any = obj
        for step in path.split("__") if path else []:
            target = getattr(target, step, None)
            if target is None:
                break
        if isinstance(target, Community):
            return target
    if obj._meta.label_lower in UNASSIGNED:
        return _only_community()
    return None


def _only_community() -> Community | None:
    communities = list(Community.objects.all()[:2])
    return communities[0] if len(communities) == 1 else None


def _in(model: type[models.Model], ids: Iterable[int] | QuerySet) -> Q:
    q = Q(pk__in=[])
    for path in TENANT_MODELS[model._meta.label_lower]:
        q |= Q(**{f"{path}__in" if path else "pk__in": ids})
    return q


def scope(queryset: _QS, user: Any, *, perm: str | None = None) -> _QS:
    """THE tenant filter: the rows of `queryset` in the user's communities (all of them for a superuser),
    or, with `perm`, only in those where the user's role grants it. Shared models pass through; any other
    model is for superusers only."""
    if getattr(user, "is_superuser", False) and user.is_active:
        return queryset
    label = queryset.model._meta.label_lower
    if label in SHARED_MODELS:
        return queryset
    if label not in TENANT_MODELS and label != OUTBOX:
        return queryset.none()
    ids = community_ids_where(user, perm) if perm else list(_roles(user))
    if label == OUTBOX:
        return queryset.filter(_outbox_in(ids))
    q = _in(queryset.model, ids)
    only = _only_community() if label in UNASSIGNED and ids else None
    if only is not None and only.pk in ids:
        q |= UNASSIGNED[label]
    return queryset.filter(q)


# -- the object-level rules ---------------------------------------------------------------------------------


def _granted(perm: str) -> rules.Predicate:
    @rules.predicate(name=f"granted in the record's community: {perm}")
    def check(user: Any, obj: models.Model | None = None) -> bool:
        # Without a record, the role groups answer (Django's ModelBackend); this rule only says "here".
        if obj is None:
            return False
        community = community_of(obj)
        role = role_in(user, community)
        return role is not None and perm in ROLE_PERMISSIONS[role]

    return check


def may(user: Any, perm: str, obj: models.Model) -> bool:
    """May this user do `perm` to this record: their role holds it and holds it in the record's community.
    Shared records need only the permission."""
    if not user.has_perm(perm):
        return False
    if obj._meta.label_lower in SHARED_MODELS:
        return True
    return bool(user.has_perm(perm, obj))


def _register_rules() -> None:
    every = set().union(*ROLE_PERMISSIONS.values())
    for perm in sorted(every):
        app, codename = perm.split(".")
        model = f"{app}.{codename.split('_', 1)[1]}"
        if perm in (LAUNCH, APPROVE) or model in TENANT_MODELS or model == OUTBOX:
            rules.set_perm(perm, _granted(perm))


_register_rules()


# -- keeping groups and memberships in step -----------------------------------------------------------------


def role_groups_sync(**kwargs: object) -> None:
    """Each role's group holds exactly the permissions of ROLE_PERMISSIONS. Run after every migrate, for
    every app's signal: permissions are created app by app, so the last run sees them all."""
    for role, name in GROUPS.items():
        group = Group.objects.get_or_create(name=name)[0]
        wanted = ROLE_PERMISSIONS[role]
        found = [
            p
            for p in Permission.objects.select_related("content_type").filter(
                codename__in={perm.split(".")[1] for perm in wanted}
            )
            if f"{p.content_type.app_label}.{p.codename}" in wanted
        ]
        group.permissions.set(found)


def staff_groups_sync(*, user: Any) -> None:
    """The user is in the groups of the roles they hold, and in no other role group; holding a role makes
    them staff (the back office needs it)."""
    _forget(user)
    held = set(StaffMembership.objects.filter(user=user).values_list("role", flat=True))
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in GROUPS.values()}
    user.groups.remove(*[groups[GROUPS[Role(r)]] for r in GROUPS if r not in held])
    user.groups.add(*[groups[GROUPS[Role(r)]] for r in held])
    if held and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@transaction.atomic
def staff_role_grant(*, user: Any, community: Community, role: str) -> StaffMembership:
    """Give the user this role in the community (replacing any other role they held there)."""
    membership, _ = StaffMembership.objects.update_or_create(
        user=user, community=community, defaults={"role": Role(role)}
    )
    staff_groups_sync(user=user)
    return membership


@transaction.atomic
def staff_role_revoke(*, user: Any, community: Community) -> None:
    StaffMembership.objects.filter(user=user, community=community).delete()
    staff_groups_sync(user=user)
