"""Timestamps: parsing what users type, and the one format memento stores.

Stored timestamps are UTC ISO-8601 strings with microseconds and a ``Z``
(``2026-11-24T10:33:11.000000Z``), so they sort as text. Naive datetimes and ISO strings
without an offset are taken as UTC.

What users type names either a moment (``2026-11-24T10:00Z``, ``now``, ``7d``, ``3 days
ago``) or a span of time (``2026-11-24``, ``today``, ``last week``, ``March 2026``):
:func:`parse_period` gives its first and last microsecond, so a filter's ``since`` takes
the start of a span and its ``until`` the end (``until="2026-11-21"`` includes that whole
day). Calendar words are read in UTC, the time zone every date memento prints is in, so
``--since 2026-11-24`` keeps exactly the memories listed with that date; weeks run Monday
to Sunday. A moment in another zone is written with its offset (``2026-11-24T00:00+01:00``).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone

from .errors import InvalidInputError

_AGE = re.compile(
    r"^(?:(?:last|past)\s+)?(\d+)\s*"
    r"(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?|mo|mons?|months?"
    r"|y|yrs?|years?)"
    r"(?:\s+ago)?$"
)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MONTHS = {
    name.lower(): number
    for names in (calendar.month_name, calendar.month_abbr)
    for number, name in enumerate(names)
    if name
}
_MONTHS["sept"] = 9
_WEEKDAYS = {name.lower(): n for n, name in enumerate(calendar.day_name)}
_WEEKDAYS.update({name.lower(): n for n, name in enumerate(calendar.day_abbr)})
_MONTH_YEAR = re.compile(r"^([a-z]+)\.?,?\s+(\d{4})$|^(\d{4})\s+([a-z]+)$")
_YEAR_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_YEAR = re.compile(r"^\d{4}$")
_LAST = timedelta(microseconds=1)

#: The forms parse_period accepts, for error messages and help texts.
FORMS = (
    "a date (2026-11-24: the whole day) or a time (2026-11-24T10:00Z), a month (2026-03, "
    "March 2026), a year (2026), an age (30m, 12h, 7d, 2w, 6mo, 1y, 3 days ago, last 2 "
    "weeks), now, today, yesterday, a weekday (monday, last friday), this or last week, "
    "month or year (calendar days in UTC)"
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_iso(value: datetime) -> str:
    # isoformat, not strftime("%Y"): glibc writes year 1 as "1", which from_iso cannot read.
    utc = value.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch (what the vector index filters on)."""
    delta = value.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_when(
    value: object, name: str = "time", *, end: bool = False, now: datetime | None = None
) -> datetime:
    """A datetime from a datetime, a date, an ISO-8601 string, an age or a phrase (the
    forms of :func:`parse_period`): the start of the span it names, or with ``end=True``
    its last microsecond (what an ``until`` filter means by ``2026-11-24``)."""
    first, last = parse_period(value, name, now)
    return last if end else first


