from __future__ import annotations

import re
from datetime import timedelta
from typing import cast

from django import forms
from django.core.validators import EmailValidator
from django.utils import timezone

from .mandate_text import MandateChoices
from .models import Community, Identifier, Mandate, Member, Right

MAX_MANDATE_DAYS = 3 * 366  # a mandate is for a defined period; three years at most


class JoinForm(forms.Form):
    full_name = forms.CharField(
        max_length=200,
        label="Your full name",
        help_text="As the organisations we write to know you. It appears in your mandate.",
        widget=forms.TextInput(attrs={"autocomplete": "name", "spellcheck": "false"}),
        error_messages={"required": "Enter your full name"},
    )


def _check_identifier(kind: str, value: str) -> str:
    value = value.strip()
    if kind == Identifier.Kind.EMAIL:
        EmailValidator(message="Enter an email address in the correct format, like name@example.com")(value)
    elif kind == Identifier.Kind.PHONE:
        digits = re.sub(r"[\s()+\-.]", "", value)
        if not digits.isdigit() or not 7 <= len(digits) <= 15:
            raise forms.ValidationError("Enter a phone number, like 07700 900 982 or +44 7700 900 982")
    elif kind == Identifier.Kind.POSTAL_ADDRESS and len(value) < 8:
        raise forms.ValidationError("Enter the full postal address, including the postcode")
    return value


_TYPE_TO_KIND = {
    "email": Identifier.Kind.EMAIL,
    "name": Identifier.Kind.NAME,
    "address": Identifier.Kind.POSTAL_ADDRESS,
    "phone": Identifier.Kind.PHONE,
}


class IdentifiersForm(forms.Form):
    """One field per thing each controller in scope needs to find the member (the directory's
    `required-elements`), else the email address used there; account id and phone are optional."""

    def __init__(self, *args, member, **kwargs):
        super().__init__(*args, **kwargs)
        self.member = member
        self.slots: list[tuple[str, int | None, str, str]] = []  # (field, controller id, kind, label)
        existing = {(i.controller_id, i.kind, i.label): i.value for i in member.identifiers.all()}
        default_email = member.user.email
        for controller in member.community.controllers.order_by("name"):
            needed = [e for e in controller.required_identifiers if isinstance(e, dict)]
            wanted = [
                (
                    _TYPE_TO_KIND.get(e.get("type", ""), Identifier.Kind.OTHER),
                    str(e.get("desc") or ""),
                    not e.get("optional", False),
                )
                for e in needed
                if e.get("type") != "name"  # the name is in the mandate already
            ] or [(Identifier.Kind.EMAIL, "Email address you use there", True)]
            wanted += [(Identifier.Kind.ACCOUNT_ID, "Account or customer number (optional)", False)]
            for index, (kind, label, required) in enumerate(wanted):
                name = f"c{controller.pk}_{index}"
                initial = existing.get((controller.pk, kind, label), default_email if kind == "email" else "")
                self.fields[name] = forms.CharField(
                    label=f"{controller.name}: {label or Identifier.Kind(kind).label}",
                    required=required,
                    max_length=500,
                    initial=initial,
                    widget=forms.Textarea(attrs={"rows": 3})
                    if kind == "postal_address"
                    else forms.TextInput(
                        attrs={
                            "autocomplete": {"email": "email", "phone": "tel"}.get(kind, "off"),
                            "spellcheck": "false",
                        }
                    ),
                )
                self.fields[name].error_messages["required"] = (
                    f"Enter {(label or kind).lower()} for {controller.name}"
                )
                self.slots.append((name, controller.pk, kind, label))

    def clean(self):
        data = super().clean() or {}
        for name, _controller_id, kind, _label in self.slots:
            value = data.get(name)
            if value:
                try:
                    data[name] = _check_identifier(kind, value)
                except forms.ValidationError as error:
                    self.add_error(name, error)
        return data

    def entries(self) -> list[tuple[int | None, str, str, str]]:
        return [(cid, kind, label, self.cleaned_data.get(name, "")) for name, cid, kind, label in self.slots]


