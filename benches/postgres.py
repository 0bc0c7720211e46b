"""PostgreSQL (pgvector HNSW) beside SQLite (vec0 / the large-store index), in one run.

    python benches/postgres.py                          # 10k and 100k, a pgserver of its own
    python benches/postgres.py --sizes 10000 --postgres postgresql://me@host/bench

For each backend, one store grown through ``--sizes``: synthetic rows (real SciFact
sentences embedded by the shipped model, then perturbed, as ``benches/run.py`` fills its
scale group) written through ``Store.insert`` in transactions of 1,000, whose rate is the
"insert rows/s"; then ``store_many`` of 100 new real sentences (embedding and the
near-duplicate check included); then ``recall(limit=10)`` over SciFact claims, with the
query embedding, p50/p95; and recall@10 of the nearest-neighbour search against an exact
scan (numpy over every stored vector). Both backends run on this machine, side by side,
so compare their ratios, not the absolute times (the machine is shared).

Output: a markdown table on stdout and in ``--out`` (``<date>-postgres.md`` and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SENTENCES = 2_000  # embedded once; rows reuse them with noise (run.py's PERTURB_SIGMA)
QUERIES = 50
STORE_MANY = 100
CHUNK = 1_000


def fill(memory: Any, pool: Any, sentences: list[str], count: int, offset: int) -> float:
    """``count`` synthetic rows through ``Store.insert``; returns rows per second."""

    import numpy as np
    from run import SYNTHETIC_KINDS, synthetic_vectors

    from memento.dates import utcnow
    from memento.ids import new_id
    from memento.store import NewMemory

    store = memory.backend
    rng = np.random.default_rng(offset)
    now = utcnow()
    model = memory.embedder.name
    start = time.perf_counter()
    for chunk_start in range(0, count, CHUNK):
        n = min(CHUNK, count - chunk_start)
        index = np.arange(offset + chunk_start, offset + chunk_start + n)
        _, vectors = synthetic_vectors(pool, index, rng)
        with store.transaction():
            if store.get_setting("embedding_model") is None:
                store.set_setting("embedding_model", model)
            for row, i in enumerate(index.tolist()):
                created = now - timedelta(days=i % 365, seconds=i)
                text = sentences[i % len(sentences)]
                if i >= len(sentences):
                    other = sentences[(i * 7919) % len(sentences)].split()[:3]
                    text = f"{text} {' '.join(other)}"
                store.insert(
                    NewMemory(
                        id=new_id(int(created.timestamp() * 1000)), content=text,
                        kind=SYNTHETIC_KINDS[i % len(SYNTHETIC_KINDS)], subject_key=None,
                        importance=0.5, metadata={}, source="bench", created_at=created,
                        updated_at=created, embedding_model=model,
                    ),
                    vectors[row].astype("<f4").tobytes(),
                )  # fmt: skip
    return count / (time.perf_counter() - start)


def exact_recall(memory: Any, query_vectors: list[bytes]) -> float:
    """recall@10 of ``Store.knn`` against an exact scan of every stored vector."""
    import numpy as np

    store = memory.backend
    seqs, matrix = stored_vectors(memory)
    found = 0
    for vector in query_vectors:
        q = np.frombuffer(vector, dtype="<f4")
        best = set(seqs[np.argsort(-(matrix @ q), kind="stable")[:10]].tolist())
        with store.transaction(write=False):
            hits = store.knn(vector, 10, _live())
        found += len(best & {s for s, _ in hits})
    return found / (10 * len(query_vectors))


def _live() -> Any:
    from memento.store import Filters

    return Filters()


def stored_vectors(memory: Any) -> tuple[Any, Any]:
    """Every live memory's seq and vector, read back from the backend."""
    import numpy as np

    store = memory.backend
    if type(store).__name__ == "PostgresStore":
        rows = store.conn.execute(
            "SELECT seq, embedding::text FROM memories WHERE archived_at IS NULL"
        ).fetchall()
        seqs = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.array([json.loads(r[1]) for r in rows], dtype=np.float32)
    else:
        rows = store.conn.execute(
            "SELECT v.rowid, v.embedding FROM memory_vec v JOIN memories m ON m.seq = v.rowid "
            "WHERE m.archived_at IS NULL"
        ).fetchall()
        seqs = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
    return seqs, matrix


