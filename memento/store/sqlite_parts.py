"""A partition of a large store's vectors (an inverted file), so that the near-duplicate
check of a write looks at a few thousand memories instead of every one.

The check of a fact or lesson asks for its few nearest memories of one kind and scope at
cosine >= 0.65 (``Memory.store``). Through the sign-bit index (``sqlite_index``) each query
pays a Hamming pass over every memory and re-ranks 1,000 of them, 15-35 ms at a million, so
writing facts into a large store went at a fifth of the speed of events
(benches/store_rate.py, issue 18). Here:

1. When a store first reaches ``sqlite_index.MIN_ROWS`` memories, the next write trains
   ``PARTS`` centroids first: spherical k-means on up to ``SAMPLE`` stored unit vectors,
   seeded, so the same memories give the same centroids; while training a centroid takes at
   most ``ROOM`` x the mean (but for rows with no room nearer), so dense regions get more
   partitions. They are kept in ``memory_parts``, and every row of ``memory_bits`` records
   its nearest centroid in ``part``, placed a transaction at a time (rows not placed yet
   are reached by every check). The ``index_parts`` setting names the partition, never
   twice the same, so every connection knows to read the centroids and the rows' parts
   again; ``index_parts_model`` names the model whose vectors it describes.
2. Every later write of a vector records its nearest centroid in the same statement
   (``sqlite_index.write_row``): the partition stays complete without upkeep. It is not
   trained again as the store grows (its lists grow, and a check reads more: the
   benchmark's 1M row measures that). ``reembed`` to another model drops it or leaves it
   unused, and the next write at scale trains one on the new vectors.
3. A check scores its vector against the centroids and reaches the memories of its
   ``PROBE`` nearest partitions (and any row without a part), keeps the ``WIDEN`` x pool
   nearest of them in Hamming distance, of those the pool (a 32nd of the memories reached,
   from ``MIN_POOL`` to ``POOL``) whose sign bits score best against its float vector
   (``sqlite_index._sign_table``), and re-ranks the pool by exact cosine on the float
   copies read from SQLite. The batch's own memories count
   for an item only inside the same partitions (``Store.regions``), so a batch decides as
   one store after another. Each connection's index keeps its sign bits in partition
   order as well, each partition's facts, events and lessons apart (:class:`Layout`), so a
   check reads the memories of its kind in its partitions as a few contiguous runs.

Recall (``Memory.recall``) does not use it: a search for the ten best of a million keeps
the full Hamming pass (recall@10 0.994, README "Scale"); the check only asks for neighbours
close enough to be a duplicate or related, which lie in the nearest partitions.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import apsw

from .sqlite_meta import get_setting, has_table, set_setting

if TYPE_CHECKING:
    import numpy as np

# Centroids: ~sqrt(N) for the million memories the index is built for, so a partition
# holds ~50 memories when a store is partitioned at 50,000 and ~1,000 at a million. The
# write that first finds a store at that size trains them and places the stored rows: 4.6 s
# at 106,791 memories, 25.8 s for a million (a store upgraded from schema 7), in
# transactions short enough that another writer meanwhile waited 0.43 / 0.83 s at most
# (benches/store_rate.py --retrain).
PARTS = 1_024
# Partitions a check reaches, and the memories among them that are re-ranked by exact
# cosine (the pool: the nearest in Hamming distance until 2026-11-27). Measured against an
# exact scan of every fact with benches/store_rate.py --agreement (README "store_many:
# facts against events"): with these
# values a check listed as many neighbours at >= 0.65 as the exact scan, the best within
# 0.01, for 97-99 % of 400 fresh sentences at 100k memories and 95 % at a million (lists of
# ~1,000), and found every one of 400 restated facts as the near duplicate it is. At a
# million, 8 / 16 / 24 partitions with 150 candidates gave 91 / 95 / 96 % at 1.0 / 1.7 /
# 2.2 ms a check, 50 candidates instead of 150 about 3 points less (the whole-store pass
# costs 15-35 ms there).
PROBE = 16
# The pool is the best by their sign bits' dot product with the check's float vector
# (sqlite_index._sign_table) of the WIDEN x pool nearest in Hamming distance. Against an
# exact scan (store_rate.py --agreement, fresh SciFact sentences, as many hits and the best
# alike): at a million 60 of 240 agreed for 96.5 % of 1,000 and 97.0 % of 400 against
# 95.9 % and 95.8 % for the 100 nearest in Hamming distance, with 60 float reads a check
# instead of ~110 (0.90 against 1.03 ms a check; 1.37 against 1.35 ms in the other run); at
# 100k 97.6 % against 97.3 % with the pool of 30-50 below. Within the partitions reached,
# a pool of 50 (of 200) agreed 0.3 points less, 80 (of 320) 0.3 points more.
POOL = 60
WIDEN = 4
# The pool is a 32nd of the memories a check reaches, between MIN_POOL and POOL: at 100k
# (~1,100-1,600 reached) 30, 40 and 50 agreed alike within the partitions but for one
# sentence in 1,000 (20: five); at a million POOL matters (above).
MIN_POOL = 30
# Vectors the centroids are trained on, at most (a deterministic sample by seq: 32 per
# centroid), and the vectors needed per centroid before a store is partitioned at all: 20
# (20,480, well under the 50,000 memories where the check starts using a partition, so only
# a store with most of its memories deleted has too few). k-means iterations: the mean
# cosine of a sample vector to its centroid was 0.6977 / 0.7006 / 0.7013 after 4 / 8 / 12
# (the 100k benchmark store; 0.9 % of labels still moving between 6 and 8), at 0.9 / 1.5 /
# 2.4 s here.
SAMPLE = 32_768
MIN_PER_PART = 20
ITERATIONS = 8
# While training, a centroid takes at most ROOM x the mean of the sample's rows, the best
# fitting first, the others going to the next of their CHOICES nearest (_labels); the
# stored rows are then placed by cosine alone. Plain k-means left the partitions uneven
# where memories are dense. Two copies of one million-memory store, one trained again
# with ROOM 2 (benches/check_cost.py, 1,000 sentences, interleaved): a check reached 9,262
# facts at the median instead of 10,209, 13,839 at most instead of 21,544, in 0.76-0.77
# against 0.79-0.81 ms; it found more of an exact scan's neighbours (store_rate.py
# --agreement, 800 fresh sentences, two sets: 0.911 and 0.932 against 0.882 and 0.898 of
# them). At 125k, 1,301 against 1,368 reached, 0.954 against 0.951 found. ROOM 1.5
# reached fewer at a million but found fewer at 120k (0.938 against 0.947); a penalty on
# a centroid's size instead of a cap herded a tight cluster into one partition
# (benches/results/2026-11-27-even-partitions.md). A row with no room among its 4 nearest
# goes to its nearest all the same. Training 32,768 vectors takes 3.1 s instead of 2.1.
ROOM = 2.0
CHOICES = 4
SETTING = "index_parts"
# The embedding model whose vectors trained the partition: another model's vectors (a
# ``reembed`` at the same dimension) lie elsewhere, so its partition is not used for them.
MODEL_SETTING = "index_parts_model"
# Set while the rows stored before the partition are being placed (the last seq placed);
# the max seq at which a store had too few vectors to train on.
PLACED_SETTING = "index_parts_placed"
TOO_FEW_SETTING = "index_parts_too_few"
# Rows placed per write transaction: while a million stored rows were placed, another
# writer waited 0.83 s at most (benches/store_rate.py --retrain), far below SQLite's 30 s
# busy timeout; in one transaction it would wait the whole ~25 s.
PLACE_CHUNK = 25_000


def table_exists(conn: apsw.Connection) -> bool:
    return has_table(conn, "memory_parts")


def generation(conn: apsw.Connection) -> str | None:
    """What names the current training (None: the store has no partition)."""
    return get_setting(conn, SETTING)


def current(conn: apsw.Connection) -> bool:
    """Whether the store has a partition trained on the vectors of its current model."""
    return generation(conn) is not None and (get_setting(conn, MODEL_SETTING) or "") == (
        get_setting(conn, "embedding_model") or ""
    )


# Vectors whose partitions a connection remembers: a write's vector is placed three times
# (the batch's check, ``Store.regions`` for the batch's own memories, the row's ``part``),
# and a batch holds at most ``Memory``'s 1,000 (CHECK_BATCH).
REMEMBERED = 2_048


class _Cache:
    def __init__(self) -> None:
        self.generation: str | None = None
        self.centroids: Any = None
        self.regions: dict[bytes, tuple[int, frozenset[int]]] = {}


_caches: weakref.WeakKeyDictionary[apsw.Connection, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _current_cache(conn: apsw.Connection) -> _Cache:
    """This connection's centroids (None when the store has no partition), read again when
    the partition's name changed."""
    current = generation(conn)
    with _caches_lock:
        cache = _caches.get(conn)
        if cache is None:
            cache = _caches[conn] = _Cache()
    if current is None:
        cache.generation, cache.centroids, cache.regions = None, None, {}
    elif cache.generation != current:
        import numpy as np

        rows = conn.execute("SELECT centroid FROM memory_parts ORDER BY part").fetchall()
        matrix = np.array([np.frombuffer(r[0], dtype="<f4") for r in rows], dtype=np.float32)
        cache.centroids = matrix if len(rows) else None
        cache.generation = current
        cache.regions = {}
    return cache


