"""The deadline calculator against shared/legal/deadline_vectors.json and the rules in shared/legal/RULES.md.

Pure date arithmetic: no database, no Django settings, no clock (nothing here reads "today").
"""

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_engine.deadlines import (
    JURISDICTIONS,
    add_months,
    complaint_acknowledgement_due,
    extension_notice_due,
    is_working_day,
    latest_plausible_due_date,
    next_working_day_on_or_after,
    statutory_due_date,
)

SUBDIVISIONS = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}


def _vectors_path() -> Path:
    shared = os.environ.get("SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared"
    return base / "legal" / "deadline_vectors.json"


def _load_vectors() -> list[dict[str, Any]]:
    path = _vectors_path()
    if not path.is_file():
        # Fail the whole module loudly: silently skipping the legal test vectors would hide a broken setup.
        raise FileNotFoundError(f"deadline vectors not found at {path}; set SHARED_DIR to the shared/ folder")
    return json.loads(path.read_text(encoding="utf-8"))


VECTORS = _load_vectors()
AMBIGUOUS_VECTORS = [v for v in VECTORS if v.get("alt_expected_due")]


def _due_for(vector: dict[str, Any]) -> date:
    received = date.fromisoformat(vector["received"])
    if vector["kind"] == "rights_request":
        return statutory_due_date(
            received,
            jurisdiction=vector["jurisdiction"],
            extension_months=vector["extension_months"],
            paused_days=vector["paused_days"],
        )
    if vector["kind"] == "complaint_acknowledgement":
        return complaint_acknowledgement_due(received, jurisdiction=vector["jurisdiction"])
    pytest.fail(f"unknown vector kind {vector['kind']!r}")


def test_vectors_file_has_unique_ids_and_both_kinds() -> None:
    ids = [v["id"] for v in VECTORS]
    assert len(ids) == len(set(ids))
    assert {v["kind"] for v in VECTORS} == {"rights_request", "complaint_acknowledgement"}
    assert {v["jurisdiction"] for v in VECTORS} == set(JURISDICTIONS)
    assert all(v["interpretation_dependent"] == ("alt_expected_due" in v) for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_due_date_matches_vector(vector: dict[str, Any]) -> None:
    assert _due_for(vector).isoformat() == vector["expected_due"], vector["note"]


@pytest.mark.parametrize("vector", AMBIGUOUS_VECTORS, ids=[v["id"] for v in AMBIGUOUS_VECTORS])
def test_escalation_date_is_not_before_any_reading_of_an_ambiguous_vector(vector: dict[str, Any]) -> None:
    latest_reading = max(
        date.fromisoformat(vector["expected_due"]), date.fromisoformat(vector["alt_expected_due"])
    )
    received = date.fromisoformat(vector["received"])
    if vector["kind"] == "rights_request":
        latest = latest_plausible_due_date(
            received,
            jurisdiction=vector["jurisdiction"],
            extension_months=vector["extension_months"],
            paused_days=vector["paused_days"],
        )
    else:
        # s.164A: the ICO reading (received + 30) is already the later one; there is no separate function.
        latest = complaint_acknowledgement_due(received, jurisdiction=vector["jurisdiction"])
    assert latest >= latest_reading, vector["alt_rule"]


def test_ambiguous_vectors_cover_both_kinds() -> None:
    assert {v["kind"] for v in AMBIGUOUS_VECTORS} == {"rights_request", "complaint_acknowledgement"}


# --- properties -------------------------------------------------------------------------------------------

received_dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31))
jurisdictions = st.sampled_from(JURISDICTIONS)
extensions = st.integers(min_value=0, max_value=2)
pauses = st.integers(min_value=0, max_value=200)


def _unrolled(received: date, extension_months: int, paused_days: int) -> date:
    # Written out independently of the module: corresponding date, clamped, plus the pause.
    return received + relativedelta(months=1 + extension_months) + timedelta(days=paused_days)


