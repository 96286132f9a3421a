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
import hashlib
import io
import logging
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Protocol, cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import File
from django.core.files.storage import Storage, default_storage
from django.db import models
from django.utils.deconstruct import deconstructible

logger = logging.getLogger(__name__)

KEY_FILE = "fernet.key"

# ("app_label.Model", "file field name") of every FileField whose files hold encrypt() output. Apps extend
# it at import through register_encrypted_file_field; rotate_keys walks it.
ENCRYPTED_FILE_FIELDS: list[tuple[str, str]] = []


class CryptoError(Exception):
    """Encrypted data could not be read: the message says why, never anything about the key itself."""


# Folders of encrypted_storage holding files no row points to (events name them); rotate_keys walks them.
ENCRYPTED_FOLDERS: list[str] = []


def register_encrypted_folder(folder: str) -> None:
    if folder not in ENCRYPTED_FOLDERS:
        ENCRYPTED_FOLDERS.append(folder)


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


# -- streams --------------------------------------------------------------------------------------------
# Files are encrypted in chunks so that a large upload or download never sits whole in memory. A stream is
# STREAM_MAGIC, then records of a 4-byte big-endian length and a Fernet token. Each token holds the chunk's
# position and whether it is the last, so chunks cannot be dropped, repeated, reordered or cut off unseen.
# Files written before chunking are one Fernet token (they start "gAAAAA", never with STREAM_MAGIC).

STREAM_MAGIC = b"DCENC1\n"
CHUNK_BYTES = 1024 * 1024
_HEADER = struct.Struct(">QB")  # chunk position, 1 if last
_LENGTH = struct.Struct(">I")
_MAX_TOKEN = 2 * CHUNK_BYTES  # a 1 MiB chunk's token is ~1.4 MiB; anything longer is not ours
# Decrypted files are handed out in a temporary file that stays in memory up to this size.
SPOOL_BYTES = 8 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _chunks(source: Readable | File) -> Iterator[bytes]:
    if isinstance(source, File):
        yield from source.chunks(CHUNK_BYTES)  # from the start, as Django's storages read files
        return
    while chunk := source.read(CHUNK_BYTES):
        yield chunk


def encrypt_stream(source: Readable | File, target: Writable) -> tuple[int, str]:
    """Encrypt `source` chunk by chunk into `target` with the newest key; returns the plain data's size and
    SHA-256, computed on the way."""
    fernet = _fernets(_keys())[1]
    digest, size = hashlib.sha256(), 0
    target.write(STREAM_MAGIC)
    position = 0
    pending = None
    for chunk in _chunks(source):
        if not chunk:
            continue
        if pending is not None:
            _write_record(target, fernet, position, pending, last=False)
            position += 1
        pending = chunk
        digest.update(chunk)
        size += len(chunk)
    _write_record(target, fernet, position, pending or b"", last=True)
    return size, digest.hexdigest()


def _write_record(target: Writable, fernet: Fernet, position: int, chunk: bytes, *, last: bool) -> None:
    token = fernet.encrypt(_HEADER.pack(position, int(last)) + chunk)
    target.write(_LENGTH.pack(len(token)))
    target.write(token)


def _tokens(source: Readable) -> Iterator[bytes]:
    """The raw tokens of a stream (after its magic), or CryptoError if it is cut off or malformed."""
    while True:
        length = source.read(_LENGTH.size)
        if not length:
            return
        (size,) = _LENGTH.unpack(length) if len(length) == _LENGTH.size else (0,)
        if not 0 < size <= _MAX_TOKEN:
            raise CryptoError("This encrypted file is damaged: a chunk has an impossible length.")
        token = source.read(size)
        if len(token) != size:
            raise CryptoError("This encrypted file is cut short.")
        yield token


