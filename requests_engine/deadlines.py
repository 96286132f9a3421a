"""Statutory deadlines for UK GDPR rights requests and DPA 2018 s.164A complaints.

Pure date arithmetic, no database. The rules and their sources are in shared/legal/RULES.md (a)-(c) and (j);
shared/legal/deadline_vectors.json holds the dated examples the tests reproduce.

A deadline is the *end* of the returned day. `received` is the relevant time (Art 12A UK GDPR): the latest of
receipt of the request and receipt of requested ID, proof of authority or fee, as a Europe/London date.
"""

from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays
from dateutil.relativedelta import relativedelta

# gov.uk publishes bank holidays per UK division; the controller's division decides (RULES (a), default E&W).
JURISDICTIONS: tuple[str, ...] = ("england-and-wales", "scotland", "northern-ireland")
_SUBDIVISIONS: dict[str, str] = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}

# Art 12(3) UK GDPR: the period "may be extended by two further months".
MAX_EXTENSION_MONTHS = 2
# A clarification pause (Art 12A) longer than ten years is a data-entry error, not a pause.
MAX_PAUSED_DAYS = 3660
# s.164A(3) DPA 2018: acknowledge "within the period of 30 days beginning when the complaint is received".
COMPLAINT_ACKNOWLEDGEMENT_DAYS = 30

# Outside the years the holidays package covers, every weekday would silently count as a working day.
_GB_HOLIDAY_DATA = holidays.country_holidays("GB")
_FIRST_YEAR: int = _GB_HOLIDAY_DATA.start_year
_LAST_YEAR: int = _GB_HOLIDAY_DATA.end_year
# The latest deadline is received + 3 months + MAX_PAUSED_DAYS + a few days of roll: keep it in range.
_LAST_RECEIVED = date(_LAST_YEAR - 11, 12, 31)


@lru_cache(maxsize=256)
def _bank_holidays(jurisdiction: str, year: int) -> frozenset[date]:
    # Holidays are data, not rules (RULES (a)): the package has substitute days and one-off proclamations
    # such as Scotland's Mon 15 June 2026. An immutable set per year is safe to share between threads,
    # unlike a holidays object that expands itself on lookup.
    return frozenset(holidays.country_holidays("GB", subdiv=_SUBDIVISIONS[jurisdiction], years=year))


def _check_date(value: object, name: str, *, latest: date) -> None:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValueError(f"{name}: must be a datetime.date without a time (got {value!r})")
    if not date(_FIRST_YEAR, 1, 1) <= value <= latest:
        raise ValueError(
            f"{name}: must be between {_FIRST_YEAR}-01-01 and {latest.isoformat()}, "
            f"the range of the bank holiday data (got {value.isoformat()})"
        )


def _check_jurisdiction(value: object) -> None:
    if value not in JURISDICTIONS:
        raise ValueError(f"jurisdiction: must be one of {', '.join(JURISDICTIONS)} (got {value!r})")


def _check_whole_number(value: object, name: str, *, maximum: int) -> None:
    # bool is a subclass of int, but extension_months=True is a bug, not one month.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{name}: must be a whole number from 0 to {maximum} (got {value!r})")


def _check_request(
    received: object, jurisdiction: object, extension_months: object, paused_days: object
) -> None:
    _check_date(received, "received", latest=_LAST_RECEIVED)
    _check_jurisdiction(jurisdiction)
    _check_whole_number(extension_months, "extension_months", maximum=MAX_EXTENSION_MONTHS)
    _check_whole_number(paused_days, "paused_days", maximum=MAX_PAUSED_DAYS)


def _is_working_day(day: date, jurisdiction: str) -> bool:
    return day.weekday() < 5 and day not in _bank_holidays(jurisdiction, day.year)


def _roll(day: date, jurisdiction: str) -> date:
    # ICO right-of-access guidance: a deadline on a weekend or public holiday "moves to the end of the next
    # working day".
    while not _is_working_day(day, jurisdiction):
        day += timedelta(days=1)
    return day


def is_working_day(day: date, *, jurisdiction: str = "england-and-wales") -> bool:
    """True unless `day` is a Saturday, a Sunday or a bank holiday in `jurisdiction`."""
    _check_date(day, "day", latest=date(_LAST_YEAR, 12, 31))
    _check_jurisdiction(jurisdiction)
    return _is_working_day(day, jurisdiction)


def next_working_day_on_or_after(day: date, *, jurisdiction: str = "england-and-wales") -> date:
    """The roll: `day` itself if it is a working day, else the next working day."""
    _check_date(day, "day", latest=date(_LAST_YEAR, 12, 20))
    _check_jurisdiction(jurisdiction)
    return _roll(day, jurisdiction)


