"""Timestamps: parsing what users type, and the one format memento stores.

Stored timestamps are UTC ISO-8601 strings with microseconds and a ``Z``
(``2026-11-24T10:33:11.000000Z``), so they sort as text. Naive datetimes and ISO strings
without an offset are taken as UTC.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from .errors import InvalidInputError

_RELATIVE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w|y)\s*(?:ago)?\s*$", re.IGNORECASE)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


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


def parse_when(value: object, name: str = "time") -> datetime:
    """A datetime from a datetime, a date, an ISO-8601 string, or a relative age.

    Accepted strings: ``2026-11-24``, ``2026-11-24T10:00``, ``2026-11-24 10:00:00+02:00``,
    ``...Z``, ``today``, ``yesterday``, ``now``, and ages such as ``30m``, ``12h``, ``7d``,
    ``2w``, ``1y`` (meaning that long ago).
    """
    if isinstance(value, datetime):
        return _in_range(value if value.tzinfo else value.replace(tzinfo=timezone.utc), name)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{name} must be a datetime or an ISO-8601 string, got {type(value).__name__}"
        )
    text = value.strip()
    lowered = text.lower()
    now = utcnow()
    if lowered == "now":
        return now
    if lowered in ("today", "yesterday"):
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start if lowered == "today" else start - timedelta(days=1)
    match = _RELATIVE.match(text)
    if match:
        try:
            return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).lower()])
        except (OverflowError, ValueError):  # an age of over ~9999 years, or of 4300+ digits
            raise _out_of_range(name) from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{name} {value[:60]!r} is not a date: use ISO-8601 such as 2026-11-24 or "
            "2026-11-24T10:00:00Z, or an age such as 7d or 12h"
        ) from None
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc), name)


def _out_of_range(name: str) -> InvalidInputError:
    return InvalidInputError(f"{name} is out of range: give a date between the years 1 and 9999")


def _in_range(moment: datetime, name: str) -> datetime:
    """The moment, if it is still within years 1 to 9999 in UTC (what is stored)."""
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is in year 0 in UTC
        raise _out_of_range(name) from None
    return moment
