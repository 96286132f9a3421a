"""GOV.UK Frontend markup for Django forms and the page frame.

- `{% govuk_field form.name %}` renders any bound field: label (legend for a group of choices), hint from
  `help_text`, error message and the widget with GOV.UK classes. Options: `heading=True` (the label is the
  page's h1), `width="10"` or `width="two-thirds"` (text inputs), `autocomplete="email"`.
- `{% govuk_error_summary form %}` lists every error, each linking to the input it is about; the
  govuk-frontend ErrorSummary component moves focus to it when the page loads.
- `{% govuk_button "Save" %}` is a submit button that ignores a double click.
- `{% site_brand community as brand %}` is the name, colour and contact shown in the header and footer.

Everything is autoescaped, help_text included (Django's own templates trust help_text as HTML; ours does
not, unless it is a SafeString).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from django import forms, template
from django.conf import settings
from django.forms.boundfield import BoundField, BoundWidget
from django.forms.widgets import Input
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

DEFAULT_BRAND_COLOUR = "#1d4f91"
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_WIDTHS = {"30", "20", "10", "5", "4", "3", "2"}
_FLUID_WIDTHS = {"full", "three-quarters", "two-thirds", "one-half", "one-third", "one-quarter"}


def _classes(*names: str | bool | None) -> str:
    # `error and "govuk-input--error"` is False without an error: falsy names are left out.
    return " ".join(name for name in names if isinstance(name, str) and name)


def _base_id(bound: BoundField) -> str:
    """The id the widget gets (its subwidgets add `_0`, `_1`…); there is one even with `auto_id=False`."""
    return bound.field.widget.attrs.get("id") or bound.auto_id or f"id_{bound.html_name}"


def _kind(widget: forms.Widget) -> str:
    # Order matters: CheckboxSelectMultiple is a RadioSelect, DateInput is a TextInput.
    if widget.is_hidden:
        return "hidden"
    if isinstance(widget, forms.CheckboxSelectMultiple):
        return "checkboxes"
    if isinstance(widget, forms.RadioSelect):
        return "radios"
    if isinstance(widget, forms.CheckboxInput):
        return "checkbox"
    if isinstance(widget, forms.DateInput):
        return "date"
    if isinstance(widget, forms.FileInput):
        return "file"
    if isinstance(widget, forms.Textarea):
        return "textarea"
    if isinstance(widget, forms.Select):
        return "select"
    if isinstance(widget, Input):
        return "input"
    return "other"  # MultiWidget, SelectDateWidget, third-party widgets: Django's markup in a form group


def anchor_id(bound: BoundField) -> str:
    """The id of the element an error summary link should jump to: the first input of the field."""
    widget = bound.field.widget
    if isinstance(widget, forms.RadioSelect | forms.MultiWidget):  # CheckboxSelectMultiple too
        return f"{_base_id(bound)}_0"
    return widget.id_for_label(_base_id(bound)) or _base_id(bound)


@register.simple_tag
def govuk_field(
    bound: BoundField, *, heading: bool = False, width: str = "", autocomplete: str = ""
) -> SafeString | str:
    if not isinstance(bound, BoundField):
        return ""  # a misspelt field name renders nothing, as `{{ form.misspelt }}` does
    widget = bound.field.widget
    kind = _kind(widget)
    if kind == "hidden":
        return bound.as_widget()

    field_id = _base_id(bound)
    hint_id = f"{field_id}-hint" if bound.help_text else ""
    error_id = f"{field_id}-error" if bound.errors else ""
    describedby = _classes(widget.attrs.get("aria-describedby"), hint_id, error_id)
    context: dict[str, Any] = {
        "field": bound,
        "id": field_id,
        "label_for": anchor_id(bound),
        "label": bound.label,
        "hint": bound.help_text,
        "hint_id": hint_id,
        "errors": bound.errors,
        "error_id": error_id,
        "heading": heading,
        "kind": kind,
    }

    if kind in ("radios", "checkboxes"):
        context["describedby"] = describedby
        context["options"] = _choice_options(bound, kind)
        return render_to_string("govuk/choices.html", context)

    attrs: dict[str, Any] = {"id": field_id}
    if describedby:
        attrs["aria-describedby"] = describedby
    if autocomplete:
        attrs["autocomplete"] = autocomplete
    error = bool(bound.errors)
    own_class = widget.attrs.get("class")
    if kind == "checkbox":
        attrs["class"] = _classes("govuk-checkboxes__input", own_class)
        context["widget"] = bound.as_widget(attrs=attrs)
        return render_to_string("govuk/checkbox.html", context)

    if kind == "input":
        attrs["class"] = _classes(
            "govuk-input", error and "govuk-input--error", _width_class(width), own_class
        )
        if isinstance(widget, forms.EmailInput | forms.PasswordInput | forms.URLInput):
            # Addresses and passwords are not words: no spellcheck, no capital first letter on phones.
            for name, value in (("spellcheck", "false"), ("autocapitalize", "none")):
                if name not in widget.attrs:
                    attrs[name] = value
        elif type(widget) is forms.TextInput and "dir" not in widget.attrs:
            attrs["dir"] = "auto"  # a name in Arabic or Hebrew reads right to left while typed
        context["widget"] = bound.as_widget(attrs=attrs)
    elif kind == "date":
        # A native date picker: it needs the ISO format whatever the locale (en-GB would give 25/12/2026).
        date_widget = copy.copy(widget)
        date_widget.input_type = "date"
        date_widget.format = "%Y-%m-%d"
        attrs["class"] = _classes(
            "govuk-input", "govuk-input--width-10", error and "govuk-input--error", own_class
        )
        context["widget"] = bound.as_widget(widget=date_widget, attrs=attrs)
    elif kind == "textarea":
        attrs["class"] = _classes("govuk-textarea", error and "govuk-textarea--error", own_class)
        if "dir" not in widget.attrs:
            attrs["dir"] = "auto"
        context["widget"] = bound.as_widget(attrs=attrs)
    elif kind == "select":
        attrs["class"] = _classes("govuk-select", error and "govuk-select--error", own_class)
        context["widget"] = bound.as_widget(attrs=attrs)
    elif kind == "file":
        attrs["class"] = _classes("govuk-file-upload", error and "govuk-file-upload--error", own_class)
        context["widget"] = bound.as_widget(attrs=attrs)
    else:
        context["widget"] = bound.as_widget(attrs=attrs)
        if bound.use_fieldset:
            context["describedby"] = describedby
            return render_to_string("govuk/fieldset.html", context)
    return render_to_string("govuk/field.html", context)


def _width_class(width: str) -> str:
    if width in _WIDTHS:
        return f"govuk-input--width-{width}"
    if width in _FLUID_WIDTHS:
        return f"govuk-!-width-{width}"
    return ""


@dataclass(frozen=True)
class _Option:
    id: str
    label: str
    tag: SafeString


def _choice_options(bound: BoundField, kind: str) -> list[_Option]:
    """One input per choice, rendered by Django (so checked, required and disabled stay right)."""
    widget = bound.field.widget
    attrs = bound.build_widget_attrs(
        {"id": _base_id(bound), "class": _classes(f"govuk-{kind}__input", widget.attrs.get("class"))}
    )
    options = []
    for data in widget.subwidgets(bound.html_name, bound.value(), attrs=attrs):
        option = BoundWidget(widget, data, bound.form.renderer)
        options.append(
            _Option(id=option.id_for_label, label=option.choice_label, tag=option.tag(wrap_label=False))
        )
    return options


@register.simple_tag
def govuk_error_summary(*forms_with_errors: forms.BaseForm, name_fields: bool = False) -> SafeString | str:
    """'There is a problem' with a link per error; nothing at all when every form is valid.

    `name_fields` starts each field's error with its label, for forms whose messages do not say which field
    they are about (allauth's "This field is required.")."""
    items: list[dict[str, str]] = []
    for form in forms_with_errors:
        if not isinstance(form, forms.BaseForm) or not form.is_bound:
            continue
        for error in form.non_field_errors():
            items.append({"text": str(error), "href": ""})
        for bound in form:
            for error in bound.errors:
                if bound.is_hidden:
                    items.append({"text": f"{bound.label}: {error}", "href": ""})
                else:
                    text = f"{bound.label}: {error}" if name_fields and bound.label else str(error)
                    items.append({"text": text, "href": f"#{anchor_id(bound)}"})
    if not items:
        return ""
    return render_to_string("includes/error_summary.html", {"items": items})


@register.simple_tag
def govuk_button(label: str, *, kind: str = "", name: str = "", value: str = "") -> SafeString:
    """A submit button; `kind` is "secondary" or "warning"; `name`/`value` tell two buttons apart."""
    modifier = {"secondary": "govuk-button--secondary", "warning": "govuk-button--warning"}.get(kind, "")
    return format_html(
        '<button type="submit" class="{}"{}{} data-module="govuk-button" data-prevent-double-click="true">'
        "{}</button>",
        _classes("govuk-button", modifier),
        format_html(' name="{}"', name) if name else "",
        format_html(' value="{}"', value) if value else "",
        label,
    )


@dataclass(frozen=True)
class Brand:
    name: str
    colour: str
    text_colour: str
    contact_email: str
    slug: str


def _luminance(hex_colour: str) -> float:
    # WCAG 2 relative luminance.
    channels = []
    for i in (1, 3, 5):
        c = int(hex_colour[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour_for(background: str) -> str:
    """White text where it reaches 4.5:1 on the brand colour (WCAG 1.4.3 AA), near-black otherwise."""
    contrast_with_white = 1.05 / (_luminance(background) + 0.05)
    return "#ffffff" if contrast_with_white >= 4.5 else "#0b0c0c"


@register.simple_tag
def site_brand(community: Any = None) -> Brand:
    """The page frame's name, colour and contact: the community's when a view passes one, else the site's.

    Reads only the object given and settings, never the database, so 500.html can use it too.
    """
    name = getattr(community, "name", "") or getattr(settings, "SITE_NAME", "") or "Data community"
    colour = getattr(community, "brand_colour", "") or getattr(settings, "SITE_BRAND_COLOUR", "")
    if not _HEX_COLOUR.fullmatch(colour or ""):
        colour = DEFAULT_BRAND_COLOUR  # never put an unchecked string into a style attribute
    contact = getattr(community, "contact_email", "") or getattr(settings, "SITE_CONTACT_EMAIL", "")
    if not contact:
        contact = parseaddr(getattr(settings, "DEFAULT_FROM_EMAIL", ""))[1]
    return Brand(
        name=str(name),
        colour=colour.lower(),
        text_colour=text_colour_for(colour),
        contact_email=contact,
        slug=getattr(community, "slug", "") or "",
    )
