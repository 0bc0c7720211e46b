"""Cold start of the Claude Code hooks (issue 12 §3): every prompt runs a new process.

    python benches/hooks.py                    # 20 rounds over a 10k-memory store (~3 min
                                               # the first time: the store is embedded)
    python benches/hooks.py --workdir /tmp/hb  # keep the store (and the model caches) there
    python benches/hooks.py --variant MEMENTO_MODEL_CACHE=off   # add a row: the prompt hook
                                               # with that setting (repeatable)

Builds (or reuses, in ``--workdir``) a store of ``--memories`` memories in one project, made
with ``Memory.store_many`` from real text read at run time from ../shared/eval: LoCoMo dialog
turns as events, SciFact sentences as facts and lessons, and some ``user.*`` preferences.
Then, round by round, runs each command once as a new process: ``memento --help``,
``memento hook session-start`` and ``memento hook user-prompt`` (stdin: the hook's JSON, a
different prompt and session id each time; each ``--variant NAME=VALUE`` adds the prompt
hook run with that environment variable, e.g. ``MEMENTO_MODEL_CACHE=off``: the model hashed
and the session optimised on every load, as before the caches). One uncounted round first
warms the page cache and the caches, which live in ``<workdir>/cache`` (``XDG_CACHE_HOME``),
never in the user's home.

Wall time is taken around the child's whole life; its CPU time (user + system, all
threads: the figure a loaded machine disturbs least) and peak RSS (``ru_maxrss``) come from
``os.wait4``; all in a small trampoline process (see ``run.run_process``). A hook never
fails visibly, so a run that writes to ``hooks.log`` is reported as an error.

Output: a markdown table on stdout, and ``<out>/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from run import (  # noqa: E402  (benches/ is not a package)
    EVAL,
    load_average,
    machine,
    memento_command,
    percentile,
    scifact_claims,
    scifact_sentences,
)

# The user's preferences the store holds (global ``user.*`` facts, shown at session start).
PREFERENCES = (
    "I prefer dark mode in editors and terminals",
    "Use uv rather than pip to manage Python environments",
    "Write commit messages in the imperative mood, under 72 characters",
    "I like type hints on every public function",
    "Run the tests before proposing a commit",
    "Prefer small pull requests that each do one thing",
    "Use pytest, never unittest, for new tests",
    "Keep answers short; show the diff, not the whole file",
)

# Child: run argv[3:] with stdin from argv[2]; write [wall s, exit code, ru_maxrss KiB,
# CPU s] to argv[1]. Like run._TRAMPOLINE, plus stdin: the peak RSS must come from a small parent.
_TRAMPOLINE = """
import json, os, subprocess, sys, time
with open(sys.argv[2], "rb") as stdin:
    start = time.perf_counter()
    proc = subprocess.Popen(sys.argv[3:], stdin=stdin)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    json.dump([wall, os.waitstatus_to_exitcode(status), usage.ru_maxrss, cpu], out)
