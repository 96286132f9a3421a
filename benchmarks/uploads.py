"""Upload memory: how much one upload raises a web worker's memory above its baseline (target < 64 MiB).

A single sync gunicorn worker (one process, one thread, as deploy/ runs each) serves the API and the portal.
Before each upload its peak resident size is reset (/proc/PID/clear_refs) and its resident size taken as the
baseline; after the upload, the peak (VmHWM) less the baseline is what that upload cost. Three uploads:

1. a 6.3 MB ZIP holding 10 entries of 95 MiB each (950 MiB unpacked), sent to the API as one answer's file;
2. the same ZIP as the portal's answers ZIP, one folder per request, so each entry is unpacked and stored;
3. a single 200 MB CSV file sent to the API (the per-file and per-answer caps are raised to 256 MiB for it).

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default .../datacommunity_bench_uploads), dropped and
re-created each run, and a temporary media directory. Prints figures.

    .venv/bin/python benchmarks/uploads.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.portal import serve, setup  # noqa: E402

BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datacommunity_bench_uploads"
)
MIB = 1024 * 1024
ENTRIES, ENTRY_BYTES = 10, 95 * MIB
SINGLE_BYTES = 200 * 1000 * 1000
TARGET_MIB = 64


def write_zip(path: Path, folders: list[str] | None) -> None:
    """Text entries that compress about 150:1 (under the bomb ratio): some random hex, then repeated rows."""
    rows = b"0,0\n" * (MIB // 4)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(ENTRIES):
            name = f"{folders[index]}/export.csv" if folders else f"export-{index}.csv"
            with archive.open(name, "w", force_zip64=True) as entry:
                head = os.urandom(520 * 1024).hex().encode()  # about 1 MiB that compresses only to half
                entry.write(head)
                left = ENTRY_BYTES - len(head)
                while left > 0:
                    entry.write(rows[: min(left, len(rows))])
                    left -= min(left, len(rows))


def write_csv(path: Path) -> None:
    line = b"2026-01-01T00:00:00Z,trip,12.50,GBP,central london\n"
    with path.open("wb") as file:
        written = 0
        while written < SINGLE_BYTES:
            chunk = line * 20000
            file.write(chunk)
            written += len(chunk)


def multipart(path: Path, field: str, fields: dict[str, str], into: Path) -> tuple[str, int]:
    """Write a multipart/form-data body to `into`; return its content type and length."""
    boundary = uuid.uuid4().hex
    with into.open("wb") as body:
        for name, value in fields.items():
            body.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        with path.open("rb") as source:
            while chunk := source.read(MIB):
                body.write(chunk)
        body.write(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", into.stat().st_size


def worker_pid(master: int) -> int:
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def post(url: str, body: Path, content_type: str, length: int, headers: dict[str, str]) -> int:
    with body.open("rb") as data:
        request = urllib.request.Request(
            url, data=data, method="POST", headers={**headers, "Content-Type": content_type}
        )
        request.add_header("Content-Length", str(length))
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            print(f"    {url}: HTTP {error.code}: {error.read()[:300]!r}", flush=True)
            return error.code


def measured(pid: int, label: str, send) -> float:
    """Peak memory above the baseline while `send()` runs, in MiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to the current resident size
    baseline = status_kib(pid, "VmRSS")
    start = time.perf_counter()
    status = send()
    seconds = time.perf_counter() - start
    rise = (status_kib(pid, "VmHWM") - baseline) / 1024
    verdict = "ok" if rise < TARGET_MIB and status < 400 else "MISSED"
    print(
        f"  {label}: HTTP {status} in {seconds:.1f} s, worker peak {rise:.1f} MiB above its baseline of "
        f"{baseline / 1024:.0f} MiB (target < {TARGET_MIB} MiB) {verdict}",
        flush=True,
    )
    return rise


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    session_key, token = setup(BENCH_URL, requests=ENTRIES + 2)
    from requests_engine.models import DataRightsRequest

    references = list(DataRightsRequest.objects.order_by("pk").values_list("reference", flat=True))
    print(f"Upload memory: one gunicorn sync worker; files in {work}", flush=True)
    print("  writing the test files…", flush=True)
    flat_zip, folder_zip, single = work / "answers.zip", work / "by-request.zip", work / "export.csv"
    write_zip(flat_zip, None)
    write_zip(folder_zip, references[2 : 2 + ENTRIES])
    write_csv(single)
    print(
        f"  {flat_zip.name}: {flat_zip.stat().st_size / 1e6:.1f} MB holding {ENTRIES} × 95 MiB; "
        f"{single.name}: {single.stat().st_size / 1e6:.0f} MB",
        flush=True,
    )
    env = {
        **os.environ,
        "DATABASE_URL": BENCH_URL,
        "DEBUG": "false",
        "MEDIA_ROOT": str(work / "media"),
        "EMAIL_DIRECTORY": str(work / "mail"),
        "UPLOAD_MAX_BYTES": str(256 * MIB),
        "UPLOAD_MAX_ANSWER_BYTES": str(256 * MIB),
    }
    try:
        with serve(env, "--workers", "1", "--timeout", "600") as (base, server):
            pid = worker_pid(server.pid)
            api = {"Authorization": f"Bearer {token}"}
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/requests/", headers=api)).read()

            def api_fulfil(reference: str, path: Path) -> int:
                content_type, length = multipart(path, "files", {"note": "Your data."}, work / "body")
                return post(
                    f"{base}/api/v1/requests/{reference}/fulfil/", work / "body", content_type, length, api
                )

            cookie = {"Cookie": f"sessionid={session_key}"}
            page = urllib.request.urlopen(urllib.request.Request(f"{base}/respond/requests/", headers=cookie))
            csrf_cookie = re.search(r"csrftoken=([^;]+)", page.headers.get("Set-Cookie", "")).group(1)
            csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.read()).group(1).decode()

            def portal_zip() -> int:
                content_type, length = multipart(
                    folder_zip, "answers_zip", {"csrfmiddlewaretoken": csrf}, work / "body"
                )
                headers = {"Cookie": f"sessionid={session_key}; csrftoken={csrf_cookie}"}
                return post(f"{base}/respond/requests/csv/", work / "body", content_type, length, headers)

            rises = [
                measured(
                    pid, f"API, {flat_zip.name} as one file", lambda: api_fulfil(references[0], flat_zip)
                ),
                measured(pid, f"portal answers ZIP, {ENTRIES} folders unpacked and stored", portal_zip),
                measured(
                    pid,
                    f"API, a single {SINGLE_BYTES // 10**6} MB file",
                    lambda: api_fulfil(references[1], single),
                ),
            ]
            stored = sum(1 for path in (work / "media").rglob("*") if path.is_file())
            print(f"  files stored: {stored}; largest rise {max(rises):.1f} MiB (target < {TARGET_MIB} MiB)")
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