def centroids(conn: apsw.Connection) -> np.ndarray | None:
    """The partition's unit centroids (``PARTS`` x dimension), None when there is none."""
    return _current_cache(conn).centroids  # type: ignore[no-any-return]


def _region(cache: _Cache, vector: bytes) -> tuple[int, frozenset[int]]:
    """The partition a row with ``vector`` lands in and those its check reaches: one
    computation (a vector's scores alone; a batch's matrix product rounds differently and
    could move a near tie) behind both, remembered for the next ask."""
    import numpy as np

    found = cache.regions.get(vector)
    if found is None:
        scores = cache.centroids @ np.frombuffer(vector, dtype="<f4")
        probe = min(PROBE, len(scores))
        near = np.argpartition(-scores, probe - 1)[:probe]
        found = (int(np.argmax(scores)), frozenset(int(p) for p in near.tolist()))
        if len(cache.regions) >= REMEMBERED:
            cache.regions.clear()
        cache.regions[vector] = found
    return found


def part_of(conn: apsw.Connection, vector: bytes) -> int | None:
    """The partition a row with ``vector`` belongs to (None: no partition of its width)."""
    cache = _current_cache(conn)
    if cache.centroids is None or len(vector) != cache.centroids.shape[1] * 4:
        return None
    return _region(cache, vector)[0]


