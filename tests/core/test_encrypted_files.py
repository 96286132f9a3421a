# ruff: noqa: F811  (the keys fixture is imported, then named as test arguments)
"""Files encrypted at rest in chunks: what is on disk, what tampering is caught, the storage models use,
sealing files written before, and rotate_keys over every kind of encrypted file."""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.files.base import ContentFile
from django.core.management import call_command

from core import crypto
from requests_engine.models import Complaint
from tests.core.test_crypto import NEW, OLD, keys  # noqa: F401 - the key settings fixture, shared
from tests.factories import make_mandate, make_member

# Three and a half chunks, so that order, truncation and the last-chunk flag all matter.
DATA = os.urandom(crypto.CHUNK_BYTES * 3 + crypto.CHUNK_BYTES // 2)


def encrypted(data: bytes = DATA) -> bytes:
    target = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(data), target)
    return target.getvalue()


def records(blob: bytes) -> list[bytes]:
    """The stream's length-prefixed records, each with its prefix."""
    out, at = [], len(crypto.STREAM_MAGIC)
    while at < len(blob):
        (size,) = struct.unpack(">I", blob[at : at + 4])
        out.append(blob[at : at + 4 + size])
        at += 4 + size
    return out


def decrypted(blob: bytes) -> bytes:
    return b"".join(crypto.decrypt_stream(io.BytesIO(blob)))


def test_a_large_file_round_trips_in_chunks_with_its_size_and_hash(keys):
    target = io.BytesIO()
    size, digest = crypto.encrypt_stream(io.BytesIO(DATA), target)
    assert (size, digest) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    blob = target.getvalue()
    assert blob.startswith(crypto.STREAM_MAGIC) and DATA[:64] not in blob
    assert len(records(blob)) == 4
    assert decrypted(blob) == DATA
    assert decrypted(encrypted(b"")) == b""


@pytest.mark.parametrize(
    "tamper, why",
    [
        (lambda r: r[:-1], "cut short"),  # the last chunk dropped
        (lambda r: [r[1], r[0], *r[2:]], "out of order"),
        (lambda r: [*r, r[-1]], "after its last chunk"),
        (lambda r: [r[0], r[0], *r[1:]], "out of order"),  # a chunk repeated
    ],
)
def test_dropped_reordered_or_repeated_chunks_are_refused(keys, tamper, why):
    blob = encrypted()
    forged = crypto.STREAM_MAGIC + b"".join(tamper(records(blob)))
    with pytest.raises(crypto.CryptoError, match=why):
        decrypted(forged)


def test_a_flipped_byte_or_a_cut_record_is_refused(keys):
    blob = bytearray(encrypted())
    blob[100] ^= 1
    with pytest.raises(crypto.CryptoError):
        decrypted(bytes(blob))
    with pytest.raises(crypto.CryptoError, match="cut short"):
        decrypted(encrypted()[:-10])


def test_files_from_before_chunking_are_still_read(keys):
    assert decrypted(Fernet(OLD.encode()).encrypt(b"one token")) == b"one token"


def test_model_files_with_personal_data_are_on_encrypted_storage():
    fields = set(crypto.stored_encrypted_fields())
    assert {
        ("communities.Mandate", "pdf"),
        ("communities.Authority", "pdf"),
        ("communities.Community", "constitution"),
        ("requests_engine.Batch", "letter_pdf"),
        ("requests_engine.Batch", "manifest"),
        ("requests_engine.Complaint", "evidence_pack"),
        ("core.OutboundAttachment", "file"),
        ("requests_engine.ReceivedFile", "stored"),
        ("requests_engine.IdentityDocument", "stored"),
        ("requests_engine.InboundMessage", "raw"),
    } <= fields
    assert "complaint-kits" in crypto.ENCRYPTED_FOLDERS


def test_the_storage_encrypts_on_save_and_decrypts_on_open(keys, settings):
    name = crypto.encrypted_storage.save("mandates/M-1.pdf", ContentFile(b"%PDF-1.7 Ada Lovelace"))
    on_disk = Path(settings.MEDIA_ROOT, name).read_bytes()
    assert on_disk.startswith(crypto.STREAM_MAGIC) and b"Ada" not in on_disk
    with crypto.encrypted_storage.open(name) as file:
        assert file.read() == b"%PDF-1.7 Ada Lovelace"
        file.seek(0, io.SEEK_END)
        assert file.tell() == 21  # seekable, so a download states its real length
    with pytest.raises(NotImplementedError):
        crypto.encrypted_storage.url(name)
    with pytest.raises(ValueError):
        crypto.encrypted_storage.open(name, "wb")


def test_files_written_in_the_clear_before_are_sealed_once(keys, settings, community, controller):
    plain = b"%PDF-1.7 written before encryption"
    raw = crypto.encrypted_storage.raw
    name = raw.save("complaints/C-OLD.pdf", ContentFile(plain))
    complaint = Complaint.objects.create(
        kind=Complaint.Kind.CONTROLLER, community=community, controller=controller, evidence_pack=name
    )
    kit = raw.save("complaint-kits/M-1/ico-kit-C-OLD.zip", ContentFile(b"PK\x03\x04 kit"))

    assert crypto.seal_plain_files(Complaint, "evidence_pack") == 1
    assert crypto.seal_plain_folder("complaint-kits") == 1
    assert crypto.seal_plain_files(Complaint, "evidence_pack") == 0  # a second run changes nothing
    assert crypto.seal_plain_folder("complaint-kits") == 0

    complaint.refresh_from_db()
    with complaint.evidence_pack.open("rb") as file:
        assert file.read() == plain
    assert plain not in Path(settings.MEDIA_ROOT, complaint.evidence_pack.name).read_bytes()
    assert crypto.read_encrypted(kit) == b"PK\x03\x04 kit"


def test_rotate_keys_covers_mandate_pdfs_and_kits(keys, community, capsys):
    mandate = make_mandate(make_member(community, "Rota Key"))
    mandate.pdf.save("M-2.pdf", ContentFile(b"%PDF mandate"))
    kit = crypto.encrypted_storage.save("complaint-kits/M-2/kit.zip", ContentFile(b"kit"))
    keys(NEW, OLD)
    call_command("rotate_keys")
    out = capsys.readouterr().out
    assert "communities.Mandate.pdf: 1 file(s)" in out and "complaint-kits/: 1 file(s)" in out
    assert "2 file(s) re-encrypted with the newest key" in out and "0 failed" in out
    keys(NEW)  # the old key is retired: everything still opens
    assert crypto.read_encrypted(kit) == b"kit"
    mandate.refresh_from_db()
    with mandate.pdf.open("rb") as file:
        assert file.read() == b"%PDF mandate"
