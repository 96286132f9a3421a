from django import forms
from django.utils import timezone

from communities.models import Right
from requests_engine.models import Art15Item, Campaign, InformationKind, RefusalGround


def _today():
    return timezone.localdate()


class ExtendForm(forms.Form):
    months = forms.TypedChoiceField(choices=[(1, "One month"), (2, "Two months")], coerce=int)
    reason = forms.CharField(widget=forms.Textarea, help_text="The controller's stated reasons (required).")
    noticed_on = forms.DateField(
        initial=_today, help_text="When the controller gave notice of the extension."
    )


class AskForInformationForm(forms.Form):
    kind = forms.ChoiceField(choices=InformationKind.choices)
    question = forms.CharField(widget=forms.Textarea)
    asked_on = forms.DateField(initial=_today)


class GiveInformationForm(forms.Form):
    received_on = forms.DateField(initial=_today, help_text="When the controller received the information.")
    answer = forms.CharField(widget=forms.Textarea, required=False)


class AnswerForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea, required=False)
    answered_on = forms.DateField(initial=_today)


class RefusalForm(forms.Form):
    ground = forms.ChoiceField(choices=RefusalGround.choices)
    reasons = forms.CharField(widget=forms.Textarea, help_text="The reasons the controller gave (Art 12(4)).")
    answered_on = forms.DateField(initial=_today)


class NoteForm(forms.Form):
    outcome = forms.CharField(widget=forms.Textarea, required=False)


class WithdrawForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea, required=False)


class EscalateForm(forms.Form):
    case_reference = forms.CharField(required=False, help_text="The ICO's case reference, if known.")


class CampaignAdminForm(forms.ModelForm):
    """Rights as checkboxes rather than raw JSON."""

    rights = forms.MultipleChoiceField(choices=Right.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Campaign
        fields = ["community", "name", "rights", "controllers", "purpose", "member_note"]


class ChecklistForm(forms.Form):
    """The Art 15 checklist of an access answer (completeness.py): anything left unticked is missing."""

    present = forms.MultipleChoiceField(
        choices=Art15Item.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="What the answer contains",
        help_text="Tick each item found in the controller's answer. Anything left unticked is missing, and "
        "the follow-up letter asks the controller for it.",
    )


class PostedForm(forms.Form):
    posted_on = forms.DateField(initial=_today, help_text="The day the pack went in the post.")
    received_on = forms.DateField(
        required=False,
        help_text="When the controller received it, if known (e.g. tracked delivery). Empty: the expected "
        "delivery date, two working days after posting.",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