def parse_period(
    value: object, name: str = "time", now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The first and last microsecond (UTC) of the time ``value`` names; both the same
    moment for a moment.

    Moments: a datetime, ``2026-11-24T10:00``, ``2026-11-24 10:00:00+02:00``, ``...Z``,
    ``now``, and ages meaning that long before ``now`` (default: the clock): ``30m``,
    ``12h``, ``7d``, ``2w``, ``6mo``, ``1y``, ``3 days ago``, ``last 2 weeks`` (months and
    years by the calendar). Spans: a date (``2026-11-24``, a ``datetime.date``), a month
    (``2026-03``, ``March 2026``, ``mar 2026``, or ``march``: the latest March not in the
    future), a year (``2026``), ``today``, ``yesterday``, a weekday (``friday``: the
    latest one, today included; ``last friday``: the latest before today), ``this week``,
    ``last week`` (Monday to Sunday), ``this month``, ``last month``, ``this year``,
    ``last year``.
    """
    if isinstance(value, datetime):
        moment = _in_range(value if value.tzinfo else value.replace(tzinfo=timezone.utc), name)
        return moment, moment
    if isinstance(value, date):
        return _day(value)
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{name} must be a datetime or text such as 2026-11-24 or 7d, got "
            f"{type(value).__name__}"
        )
    text = " ".join(value.strip().lower().split())
    clock = utcnow() if now is None else now.astimezone(timezone.utc)
    try:
        found = _phrase(text, clock)
    except (OverflowError, ValueError):  # an age of ~9999 years, a year 0, 4300+ digits
        raise _out_of_range(name) from None
    if found is not None:
        return found
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{8}", text):
            return _day(date.fromisoformat(text))
        written = value.strip()
        parsed = datetime.fromisoformat(written.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{name} {value[:60]!r} is not a date: use {FORMS}") from None
    moment = _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc), name)
    return moment, moment


def _phrase(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The span a phrase or an age names, None when ``text`` is neither."""
    today = now.date()
    if text == "now":
        return now, now
    if text == "today":
        return _day(today)
    if text == "yesterday":
        return _day(today - timedelta(days=1))
    match = _AGE.match(text)
    if match:
        moment = _ago(now, int(match.group(1)), match.group(2))
        return moment, moment
    this, _, unit = text.partition(" ")
    if this in ("this", "last") and unit in ("week", "month", "year"):
        back = 1 if this == "last" else 0
        if unit == "week":
            monday = today - timedelta(days=today.weekday() + 7 * back)
            return _span(monday, monday + timedelta(days=7))
        if unit == "month":
            year, month = _month_before(today.year, today.month, back)
            return _month(year, month)
        return _year(today.year - back)
    weekday = text.removeprefix("last ")
    if weekday in _WEEKDAYS:  # "friday": the latest one, today included; "last friday": before
        days = (today.weekday() - _WEEKDAYS[weekday]) % 7
        if days == 0 and weekday != text:
            days = 7
        return _day(today - timedelta(days=days))
    if text in _MONTHS:
        number = _MONTHS[text]
        return _month(today.year if number <= today.month else today.year - 1, number)
    match = _MONTH_YEAR.match(text)
    if match:
        word = match.group(1) or match.group(4)
        year = match.group(2) or match.group(3)
        if word in _MONTHS:
            return _month(int(year), _MONTHS[word])
        return None
    match = _YEAR_MONTH.match(text)
    if match and 1 <= int(match.group(2)) <= 12:
        return _month(int(match.group(1)), int(match.group(2)))
    if _YEAR.match(text):
        return _year(int(text))
    return None


def _ago(now: datetime, count: int, unit: str) -> datetime:
    if unit.startswith("mo") or unit.startswith("y"):
        months = count * (12 if unit.startswith("y") else 1)
        year, month = _month_before(now.year, now.month, months)
        day = min(now.day, calendar.monthrange(year, month)[1])
        return now.replace(year=year, month=month, day=day)
    return now - timedelta(seconds=count * _SECONDS[unit[0]])


def _month_before(year: int, month: int, back: int) -> tuple[int, int]:
    index = year * 12 + month - 1 - back
    if index < 12:  # before year 1
        raise ValueError("before year 1")
    return index // 12, index % 12 + 1


def _day(day: date) -> tuple[datetime, datetime]:
    return _span(day, day + timedelta(days=1) if day < date.max else None)


def _month(year: int, month: int) -> tuple[datetime, datetime]:
    following = date(year + 1, 1, 1) if month == 12 and year < 9999 else None
    if month < 12:
        following = date(year, month + 1, 1)
    return _span(date(year, month, 1), following)


def _year(year: int) -> tuple[datetime, datetime]:
    return _span(date(year, 1, 1), date(year + 1, 1, 1) if year < 9999 else None)


def _span(first: date, following: date | None) -> tuple[datetime, datetime]:
    """From the start of ``first`` to the last microsecond before ``following`` (None: the
    end of year 9999)."""
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    if following is None:
        return start, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    stop = datetime(following.year, following.month, following.day, tzinfo=timezone.utc)
    return start, stop - _LAST


def _out_of_range(name: str) -> InvalidInputError:
    return InvalidInputError(f"{name} is out of range: give a date between the years 1 and 9999")


def _in_range(moment: datetime, name: str) -> datetime:
    """The moment, if it is still within years 1 to 9999 in UTC (what is stored)."""
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is in year 0 in UTC
        raise _out_of_range(name) from None
    return moment
