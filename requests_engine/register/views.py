"""The public register: HTML pages, their SVG charts and the same data as JSON (DESIGN §1, §5).

Every view renders the dicts from `register.py` unchanged, so the page, its charts and the JSON cannot
disagree, and suppression is applied once, there. Charts are pygal SVG served from our own URL and shown
with <img>: pygal puts a <style> element in the SVG, which the pages' Content-Security-Policy refuses
inline, while an SVG document served on its own gets a policy of its own that allows only its styles.
A chart's key is HTML beside the image, not text in the SVG: an SVG key cannot wrap, so a long
organisation name pushed it past the image's right edge, where it was cut off.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pygal
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from pygal.etree import etree
from pygal.style import Style

from communities import representation
from communities.models import Community
from requests_engine.register import figures

CHART_WIDTH = 400
# The SVG document may style itself and nothing else: no scripts, no fetches, not framed by others.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"

# GOV.UK Frontend's palette: text #0b0c0c; green, orange and red are told apart by the key and the
# table as well, never by colour alone. register.css gives the key's swatches the same colours.
CHART_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#0b0c0c",
    foreground_strong="#0b0c0c",
    foreground_subtle="#505a5f",
    opacity="1",
    opacity_hover="0.85",
    colors=("#00703c", "#f47738", "#d4351c", "#1d70b8"),
    # Printed values on each series' colour, at 4.5:1 or more.
    value_colors=("#ffffff", "#0b0c0c", "#ffffff", "#ffffff"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    value_font_size=13,
    title_font_size=16,
    tooltip_font_size=13,
    transition="0ms",
)


# The outcomes chart's series, in the order drawn (and coloured): (label, figure, key for the swatch).
OUTCOME_SERIES = [
    ("On time", "answered_on_time", "on-time"),
    ("Answered late", "answered_late", "late"),
    ("No answer after the deadline", "unanswered_after_deadline", "unanswered"),
]


# A bar's label, shortened at a word: pygal's truncate_label leaves a horizontal chart's labels whole, and a
# long name would take the width from the bars. The table beside the chart gives every name in full.
LABEL_CHARS = 30


def _label(text: str) -> str:
    return textwrap.shorten(text, width=LABEL_CHARS, placeholder="…")


def chart_height(rows: int) -> int:
    return 90 + 44 * max(rows, 1)


def _chart_options(*, rows: int, largest: int) -> dict[str, Any]:
    # Counts are whole numbers: ticks at whole steps, about five of them.
    step = max(1, math.ceil(largest / 5))
    return {
        "js": [],  # no remote script (pygal's default loads its tooltips from a CDN)
        "style": CHART_STYLE,
        # Narrow enough that the text stays legible when a phone scales the image to its width.
        "width": CHART_WIDTH,
        "height": chart_height(rows),
        "show_legend": False,  # the page shows the key as HTML, where it wraps
        "print_values": True,
        "print_zeroes": False,
        "show_y_guides": False,
        "margin": 8,
        "range": (0, step * math.ceil(max(largest, 1) / step)),
        "y_labels": list(range(0, step * math.ceil(max(largest, 1) / step) + 1, step)),
        "value_formatter": lambda value: f"{value:g}",
        "no_data_text": "No figures to show",
    }


def _svg_response(chart: pygal.graph.graph.Graph) -> HttpResponse:
    """The chart as an SVG document without pygal's inline configuration script: it only drives the
    interactive tooltips, which an <img> never runs anyway."""
    root = chart.render_tree()
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    body = etree.tostring(root, encoding="unicode")
    response = HttpResponse(
        '<?xml version="1.0" encoding="utf-8"?>\n' + body, content_type="image/svg+xml; charset=utf-8"
    )
    response["Content-Security-Policy"] = SVG_CSP
    return response


def _record_or_404(slug: str) -> dict[str, Any]:
    found = figures.registered_controller(slug)
    if found is None:
        raise Http404("This organisation is not on the register.")
    return found[1]


# -- pages -----------------------------------------------------------------------------------------------


@require_GET
def register_page(request: HttpRequest) -> HttpResponse:
    data = figures.register_index()
    context = {
        "data": data,
        "chart_width": CHART_WIDTH,
        "chart_height": chart_height(len(data["outcomes_chart"])),
        "outcome_series": [{"label": label, "key": key} for label, _figure, key in OUTCOME_SERIES],
        "chart_top": figures.CHART_TOP,
    }
    return render(request, "requests_engine/register/index.html", context)


@require_GET
def controller_page(request: HttpRequest, slug: str) -> HttpResponse:
    data = _record_or_404(slug)
    context = {
        "data": data,
        "chart_width": CHART_WIDTH,
        "chart_height": chart_height(len(data["refusals_by_ground"] or [])),
    }
    return render(request, "requests_engine/register/controller.html", context)


@require_GET
def constitution(request: HttpRequest, slug: str) -> HttpResponse:
    """A community's constitution, published with its Art 80(1) record (and only then)."""
    community = get_object_or_404(Community, slug=slug)
    if not community.art80_eligible:
        raise Http404("This community has not recorded an Article 80(1) record.")
    response = HttpResponse(representation.constitution_data(community), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="constitution-{community.slug}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# -- charts ----------------------------------------------------------------------------------------------


@require_GET
def outcomes_chart(request: HttpRequest) -> HttpResponse:
    rows = figures.register_index()["outcomes_chart"]
    largest = max(
        (r["answered_on_time"] + r["answered_late"] + r["unanswered_after_deadline"] for r in rows), default=0
    )
    chart = pygal.HorizontalStackedBar(**_chart_options(rows=len(rows), largest=largest))
    # pygal draws the first label at the bottom: reverse, so the chart reads top-down like the table.
    rows = list(reversed(rows))
    chart.x_labels = [_label(row["name"]) for row in rows]
    for label, figure, _key in OUTCOME_SERIES:
        chart.add(label, [row[figure] for row in rows])
    return _svg_response(chart)


@require_GET
def refusals_chart(request: HttpRequest, slug: str) -> HttpResponse:
    grounds = _record_or_404(slug)["refusals_by_ground"]
    if not grounds:
        raise Http404("No refusal figures to chart.")  # withheld, or no refusals at all
    grounds = list(reversed(grounds))
    largest = max(row["count"] for row in grounds)
    chart = pygal.HorizontalBar(**_chart_options(rows=len(grounds), largest=largest))
    chart.x_labels = [_label(row["label"]) for row in grounds]
    chart.add("Refusals", [row["count"] for row in grounds])
    return _svg_response(chart)


# -- JSON (mounted under /api/v1/register/ by config/urls.py) --------------------------------------------


@require_GET
def register_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(figures.register_index(), json_dumps_params={"ensure_ascii": False})


@require_GET
def controller_json(request: HttpRequest, slug: str) -> JsonResponse:
    found = figures.registered_controller(slug)
    if found is None:
        return JsonResponse({"detail": "This organisation is not on the register."}, status=404)
    return JsonResponse(found[1], json_dumps_params={"ensure_ascii": False})