def grow(
    name: str, location: Any, embedder: Any, pool: Any, sentences: list[str],
    fresh: list[str], queries: list[str], sizes: list[int],
) -> list[dict[str, Any]]:  # fmt: skip
    from run import ms, percentile, time_each

    from memento import Memory

    steps = []
    with Memory(location, embedder=embedder) as memory:
        count = used = 0
        for size in sizes:
            rows = size - count - STORE_MANY
            print(f"{name}: filling {rows:,} rows to {size:,}", file=sys.stderr, flush=True)
            rate = fill(memory, pool, sentences, rows, count)
            items = [{"content": t, "kind": "fact"} for t in fresh[used : used + STORE_MANY]]
            used += STORE_MANY
            start = time.perf_counter()
            memory.store_many(items)
            store_many = STORE_MANY / (time.perf_counter() - start)
            count = memory.stats()["total"]
            if name == "postgres":  # what autovacuum would do after a bulk load
                memory.backend.conn.execute("ANALYZE memories")
            for q in queries[:3]:
                memory.recall(q, limit=10)  # warm-up
            times = time_each(lambda q, m=memory: m.recall(q, limit=10), queries)
            vectors = memory._embed(queries)
            steps.append({
                "backend": name, "memories": count, "insert_rows_per_s": round(rate, 1),
                "store_many_per_s": round(store_many, 1),
                "recall_ms_p50": ms(percentile(times, 50)),
                "recall_ms_p95": ms(percentile(times, 95)),
                "knn_recall_at_10": round(exact_recall(memory, vectors), 3),
                "size_bytes_per_memory": round((memory.backend.size_bytes() or 0) / count),
            })  # fmt: skip
            print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--postgres", help="a server URL (default: start one with pgserver)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from run import scifact_claims, scifact_sentences

    from memento.dates import utcnow
    from memento.embedder import Embedder

    embedder = Embedder()
    embedder.load()
    texts = scifact_sentences(SENTENCES + STORE_MANY * len(sizes))
    sentences, fresh = texts[:SENTENCES], texts[SENTENCES:]
    pool = embedder.embed(sentences)
    queries = scifact_claims(QUERIES)
    work = Path(tempfile.mkdtemp(prefix="memento-bench-pg-"))
    url = args.postgres
    server = None
    if url is None:
        import pgserver

        server = pgserver.get_server(work / "pg", cleanup_mode="stop")
        url = server.get_uri()
    import psycopg

    from memento.config import display_location

    name = f"bench_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    bench_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    steps = []
    try:
        steps += grow("sqlite", work / "bench.db", embedder, pool, sentences, fresh, queries,
                      sizes)  # fmt: skip
        steps += grow("postgres", bench_url, embedder, pool, sentences, fresh, queries, sizes)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if server is not None:
            server.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    by = {(s["backend"], s["memories"]): s for s in steps}
    where = (
        display_location(url) if args.postgres
        else "pgserver (PostgreSQL 18.3, pgvector 0.8.2), same machine, Unix socket"
    )  # fmt: skip
    lines = [
        f"# PostgreSQL vs SQLite, {utcnow():%Y-%m-%d} (`python benches/postgres.py`)",
        "",
        f"Server: {where}. Load average before: "
        f"{' '.join(load)}. {QUERIES} SciFact claims, `recall(limit=10)` with the query "
        "embedding; insert = `Store.insert` of synthetic rows (no embedding) in transactions "
        f"of {CHUNK:,}; store_many = {STORE_MANY} new real sentences (embedding and "
        "near-duplicate check included); recall@10 = nearest-neighbour search against an "
        "exact scan.",
        "",
        "| memories | backend | insert rows/s | store_many /s | recall p50 ms | recall p95 ms "
        "| kNN recall@10 | bytes/memory |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (backend, memories), s in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(
            f"| {memories:,} | {backend} | {s['insert_rows_per_s']:,.0f} | "
            f"{s['store_many_per_s']:,.0f} | {s['recall_ms_p50']} | {s['recall_ms_p95']} | "
            f"{s['knn_recall_at_10']} | {s['size_bytes_per_memory']:,} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{utcnow():%Y-%m-%d}-postgres"
    stem.with_suffix(".md").write_text(table)
    stem.with_suffix(".json").write_text(json.dumps({"load": load, "steps": steps}, indent=1))


if __name__ == "__main__":
    main()
