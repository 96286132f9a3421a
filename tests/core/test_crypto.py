"""Encryption at rest: round trips, the embedded default key, key rotation and rotate_keys."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from core import crypto
from requests_engine.models import InboundMessage

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def keys(settings, tmp_path):
    """Point the key settings at this test; returns a function to change the configured keys."""
    settings.PRODUCTION = False
    settings.KEY_DIR = str(tmp_path / "keys")

    def use(*configured: str) -> None:
        settings.FIELD_ENCRYPTION_KEYS = list(configured)

    use(OLD)
    return use


def only(key: str) -> Fernet:
    return Fernet(key.encode())


def test_round_trip(keys):
    token = crypto.encrypt(b"returned data")

    assert token != b"returned data" and b"returned data" not in token
    assert crypto.decrypt(token) == b"returned data"
    assert only(OLD).decrypt(token) == b"returned data"


def test_a_new_key_first_encrypts_with_it_and_still_reads_old_tokens(keys):
    old_token = crypto.encrypt(b"before the rotation")
    keys(NEW, OLD)

    assert crypto.decrypt(old_token) == b"before the rotation"
    assert only(NEW).decrypt(crypto.encrypt(b"after")) == b"after"
    rotated = crypto.rotate(old_token)
    assert only(NEW).decrypt(rotated) == b"before the rotation"
    assert crypto.uses_newest_key(rotated) and not crypto.uses_newest_key(old_token)


def test_a_wrong_key_gives_a_clear_error(keys):
    token = crypto.encrypt(b"secret")
    keys(NEW)

    with pytest.raises(crypto.CryptoError, match="None of the 1 configured encryption key"):
        crypto.decrypt(token)
    with pytest.raises(crypto.CryptoError, match="no longer in FIELD_ENCRYPTION_KEYS"):
        crypto.rotate(token)


def test_a_malformed_configured_key_is_named_without_showing_it(keys):
    keys(NEW, "not-a-key")

    with pytest.raises(
        ImproperlyConfigured, match=r"FIELD_ENCRYPTION_KEYS\[1\] is not a Fernet key"
    ) as error:
        crypto.encrypt(b"x")
    assert "not-a-key" not in str(error.value)


def test_the_embedded_default_creates_one_private_key_and_reuses_it(keys, settings):
    keys()  # nothing configured
    key_dir = Path(settings.KEY_DIR)

    token = crypto.encrypt(b"embedded")
    crypto._local_key.cache_clear()  # as a fresh process would

    assert crypto.decrypt(token) == b"embedded"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    key_file = key_dir / crypto.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert only(key_file.read_text()).decrypt(token) == b"embedded"
    assert [p.name for p in key_dir.iterdir()] == [crypto.KEY_FILE]  # no temporary files left behind


def test_processes_racing_to_create_the_default_key_agree_on_one(keys, settings):
    keys()
    key_dir = Path(settings.KEY_DIR)
    found: list[bytes] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        found.append(crypto._local_key.__wrapped__(key_dir))  # uncached: each thread races on the file

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(found) == 8 and len(set(found)) == 1
    assert (key_dir / crypto.KEY_FILE).read_bytes().strip() == found[0]


def test_production_without_keys_refuses(keys, settings):
    keys()
    settings.PRODUCTION = True

    with pytest.raises(ImproperlyConfigured, match="production needs at least one Fernet key"):
        crypto.encrypt(b"x")


def test_files_are_stored_encrypted_and_read_back(keys):
    name = crypto.save_encrypted("received/report.csv", b"name,email\nAda,ada@example.test\n")

    with default_storage.open(name, "rb") as file:
        assert b"ada@example.test" not in file.read()
    assert crypto.read_encrypted(name) == b"name,email\nAda,ada@example.test\n"


# -- rotate_keys ------------------------------------------------------------------------------------------


def stored_message(uid: int, content: bytes) -> InboundMessage:
    return InboundMessage.objects.create(
        mailbox="replies@host/INBOX",
        uid_validity=1,
        uid=uid,
        received_at=timezone.now(),
        raw=crypto.save_encrypted(f"inbound/{uid}.eml.enc", content),
        raw_sha256="-",
    )


def opens_with_only(key: str, message: InboundMessage, keys) -> bytes:
    """The message's file as the newest key alone reads it (rotation has left nothing for the old one)."""
    message.refresh_from_db()
    keys(key)
    return crypto.read_encrypted(message.raw.name)


def test_rotate_keys_reencrypts_every_file_with_the_newest_key_and_is_idempotent(db, keys, capsys):
    messages = [stored_message(uid, f"message {uid}".encode()) for uid in (1, 2, 3)]
    old_names = [m.raw.name for m in messages]
    keys(NEW, OLD)

    call_command("rotate_keys")
    first = capsys.readouterr().out
    call_command("rotate_keys")
    second = capsys.readouterr().out

    assert "3 file(s) re-encrypted with the newest key, 0 already used it, 0 failed." in first
    assert "0 file(s) re-encrypted with the newest key, 3 already used it, 0 failed." in second
    assert not any(default_storage.exists(name) for name in old_names)  # the old ciphertexts are gone
    for uid, message in zip((1, 2, 3), messages, strict=True):  # the old key can now be retired
        assert opens_with_only(NEW, message, keys) == f"message {uid}".encode()


def test_rotate_keys_goes_on_past_a_bad_file_reports_it_and_fails(db, keys, capsys):
    good = stored_message(1, b"good")
    missing = stored_message(2, b"gone")
    default_storage.delete(missing.raw.name)
    foreign = stored_message(3, b"x")
    with default_storage.open(foreign.raw.name, "wb") as file:
        file.write(only(Fernet.generate_key().decode()).encrypt(b"someone else's key"))
    keys(NEW, OLD)

    with pytest.raises(CommandError, match="2 file"):
        call_command("rotate_keys")

    out = capsys.readouterr().out
    assert f"FAILED requests_engine.InboundMessage {missing.pk}" in out and "the file is missing" in out
    assert f"FAILED requests_engine.InboundMessage {foreign.pk}" in out and "None of the 2" in out
    assert "1 file(s) re-encrypted with the newest key, 0 already used it, 2 failed." in out
    assert opens_with_only(NEW, good, keys) == b"good"


def test_rotate_keys_can_print_a_fresh_key(capsys):
    call_command("rotate_keys", "--generate-key")

    Fernet(capsys.readouterr().out.strip().encode())  # a valid key
