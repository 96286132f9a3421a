"""The project's URLs plus test-only pages: a form with every kind of widget (bound at once, so every
kind of error shows), a plain page, and a page that fails (for 500.html). Browser tests point
ROOT_URLCONF here with pytest-django's `settings` fixture; nothing in config/ knows about it.

The two pages that render base.html are sent with a strict Content-Security-Policy, so a browser test
also proves our templates need no inline script or style element.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

TEMPLATES_DIR = Path(__file__).parent / "templates"

# Inline style *attributes* are allowed (base.html sets the brand colour with one); nothing else inline.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

HOSTILE_NAME = '<script>alert(1)</script> "Zoë" O\'Brien & ليلى العربي 🙂'
HOSTILE_ABOUT = "سلام عليكم\n</textarea><script>alert(2)</script>\n'quotes' & \"more\" 👩🏽‍💻"

CONTROLLERS = [("", "Choose an organisation"), ("acme", "Acme Ltd"), ("mega", "Mega <Corp> & Co")]
CONTACT = [("email", "Email"), ("post", "Post"), ("phone", "Phone <call> me")]
RIGHTS = [("access", "Access (Art 15)"), ("erasure", "Erasure (Art 17)"), ("objection", "Objection (Art 21)")]


class EveryWidgetForm(forms.Form):
    full_name = forms.CharField(
        label="Full name",
        help_text="As you write it yourself, in any script",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    email = forms.EmailField(
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={"invalid": "Enter an email address in the correct format, like name@example.com"},
    )
    website = forms.URLField(label="Website (optional)", required=False, assume_scheme="https")
    age = forms.IntegerField(
        label="Age", min_value=16, error_messages={"min_value": "You must be 16 or over"}
    )
    password = forms.CharField(
        label="Password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": "Enter a password"},
    )
    about = forms.CharField(
        label="About you", widget=forms.Textarea(attrs={"rows": 3}), help_text="<b>Not bold</b>"
    )
    controller = forms.ChoiceField(
        label="Organisation", choices=CONTROLLERS, error_messages={"required": "Select an organisation"}
    )
    contact_by = forms.ChoiceField(
        label="How should we contact you?",
        choices=CONTACT,
        widget=forms.RadioSelect,
        error_messages={"required": "Select how we should contact you"},
    )
    rights = forms.MultipleChoiceField(
        label="Which rights?",
        choices=RIGHTS,
        widget=forms.CheckboxSelectMultiple,
        help_text="Select all that apply",
    )
    agree = forms.BooleanField(
        label="I agree to the terms", error_messages={"required": "Confirm that you agree to the terms"}
    )
    born_on = forms.DateField(label="Date of birth", widget=forms.DateInput)
    proof = forms.FileField(
        label="Proof of identity", widget=forms.FileInput, error_messages={"required": "Choose a file"}
    )

    def clean_full_name(self) -> str:
        name = self.cleaned_data["full_name"]
        if "<" in name or ">" in name:
            raise forms.ValidationError("Full name must not contain < or >")
        return name

    def clean_rights(self) -> list[str]:
        rights = self.cleaned_data["rights"]
        if len(rights) < 2:
            raise forms.ValidationError("Select at least two rights")
        return rights

    def clean_born_on(self) -> datetime.date:
        born_on = self.cleaned_data["born_on"]
        if born_on >= datetime.date.today():
            raise forms.ValidationError("Date of birth must be in the past")
        return born_on

    def clean(self):
        data = super().clean()
        self.add_error(None, "This form never succeeds: it is here to show errors")
        return data


# What the page is bound to on GET: every field is either wrong or empty.
HOSTILE_DATA = {
    "full_name": HOSTILE_NAME,
    "email": "not-an-email",
    "website": "",
    "age": "12",
    "password": "",
    "about": HOSTILE_ABOUT,
    "controller": "",
    "rights": ["access"],
    "born_on": "2999-01-31",
}


def _render(request: HttpRequest, source: str, context: dict) -> HttpResponse:
    response = HttpResponse(engines["django"].from_string(source).render(context, request))
    response["Content-Security-Policy"] = STRICT_CSP
    return response


def sample_form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = EveryWidgetForm(request.POST, request.FILES)
    else:
        form = EveryWidgetForm(HOSTILE_DATA)
    form.is_valid()
    return _render(request, (TEMPLATES_DIR / "sample_form.html").read_text(encoding="utf-8"), {"form": form})


PLAIN_PAGE = """{% extends "base.html" %}
{% block title %}Sample page{% endblock %}
{% block content %}
<h1 class="govuk-heading-l">Sample page</h1>
<p class="govuk-body">A page with nothing on it but the frame.
  <a class="govuk-link" href="/__test__/form/">A form</a>.</p>
{% endblock %}
"""


def plain_page(request: HttpRequest) -> HttpResponse:
    if "message" in request.GET:
        messages.success(request, "Your details were saved <really>")
        messages.info(request, "Another note")
    return _render(request, PLAIN_PAGE, {})


def server_error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a deliberate fault, to show 500.html")


urlpatterns = [
    path("__test__/form/", sample_form),
    path("__test__/boom/", server_error),
    path("__test__/page/", plain_page),
    path("", include("config.urls")),
]