@settings(deadline=None)
@given(received=received_dates, jurisdiction=jurisdictions, extension_months=extensions, paused_days=pauses)
def test_due_date_is_a_working_day_on_or_shortly_after_the_unrolled_date(
    received: date, jurisdiction: str, extension_months: int, paused_days: int
) -> None:
    due = statutory_due_date(
        received, jurisdiction=jurisdiction, extension_months=extension_months, paused_days=paused_days
    )
    bank_holidays = holidays.country_holidays("GB", subdiv=SUBDIVISIONS[jurisdiction], years=due.year)
    assert due.weekday() < 5
    assert due not in bank_holidays
    unrolled = _unrolled(received, extension_months, paused_days)
    assert unrolled <= due <= unrolled + timedelta(days=10)


@settings(deadline=None)
@given(received=received_dates, jurisdiction=jurisdictions, paused_days=pauses)
def test_longer_extension_never_gives_an_earlier_due_date(
    received: date, jurisdiction: str, paused_days: int
) -> None:
    dues = [
        statutory_due_date(received, jurisdiction=jurisdiction, extension_months=n, paused_days=paused_days)
        for n in range(3)
    ]
    assert dues == sorted(dues)


@settings(deadline=None)
@given(received=received_dates, jurisdiction=jurisdictions, extension_months=extensions, paused_days=pauses)
def test_longer_pause_never_gives_an_earlier_due_date(
    received: date, jurisdiction: str, extension_months: int, paused_days: int
) -> None:
    def due(days: int) -> date:
        return statutory_due_date(
            received, jurisdiction=jurisdiction, extension_months=extension_months, paused_days=days
        )

    assert due(paused_days) <= due(paused_days + 1)


@settings(deadline=None)
@given(received=received_dates, jurisdiction=jurisdictions, extension_months=extensions, paused_days=pauses)
def test_latest_plausible_due_date_is_a_working_day_not_before_the_statutory_one(
    received: date, jurisdiction: str, extension_months: int, paused_days: int
) -> None:
    kwargs = {"jurisdiction": jurisdiction, "extension_months": extension_months, "paused_days": paused_days}
    latest = latest_plausible_due_date(received, **kwargs)
    assert latest >= statutory_due_date(received, **kwargs)
    assert is_working_day(latest, jurisdiction=jurisdiction)


@settings(deadline=None)
@given(received=received_dates, jurisdiction=jurisdictions)
def test_complaint_acknowledgement_is_the_first_working_day_from_received_plus_30(
    received: date, jurisdiction: str
) -> None:
    due = complaint_acknowledgement_due(received, jurisdiction=jurisdiction)
    assert is_working_day(due, jurisdiction=jurisdiction)
    day = received + timedelta(days=30)
    while day < due:
        assert not is_working_day(day, jurisdiction=jurisdiction)
        day += timedelta(days=1)


# --- examples ---------------------------------------------------------------------------------------------


def test_scotland_one_off_bank_holiday_15_june_2026_moves_the_deadline_in_scotland_only() -> None:
    assert not is_working_day(date(2026, 6, 15), jurisdiction="scotland")
    assert is_working_day(date(2026, 6, 15), jurisdiction="england-and-wales")
    assert is_working_day(date(2026, 6, 15), jurisdiction="northern-ireland")
    assert statutory_due_date(date(2026, 5, 15), jurisdiction="scotland") == date(2026, 6, 16)
    assert statutory_due_date(date(2026, 5, 15), jurisdiction="england-and-wales") == date(2026, 6, 15)


def test_default_jurisdiction_is_england_and_wales() -> None:
    # Easter Monday 6 Apr 2026 is a bank holiday in E&W but not in Scotland.
    assert not is_working_day(date(2026, 4, 6))
    assert statutory_due_date(date(2026, 3, 6)) == date(2026, 4, 7)


def test_next_working_day_on_or_after_keeps_a_working_day_and_rolls_past_christmas() -> None:
    assert next_working_day_on_or_after(date(2024, 12, 24)) == date(2024, 12, 24)
    assert next_working_day_on_or_after(date(2027, 12, 25), jurisdiction="scotland") == date(2027, 12, 29)


def test_add_months_clamps_to_the_last_day_of_a_shorter_month() -> None:
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2026, 3, 31), 3) == date(2026, 6, 30)
    assert add_months(date(2026, 3, 15), 0) == date(2026, 3, 15)


