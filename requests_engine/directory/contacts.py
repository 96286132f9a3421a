"""Controller contacts: the people at a controller who answer our requests, and their API tokens.

A token is shown once, when it is issued; only its SHA-256 and its last characters (to tell tokens apart
in the back office) are stored. Issuing a new token replaces the old one at once (rotation); revoking a
contact shuts both the portal and the API to it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from django.db import IntegrityError, transaction

from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Controller, ControllerContact

logger = logging.getLogger(__name__)

# A recognisable prefix lets secret scanners (and people) tell a leaked token for what it is.
TOKEN_PREFIX = "dcc_"
HINT_LENGTH = 4


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def contact_create(*, controller_id: int, email: str, name: str = "") -> ControllerContact:
    email = email.strip()
    if not email:
        raise RequestEngineError("A contact needs an email address.")
    if not Controller.objects.filter(pk=controller_id).exists():
        raise RequestEngineError(f"There is no controller with id {controller_id}.")
    try:
        with transaction.atomic():
            return ControllerContact.objects.create(
                controller_id=controller_id, email=email, name=name.strip()
            )
    except IntegrityError:  # one_contact_per_address
        raise RequestEngineError(f"{email} is already a contact for this controller.") from None


def contact_issue_api_token(*, contact_id: int) -> str:
    """Issue (or rotate) the contact's API token and return it: the only time it can be seen."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        contact = ControllerContact.objects.select_for_update().filter(pk=contact_id).first()
        if contact is None:
            raise RequestEngineError(f"There is no contact with id {contact_id}.")
        if not contact.is_active:
            raise RequestEngineError(
                f"{contact.email} has been revoked: a revoked contact gets no API token."
            )
        rotated = bool(contact.api_token_sha256)
        contact.api_token_sha256 = token_digest(token)
        contact.api_token_hint = token[-HINT_LENGTH:]
        contact.save(update_fields=["api_token_sha256", "api_token_hint"])
    logger.info("API token %s for contact %s", "rotated" if rotated else "issued", contact_id)
    return token


def contact_revoke_api_token(*, contact_id: int) -> None:
    """Withdraw the contact's API token; the contact keeps portal access."""
    updated = ControllerContact.objects.filter(pk=contact_id).update(api_token_sha256="", api_token_hint="")
    if not updated:
        raise RequestEngineError(f"There is no contact with id {contact_id}.")
    logger.info("API token revoked for contact %s", contact_id)


def contact_revoke(*, contact_id: int) -> None:
    """Shut the portal and the API to this contact at once. Its token is forgotten too, so giving access
    back means issuing a new one."""
    updated = ControllerContact.objects.filter(pk=contact_id).update(
        is_active=False, api_token_sha256="", api_token_hint=""
    )
    if not updated:
        raise RequestEngineError(f"There is no contact with id {contact_id}.")
    logger.info("Contact %s revoked", contact_id)