def regions(
    conn: apsw.Connection, vectors: Sequence[bytes]
) -> list[tuple[int, frozenset[int]]] | None:
    """For each vector, the partition a memory with it is written to and the partitions a
    check of it reaches; None when the store has no partition of their width."""
    cache = _current_cache(conn)
    matrix = cache.centroids
    if matrix is None or not vectors or any(len(v) != matrix.shape[1] * 4 for v in vectors):
        return None
    return [_region(cache, vector) for vector in vectors]


def train(conn: apsw.Connection) -> np.ndarray | None:
    """Centroids for the stored vectors (read in the caller's transaction; nothing is
    written), or None when there are too few vectors of one width."""
    import numpy as np

    row = conn.execute(
        "SELECT length(embedding) FROM memory_bits WHERE embedding IS NOT NULL "
        "ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    width = int(row[0])
    total = conn.execute(
        "SELECT count(*) FROM memory_bits WHERE embedding IS NOT NULL AND length(embedding) = ?",
        (width,),
    ).fetchone()[0]
    if total < PARTS * MIN_PER_PART:
        return None
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
    return kmeans(sample, PARTS)


def install(conn: apsw.Connection, matrix: np.ndarray) -> None:
    """Make ``matrix`` the partition (in the caller's write transaction). Rows written from
    now on get their part; the rows already stored are placed by :func:`place_some`, a
    transaction at a time, and are reached by every check until then (no part)."""
    conn.execute("DELETE FROM memory_parts")
    conn.executemany(
        "INSERT INTO memory_parts(part, centroid) VALUES (?, ?)",
        [(p, matrix[p].astype("<f4").tobytes()) for p in range(len(matrix))],
    )
    conn.execute("UPDATE memory_bits SET part = NULL WHERE part IS NOT NULL")
    _rename(conn)
    set_setting(conn, MODEL_SETTING, get_setting(conn, "embedding_model") or "")
    set_setting(conn, PLACED_SETTING, "0")
    conn.execute("DELETE FROM settings WHERE key = ?", (TOO_FEW_SETTING,))


def placing(conn: apsw.Connection) -> bool:
    """Whether stored rows still wait for their part (see :func:`install`)."""
    return get_setting(conn, PLACED_SETTING) is not None


def place_some(conn: apsw.Connection) -> None:
    """Place the next ``PLACE_CHUNK`` stored rows (in the caller's write transaction);
    after the last, rename the partition so every connection reads the rows' parts."""
    import numpy as np

    done = get_setting(conn, PLACED_SETTING)
    matrix = centroids(conn)
    if done is None or matrix is None:  # nothing to place (or nothing to place it with)
        conn.execute("DELETE FROM settings WHERE key = ?", (PLACED_SETTING,))
        return
    rows = conn.execute(
        "SELECT seq, embedding FROM memory_bits WHERE seq > ? AND embedding IS NOT NULL "
        "ORDER BY seq LIMIT ?",
        (int(done), PLACE_CHUNK),
    ).fetchall()
    if not rows:
        conn.execute("DELETE FROM settings WHERE key = ?", (PLACED_SETTING,))
        _rename(conn)
        return
    fit = [r for r in rows if len(r[1]) == matrix.shape[1] * 4]
    if fit:
        vectors = np.frombuffer(b"".join(r[1] for r in fit), dtype="<f4").reshape(len(fit), -1)
        # a matrix product for speed; a near tie may round to another part than part_of
        # would give, which only moves an old row to an equally near partition
        found = np.argmax(vectors @ matrix.T, axis=1).tolist()
        conn.executemany(
            "UPDATE memory_bits SET part = ? WHERE seq = ?",
            [(int(p), int(r[0])) for p, r in zip(found, fit)],
        )
    set_setting(conn, PLACED_SETTING, str(int(rows[-1][0])))


def too_few(conn: apsw.Connection, size: int) -> None:
    """Note that a store of ``size`` (max seq) had too few vectors to train on."""
    set_setting(conn, TOO_FEW_SETTING, str(size))


def worth_trying(conn: apsw.Connection, size: int) -> bool:
    """False while a store has not doubled since it had too few vectors (so that a store
    whose seqs passed the size, most of its memories deleted, does not count its vectors on
    every write)."""
    before = get_setting(conn, TOO_FEW_SETTING)
    return before is None or size >= 2 * int(before)


def drop(conn: apsw.Connection) -> None:
    """No partition any more (the vectors are being replaced by ``reembed``)."""
    if table_exists(conn):
        conn.execute("DELETE FROM memory_parts")
        conn.execute("UPDATE memory_bits SET part = NULL WHERE part IS NOT NULL")
    conn.execute(
        "DELETE FROM settings WHERE key IN (?, ?, ?, ?)",
        (SETTING, MODEL_SETTING, PLACED_SETTING, TOO_FEW_SETTING),
    )


def _rename(conn: apsw.Connection) -> None:
    # a name never used before (not a counter: drop removes the setting), so that every
    # connection, however long idle, reads the centroids and the rows' parts again
    import secrets

    count = conn.execute("SELECT count(*) FROM memory_parts").fetchone()[0]
    set_setting(conn, SETTING, f"{count}:{secrets.token_hex(8)}")


def _unit(matrix: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-30)).astype(np.float32)


