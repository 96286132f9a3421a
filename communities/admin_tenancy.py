"""The back office keeps each community's records to its own staff: one mixin for every model admin (and one
for inlines) that asks communities/tenancy.py. Lists, change pages, history and delete pages, autocomplete,
foreign-key choices, list filters and actions all start from the tenant queryset; "may they change this one"
is the user's role in the record's community. Custom views load their record with `tenant_object_or_404`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import RelatedOnlyFieldListFilter
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import Http404, HttpRequest

from communities import tenancy
from communities.admin_widgets import LabelledSplitDateTime


def _perm(model: type[models.Model], action: str) -> str:
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def _allows(request: HttpRequest, model: type[models.Model], action: str, obj: Any) -> bool:
    """Model-level permission was checked by Django; this adds "in this record's community"."""
    if obj is None or request.user.is_superuser or not tenancy.is_tenant_model(model):
        return True
    return request.user.has_perm(_perm(model, action), obj)


class TenantAdminMixin(admin.ModelAdmin):
    """Put first in the bases of every model admin of a community's records (or a shared one)."""

    # Every back-office page's date-and-time fields label their date and time inputs.
    formfield_overrides = {models.DateTimeField: {"widget": LabelledSplitDateTime}}

    def get_queryset(self, request: HttpRequest):
        return tenancy.scope(super().get_queryset(request), request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and (
            _allows(request, self.model, "view", obj) or _allows(request, self.model, "change", obj)
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _allows(request, self.model, "change", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _allows(request, self.model, "delete", obj)

    def may(self, request: HttpRequest, perm: str, obj: models.Model) -> bool:
        """For buttons and steps that need more than "change": launch, approve (tenancy.LAUNCH, .APPROVE)."""
        return tenancy.may(request.user, perm, obj)

    def tenant_object_or_404(self, request: HttpRequest, object_id: Any, *, perm: str | None = None):
        """The record if it is in the user's communities (and `perm` is theirs there), else 404: another
        community's records do not exist for this user."""
        obj = self.get_object(request, str(object_id))
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404
        if perm is not None and not tenancy.may(request.user, perm, obj):
            raise Http404
        return obj

    def tenant_actionable(self, request: HttpRequest, queryset, perm: str):
        """The selected rows on which the user's role grants `perm` (an admin action's queryset is already
        limited to the user's communities; this drops those where they only read)."""
        return tenancy.scope(queryset, request.user, perm=perm)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", self._choices(db_field, request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", self._choices(db_field, request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _choices(self, db_field, request: HttpRequest):
        related = db_field.remote_field.model
        queryset = related._default_manager.all()
        if related is tenancy.Community:
            # A record may be put only in a community where the user may add or change such records.
            ids = set(tenancy.community_ids_where(request.user, _perm(self.model, "add")))
            ids |= set(tenancy.community_ids_where(request.user, _perm(self.model, "change")))
            return queryset if request.user.is_superuser else queryset.filter(pk__in=ids)
        # Shared records (the directory) pass through; anyone else's, and users, are scoped or hidden.
        return tenancy.scope(queryset, request.user)

    def get_list_filter(self, request: HttpRequest):
        # A plain related filter lists every community's campaigns or communities by name: offer only those
        # that occur in the user's own rows.
        filters: list[Any] = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str):
                try:
                    field = get_fields_from_path(self.model, entry)[-1]
                except (FieldDoesNotExist, NotRelationField):
                    field = None
                if field is not None and field.is_relation and field.related_model is not None:
                    if field.related_model._meta.label_lower not in tenancy.SHARED_MODELS:
                        entry = (entry, RelatedOnlyFieldListFilter)
            filters.append(entry)
        return filters


class TenantInlineMixin(admin.options.InlineModelAdmin):
    """Inlines on a community's record: editable only where the parent record may be changed."""

    def _parent_allows(self, request: HttpRequest, obj: Any) -> bool:
        return obj is None or _allows(request, self.parent_model, "change", obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) and self._parent_allows(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self._parent_allows(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self._parent_allows(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if related._meta.label_lower not in tenancy.SHARED_MODELS:
            kwargs.setdefault("queryset", tenancy.scope(related._default_manager.all(), request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
