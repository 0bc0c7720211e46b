"""Version history: every change keeps the previous version; history, browse as of a past
moment, counts in reads, hard forget, export and import; through the API, the CLI and the
MCP server, on real SQLite files and the real model."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import ClientSession

from memento import InvalidInputError, Memory, NotFoundError, cli
from memento.dates import utcnow
from memento.embedder import Embedder
from tests.conftest import is_postgres, query


@pytest.fixture
def changed(memory: Memory) -> dict[str, Any]:
    """A fact changed by an upsert, an update of its importance, and a scope move; the
    moments between the changes."""
    first = memory.store("The api runs Python 3.11", subject_key="project.api.python")
    t1 = utcnow()
    second = memory.store("The api runs Python 3.12", subject_key="project.api.python")
    t2 = utcnow()
    memory.update(first.id, importance=0.9)
    memory.update(first.id, importance=0.9)  # no change: no version
    t3 = utcnow()
    memory.update(first.id, content="The api runs Python 3.13", metadata={"pr": 42})
    return {"id": first.id, "second": second, "moments": (t1, t2, t3)}


def test_every_change_keeps_the_previous_version(memory: Memory, changed: dict) -> None:
    versions = memory.history("project.api.python")
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert [v.content for v in versions] == [
        "The api runs Python 3.11",
        "The api runs Python 3.12",
        "The api runs Python 3.12",
        "The api runs Python 3.13",
    ]
    assert [v.importance for v in versions] == [0.5, 0.5, 0.9, 0.9]
    assert [v.replaced_by for v in versions] == ["upsert", "update", "update", None]
    assert versions[-1].metadata == {"pr": 42} and versions[-1].live
    assert changed["second"].action == "updated" and changed["second"].versions == 2
    # each version holds from where the one before it stopped
    for before, after in itertools.pairwise(versions):
        assert before.valid_until == after.valid_from
        assert before.valid_from <= before.valid_until
    assert versions[0].valid_from == memory.get(changed["id"]).created_at
    assert memory.history(changed["id"][:10]) == versions  # an id prefix names it too
    assert versions[0].to_dict()["valid_until"].endswith("Z")


def test_reads_show_how_many_versions(memory: Memory, changed: dict) -> None:
    memory.store("I prefer dark mode", subject_key="user.theme")
    assert memory.recall("which python does the api run")[0].versions == 4
    by_key = {r.subject_key: r.versions for r in memory.recent()}
    assert by_key == {"project.api.python": 4, "user.theme": 1}
    assert [r.versions for r in memory.browse("project.")] == [4]
    assert memory.get(changed["id"]).versions == 4


def test_browse_as_of_shows_what_was_believed_then(memory: Memory, changed: dict) -> None:
    t1, t2, t3 = changed["moments"]
    memory.store("Deploys go through CI", subject_key="project.api.deploy")
    assert [r.content for r in memory.browse("project.api", as_of=t1)] == [
        "The api runs Python 3.11"
    ]
    at_t2 = memory.browse("project.api", as_of=t2)
    assert [(r.content, r.importance) for r in at_t2] == [("The api runs Python 3.12", 0.5)]
    assert [r.importance for r in memory.browse("project.api", as_of=t3)] == [0.9]
    now = memory.browse("project.api")
    assert [r.content for r in now] == ["Deploys go through CI", "The api runs Python 3.13"]
    assert memory.browse("project.api", as_of=t1 - timedelta(days=1)) == []
    assert memory.browse("project.api", as_of="today") == memory.browse("project.api")


def test_browse_as_of_follows_a_key_and_a_scope_that_changed(
    memory: Memory, tmp_path: Path
) -> None:
    record = memory.store("Staging is apollo", subject_key="infra.staging")
    before = utcnow()
    memory.update(record.id, subject_key="infra.old.staging")
    assert [r.subject_key for r in memory.browse("infra.staging", as_of=before)] == [
        "infra.staging"
    ]
    assert memory.browse("infra.staging") == []
    project = tmp_path / "shop"
    project.mkdir()
    moved = memory.store("Shop uses Stripe", subject_key="shop.payments")
    before_move = utcnow()
    memory.update(moved.id, scope=str(project))
    assert memory.history(moved.id)[0].scope == "global"
    with Memory(memory.path, embedder=memory.embedder, project=project) as scoped:
        now = scoped.browse("shop.")
        assert [r.project for r in now] == ["shop"]
        then = scoped.browse("shop.", as_of=before_move)
        assert [(r.content, r.scope) for r in then] == [("Shop uses Stripe", "global")]


def test_old_versions_are_not_searched(memory: Memory, changed: dict) -> None:
    found = memory.recall("Python 3.11", limit=10)
    assert [r.content for r in found] == ["The api runs Python 3.13"]
    assert memory.stats()["live"] == 1
    assert query(memory, "SELECT count(*) FROM memory_versions") == [(3,)]
    if not is_postgres(memory.path):  # no vector or keyword row for them
        tables = {r[0]: r[1] for r in memory.conn.execute(
            "SELECT 'fts', count(*) FROM memory_fts UNION ALL SELECT 'vec', count(*) "
            "FROM memory_vec")}
        assert tables == {"fts": 1, "vec": 1}


def test_soft_forget_keeps_history_and_hard_forget_deletes_it(
    memory: Memory, changed: dict
) -> None:
    memory.forget(changed["id"])
    versions = memory.history("project.api.python")  # the forgotten memory, by its key
    assert len(versions) == 4 and versions[-1].archived_at is not None
    memory.restore(changed["id"])
    memory.forget(changed["id"], hard=True)
    with pytest.raises(NotFoundError):
        memory.history(changed["id"])
    assert query(memory, "SELECT count(*) FROM memory_versions") == [(0,)]


def test_export_and_import_carry_the_history(
    memory: Memory, changed: dict, tmp_path: Path, embedder: Embedder
) -> None:
    exported = list(memory.export())
    history = exported[0]["history"]
    assert [v["replaced_by"] for v in history] == ["upsert", "update", "update"]
    assert "versions" not in exported[0]
    with Memory(tmp_path / "copy.db", embedder=embedder) as copy:
        assert copy.import_records(exported) == {"added": 1, "updated": 0, "skipped": 0}
        assert copy.import_records(exported) == {"added": 0, "updated": 0, "skipped": 1}
        assert list(copy.export()) == exported  # lossless
        assert copy.history(changed["id"]) == memory.history(changed["id"])
    broken = [{**exported[0], "history": [{**history[0], "replaced_by": "magic"}]}]
    with (
        Memory(tmp_path / "other.db", embedder=embedder) as other,
        pytest.raises(InvalidInputError, match="history version 1: replaced_by must be one of"),
    ):
        other.import_records(broken)


def test_importing_a_newer_state_updates_and_keeps_a_version(
    memory: Memory, changed: dict, tmp_path: Path, embedder: Embedder
) -> None:
    with Memory(tmp_path / "laptop.db", embedder=embedder) as laptop:
        laptop.import_records(list(memory.export()))
        memory.update(changed["id"], content="The api runs Python 3.14")  # on the desktop
        newer = list(memory.export())
        assert laptop.import_records(newer) == {"added": 0, "updated": 1, "skipped": 0}
        versions = laptop.history(changed["id"])
        assert [v.replaced_by for v in versions] == ["upsert", "update", "update", "import", None]
        assert versions[-2].content == "The api runs Python 3.13"
        assert laptop.recall("Python 3.14")[0].content == "The api runs Python 3.14"
        assert laptop.import_records(newer) == {"added": 0, "updated": 0, "skipped": 1}
        laptop.update(changed["id"], content="The api runs PyPy")  # a later local change wins
        assert laptop.import_records(newer) == {"added": 0, "updated": 0, "skipped": 1}
        assert laptop.get(changed["id"]).content == "The api runs PyPy"


def test_cli_history_and_browse_as_of(
    db_location: Path, memory: Memory, changed: dict, embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli.cli, ["--db", str(db_location), *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    lines = run("history", "project.api.python").splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("  v1 ") and " upsert " in lines[0] and "3.11" in lines[0]
    assert " -> now " in lines[3] and " live " in lines[3] and "3.13" in lines[3]
    data = json.loads(run("history", changed["id"], "--json"))
    assert [v["version"] for v in data] == [1, 2, 3, 4] and data[-1]["valid_until"] is None
    assert " v4 [project.api.python] " in run("list")
    t1 = changed["moments"][0].isoformat()
    assert "Python 3.11" in run("browse", "project.", "--as-of", t1)
    assert "Python 3.13" in run("browse", "project.")
    missing = runner.invoke(cli.cli, ["--db", str(db_location), "history", "no.such.key"])
    assert missing.exit_code == 1 and "no memory with id or subject_key" in missing.stderr


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def session(
    db_location: Path, memory: Memory, changed: dict, mcp_connect: Any, tmp_path: Path
) -> AsyncIterator[ClientSession]:
    async with mcp_connect(db_location, tmp_path / "server.log") as client:
        yield client


@pytest.mark.anyio
async def test_mcp_history_tool_and_counts(session: ClientSession, changed: dict) -> None:
    with anyio.fail_after(60):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert tools["memento_history"].annotations.read_only_hint
        result = await session.call_tool("memento_history", {"id": "project.api.python"})
        data = result.structured_content
        assert data["id"] == changed["id"] and data["count"] == 4
        assert [v.get("replaced_by") for v in data["versions"]] == [
            "upsert", "update", "update", None
        ]
        assert result.content[0].text.splitlines()[1].startswith("[v1 fact project.api.python")
        found = await session.call_tool("memento_recall", {"query": "api python version"})
        assert found.structured_content["memories"][0]["versions"] == 4
        t1 = changed["moments"][0].isoformat()
        then = await session.call_tool(
            "memento_browse", {"subject_key_prefix": "project.", "as_of": t1}
        )
        assert then.structured_content["memories"][0]["content"] == "The api runs Python 3.11"


GOOD_VERSION = {
    "content": "The API runs on port 8000", "valid_from": "2026-11-01T00:00:00Z",
    "valid_until": "2026-11-02T00:00:00Z", "replaced_by": "update",
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"history": "v1"}, "record 1: history must be a list of earlier versions"),
        ({"history": ["v1"]}, "record 1: history version 1: expected an object"),
        ({"history": [{**GOOD_VERSION, "valid_from": "2026-11-03T00:00:00Z"}]},
         "history version 1: valid_from is after valid_until"),
        ({"history": [{**GOOD_VERSION, "version": "first"}]},
         "history version 1: version must be a whole number"),
        ({"history": [{**GOOD_VERSION, "replaced_by": "magic"}]},
         "history version 1: replaced_by must be one of upsert, update, dedup, import"),
        ({"scope": 5}, "record 1: scope must be 'global' or a project id (text)"),
    ],
)  # fmt: skip
def test_an_export_with_a_bad_history_is_refused_whole(
    memory: Memory, change: dict[str, Any], message: str
) -> None:
    record = {
        "id": "01KATMWM80ERZR809G13EXVA4F", "content": "The API runs on port 8080",
        "created_at": "2026-11-01T00:00:00Z", **change,
    }  # fmt: skip
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        memory.import_records([record])
    assert memory.stats()["total"] == 0


def test_history_needs_a_name(memory: Memory) -> None:
    with pytest.raises(InvalidInputError, match="give a memory id or a subject_key"):
        memory.history("  ")
