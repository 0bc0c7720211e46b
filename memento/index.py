"""The vector index for large stores: a binary-quantised coarse pass in numpy, then exact
cosine re-ranking of a candidate pool in SQLite.

Below ``MIN_ROWS`` memories, recall scans ``memory_vec`` (vec0, exact) as it always did.
Above it, a brute-force float scan costs ~2 us per memory on a laptop core (1-2 s at a
million), and sqlite-vec 0.1.9's own ``bit[]`` KNN is no faster (its top-k is quadratic in
k; benches/results, issue 8). Instead:

1. ``memory_bits`` holds, for every memory, the sign bits of its vector (48 bytes for 384
   dimensions) and the filter columns (kind, archived, created), written by the same
   transaction as ``memory_vec``. Every write gives the row a new ``stamp``, larger than
   all before it; a deleted memory leaves a tombstone (``bits`` NULL) with a new stamp.
2. Each connection keeps those bits in numpy (``BitIndex``, ~66 bytes per memory). Before
   a search it reads the rows whose stamp is above the last one it has seen (an index
   seek: nothing when nothing changed), so writes by this or any other process are seen
   by the next search. Inside a write transaction (the near-duplicate check of a store)
   the changed rows are applied to that one search only, never kept, so a rollback leaves
   nothing stale behind.
3. A search computes the Hamming distance to every allowed memory (filters as numpy masks,
   a subject-key prefix as the set of matching seqs from SQL), keeps the ``pool`` nearest,
   and re-ranks them by exact cosine on their float vectors (``vec_distance_cosine`` on
   ``memory_vec`` by rowid, ~10 us each). When the filters leave at most ``pool`` memories
   every one of them is re-ranked, so the answer is exact.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import apsw

if TYPE_CHECKING:
    import numpy as np

    from .store import Filters

# Memories (max seq) from which recall uses this index instead of the exact vec0 scan.
MIN_ROWS = 50_000
# Candidates re-ranked exactly, at least; recall@10 vs exact brute force on SciFact claims
# at 1M memories: see README "Scale" (chosen from benches/run.py --scale 1m).
POOL = 1_000
KIND_CODES = {"fact": 0, "event": 1, "lesson": 2}
NO_STAMP = -1


def bits_of(vector: bytes) -> bytes:
    """The sign bits of a little-endian float32 vector, packed low bit first (as sqlite-vec's
    ``vec_quantize_binary`` packs them, which the v3 migration uses)."""
    import numpy as np

    return np.packbits(np.frombuffer(vector, dtype="<f4") > 0, bitorder="little").tobytes()


def next_stamp(conn: apsw.Connection) -> int:
    row = conn.execute("SELECT max(stamp) FROM memory_bits").fetchone()
    return int(row[0] or 0) + 1


def write_row(
    conn: apsw.Connection, seq: int, vector: bytes | None, kind: str, archived: bool,
    created_us: int,
) -> None:
    """Insert or replace one memory's row (``vector`` None keeps the stored bits)."""
    stamp = next_stamp(conn)
    if vector is None:
        conn.execute(
            "UPDATE memory_bits SET kind = ?, archived = ?, created = ?, stamp = ? "
            "WHERE seq = ?",
            (KIND_CODES[kind], int(archived), created_us, stamp, seq),
        )
    else:
        conn.execute(
            "INSERT OR REPLACE INTO memory_bits(seq, bits, kind, archived, created, stamp) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (seq, bits_of(vector), KIND_CODES[kind], int(archived), created_us, stamp),
        )


def delete_row(conn: apsw.Connection, seq: int) -> None:
    conn.execute(
        "UPDATE memory_bits SET bits = NULL, stamp = ? WHERE seq = ?", (next_stamp(conn), seq)
    )


def reset(conn: apsw.Connection) -> None:
    """Every row becomes a tombstone (the vectors are being replaced: ``reembed`` to another
    dimension), with fresh stamps so every cache drops them."""
    base = next_stamp(conn)
    conn.execute("UPDATE memory_bits SET bits = NULL, stamp = ? + seq", (base,))


