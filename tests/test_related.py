"""Conflicts surfaced, not hidden: a fact or lesson stored without a subject_key lists the
similar live memories of its kind and scope (below the near-duplicate bar) as related, in
the API, the CLI and the MCP result (real model: similarity is the point)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import ClientSession

from memento import Memory, cli
from memento.embedder import Embedder
from memento.memory import DEDUP_SIMILARITY, RELATED_SIMILARITY

OLD = "Use Python 3.11 for this project"
NEW = "Use Python 3.12 for this project"


@pytest.fixture
def store(memory: Memory) -> Memory:
    memory.store(OLD)
    memory.store("Code review needs two approvals")
    memory.store("Python 3.12 was released in October 2023", kind="event")
    memory.store("Pin Python 3.11 in CI images", kind="lesson")
    return memory


def test_a_changed_value_lists_the_memory_it_may_replace(store: Memory) -> None:
    record = store.store(NEW)
    assert record.action == "created"
    assert [r.content for r in record.related] == [OLD]  # not the event, lesson, or others
    related = record.related[0]
    assert RELATED_SIMILARITY <= related.similarity < DEDUP_SIMILARITY
    assert store.get(related.id).content == OLD
    data = record.to_dict()
    assert data["related"] == [{"id": related.id, "similarity": related.similarity,
                                "content": OLD}]


def test_no_related_for_keys_duplicates_events_or_other_scopes(
    store: Memory, tmp_path: Path
) -> None:
    keyed = store.store(NEW, subject_key="project.python")  # a key replaces instead
    assert keyed.related == () and "related" not in keyed.to_dict()
    assert store.store(OLD).action == "deduplicated"
    assert store.store(OLD).related == ()
    event = store.store("Use Python 3.12 for this project from today", kind="event")
    assert event.related == ()  # events are never compared
    project = tmp_path / "elsewhere"
    project.mkdir()
    with Memory(store.path, embedder=store.embedder, project=project) as other:
        assert other.store("Use Python 3.10 for this project").related == ()
    unrelated = store.store("The staging server is called apollo")
    assert unrelated.related == ()


def test_store_many_lists_related_per_item(store: Memory) -> None:
    records = store.store_many([{"content": NEW}, {"content": "Lunch is at noon"}])
    assert [r.content for r in records[0].related] == [OLD]
    assert records[1].related == ()


def test_cli_store_prints_the_related_memories(
    db_location: Path, store: Memory, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)
    result = CliRunner().invoke(cli.cli, ["--db", str(db_location), "store", NEW, "--global"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Stored ")
    assert lines[1].startswith("Similar memories, possibly stale now")
    assert lines[2].endswith(f"  {OLD}") and lines[2].startswith("  ")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def session(
    db_location: Path, store: Memory, mcp_connect: Any, tmp_path: Path
) -> AsyncIterator[ClientSession]:
    async with mcp_connect(db_location, tmp_path / "server.log") as client:
        yield client


@pytest.mark.anyio
async def test_mcp_store_returns_related_and_the_instructions_say_what_to_do(
    session: ClientSession,
) -> None:
    with anyio.fail_after(60):
        info = await session.initialize()
        assert '"related"' in (info.instructions or "")
        result = await session.call_tool(
            "memento_store", {"content": NEW, "scope": "global"}
        )
    data = result.structured_content
    assert data["action"] == "created"
    assert [r["content"] for r in data["related"]] == [OLD]
    assert "\n  related 0." in result.content[0].text and OLD in result.content[0].text
