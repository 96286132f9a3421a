"""Render HTML to PDF, seal the PDF so any later change shows, and check a seal.

A mandate is rendered once, at signing, and sealed with the community's own self-signed certificate
(PAdES baseline B-B, SHA-256). The seal proves integrity and origin to anyone holding our certificate; it
carries no trusted timestamp, because reaching a timestamp authority would mean a network call at signing.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import segno
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.apps import apps
from django.conf import settings
from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

KEY_FILE = "seal-key.pem"
CERT_FILE = "seal-cert.pem"
SEAL_VALIDITY = timedelta(days=3652)  # ten years: a mandate must stay checkable long after signing


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- Rendering -------------------------------------------------------------------------------------------


class _LocalOnlyFetcher(URLFetcher):
    """Lets WeasyPrint read data: URIs and files under our static folders, and nothing else.

    A document we seal must not depend on, or leak to, anything on the network; and a file: URL pointing
    outside the static folders could otherwise pull in the seal key, .env or the database.
    """

    def __init__(self, roots: list[Path]) -> None:
        super().__init__(allowed_protocols={"data", "file"}, allow_redirects=False)
        self._roots = roots

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ValueError(f"Refusing a file on another host: {url}")
            path = Path(url2pathname(parts.path)).resolve()
            if not any(path.is_relative_to(root) for root in self._roots):
                raise ValueError(f"Refusing a file outside the static folders: {url}")
        elif scheme != "data":
            raise ValueError(f"Refusing to fetch over the network: {url}")
        return super().fetch(url, headers)


def _static_roots() -> list[Path]:
    roots: list[Path] = []
    if getattr(settings, "STATIC_ROOT", None):
        roots.append(Path(settings.STATIC_ROOT))
    for entry in getattr(settings, "STATICFILES_DIRS", []):
        roots.append(Path(entry[1] if isinstance(entry, tuple) else entry))  # (prefix, path) form too
    roots.extend(Path(app.path) / "static" for app in apps.get_app_configs())
    return [root.resolve() for root in roots]


def render_pdf(html: str, *, base_url: str | None = None) -> bytes:
    """Render HTML (already escaped by the template engine) to PDF bytes."""
    document = HTML(string=html, base_url=base_url, url_fetcher=_LocalOnlyFetcher(_static_roots()))
    return document.write_pdf()


def qr_svg(url: str) -> str:
    """An inline <svg> QR code for `url`, to place in HTML that render_pdf turns into vector paths."""
    # Medium error correction survives a crease or a smudge on a printed letter.
    return segno.make(url, error="m").svg_inline(scale=4, border=2, omitsize=False)


# --- The seal --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seal:
    signer: signers.SimpleSigner
    certificate: asn1_x509.Certificate


def _seal_dir() -> Path:
    return Path(getattr(settings, "SEAL_DIR", Path(settings.BASE_DIR) / "var" / "seal"))


def _new_key_and_certificate() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME, getattr(settings, "SEAL_COMMON_NAME", "Data community document seal")
            )
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # tolerate a little clock skew between processes
        .not_valid_after(now + SEAL_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # Non-repudiation ("content commitment") is what PDF signature validators expect of a signer.
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # Readers never see a half-written file: write beside it, then rename over it.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp makes it 0600 already
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp_name, path)


def _ensure_seal_files(seal_dir: Path) -> None:
    """Create the key and certificate once, even when several workers start together."""
    cert_path = seal_dir / CERT_FILE
    if cert_path.exists():  # the certificate is written last, so its presence means the pair is complete
        return
    seal_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(seal_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the file closes; the loser then finds the pair made
        if cert_path.exists():
            return
        key_pem, cert_pem = _new_key_and_certificate()
        _write_atomically(seal_dir / KEY_FILE, key_pem, 0o600)
        _write_atomically(cert_path, cert_pem, 0o644)


@functools.cache
def _load_seal(seal_dir: Path) -> _Seal:
    # Cached per process (and per folder, so tests can point elsewhere): each worker reads the key once.
    _ensure_seal_files(seal_dir)
    certificate = load_cert_from_pemder(str(seal_dir / CERT_FILE))
    signer = signers.SimpleSigner(
        signing_cert=certificate,
        signing_key=load_private_key_from_pemder(str(seal_dir / KEY_FILE), passphrase=None),
        cert_registry=SimpleCertificateStore(),
    )
    return _Seal(signer=signer, certificate=certificate)


def seal_certificate_pem() -> bytes:
    """Our seal certificate, for the verification page to offer to anyone checking a file elsewhere."""
    seal_dir = _seal_dir()
    _load_seal(seal_dir)
    return (seal_dir / CERT_FILE).read_bytes()


def seal_pdf(pdf: bytes, *, reason: str, location: str = "United Kingdom") -> bytes:
    seal = _load_seal(_seal_dir())
    metadata = signers.PdfSignatureMetadata(
        field_name="CommunitySeal",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        # Certify with no changes permitted: the document is final, and PDF readers flag any later edit.
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    output = signers.sign_pdf(writer, metadata, signer=seal.signer, output=io.BytesIO())
    return output.getvalue()


@dataclass(frozen=True)
class SealCheck:
    intact: bool  # the signed bytes are unchanged since sealing
    trusted: bool  # and the seal was made with our own certificate
    signed_at: datetime | None  # as stated by the sealer; there is no independent timestamp
    summary: str
    covers_whole_file: bool  # False when bytes were appended after the seal

    @property
    def ok(self) -> bool:
        return self.intact and self.trusted and self.covers_whole_file


def verify_seal(pdf: bytes) -> SealCheck:
    """Check the first seal on a PDF against our certificate. Never raises: the bytes may be anything.

    Synchronous (pyHanko runs its own event loop here): call it from sync views and tasks.
    """
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        signatures = reader.embedded_regular_signatures
    except Exception as error:  # untrusted input: any parser failure means "not a sealed PDF we can read"
        return SealCheck(False, False, None, f"Not a readable PDF ({type(error).__name__}).", False)
    if not signatures:
        return SealCheck(False, False, None, "The file carries no seal.", False)

    trust_root = _load_seal(_seal_dir()).certificate
    # Only our certificate is a trust root, and nothing is fetched: the check works offline.
    context = ValidationContext(trust_roots=[trust_root], allow_fetching=False)
    try:
        # skip_diff: we accept no revision after the seal at all, so pyHanko's judgement of which later
        # changes are harmless is not needed (and it logs a traceback for each one it rejects).
        status = validate_pdf_signature(signatures[0], signer_validation_context=context, skip_diff=True)
    except Exception as error:  # a malformed signature dictionary or CMS blob is a broken seal, not a crash
        return SealCheck(False, False, None, f"The seal cannot be read ({type(error).__name__}).", False)

    intact = status.intact and status.valid
    # The trust root is ours alone, so status.trusted already means "our seal"; comparing the certificate
    # too keeps that true even if someone later adds roots to the context.
    trusted = intact and status.trusted and status.signing_cert.dump() == trust_root.dump()
    whole_file = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    if not intact:
        summary = "The seal is broken: the document was changed after it was sealed."
    elif not trusted:
        summary = "The seal is intact but was not made by this community's certificate."
    elif not whole_file:
        summary = "The sealed part is unchanged, but content was added to the file after sealing."
    else:
        summary = "Sealed by this community and unchanged since."
    return SealCheck(intact, trusted, status.signer_reported_dt, summary, whole_file)
