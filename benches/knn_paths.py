"""The two vector paths of the SQLite store side by side (issue 18).

    python benches/knn_paths.py agree STORE.db     # batch check: exact pass vs the index
    python benches/knn_paths.py threshold          # exact scan vs index at 10k/20k/40k

``agree``: over an existing store (e.g. the one ``benches/store_rate.py --workdir`` leaves),
500 SciFact sentences not in it and 500 whose copies it holds, as fact queries: the
near-duplicate check's neighbours (top 4 at >= RELATED_SIMILARITY) from one exact pass
(``knn_many``) and from the large-store index's candidates, compared.

``threshold``: a store grown to 10k, 20k and 40k memories from a 2,000-sentence pool
(``run.fill_synthetic``), 50 SciFact claims, k=10: the exact vec0 scan against the sign-bit
index (``MIN_ROWS``): time and recall@10.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # benches/run.py: the data and the synthetic rows
import store_rate


def agree(path: Path) -> None:
    from memento import Memory
    from memento.embedder import Embedder
    from memento.memory import DEDUP_SIMILARITY, RELATED_SIMILARITY
    from memento.store import Filters
    from memento.store import sqlite as store

    embedder = Embedder()
    embedder.load()
    sentences = run.scifact_sentences(30_000)
    texts = sentences[26_000:26_500] + sentences[:500]
    with Memory(path=path, embedder=embedder) as memory:
        vectors = memory._embed(texts)
        filters = [Filters(kinds=("fact",), scopes=("global",))] * len(vectors)
        memory._store.prepare_writes()
        with memory._store.transaction(write=False):
            start = time.perf_counter()
            exact = store.knn_many(memory.conn, vectors, 4, filters, RELATED_SIMILARITY)
            exact_s = time.perf_counter() - start
            store.INDEX_QUERY_ROWS = 10**12  # every batch through the index
            start = time.perf_counter()
            index = store.knn_many(memory.conn, vectors, 4, filters, RELATED_SIMILARITY)
            index_s = time.perf_counter() - start
        same = sum([s for s, _ in a] == [s for s, _ in b] for a, b in zip(exact, index))
        dedup = [[bool(h) and 1 - h[0][1] >= DEDUP_SIMILARITY for h in hits]
                 for hits in (exact, index)]  # fmt: skip
        print(
            f"{memory.stats()['total']:,} memories, {len(vectors)} queries: exact "
            f"{exact_s:.1f}s, index {index_s:.1f}s; identical hit lists {same}/{len(vectors)}; "
            f"dedup decisions equal {sum(a == b for a, b in zip(*dedup))}/{len(vectors)}"
        )


def threshold() -> None:
    from memento import Memory
    from memento.store import Filters
    from memento.store import sqlite as store
    from memento.store import sqlite_index as index

    workdir = Path(tempfile.mkdtemp(prefix="memento-knn-"))
    ctx = store_rate.Shim(workdir, run.scifact_sentences(2_000), print)
    claims = run.scifact_claims(50)
    with Memory(path=workdir / "t.db", embedder=ctx.embedder) as memory:
        vectors = memory._embed(claims)
        count = 0
        for size in (10_000, 20_000, 40_000):
            run.fill_synthetic(ctx, memory, size - count, count)  # type: ignore[arg-type]
            count = size
            memory.recall("warm the index", limit=1)
            for where in (Filters(), Filters(kinds=("fact",))):
                exact_t, index_t, recall = [], [], []
                for v in vectors:
                    start = time.perf_counter()
                    exact = store.knn_exact(memory.conn, v, 10, where)
                    exact_t.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    found = index.knn(memory.conn, v, 10, where, None)
                    index_t.append(time.perf_counter() - start)
                    recall.append(len({s for s, _ in exact} & {s for s, _ in found}) / 10)
                print(
                    f"{size} kinds={where.kinds} exact p50 "
                    f"{statistics.median(exact_t) * 1000:.1f} ms, index p50 "
                    f"{statistics.median(index_t) * 1000:.1f} ms, recall@10 "
                    f"{statistics.mean(recall):.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    if sys.argv[1:2] == ["agree"] and len(sys.argv) == 3:
        agree(Path(sys.argv[2]))
    elif sys.argv[1:] == ["threshold"]:
        threshold()
    else:
        raise SystemExit(__doc__)
