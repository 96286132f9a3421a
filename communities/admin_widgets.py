"""Widgets the back office uses in place of Django's own where those fall short of WCAG 2.2 AA."""

from __future__ import annotations

from django.contrib.admin.widgets import AdminSplitDateTime


class LabelledSplitDateTime(AdminSplitDateTime):
    """Django's split date and time inputs, each with a label of its own ("Date:", "Time:"): Django prints
    those words as plain text, so neither input has a name (the field's own label names the pair)."""

    template_name = "admin/widgets/labelled_split_datetime.html"
