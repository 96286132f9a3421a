from __future__ import annotations

import re
from datetime import timedelta
from typing import cast

from django import forms
from django.core.validators import EmailValidator, MaxLengthValidator
from django.utils import timezone

from requests_engine.models import HANDOVER_STATES

from .mandate_text import MandateChoices
from .models import IRREVERSIBLE_RIGHTS, Community, Identifier, Mandate, Member, Right

MAX_MANDATE_DAYS = 3 * 366  # a mandate is for a defined period; three years at most


NAME_MAX = Member._meta.get_field("full_name").max_length or 200


class JoinForm(forms.Form):
    # A validator rather than max_length: max_length puts maxlength on the input, and the browser then cuts a
    # long pasted name silently; the member must see why instead.
    full_name = forms.CharField(
        validators=[
            MaxLengthValidator(NAME_MAX, message=f"Enter your full name in {NAME_MAX} characters or fewer")
        ],
        label="Your full name",
        help_text="As the organisations we write to know you. It appears in your mandate.",
        widget=forms.TextInput(attrs={"autocomplete": "name", "spellcheck": "false"}),
        error_messages={"required": "Enter your full name"},
    )


class NameForm(forms.Form):
    full_name = forms.CharField(
        validators=[
            MaxLengthValidator(NAME_MAX, message=f"Enter your full name in {NAME_MAX} characters or fewer")
        ],
        label="Your full name",
        help_text="As the organisations we write to know you.",
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
        known = list(member.identifiers.all())
        existing = {(i.controller_id, i.kind, i.label): i.value for i in known}
        checked = {i.value.casefold(): i for i in known if i.kind == Identifier.Kind.EMAIL}
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
                if kind == Identifier.Kind.EMAIL and str(initial).casefold() in checked:
                    self.fields[name].help_text = _check_status(checked[str(initial).casefold()])
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


def _check_status(identifier: Identifier) -> str:
    if identifier.verified_at:
        day = timezone.localdate(identifier.verified_at)
        return f"Checked on {day.day} {day:%B %Y}."
    if identifier.verification_sent_at:
        return "Not checked yet: we emailed a link to this address. You can skip it."
    return "Not checked yet."


# One plain sentence per right: what ticking it lets the community do (Art 12(1): clear and plain language).
RIGHT_SENTENCES = {
    Right.ACCESS: "Ask each organisation for a copy of the personal data it holds about me and what it does "
    "with it (right of access)",
    Right.PORTABILITY: "Ask for the data I gave an organisation in a file a computer can read, and have it "
    "sent on where I say (data portability)",
    Right.ERASURE: "Ask an organisation to delete my personal data (erasure). Deleted data cannot be "
    "brought back",
    Right.OBJECTION: "Tell an organisation to stop using my data for a purpose I object to, such as training "
    "AI (right to object)",
    Right.RECTIFICATION: "Ask an organisation to correct data about me that is wrong (rectification)",
    Right.RESTRICTION: "Ask an organisation to stop using my data, except to keep it, while a question is "
    "settled (restriction)",
}


class MandateChoicesForm(forms.Form):
    """Nothing is chosen for the member: consent is an unambiguous act (Art 4(11) and Art 7 UK GDPR;
    Planet49, C-673/17), so every box starts empty and every radio unselected."""

    rights = forms.MultipleChoiceField(
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        label="What may the community ask for you?",
        help_text="Tick each one you agree to.",
        error_messages={"required": "Select at least one thing the community may ask for you"},
    )
    scope = forms.ChoiceField(
        choices=[
            ("all", "All the organisations listed below, as the list stands today"),
            ("some", "Only the organisations I tick below"),
        ],
        widget=forms.RadioSelect,
        label="Which organisations may it write to for you?",
        help_text="Organisations added to the list later are not included unless you sign again.",
        error_messages={"required": "Choose which organisations the community may write to for you"},
    )
    controllers = forms.MultipleChoiceField(
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Organisations",
        error_messages={"invalid_choice": "Select organisations from the list"},
    )
    purposes = forms.MultipleChoiceField(
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        label="What may it act for?",
        help_text="Each purpose you tick is written into your mandate and into every letter sent for it.",
        error_messages={
            "required": "Select at least one purpose the community may act for",
            "invalid_choice": "Select purposes from the list",
        },
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
    # Offered only by a community with its Art 80(1) record (Art 80(1) UK GDPR, DPA 2018 s.187); see
    # __init__. Court is a separate opt-in again, offered only where the community enables it.
    may_represent_before_ico = forms.BooleanField(
        required=False,
        label="The community may complain to the Information Commissioner's Office (the UK regulator) for me "
        "and speak for me in that complaint",
    )
    may_represent_in_court = forms.BooleanField(
        required=False,
        label="The community may also take an organisation to court for me, including to claim compensation",
        help_text="A claim in court under Articles 79 and 82 UK GDPR (section 187 Data Protection Act 2018). "
        "Before any claim, the community explains to you what it could cost and what the risks are.",
    )

    irreversible_without_asking = forms.BooleanField(
        required=False,
        label="Send erasure and objection requests for me without asking me each time",
        help_text="Unless you tick this, we ask you before each campaign that would ask an organisation to "
        "delete your data or stop using it, and send nothing of that kind unless you say yes.",
    )

    def __init__(self, *args, community: Community, **kwargs):
        super().__init__(*args, **kwargs)
        self.community = community
        cast(forms.ChoiceField, self.fields["rights"]).choices = [
            (value, RIGHT_SENTENCES[Right(value)])
            for value in Right.values
            if value in (community.rights or Right.values)
        ]
        # Art 80(1) UK GDPR: only a community whose eligibility is recorded may represent members at all.
        self.offers_ico = community.art80_eligible
        self.offers_court = community.offers_court
        if not self.offers_ico:
            del self.fields["may_represent_before_ico"]
        if not self.offers_court:
            del self.fields["may_represent_in_court"]
        # The "without asking" choice only means something where the community may ask for either.
        self.offers_irreversible = bool(IRREVERSIBLE_RIGHTS & set(community.rights or Right.values))
        self.listed = list(community.controllers.order_by("name").values_list("pk", "name"))
        cast(forms.ChoiceField, self.fields["controllers"]).choices = [
            (str(pk), name) for pk, name in self.listed
        ]
        cast(forms.ChoiceField, self.fields["purposes"]).choices = [
            (str(p.pk), f"{p.name}: {p.text}") for p in community.purposes.order_by("name")
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
        everything = data["scope"] == "all"
        # "All of them" is stored and printed as the list of today (DESIGN §2).
        chosen = [pk for pk, _ in self.listed] if everything else [int(c) for c in data["controllers"]]
        return MandateChoices(
            rights=tuple(r for r in Right.values if r in data["rights"]),
            controller_ids=tuple(sorted(chosen)),
            all_controllers=everything,
            purpose_ids=tuple(sorted(int(p) for p in data["purposes"])),
            valid_from=timezone.localdate(),
            valid_until=data["valid_until"],
            send_responses_to=data["send_responses_to"],
            may_complain_to_controllers=data["may_complain_to_controllers"],
            may_represent_before_ico=self.offers_ico and data.get("may_represent_before_ico", False),
            may_represent_in_court=self.offers_court and data.get("may_represent_in_court", False),
            irreversible_without_asking=data["irreversible_without_asking"]
            and bool(IRREVERSIBLE_RIGHTS & set(data["rights"])),
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


class EndingForm(forms.Form):
    """For each open request an organisation already has, the member's choice when the community stops
    acting for them: it stays as their own request (answered to them directly) or is withdrawn. Nothing is
    chosen for them."""

    KEEP, WITHDRAW = "keep", "withdraw"

    def __init__(self, *args, requests=(), answer_to: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = [r for r in requests if r.state in HANDOVER_STATES]
        for request in self.requests:
            name = request.controller.name
            field = forms.ChoiceField(
                label=f"{request.get_right_display()} request to {name} ({request.reference})",
                choices=[
                    (self.KEEP, f"Keep it as my own request: {name} answers me directly"),
                    (self.WITHDRAW, f"Withdraw it: {name} stops working on it"),
                ],
                widget=forms.RadioSelect,
                error_messages={"required": f"Choose what happens to your request to {name}"},
            )
            self.fields[f"r{request.pk}"] = field
        if self.requests:
            self.fields["answer_to"] = forms.CharField(
                label="Where should organisations answer you?",
                help_text="An email or postal address. Only the organisations you keep a request with see it.",
                initial=answer_to,
                required=False,
                max_length=500,
            )

    def clean(self):
        data = super().clean() or {}
        if self.kept() and not (data.get("answer_to") or "").strip():
            self.add_error(
                "answer_to", "Enter the email or postal address where organisations should answer you"
            )
        return data

    def kept(self) -> list[int]:
        data = getattr(self, "cleaned_data", {})
        return [r.pk for r in self.requests if data.get(f"r{r.pk}") == self.KEEP]


class RevokeForm(EndingForm):
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
