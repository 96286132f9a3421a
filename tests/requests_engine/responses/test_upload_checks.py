"""A returned ZIP is checked from its directory before anything is extracted, archives inside it too."""

import io
import zipfile

import pytest

from requests_engine.exceptions import UploadRefused
from requests_engine.responses.files import ZIP_MAX_DEPTH, Upload, check_upload, check_uploads


def zipped(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_stored_zip_holding_a_bomb_is_refused():
    # The outer archive stores (does not compress) a small ZIP that unpacks to 300 MB.
    bomb = zipped({"zeros.bin": b"\0" * (300 * 1024 * 1024)})
    outer = zipped({"REF1/inner.zip": bomb}, compression=zipfile.ZIP_STORED)
    assert len(outer) < 1024 * 1024
    with pytest.raises(UploadRefused, match="ZIP bomb"):
        check_upload(Upload("answers.zip", outer))


def test_nested_archives_are_checked_to_a_fixed_depth():
    data = zipped({"data.json": b"{}"})
    for _ in range(ZIP_MAX_DEPTH - 1):
        data = zipped({"inner.zip": data})
    assert check_upload(Upload("ok.zip", data))[1] == "application/zip"
    with pytest.raises(UploadRefused, match=f"nested more than {ZIP_MAX_DEPTH} deep"):
        check_upload(Upload("deep.zip", zipped({"inner.zip": data})))


def test_nested_archives_count_towards_the_unpacked_total(settings):
    settings.UPLOAD_MAX_UNZIPPED_BYTES = 1000
    inner = zipped({"a.csv": b"a," * 300})  # 600 bytes
    with pytest.raises(UploadRefused, match="more than the 1,000 bytes allowed"):
        check_upload(Upload("two.zip", zipped({"one.zip": inner, "two.zip": inner})))


@pytest.mark.parametrize("name", ["REF1\\data.json", "REF1/da\x07ta.json"])
def test_names_with_backslashes_or_control_characters_are_refused(name):
    with pytest.raises(UploadRefused, match="backslash|control characters"):
        check_upload(Upload("names.zip", zipped({name: b"{}"})))


def test_one_answers_files_together_are_capped(settings):
    settings.UPLOAD_MAX_ANSWER_BYTES = 2 * 1024 * 1024
    files = [Upload(f"part{n}.csv", b"x" * (1024 * 1024)) for n in range(3)]
    with pytest.raises(UploadRefused, match="more than the 2 MB one answer may carry"):
        check_uploads(files)
    check_uploads(files[:2])
