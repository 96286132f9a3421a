"""Telling the person who runs the installation that something needs them (OPERATOR_EMAIL, else ADMINS)."""

from __future__ import annotations

import logging

from django.conf import settings

from core import outbox

logger = logging.getLogger("datacommunity.operator")


def operator_addresses() -> list[str]:
    if settings.OPERATOR_EMAIL:
        return [settings.OPERATOR_EMAIL]
    # ADMINS is (name, address) pairs up to Django 5.2 and plain addresses from 6.0.
    return [a if isinstance(a, str) else a[1] for a in settings.ADMINS]


def operator_alert(*, subject: str, body: str, purpose: str) -> None:
    """Logged as an error (so Sentry sees it when configured) and emailed, without personal data."""
    logger.error("%s: %s", subject, body)
    if to := operator_addresses():
        outbox.queue_email(
            to=to, subject=subject, body_text=body, subject_type="operator", subject_id="", purpose=purpose
        )
