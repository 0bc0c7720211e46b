"""Recall over MCP Streamable HTTP (issue 14 §3): calls per second and p50/p95 latency with
1, 4 and 16 clients against one ``memento start --http`` server, side by side with the same
recalls in-process (``Memory.recall`` from as many threads), in one run.

    python benches/http_recall.py                       # 2,000 memories, 320 recalls a setting
    python benches/http_recall.py --workdir /tmp/hb     # keep the store there (built once)
    python benches/http_recall.py --clients 1,4,16 --recalls 480 --memories 5000

The store holds ``--memories`` real SciFact sentences (facts, one project) made once with
``Memory.store_many``; the queries are SciFact claims, the same list for every setting.
Each setting first runs one uncounted recall a client (sessions open, model warm), then
``--recalls`` recalls shared evenly among its clients, each client calling one after the
other. Latency is taken around each call as its caller sees it (for HTTP: the SDK client's
``call_tool``, JSON-RPC over a loopback socket included). The HTTP clients run in this
process on asyncio; the server is its own process. Both share the machine's cores, as they
would on one host, so the ratios say what the transport costs on this machine, not what a
remote client would see.

Output: a markdown table on stdout, and ``<out>/<name>.md`` and ``.json``.

(Not ``benches/http.py``: a script's directory comes first on ``sys.path``, so a module
named ``http`` there hides the standard library's, which the HTTP client imports.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from run import (  # noqa: E402  (benches/ is not a package)
    load_average,
    machine,
    percentile,
    scifact_claims,
    scifact_sentences,
)

LIMIT = 10  # results a recall asks for: the tools' default
_BANNER = re.compile(r"on (http://\S+/mcp) serving")


def build_store(path: Path, project: Path, count: int) -> None:
    """``count`` SciFact sentences as facts in one project (a store already full is kept)."""
    from memento import Memory

    with Memory(path=path, project=project) as memory:
        have = memory.stats(all_projects=True)["total"]
        if have >= count:
            return
        sentences = scifact_sentences(count)[have:]
        for start in range(0, len(sentences), 256):
            memory.store_many(
                {"content": s, "kind": "fact", "scope": "project"}
                for s in sentences[start : start + 256]
            )


def summary(latencies: Sequence[float], wall: float, cpu: float) -> dict[str, Any]:
    """``cpu``: this process's CPU seconds (all threads) over the measured calls."""
    return {
        "calls": len(latencies),
        "calls_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "cpu_ms_per_call": round(cpu / len(latencies) * 1000, 1),
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(db: Path, project: Path, queries: list[str], clients: int) -> dict[str, Any]:
    """The recalls from ``clients`` threads on one open Memory (what the server holds)."""
    from memento import Memory

    with Memory(path=db, project=project) as memory:
        for q in queries[:clients]:  # warm: the model, the page cache
            memory.recall(q, limit=LIMIT)
        shares = [queries[n::clients] for n in range(clients)]
        latencies: list[float] = []
        lock = threading.Lock()

        def work(mine: list[str]) -> None:
            taken = []
            for q in mine:
                start = time.perf_counter()
                memory.recall(q, limit=LIMIT)
                taken.append(time.perf_counter() - start)
            with lock:
                latencies.extend(taken)

        threads = [threading.Thread(target=work, args=(share,)) for share in shares]
        began, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return summary(latencies, time.perf_counter() - began, time.process_time() - cpu)


async def over_http(
    url: str, token: str, queries: list[str], clients: int, server_pid: int
) -> dict[str, Any]:
    """The recalls from ``clients`` SDK sessions at once, one call at a time each; with the
    server's CPU time per call beside the clients'."""
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    shares = [queries[n::clients] for n in range(clients)]
    latencies: list[float] = []
    sessions: list[ClientSession] = []
    opened = anyio.Event()
    go = anyio.Event()
    finished = anyio.Event()
    errors: list[str] = []

    async def client(mine: list[str], warm: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            streamable_http_client(url, http_client=http) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("memento_recall", {"query": warm, "limit": LIMIT})
            sessions.append(session)
            if len(sessions) == clients:
                opened.set()
            await go.wait()
            for q in mine:
                start = time.perf_counter()
                result = await session.call_tool("memento_recall", {"query": q, "limit": LIMIT})
                latencies.append(time.perf_counter() - start)
                if result.is_error:
                    errors.append(str(result.content)[:200])
            if len(latencies) == len(queries):
                finished.set()

    async with anyio.create_task_group() as group:
        for n, share in enumerate(shares):
            group.start_soon(client, share, queries[n % len(queries)])
        await opened.wait()
        began, cpu, server = time.perf_counter(), time.process_time(), process_cpu(server_pid)
        go.set()
        await finished.wait()
        wall = time.perf_counter() - began
        cpu, server = time.process_time() - cpu, process_cpu(server_pid) - server
    if errors:
        raise RuntimeError(f"{len(errors)} recalls failed, first: {errors[0]}")
    result = summary(latencies, wall, cpu)
    result["server_cpu_ms_per_call"] = round(server / len(latencies) * 1000, 1)
    return result


def start_server(db: Path, project: Path, cache: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMENTO_")}
    env.update(MEMENTO_PATH=str(db), XDG_CACHE_HOME=str(cache), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "memento.cli", "start", "--http", "--port", "0",
         "--project", str(project)],
        env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    found = _BANNER.search(line)
    if found is None:
        process.kill()
        raise SystemExit(f"the server did not start: {line.strip()}")
    return process, found.group(1)


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [
        f"# Recall over HTTP vs in-process ({results['date']})",
        "",
        f"{results['memories']:,} memories; {results['recalls']} recalls (limit {LIMIT}) a "
        f"setting after one uncounted recall a client. {info.get('cpu', '?')}, "
        f"{info.get('cpus')} CPUs, Python {info.get('python')}. Load average "
        f"{results['load_before']} -> {results['load_after']}.",
        "",
        "| clients | in-process calls/s | p50 ms | p95 ms | CPU ms/call | HTTP calls/s | p50 ms "
        "| p95 ms | server CPU ms/call | client CPU ms/call | HTTP / in-process calls/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        a, h = row["in_process"], row["http"]
        lines.append(
            f"| {row['clients']} | {a['calls_per_s']} | {a['p50_ms']} | {a['p95_ms']} "
            f"| {a['cpu_ms_per_call']} | {h['calls_per_s']} | {h['p50_ms']} | {h['p95_ms']} "
            f"| {h['server_cpu_ms_per_call']} | {h['cpu_ms_per_call']} "
            f"| {h['calls_per_s'] / a['calls_per_s']:.2f} |"
        )
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--recalls", type=int, default=320)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default=f"{datetime.now(timezone.utc):%Y-%m-%d}-http")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="memento-http-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(workdir / "cache")  # never the user's caches
    os.environ["HF_HUB_OFFLINE"] = "1"
    project = workdir / "project"
    project.mkdir(exist_ok=True)
    db = workdir / "http-bench.db"
    print(f"building the store ({args.memories} memories) in {workdir}", file=sys.stderr)
    build_store(db, project, args.memories)
    from memento import Memory

    with Memory(path=db) as memory:
        names = {t.name for t in memory.tokens()}
        if "bench" in names:
            memory.revoke_token("bench")
        token = memory.create_token("bench")[1]
    queries = scifact_claims(args.recalls)
    load_before = load_average()
    process, url = start_server(db, project, workdir / "cache")
    rows = []
    try:
        import anyio

        for n in clients:
            # interleaved: each setting measures both sides back to back
            print(f"{n} client(s): in-process", file=sys.stderr)
            local = in_process(db, project, queries, n)
            print(f"{n} client(s): HTTP", file=sys.stderr)
            remote = anyio.run(over_http, url, token, queries, n, process.pid)
            rows.append({"clients": n, "in_process": local, "http": remote})
    finally:
        process.terminate()
        process.wait(30)
    results = {
        "date": f"{datetime.now(timezone.utc):%Y-%m-%d}",
        "memories": args.memories,
        "recalls": len(queries),
        "rows": rows,
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_average(),
        "command": "python benches/http_recall.py " + " ".join(argv or sys.argv[1:]),
    }
    text = markdown(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(text, encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
