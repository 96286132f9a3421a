"""The community's Art 80(1) record: its constitution, a PDF encrypted at rest like every upload. Whether the
record is complete is one rule, `Community.art80_eligible`; this module stores and reads the constitution."""

from __future__ import annotations

import hashlib

import magic
from django.db import transaction

from core import crypto

from .models import Community
from .services import CommunityError

CONSTITUTION_MAX_BYTES = 10 * 1024 * 1024  # a constitution is a few pages; anything bigger is a mistake


def constitution_check(data: bytes) -> None:
    """A constitution is a PDF (sniffed from the bytes, never trusted from the name) of sensible size."""
    if not data:
        raise CommunityError("The constitution file is empty.")
    if len(data) > CONSTITUTION_MAX_BYTES:
        raise CommunityError(
            f"The constitution is larger than the {CONSTITUTION_MAX_BYTES // (1024 * 1024)} MB allowed."
        )
    kind = magic.from_buffer(data[:65536], mime=True)
    if kind != "application/pdf":
        raise CommunityError(f"The constitution must be a PDF file; this one is {kind}.")


def constitution_store(*, community_id: int, data: bytes) -> Community:
    """Store the community's constitution encrypted, with its SHA-256 (the admin's change history records
    who uploaded it); the one it replaces is deleted once the change is committed."""
    constitution_check(data)
    digest = hashlib.sha256(data).hexdigest()
    with transaction.atomic():
        community = Community.objects.select_for_update().get(pk=community_id)
        old = community.constitution.name if community.constitution else ""
        storage = community.constitution.storage
        name = crypto.save_encrypted(f"constitutions/{community.slug}.pdf", data, storage=storage)
        Community.objects.filter(pk=community.pk).update(constitution=name, constitution_sha256=digest)
        if old and old != name:
            transaction.on_commit(lambda: storage.delete(old))
        community.refresh_from_db()
    return community


def constitution_data(community: Community) -> bytes:
    """The constitution as uploaded, decrypted and checked against its checksum."""
    if not community.constitution:
        raise CommunityError(f"{community.name} has not recorded a constitution.")
    data = crypto.read_encrypted(str(community.constitution.name), storage=community.constitution.storage)
    if hashlib.sha256(data).hexdigest() != community.constitution_sha256:
        raise crypto.CryptoError(f"The constitution of {community.name} does not match its checksum.")
    return data