def add_months(day: date, months: int) -> date:
    """The corresponding date `months` later, or the last day of that month if there is none.

    ICO: count "to the end of the same date in the following month"; with no such date "use the last day
    of that month instead". relativedelta clamps the day in exactly this way (31 Jan + 1 month = 28/29 Feb).
    """
    return day + relativedelta(months=months)


def statutory_due_date(
    received: date,
    *,
    jurisdiction: str = "england-and-wales",
    extension_months: int = 0,
    paused_days: int = 0,
) -> date:
    """The last day to act on a rights request (Arts 15-22 UK GDPR).

    due = roll(add_months(received, 1 + extension_months) + paused_days days)

    Art 12(3) UK GDPR: "within one month of receipt", extendable "by two further months"; ICO: the day of
    receipt is day one and an extension runs "three months from the original start date". Art 12A (DUAA
    2025 s.76): clarification days, counted inclusively, "do not count towards" the period, so they are added
    to the unrolled end date before the weekend/bank holiday roll (RULES ambiguity table #1-#3).
    """
    _check_request(received, jurisdiction, extension_months, paused_days)
    end = add_months(received, 1 + extension_months) + timedelta(days=paused_days)
    return _roll(end, jurisdiction)


def extension_notice_due(
    received: date, *, jurisdiction: str = "england-and-wales", paused_days: int = 0
) -> date:
    """The last day to give notice of an extension, with reasons.

    Art 12A UK GDPR: notice "before the end of the period of one month beginning with the relevant time";
    a clarification pause does not count towards that month either (RULES (c)). Rolled like every deadline
    (RULES ambiguity table #8), so it is the one-month due date.
    """
    return statutory_due_date(
        received, jurisdiction=jurisdiction, extension_months=0, paused_days=paused_days
    )


def latest_plausible_due_date(
    received: date,
    *,
    jurisdiction: str = "england-and-wales",
    extension_months: int = 0,
    paused_days: int = 0,
) -> date:
    """The latest due date under any reading in the RULES ambiguity table; never before statutory_due_date.

    Escalation waits until this date has passed; reminders use statutory_due_date. Readings, each rolled:
    our rule; #1 the extension chained onto the rolled one-month deadline; #2 the start shifted by the
    pause; #3 the month-end rolled before the pause is added. #4-#6 only ever give earlier dates.
    """
    _check_request(received, jurisdiction, extension_months, paused_days)
    pause = timedelta(days=paused_days)

    def period_ends(months: int) -> list[date]:
        return [
            _roll(add_months(received, months) + pause, jurisdiction),
            _roll(add_months(received + pause, months), jurisdiction),
            _roll(_roll(add_months(received, months), jurisdiction) + pause, jurisdiction),
        ]

    readings = period_ends(1 + extension_months)
    if extension_months:
        readings += [_roll(add_months(end, extension_months), jurisdiction) for end in period_ends(1)]
    return max(readings)


def earliest_plausible_due_date(
    received: date,
    *,
    jurisdiction: str = "england-and-wales",
    extension_months: int = 0,
    paused_days: int = 0,
) -> date:
    """The earliest due date under any reading in the RULES ambiguity table, for reminders (RULES.md: "reminders
    use the earliest"). Adds #6, the strict statutory reading that a month "beginning with" the day of receipt
    ends the day before the corresponding date, to the readings latest_plausible_due_date weighs."""
    _check_request(received, jurisdiction, extension_months, paused_days)
    pause = timedelta(days=paused_days)
    months = 1 + extension_months
    readings = [
        statutory_due_date(
            received, jurisdiction=jurisdiction, extension_months=extension_months, paused_days=paused_days
        ),
        _roll(add_months(received + pause, months), jurisdiction),
        _roll(add_months(received, months) - timedelta(days=1) + pause, jurisdiction),
    ]
    return min(readings)


def complaint_acknowledgement_due(received: date, *, jurisdiction: str = "england-and-wales") -> date:
    """The last day for a controller to acknowledge a complaint made to it.

    s.164A(3) DPA 2018 (DUAA 2025 s.103, in force 19 June 2026): "within the period of 30 days beginning
    when the complaint is received". ICO complaints guidance: the 30 days start the day after receipt, and a
    last day on a weekend or public holiday moves to the next working day.
    """
    _check_date(received, "received", latest=_LAST_RECEIVED)
    _check_jurisdiction(jurisdiction)
    return _roll(received + timedelta(days=COMPLAINT_ACKNOWLEDGEMENT_DAYS), jurisdiction)
