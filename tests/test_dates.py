"""Natural time filters: what users type for since/until, on a frozen clock, through the
API and the CLI (the MCP tools: tests/test_server_recall.py)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from memento import InvalidInputError, Memory, cli
from memento import dates as dates_module
from memento.dates import parse_period, parse_when
from memento.embedder import Embedder

# A Thursday afternoon.
NOW = datetime(2026, 11, 26, 14, 30, tzinfo=timezone.utc)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def end_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("today", utc(2026, 11, 26), end_of(date(2026, 11, 26))),
        ("yesterday", utc(2026, 11, 25), end_of(date(2026, 11, 25))),
        ("this week", utc(2026, 11, 23), end_of(date(2026, 11, 29))),  # Monday to Sunday
        ("last week", utc(2026, 11, 16), end_of(date(2026, 11, 22))),
        ("this month", utc(2026, 11, 1), end_of(date(2026, 11, 30))),
        ("last month", utc(2026, 10, 1), end_of(date(2026, 10, 31))),
        ("this year", utc(2026, 1, 1), end_of(date(2026, 12, 31))),
        ("last year", utc(2025, 1, 1), end_of(date(2025, 12, 31))),
        ("March 2026", utc(2026, 3, 1), end_of(date(2026, 3, 31))),
        ("mar 2026", utc(2026, 3, 1), end_of(date(2026, 3, 31))),
        ("2026-03", utc(2026, 3, 1), end_of(date(2026, 3, 31))),
        ("2024-02", utc(2024, 2, 1), end_of(date(2024, 2, 29))),
        ("december", utc(2025, 12, 1), end_of(date(2025, 12, 31))),  # the latest December
        ("2025", utc(2025, 1, 1), end_of(date(2025, 12, 31))),
        ("2026-11-21", utc(2026, 11, 21), end_of(date(2026, 11, 21))),
        ("monday", utc(2026, 11, 23), end_of(date(2026, 11, 23))),
        ("thursday", utc(2026, 11, 26), end_of(date(2026, 11, 26))),  # today is one
        ("last thursday", utc(2026, 11, 19), end_of(date(2026, 11, 19))),
        ("  Last   Week ", utc(2026, 11, 16), end_of(date(2026, 11, 22))),
        # moments: the same instant both ways
        ("3 days ago", utc(2026, 11, 23, 14, 30), utc(2026, 11, 23, 14, 30)),
        ("7d", utc(2026, 11, 19, 14, 30), utc(2026, 11, 19, 14, 30)),
        ("3h", utc(2026, 11, 26, 11, 30), utc(2026, 11, 26, 11, 30)),
        ("2w", utc(2026, 11, 12, 14, 30), utc(2026, 11, 12, 14, 30)),
        ("last 2 weeks", utc(2026, 11, 12, 14, 30), utc(2026, 11, 12, 14, 30)),
        ("1 hour ago", utc(2026, 11, 26, 13, 30), utc(2026, 11, 26, 13, 30)),
        ("6mo", utc(2026, 5, 26, 14, 30), utc(2026, 5, 26, 14, 30)),
        ("1y", utc(2025, 11, 26, 14, 30), utc(2025, 11, 26, 14, 30)),
        ("now", NOW, NOW),
        ("2026-11-21T16:00Z", utc(2026, 11, 21, 16), utc(2026, 11, 21, 16)),
        ("2026-11-21T18:00+02:00", utc(2026, 11, 21, 16), utc(2026, 11, 21, 16)),
    ],
)
def test_each_form_names_its_span(text: str, first: datetime, last: datetime) -> None:
    assert parse_period(text, "since", now=NOW) == (first, last)


def test_since_takes_the_start_and_until_the_end() -> None:
    assert parse_when("2026-11-21", "since", now=NOW) == utc(2026, 11, 21)
    assert parse_when("2026-11-21", "until", end=True, now=NOW) == end_of(date(2026, 11, 21))
    assert parse_when(date(2026, 11, 21), end=True) == end_of(date(2026, 11, 21))
    moment = utc(2026, 11, 21, 9)
    assert parse_when(moment, end=True) == moment


def test_six_months_ago_from_the_31st_is_the_last_day_of_that_month() -> None:
    assert parse_when("1mo", now=utc(2026, 3, 31, 12)) == utc(2026, 2, 28, 12)


@pytest.mark.parametrize("text", ["next tuesday", "last tuesday-ish", "2026-13", "soon", "3 eons"])
def test_an_unknown_phrase_lists_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_when(text, "since", now=NOW)
    message = str(caught.value)
    assert message.startswith(f"since {text!r} is not a date: use ")
    for form in ("2026-11-24", "7d", "3 days ago", "today", "last week", "March 2026", "UTC"):
        assert form in message


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(dates_module, "utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def diary(db_location: Path, embedder: Embedder) -> dict[str, str]:
    """Deploy events at known moments around the frozen clock; their ids by name."""
    when = {
        "march": "2026-03-10T09:00:00Z",
        "last_month": "2026-10-15T09:00:00Z",
        "last_week": "2026-11-18T09:00:00Z",
        "saturday_afternoon": "2026-11-21T16:00:00Z",
        "yesterday": "2026-11-25T08:00:00Z",
        "this_morning": "2026-11-26T08:00:00Z",
    }
    with Memory(db_location, embedder=embedder) as m:
        return {
            name: m.store(f"Deployed the api ({name})", kind="event", created_at=at).id
            for name, at in when.items()
        }


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, "2026-11-21", {"march", "last_month", "last_week", "saturday_afternoon"}),
        ("2026-11-21", "2026-11-21", {"saturday_afternoon"}),
        ("today", None, {"this_morning"}),
        (None, "today", {"march", "last_month", "last_week", "saturday_afternoon",
                         "yesterday", "this_morning"}),  # today is whole: 08:00 is in
        ("yesterday", "yesterday", {"yesterday"}),
        ("last week", "last week", {"last_week", "saturday_afternoon"}),
        ("this month", None, {"last_week", "saturday_afternoon", "yesterday", "this_morning"}),
        ("last month", "last month", {"last_month"}),
        ("March 2026", "2026-03", {"march"}),
        ("3 days ago", None, {"yesterday", "this_morning"}),
        ("2w", "7d", {"last_week"}),
    ],
)
def test_recall_and_recent_filter_by_phrases(
    memory: Memory, diary: dict[str, str], frozen: datetime,
    since: str | None, until: str | None, expected: set[str],
) -> None:
    names = {v: k for k, v in diary.items()}
    found = memory.recall("deployed the api", limit=50, since=since, until=until)
    assert {names[r.id] for r in found} == expected
    listed = memory.recent(limit=50, since=since, until=until)
    assert {names[r.id] for r in listed} == expected


def test_until_a_day_includes_its_evening_today_it_excluded_it(
    memory: Memory, diary: dict[str, str], frozen: datetime
) -> None:
    """The issue's example: an event at 16:00 on 2026-11-21."""
    found = memory.recent(limit=50, until="2026-11-21")
    assert diary["saturday_afternoon"] in {r.id for r in found}
    before = memory.recent(limit=50, until="2026-11-21T00:00Z")  # a moment stays a moment
    assert diary["saturday_afternoon"] not in {r.id for r in before}
    tonight = memory.store("Release party", kind="event", created_at="2026-11-26T20:00Z")
    assert tonight.id in {r.id for r in memory.recent(limit=50, until="today")}
    assert tonight.id not in {r.id for r in memory.recent(limit=50, until="now")}


def test_cli_takes_phrases_and_reports_a_bad_one(
    db_location: Path, diary: dict[str, str], frozen: datetime, embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli.cli, ["--db", str(db_location), *args])
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run("list", "--since", "last week", "--until", "last week")
    assert code == 0 and len(out.splitlines()) == 2
    assert "(last_week)" in out and "(saturday_afternoon)" in out
    code, out, _ = run("search", "deployed", "--since", "yesterday")
    assert code == 0 and "(yesterday)" in out and "(this_morning)" in out
    assert "(last_week)" not in out
    code, out, _ = run("list", "--until", "2026-11-21", "--since", "2026-11-21")
    assert code == 0 and "(saturday_afternoon)" in out and len(out.splitlines()) == 1
    code, _, err = run("list", "--since", "the other day")
    assert code == 1
    assert "since 'the other day' is not a date: use " in err and "last week" in err
    assert "Traceback" not in err
