import io
import logging
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import segno
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from core import pdf

LETTER = "<html><body><h1>Mandate</h1><p>{}</p></body></html>"


@pytest.fixture(autouse=True)
def seal_dir(settings, tmp_path):
    # Every test gets its own seal, so none touches var/seal and none sees another's cached key.
    settings.SEAL_DIR = tmp_path / "seal"
    pdf._load_seal.cache_clear()
    yield settings.SEAL_DIR
    pdf._load_seal.cache_clear()


def pdf_text(document: bytes) -> str:
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=document, capture_output=True, check=True
    )
    return result.stdout.decode()


def sealed_letter(text: str = "I authorise the community to act for me.") -> bytes:
    return pdf.seal_pdf(pdf.render_pdf(LETTER.format(text)), reason="Mandate signed")


def test_rendered_pdf_keeps_escaped_markup_quotes_and_right_to_left_text():
    # The template engine escapes the member's name; the PDF must show it literally, not run or drop it.
    name = "&lt;script&gt;alert(1)&lt;/script&gt; O'Brien &quot;Jo&quot; مرحبا بالعالم שלום עולם"
    text = pdf_text(pdf.render_pdf(LETTER.format(name)))
    assert "<script>alert(1)</script>" in text
    assert 'O\'Brien "Jo"' in text
    # pdftotext wraps right-to-left runs in direction marks; the letters themselves come back in order.
    assert "مرحبا بالعالم" in text
    assert "שלום עולם" in text


def test_rendered_pdf_keeps_an_emoji_that_dejavu_draws():
    # DejaVu Sans (Debian fonts-dejavu-core) has monochrome glyphs for the basic emoticons block; emoji
    # outside it (e.g. U+1F984) would come out as an empty box, as there is no colour emoji font here.
    assert "😀" in pdf_text(pdf.render_pdf(LETTER.format("Thanks 😀")))


def test_render_refuses_network_and_files_outside_the_static_folders(settings, tmp_path, caplog):
    static = tmp_path / "static"
    static.mkdir()
    (static / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    settings.STATICFILES_DIRS = [static]
    html = (
        '<img src="http://example.com/track.png">'
        '<img src="file:///etc/hostname">'
        f'<img src="{(static / "logo.svg").as_uri()}">'
        '<img src="data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E">'
    )
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        pdf.render_pdf(html)
    failures = [r.getMessage() for r in caplog.records if "Failed to load" in r.getMessage()]
    assert len(failures) == 2
    assert "Refusing to fetch over the network" in failures[0]
    assert "Refusing a file outside the static folders" in failures[1]


def test_qr_code_renders_with_the_modules_segno_made(tmp_path):
    url = "https://community.test/mandates/verify/3f2a"
    page = (
        "<style>@page { size: 200px 200px; margin: 0 } body { margin: 0 } svg { display: block }</style>"
        + pdf.qr_svg(url)
    )
    (tmp_path / "qr.pdf").write_bytes(pdf.render_pdf(page))
    # At 96 dpi one CSS pixel is one image pixel, so each module is a 4-pixel square after a 2-module border.
    subprocess.run(
        ["pdftoppm", "-r", "96", "-gray", "-singlefile", tmp_path / "qr.pdf", tmp_path / "qr"], check=True
    )
    image = Image.open(tmp_path / "qr.pgm")
    matrix = segno.make(url, error="m").matrix  # the same call qr_svg makes
    for row, modules in enumerate(matrix):
        for column, dark in enumerate(modules):
            pixel = image.getpixel(((column + 2.5) * 4, (row + 2.5) * 4))
            assert (pixel < 128) == bool(dark), (row, column)


def test_sealed_pdf_is_intact_and_trusted():
    check = pdf.verify_seal(sealed_letter())
    assert check.intact
    assert check.trusted
    assert check.covers_whole_file
    assert check.ok
    assert check.signed_at is not None


def test_sealed_pdf_still_reads_as_the_letter():
    assert "I authorise the community" in pdf_text(sealed_letter())


def test_changing_one_signed_byte_breaks_the_seal():
    sealed = bytearray(sealed_letter())
    # A byte inside the first stream (the page's content): covered by the signature, and not needed to
    # parse the file, so it is the digest check that must catch it.
    position = sealed.index(b"stream\n") + len(b"stream\n") + 10
    sealed[position] ^= 0x01
    check = pdf.verify_seal(bytes(sealed))
    assert not check.intact
    assert not check.ok
    assert "changed after it was sealed" in check.summary


def test_content_appended_after_sealing_is_reported():
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed_letter()))
    writer.root["/Lang"] = generic.TextStringObject("fr")
    writer.update_root()
    appended = io.BytesIO()
    writer.write(appended)
    check = pdf.verify_seal(appended.getvalue())
    assert check.intact  # the sealed revision itself is untouched
    assert not check.covers_whole_file
    assert not check.ok
    assert "added to the file after sealing" in check.summary


def test_unsigned_pdf_is_reported_as_carrying_no_seal():
    check = pdf.verify_seal(pdf.render_pdf(LETTER.format("no seal")))
    assert not check.intact
    assert not check.trusted
    assert check.summary == "The file carries no seal."


@pytest.mark.parametrize("data", [b"", b"not a pdf at all", b"%PDF-1.7\n" + bytes(range(256)) * 4])
def test_garbage_is_reported_not_intact_without_raising(data):
    check = pdf.verify_seal(data)
    assert not check.intact
    assert not check.trusted
    assert check.summary.startswith("Not a readable PDF")


def test_seal_from_another_certificate_is_intact_but_not_trusted(settings, tmp_path):
    sealed_elsewhere = sealed_letter()
    settings.SEAL_DIR = tmp_path / "our-real-seal"
    pdf._load_seal.cache_clear()
    check = pdf.verify_seal(sealed_elsewhere)
    assert check.intact
    assert not check.trusted
    assert not check.ok


def test_seal_key_is_created_once_with_private_permissions_and_reused(seal_dir):
    pdf.seal_pdf(pdf.render_pdf(LETTER.format("one")), reason="first")
    certificate = pdf.seal_certificate_pem()
    key = (seal_dir / pdf.KEY_FILE).read_bytes()
    assert stat.S_IMODE(seal_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((seal_dir / pdf.KEY_FILE).stat().st_mode) == 0o600

    pdf._load_seal.cache_clear()  # as a new process would: load from disk, not create again
    second = pdf.seal_pdf(pdf.render_pdf(LETTER.format("two")), reason="second")
    assert pdf.seal_certificate_pem() == certificate
    assert (seal_dir / pdf.KEY_FILE).read_bytes() == key
    assert pdf.verify_seal(second).trusted


def test_workers_starting_together_share_one_seal_key(seal_dir):
    # Separate open() calls take separate flock locks, so threads race here exactly as processes would.
    start = threading.Barrier(6)

    def load():
        start.wait()
        seal = pdf._load_seal.__wrapped__(seal_dir)  # bypass the cache: each worker reads for itself
        return seal.certificate.dump(), seal.signer.signing_key.dump()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = set(pool.map(lambda _: load(), range(6)))
    assert len(results) == 1
