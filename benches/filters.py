"""Recall latency under each filter on an existing store, e.g. the 1M store that
``python benches/run.py --scale 1m --workdir DIR`` leaves in ``DIR/scale.db``.

    python benches/filters.py DIR/scale.db [--claims 60]

Times ``Memory.recall(claim, limit=10, <filter>)`` (query embedding included) for SciFact
training claims read from ../shared/eval at run time, after one warm-up recall (which loads
the large-store index), and prints p50/p95 per filter and the peak RSS of this process.
The filters match the synthetic rows run.py writes: kinds cycle fact/event/lesson, one row in
10,000 has a ``bench.rare.*`` subject key, creation times spread over the past year.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from memento import Memory

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
FILTERS: dict[str, dict[str, str]] = {
    "none": {},
    "kind=lesson": {"kind": "lesson"},
    "kind=fact": {"kind": "fact"},
    "prefix bench.rare.": {"subject_key_prefix": "bench.rare."},
    "since 20d until 10d": {"since": "20d", "until": "10d"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--claims", type=int, default=60)
    args = parser.parse_args()
    if not args.store.is_file():
        raise SystemExit(f"no store at {args.store}: build one with benches/run.py --scale 1m")
    lines = (EVAL / "scifact" / "queries_train.jsonl").read_text().splitlines()
    claims = [json.loads(line)["text"] for line in lines[: args.claims + 1]]
    with Memory(path=args.store, create=False) as memory:
        print(f"{memory.stats()['total']:,} memories in {args.store}")
        memory.recall(claims[0])  # warm-up: loads the large-store index
        print("| filter | p50 ms | p95 ms |\n|---|---:|---:|")
        for name, kwargs in FILTERS.items():
            times = []
            for claim in claims[1:]:
                start = time.perf_counter()
                memory.recall(claim, **kwargs)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            print(f"| {name} | {statistics.median(times):.1f} | {p95:.1f} |", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
