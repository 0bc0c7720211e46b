"""The vector index for large stores: a binary-quantised coarse pass in numpy, then exact
cosine re-ranking of a candidate pool in SQLite.

Below ``MIN_ROWS`` memories, recall scans ``memory_vec`` (vec0, exact) as it always did.
Above it, that brute-force float scan costs ~0.8 us per memory here (800 ms at a million),
sqlite-vec 0.1.9's own ``bit[]`` KNN is slower still for a pool of hundreds (950 ms for
k=500 at 300k), and vec0's lookup by rowid walks a 1.5 MB chunk blob (100-400 us per row), so
it cannot feed a re-rank either. Instead:

1. ``memory_bits`` holds, for every memory, the sign bits of its vector (48 bytes for 384
   dimensions), a float copy of the vector for re-ranking, and the filter columns (kind,
   archived, created), written by the same transaction as ``memory_vec``. Every write gives
   the row a new ``stamp``, larger than all before it; a deleted memory leaves a tombstone
   (``bits`` and ``embedding`` NULL) with a new stamp.
2. Each connection keeps the bits and filter columns in numpy (``BitIndex``, ~66 bytes per
   memory). Before a search it reads the rows whose stamp is above the last one it has seen
   (an index seek: nothing when nothing changed), so writes by this or any other process
   are seen by the next search. Inside a write transaction (the near-duplicate check of a
   store) the changed rows are applied to that one search only, never kept, so a rollback
   leaves nothing stale behind.
3. A search computes the Hamming distance to every allowed memory (filters as numpy masks,
   a subject-key prefix as the set of matching seqs from SQL), keeps the ``pool`` nearest,
   and re-ranks them by exact cosine on their float copies (one ``IN`` query). When the
   filters leave at most ``pool`` memories every one of them is re-ranked, so the answer is
   exact.

Stores of at most ``FLOAT_ROWS`` memories use the same copy, refreshed the same way, in its
exact form: a connection that searches a second time (a server, not a one-shot command)
keeps the float vectors too and scores every allowed memory with one matrix product
(``BitIndex.exact_knn``), the answer vec0 gives, in a tenth of the time.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import apsw

from ..dates import to_micros
from . import sqlite_meta as meta
from . import sqlite_parts as parts

if TYPE_CHECKING:
    import numpy as np

    from .base import Filters

# Memories (max seq) from which recall uses this index instead of the exact vec0 scan.
MIN_ROWS = 50_000
# Up to this many memories a connection's second and later searches score every float
# vector in numpy instead of vec0's scan: at 10,000 memories 0.7-1.5 ms against 8.7 ms
# (benches/run.py --quick, "dense p50"), for 1.5 KB of memory per memory (29 MiB here at
# 384 dimensions, and an eighth more kept spare, see _append; the float copies of 50,000
# would hold 73 MiB in every searching process).
# The first search of a connection scans with vec0: loading the copy costs ~45 ms at 10,000
# memories, five scans, which a one-shot command or hook would never earn back.
FLOAT_ROWS = 20_000
# Candidates re-ranked exactly, at least; recall@10 vs exact brute force on SciFact claims
# at 1M memories: see README "Scale" (chosen from benches/run.py --scale 1m).
POOL = 1_000
# Filters whose allowed rows a connection keeps (candidates_many): a batch's groups of kind
# and scope, 2 MB each at a million memories (the mask, and the same in the layout's order).
MASKS_KEPT = 8
KIND_CODES = {"fact": 0, "event": 1, "lesson": 2}
assert len(KIND_CODES) == parts.KINDS  # the layout's runs by kind (sqlite_parts.Layout)
NO_STAMP = -1
_FIELDS = ("live", "kind", "archived", "created", "scope", "part")


@dataclass(frozen=True)
class VectorMeta:
    """The filter columns kept beside every vector (in ``memory_vec`` and ``memory_bits``),
    so filters apply inside the search. ``scope`` is the project's integer code (0: global)."""

    kind: str
    archived: bool
    created_us: int
    scope: int

    def vec_values(self) -> tuple[str, int, int, int]:
        """``kind, archived, created, scope`` as ``memory_vec`` stores them."""
        return (self.kind, int(self.archived), self.created_us, self.scope)


@dataclass
class _Allowed:
    """The rows one filter allows in a connection's copy (``BitIndex.candidates_many``):
    ``mask`` while the copy is in ``state`` (stamp, rows, generation), and the same in the
    order of ``layout`` while it has seen ``count`` changes (``valid``)."""

    state: tuple[int, int, Any]
    mask: Any
    layout: Any = None
    count: int = 0
    valid: Any = None


def bits_of(vector: bytes) -> bytes:
    """The sign bits of a little-endian float32 vector, packed low bit first (as sqlite-vec's
    ``vec_quantize_binary`` packs them, which the v3 migration uses)."""
    import numpy as np

    return np.packbits(np.frombuffer(vector, dtype="<f4") > 0, bitorder="little").tobytes()


def top_stamp(conn: apsw.Connection) -> int:
    """The stamp of the latest change to ``memory_bits`` (0: none; one index seek)."""
    row = conn.execute("SELECT max(stamp) FROM memory_bits").fetchone()
    return int(row[0] or 0)


def next_stamp(conn: apsw.Connection) -> int:
    return top_stamp(conn) + 1