def decrypt_stream(source: Readable) -> Iterator[bytes]:
    """The plain chunks of an encrypted file (either format), checked in order; CryptoError if it was
    altered, cut short or encrypted with a key we no longer have."""
    keys = _keys()
    multi = _fernets(keys)[0]
    start = source.read(len(STREAM_MAGIC))
    if start != STREAM_MAGIC:  # one token, written before files were chunked
        try:
            yield multi.decrypt(start + source.read())
        except InvalidToken:
            raise _unreadable(len(keys)) from None
        return
    expected, finished = 0, False
    for token in _tokens(source):
        if finished:
            raise CryptoError("This encrypted file has data after its last chunk.")
        try:
            plain = multi.decrypt(token)
        except InvalidToken:
            raise _unreadable(len(keys)) from None
        position, last = _HEADER.unpack_from(plain)
        if position != expected:
            raise CryptoError("This encrypted file is damaged: its chunks are out of order.")
        expected, finished = expected + 1, bool(last)
        yield plain[_HEADER.size :]
    if not finished:
        raise CryptoError("This encrypted file is cut short.")


def rotate_stream(source: Readable, target: Writable) -> None:
    """Re-encrypt an encrypted file (either format) with the newest key, in the chunked format."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed below
    try:
        for chunk in decrypt_stream(source):
            spool.write(chunk)
        spool.seek(0)
        encrypt_stream(spool, target)
    finally:
        spool.close()


def stream_uses_newest_key(source: Readable) -> bool:
    """Whether the file's first token opens with the newest key (all of a file's chunks share one key)."""
    newest = _fernets(_keys())[1]
    start = source.read(len(STREAM_MAGIC))
    if start != STREAM_MAGIC:
        return False  # one-token files are rewritten chunked
    token = next(_tokens(source), b"")
    try:
        newest.decrypt(token)
    except InvalidToken:
        return False
    return True


def decrypted_copy(source: Readable) -> IO[bytes]:
    """A seekable temporary file holding the plain data (in memory up to SPOOL_BYTES, then on disk)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
    try:
        for chunk in decrypt_stream(source):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return cast(IO[bytes], spool)


# -- files -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedFile:
    name: str
    size: int  # of the plain data
    sha256: str  # of the plain data


def _encrypted_copy(content: Readable | File) -> IO[bytes]:
    return _encrypted(content)[0]


def _encrypted(content: Readable | File) -> tuple[IO[bytes], int, str]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
    size, digest = encrypt_stream(content, cast(BinaryIO, spool))
    spool.seek(0)
    return cast(IO[bytes], spool), size, digest


def save_encrypted_file(
    name_hint: str, source: bytes | Readable | File, *, storage: Storage | None = None
) -> SavedFile:
    """Encrypt and store, reading the source once in chunks; returns the stored name and the plain data's
    size and SHA-256."""
    storage = storage or default_storage
    encrypted, size, digest = _encrypted(io.BytesIO(source) if isinstance(source, bytes) else source)
    with encrypted:
        return SavedFile(storage.save(name_hint, File(encrypted)), size, digest)


def save_encrypted(name_hint: str, data: bytes | Readable | File, *, storage: Storage | None = None) -> str:
    """Encrypt `data` (bytes or a file, read in chunks) and store it under a name like `name_hint` (the
    storage may pick another); returns the stored name."""
    return save_encrypted_file(name_hint, data, storage=storage).name


def read_encrypted(name: str, *, storage: Storage | None = None) -> bytes:
    storage = storage or default_storage
    with storage.open(name, "rb") as file:
        return b"".join(decrypt_stream(file))


