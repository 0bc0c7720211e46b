"""Hostile and odd input, one table driven through the three faces a user meets: the Python
API, the ``memento`` CLI (click's runner, the model loaded once) and the MCP tools (one real
server process over stdio for the module).

Each case is one operation with its arguments. It must either fail with memento's own clear
message (the CLI: exit 1 and one ``Error:`` line, or a click usage error, exit 2; MCP: an
error result) or give the right result; and every memory that was there before is still
there, unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import ClientSession

from memento import Memory, cli
from memento.embedder import Embedder
from memento.errors import MementoError

API, CLI, MCP = "api", "cli", "mcp"
TIMEOUT = 60  # seconds for any one MCP exchange; a hang fails, not blocks
FACES = (API, CLI, MCP)

SQL = "'); DROP TABLE memories; --"
# Subject keys are lower-cased words without whitespace (validate.subject_key): the same
# attack, in a form a key can take.
SQL_KEY = "sql.');drop/**/table/**/memories;--"
EMOJI_RTL = "👩‍💻 deploys at 🕐 on Fridays: שלום עולם, مرحبا بالعالم \u202eevil\u202c e\u0301"
FTS_CONTENT = 'Search syntax: "quoted" NEAR(alpha beta) star* -minus col:on ^caret (AND OR NOT)'
DEEP: dict[str, Any] = {}
for _ in range(5000):
    DEEP = {"a": DEEP}


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


DEEP_32, DEEP_33, DEEP_495 = _nested(32), _nested(33), _nested(495)


def _id(head: str, tail: str) -> str:
    return f"{head}{'0' * (26 - len(head) - len(tail))}{tail}"


AMBIGUOUS = "01JAMBGX"  # the first 8 characters of two seed ids
SEEDS = [
    {
        "id": _id(AMBIGUOUS, "A1"),
        "content": "The staging database runs on port 5433",
        "subject_key": "infra.staging.port",
    },
    {
        "id": _id(AMBIGUOUS, "B2"),
        "content": "I prefer dark mode in editors",
        "subject_key": "user.theme",
        "importance": 0.8,
    },
    {"id": _id("01JSEED", "C3"), "content": "Deployed release 2.3 to production", "kind": "event"},
    {
        "id": _id("01JSEED", "D4"),
        "content": "The migration of the billing tables is 100% done",
        "subject_key": "odd.100%.done",
    },
    {
        "id": _id("01JSEED", "E5"),
        "content": "The build key uses an underscore",
        "subject_key": "odd.x_y",
    },
]


@dataclass(frozen=True)
class Case:
    """One hostile input. ``error`` is memento's message (a substring) on every face, unless
    a face has its own: ``cli_error`` ("usage" for a click usage error, exit 2) or
    ``mcp_error`` (the protocol's own type check comes first). Without any error, ``check``
    sees the result (a record dict, a list of them, or a count) and the memories after."""

    op: str  # store | recall | recent | forget | forget_prefix
    args: dict[str, Any]
    error: str | None = None
    cli_error: str | None = None
    mcp_error: str | None = None
    check: Callable[[Any, dict[str, dict[str, Any]]], None] | None = None
    faces: tuple[str, ...] = FACES
    cli_args: tuple[str, ...] | None = field(default=None)  # when argv cannot be derived


def stored_exactly(text: str) -> Callable[[Any, dict[str, dict[str, Any]]], None]:
    def check(result: Any, after: dict[str, dict[str, Any]]) -> None:
        assert result["content"] == text
        assert after[result["id"]]["content"] == text

    return check


def finds(*contents: str, only: bool = False) -> Callable[[Any, dict[str, dict[str, Any]]], None]:
    def check(result: Any, after: dict[str, dict[str, Any]]) -> None:
        got = [r["content"] for r in result]
        assert all(r["id"] in after for r in result)
        for text in contents:
            assert text in got, (text, got)
        if only:
            assert sorted(got) == sorted(contents), got

    return check


def count_is(n: int) -> Callable[[Any, dict[str, dict[str, Any]]], None]:
    def check(result: Any, after: dict[str, dict[str, Any]]) -> None:
        assert result == n

    return check


def any_list(result: Any, after: dict[str, dict[str, Any]]) -> None:
    assert isinstance(result, list)
    assert all(r["id"] in after for r in result)


CASES: dict[str, Case] = {
    # ---- content
    "content empty": Case("store", {"content": ""}, "content is empty"),
    "content whitespace": Case("store", {"content": " \n\t "}, "content is empty"),
    "content unicode whitespace": Case("store", {"content": "\u3000\u2003\n"}, "content is empty"),
    "content 1 MB": Case(
        "store",
        {"content": "x" * 1_000_000},
        "content is 1,000,000 characters, over the limit of 100,000: split it",
    ),
    "content exactly at the limit": Case(
        "store",
        {"content": "y" * 100_000, "kind": "event"},
        check=stored_exactly("y" * 100_000),
    ),
    "content with NUL": Case("store", {"content": "a\x00b"}, "contains a NUL character"),
    # JSON text cannot carry a lone surrogate: the MCP face is in test_server_abuse.py.
    "content lone surrogate": Case(
        "store", {"content": "bad \ud800 half"}, "not valid Unicode", faces=(API, CLI)
    ),
    "content emoji and right-to-left": Case(
        "store", {"content": EMOJI_RTL, "kind": "event"}, check=stored_exactly(EMOJI_RTL)
    ),
    "content padded with whitespace": Case(
        "store",
        {"content": "  \n The padded memory about kiwis \t\n", "kind": "event"},
        check=stored_exactly("The padded memory about kiwis"),
    ),
    "content is FTS5 syntax": Case(
        "store", {"content": FTS_CONTENT, "kind": "lesson"}, check=stored_exactly(FTS_CONTENT)
    ),
    "content is SQL, in every string field": Case(
        "store",
        {
            "content": f"Robert {SQL}",
            "subject_key": SQL_KEY,
            "metadata": {SQL: SQL},
            "source": SQL,
            "kind": "event",
        },
        check=lambda result, after: (
            stored_exactly(f"Robert {SQL}")(result, after),
            [after[result["id"]][k] for k in ("subject_key", "metadata", "source")]
            == [SQL_KEY, {SQL: SQL}, SQL]
            or pytest.fail(str(after[result["id"]])),
        ),
    ),
    # ---- kind, importance
    "kind invalid": Case(
        "store", {"content": "x", "kind": "opinion"}, "kind 'opinion' is not valid",
        cli_error="usage",
    ),
    "kind SQL": Case("store", {"content": "x", "kind": SQL}, "is not valid", cli_error="usage"),
    "kind upper case": Case(
        "store",
        {"content": "Kind in capitals is still an event", "kind": "EVENT"},
        check=lambda result, after: result["kind"] == "event" or pytest.fail(result["kind"]),
    ),
    # JSON has no NaN or infinity: the MCP client sends null, which the tool schema refuses.
    "importance NaN": Case(
        "store", {"content": "x", "importance": float("nan")}, "between 0 and 1",
        mcp_error="importance",
    ),
    "importance inf": Case(
        "store", {"content": "x", "importance": float("inf")}, "between 0 and 1",
        mcp_error="importance",
    ),
    "importance -1": Case("store", {"content": "x", "importance": -1}, "between 0 and 1"),
    "importance 2": Case("store", {"content": "x", "importance": 2}, "between 0 and 1"),
    "importance a string": Case(
        "store", {"content": "x", "importance": "high"}, "must be a number",
        cli_error="usage", mcp_error="importance",
    ),
    # ---- metadata, subject_key, source
    "metadata not JSON-serialisable": Case(
        "store", {"content": "x", "metadata": {"when": object()}}, "not JSON-serialisable",
        faces=(API,),
    ),
    "metadata NaN": Case(
        "store", {"content": "x", "metadata": {"n": float("nan")}}, "not JSON-serialisable",
        faces=(API,),
    ),
    "metadata nested 5000 deep": Case(
        "store", {"content": "x", "metadata": DEEP}, "nested too deeply", faces=(API,)
    ),
    # One limit for every face (issue 16, item 5): 495 levels were stored, then broke export.
    "metadata nested 33 deep": Case(
        "store", {"content": "x", "metadata": DEEP_33}, "nested too deeply (over 32 levels",
        faces=(API, MCP),
    ),
    "metadata nested 495 deep": Case(
        "store", {"content": "x", "metadata": DEEP_495}, "nested too deeply", faces=(API,)
    ),
    "metadata nested 32 deep": Case(
        "store",
        {"content": "Metadata exactly at the depth limit", "metadata": DEEP_32},
        check=lambda result, after: (
            after[result["id"]]["metadata"] == DEEP_32 or pytest.fail("metadata changed")
        ),
        faces=(API, MCP),
    ),
    # NUL is refused in metadata as in content (issue 16, item 12).
    "metadata value with NUL": Case(
        "store", {"content": "x", "metadata": {"note": "a\x00b"}}, "contains a NUL character"
    ),
    "metadata not an object": Case(
        "store", {"content": "x", "metadata": ["a"]}, "must be a JSON object",
        cli_args=("store", "x", "--meta", "novalue"), cli_error="usage",
        mcp_error="valid dictionary",
    ),
    "subject_key too long": Case(
        "store", {"content": "x", "subject_key": "k" * 300}, "over 256"
    ),
    "subject_key with NUL": Case(
        "store", {"content": "x", "subject_key": "user.\x00"}, "contains a NUL character"
    ),
    "source empty": Case("store", {"content": "x", "source": " "}, "source must be"),
    # ---- dates
    "created_at does not parse": Case(
        "store", {"content": "x", "created_at": "last tuesday-ish"}, "is not a date",
        faces=(API, MCP),
    ),
    "created_at before year 1 in UTC": Case(
        "store", {"content": "x", "created_at": "0001-01-01T00:00:00+05:00"}, "out of range",
        faces=(API, MCP),
    ),
    "created_at in year 1": Case(
        "store",
        {"content": "The oldest event ever recorded", "kind": "event", "created_at": "0001-01-01"},
        check=lambda result, after: (
            after[result["id"]]["created_at"] == "0001-01-01T00:00:00.000000Z"
            or pytest.fail(after[result["id"]]["created_at"])
        ),
        faces=(API, MCP),
    ),
    "since does not parse": Case(
        "recall", {"query": "release", "since": "last tuesday-ish"}, "since 'last tuesday-ish'"
    ),
    "since a huge age": Case(
        "recall", {"query": "release", "since": "99999999999d"}, "since is out of range"
    ),
    "since after until": Case(
        "recall", {"query": "release", "since": "2026-11-02", "until": "2026-11-01"},
        "since is after until",
    ),
    # ---- queries
    "query empty": Case("recall", {"query": "  "}, "query is empty"),
    "query SQL": Case("recall", {"query": SQL}, check=any_list),
    "query a lone double quote": Case("recall", {"query": '"'}, check=any_list),
    "query star": Case("recall", {"query": "*"}, check=any_list),
    "query NEAR(": Case("recall", {"query": "NEAR(staging"}, check=any_list),
    "query minus": Case("recall", {"query": "-staging"}, check=finds(SEEDS[0]["content"])),
    "query column filter": Case("recall", {"query": "content:staging"}, check=any_list),
    "query caret": Case("recall", {"query": "^staging"}, check=finds(SEEDS[0]["content"])),
    "query parentheses": Case("recall", {"query": "((staging) port"}, check=any_list),
    "query AND OR NOT": Case("recall", {"query": "AND OR NOT"}, check=any_list),
    "query 1 MB": Case("recall", {"query": "staging " * 125_000}, check=any_list),
    "recall of FTS5-syntax content": Case(
        "recall", {"query": 'NEAR(alpha beta) "quoted" star*'}, check=finds(FTS_CONTENT),
        faces=(API,),  # stored through the API face's "content is FTS5 syntax" case first
    ),
    # ---- prefixes: % and _ are ordinary characters
    "prefix with % matches literally": Case(
        "recall", {"query": "migration", "subject_key_prefix": "odd.100%"},
        check=finds(SEEDS[3]["content"], only=True),
    ),
    "prefix % is not a wildcard": Case(
        "recall", {"query": "migration", "subject_key_prefix": "odd.1%"}, check=finds(only=True)
    ),
    "prefix _ is not a wildcard": Case(
        "recall", {"query": "build key", "subject_key_prefix": "odd._"}, check=finds(only=True)
    ),
    "prefix SQL": Case(
        "recall",
        {"query": "staging", "subject_key_prefix": "sql.');drop/**/table/**/users;--"},
        check=finds(only=True),
    ),
    "forget_prefix %": Case("forget_prefix", {"prefix": "%"}, check=count_is(0)),
    "forget_prefix _": Case("forget_prefix", {"prefix": "_"}, check=count_is(0)),
    "forget_prefix SQL": Case("forget_prefix", {"prefix": "'/**/or/**/1=1--"}, check=count_is(0)),
    "prefix with whitespace": Case(
        "forget_prefix", {"prefix": "' OR 1=1 --"}, "contains whitespace"
    ),
    "forget_prefix empty": Case("forget_prefix", {"prefix": "  "}, "prefix is empty"),
    # ---- ids
    "id unknown": Case("forget", {"id": "00000000000000000000000000"}, "no memory with id"),
    "id ambiguous": Case("forget", {"id": AMBIGUOUS}, "matches several memories"),
    "id too short": Case("forget", {"id": "01JSEED"}, "is too short"),
    "id malformed": Case("forget", {"id": "nothex!!-and-more"}, "is not a memento id"),
    "id too long": Case("forget", {"id": "0" * 27}, "is not a memento id"),
    "id is SQL": Case("forget", {"id": SQL}, "is not a memento id"),
    "id with LIKE wildcards": Case("forget", {"id": "01JSEED%%"}, "is not a memento id"),
    # ---- limits and filters
    "limit 0": Case("recent", {"limit": 0}, "between 1 and 1000", cli_error="usage"),
    "limit negative": Case("recent", {"limit": -5}, "between 1 and 1000", cli_error="usage"),
    "limit over 1000": Case("recent", {"limit": 1001}, "between 1 and 1000", cli_error="usage"),
    "limit huge": Case(
        "recall", {"query": "x", "limit": 10**12}, "between 1 and 100", cli_error="usage"
    ),
    # Results per recall query are capped lower than per listing (issue 16, item 10).
    "recall limit over 100": Case(
        "recall", {"query": "x", "limit": 101}, "between 1 and 100,", cli_error="usage"
    ),
    "recall limit 100": Case("recall", {"query": "staging", "limit": 100}, check=any_list),
    "limit 1000": Case("recent", {"limit": 1000}, check=any_list),
    "kind filter invalid": Case(
        "recall", {"query": "x", "kind": "opinion"}, "is not valid", cli_error="usage"
    ),
}


# ---- the three faces -------------------------------------------------------------------


def snapshot(path: Path, embedder: Embedder) -> dict[str, dict[str, Any]]:
    with Memory(path, embedder=embedder) as memory:
        return {row["id"]: row for row in memory.export()}


def seed(path: Path, embedder: Embedder) -> None:
    with Memory(path, embedder=embedder) as memory:
        memory.import_records(SEEDS)


def api_call(memory: Memory, op: str, args: dict[str, Any]) -> Any:
    if op == "store":
        return memory.store(**args).to_dict()
    if op == "recall":
        return [r.to_dict() for r in memory.recall(**args)]
    if op == "recent":
        return [r.to_dict() for r in memory.recent(**args)]
    if op == "forget":
        return memory.forget(args["id"]).to_dict()
    return memory.forget_prefix(args["prefix"])


def argv(case: Case) -> list[str]:
    """The command line for a case: its own, or derived from the operation."""
    if case.cli_args is not None:
        return list(case.cli_args)
    a = dict(case.args)
    options = {"kind": "--kind", "importance": "--importance", "subject_key": "--subject-key",
               "source": "--source", "limit": "--limit", "subject_key_prefix": "--prefix",
               "since": "--since", "until": "--until"}
    # Options first, then `--`: a query or content starting with "-" is still an argument.
    if case.op == "store":
        command, positional = ["store", "--json"], a.pop("content")
        for key, value in a.pop("metadata", {}).items():
            command += ["--meta", f"{key}={value}"]
    elif case.op == "recall":
        command, positional = ["search", "--json"], a.pop("query")
    elif case.op == "recent":
        command, positional = ["list", "--json"], None
    elif case.op == "forget":
        command, positional = ["forget", "--yes"], a.pop("id")
    else:
        command, positional = ["forget-prefix", "--yes"], a.pop("prefix")
    for key, value in a.items():
        command += [options[key], str(value)]
    return command if positional is None else [*command, "--", positional]


def mcp_call(op: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    tool = {"recall": "memento_recall", "store": "memento_store", "recent": "memento_recent",
            "forget": "memento_forget", "forget_prefix": "memento_forget_prefix"}[op]
    return tool, args


def mcp_value(op: str, data: dict[str, Any]) -> Any:
    if op in ("recall", "recent"):
        return data["memories"]
    if op == "forget":
        return data["memory"]
    if op == "forget_prefix":
        return data["count"]
    return data


def cases_for(face: str) -> list[Any]:
    return [pytest.param(name, id=name) for name, case in CASES.items() if face in case.faces]


def assert_nothing_lost(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> None:
    assert {k: after.get(k) for k in before} == before


@pytest.fixture(scope="module")
def api_db(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Memory]:
    path = tmp_path_factory.mktemp("hostile-api") / "memory.db"
    seed(path, embedder)
    with Memory(path, embedder=embedder) as memory:
        yield memory


@pytest.mark.parametrize("name", cases_for(API))
def test_api(name: str, api_db: Memory, embedder: Embedder) -> None:
    case = CASES[name]
    before = snapshot(api_db.path, embedder)
    if case.error:
        with pytest.raises(MementoError) as raised:
            api_call(api_db, case.op, case.args)
        assert case.error in str(raised.value)
        assert "\n" not in str(raised.value)
    else:
        result = api_call(api_db, case.op, case.args)
        assert case.check is not None
        case.check(result, snapshot(api_db.path, embedder))
    assert_nothing_lost(before, snapshot(api_db.path, embedder))


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    path = tmp_path_factory.mktemp("hostile-cli") / "memory.db"
    seed(path, embedder)
    return path


@pytest.mark.parametrize("name", cases_for(CLI))
def test_cli(
    name: str, cli_db: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)
    case = CASES[name]
    before = snapshot(cli_db, embedder)

    result = CliRunner().invoke(cli.cli, ["--db", str(cli_db), *argv(case)])

    assert "Traceback" not in result.output
    expected = case.cli_error or case.error
    if expected:
        # A SystemExit, not an exception escaping click (main() would hide it as "unexpected").
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.strip().splitlines()
        if expected == "usage":
            assert result.exit_code == 2, result.output
            assert lines[-1].startswith("Error: "), lines
        else:
            assert result.exit_code == 1, result.output
            assert len(lines) == 1 and lines[0].startswith("Error: "), lines
            assert expected in lines[0]
    else:
        assert result.exit_code == 0, (result.output, result.exception)
        if case.op == "forget_prefix":
            value: Any = int(re.search(r"(\d+) memor", result.stdout).group(1))  # type: ignore[union-attr]
        else:
            value = json.loads(result.stdout)
        assert case.check is not None
        case.check(value, snapshot(cli_db, embedder))
    assert_nothing_lost(before, snapshot(cli_db, embedder))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def mcp_db(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    path = tmp_path_factory.mktemp("hostile-mcp") / "memory.db"
    seed(path, embedder)
    return path


@pytest.fixture(scope="module")
async def session(mcp_db: Path, mcp_connect: Any) -> AsyncIterator[ClientSession]:
    async with mcp_connect(mcp_db, mcp_db.with_name("server.log")) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("name", cases_for(MCP))
async def test_mcp(name: str, session: ClientSession, mcp_db: Path, embedder: Embedder) -> None:
    case = CASES[name]
    before = snapshot(mcp_db, embedder)
    tool, arguments = mcp_call(case.op, case.args)

    with anyio.fail_after(TIMEOUT):
        result = await session.call_tool(tool, arguments)

    expected = case.mcp_error or case.error
    text = " ".join(block.text for block in result.content if block.type == "text")
    if expected:
        assert result.is_error, result.structured_content
        assert expected in text
    else:
        assert not result.is_error, text
        assert case.check is not None
        case.check(mcp_value(case.op, result.structured_content), snapshot(mcp_db, embedder))
    assert_nothing_lost(before, snapshot(mcp_db, embedder))
    with anyio.fail_after(TIMEOUT):  # still serving
        assert not (await session.call_tool("memento_stats", {})).is_error