def write_row(conn: apsw.Connection, seq: int, vector: bytes | None, meta: VectorMeta) -> None:
    """Insert or replace one memory's row (``vector`` None keeps the stored vectors, and
    their partition); a new vector is put in its partition when the store has one."""
    stamp = next_stamp(conn)
    filters = (KIND_CODES[meta.kind], int(meta.archived), meta.created_us, meta.scope)
    if vector is None:
        conn.execute(
            "UPDATE memory_bits SET kind = ?, archived = ?, created = ?, scope = ?, stamp = ? "
            "WHERE seq = ?",
            (*filters, stamp, seq),
        )
    else:
        conn.execute(
            "INSERT OR REPLACE INTO memory_bits(seq, bits, embedding, kind, archived, "
            "created, scope, stamp, part) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, bits_of(vector), vector, *filters, stamp, parts.part_of(conn, vector)),
        )


def delete_row(conn: apsw.Connection, seq: int) -> None:
    conn.execute(
        "UPDATE memory_bits SET bits = NULL, embedding = NULL, stamp = ? WHERE seq = ?",
        (next_stamp(conn), seq),
    )


def reset(conn: apsw.Connection) -> None:
    """Every row becomes a tombstone (the vectors are being replaced: ``reembed`` to another
    dimension), with fresh stamps so every cache drops them."""
    base = next_stamp(conn)
    conn.execute(
        "UPDATE memory_bits SET bits = NULL, embedding = NULL, stamp = ? + seq", (base,)
    )