"""


def locomo_turns() -> list[tuple[str, str]]:
    """(text, session date) of every LoCoMo dev turn, as the evaluation protocol stores them."""
    data = json.loads((EVAL / "locomo" / "locomo_dev.json").read_text(encoding="utf-8"))
    out = []
    for sample in data:
        conv = sample["conversation"]
        for key, turns in conv.items():
            if key.startswith("session_") and key[8:].isdigit():
                for turn in turns:
                    text = f"{turn['speaker']}: {turn['text']}"
                    if turn.get("blip_caption"):
                        text += f" [shares {turn['blip_caption']}]"
                    out.append((text, conv.get(f"{key}_date_time", "")))
    return out


def locomo_questions() -> list[str]:
    data = json.loads((EVAL / "locomo" / "locomo_dev.json").read_text(encoding="utf-8"))
    return [qa["question"] for s in data for qa in s["qa"] if qa.get("category") in (1, 2, 3, 4)]


def build_store(path: Path, project: Path, count: int, log: Any) -> int:
    """Fill ``path`` up to ``count`` memories (a store already that full is reused)."""
    from memento import Memory

    now = datetime.now(timezone.utc)
    with Memory(path=path, project=project) as memory:
        total = memory.stats()["total"]
        if total >= count:
            return total
        items: list[dict[str, Any]] = [
            {"content": text, "kind": "fact", "subject_key": f"user.pref.{n}", "importance": 0.8}
            for n, text in enumerate(PREFERENCES)
        ]
        for n, (text, _) in enumerate(locomo_turns()):
            created = now - timedelta(days=n % 60, minutes=n)
            items.append({"content": text, "kind": "event", "created_at": created.isoformat()})
        for n, text in enumerate(scifact_sentences(count)):
            items.append({"content": text, "kind": "lesson" if n % 6 == 5 else "fact"})
        start = time.perf_counter()
        for first in range(0, len(items), 500):
            if total >= count:
                break
            memory.store_many(items[first : first + min(500, count - total)])
            total = memory.stats()["total"]  # near-duplicate facts are merged, not added
            log(f"store: {total} memories ({time.perf_counter() - start:.0f} s)")
        return total


def run_cold(command: list[str], stdin: bytes, env: dict[str, str]) -> dict[str, Any]:
    """One new process: wall and CPU seconds, exit code, peak RSS (MiB), stdout."""
    with tempfile.TemporaryDirectory(prefix="memento-bench-hook-") as tmp:
        figures, feed, out = Path(tmp) / "figures.json", Path(tmp) / "in", Path(tmp) / "out"
        feed.write_bytes(stdin)
        with out.open("wb") as handle:
            subprocess.run(
                [sys.executable, "-S", "-c", _TRAMPOLINE, str(figures), str(feed), *command],
                stdout=handle, stderr=subprocess.DEVNULL, env=env, check=True, timeout=120,
            )  # fmt: skip
        wall, code, maxrss_kib, cpu = json.loads(figures.read_text())
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "code": code,
            "rss_mib": maxrss_kib / 1024,
            "out": out.read_text(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured rounds (default 20)")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, help="keep the store and caches here")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME=VALUE",
        help="also time the prompt hook with this environment variable set (repeatable)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default=f"{time.strftime('%Y-%m-%d')}-hooks")
    args = parser.parse_args()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="memento-bench-hooks-"))
    project = workdir / "project"
    project.mkdir(parents=True, exist_ok=True)
    db = workdir / "hooks.db"
    size = build_store(db, project, args.memories, log)
    log(f"store: {size} memories in {db}")

    memento = memento_command()
    env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache"), "MEMENTO_PATH": str(db)}
    env.pop("MEMENTO_MODEL_CACHE", None)
    hook = [*memento, "--db", str(db), "hook"]
    rows: dict[str, tuple[list[str], dict[str, str], bool]] = {
        "memento --help": ([*memento, "--help"], env, False),
        "memento hook session-start": ([*hook, "session-start"], env, False),
        "memento hook user-prompt": ([*hook, "user-prompt"], env, True),
    }
    for variant in args.variant:
        key, _, value = variant.partition("=")
        rows[f"memento hook user-prompt, {variant}"] = (
            [*hook, "user-prompt"],
            {**env, key: value},
            True,
        )
    prompts = [p for pair in zip(locomo_questions(), scifact_claims(400)) for p in pair]
    random.Random(12).shuffle(prompts)
    hooks_log = workdir / "hooks.log"
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in rows}
    load_before = load_average()
    for round_ in range(args.runs + 1):  # round 0 is the uncounted warm-up
        for row, (name, (command, child_env, asks)) in enumerate(rows.items()):
            data = {
                "session_id": f"bench-{os.getpid()}-{round_}-{row}",  # a new session each
                "cwd": str(project),
                "hook_event_name": "UserPromptSubmit" if asks else "SessionStart",
                **({"prompt": prompts[round_ % len(prompts)]} if asks else {"source": "startup"}),
            }
            logged = hooks_log.stat().st_size if hooks_log.exists() else 0
            result = run_cold(command, json.dumps(data).encode(), child_env)
            if result["code"] != 0 or (hooks_log.exists() and hooks_log.stat().st_size > logged):
                tail = hooks_log.read_text().splitlines()[-1:] if hooks_log.exists() else []
                raise SystemExit(f"{name} failed (exit {result['code']}): {tail}")
            if round_:
                samples[name].append(result)
        if round_:
            log(f"round {round_}/{args.runs}")

    results: dict[str, Any] = {
        "benchmark": "hooks",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_average()},
        "memories": size,
        "runs": args.runs,
        "method": "cold process per run, rounds interleaved, one uncounted warm-up round; "
        "wall, CPU (user + system, all threads) and ru_maxrss from os.wait4 in a trampoline",
        "rows": {},
    }
    for name, runs in samples.items():
        walls = [r["wall_s"] for r in runs]
        results["rows"][name] = {
            "wall_ms_p50": round(percentile(walls, 50) * 1000, 1),
            "wall_ms_p95": round(percentile(walls, 95) * 1000, 1),
            "wall_ms_all": [round(w * 1000, 1) for w in walls],
            "cpu_ms_p50": round(percentile([r["cpu_s"] for r in runs], 50) * 1000, 1),
            "peak_rss_mib_p50": round(percentile([r["rss_mib"] for r in runs], 50), 1),
            "peak_rss_mib_max": round(max(r["rss_mib"] for r in runs), 1),
            "printed_a_block": sum(bool(r["out"].strip()) for r in runs),
        }
    table = markdown(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(table)
    log(f"wrote {args.out / args.name}.md and .json")


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# Cold hook processes ({results['date'][:10]})",
        "",
        f"{results['memories']} memories; {results['runs']} runs of each command, interleaved "
        f"round by round after one uncounted round. {m.get('cpu', '?')}, {m['cpus']} CPUs, "
        f"Python {m['python']}, onnxruntime {m.get('onnxruntime')}. Load average "
        f"{results['load_average']['before']} -> {results['load_average']['after']}.",
        "",
        "| command | wall p50 ms | wall p95 ms | CPU p50 ms | peak RSS MiB (p50 / max) "
        "| printed a block |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["rows"].items():
        lines.append(
            f"| `{name}` | {row['wall_ms_p50']:.0f} | {row['wall_ms_p95']:.0f} "
            f"| {row['cpu_ms_p50']:.0f} "
            f"| {row['peak_rss_mib_p50']:.0f} / {row['peak_rss_mib_max']:.0f} "
            f"| {row['printed_a_block']}/{results['runs']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