def kmeans(
    sample: np.ndarray, parts: int, iterations: int = ITERATIONS, room: float | None = ROOM
) -> np.ndarray:
    """Spherical k-means: ``parts`` unit centroids of the unit rows of ``sample``, from a
    seeded random start (the same sample always gives the same centroids). A centroid left
    without members restarts at the sample row it fits worst. While training, a centroid
    takes at most ``room`` x the mean of the rows (``ROOM``; None: no limit), the best
    fitting first, the others going to their next nearest (:func:`_labels`; a row with no
    room in its ``CHOICES`` nearest goes to the nearest all the same); the stored rows are
    then placed by cosine alone."""
    import numpy as np

    rng = np.random.default_rng(0)
    parts = min(parts, len(sample))
    matrix = sample[rng.choice(len(sample), parts, replace=False)].copy()
    cap = None if room is None else math.ceil(room * len(sample) / parts)
    for _ in range(iterations):
        scores = sample @ matrix.T
        labels = np.argmax(scores, axis=1) if cap is None else _labels(scores, cap)
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


def _labels(scores: np.ndarray, cap: int) -> np.ndarray:
    """Each row's centroid (``scores``: rows x centroids), no centroid taking more than
    ``cap`` rows: in ``CHOICES`` rounds, the rows not placed yet go to their next nearest
    centroid, which keeps the best fitting of them while it has room; a row that finds no
    room in its ``CHOICES`` nearest goes to the nearest."""
    import numpy as np

    rows, parts = scores.shape
    choices = min(CHOICES, parts)
    # the nearest, best first, by argmax with each found one set aside (then put back):
    # 0.1 s for a 32,768 x 1,024 sample where a partial sort of every row takes 0.3 s
    every = np.arange(rows)
    nearest = np.empty((rows, choices), dtype=np.int64)
    fits = np.empty((rows, choices), dtype=scores.dtype)
    for choice in range(choices):
        nearest[:, choice] = np.argmax(scores, axis=1)
        fits[:, choice] = scores[every, nearest[:, choice]]
        scores[every, nearest[:, choice]] = -np.inf
    # put back last to first: a row whose other scores are -inf picks its first again, and
    # that first value is the one to leave
    for choice in reversed(range(choices)):
        scores[every, nearest[:, choice]] = fits[:, choice]
    labels = np.full(rows, -1, dtype=np.int64)
    room = np.full(parts, cap, dtype=np.int64)
    for choice in range(choices):
        free = np.flatnonzero(labels < 0)
        wanted = nearest[free, choice]
        # by centroid, the best fitting first: a row's rank among those wanting its centroid
        by = np.lexsort((-fits[free, choice], wanted))
        wanted = wanted[by]
        rank = np.arange(len(by)) - np.searchsorted(wanted, wanted)
        taken = rank < room[wanted]
        labels[free[by[taken]]] = wanted[taken]
        room -= np.bincount(wanted[taken], minlength=parts)
    left = labels < 0
    labels[left] = nearest[left, 0]
    return labels


