from typing import cast

from django import forms

from communities.models import Right
from requests_engine.grounds import GROUNDS, grounds_for
from requests_engine.models import Art15Item, InformationKind, RefusalGround, RequestState


class EmailForm(forms.Form):
    email = forms.EmailField(
        label="Your work email address",
        help_text="The address our letters were sent to, or one a coordinator added for you.",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
        error_messages={
            "required": "Enter your email address",
            "invalid": "Enter an email address in the correct format, like name@example.com",
        },
    )


class FilterForm(forms.Form):
    state = forms.ChoiceField(
        required=False,
        label="State",
        choices=[("", "Any")]
        + [(s.value, s.label) for s in RequestState if s not in (RequestState.DRAFT, RequestState.QUEUED)],
    )
    right = forms.ChoiceField(required=False, label="Right", choices=[("", "Any")])
    campaign = forms.CharField(required=False, label="Campaign reference", max_length=16)
    due_before = forms.DateField(
        required=False, label="Due on or before", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, **kwargs):

        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["right"]).choices = [("", "Any")] + list(Right.choices)


class AnswerForm(forms.Form):
    """The request page shows every answer form at once: each gets its own ids (`refuse-ground`), or a label
    or an error link would lead to the same-named field of another form."""

    id_prefix = "answer"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"{self.id_prefix}-%s")
        super().__init__(*args, **kwargs)


class AskForm(AnswerForm):
    id_prefix = "ask"
    kind = forms.ChoiceField(
        choices=InformationKind.choices,
        widget=forms.RadioSelect,
        label="What do you need?",
        error_messages={"required": "Choose what you need"},
    )
    question = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        label="Your question",
        error_messages={"required": "Write your question"},
    )


class ExtendForm(AnswerForm):
    id_prefix = "extend"
    months = forms.TypedChoiceField(
        choices=[(1, "One month"), (2, "Two months")],
        coerce=int,
        widget=forms.RadioSelect,
        label="By how long?",
        error_messages={"required": "Choose how long"},
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        label="Your reasons",
        help_text="Art 12(3) UK GDPR: say why this member's requests are complex or numerous; other members' "
        "requests are not a ground.",
        error_messages={"required": "Give your reasons for the extension"},
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


def _art15_items_field(html_id: str) -> forms.MultipleChoiceField:
    # Shown for access requests only: the community checks the answer against this list (completeness.py).
    # Its own id: the fulfil and partly-fulfil forms share one page.
    return forms.MultipleChoiceField(
        choices=Art15Item.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"id": html_id}),
        label="What your answer provides (Art 15 UK GDPR)",
        help_text="Tick each item your answer includes. We check the answer against this list and ask for "
        "anything it lacks.",
    )


class FulfilForm(AnswerForm):
    id_prefix = "fulfil"
    # The form metaclass moves fields into base_fields, so this does not shadow BaseForm.files at run time.
    files = MultipleFileField(  # type: ignore[assignment]
        required=False, label="The data (you can choose several files, or one ZIP)"
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=4000,
        label="A note for the member (optional)",
    )
    art15_items = _art15_items_field("fulfil-art15-items")
    # Shown for erasure requests only; the answer path requires it there (Art 19 UK GDPR).
    recipients_told = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=4000,
        label="Who you told of the erasure",
        help_text="Article 19: name each recipient the data was disclosed to and say you told them, or say "
        "that it was disclosed to no one.",
    )


class NoDataForm(AnswerForm):
    id_prefix = "nodata"
    searches = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        label="What you searched, and under which identifiers",
        help_text="Art 15(1A) UK GDPR: a reasonable and proportionate search. The member sees this.",
        error_messages={"required": "Say what you searched, and under which identifiers"},
    )


class RefuseForm(AnswerForm):
    id_prefix = "refuse"
    ground = forms.ChoiceField(
        choices=(),
        label="Legal ground",
        error_messages={
            "required": "Choose the legal ground",
            "invalid_choice": "Choose one of the legal grounds listed for this right",
        },
    )

    def __init__(self, *args, right: str = "", direct_marketing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the grounds the law gives for this request, none preselected (grounds.py).
        offered = (
            grounds_for(right, direct_marketing=direct_marketing)
            if right
            else [(c, RefusalGround(c).label) for c in GROUNDS]
        )
        cast(forms.ChoiceField, self.fields["ground"]).choices = [("", "Choose the legal ground"), *offered]

    reasons = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=8000,
        label="Your reasons",
        error_messages={"required": "Give your reasons: Art 12(4) UK GDPR requires them"},
    )


class PartialForm(RefuseForm):
    id_prefix = "partial"
    files = MultipleFileField(required=False, label="The data you are providing")  # type: ignore[assignment]
    art15_items = _art15_items_field("partial-art15-items")


class BulkForm(forms.Form):
    references = forms.MultipleChoiceField(
        choices=(), label="Requests", error_messages={"required": "Select at least one request"}
    )
    action = forms.ChoiceField(
        choices=[("acknowledge", "Acknowledge"), ("extend", "Extend"), ("refuse", "Refuse")],
        error_messages={"required": "Choose what to do"},
    )
    months = forms.TypedChoiceField(choices=[(1, "One month"), (2, "Two months")], coerce=int, required=False)
    ground = forms.ChoiceField(
        choices=[("", "—")] + [(c, RefusalGround(c).label) for c in GROUNDS], required=False
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=8000,
        label="Reasons (for an extension or a refusal)",
    )

    def __init__(self, *args, references=(), **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["references"]).choices = [(r, r) for r in references]


class CsvForm(forms.Form):
    csv_file = forms.FileField(
        label="CSV file of actions (optional)",
        required=False,
        help_text="Columns: reference, action, months, reason, ground, kind, question",
    )
    answers_zip = forms.FileField(
        label="ZIP file of answers (optional)",
        required=False,
        help_text="A folder per request reference holding the files for that request, such as "
        "B1-M0-AC/data.json. On its own it fulfils each request named by a folder; with a CSV, a "
        "line may say partially_fulfil instead. All of it is applied, or none of it.",
    )

    def clean(self):
        cleaned = super().clean() or {}
        if not cleaned.get("csv_file") and not cleaned.get("answers_zip") and not self.errors:
            self.add_error("csv_file", "Choose a CSV file, a ZIP file of answers, or both")
        return cleaned