def test_extension_notice_is_due_with_the_one_month_deadline_moved_by_the_pause() -> None:
    # p-lands-good-friday-scotland: 27 Feb 2026 + 1 month + 7 paused = Fri 3 Apr (Good Friday) -> Mon 6 Apr.
    assert extension_notice_due(date(2026, 2, 27), jurisdiction="scotland", paused_days=7) == date(2026, 4, 6)
    assert extension_notice_due(date(2024, 11, 25)) == statutory_due_date(date(2024, 11, 25))


def test_latest_plausible_due_date_chains_an_extension_onto_the_rolled_one_month_deadline() -> None:
    # e-31jan-2026: 28 Feb (Sat) rolls to Mon 2 Mar; + 2 months = Sat 2 May -> Tue 5 May (4 May bank holiday).
    assert latest_plausible_due_date(date(2026, 1, 31), extension_months=2) == date(2026, 5, 5)
    assert statutory_due_date(date(2026, 1, 31), extension_months=2) == date(2026, 4, 30)


# --- bad arguments ----------------------------------------------------------------------------------------

GOOD = {"received": date(2026, 3, 2)}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"received": datetime(2026, 3, 2, 12, 0)}, "received"),
        ({"received": "2026-03-02"}, "received"),
        ({"received": None}, "received"),
        ({"received": date(9999, 12, 31)}, "received"),
        ({"jurisdiction": "wales"}, "jurisdiction"),
        ({"jurisdiction": "ENG"}, "jurisdiction"),
        ({"extension_months": 3}, "extension_months"),
        ({"extension_months": -1}, "extension_months"),
        ({"extension_months": True}, "extension_months"),
        ({"extension_months": 1.0}, "extension_months"),
        ({"paused_days": -1}, "paused_days"),
        ({"paused_days": 3661}, "paused_days"),
        ({"paused_days": "7"}, "paused_days"),
        ({"paused_days": False}, "paused_days"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else value,
)
def test_statutory_due_date_rejects_a_bad_argument_naming_it(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        statutory_due_date(**{**GOOD, **kwargs})
    assert str(excinfo.value).startswith(f"{argument}: ")


def test_unknown_jurisdiction_message_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as excinfo:
        statutory_due_date(date(2026, 3, 2), jurisdiction="wales")
    assert str(excinfo.value) == (
        "jurisdiction: must be one of england-and-wales, scotland, northern-ireland (got 'wales')"
    )


@pytest.mark.parametrize(
    "function",
    [statutory_due_date, latest_plausible_due_date, extension_notice_due, complaint_acknowledgement_due],
    ids=lambda function: function.__name__,
)
def test_every_deadline_function_rejects_a_datetime_and_an_unknown_jurisdiction(function: Any) -> None:
    with pytest.raises(ValueError, match=r"^received: "):
        function(datetime(2026, 3, 2, 23, 59))
    with pytest.raises(ValueError, match=r"^jurisdiction: "):
        function(date(2026, 3, 2), jurisdiction="wales")


def test_working_day_helpers_reject_a_datetime_naming_the_day() -> None:
    with pytest.raises(ValueError, match=r"^day: "):
        is_working_day(datetime(2026, 6, 15, 9, 0))
    with pytest.raises(ValueError, match=r"^day: "):
        next_working_day_on_or_after(datetime(2026, 6, 15, 9, 0))


def test_the_earliest_plausible_date_is_never_after_ours_and_catches_the_strict_reading():
    from requests_engine.deadlines import earliest_plausible_due_date

    # p-clamp-order: our rule gives 3 Mar 2025, the alternative reading 28 Feb 2025.
    assert earliest_plausible_due_date(date(2025, 1, 30), paused_days=1) == date(2025, 2, 28)
    # The strict statutory reading ends the month a day earlier than the ICO's corresponding date.
    assert earliest_plausible_due_date(date(2026, 3, 4)) <= statutory_due_date(date(2026, 3, 4))


@given(
    received=st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31)),
    extension=st.integers(0, 2),
    paused=st.integers(0, 60),
)
def test_earliest_never_after_statutory_never_after_latest(received, extension, paused):
    from requests_engine.deadlines import earliest_plausible_due_date, latest_plausible_due_date

    ours = statutory_due_date(received, extension_months=extension, paused_days=paused)
    earliest = earliest_plausible_due_date(received, extension_months=extension, paused_days=paused)
    latest = latest_plausible_due_date(received, extension_months=extension, paused_days=paused)
    assert earliest <= ours <= latest
