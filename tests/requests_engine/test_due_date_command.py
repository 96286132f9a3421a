"""`manage.py due_date`, run as an operator runs it: a real process, real exit status, real stderr."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_due_date(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "due_date", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prints_only_the_due_date_for_the_ico_christmas_example() -> None:
    result = run_due_date("2024-11-25")
    assert (result.returncode, result.stdout) == (0, "2024-12-27\n"), result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["2026-05-15", "--jurisdiction", "scotland"], "2026-06-16\n"),
        (["2026-05-15", "--jurisdiction", "england-and-wales"], "2026-06-15\n"),
        (["2026-01-31", "--extension-months", "2"], "2026-04-30\n"),
        (["2025-01-30", "--paused-days", "1"], "2025-03-03\n"),
        (["--jurisdiction", "northern-ireland", "2027-01-31"], "2027-03-01\n"),
    ],
    ids=["scotland", "england-and-wales", "extension", "pause", "options-first"],
)
def test_options_change_the_due_date(args: list[str], expected: str) -> None:
    result = run_due_date(*args)
    assert (result.returncode, result.stdout) == (0, expected), result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["2024-13-01"],
        ["25/11/2024"],
        ["2024-11-25", "--jurisdiction", "wales"],
        ["2024-11-25", "--extension-months", "3"],
        ["2024-11-25", "--extension-months", "-1"],
        ["2024-11-25", "--paused-days", "-1"],
        ["2024-11-25", "--paused-days", "x"],
        ["2024-11-25", "--paused-days", "100000"],
        ["2024-11-25", "--paused-days"],
        ["2024-11-25", "2024-11-26"],
        [],
    ],
    ids=lambda args: " ".join(args) or "no-date",
)
def test_bad_argument_exits_2_with_one_line_on_stderr(args: list[str]) -> None:
    result = run_due_date(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.endswith("\n")
    assert "Traceback" not in result.stderr
