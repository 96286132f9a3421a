"""The GOV.UK template tags, base.html and the error pages, rendered on the server (no browser needed).

They sit beside the browser tests because they share the sample form in urls_for_tests.py.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django import forms
from django.core.exceptions import PermissionDenied
from django.template import Context, Template
from django.template.loader import get_template
from django.utils.safestring import mark_safe
from django.views.csrf import csrf_failure
from django.views.defaults import permission_denied

from core.templatetags.govuk import DEFAULT_BRAND_COLOUR, site_brand, text_colour_for
from tests.browser.urls_for_tests import HOSTILE_DATA, EveryWidgetForm

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


def render(source: str, **context) -> str:
    return Template("{% load govuk %}" + source).render(Context(context))


def field_html(form: forms.Form, name: str) -> str:
    return render("{% govuk_field field %}", field=form[name])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("full_name", '<input type="text" name="full_name"'),
        ("email", '<input type="email" name="email"'),
        ("website", '<input type="url" name="website"'),
        ("age", '<input type="number" name="age"'),
        ("password", '<input type="password" name="password"'),
        ("about", '<textarea name="about"'),
        ("controller", '<select name="controller"'),
        ("contact_by", 'class="govuk-radios" data-module="govuk-radios"'),
        ("rights", 'class="govuk-checkboxes" data-module="govuk-checkboxes"'),
        ("agree", 'class="govuk-checkboxes__input"'),
        ("born_on", '<input type="date" name="born_on"'),
        ("proof", '<input type="file" name="proof"'),
    ],
)
def test_every_widget_gets_its_govuk_markup(name, expected):
    html = field_html(EveryWidgetForm(), name)

    assert expected in html
    assert html.count('class="govuk-form-group"') == 1


@pytest.mark.parametrize(
    ("name", "css_class"),
    [
        ("full_name", "govuk-input govuk-input--error"),
        ("email", "govuk-input govuk-input--error"),
        ("age", "govuk-input govuk-input--error"),
        ("password", "govuk-input govuk-input--error"),
        ("controller", "govuk-select govuk-select--error"),
        ("born_on", "govuk-input govuk-input--width-10 govuk-input--error"),
        ("proof", "govuk-file-upload govuk-file-upload--error"),
    ],
)
def test_a_field_with_an_error_is_marked_and_described_by_its_message(name, css_class):
    form = EveryWidgetForm(HOSTILE_DATA)
    form.is_valid()
    html = field_html(form, name)

    assert 'class="govuk-form-group govuk-form-group--error"' in html
    assert f'class="{css_class}"' in html
    assert f'<p id="id_{name}-error" class="govuk-error-message">' in html
    assert re.search(rf'aria-describedby="[^"]*\bid_{name}-error\b', html)
    assert 'aria-invalid="true"' in html


def test_radios_and_checkboxes_are_a_fieldset_described_by_hint_and_error():
    form = EveryWidgetForm(HOSTILE_DATA)
    form.is_valid()
    html = field_html(form, "rights")

    assert '<fieldset class="govuk-fieldset" aria-describedby="id_rights-hint id_rights-error">' in html
    assert '<legend class="govuk-fieldset__legend">Which rights?</legend>' in html
    assert (
        'value="access" id="id_rights_0" class="govuk-checkboxes__input" aria-invalid="true" checked>' in html
    )
    assert (
        '<label class="govuk-label govuk-checkboxes__label" for="id_rights_1">Erasure (Art 17)</label>'
        in html
    )


def test_bound_values_are_kept_and_escaped():
    form = EveryWidgetForm(HOSTILE_DATA)
    form.is_valid()
    html = field_html(form, "full_name")

    assert (
        'value="&lt;script&gt;alert(1)&lt;/script&gt; &quot;Zoë&quot; O&#x27;Brien &amp; ليلى العربي 🙂"'
        in html
    )
    assert "<script>" not in html
    assert 'dir="auto"' in html
    assert 'autocomplete="name"' in html


def test_labels_hints_and_choices_are_escaped_unless_marked_safe():
    class Form(forms.Form):
        plain = forms.CharField(label="<i>label</i>", help_text="<b>hint</b>")
        trusted = forms.CharField(help_text=mark_safe("<b>trusted</b>"))
        pick = forms.ChoiceField(choices=[("x", "<em>x</em>")], widget=forms.RadioSelect)

    form = Form()
    assert "&lt;i&gt;label&lt;/i&gt;" in field_html(form, "plain")
    assert "&lt;b&gt;hint&lt;/b&gt;" in field_html(form, "plain")
    assert "<b>trusted</b>" in field_html(form, "trusted")
    assert ">&lt;em&gt;x&lt;/em&gt;</label>" in field_html(form, "pick")


def test_a_date_picker_gets_an_iso_date_whatever_the_locale():
    class Form(forms.Form):
        # The way communities/forms.py asks for a date picker.
        until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    html = field_html(Form(initial={"until": datetime.date(2026, 12, 25)}), "until")

    assert '<input type="date" name="until" value="2026-12-25"' in html


def test_options_for_width_autocomplete_and_a_label_as_page_heading():
    class Form(forms.Form):
        postcode = forms.CharField()

    html = render(
        '{% govuk_field form.postcode width="10" autocomplete="postal-code" heading=True %}', form=Form()
    )

    assert 'class="govuk-input govuk-input--width-10"' in html
    assert 'autocomplete="postal-code"' in html
    assert (
        '<h1 class="govuk-label-wrapper"><label class="govuk-label govuk-label--l" for="id_postcode">' in html
    )


def test_widgets_made_of_several_inputs_get_a_fieldset_and_a_summary_link_to_the_first():
    class Form(forms.Form):
        when = forms.SplitDateTimeField()
        born = forms.DateField(widget=forms.SelectDateWidget(years=[2000, 2001]))

    form = Form({})
    form.is_valid()
    when, born = field_html(form, "when"), field_html(form, "born")

    assert '<fieldset class="govuk-fieldset" role="group" aria-describedby="id_when-error">' in when
    assert 'name="when_0"' in when and 'id="id_when_0"' in when
    assert '<legend class="govuk-fieldset__legend">Born</legend>' in born
    summary = render("{% govuk_error_summary form %}", form=form)
    # en-GB puts the day first, so the day's select is the one to jump to.
    assert '<a href="#id_when_0">' in summary and '<a href="#id_born_day">' in summary
    assert 'id="id_born_day"' in born


def test_hidden_fields_render_bare_and_their_errors_are_summarised_without_a_link():
    class Form(forms.Form):
        token = forms.CharField(widget=forms.HiddenInput)

    form = Form({})
    assert field_html(form, "token") == '<input type="hidden" name="token" id="id_token">'
    summary = render("{% govuk_error_summary form %}", form=form)
    assert "<li>Token: This field is required.</li>" in summary


def test_error_summary_links_point_at_ids_that_exist():
    form = EveryWidgetForm(HOSTILE_DATA)
    form.is_valid()
    page = render(
        "{% govuk_error_summary form %}{% for f in form %}{% govuk_field f %}{% endfor %}", form=form
    )

    hrefs = re.findall(r'<a href="#([^"]+)">', page)
    assert len(hrefs) == 10
    for target in hrefs:
        assert f'id="{target}"' in page
    assert '<div class="govuk-error-summary" data-module="govuk-error-summary">' in page
    assert "<li>This form never succeeds: it is here to show errors</li>" in page


def test_error_summary_is_empty_for_an_unbound_or_valid_form():
    class Form(forms.Form):
        name = forms.CharField()

    assert render("{% govuk_error_summary form %}", form=Form()) == ""
    assert render("{% govuk_error_summary form %}", form=Form({"name": "Ann"})) == ""
    assert render("{% govuk_error_summary form %}", form="") == ""


def test_button_escapes_its_label():
    html = render('{% govuk_button label kind="warning" name="action" value="revoke" %}', label="<Revoke>")

    assert html == (
        '<button type="submit" class="govuk-button govuk-button--warning" name="action" value="revoke" '
        'data-module="govuk-button" data-prevent-double-click="true">&lt;Revoke&gt;</button>'
    )


def test_brand_falls_back_to_the_site_settings(settings):
    settings.SITE_NAME = "Our data"
    settings.DEFAULT_FROM_EMAIL = "Our data <hello@our.example>"

    brand = site_brand("")

    assert (brand.name, brand.colour, brand.text_colour, brand.contact_email, brand.slug) == (
        "Our data",
        DEFAULT_BRAND_COLOUR,
        "#ffffff",
        "hello@our.example",
        "",
    )


def test_brand_uses_the_community_and_refuses_a_colour_that_is_not_one():
    community = SimpleNamespace(
        name="Writers", slug="writers", contact_email="c@w.example", brand_colour="#FFD700"
    )
    assert site_brand(community).colour == "#ffd700"
    assert site_brand(community).text_colour == "#0b0c0c"  # white on gold would be unreadable

    community.brand_colour = "red; background: url(https://evil.example/)"
    assert site_brand(community).colour == DEFAULT_BRAND_COLOUR


@pytest.mark.parametrize(
    ("colour", "text"), [("#1d4f91", "#ffffff"), ("#ffffff", "#0b0c0c"), ("#767676", "#ffffff")]
)
def test_text_on_the_brand_colour_reaches_aa_contrast(colour, text):
    assert text_colour_for(colour) == text


def test_server_error_page_needs_no_request_and_no_database():
    # No `db` fixture: pytest-django makes any query here an error.
    html = get_template("500.html").render()

    assert "Sorry, something went wrong" in html
    assert 'id="main-content"' in html


def test_permission_denied_page_is_friendly(rf):
    response = permission_denied(rf.get("/"), PermissionDenied("internal detail"))

    assert response.status_code == 403
    html = response.content.decode()
    assert "You cannot see this page" in html and "internal detail" not in html


def test_csrf_failure_page_is_friendly(rf):
    response = csrf_failure(rf.post("/"), reason="CSRF cookie not set.")

    assert response.status_code == 403
    assert "Your form could not be sent" in response.content.decode()


@pytest.mark.django_db
def test_signed_in_frame_offers_your_requests_and_a_post_sign_out(client, django_user_model, settings):
    settings.ROOT_URLCONF = "tests.browser.urls_for_tests"
    client.force_login(django_user_model.objects.create_user("ann", "ann@example.com", "pw"))

    html = client.get("/__test__/page/").content.decode()

    assert ">Your requests</a>" in html
    assert re.search(
        r'<form class="community-nav-form" method="post" action="[^"]+">\s*<input type="hidden"', html
    )
    assert ">Sign in</a>" not in html


@pytest.mark.django_db
def test_signed_out_frame_offers_sign_in_and_join(client, settings):
    settings.ROOT_URLCONF = "tests.browser.urls_for_tests"

    html = client.get("/__test__/page/").content.decode()

    assert ">Sign in</a>" in html and ">Join</a>" in html
    assert "Sign out" not in html
    assert (
        '<html lang="en-GB" class="govuk-template" style="--brand: #1d4f91; --brand-text: #ffffff">' in html
    )


def test_vendored_govuk_css_points_at_no_file_we_do_not_ship():
    css = (STATIC_DIR / "vendor/govuk-frontend/govuk-frontend.min.css").read_text(encoding="utf-8")

    assert "url(" not in css
    assert "@font-face" not in css
    assert (STATIC_DIR / "vendor/govuk-frontend/VERSION").read_text().strip().startswith("5.")
    assert (STATIC_DIR / "vendor/htmx/VERSION").read_text().strip().startswith("2.")
