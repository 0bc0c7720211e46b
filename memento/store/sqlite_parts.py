"""A partition of a large store's vectors (an inverted file), so that the near-duplicate
check of a write looks at a few thousand memories instead of every one.

The check of a fact or lesson asks for its few nearest memories of one kind and scope at
cosine >= 0.65 (``Memory.store``). Through the sign-bit index (``sqlite_index``) each query
pays a Hamming pass over every memory, ~10 ms at a million, so writing facts into a large
store went at a fifth of the speed of events (benches/store_rate.py, issue 18). Here:

1. When a store first reaches ``sqlite_index.MIN_ROWS`` memories, the next write trains
   ``PARTS`` centroids first: spherical k-means on up to ``SAMPLE`` stored unit vectors,
   seeded, so the same memories give the same centroids. They are kept in
   ``memory_parts``, and every row of ``memory_bits`` records its nearest centroid in
   ``part``. The ``index_parts`` setting names the training, so every connection knows to
   read the centroids and the rows' parts again; ``index_parts_model`` names the model
   whose vectors it describes.
2. Every later write of a vector records its nearest centroid in the same statement
   (``sqlite_index.write_row``): the partition stays complete without upkeep. It is not
   trained again as the store grows (its lists grow, and a check reads more: the
   benchmark's 1M row measures that). ``reembed`` to another model drops it or leaves it
   unused, and the next write at scale trains one on the new vectors.
3. A check scores its vector against the centroids and reaches the memories of its
   ``PROBE`` nearest partitions (and any row without a part), then does what the index
   does with candidates: the ``POOL`` nearest in Hamming distance, re-ranked by exact
   cosine. The batch's own memories count for an item only inside the same partitions
   (``Store.regions``), so a batch decides as one store after another.

Recall (``Memory.recall``) does not use it: a search for the ten best of a million keeps
the full Hamming pass (recall@10 0.994, README "Scale"); the check only asks for neighbours
close enough to be a duplicate or related, which lie in the nearest partitions.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import apsw

if TYPE_CHECKING:
    import numpy as np

# Centroids: ~sqrt(N) for the million memories the index is built for, so a partition
# holds ~50 memories when a store is partitioned at 50,000 and ~1,000 at a million. Training
# them once costs 3-4 s (k-means below, on this shared 2-core machine) and placing the
# 50,000 memories 0.4 s, paid by the write that first finds the store at that size.
PARTS = 1_024
# Partitions a check reaches, and the memories among them, nearest in Hamming distance,
# that are re-ranked by exact cosine. Measured against an exact scan of every fact with
# benches/store_rate.py --agreement (README "store_many: facts against events"): with these
# values a check listed as many neighbours at >= 0.65 as the exact scan, the best within
# 0.01, for 99 % of 400 fresh sentences at 100k memories and 95.5 % at a million (lists of
# ~1,000), and found every one of 400 restated facts as the near duplicate it is. At a
# million, 8 / 16 / 24 partitions with 150 candidates gave 91 / 95 / 96 % at 1.0 / 1.7 /
# 2.2 ms a check, 50 candidates instead of 150 about 3 points less (the whole-store pass
# costs 15-18 ms there).
PROBE = 16
POOL = 100
# The pool is a 32nd of the memories a check reaches, between MIN_POOL and POOL: at 100k
# (~1,600 reached) 25, 50 and 100 found the same hits; at a million POOL matters (above).
MIN_POOL = 50
# Vectors the centroids are trained on, at most (a deterministic sample by seq: 32 per
# centroid), and the rows needed per centroid before a store is partitioned at all.
SAMPLE = 32_768
MIN_PER_PART = 20
ITERATIONS = 8
SETTING = "index_parts"
# The embedding model whose vectors trained the partition: another model's vectors (a
# ``reembed`` at the same dimension) lie elsewhere, so its partition is not used for them.
MODEL_SETTING = "index_parts_model"
_ASSIGN_CHUNK = 20_000


def table_exists(conn: apsw.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memory_parts'"
        ).fetchone()
        is not None
    )


def generation(conn: apsw.Connection) -> str | None:
    """What names the current training (None: the store has no partition)."""
    return _setting(conn, SETTING)


def current(conn: apsw.Connection) -> bool:
    """Whether the store has a partition trained on the vectors of its current model."""
    return generation(conn) is not None and (_setting(conn, MODEL_SETTING) or "") == (
        _setting(conn, "embedding_model") or ""
    )


def _setting(conn: apsw.Connection, key: str) -> str | None:
    try:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    except apsw.SQLError:  # a store from before the settings table (being migrated)
        return None
    return None if row is None else str(row[0])


def _set(conn: apsw.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


class _Cache:
    def __init__(self) -> None:
        self.generation: str | None = None
        self.centroids: Any = None


_caches: weakref.WeakKeyDictionary[apsw.Connection, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def centroids(conn: apsw.Connection) -> np.ndarray | None:
    """The partition's unit centroids (``PARTS`` x dimension), None when there is none."""
    current = generation(conn)
    with _caches_lock:
        cache = _caches.get(conn)
        if cache is None:
            cache = _caches[conn] = _Cache()
    if current is None:
        return None
    if cache.generation != current:
        import numpy as np

        rows = conn.execute("SELECT centroid FROM memory_parts ORDER BY part").fetchall()
        matrix = np.array([np.frombuffer(r[0], dtype="<f4") for r in rows], dtype=np.float32)
        cache.centroids = matrix if len(rows) else None
        cache.generation = current
    return cache.centroids  # type: ignore[no-any-return]


