"""Encryption at rest: returned data, stored mail and anything else we must not keep in the clear.

Keys come from `settings.FIELD_ENCRYPTION_KEYS`, newest first: the newest encrypts, every key decrypts, so a
key is rotated by putting a new one first, running `python manage.py rotate_keys`, and only then removing the
old one. The embedded default has no keys configured: it creates one on first use in `KEY_DIR` (default
var/keys/fernet.key) so that `make run` just works. To rotate away from that key, configure
FIELD_ENCRYPTION_KEYS as "<new key>,<the file's key>". Production without keys refuses to start encrypting.

Encrypted data cannot be searched or filtered: keep lookup keys (references, hashes) in plain columns.

Apps list the model FileFields whose files are encrypted with `register_encrypted_file_field`, so that
`rotate_keys` can find every file without knowing the apps.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage
from django.db import models

logger = logging.getLogger(__name__)

KEY_FILE = "fernet.key"

# ("app_label.Model", "file field name") of every FileField whose files hold encrypt() output. Apps extend
# it at import through register_encrypted_file_field; rotate_keys walks it.
ENCRYPTED_FILE_FIELDS: list[tuple[str, str]] = []


class CryptoError(Exception):
    """Encrypted data could not be read: the message says why, never anything about the key itself."""


def register_encrypted_file_field(model_label: str, field_name: str) -> None:
    """Declare that `model_label.field_name` stores encrypted files (safe to call more than once)."""
    entry = (model_label, field_name)
    if entry not in ENCRYPTED_FILE_FIELDS:
        ENCRYPTED_FILE_FIELDS.append(entry)


# -- keys ------------------------------------------------------------------------------------------------


def _configured_keys() -> list[str]:
    keys = getattr(settings, "FIELD_ENCRYPTION_KEYS", None) or []
    if isinstance(keys, str):  # tolerate "new,old" as a single string
        keys = keys.split(",")
    return [key.strip() for key in keys if key and key.strip()]


def _key_dir() -> Path:
    return Path(getattr(settings, "KEY_DIR", Path(settings.BASE_DIR) / "var" / "keys"))


@functools.cache
def _local_key(key_dir: Path) -> bytes:
    """The embedded default's key: read it, or create it once even when several processes start together.

    The key is written to a private temporary file and then hard-linked to its final name: link() fails
    if the name exists, so exactly one process wins, and nobody ever reads a half-written key."""
    path = key_dir / KEY_FILE
    if not path.exists():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(key_dir, 0o700)  # mkdir's mode is masked by the umask
        fd, temp_name = tempfile.mkstemp(dir=key_dir, prefix=".tmp-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(Fernet.generate_key())
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temp_name, path)
                logger.warning("Created a new encryption key in %s (embedded default).", path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(temp_name)
    return path.read_bytes().strip()


def _keys() -> tuple[bytes, ...]:
    configured = _configured_keys()
    if configured:
        return tuple(key.encode("ascii") for key in configured)
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is empty: production needs at least one Fernet key to encrypt data "
            "at rest."
        )
    return (_local_key(_key_dir()),)


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[bytes, ...]) -> tuple[MultiFernet, Fernet]:
    fernets = []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS[{position}] is not a Fernet key (32 bytes, url-safe base64)."
            ) from None
    return MultiFernet(fernets), fernets[0]


def _multi() -> MultiFernet:
    return _fernets(_keys())[0]


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


# -- bytes -----------------------------------------------------------------------------------------------


def encrypt(data: bytes) -> bytes:
    """Encrypt with the newest key (the token also authenticates the data)."""
    return _multi().encrypt(data)


def _unreadable(keys: int) -> CryptoError:
    return CryptoError(
        f"None of the {keys} configured encryption key(s) opens this data: it was encrypted with a key "
        "that is no longer in FIELD_ENCRYPTION_KEYS, or it has been altered."
    )


def decrypt(token: bytes) -> bytes:
    keys = _keys()
    try:
        return _fernets(keys)[0].decrypt(token)
    except InvalidToken:
        raise _unreadable(len(keys)) from None


def rotate(token: bytes) -> bytes:
    """The same data encrypted with the newest key."""
    keys = _keys()
    try:
        return _fernets(keys)[0].rotate(token)
    except InvalidToken:
        raise _unreadable(len(keys)) from None


def uses_newest_key(token: bytes) -> bool:
    """Whether rotating `token` would change nothing but its timestamp (rotate_keys skips these)."""
    try:
        _fernets(_keys())[1].decrypt(token)
    except InvalidToken:
        return False
    return True


# -- files -----------------------------------------------------------------------------------------------


def save_encrypted(name_hint: str, data: bytes, *, storage: Storage | None = None) -> str:
    """Encrypt `data` and store it under a name like `name_hint` (the storage may pick another); returns
    the stored name."""
    storage = storage or default_storage
    return storage.save(name_hint, ContentFile(encrypt(data)))


def read_encrypted(name: str, *, storage: Storage | None = None) -> bytes:
    storage = storage or default_storage
    with storage.open(name, "rb") as file:
        return decrypt(file.read())


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.rotated} file(s) re-encrypted with the newest key, {self.current} already used it, "
            f"{len(self.failed)} failed."
        )


def _rotate_file(model: type[models.Model], field_name: str, pk: object, name: str) -> bool:
    """Re-encrypt one stored file under a new name, point the row at it, then delete the old file.
    Readers always find a complete file; a concurrent rotation of the same row leaves one winner.
    Returns False when the file already used the newest key."""
    file_field = cast(models.FileField, model._meta.get_field(field_name))
    storage = file_field.storage
    with storage.open(name, "rb") as file:
        token = file.read()
    if uses_newest_key(token):
        return False
    fresh = rotate(token)
    instance = model._default_manager.get(pk=pk)
    new_name = storage.save(
        file_field.generate_filename(instance, PurePosixPath(name).name), ContentFile(fresh)
    )
    moved = model._default_manager.filter(pk=pk, **{field_name: name}).update(**{field_name: new_name})
    if moved:
        storage.delete(name)
        return True
    storage.delete(new_name)  # someone else changed the row meanwhile: theirs stands
    return False


def rotate_stored_files(*, progress: Callable[[str], None] | None = None, every: int = 100) -> RotationReport:
    """Re-encrypt every registered encrypted file with the newest key. Keeps going past a bad file (it is
    listed in the report); running it again only counts files as current."""
    report = RotationReport()
    say = progress or (lambda line: None)
    for label, field_name in list(ENCRYPTED_FILE_FIELDS):
        model = apps.get_model(label)
        rows = (
            model._default_manager.exclude(**{field_name: ""})
            .exclude(**{f"{field_name}__isnull": True})
            .order_by("pk")
            .values_list("pk", field_name)
        )
        say(f"{label}.{field_name}: {rows.count()} file(s)")
        done = 0
        for pk, name in rows.iterator(chunk_size=500):
            try:
                if _rotate_file(model, field_name, pk, name):
                    report.rotated += 1
                else:
                    report.current += 1
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest; it is reported
                problem = "the file is missing" if isinstance(exc, FileNotFoundError) else str(exc)
                line = f"{label} {pk} ({name}): {problem}"
                report.failed.append(line)
                say(f"FAILED {line}")
            done += 1
            if done % every == 0:
                say(f"{label}.{field_name}: {done} done")
    return report
