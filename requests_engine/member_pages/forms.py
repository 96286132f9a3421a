"""Forms on a member's request pages."""

from __future__ import annotations

from typing import cast

from django import forms
from django.template.defaultfilters import filesizeformat

from requests_engine.models import Controller, ReceivedFile


class AnswerForm(forms.Form):
    answer = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=5000,
        label="Your answer",
        error_messages={"required": "Enter your answer"},
    )

    def __init__(self, *args, identity: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if identity:  # Art 12(6): the controller asked who the member is
            self.fields["document"] = forms.FileField(
                required=False,
                label="A document that shows who you are (optional)",
                help_text="A PDF or a photo (PNG, JPEG or WebP), up to 10 MB. Only this organisation can see "
                "it, in its portal; it is deleted 30 days after the request ends.",
            )


class ForwardForm(forms.Form):
    """Which returned file goes to which controller (Art 20(2)); the service checks the rest."""

    file = forms.ModelChoiceField(
        queryset=ReceivedFile.objects.none(),
        widget=forms.RadioSelect,
        empty_label=None,
        label="Which file should we send?",
        error_messages={
            "required": "Choose the file to send",
            "invalid_choice": "Choose one of the files listed",
        },
    )
    to_controller = forms.ModelChoiceField(
        queryset=Controller.objects.none(),
        empty_label="Choose an organisation",
        label="Which organisation should receive it?",
        help_text="Organisations in our directory that we can email.",
        error_messages={
            "required": "Choose the organisation to send it to",
            "invalid_choice": "Choose an organisation from the list",
        },
    )

    def __init__(self, *args, data_request, **kwargs):

        super().__init__(*args, **kwargs)
        files = cast(forms.ModelChoiceField, self.fields["file"])
        files.queryset = data_request.files.filter(deleted_at__isnull=True).order_by("received_at", "pk")
        files.label_from_instance = lambda f: f"{f.original_name} ({filesizeformat(f.size)})"  # type: ignore[method-assign,assignment]
        if len(files.queryset) == 1:
            files.initial = files.queryset[0].pk
        cast(forms.ModelChoiceField, self.fields["to_controller"]).queryset = (
            Controller.objects.exclude(email="").exclude(pk=data_request.controller_id).order_by("name")
        )
