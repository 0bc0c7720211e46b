"""The near-duplicate check's cost in two or more large stores, side by side in one process:
ms per check and the facts each check reaches in its partitions (issue 18).

    python benches/check_cost.py STORE.db OTHER.db [--queries 1000] [--rounds 3]

No memory is written (the checks run in read transactions). ``--queries`` SciFact
sentences (the last ones of the corpus, which the benchmark's stores fill last) are embedded
once and checked as ``Memory.store_many`` checks its facts, in calls of 50
(``memory.facade.EMBED_AHEAD``), the stores taking turns call by call, so the machine's load
hits them alike. A check's work does not depend on whether its
text is stored already, so the sentences need not be fresh. Compares, for instance, a store
and a copy of it whose partition was trained again (``store_rate.py --retrain``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # benches/run.py: the SciFact sentences
from store_rate import counting_reach, spread

CALL = 50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stores", nargs="+", type=Path, help="memento SQLite files")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries")
    args = parser.parse_args(argv)
    for path in args.stores:
        if not path.is_file():
            parser.error(f"no store at {path}")

    from memento import Memory
    from memento.embedder import Embedder
    from memento.memory import MAX_RELATED, RELATED_SIMILARITY
    from memento.projects import GLOBAL
    from memento.store import Filters, sqlite_parts

    sentences = run.scifact_sentences(10**6)[-args.queries :]
    embedder = Embedder()
    vectors = [v.astype("<f4").tobytes() for v in embedder.embed(sentences)]
    where = [Filters(kinds=("fact",), scopes=(GLOBAL,))] * CALL
    memories = [Memory(path=path, embedder=embedder) for path in args.stores]
    sizes = {path: memory.stats()["total"] for path, memory in zip(args.stores, memories)}
    seconds: dict[Path, list[float]] = {path: [] for path in args.stores}
    reached: dict[Path, list[int]] = {path: [] for path in args.stores}
    counted: list[int] = []

    def check(memory: Any, part: list[bytes]) -> None:
        with memory._store.transaction(write=False):
            memory._store.knn_many(
                part, 1 + MAX_RELATED, where[: len(part)], min_similarity=RELATED_SIMILARITY
            )

    try:
        for memory in memories:  # the index loaded and the first check paid, untimed
            memory._store.prepare_writes(search=True)
            check(memory, vectors[:CALL])
        with counting_reach(sqlite_parts.Layout, counted):
            for rnd in range(args.rounds):
                for n, start in enumerate(range(0, len(vectors), CALL)):
                    part = vectors[start : start + CALL]
                    turn = (n + rnd) % len(memories)
                    for memory, path in zip(
                        memories[turn:] + memories[:turn], args.stores[turn:] + args.stores[:turn]
                    ):
                        counted.clear()
                        begin = time.perf_counter()
                        check(memory, part)
                        seconds[path].append((time.perf_counter() - begin) / len(part))
                        if rnd == 0:
                            reached[path] += counted
    finally:
        for memory in memories:
            memory.close()

    print(
        f"`python benches/check_cost.py {' '.join(str(p) for p in args.stores)} --queries "
        f"{args.queries} --rounds {args.rounds}`: calls of {CALL} checks, the stores taking "
        "turns call by call.\n"
    )
    print(
        "| store | memories | ms per check (median of calls) | mean "
        "| facts reached: median, p90, max |"
    )
    print("|---|---:|---:|---:|---:|")
    for path in args.stores:
        times = seconds[path]
        print(
            f"| {path} | {sizes[path]:,} | {1000 * statistics.median(times):.3f} "
            f"| {1000 * statistics.fmean(times):.3f} | {spread(reached[path])} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