def assign(matrix: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The nearest centroid of each row of ``vectors`` (by cosine: the centroids are unit
    vectors, and a row's own length does not change which is nearest)."""
    import numpy as np

    return np.argmax(vectors @ matrix.T, axis=1).astype(np.int64)


def part_of(conn: apsw.Connection, vector: bytes) -> int | None:
    """The partition a row with ``vector`` belongs to (None: no partition of its width)."""
    import numpy as np

    matrix = centroids(conn)
    if matrix is None or len(vector) != matrix.shape[1] * 4:
        return None
    return int(assign(matrix, np.frombuffer(vector, dtype="<f4")[None, :])[0])


def regions(
    conn: apsw.Connection, vectors: Sequence[bytes]
) -> list[tuple[int, frozenset[int]]] | None:
    """For each vector, the partition a memory with it is written to and the partitions a
    check of it reaches; None when the store has no partition of their width."""
    import numpy as np

    matrix = centroids(conn)
    if matrix is None or not vectors or any(len(v) != matrix.shape[1] * 4 for v in vectors):
        return None
    queries = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), -1)
    scores = queries @ matrix.T
    probe = min(PROBE, matrix.shape[0])
    near = np.argpartition(-scores, probe - 1, axis=1)[:, :probe]
    homes = np.argmax(scores, axis=1)
    return [
        (int(home), frozenset(int(p) for p in row))
        for home, row in zip(homes.tolist(), near.tolist())
    ]


def train(conn: apsw.Connection) -> bool:
    """Train the partition and assign every stored vector to it, inside the caller's write
    transaction. Returns False (and changes nothing) when there are too few vectors."""
    import numpy as np

    row = conn.execute(
        "SELECT length(embedding) FROM memory_bits WHERE embedding IS NOT NULL "
        "ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return False
    width = int(row[0])
    total = conn.execute(
        "SELECT count(*) FROM memory_bits WHERE embedding IS NOT NULL AND length(embedding) = ?",
        (width,),
    ).fetchone()[0]
    if total < PARTS * MIN_PER_PART:
        return False
    step = max(1, total // SAMPLE)
    blobs = [
        r[0]
        for r in conn.execute(
            "SELECT embedding FROM memory_bits WHERE embedding IS NOT NULL "
            "AND length(embedding) = ? AND seq % ? = 0 ORDER BY seq LIMIT ?",
            (width, step, SAMPLE),
        )
    ]
    if len(blobs) < PARTS * 2:  # seqs that skip the step (many deletions): take them all
        blobs = [
            r[0]
            for r in conn.execute(
                "SELECT embedding FROM memory_bits WHERE embedding IS NOT NULL "
                "AND length(embedding) = ? ORDER BY seq LIMIT ?",
                (width, SAMPLE),
            )
        ]
    sample = _unit(np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1))
    matrix = kmeans(sample, PARTS)
    conn.execute("DELETE FROM memory_parts")
    conn.executemany(
        "INSERT INTO memory_parts(part, centroid) VALUES (?, ?)",
        [(p, matrix[p].astype("<f4").tobytes()) for p in range(len(matrix))],
    )
    last = 0
    while True:
        rows = conn.execute(
            "SELECT seq, embedding FROM memory_bits WHERE seq > ? AND embedding IS NOT NULL "
            "ORDER BY seq LIMIT ?",
            (last, _ASSIGN_CHUNK),
        ).fetchall()
        if not rows:
            break
        last = int(rows[-1][0])
        fit = [r for r in rows if len(r[1]) == width]
        parts = (
            assign(matrix, np.frombuffer(b"".join(r[1] for r in fit), dtype="<f4").reshape(
                len(fit), -1))
            if fit
            else []
        )  # fmt: skip
        conn.executemany(
            "UPDATE memory_bits SET part = ? WHERE seq = ?",
            [(int(p), int(r[0])) for p, r in zip(parts, fit)],
        )
    # a new name, so every connection reads the centroids and the rows' parts again
    _set(conn, SETTING, f"{len(matrix)}:{width // 4}:{_next_generation(conn)}")
    _set(conn, MODEL_SETTING, _setting(conn, "embedding_model") or "")
    return True


def drop(conn: apsw.Connection) -> None:
    """No partition any more (the vectors are being replaced by ``reembed``)."""
    if table_exists(conn):
        conn.execute("DELETE FROM memory_parts")
        conn.execute("UPDATE memory_bits SET part = NULL WHERE part IS NOT NULL")
    conn.execute("DELETE FROM settings WHERE key IN (?, ?)", (SETTING, MODEL_SETTING))


def _next_generation(conn: apsw.Connection) -> int:
    current = generation(conn)
    try:
        return int(current.rsplit(":", 1)[1]) + 1 if current else 1
    except (IndexError, ValueError):
        return 1


def _unit(matrix: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-30)).astype(np.float32)


def kmeans(sample: np.ndarray, parts: int, iterations: int = ITERATIONS) -> np.ndarray:
    """Spherical k-means: ``parts`` unit centroids of the unit rows of ``sample``, from a
    seeded random start (the same sample always gives the same centroids). A centroid left
    without members restarts at the sample row it fits worst."""
    import numpy as np

    rng = np.random.default_rng(0)
    parts = min(parts, len(sample))
    matrix = sample[rng.choice(len(sample), parts, replace=False)].copy()
    for _ in range(iterations):
        scores = sample @ matrix.T
        labels = np.argmax(scores, axis=1)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=parts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sums = np.zeros_like(matrix)
        filled = counts > 0
        sums[filled] = np.add.reduceat(sample[order], starts[filled], axis=0)
        if not filled.all():
            fit = scores[np.arange(len(sample)), labels]
            worst = np.argsort(fit, kind="stable")[: int((~filled).sum())]
            sums[~filled] = sample[worst]
        matrix = _unit(sums)
    return matrix
