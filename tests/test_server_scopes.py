"""The MCP server's project scopes, context resource and prompt, and lean results, through a
real MCP client over stdio (real model, real SQLite).

The current project comes from the client's roots when it offers them, else the server's
working directory; ``memento start --project DIR`` pins it. Each test spawns its servers
with the working directory and roots it needs.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import ListRootsResult, Root

from tests.conftest import MCP_TIMEOUT, call, server_env

pytestmark = [
    pytest.mark.anyio,
    # roots are deprecated from protocol 2026-07-28 on, but today's clients offer them
    pytest.mark.filterwarnings("ignore:The roots capability is deprecated"),
]

TIMEOUT = MCP_TIMEOUT  # for the exchanges this module makes itself
SERVER = (sys.executable, "-m", "memento.server")
START = (sys.executable, "-m", "memento.cli", "start")
BENCH = Path(__file__).resolve().parents[1] / "benches" / "mcp_tokens.py"
# A 10-result recall of benches/mcp_tokens.py before the lean format (indented JSON text and
# the same data again as structured content): text 4,701 + structured 3,705 characters.
RECALL_CHARS_BEFORE = 8406


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def connect(
    db: Path,
    cwd: Path,
    roots: Callable[[], list[Path]] | Callable[[Any], Any] | None = None,
    command: tuple[str, ...] = SERVER,
) -> AsyncIterator[ClientSession]:
    """A client session to a new server on ``db`` started in ``cwd``; with ``roots``, the
    client offers the roots capability and answers ``roots/list`` with ``roots()`` (or, for
    a coroutine function, lets it answer)."""
    params = StdioServerParameters(
        command=command[0],
        args=list(command[1:]),
        env=server_env(db),
        cwd=cwd,
    )

    async def list_roots(_: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=path.as_uri()) for path in roots()])  # type: ignore[misc, arg-type]

    callback = None
    if roots is not None:
        callback = roots if inspect.iscoroutinefunction(roots) else list_roots

    logs = Path(cwd) if isinstance(db, str) else db.parent  # a URL has no directory
    with (logs / "server.log").open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, list_roots_callback=callback) as session,
        ):
            with anyio.fail_after(TIMEOUT):
                await session.initialize()
            yield session


def projects_of(memories: list[dict[str, Any]]) -> dict[str, str]:
    return {m["content"]: m["project"] for m in memories}


@pytest.fixture
def dirs(tmp_path: Path, db_location: Path | str) -> dict[str, Path]:
    """Two project directories (outside git: each directory is its project) and the db."""
    made = {name: tmp_path / name for name in ("alpha", "bravo")}
    for path in made.values():
        path.mkdir()
    made["db"] = db_location  # type: ignore[assignment]
    return made


async def test_the_clients_root_is_the_default_scope_and_explicit_scope_wins(
    dirs: dict[str, Path],
) -> None:
    async with connect(dirs["db"], cwd=dirs["alpha"], roots=lambda: [dirs["bravo"]]) as client:
        plain = await call(client, "memento_store", content="The bravo service listens on 8080")
        user = await call(
            client, "memento_store", content="The user's editor is Helix", subject_key="user.editor"
        )
        chosen = await call(
            client, "memento_store", content="Coffee machine is on floor two", scope="global"
        )
        moved = await call(client, "memento_update", id=plain["id"], scope="global")
        back = await call(client, "memento_update", id=plain["id"], scope="project")
        batch = await call(
            client,
            "memento_store_many",
            items=[
                {"content": "The bravo deploy needs a VPN"},
                {"content": "The office closes at 19:00", "scope": "global"},
            ],
        )

    assert plain["project"] == "bravo"  # the client's root, not the server's directory
    assert user["project"] == "global"  # user.* facts belong to every project
    assert chosen["project"] == "global"
    assert (moved["project"], back["project"]) == ("global", "bravo")
    assert [m["project"] for m in batch["memories"]] == ["bravo", "global"]


def _failing() -> list[Path]:
    raise RuntimeError("this client cannot list its roots")


def _remote() -> list[Path]:
    return []  # e.g. only non-file roots: nothing local to scope by


@pytest.mark.parametrize(
    "roots",
    [None, _failing, _remote, "never answers"],
    ids=["none offered", "roots/list fails", "no local root", "never answers"],
)
async def test_without_usable_roots_the_working_directory_is_the_project(
    dirs: dict[str, Path], roots: Any
) -> None:
    if roots == "never answers":
        # the server gives up after tools.ROOTS_TIMEOUT (5 s) and goes on without them
        async def hang(_: Any) -> ListRootsResult:
            await anyio.sleep_forever()
            raise AssertionError

        roots = hang
    async with connect(dirs["db"], cwd=dirs["alpha"], roots=roots) as client:
        with anyio.fail_after(20):  # a client that cannot answer must not hang the call
            stored = await call(client, "memento_store", content="The alpha build uses make")
            again = await call(client, "memento_store", content="The alpha docs use mkdocs")

    assert (stored["project"], again["project"]) == ("alpha", "alpha")


async def test_memento_start_project_pins_the_project_over_the_roots(
    dirs: dict[str, Path],
) -> None:
    command = (*START, "--project", str(dirs["alpha"]))

    async with connect(
        dirs["db"], cwd=dirs["bravo"], roots=lambda: [dirs["bravo"]], command=command
    ) as client:
        stored = await call(client, "memento_store", content="The alpha linter is ruff")
        stats = await call(client, "memento_stats")

    assert stored["project"] == "alpha"
    assert stats["project"] == str(dirs["alpha"])


async def test_reads_cover_the_project_and_global_and_all_projects_spans_every_one(
    dirs: dict[str, Path],
) -> None:
    db = dirs["db"]
    async with connect(db, cwd=dirs["alpha"]) as alpha:
        await call(
            alpha,
            "memento_store_many",
            items=[
                {"content": "The alpha database is PostgreSQL", "subject_key": "project.db"},
                {"content": "The user prefers PostgreSQL to MySQL", "subject_key": "user.db"},
            ],
        )
    async with connect(db, cwd=dirs["bravo"]) as bravo:
        await call(
            bravo,
            "memento_store",
            content="The bravo database is SQLite",
            subject_key="project.db",
        )
        query = "which database does the project use"
        mine = await call(bravo, "memento_recall", query=query)
        every = await call(bravo, "memento_recall", query=query, all_projects=True)
        many = await call(bravo, "memento_recall_many", queries=[query], all_projects=True)
        recent = await call(bravo, "memento_recent")
        recent_all = await call(bravo, "memento_recent", all_projects=True)
        browse = await call(bravo, "memento_browse")
        browse_all = await call(bravo, "memento_browse", all_projects=True)
        stats = await call(bravo, "memento_stats")
        stats_all = await call(bravo, "memento_stats", all_projects=True)

    here = {
        "The bravo database is SQLite": "bravo",
        "The user prefers PostgreSQL to MySQL": "global",
    }
    everywhere = {**here, "The alpha database is PostgreSQL": "alpha"}
    assert projects_of(mine["memories"]) == here
    assert projects_of(recent["memories"]) == here
    assert projects_of(browse["memories"]) == here
    assert projects_of(every["memories"]) == everywhere
    assert projects_of(many["results"][0]["memories"]) == everywhere
    assert projects_of(recent_all["memories"]) == everywhere
    assert projects_of(browse_all["memories"]) == everywhere
    assert (stats["live"], stats_all["live"]) == (2, 3)
    assert sorted(p["name"] for p in stats["projects"]) == ["bravo", "global"]
    assert sorted(p["name"] for p in stats_all["projects"]) == ["alpha", "bravo", "global"]


async def test_a_roots_change_moves_the_current_project(dirs: dict[str, Path]) -> None:
    current = [dirs["alpha"]]

    async with connect(dirs["db"], cwd=dirs["alpha"], roots=lambda: current) as client:
        before = await call(client, "memento_store", content="Alpha uses tabs")
        current[:] = [dirs["bravo"]]
        await client.send_roots_list_changed()
        with anyio.fail_after(TIMEOUT):
            while (await call(client, "memento_stats"))["project"] != str(dirs["bravo"]):
                await anyio.sleep(0.05)  # the notification is handled before the next call
        after = await call(client, "memento_store", content="Bravo uses spaces")
        seen = await call(client, "memento_recent")

    assert (before["project"], after["project"]) == ("alpha", "bravo")
    assert projects_of(seen["memories"]) == {"Bravo uses spaces": "bravo"}


async def test_the_context_resource_and_prompt_give_the_block(dirs: dict[str, Path]) -> None:
    async with connect(dirs["db"], cwd=dirs["alpha"], roots=lambda: [dirs["bravo"]]) as client:
        with anyio.fail_after(TIMEOUT):
            resources = (await client.list_resources()).resources
            prompts = (await client.list_prompts()).prompts
            empty = await client.read_resource("memento://context")
        stored = await call(
            client,
            "memento_store_many",
            items=[
                {
                    "content": "The bravo tests run with `make check`",
                    "subject_key": "project.bravo.test_command",
                },
                {
                    "content": "The user likes answers in British English",
                    "subject_key": "user.lang",
                },
            ],
        )
        with anyio.fail_after(TIMEOUT):
            block = await client.read_resource("memento://context")
            topical = await client.get_prompt(
                "memento_context", {"topic": "how do I run the bravo tests"}
            )
            whole = await client.get_prompt("memento_context", {})

    assert [str(r.uri) for r in resources] == ["memento://context"]
    assert [(p.name, [a.name for a in p.arguments or []]) for p in prompts] == [
        ("memento_context", ["topic"])
    ]
    assert "Nothing remembered yet for project bravo" in empty.contents[0].text
    text = block.contents[0].text
    assert block.contents[0].mime_type == "text/markdown"
    for memory in stored["memories"]:
        assert memory["content"] in text and memory["id"][:12] in text
    (message,) = topical.messages
    assert message.role == "user"
    assert "`make check`" in message.content.text
    assert "British English" in whole.messages[0].content.text


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("mcp_tokens", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_recall_costs_about_half_what_it_did_and_keeps_what_the_agent_needs(
    tmp_path: Path,
) -> None:
    bench = _bench()
    shop = tmp_path / "shop"
    shop.mkdir()

    async with connect(tmp_path / "memory.db", cwd=shop) as client:
        await bench.seed(client)
        with anyio.fail_after(TIMEOUT):
            result = await client.call_tool(
                "memento_recall", {"query": bench.QUERY, "limit": bench.LIMIT}
            )
        forget = await call(
            client, "memento_forget", id=result.structured_content["memories"][9]["id"]
        )

    sizes = bench.sizes(result)
    assert sizes["results"] == 10
    # measured 4,186 (49.8%); the margin is for a different rounding of a relevance
    assert sizes["total_chars"] < 0.55 * RECALL_CHARS_BEFORE, sizes
    text = result.content[0].text
    for memory in result.structured_content["memories"]:
        assert {"id", "kind", "project", "date", "content", "relevance"} <= set(memory)
        assert len(memory["id"]) == 26  # the full id: no prefix can turn ambiguous
        assert memory["project"] in ("shop", "global")
        line = next(line for line in text.splitlines() if memory["id"] in line)
        assert memory["content"] in line and f"@{memory['project']}" in line
        assert memory["kind"] in line and memory["date"] in line
        assert (memory.get("subject_key") or "") in line
    assert forget["status"] == "archived"  # the id as shown works for forget
