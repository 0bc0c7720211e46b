"""Probe the MCP server as a client sees it: start-up time and memory.

Measures, over stdio with the real MCP client:

1. the time from spawning the server (``memento start``, or ``python -m memento.server``
   before the CLI exists) to the ``initialize`` answer, median of several spawns;
2. the resident memory of the server process after 100 recalls on a seeded database:
   peak (``VmHWM``) and current (``VmRSS``) from ``/proc/<pid>/status`` (Linux only).

Prints JSON. ``benches/run.py`` calls :func:`measure`.

    python benches/mcp_probe.py            # 5 spawns, 200 memories, 100 recalls
    python benches/mcp_probe.py --quick    # 3 spawns, 50 memories, 100 recalls
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

RECALLS = 100
TOPICS = [
    "editor theme", "shell", "programming language", "database port", "deploy target",
    "test command", "code style", "timezone", "favourite food", "CI provider",
]  # fmt: skip


def server_command() -> list[str]:
    """``memento start`` when the CLI provides it, else the module entry point."""
    if shutil.which("memento"):
        try:
            ok = subprocess.run(
                ["memento", "start", "--help"], capture_output=True, timeout=30, check=False
            )
            if ok.returncode == 0:
                return ["memento", "start"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return [sys.executable, "-m", "memento.server"]


def _env(db: Path) -> dict[str, str]:
    env = {"MEMENTO_PATH": str(db), "HF_HUB_OFFLINE": "1"}
    # The MCP client passes on only a few variables (PATH, HOME, ...): without these the
    # server would import another memento than the one measured (PYTHONPATH) or use
    # another model cache.
    for name in ("MEMENTO_EMBEDDING_MODEL", "PYTHONPATH", "XDG_CACHE_HOME", "MEMENTO_MODEL_CACHE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


@asynccontextmanager
async def _session(command: list[str], db: Path, log: Any) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=_env(db))
    async with (
        stdio_client(params, errlog=log) as (read, write),
        ClientSession(read, write) as session,
    ):
        yield session


def _children() -> set[int]:
    """Pids of this process's direct children (the server stdio_client spawned)."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the ppid follows the last ')'.
        if stat[stat.rindex(")") + 2 :].split()[1] == me:
            found.add(int(entry.name))
    return found


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def _handshake(command: list[str], db: Path, log: Any) -> float:
    start = time.perf_counter()
    async with _session(command, db, log) as session:
        await session.initialize()
        return time.perf_counter() - start


async def _memory_after_recalls(
    command: list[str], db: Path, log: Any, memories: int
) -> dict[str, Any]:
    before = _children()
    async with _session(command, db, log) as session:
        await session.initialize()
        pids = _children() - before
        items = [
            {
                "content": f"Note {n}: the {TOPICS[n % len(TOPICS)]} for project p{n} is v{n}",
                "subject_key": f"project.p{n}.{TOPICS[n % len(TOPICS)].replace(' ', '_')}",
            }
            for n in range(memories)
        ]
        start = time.perf_counter()
        result = await session.call_tool("memento_store_many", {"items": items})
        store_s = time.perf_counter() - start
        if result.is_error:
            raise RuntimeError(f"seeding failed: {result.content}")
        latencies = []
        for n in range(RECALLS):
            start = time.perf_counter()
            result = await session.call_tool(
                "memento_recall", {"query": f"what is the {TOPICS[n % len(TOPICS)]}?"}
            )
            latencies.append(time.perf_counter() - start)
            if result.is_error:
                raise RuntimeError(f"recall failed: {result.content}")
        figures: dict[str, Any] = {
            "memories": memories,
            "recalls": RECALLS,
            "store_many_s_incl_model_load": round(store_s, 3),
            "recall_ms_median": round(statistics.median(latencies) * 1000, 2),
            "recall_ms_p95": round(sorted(latencies)[int(0.95 * len(latencies)) - 1] * 1000, 2),
        }
        if len(pids) == 1:
            pid = pids.pop()
            figures["peak_rss_mib"] = round(_status_kib(pid, "VmHWM") / 1024, 1)
            figures["rss_mib"] = round(_status_kib(pid, "VmRSS") / 1024, 1)
        else:
            figures["rss_error"] = f"could not single out the server process among {pids}"
        return figures


def measure(quick: bool = False) -> dict[str, Any]:
    """Start-up time to ``initialize`` (median) and server memory after 100 recalls."""
    command = server_command()
    spawns = 3 if quick else 5
    memories = 50 if quick else 200

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="memento-probe-") as tmp:
            db = Path(tmp) / "memory.db"
            with (Path(tmp) / "server.log").open("w") as log:
                # The first spawn creates the file; every timed one opens an existing one.
                await _handshake(command, db, log)
                times = [await _handshake(command, db, log) for _ in range(spawns)]
                memory = await _memory_after_recalls(command, db, log, memories)
        return {
            "command": " ".join(
                Path(command[0]).name if i == 0 else c for i, c in enumerate(command)
            ),
            "initialize_s_median": round(statistics.median(times), 3),
            "initialize_s_all": [round(t, 3) for t in times],
            **memory,
        }

    return anyio.run(main)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer spawns and memories")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))
