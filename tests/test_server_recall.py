"""memento_recall's time phrases, explanations and token budgets, through a real MCP client
over stdio (one server for the module)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession

from memento import Memory
from memento.context import count_many, full_line
from memento.embedder import Embedder

pytestmark = pytest.mark.anyio
TIMEOUT = 60


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    path = tmp_path_factory.mktemp("server-recall") / "memory.db"
    with Memory(path, embedder=embedder) as m:
        m.store("Deployed the api in March", kind="event", created_at="2026-03-10T09:00Z")
        m.store("Deployed the api on a Saturday", kind="event", created_at="2026-11-21T16:00Z")
        m.store("Deployed the api in December", kind="event", created_at="2025-12-02T10:00Z")
        m.store("Run the migrations before deploying the api", kind="lesson", importance=0.9)
        m.store("The api is deployed with GitHub Actions", subject_key="project.api.deploy")
    return path


@pytest.fixture(scope="module")
async def session(db: Path, mcp_connect: Any) -> AsyncIterator[ClientSession]:
    async with mcp_connect(db, db.with_name("server.log")) as client:
        yield client


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    with anyio.fail_after(TIMEOUT):
        return await session.call_tool(tool, arguments)


async def contents(session: ClientSession, **arguments: Any) -> list[str]:
    result = await call(session, "memento_recall", query="deployed the api", **arguments)
    assert not result.is_error, result.content
    return [m["content"] for m in result.structured_content["memories"]]


async def test_time_phrases_and_whole_days(session: ClientSession) -> None:
    assert await contents(session, since="March 2026", until="2026-03") == [
        "Deployed the api in March"
    ]
    assert await contents(session, since="2026-11-21", until="2026-11-21") == [
        "Deployed the api on a Saturday"  # at 16:00: until a date includes the whole day
    ]
    assert await contents(session, since="2025-12", until="December 2025") == [
        "Deployed the api in December"
    ]
    recent = await call(session, "memento_recent", since="2026-11-21", until="2026-11-21")
    assert [m["content"] for m in recent.structured_content["memories"]] == [
        "Deployed the api on a Saturday"
    ]
    bad = await call(session, "memento_recall", query="api", since="the other day")
    assert bad.is_error
    text = bad.content[0].text
    assert "since 'the other day' is not a date" in text and "last week" in text


async def test_explain_gives_the_parts_of_each_score(session: ClientSession) -> None:
    result = await call(
        session, "memento_recall", query="deploy the api", explain=True, kind=["lesson", "fact"]
    )
    data = result.structured_content
    assert data["filters"]["kind"] == ["lesson", "fact"]
    assert data["count"] == 2
    for memory in data["memories"]:
        why = memory["explanation"]
        fused = (why["vector_part"] + why["keyword_part"]) / 2
        assert why["fused"] == pytest.approx(fused, abs=1e-4)
        score = why["fused"] * why["importance_factor"] * why["recency_factor"]
        assert why["score"] == pytest.approx(score, abs=1e-3)
        assert {"deploy", "api"} & set(why["matched_terms"])
        assert "filters" not in why  # once per result, not per memory
    text = result.content[0].text
    assert text.startswith('2 memories, best first (relevance 0-1 after the date); filters {"kind"')
    assert text.count("\n  why: score=") == 2
    plain = await call(session, "memento_recall", query="deploy the api")
    assert "explanation" not in plain.structured_content["memories"][0]
    assert "filters" not in plain.structured_content


async def test_max_tokens_instead_of_a_count(session: ClientSession, db: Path) -> None:
    everything = await call(session, "memento_recall", query="deploy the api", limit=50)
    assert everything.structured_content["count"] == 5
    fitted = await call(session, "memento_recall", query="deploy the api", max_tokens=50)
    memories = fitted.structured_content["memories"]
    assert 1 <= len(memories) < 5
    with Memory(db) as m:
        records = [m.get(memory["id"]) for memory in memories]
    assert sum(count_many([full_line(r) + "\n" for r in records])) <= 50
    ids = [m["id"] for m in everything.structured_content["memories"]]
    chosen = [m["id"] for m in memories]
    assert chosen[0] == ids[0] and [i for i in ids if i in chosen] == chosen  # best first
    many = await call(
        session, "memento_recall_many", queries=["deploy the api"], max_tokens=50, explain=True
    )
    first = many.structured_content["results"][0]
    assert [m["id"] for m in first["memories"]] == [m["id"] for m in memories]
    assert first["filters"]["max_tokens"] == 50
    too_small = await call(session, "memento_recall", query="api", max_tokens=3)
    assert too_small.is_error