class BitIndex:
    """One connection's numpy copy of ``memory_bits``, sorted by seq."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np
        self.stamp = NO_STAMP
        self.width = 0  # 64-bit words per vector
        self.seqs = np.zeros(0, dtype=np.int64)
        self.words = np.zeros((0, 0), dtype=np.uint64)  # (width, n): one row per word
        self.live = np.zeros(0, dtype=bool)  # has bits (not a tombstone)
        self.kind = np.zeros(0, dtype=np.uint8)
        self.archived = np.zeros(0, dtype=bool)
        self.created = np.zeros(0, dtype=np.int64)
        self.lock = threading.Lock()

    # ---- loading --------------------------------------------------------------------

    def _rows(self, conn: apsw.Connection, after: int) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT seq, bits, kind, archived, created, stamp FROM memory_bits "
            "WHERE stamp > ? ORDER BY seq",
            (after,),
        ).fetchall()

    def _arrays(self, rows: Sequence[tuple[Any, ...]], width: int) -> dict[str, Any]:
        np = self.np
        n = len(rows)
        raw = bytearray(n * width * 8)
        live = np.zeros(n, dtype=bool)
        step = width * 8
        for i, row in enumerate(rows):
            if row[1] is not None:
                raw[i * step : (i + 1) * step] = row[1]
                live[i] = True
        words = np.frombuffer(bytes(raw), dtype=np.uint64).reshape(n, width).T.copy()
        return {
            "seqs": np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
            "words": words,
            "live": live,
            "kind": np.fromiter((r[2] for r in rows), dtype=np.uint8, count=n),
            "archived": np.fromiter((bool(r[3]) for r in rows), dtype=bool, count=n),
            "created": np.fromiter((r[4] for r in rows), dtype=np.int64, count=n),
            "stamp": max((r[5] for r in rows), default=NO_STAMP),
        }

    @staticmethod
    def _width(rows: Sequence[tuple[Any, ...]]) -> int | None:
        for row in rows:
            if row[1] is not None:
                return (len(row[1]) + 7) // 8
        return None

    def refresh(self, conn: apsw.Connection) -> dict[str, Any] | None:
        """Bring the copy up to date. Returns None, or inside a write transaction the
        changed rows as arrays to overlay on this one search (not kept)."""
        top = conn.execute("SELECT max(stamp) FROM memory_bits").fetchone()[0]
        top = NO_STAMP if top is None else int(top)
        if top == self.stamp:
            return None
        if top < self.stamp:  # the table was rebuilt under us: start again
            self.__init__()  # type: ignore[misc]
        rows = self._rows(conn, self.stamp)
        width = self._width(rows) or self.width
        if self.width and width != self.width:  # vectors of another dimension
            self.__init__()  # type: ignore[misc]
            rows = self._rows(conn, NO_STAMP)
            width = self._width(rows) or 0
        delta = self._arrays(rows, width)
        if conn.txn_state("main") == apsw.SQLITE_TXN_WRITE:
            delta["width"] = width
            return delta
        self._merge(delta, width)
        return None

    def _merge(self, delta: dict[str, Any], width: int) -> None:
        np = self.np
        if not self.width:
            self.width = width
            self.words = np.zeros((width, 0), dtype=np.uint64)
        seqs = delta["seqs"]
        pos = np.searchsorted(self.seqs, seqs)
        if len(self.seqs):
            known = (pos < len(self.seqs)) & (
                self.seqs[np.minimum(pos, len(self.seqs) - 1)] == seqs
            )
        else:
            known = np.zeros(len(seqs), dtype=bool)
        k = pos[known]
        self.words[:, k] = delta["words"][:, known]
        for name in ("live", "kind", "archived", "created"):
            getattr(self, name)[k] = delta[name][known]
        new = ~known
        if new.any():
            self.seqs = np.concatenate([self.seqs, seqs[new]])
            self.words = np.concatenate([self.words, delta["words"][:, new]], axis=1)
            for name in ("live", "kind", "archived", "created"):
                setattr(self, name, np.concatenate([getattr(self, name), delta[name][new]]))
            if len(self.seqs) > 1 and (np.diff(self.seqs) <= 0).any():
                order = np.argsort(self.seqs, kind="stable")
                self.seqs = self.seqs[order]
                self.words = self.words[:, order]
                for name in ("live", "kind", "archived", "created"):
                    setattr(self, name, getattr(self, name)[order])
        self.stamp = max(self.stamp, delta["stamp"])

    # ---- searching ------------------------------------------------------------------

    def _allowed(self, parts: dict[str, Any], filters: Filters, prefix_seqs: Any) -> Any:
        np = self.np
        mask = parts["live"].copy()
        if not filters.include_archived:
            mask &= ~parts["archived"]
        if filters.kinds:
            codes = [KIND_CODES[k] for k in filters.kinds]
            mask &= np.isin(parts["kind"], codes)
        if filters.since_us is not None:
            mask &= parts["created"] >= filters.since_us
        if filters.until_us is not None:
            mask &= parts["created"] <= filters.until_us
        if prefix_seqs is not None:
            mask &= np.isin(parts["seqs"], prefix_seqs, assume_unique=True)
        return mask

    def _hamming(self, words: Any, query: Any) -> Any:
        np = self.np
        n = words.shape[1]
        out = np.zeros(n, dtype=np.uint16)
        for w in range(words.shape[0]):
            out += np.bitwise_count(words[w] ^ query[w])
        return out

    def candidates(
        self, conn: apsw.Connection, vector: bytes, filters: Filters, pool: int,
        prefix_seqs: Any,
    ) -> list[int]:
        """Seqs of (at least) the ``pool`` allowed memories nearest in Hamming distance;
        every allowed memory when there are no more than ``pool``."""
        np = self.np
        with self.lock:
            delta = self.refresh(conn)
            query = np.frombuffer(bits_of(vector), dtype=np.uint64)
            base = {
                "seqs": self.seqs, "live": self.live, "kind": self.kind,
                "archived": self.archived, "created": self.created,
            }  # fmt: skip
            mask = self._allowed(base, filters, prefix_seqs)
            words = self.words
            if delta is not None and len(delta["seqs"]):
                # rows changed by the open write transaction replace the cached ones
                mask &= ~np.isin(self.seqs, delta["seqs"], assume_unique=True)
                dmask = self._allowed(delta, filters, prefix_seqs)
                dseqs = delta["seqs"][dmask]
                dwords = delta["words"][:, dmask] if delta["width"] == self.width else None
            else:
                dseqs, dwords = np.zeros(0, dtype=np.int64), None
            if dwords is None and len(dseqs):
                # another width (reembed in progress): re-rank those rows exactly
                extra = dseqs.tolist()
                dseqs = np.zeros(0, dtype=np.int64)
            else:
                extra = []
            if self.width and len(query) != self.width:
                return [*self.seqs[mask].tolist(), *dseqs.tolist(), *extra]
            allowed = np.flatnonzero(mask)
            if len(allowed) + len(dseqs) <= pool:
                return [*self.seqs[allowed].tolist(), *dseqs.tolist(), *extra]
            dist = self._hamming(words[:, allowed], query) if len(allowed) < len(mask) // 2 \
                else self._hamming(words, query)[allowed]  # fmt: skip
            seqs = self.seqs[allowed]
            if len(dseqs):
                dist = np.concatenate([dist, self._hamming(dwords, query)])
                seqs = np.concatenate([seqs, dseqs])
            # the pool nearest, ties at the boundary included (a histogram, not a sort)
            counts = np.cumsum(np.bincount(dist, minlength=1))
            limit = int(np.searchsorted(counts, pool))
            chosen = np.flatnonzero(dist <= limit)
            return [*seqs[chosen].tolist(), *extra]


_indexes: weakref.WeakKeyDictionary[apsw.Connection, BitIndex] = weakref.WeakKeyDictionary()
_indexes_lock = threading.Lock()


def for_connection(conn: apsw.Connection) -> BitIndex:
    with _indexes_lock:
        index = _indexes.get(conn)
        if index is None:
            index = _indexes[conn] = BitIndex()
        return index


def rerank(
    conn: apsw.Connection, vector: bytes, seqs: Sequence[int], k: int
) -> list[tuple[int, float]]:
    """Exact cosine distances of ``seqs`` to ``vector``, the ``k`` nearest first."""
    hits: list[tuple[int, float]] = []
    cursor = conn.cursor()
    sql = "SELECT rowid, vec_distance_cosine(embedding, ?) FROM memory_vec WHERE rowid = ?"
    for seq in seqs:
        row = cursor.execute(sql, (vector, seq)).fetchone()
        if row is not None:
            hits.append((int(row[0]), float(row[1])))
    hits.sort(key=lambda hit: (hit[1], hit[0]))
    return hits[:k]


def size_hint(conn: apsw.Connection) -> int:
    """Roughly how many memories the store holds (max seq: one index seek)."""
    row = conn.execute("SELECT max(seq) FROM memories").fetchone()
    return int(row[0] or 0)


def has_table(conn: apsw.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memory_bits'"
        ).fetchone()
        is not None
    )


def knn(
    conn: apsw.Connection, vector: bytes, k: int, filters: Filters,
    prefix_seqs: np.ndarray | None, pool: int | None = None,
) -> list[tuple[int, float]]:
    """The coarse pass then the exact re-rank."""
    index = for_connection(conn)
    chosen = index.candidates(conn, vector, filters, max(pool or POOL, k), prefix_seqs)
    return rerank(conn, vector, chosen, k)
