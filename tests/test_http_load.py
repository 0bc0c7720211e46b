"""`memento start --http` under load and with the real Claude Code client (slow).

Load: 20 SDK clients at once against one server, 100 mixed calls each (stores, recalls,
updates), on either backend: no call fails, and afterwards every store is in the database
exactly once, with its last update. The only time limit is a hang guard far above any
healthy run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from memento import Memory
from tests.conftest import call
from tests.http_server import Server, connect, create_token, environment

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

CLIENTS = 20
CALLS = 100
# A hang guard, not a speed check: 2,000 calls take ~1-3 minutes on a shared 2-core machine.
LOAD_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _marker(client: int, n: int) -> str:
    return f"load-{client:02d}-{n:03d}"


async def test_twenty_clients_a_hundred_mixed_calls_each(
    tmp_path: Path, _model_cache: Path, db_location: str | Path
) -> None:
    """On a SQLite file and on a PostgreSQL database (the server shares one connection)."""
    env = environment(db_location, _model_cache)
    token = create_token(env, "load")
    server = Server(env, tmp_path)
    stored: dict[str, str] = {}  # marker -> id
    updated: set[str] = set()
    failures: list[str] = []

    async def client(number: int) -> None:
        mine: list[str] = []
        async with connect(server.url, token) as session:
            for n in range(CALLS):
                try:
                    if n % 5 in (0, 1):  # 40 stores: events, never merged as duplicates
                        marker = _marker(number, n)
                        result = await call(
                            session, "memento_store", kind="event",
                            content=f"{marker}: client {number} deployed build {n} to staging",
                        )
                        stored[marker] = result["id"]
                        mine.append(marker)
                    elif n % 5 == 4 and mine:  # 20 updates of its own memories
                        marker = mine[n % len(mine)]
                        await call(
                            session, "memento_update", id=stored[marker],
                            content=f"{marker}: client {number} deployed it again (updated)",
                        )
                        updated.add(marker)
                    else:  # 40 recalls
                        await call(
                            session, "memento_recall", query=f"what did client {number} deploy",
                            limit=5,
                        )
                except Exception as exc:  # every failure is reported, not just the first
                    failures.append(f"client {number} call {n}: {exc!r}")

    try:
        with anyio.fail_after(LOAD_TIMEOUT_S):
            async with anyio.create_task_group() as group:
                for number in range(CLIENTS):
                    group.start_soon(client, number)
        assert server.alive()
    finally:
        status, _, err = server.stop(signal.SIGTERM)

    assert failures == []
    assert status == 143, err
    assert len(stored) == CLIENTS * CALLS * 2 // 5
    with Memory(db_location) as memory:
        rows = [r for r in memory.export() if r["content"].startswith("load-")]
    by_marker: dict[str, list[dict]] = {}
    for row in rows:
        by_marker.setdefault(row["content"].split(":", 1)[0], []).append(row)
    assert set(by_marker) == set(stored)
    assert all(len(found) == 1 for found in by_marker.values())  # exactly once
    for marker, (row,) in by_marker.items():
        assert row["id"] == stored[marker]
        assert row["content"].endswith("(updated)") == (marker in updated)


def _missing_claude() -> str | None:
    if shutil.which("claude") is None:
        return (
            "`claude` is not on PATH: install the client with `npm install -g "
            "@anthropic-ai/claude-code` (.ci/run does)"
        )
    return None


@pytest.mark.skipif(_missing_claude() is not None, reason=str(_missing_claude()))
def test_claude_code_connects_over_http_with_a_token(tmp_path: Path, _model_cache: Path) -> None:
    env = environment(tmp_path / "claude.db", _model_cache)
    token = create_token(env, "claude")
    server = Server(env, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    claude_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))
    }
    claude_env.update(
        HOME=str(home),
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
    )
    claude = shutil.which("claude")
    assert claude is not None

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [claude, *args], env=claude_env, cwd=home, capture_output=True, text=True,
            timeout=120,
        )

    try:
        for name, secret in (("memento", token), ("wrong", "memento_" + "A" * 43)):
            added = run(
                "mcp", "add", "--transport", "http", name, server.url,
                "--header", f"Authorization: Bearer {secret}",
            )
            assert added.returncode == 0, added.stderr
            assert token not in added.stdout  # Claude Code redacts it; so do we
        listed = run("mcp", "list")
    finally:
        status, _, err = server.stop(signal.SIGTERM)

    lines = {line.split(":", 1)[0]: line for line in listed.stdout.splitlines() if ": " in line}
    assert "Connected" in lines["memento"], listed.stdout
    assert "Connected" not in lines["wrong"], listed.stdout
    assert status == 143 and token not in err