class MandateChoicesForm(forms.Form):
    rights = forms.MultipleChoiceField(
        choices=Right.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Which rights may the community use for you?",
        error_messages={"required": "Select at least one right"},
    )
    scope = forms.ChoiceField(
        choices=[("all", "All the community's controllers"), ("some", "Only the ones I choose below")],
        widget=forms.RadioSelect,
        initial="all",
        label="Against which organisations?",
    )
    controllers = forms.MultipleChoiceField(
        choices=(), widget=forms.CheckboxSelectMultiple, required=False, label="Organisations"
    )
    purposes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        label="What for?",
        error_messages={"required": "Say what the community may act for"},
        help_text="The purpose is quoted in the mandate and in every letter.",
    )
    valid_until = forms.DateField(
        error_messages={"required": "Enter the end date", "invalid": "Enter a real date, like 31 12 2027"},
        label="Until when?",
        help_text="At most three years from today. You can revoke it at any time before.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    send_responses_to = forms.ChoiceField(
        choices=Mandate.ResponsesTo.choices,
        widget=forms.RadioSelect,
        label="Where should answers go?",
        error_messages={"required": "Choose where answers should go"},
    )
    may_complain_to_controllers = forms.BooleanField(
        required=False,
        label="The community may complain to an organisation for me if it does not answer properly",
    )
    may_represent_before_ico = forms.BooleanField(
        required=False,
        label="The community may complain to the ICO for me (Article 80(1) UK GDPR)",
    )

    def __init__(self, *args, community: Community, **kwargs):
        super().__init__(*args, **kwargs)
        self.community = community
        cast(forms.ChoiceField, self.fields["rights"]).choices = [
            c for c in Right.choices if c[0] in (community.rights or Right.values)
        ]
        cast(forms.ChoiceField, self.fields["controllers"]).choices = [
            (str(c.pk), c.name) for c in community.controllers.order_by("name")
        ]

    def clean_valid_until(self):
        value = self.cleaned_data["valid_until"]
        today = timezone.localdate()
        if value <= today:
            raise forms.ValidationError("The end date must be in the future")
        if value > today + timedelta(days=MAX_MANDATE_DAYS):
            raise forms.ValidationError("The end date must be within three years")
        return value

    def clean(self):
        data = super().clean() or {}
        if data.get("scope") == "some" and not data.get("controllers"):
            self.add_error("controllers", "Select at least one organisation, or choose all of them")
        return data

    def choices(self) -> MandateChoices:
        data = self.cleaned_data
        return MandateChoices(
            rights=tuple(r for r in Right.values if r in data["rights"]),
            controller_ids=None
            if data["scope"] == "all"
            else tuple(sorted(int(c) for c in data["controllers"])),
            purposes=" ".join(data["purposes"].split()),
            valid_from=timezone.localdate(),
            valid_until=data["valid_until"],
            send_responses_to=data["send_responses_to"],
            may_complain_to_controllers=data["may_complain_to_controllers"],
            may_represent_before_ico=data["may_represent_before_ico"],
        )


class SignForm(forms.Form):
    text_sha256 = forms.CharField(widget=forms.HiddenInput, max_length=64)
    signed_name = forms.CharField(
        label="Type your full name to sign",
        error_messages={"required": "Type your full name to sign"},
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    confirm = forms.BooleanField(
        label="I have read this mandate and I give this authority",
        error_messages={"required": "Confirm that you have read the mandate and give this authority"},
    )


class RevokeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=1000,
        label="Why are you revoking it? (optional)",
    )


class DeleteAccountForm(forms.Form):
    confirm = forms.BooleanField(
        label="I understand, delete my account",
        error_messages={"required": "Confirm that you want to delete your account"},
    )


class NotificationsForm(forms.Form):
    notifications = forms.ChoiceField(
        choices=Member.Notifications.choices,
        widget=forms.RadioSelect,
        label="How should we email you about your requests?",
        help_text="Whichever you choose, everything we tell you is also listed on this page.",
        error_messages={
            "required": "Choose how often we email you",
            "invalid_choice": "Choose an email at each step or one email a day",
        },
    )