# Kind codes a layout keeps apart (sqlite_index.KIND_CODES: fact, event, lesson).
KINDS = 3
# Rows written since the layout was made that it tolerates, at least (looked up one by one).
LAYOUT_CHANGES = 2_048


class Layout:
    """A copy of the sign bits in partition order, and by kind inside a partition, so a check
    reads its kind's rows of its partitions as a few contiguous runs (gathering ~25,000
    scattered columns of a million costs more than their Hamming pass). Rows written since
    it was made (new seqs, and rows whose vector or part changed) are looked up in the index
    itself until they are a 64th of it; then it is made again (~0.2 s at a million memories,
    so ~13 us per write). ``index`` in its methods is the connection's
    ``sqlite_index.BitIndex`` (typed ``Any``: that module imports this one)."""

    def __init__(self, index: Any) -> None:
        np = index.np
        # runs by partition, then by kind inside each partition: a check of facts reads the
        # facts of its partitions alone (half of the rows reached at a million memories,
        # which the Hamming pass would otherwise score and then drop); a kind code out of
        # range (only in a damaged file) goes with the last kind, and the mask still decides
        # whether a check may have it
        kind = np.minimum(index.kind, KINDS - 1)
        key = (index.part.astype(np.int32) + 1) * KINDS + kind
        self.order = np.argsort(key, kind="stable")
        self.top = int(index.part.max(initial=-1))  # the highest partition this layout holds
        # where each (partition, kind) run starts, for partitions -1 (none) .. top, and the end
        self.bounds = np.searchsorted(key[self.order], np.arange((self.top + 2) * KINDS + 1))
        self.words = index.words[:, self.order]
        self.seqs = index.seqs[self.order]
        self.size = len(index.seqs)
        self.dirty = np.zeros(self.size, dtype=bool)  # by position in the index
        self.moved: list[Any] = []
        self.count = 0
        self._recent: tuple[tuple[int, int], Any] | None = None

    def changed(self, positions: Any) -> None:
        self.dirty[positions[positions < self.size]] = True
        self.moved.append(positions)
        self.count += len(positions)

    def stale(self, size: int) -> bool:
        return size - self.size + self.count > max(LAYOUT_CHANGES, size // 64)

    def recent(self, index: Any) -> Any:
        """Positions of the rows written since the layout was made."""
        key = (len(index.seqs), self.count)
        if self._recent is None or self._recent[0] != key:
            np = index.np
            found = np.arange(self.size, len(index.seqs))
            if self.moved:
                found = np.union1d(found, np.concatenate(self.moved))
            self._recent = (key, found)
        return self._recent[1]

    def valid(self, mask: Any) -> Any:
        """``mask`` (the allowed rows, by position in the index) in the layout's order, less
        the rows changed since it was made (once per search, not per query)."""
        return (mask[: self.size] & ~self.dirty)[self.order]

    def reached(
        self, index: Any, wanted: frozenset[int], mask: Any, valid: Any,
        kinds: Sequence[int] | None = None,
    ) -> tuple[Any, Any, Any]:
        """Seqs and sign bits of the rows in the partitions ``wanted`` or in none, of the
        kind codes ``kinds`` (None or empty: all), as the index holds them now, and which of
        them are allowed: new arrays, the caller's to overwrite. The rows written since the
        layout was made are those ``mask`` allows, so it must hold the same kind filter."""
        np = index.np
        codes = sorted(set(kinds)) if kinds else range(KINDS)
        runs: list[tuple[int, int]] = []
        for p in sorted({-1, *wanted}):
            if p > self.top:
                continue
            base = (p + 1) * KINDS
            for k in codes:
                a, b = int(self.bounds[base + k]), int(self.bounds[base + k + 1])
                if a == b:
                    continue
                if runs and runs[-1][1] == a:  # adjacent kinds: one run
                    runs[-1] = (runs[-1][0], b)
                else:
                    runs.append((a, b))
        recent = self.recent(index)
        if len(recent):
            recent = recent[mask[recent] & in_parts(index.part[recent], wanted)]
        # copies of contiguous runs (cheaper than gathering columns), then the recent rows,
        # each array made in one copy; rows not allowed stay, flagged in ``keep``, as
        # dropping columns of the bits costs more than their pass
        keep = np.concatenate([*(valid[a:b] for a, b in runs), np.ones(len(recent), bool)])
        seqs = np.concatenate([*(self.seqs[a:b] for a, b in runs), index.seqs[recent]])
        words = np.concatenate(
            [*(self.words[:, a:b] for a, b in runs), index.words[:, recent]], axis=1
        )
        return seqs, words, keep


def in_parts(part: Any, wanted: frozenset[int]) -> Any:
    """Which of ``part`` are in ``wanted`` or -1 (none): a table lookup (``np.isin`` sorts)."""
    import numpy as np

    table = np.zeros(max(int(part.max(initial=-1)), max(wanted, default=-1)) + 2, dtype=bool)
    table[0] = True
    table[[p + 1 for p in wanted]] = True
    return table[part + 1]
