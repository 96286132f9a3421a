from typing import cast

from django import forms
from django.utils import timezone

from communities.models import Community, Right
from requests_engine.grounds import GROUNDS
from requests_engine.models import (
    CHECKLISTS,
    Art15Item,
    Campaign,
    Controller,
    InformationKind,
    ObjectionTo,
    RefusalGround,
)


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
    ground = forms.ChoiceField(
        choices=[("", "Choose the legal ground")] + [(c, RefusalGround(c).label) for c in GROUNDS]
    )
    reasons = forms.CharField(widget=forms.Textarea, help_text="The reasons the controller gave (Art 12(4)).")
    answered_on = forms.DateField(initial=_today)


class NoteForm(forms.Form):
    outcome = forms.CharField(widget=forms.Textarea, required=False)


class WithdrawForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea, required=False)


class EscalateForm(forms.Form):
    case_reference = forms.CharField(required=False, help_text="The ICO's case reference, if known.")


class CampaignAdminForm(forms.ModelForm):
    """A campaign picks only from its community's own lists: the organisations it acts towards and its
    purposes (DESIGN §2). Rights are checkboxes rather than raw JSON."""

    rights = forms.MultipleChoiceField(choices=Right.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Campaign
        fields = ["community", "name", "rights", "objection_to", "controllers", "purpose", "member_note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "controllers" not in self.fields:
            return  # read-only for this user (a viewer or caseworker): the admin shows the fields as text
        community = self._community()
        controllers = cast(forms.ModelMultipleChoiceField, self.fields["controllers"])
        purpose = cast(forms.ModelChoiceField, self.fields["purpose"])
        purpose.required = True
        # Only objection campaigns need it; left out, an objection is the Art 21(1) kind.
        self.fields["objection_to"].required = False
        if community is not None:
            controllers.queryset = community.controllers.order_by("name")
            purpose.queryset = community.purposes.order_by("name")
        else:
            # Until the community is known, only what some community lists can be offered.
            controllers.queryset = (
                Controller.objects.filter(communities__isnull=False).distinct().order_by("name")
            )
            controllers.help_text = "Save with the community chosen to see only its organisations."

    def clean_objection_to(self) -> str:
        return self.cleaned_data.get("objection_to") or ObjectionTo.PROCESSING

    def _community(self) -> Community | None:
        if self.instance.community_id:
            return self.instance.community
        chosen = self.data.get(self.add_prefix("community"))
        if chosen and str(chosen).isdigit():
            return Community.objects.filter(pk=str(chosen)).first()
        communities = list(Community.objects.all()[:2])
        return communities[0] if len(communities) == 1 else None

    def clean(self):
        data = super().clean() or {}
        community = data.get("community")
        if community is None:
            return data
        outside = [
            c.name
            for c in data.get("controllers") or []
            if not community.controllers.filter(pk=c.pk).exists()
        ]
        if outside:
            self.add_error(
                "controllers",
                f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not among the organisations "
                f"{community} acts towards. Add them to the community's list first.",
            )
        purpose = data.get("purpose")
        if purpose is not None and purpose.community_id != community.pk:
            self.add_error("purpose", f"Choose one of {community}'s purposes.")
        return data


class ChecklistForm(forms.Form):
    """The checklist of an answer, for its request's right (completeness.py): anything left unticked is
    missing."""

    def __init__(self, *args, right: str = "access", **kwargs):
        super().__init__(*args, **kwargs)
        checklist = CHECKLISTS.get(right)
        cast(forms.MultipleChoiceField, self.fields["present"]).choices = (
            checklist.choices if checklist else []
        )

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