@deconstructible(path="core.crypto.EncryptedStorage")
class EncryptedStorage(Storage):
    """The default storage, with every file encrypted on the way in and decrypted on the way out: a model
    FileField given `storage=encrypted_storage` is read and written as usual and never holds plain data on
    disk. There is no path() or url(): files are only served by views that check who is asking."""

    @property
    def raw(self) -> Storage:
        return default_storage

    def _open(self, name: str, mode: str = "rb") -> File:
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("Encrypted files are written with save(), not opened for writing.")
        with self.raw.open(name, "rb") as stored:
            return File(decrypted_copy(stored), name=PurePosixPath(name).name)

    def _save(self, name: str, content: File) -> str:
        with _encrypted_copy(content) as encrypted:
            return self.raw.save(name, File(encrypted), max_length=None)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return self.raw.get_available_name(name, max_length=max_length)

    def delete(self, name: str) -> None:
        self.raw.delete(name)

    def exists(self, name: str) -> bool:
        return self.raw.exists(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self.raw.listdir(path)

    def size(self, name: str) -> int:
        return self.raw.size(name)  # of the encrypted file; the plain size is recorded beside it where needed

    def url(self, name: str | None) -> str:
        raise NotImplementedError("Encrypted files have no public URL.")


encrypted_storage = EncryptedStorage()


def stored_encrypted_fields() -> list[tuple[str, str]]:
    """Every FileField holding encrypted files: those registered, and those on encrypted storage."""
    fields = list(ENCRYPTED_FILE_FIELDS)
    for model in apps.get_models():
        for model_field in model._meta.get_fields():
            if isinstance(model_field, models.FileField) and isinstance(
                model_field.storage, EncryptedStorage
            ):
                entry = (model._meta.label, model_field.name)
                if entry not in fields:
                    fields.append(entry)
    return fields


def _raw_storage(file_field: models.FileField) -> Storage:
    storage = file_field.storage
    return storage.raw if isinstance(storage, EncryptedStorage) else storage


def seal_plain_files(model: type[models.Model], field_name: str) -> int:
    """Encrypt the files a field wrote in the clear before it was encrypted (its migration runs this once);
    files already encrypted are left alone. Returns how many were sealed."""
    file_field = cast(models.FileField, model._meta.get_field(field_name))
    storage = _raw_storage(file_field)
    sealed = 0
    rows = model._default_manager.exclude(**{field_name: ""}).values_list("pk", field_name)
    for pk, name in rows.iterator(chunk_size=500):
        try:
            with storage.open(name, "rb") as file:
                if file.read(len(STREAM_MAGIC)) == STREAM_MAGIC:
                    continue
                with _encrypted_copy(file) as encrypted:
                    new_name = storage.save(name, File(encrypted))
        except FileNotFoundError:
            continue  # nothing to protect
        model._default_manager.filter(pk=pk).update(**{field_name: new_name})
        storage.delete(name)
        sealed += 1
    return sealed


def _walk(storage: Storage, folder: str) -> Iterator[str]:
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(files):
        yield f"{folder}/{name}"
    for sub in sorted(folders):
        yield from _walk(storage, f"{folder}/{sub}")


def _replace(storage: Storage, name: str, transform: Callable[[Readable, Writable], object]) -> None:
    """Rewrite a file nobody points to by row under its own name, so the events naming it stay true."""
    with storage.open(name, "rb") as file, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as fresh:
        transform(cast(BinaryIO, file), cast(BinaryIO, fresh))
        fresh.seek(0)
        temporary = storage.save(f"{name}.new", File(fresh))
    try:
        os.replace(storage.path(temporary), storage.path(name))  # atomic: readers see old or new
    except NotImplementedError:  # a storage without local paths: delete, then save under the same name
        with storage.open(temporary, "rb") as fresh_file:
            storage.delete(name)
            storage.save(name, fresh_file)
        storage.delete(temporary)


def seal_plain_folder(folder: str) -> int:
    """Encrypt the files of an encrypted folder that were written in the clear (a migration runs this)."""
    storage = encrypted_storage.raw
    sealed = 0
    for name in list(_walk(storage, folder)):
        with storage.open(name, "rb") as file:
            if file.read(len(STREAM_MAGIC)) == STREAM_MAGIC:
                continue
        _replace(storage, name, lambda source, target: encrypt_stream(source, target))
        sealed += 1
    return sealed


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
    storage = _raw_storage(file_field)
    with storage.open(name, "rb") as file:
        if stream_uses_newest_key(file):
            return False
    instance = model._default_manager.get(pk=pk)
    with storage.open(name, "rb") as file, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as fresh:
        rotate_stream(file, cast(BinaryIO, fresh))
        fresh.seek(0)
        new_name = storage.save(file_field.generate_filename(instance, PurePosixPath(name).name), File(fresh))
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
    storage = encrypted_storage.raw
    for folder in list(ENCRYPTED_FOLDERS):
        names = list(_walk(storage, folder))
        say(f"{folder}/: {len(names)} file(s)")
        for name in names:
            try:
                with storage.open(name, "rb") as file:
                    current = stream_uses_newest_key(cast(BinaryIO, file))
                if current:
                    report.current += 1
                    continue
                _replace(storage, name, rotate_stream)
                report.rotated += 1
            except Exception as exc:  # noqa: BLE001 - as for rows below: reported, not fatal
                line = f"{name}: {exc}"
                report.failed.append(line)
                say(f"FAILED {line}")
    for label, field_name in stored_encrypted_fields():
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