def fill(conn: apsw.Connection) -> None:
    """Rows for every vector in ``memory_vec`` (the v3 migration), in chunks."""
    codes = "CASE kind WHEN 'fact' THEN 0 WHEN 'event' THEN 1 ELSE 2 END"
    last = 0
    while True:
        rows = conn.execute(
            f"SELECT rowid, embedding, {codes}, archived, created FROM memory_vec "
            "WHERE rowid > ? ORDER BY rowid LIMIT 10000",
            (last,),
        ).fetchall()
        if not rows:
            return
        conn.executemany(
            "INSERT INTO memory_bits(seq, bits, embedding, kind, archived, created, stamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r[0], bits_of(r[1]), r[1], r[2], r[3], r[4], r[0]) for r in rows],
        )
        last = rows[-1][0]


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
        self.scope = np.zeros(0, dtype=np.int64)
        self.part = np.zeros(0, dtype=np.int16)  # partition (sqlite_parts), -1: none
        self.generation: str | None = None  # the partition's, when the rows were read
        self.layout: parts.Layout | None = None  # the rows in partition order, for the check
        # the exact form (small stores): unit float vectors, one row per seq (zeros for a
        # tombstone or a vector of another width), and the searches it has been asked for
        self.exact = False
        self.vectors: Any = None
        self.dim = 0
        self.searches = 0
        self._buffers: dict[str, Any] = {}  # see _append
        # the rows allowed by recent filters (see candidates_many), by (filters, codes)
        self._masks: dict[Any, _Allowed] = {}
        self._views: dict[str, Any] = {}
        self.lock = threading.Lock()
        global _POPCOUNT8
        if _POPCOUNT8 is None and not hasattr(np, "bitwise_count"):
            _POPCOUNT8 = _popcount_table()

    # ---- loading --------------------------------------------------------------------

    CHUNK = 65_536

    def _load(self, conn: apsw.Connection, after: int) -> dict[str, Any]:
        """The rows with a stamp above ``after``, as arrays sorted by seq, read in chunks so
        a full load of a million rows never holds them all as Python tuples."""
        np = self.np
        # A full load scans the table in seq order; a delta goes through the stamp index
        # (named: without statistics the planner would rather scan the whole table in seq
        # order than sort a few rows, a 1.6 GB read per search at a million memories).
        source = "memory_bits" if after == NO_STAMP else "memory_bits INDEXED BY memory_bits_stamp"
        row = conn.execute(
            f"SELECT length(bits) FROM {source} WHERE stamp > ? AND bits IS NOT NULL LIMIT 1",
            (after,),
        ).fetchone()
        width = self.width if row is None else (int(row[0]) + 7) // 8
        if self.exact and not self.dim:
            row = conn.execute(
                f"SELECT length(embedding) FROM {source} WHERE stamp > ? AND embedding "
                "IS NOT NULL LIMIT 1",
                (after,),
            ).fetchone()
            self.dim = 0 if row is None else int(row[0]) // 4
        floats = ", embedding" if self.exact else ""
        cursor = conn.cursor().execute(
            f"SELECT seq, bits, kind, archived, created, stamp, scope, part{floats} "
            f"FROM {source} WHERE stamp > ? ORDER BY seq",
            (after,),
        )
        parts: list[dict[str, Any]] = []
        while True:
            rows = list(itertools.islice(cursor, self.CHUNK))
            if not rows:
                break
            parts.append(self._arrays(rows, width))
            if len(rows) < self.CHUNK:
                break
        if not parts:
            parts.append(self._arrays([], width))
        out = {
            name: np.concatenate([part[name] for part in parts], axis=-1)
            for name in ("seqs", "words", *_FIELDS)
        }
        if self.exact:
            out["vectors"] = np.concatenate([part["vectors"] for part in parts])
        out["stamp"] = max(part["stamp"] for part in parts)
        out["width"] = width
        return out

    def _floats(self, blobs: Sequence[bytes | None]) -> tuple[Any, Any]:
        """The unit vectors of ``blobs`` (the rows' float copies), zeros where there is none
        of this copy's width (a tombstone, or a reembed in progress), and which rows have
        one. vec0's cosine distance normalises, so imported vectors of any length compare
        alike here."""
        np = self.np
        step = self.dim * 4
        lengths = _lengths(np, blobs)
        present = lengths == step
        raw = _packed(blobs, lengths, present, step)
        vectors = np.frombuffer(raw, dtype="<f4").reshape(len(blobs), self.dim).copy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors, present

    def _arrays(self, rows: Sequence[tuple[Any, ...]], width: int) -> dict[str, Any]:
        # column by column, each converted in one call: a loop over the rows cost ~2.4 s
        # of the 4.4 s that loading a million memories took (the rest is SQLite's scan)
        np = self.np
        n = len(rows)
        step = width * 8
        columns = tuple(zip(*rows)) if n else ((),) * (9 if self.exact else 8)
        seqs, bits, kind, archived, created, stamp, scope, part = columns[:8]
        # bits of as many whole words as the copy's (a dimension that is not a multiple
        # of 64 leaves the last word part empty, as the query's is: see _words)
        lengths = _lengths(np, bits)
        live = (lengths >= 0) & ((lengths + 7) // 8 == width)
        words = np.frombuffer(_packed(bits, lengths, live, step), dtype=np.uint64)
        words = words.reshape(n, width).T.copy()
        extra = {}
        if self.exact:
            extra["vectors"], present = self._floats(columns[8])
            live &= present  # a row the float copy has no vector for is not searched
        return {
            **extra,
            "seqs": np.array(seqs, dtype=np.int64),
            "words": words,
            "live": live,
            "kind": np.array(kind, dtype=np.uint8),
            "archived": np.array(archived, dtype=bool),
            "created": np.array(created, dtype=np.int64),
            "scope": np.array(scope, dtype=np.int64),
            "part": np.fromiter((-1 if p is None else p for p in part), np.int16, n),
            "stamp": max(stamp, default=NO_STAMP),
        }

    def refresh(self, conn: apsw.Connection) -> dict[str, Any] | None:
        """Bring the copy up to date. Returns None, or inside a write transaction the
        changed rows as arrays to overlay on this one search (not kept)."""
        top = conn.execute("SELECT max(stamp) FROM memory_bits").fetchone()[0]
        top = NO_STAMP if top is None else int(top)
        generation = parts.generation(conn)
        if generation != self.generation:
            # a partition was trained or dropped: every row's part changed without a new
            # stamp (the training runs in a transaction of its own, before a batch's writes)
            self._restart()
            self.generation = generation
        if top == self.stamp:
            return None
        if top < self.stamp:  # the table was rebuilt under us: start again
            self._restart()
            self.generation = generation
        delta = self._load(conn, self.stamp)
        if self.width and delta["width"] != self.width:  # vectors of another dimension
            if conn.txn_state("main") == apsw.SQLITE_TXN_WRITE:
                return delta
            self._restart()
            self.generation = generation
            delta = self._load(conn, NO_STAMP)
        if conn.txn_state("main") == apsw.SQLITE_TXN_WRITE:
            return delta
        self._merge(delta, delta["width"])
        return None

    def _restart(self) -> None:
        """Empty, as new, keeping the lock (its holder is the caller) and the form."""
        lock, exact, searches = self.lock, self.exact, self.searches
        self.__init__()  # type: ignore[misc]
        self.lock, self.exact, self.searches = lock, exact, searches

    def _merge(self, delta: dict[str, Any], width: int) -> None:
        np = self.np
        if not self.width:
            # the first rows with bits: the rows held so far (tombstones) have none
            self.width = width
            self.words = np.zeros((width, len(self.seqs)), dtype=np.uint64)
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
        if self.exact:
            if self.vectors is None or self.vectors.shape[1] != self.dim:
                # the first vectors of the copy (it held none, or only tombstones)
                self.vectors = np.zeros((len(self.seqs), self.dim), dtype=np.float32)
            self.vectors[k] = delta["vectors"][known]
        for name in _FIELDS:
            getattr(self, name)[k] = delta[name][known]
        if self.layout is not None:
            self.layout.changed(k)
        new = ~known
        if new.any():
            last = self.seqs[-1] if len(self.seqs) else None
            added = seqs[new]  # ascending, as the delta was read
            self.seqs = self._append("seqs", self.seqs, added)
            self.words = self._append("words", self.words, delta["words"][:, new])
            if self.exact:
                self.vectors = self._append("vectors", self.vectors, delta["vectors"][new], 0)
            for name in _FIELDS:
                setattr(self, name, self._append(name, getattr(self, name), delta[name][new]))
            if last is not None and added[0] <= last:  # a seq below the newest: re-sort
                self.layout = None  # positions moved
                order = np.argsort(self.seqs, kind="stable")
                self.seqs = self.seqs[order]
                self.words = self.words[:, order]
                if self.exact:
                    self.vectors = self.vectors[order]
                for name in _FIELDS:
                    setattr(self, name, getattr(self, name)[order])
        self.stamp = max(self.stamp, delta["stamp"])

    # Spare room kept after each array, as a share of its length (at least SPARE_MIN rows):
    # appending a store's one new row to arrays without room copied all of them, ~15 MB
    # for the float copy of 10,000 memories and ~70 MB for the index of a million, on
    # every write that followed a search. An eighth is 6 MB at a million memories.
    SPARE = 8
    SPARE_MIN = 1_024

    def _append(self, name: str, current: Any, extra: Any, axis: int = -1) -> Any:
        """``current`` with ``extra`` after it along ``axis``: a view of a buffer with room
        to spare, filled in place while the room lasts (``current`` is then the view this
        returned last time)."""
        np = self.np
        n, m = current.shape[axis], extra.shape[axis]
        buffer = self._buffers.get(name)
        if buffer is None or current is not self._views.get(name) or buffer.shape[axis] < n + m:
            shape = list(current.shape)
            shape[axis] = n + m + max(self.SPARE_MIN, (n + m) // self.SPARE)
            buffer = np.empty(shape, dtype=current.dtype)
            np.moveaxis(buffer, axis, 0)[:n] = np.moveaxis(current, axis, 0)
            self._buffers[name] = buffer
        np.moveaxis(buffer, axis, 0)[n : n + m] = np.moveaxis(extra, axis, 0)
        view = np.moveaxis(np.moveaxis(buffer, axis, 0)[: n + m], 0, axis)
        self._views[name] = view
        return view

    # ---- searching ------------------------------------------------------------------

    def _allowed(
        self, parts: dict[str, Any], filters: Filters, prefix_seqs: Any, codes: Any
    ) -> Any:
        np = self.np
        mask = parts["live"].copy()
        if codes is not None:
            mask &= _among(np, parts["scope"], codes)
        if not filters.include_archived:
            mask &= ~parts["archived"]
        kinds = _kind_codes(filters)
        if kinds is not None:
            mask &= _among(np, parts["kind"], kinds)
        if filters.since is not None:
            mask &= parts["created"] >= to_micros(filters.since)
        if filters.until is not None:
            mask &= parts["created"] <= to_micros(filters.until)
        if prefix_seqs is not None:
            mask &= np.isin(parts["seqs"], prefix_seqs, assume_unique=True)
        return mask

    def _hamming(self, words: Any, query: Any) -> Any:
        """The Hamming distance of each column of ``words`` (the index's own: a word at a
        time, not copied whole) to ``query``."""
        np = self.np
        out = np.zeros(words.shape[1], dtype=np.uint16)
        for w in range(words.shape[0]):
            out += _popcounts(np, words[w] ^ query[w])
        return out

    def candidates(
        self, conn: apsw.Connection, vector: bytes, filters: Filters, pool: int,
        prefix_seqs: Any, codes: Any = None,
    ) -> list[int]:
        """Seqs of (at least) the ``pool`` allowed memories nearest in Hamming distance;
        every allowed memory when there are no more than ``pool``."""
        return self.candidates_many(conn, [vector], filters, pool, prefix_seqs, codes)[0]

    def candidates_many(
        self, conn: apsw.Connection, vectors: Sequence[bytes], filters: Filters, pool: int,
        prefix_seqs: Any, codes: Any = None, reach: Sequence[frozenset[int]] | None = None,
        least: int = 0,
    ) -> list[list[int]]:
        """:meth:`candidates` for each of ``vectors`` under one ``filters``: the copy is
        refreshed and the filters applied once, then each vector pays only its Hamming pass
        over the allowed memories (what the near-duplicate check of a batch asks).
        ``reach``: for each vector, the partitions (``sqlite_parts``) whose memories it may
        have as candidates (rows without a part always), however few they are; their pool
        shrinks with them, to ``least`` at the fewest (see :meth:`_reached`)."""
        np = self.np
        with self.lock:
            if self.exact:  # a large store: the bits suffice
                self._forget_floats()
            delta = self.refresh(conn)
            changed = delta is not None and len(delta["seqs"]) > 0
            # the same filters over an unchanged copy allow the same rows: a batch checked
            # in parts (Memory's store_many) pays for the mask over every row (~5 ms at a
            # million memories, with the layout's copy of it) once per kind and scope
            state = (self.stamp, len(self.seqs), self.generation)
            cached = self._masks.get((filters, codes)) if prefix_seqs is None else None
            if cached is not None and cached.state == state and not changed:
                mask = cached.mask
            else:
                mask = self._allowed(self._columns(), filters, prefix_seqs, codes)
                cached = None
                if prefix_seqs is None and not changed:
                    if len(self._masks) >= MASKS_KEPT:
                        self._masks.clear()
                    cached = self._masks[(filters, codes)] = _Allowed(state, mask)
            words = self.words
            dparts = np.zeros(0, dtype=np.int64)
            if changed:
                # rows changed by the open write transaction replace the cached ones
                self._hide(mask, delta["seqs"])
                dmask = self._allowed(delta, filters, prefix_seqs, codes)
                dseqs = delta["seqs"][dmask]
                dparts = delta["part"][dmask]
                dwords = delta["words"][:, dmask] if delta["width"] == self.width else None
            else:
                dseqs, dwords = np.zeros(0, dtype=np.int64), None
            if dwords is None and len(dseqs):
                # another width (reembed in progress): re-rank those rows exactly
                extra = dseqs.tolist()
                dseqs = np.zeros(0, dtype=np.int64)
            else:
                extra = []
            queries = [_words(bits_of(v)) for v in vectors]
            if any(self.width and len(q) != self.width for q in queries):
                every = [*self.seqs[mask].tolist(), *dseqs.tolist(), *extra]
                return [every for _ in vectors]
            if reach is not None:
                if self.layout is None or self.layout.stale(len(self.seqs)):
                    self.layout = parts.Layout(self)
                count = self.layout.count
                if cached is not None and cached.layout is self.layout and cached.count == count:
                    valid = cached.valid
                else:
                    valid = self.layout.valid(mask)
                    if cached is not None:
                        cached.layout, cached.count, cached.valid = self.layout, count, valid
                kinds = _kind_codes(filters)
                return [
                    [*self._reached(
                        query, vector, wanted, mask, valid, kinds, dseqs, dparts, dwords, pool,
                        least),
                     *extra]
                    for query, vector, wanted in zip(queries, vectors, reach)
                ]  # fmt: skip
            allowed = np.flatnonzero(mask)
            if len(allowed) + len(dseqs) <= pool:
                every = [*self.seqs[allowed].tolist(), *dseqs.tolist(), *extra]
                return [every for _ in vectors]
            seqs = self.seqs[allowed]
            # the allowed words gathered once when they are few, as one search does
            few = len(allowed) < len(mask) // 2
            kept = words[:, allowed] if few and len(vectors) > 1 else None
            if len(dseqs):
                seqs = np.concatenate([seqs, dseqs])
            out = []
            for query in queries:
                if kept is not None:
                    dist = self._hamming(kept, query)
                elif few:
                    dist = self._hamming(words[:, allowed], query)
                else:
                    dist = self._hamming(words, query)[allowed]
                if len(dseqs):
                    dist = np.concatenate([dist, self._hamming(dwords, query)])
                out.append([*seqs[_nearest(dist, pool)].tolist(), *extra])
            return out

    def exact_knn(
        self, conn: apsw.Connection, vector: bytes, k: int, filters: Filters,
        prefix_seqs: Callable[[], Any], codes: Any = None,
    ) -> list[tuple[int, float]] | None:
        """The ``k`` allowed memories nearest to ``vector`` by exact cosine distance, from
        the float copies in numpy; None when vec0 should answer: the connection's first
        search, or a write transaction before the copy is loaded (it is loaded outside
        one, where it can be kept). Inside a write transaction (the near-duplicate check
        of a store) the rows it changed are scored from their own read, as the large-store
        search overlays them. ``prefix_seqs`` gives the seqs a subject-key prefix allows
        (None: no prefix), asked only when the copy answers."""
        np = self.np
        writing = conn.txn_state("main") == apsw.SQLITE_TXN_WRITE
        with self.lock:
            self.searches += 1
            if self.searches < 2:
                return None
            if not self.exact or (self.dim and len(vector) != self.dim * 4):
                if writing:
                    return None
                self.exact = True
                self._restart()
            if writing and self.stamp == NO_STAMP:
                return None
            delta = self.refresh(conn)
            if self.dim * 4 != len(vector):
                return None  # no stored vector of this width yet
            prefix = prefix_seqs()
            mask = self._allowed(self._columns(), filters, prefix, codes)
            extra_seqs, extra_vectors = np.zeros(0, dtype=np.int64), None
            if delta is not None and len(delta["seqs"]):
                if delta["width"] != self.width:
                    return None  # vectors of another width in this transaction
                self._hide(mask, delta["seqs"])
                dmask = self._allowed(delta, filters, prefix, codes)
                extra_seqs, extra_vectors = delta["seqs"][dmask], delta["vectors"][dmask]
            allowed = np.flatnonzero(mask)
            if not len(allowed) + len(extra_seqs) or k <= 0:
                return []
            query = np.frombuffer(vector, dtype="<f4")
            norm = float(np.linalg.norm(query))
            query = query / norm if norm > 0 else query
            # every row scored, then the allowed picked: gathering the allowed rows first
            # would copy the matrix (15 MB at 10,000 memories) on every search
            few = len(allowed) < len(self.seqs) // 4
            scores = self.vectors[allowed] @ query if few else (self.vectors @ query)[allowed]
            seqs = self.seqs[allowed]
            if extra_vectors is not None and len(extra_seqs):
                scores = np.concatenate([scores, extra_vectors @ query])
                seqs = np.concatenate([seqs, extra_seqs])
            distances = 1.0 - scores.astype(np.float64)
            if len(seqs) > k:
                keep = np.argpartition(distances, k - 1)[:k]
                # ties at the k-th distance included, then ordered: equal vectors newest
                # first, as vec0's scan returns them and recall ranks equal scores
                keep = np.flatnonzero(distances <= distances[keep].max())
                seqs, distances = seqs[keep], distances[keep]
            order = np.lexsort((-seqs, distances))[:k]
            return [(int(seqs[i]), float(distances[i])) for i in order.tolist()]

    def _hide(self, mask: Any, seqs: Any) -> None:
        """Clear ``mask`` at the cached rows of ``seqs`` (changed by the open transaction:
        its own read of them replaces the cached one)."""
        np = self.np
        pos = np.searchsorted(self.seqs, seqs)
        pos = pos[pos < len(self.seqs)]
        pos = pos[np.isin(self.seqs[pos], seqs, assume_unique=True)]
        mask[pos] = False

    def fits(self, size: int) -> bool:
        """Whether a store of ``size`` memories (``size_hint``) may use the float copy; one
        it has outgrown (``FLOAT_ROWS``) is let go."""
        if size <= FLOAT_ROWS:
            return True
        if self.exact:
            with self.lock:
                self._forget_floats()
        return False

    def _forget_floats(self) -> None:
        self.exact, self.vectors, self.dim = False, None, 0
        self._buffers.pop("vectors", None)
        self._views.pop("vectors", None)

    def _columns(self) -> dict[str, Any]:
        return {
            "seqs": self.seqs, "live": self.live, "kind": self.kind,
            "archived": self.archived, "created": self.created, "scope": self.scope,
        }  # fmt: skip

    def _reached(
        self, query: Any, vector: bytes, wanted: frozenset[int], mask: Any, valid: Any,
        kinds: Sequence[int] | None, dseqs: Any, dparts: Any, dwords: Any, pool: int,
        least: int,
    ) -> list[int]:
        """The ``pool`` allowed memories (all when fewer) nearest to a query in the
        partitions ``wanted`` or in none (``mask``: allowed; ``valid``: the same in the
        layout's order; ``kinds``: their kind codes, None: all): the ``parts.WIDEN`` x
        ``pool`` nearest in Hamming distance (``query``: its sign bits), of which the pool
        scores best against the query's float ``vector`` (:func:`_sign_table`)."""
        np = self.np
        assert self.layout is not None
        seqs, words, keep = self.layout.reached(self, wanted, mask, valid, kinds)
        # a copy of the rows' bits, left holding those that differ from the query's
        dist = _differences(np, words, query)
        mine = len(keep)  # rows of the layout, then the transaction's
        if len(dseqs):
            inside = parts.in_parts(dparts, wanted)
            seqs = np.concatenate([seqs, dseqs[inside]])
            dwords = dwords[:, inside]  # a copy too
            dist = np.concatenate([dist, _differences(np, dwords, query)])
            keep = np.concatenate([keep, np.ones(dwords.shape[1], dtype=bool)])
        allowed = int(np.count_nonzero(keep))
        # the pool grows with the candidates: 30-50 of the ~1,100-1,600 facts a check
        # reaches at 100k memories, 60 of ~12,000 at a million (sqlite_parts.POOL)
        pool = max(min(pool, allowed // 32), least)
        if allowed <= pool:
            return seqs[keep].tolist()  # type: ignore[no-any-return]
        if allowed < len(keep):
            # rows not allowed are put beyond any distance rather than dropped: one pass
            # over the distances instead of a copy of each column kept
            dist[~keep] = len(query) * 64 + 1
        wide = _nearest(dist, min(parts.WIDEN * pool, allowed))
        if len(wide) <= pool or parts.WIDEN <= 1:  # 1: the Hamming distance alone
            return seqs[wide].tolist()  # type: ignore[no-any-return]
        chosen = words[:, wide[wide < mine]]
        if wide[-1] >= mine:
            chosen = np.concatenate([chosen, dwords[:, wide[wide >= mine] - mine]], axis=1)
        scores = _sign_scores(np, _sign_table(np, vector, self.width), chosen)
        # ties at the boundary included, as in _nearest: the pool is the same whatever the
        # order of the rows (one store after another, or a batch)
        floor = np.partition(scores, len(scores) - pool)[len(scores) - pool]
        return seqs[wide[scores >= floor]].tolist()  # type: ignore[no-any-return]


def _lengths(np: Any, blobs: Sequence[bytes | None]) -> Any:
    """The length of each blob, -1 for NULL."""
    return np.fromiter((-1 if b is None else len(b) for b in blobs), np.int64, len(blobs))


def _packed(blobs: Sequence[bytes | None], lengths: Any, ok: Any, step: int) -> bytes:
    """The blobs where ``ok`` end to end, each padded with zeros to ``step`` bytes, and
    ``step`` zeros for each of the others (one join when every blob is whole)."""
    if bool(ok.all()) and bool((lengths == step).all()):
        return b"".join(blobs)  # type: ignore[arg-type]
    blank = bytes(step)
    return b"".join(
        b.ljust(step, b"\0") if good and b is not None else blank
        for b, good in zip(blobs, ok.tolist())
    )


def _kind_codes(filters: Filters) -> list[int] | None:
    """The kind codes a filter allows (None: every kind)."""
    return [KIND_CODES[k] for k in filters.kinds] if filters.kinds else None


# Codes up to which a filter compares each one (np.isin sorts: 4.5 ms over a million
# memories here, against 0.4 ms per comparison).
FEW_CODES = 8


def _among(np: Any, values: Any, codes: Sequence[int]) -> Any:
    """Which of ``values`` are one of ``codes``."""
    if len(codes) > FEW_CODES:
        return np.isin(values, list(codes))
    out = np.zeros(len(values), dtype=bool)
    for code in codes:
        out |= values == code
    return out


def _words(bits: bytes) -> Any:
    """Packed sign bits as 64-bit words, the last one padded with zeros (as stored rows are
    when their dimension is not a multiple of 64)."""
    import numpy as np

    return np.frombuffer(bits + bytes(-len(bits) % 8), dtype=np.uint64)


def _differences(np: Any, words: Any, query: Any) -> Any:
    """The Hamming distance of each column of ``words`` (width, n; either memory order) to
    the ``query`` bits; ``words``, a copy the caller owns, is left holding the bits where
    they differ, what ``_sign_scores`` reads (XORed in place: the columns are not copied
    again to score the few that are kept)."""
    np.bitwise_xor(words, query[:, None], out=words)
    return _popcounts(np, words).sum(axis=0, dtype=np.uint16)


def _popcounts(np: Any, words: Any) -> Any:
    """The bits set in each 64-bit word of ``words`` (any shape and memory order), uint8."""
    count = getattr(np, "bitwise_count", None)  # numpy >= 2.0
    if count is not None:
        return count(words)
    flat = np.ascontiguousarray(words)  # a byte view needs the last axis contiguous
    per_byte = _POPCOUNT8[flat.view(np.uint8)].reshape(*flat.shape, 8)
    return per_byte.sum(axis=-1, dtype=np.uint8)


def _sign_table(np: Any, vector: bytes, width: int) -> Any:
    """What each byte of the bits where a memory's signs differ from ``vector``'s
    (``_differences``) adds to its score against ``vector``, for ``width`` words,
    flattened: entry ``256 * j + b`` is the dot product of dimensions 8j..8j+7 of the unit
    vector along ``vector`` with the memory's +1/-1 signs there when the byte value ``b``
    marks where they differ from the vector's own (``bits_of``), times ``SIGN_SCALE`` and
    rounded: a sign that agrees adds the value's magnitude, one that differs subtracts it.

    The score, the vector's dot product with a memory's signs, ranks memories by cosine
    better than the Hamming distance between two sets of sign bits, which throws the
    query's magnitudes away (correlation with the cosine 0.94 over the ~12,000 facts a
    check reaches at a million memories): there the 60 best scored of the 240 nearest in
    Hamming distance find the near neighbours the 100 nearest found, for 60 float reads
    instead of ~110 (``sqlite_parts.POOL``). In integers the sum is exact, so a row scores
    the same in any batch and in any order."""
    global _SIGNS
    if _SIGNS is None:
        bits = (np.arange(256)[:, None] >> np.arange(8)) & 1
        _SIGNS = (1 - bits * 2).astype(np.float64)  # (256, 8): +1 agrees, -1 differs
    query = np.zeros(64 * width, dtype=np.float64)
    values = np.frombuffer(vector, dtype="<f4")[: 64 * width]
    query[: len(values)] = np.abs(values)
    norm = float(np.linalg.norm(query))
    if norm > 0:  # a unit vector, whatever a model returns: the steps below assume one
        query /= norm
    table = (query.reshape(-1, 8) @ _SIGNS.T) * SIGN_SCALE  # (8 * width, 256)
    return np.rint(table).astype(np.int32).ravel()


def _sign_scores(np: Any, table: Any, differing: Any) -> Any:
    """The score (``_sign_table``) of each column of ``differing`` (width, n): the bits
    where a memory's signs differ from the query's (``_differences``)."""
    packed = np.ascontiguousarray(differing.T).view(np.uint8)  # (n, 8 * width): dims 8j..
    return table[packed + np.arange(0, len(table), 256)].sum(axis=1, dtype=np.int64)


# The table's entries in integer steps of 2**-20 (a unit vector's score lies within +-20):
# a score, 48 entries at 384 dimensions each rounded by half a step, is off by 2.3e-5 at
# most (scores run over ~+-10 for the bundled model), so only candidates as good as tied
# may be ordered by the rounding.
SIGN_SCALE = 2**20
_SIGNS: Any = None


def _nearest(dist: Any, pool: int) -> Any:
    """Positions of the ``pool`` smallest distances, ties at the boundary included (a
    histogram, not a sort)."""
    import numpy as np

    counts = np.cumsum(np.bincount(dist, minlength=1))
    limit = int(np.searchsorted(counts, pool))
    return np.flatnonzero(dist <= limit)


def _popcount_table() -> Any:
    import numpy as np

    return np.array([bin(n).count("1") for n in range(256)], dtype=np.uint8)


_POPCOUNT8: Any = None

_indexes: weakref.WeakKeyDictionary[apsw.Connection, BitIndex] = weakref.WeakKeyDictionary()
_indexes_lock = threading.Lock()


def sync_floats(conn: apsw.Connection, size: int) -> None:
    """Bring a loaded float copy (a small store's, see ``BitIndex.exact_knn``) up to date,
    or let it go once the store (``size``: ``size_hint``) has outgrown ``FLOAT_ROWS``
    (a server importing in batches, whose checks never search one at a time); nothing when
    the connection has none."""
    with _indexes_lock:
        index = _indexes.get(conn)
    if index is not None and index.exact and index.fits(size) and index.stamp != NO_STAMP:
        with index.lock:
            index.refresh(conn)


def for_connection(conn: apsw.Connection) -> BitIndex:
    with _indexes_lock:
        index = _indexes.get(conn)
        if index is None:
            index = _indexes[conn] = BitIndex()
        return index


def rerank(
    conn: apsw.Connection, vector: bytes, seqs: Sequence[int], k: int
) -> list[tuple[int, float]]:
    """The ``k`` of ``seqs`` nearest to ``vector`` by exact cosine distance, on the float
    copies in ``memory_bits`` (one B-tree row each, read with ``IN``: vec0's own lookup by
    rowid walks a 1.5 MB chunk blob and costs ~400 us at a million memories)."""
    if k <= 0 or not seqs:
        return []
    return rerank_many(conn, [vector], [seqs], k)[0]


def _read_floats(conn: apsw.Connection, seqs: Sequence[int], width: int) -> tuple[Any, Any]:
    """The float copies of ``seqs`` (sorted) that have one of ``width`` bytes: their seqs,
    ascending, and their vectors as rows of a matrix."""
    import numpy as np

    rows: list[tuple[int, bytes]] = []
    for start in range(0, len(seqs), 500):
        part = [int(s) for s in seqs[start : start + 500]]
        rows += conn.execute(
            "SELECT seq, embedding FROM memory_bits "
            f"WHERE seq IN ({','.join('?' * len(part))}) AND length(embedding) = ?",
            [*part, width],
        ).fetchall()
    found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join([r[1] for r in rows]), dtype="<f4").reshape(
        len(rows), width // 4
    )
    if len(found) > 1 and bool((found[1:] < found[:-1]).any()):  # SQLite gave them unsorted
        order = np.argsort(found, kind="stable")
        found, matrix = found[order], matrix[order]
    return found, matrix


def size_hint(conn: apsw.Connection) -> int:
    """Roughly how many memories the store holds (max seq: one index seek)."""
    row = conn.execute("SELECT max(seq) FROM memories").fetchone()
    return int(row[0] or 0)


def has_table(conn: apsw.Connection) -> bool:
    return meta.has_table(conn, "memory_bits")


def rerank_many(
    conn: apsw.Connection, vectors: Sequence[bytes], pools: Sequence[Sequence[int]], k: int,
    min_similarity: float | None = None,
) -> list[list[tuple[int, float]]]:
    """:func:`rerank` for each vector over its own pool, the float copies of the pools'
    union read once (pools of one batch overlap), keeping hits of at least
    ``min_similarity`` when given."""
    import numpy as np

    union = sorted({int(s) for pool in pools for s in pool})
    if k <= 0 or not union:
        return [[] for _ in vectors]
    known, matrix = _read_floats(conn, union, len(vectors[0]))
    if not len(known):
        return [[] for _ in vectors]
    norms = np.linalg.norm(matrix, axis=1)
    out: list[list[tuple[int, float]]] = []
    for vector, pool in zip(vectors, pools):
        query = np.frombuffer(vector, dtype="<f4")
        pos = _present(known, pool)
        distances = 1.0 - (matrix[pos] @ query) / np.maximum(
            norms[pos] * float(np.linalg.norm(query)), 1e-30
        )
        if min_similarity is not None:
            keep = 1.0 - distances >= min_similarity
            pos, distances = pos[keep], distances[keep]
        order = np.lexsort((-known[pos], distances))[:k]  # ties: newest first, as vec0
        out.append([(int(known[pos[i]]), float(distances[i])) for i in order.tolist()])
    return out


def _present(known: Any, pool: Sequence[int]) -> Any:
    """Positions in the sorted ``known`` of the seqs of ``pool`` it holds."""
    import numpy as np

    wanted = np.asarray(pool, dtype=np.int64)
    pos = np.searchsorted(known, wanted)
    ok = pos < len(known)
    pos, wanted = pos[ok], wanted[ok]
    return np.unique(pos[known[pos] == wanted])


def knn(
    conn: apsw.Connection, vector: bytes, k: int, filters: Filters,
    prefix_seqs: np.ndarray | None, pool: int | None = None,
    codes: tuple[int, ...] | None = None,
) -> list[tuple[int, float]]:
    """The coarse pass then the exact re-rank (``codes``: the allowed scopes, None: all)."""
    index = for_connection(conn)
    chosen = index.candidates(conn, vector, filters, max(pool or POOL, k), prefix_seqs, codes)
    return rerank(conn, vector, chosen, k)


# Queries whose pools are re-ranked together: their union's float copies are held at once
# (at most 64 x POOL rows, ~100 MB at 384 dimensions; pools of one batch overlap).
RERANK_GROUP = 64


def knn_many(
    conn: apsw.Connection, vectors: Sequence[bytes], k: int, filters: Filters,
    codes: tuple[int, ...] | None = None, min_similarity: float | None = None,
    reach: Sequence[frozenset[int]] | None = None,
) -> list[list[tuple[int, float]]]:
    """:func:`knn` for each of ``vectors`` under one ``filters`` (no prefix): the same
    candidates as one search each, the copy refreshed and filtered once; with ``reach``
    (``sqlite_parts.regions``), only from each vector's partitions."""
    index = for_connection(conn)
    pool = max(POOL if reach is None else parts.POOL, k)
    least = max(parts.MIN_POOL, k)
    pools = index.candidates_many(conn, vectors, filters, pool, None, codes, reach, least)
    out: list[list[tuple[int, float]]] = []
    for start in range(0, len(vectors), RERANK_GROUP):
        group = slice(start, start + RERANK_GROUP)
        out += rerank_many(conn, vectors[group], pools[group], k, min_similarity)
    return out
