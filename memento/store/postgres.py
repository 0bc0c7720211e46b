"""The PostgreSQL backend (:class:`PostgresStore`): one psycopg 3 connection to a server
with pgvector, every table in the ``memento`` schema (``postgres_migrations``).

- Vectors: a ``vector(dim)`` column with an HNSW index (cosine distance). Filters run inside
  the search: a search whose filters leave few memories is an exact scan of those memories;
  others use the index with pgvector's iterative scan, and fall back to the exact scan if
  the index still returned fewer than asked for (``knn``).
- Keywords: the terms of every memory in ``memory_terms`` (a ``tsvector`` with a GIN index
  and each term's frequency), made by the same tokenizer as SQLite's FTS5 index (porter
  stems, unicode61, diacritics removed) and ranked by FTS5's own BM25
  (``postgres_keywords``), so keyword hits, their scores and recall's relevance (``stems``)
  are the same on both backends.
- Writes: one transaction each, serialised across processes and machines by a transaction
  advisory lock: the near-duplicate check and the subject-key upsert read what every earlier
  writer committed, so shared keys are never duplicated. Reads of a search share one
  REPEATABLE READ snapshot.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from ..config import display_location
from ..errors import DatabaseError
from ..projects import GLOBAL, Project
from ..recall import keyword_terms
from . import postgres_migrations as migrations
from .base import COLUMNS as WRITABLE
from .base import Filters, NewMemory, Row, Store, TokenRow, Version, read_metadata
from .postgres_keywords import (
    BM25_B,
    BM25_K1,
    KEYWORD_MIN_ROWS,
    KEYWORD_OVERFETCH,
    KEYWORD_OVERFETCH_FILTERED,
    bounded,
    quote,
    terms_vector,
    tokenize,
)

try:
    import psycopg
except ImportError:  # pragma: no cover - exercised by the "no extra" test in a subprocess
    psycopg = None  # type: ignore[assignment]

EXTRA = "pip install 'memento-agent-memory[postgres]'"
CONNECT_TIMEOUT_S = 10
# A search whose filters leave at most this many memories scans them exactly instead of
# walking the HNSW graph. 5,000 cosine distances of 384 floats are a few milliseconds of
# server time, and the scan is exact however selective the filter (an HNSW walk with a
# filter matching 3 memories in 100,000 visits its whole scan budget and may find none).
EXACT_MAX = 5_000
# HNSW candidates per search (hnsw.ef_search; pgvector's default is 40, its maximum 1000).
# Measured 2026-11-26 on 100,000 vectors made as benches/postgres.py makes them (2,000
# SciFact sentences, each with ~50 perturbed copies: clustered, hard for a graph), 50
# SciFact claims, recall@10 against an exact scan: ef 40: 0.51, 100: 0.60, 200: 0.79,
# 400: 0.92, 1000: 0.99 at 5.5 ms p50 (1.0 ms at 40). SQLite's large-store index reaches
# 0.97 on the same data, so the maximum: a search costs a few ms more, and finds its ten.
EF_SEARCH = 1000
# Every this many write transactions, a process folds keyword_stats' appended changes into
# one row (reads sum at most a few hundred rows per writer in between: well under 1 ms).
STATS_FOLD_EVERY = 200
COLUMNS = (
    "m.seq, m.id, m.content, m.kind, m.subject_key, m.importance, m.metadata, m.source, "
    "m.created_at, m.updated_at, m.archived_at, m.embedding_model, p.id, p.name"
)
SELECT = f"SELECT {COLUMNS} FROM memories m JOIN projects p ON p.id = m.scope"
VECTOR_INDEX = (
    "CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops)"
)


def require_driver() -> None:
    if psycopg is None:
        raise DatabaseError(f"a postgresql:// database needs psycopg: {EXTRA}")


# ---- values ---------------------------------------------------------------------------


def vector_text(vector: bytes) -> str:
    """A little-endian float32 vector as pgvector's text input."""
    import numpy as np

    values = np.frombuffer(vector, dtype="<f4")
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


def to_row(raw: Sequence[Any]) -> Row:
    return Row(
        seq=int(raw[0]),
        id=raw[1],
        content=raw[2],
        kind=raw[3],
        subject_key=raw[4],
        importance=float(raw[5]),
        metadata=read_metadata(raw[6]),
        source=raw[7],
        created_at=_utc(raw[8]),  # type: ignore[arg-type]
        updated_at=_utc(raw[9]),  # type: ignore[arg-type]
        archived_at=_utc(raw[10]),
        embedding_model=raw[11],
        scope=raw[12],
        project=None if raw[12] == GLOBAL else raw[13],
    )


TOKEN_SELECT = (
    "SELECT t.name, t.read_only, t.project, t.created_at, t.last_used_at, p.name "
    "FROM tokens t LEFT JOIN projects p ON p.id = t.project"
)


def _token(raw: Sequence[Any]) -> TokenRow:
    return TokenRow(
        name=raw[0],
        read_only=bool(raw[1]),
        project=raw[2],
        created_at=_utc(raw[3]),  # type: ignore[arg-type]
        last_used_at=_utc(raw[4]),
        project_name=raw[5],
    )


def _json(value: dict[str, Any] | None) -> str:
    import json

    return json.dumps(value or {}, ensure_ascii=False)


def prefix_upper_bound(prefix: str) -> str | None:
    from .sqlite import prefix_upper_bound as upper

    return upper(prefix)


def memories_where(filters: Filters, alias: str = "m") -> tuple[str, list[Any]]:
    """SQL conditions and bindings on ``memories`` for ``filters`` (exact); the same
    conditions as SQLite's ``memories_where``."""
    clauses: list[str] = []
    params: list[Any] = []
    if not filters.include_archived:
        clauses.append(f"{alias}.archived_at IS NULL")
    if filters.kinds:
        clauses.append(f"{alias}.kind = ANY(%s)")
        params.append(list(filters.kinds))
    if filters.prefix:
        # whole key segments (see Filters): the key itself, or keys below "key."; a range
        # on the C-collated subject_key index finds them
        prefix = filters.prefix
        child = prefix if prefix.endswith(".") else prefix + "."
        below = f"(left({alias}.subject_key, %s) = %s AND {alias}.subject_key >= %s"
        below_params: list[Any] = [len(child), child, child]
        upper = prefix_upper_bound(child)
        if upper is not None:
            below += f" AND {alias}.subject_key < %s"
            below_params.append(upper)
        below += ")"
        if child is prefix:
            clauses.append(below)
        else:
            clauses.append(f"({alias}.subject_key = %s OR {below})")
            params.append(prefix)
        params.extend(below_params)
    if filters.since is not None:
        clauses.append(f"{alias}.created_at >= %s")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append(f"{alias}.created_at <= %s")
        params.append(filters.until)
    if filters.only_keyed:
        clauses.append(f"{alias}.subject_key IS NOT NULL")
    if filters.scopes is not None:
        clauses.append(f"{alias}.scope = ANY(%s)")
        params.append(list(filters.scopes))
    return (" AND ".join(clauses) or "true"), params


# ---- connecting ---------------------------------------------------------------------------


def connect(url: str) -> Any:
    """A connection in autocommit mode (transactions are explicit), UTC, with the memento
    schema and pgvector's schema on the search path."""
    require_driver()
    where = display_location(url)
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="memento",
        )
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to {where}: {first_line(exc)}: check the URL in --db or "
            "MEMENTO_PATH and that the server is running"
        ) from None
    try:
        conn.execute("SET TIME ZONE 'UTC'")
        row = conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        ).fetchone()
        path = [migrations.SCHEMA, "public"]
        if row is not None and row[0] not in path:
            path.insert(1, row[0])
        conn.execute(
            "SELECT set_config('search_path', %s, false)",
            (", ".join(psycopg.sql.Identifier(p).as_string(conn) for p in path),),
        )
    except BaseException:
        conn.close()
        raise
    return conn


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def describe_postgres_error(exc: BaseException, where: str) -> str:
    """One line for a driver error: what went wrong and what to do."""
    if psycopg is None:  # pragma: no cover
        return f"database error on {where}: {exc}"
    errors = psycopg.errors
    if isinstance(exc, errors.InsufficientPrivilege):
        return (
            f"the database user of {where} lacks a privilege ({first_line(exc)}): grant it, "
            "or connect as the owner of the memento schema"
        )
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return f"{where} is read-only (a standby?): connect to the primary to store or forget"
    if isinstance(exc, errors.DiskFull):
        return f"the disk of the PostgreSQL server at {where} is full: free some space and retry"
    if isinstance(exc, (errors.QueryCanceled, errors.LockNotAvailable)):
        return f"{where} did not answer in time ({first_line(exc)}): retry"
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"lost the connection to {where} ({first_line(exc)}): check that the server is "
            "running, then retry"
        )
    return f"database error on {where}: {first_line(exc)}"


# ---- the store ---------------------------------------------------------------------------


class PostgresStore(Store):
    """One PostgreSQL database through one psycopg connection (``conn``: the escape hatch
    for tests and benchmarks)."""

    def __init__(self, url: str, create: bool = True) -> None:
        require_driver()
        self.errors = (psycopg.Error,)
        self.url = url
        self.location = display_location(url)
        self._conn = connect(url)
        try:
            with self.conn.cursor() as cur:
                version = migrations.current_version(cur)
        except BaseException:
            self.conn.close()
            raise
        if version == 0 and not create:
            self.conn.close()
            raise DatabaseError(
                f"no memento database at {self.location}: create it with "
                "`memento init --db URL`, or check --db and MEMENTO_PATH"
            )
        self._readonly: bool | None = None
        self._writes = 0
        self._iterative = self._has_iterative_scan()

    @property
    def conn(self) -> Any:
        """The connection; a new one when the last was broken (the server restarted, the
        network dropped): a long-running MCP server fails the one call that found the
        break, then carries on."""
        if self._conn.broken:
            self._conn.close()
            self._conn = connect(self.url)
        return self._conn

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _has_iterative_scan(self) -> bool:
        """pgvector 0.8 filters inside the HNSW walk (hnsw.iterative_scan); older versions
        rely on the exact fallback of ``knn``."""
        version = self._one("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if not version:
            return False
        parts = tuple(int(p) for p in str(version).split(".")[:2] if p.isdigit())
        return parts >= (0, 8)

    # ---- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    @property
    def readonly(self) -> bool:
        if self._readonly is None:
            self._readonly = bool(
                self._one(
                    "SELECT pg_is_in_recovery() "
                    "OR current_setting('default_transaction_read_only') = 'on' "
                    # CASE: has_table_privilege raises for a table not created yet
                    "OR CASE WHEN to_regclass('memento.memories') IS NULL THEN false "
                    "ELSE NOT has_table_privilege('memento.memories', 'INSERT') END"
                )
            )
        return self._readonly

    def schema_version(self) -> int:
        with self.conn.cursor() as cur:
            return migrations.current_version(cur)

    def needs_upgrade(self) -> bool:
        version = self.schema_version()
        migrations.check_not_newer(version)
        return version != migrations.LATEST

    def upgrade(self, dimension: int | None) -> list[int]:
        known = self.vector_dimension() if self.schema_version() else None
        dimension = known or dimension
        if dimension is None:
            raise ValueError("a new store needs the vector dimension")
        applied = migrations.migrate(self.conn, dimension)
        self._readonly = None
        # the first migration installs pgvector: asked before it, a new database's first
        # open (a long-running server's) would never filter inside the index walk
        self._iterative = self._has_iterative_scan()
        return applied

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """A write takes the advisory write lock first (writers queue, like SQLite's BEGIN
        IMMEDIATE); a read is one REPEATABLE READ snapshot. Rolls back on any error."""
        with self.conn.transaction():
            if write:
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.WRITE_LOCK,))
                self._writes += 1
                if self._writes % STATS_FOLD_EVERY == 0:
                    self._fold_keyword_stats()
            else:
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _fold_keyword_stats(self) -> None:
        """Replace the appended changes of ``keyword_stats`` by their sum (under the write
        lock, so no change is counted twice or lost)."""
        self.conn.execute(
            "WITH gone AS (DELETE FROM keyword_stats RETURNING docs, tokens) "
            "INSERT INTO keyword_stats SELECT coalesce(sum(docs), 0), coalesce(sum(tokens), 0) "
            "FROM gone"
        )

    def describe_error(self, exc: BaseException) -> str:
        return describe_postgres_error(exc, self.location)

    # ---- settings and vectors ------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        return self._one("SELECT value FROM settings WHERE key = %s", (key,))

    def set_setting(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO settings(key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def vector_dimension(self) -> int | None:
        value = self._one(
            "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = "
            "to_regclass('memento.memories') AND a.attname = 'embedding' AND NOT a.attisdropped"
        )
        return int(value) if value is not None and value > 0 else None

    def count_stale_vectors(self, model_name: str) -> int:
        return int(
            self._one(
                "SELECT count(*) FROM memories WHERE embedding_model IS DISTINCT FROM %s",
                (model_name,),
            )
        )

    def stale_seqs(self, model_name: str) -> list[int]:
        return [
            int(r[0])
            for r in self.conn.execute(
                "SELECT seq FROM memories WHERE embedding_model IS DISTINCT FROM %s ORDER BY seq",
                (model_name,),
            )
        ]

    def mark_all_stale(self) -> None:
        self.conn.execute("UPDATE memories SET embedding_model = NULL")

    def recreate_vectors(self, dimension: int) -> None:
        self.conn.execute("DROP INDEX IF EXISTS memories_embedding")
        self.conn.execute(
            f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dimension)}) "
            "USING NULL"
        )
        self.conn.execute(VECTOR_INDEX)
        self.mark_all_stale()

    @contextlib.contextmanager
    def loading(self) -> Iterator[bool]:
        """Into an empty store, the HNSW index is dropped and built once at the end: adding
        each vector to the graph is most of an insert's cost, and one build is faster
        (10,000 memories copied from SQLite, side by side 2026-11-26, 2 shared cores: 41.4 s
        with the index kept, 15.5 s with one build). Searches meanwhile scan exactly
        (``knn`` needs no index). An index a killed load left missing is built by the next
        load."""
        with self.transaction(write=True):
            empty = self._one("SELECT NOT EXISTS (SELECT 1 FROM memories)")
            indexed = self._one("SELECT to_regclass('memento.memories_embedding') IS NOT NULL")
            if empty and indexed:
                self.conn.execute("DROP INDEX memories_embedding")
        if not empty and not indexed:
            self._build_vector_index()
        try:
            yield bool(empty)
        finally:
            if empty:
                self._build_vector_index()

    def _build_vector_index(self) -> None:
        # not under the write lock: the build blocks other writers by itself (a SHARE lock)
        # and lets readers search; IF NOT EXISTS: another process may have built it
        with self.conn.transaction():
            self.conn.execute(VECTOR_INDEX.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))

    # ---- reads ----------------------------------------------------------------------

    def fetch(self, seqs: Sequence[int]) -> dict[int, Row]:
        if not seqs:
            return {}
        rows = self.conn.execute(f"{SELECT} WHERE m.seq = ANY(%s)", ([int(s) for s in seqs],))
        return {int(r[0]): to_row(r) for r in rows}

    def factors(self, seqs: Sequence[int]) -> dict[int, tuple[float, datetime, str]]:
        if not seqs:
            return {}
        rows = self.conn.execute(
            "SELECT seq, importance, created_at, id FROM memories WHERE seq = ANY(%s)",
            ([int(s) for s in seqs],),
        )
        return {int(r[0]): (float(r[1]), _utc(r[2]), r[3]) for r in rows}  # type: ignore[misc]

    def find_by_id(self, prefix: str) -> list[Row]:
        if len(prefix) == 26:
            rows = self.conn.execute(f"{SELECT} WHERE m.id = %s", (prefix,))
        else:
            rows = self.conn.execute(
                f"{SELECT} WHERE m.id >= %s AND m.id < %s LIMIT 2", (prefix, prefix + "~")
            )
        return [to_row(r) for r in rows]

    def find_live_subject(self, subject_key: str, scope: str) -> Row | None:
        raw = self.conn.execute(
            f"{SELECT} WHERE m.subject_key = %s AND m.archived_at IS NULL AND m.scope = %s",
            (subject_key, scope),
        ).fetchone()
        return None if raw is None else to_row(raw)

    def register_project(self, project: Project) -> None:
        self.conn.execute(
            "INSERT INTO projects(id, name, root) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
            "root = coalesce(nullif(excluded.root, ''), projects.root)",
            (project.id, project.name, project.root),
        )

    def projects(self) -> list[dict[str, Any]]:
        # the order of SQLite's integer codes: global first, then by registration
        return [
            {"id": r[0], "name": r[1], "root": r[2], "live": int(r[3]), "archived": int(r[4])}
            for r in self.conn.execute(
                "SELECT p.id, p.name, p.root, count(m.seq) - count(m.archived_at), "
                "count(m.archived_at) FROM projects p LEFT JOIN memories m ON m.scope = p.id "
                "GROUP BY p.id ORDER BY p.id <> 'global', min(p.created_at), p.id"
            )
        ]

    def rows(
        self, filters: Filters, order: str = "newest", limit: int | None = None
    ) -> list[Row]:
        where, params = memories_where(filters)
        orders = {
            "newest": "m.created_at DESC, m.seq DESC",
            "important": "m.importance DESC, m.updated_at DESC, m.seq DESC",
            "key": "m.subject_key NULLS FIRST, m.seq",
            "seq": "m.seq",
        }
        sql = f"{SELECT} WHERE {where} ORDER BY {orders[order]}"
        if limit is not None:
            sql += " LIMIT %s"
            params = [*params, int(limit)]
        return [to_row(r) for r in self.conn.execute(sql, params)]

    def iter_rows(self) -> Iterator[Row]:
        last = 0
        while True:
            chunk = self.conn.execute(
                f"{SELECT} WHERE m.seq > %s ORDER BY m.seq LIMIT 1000", (last,)
            ).fetchall()
            if not chunk:
                return
            for raw in chunk:
                yield to_row(raw)
            last = chunk[-1][0]

    def counts(self, filters: Filters) -> dict[str, Any]:
        where, params = memories_where(replace(filters, include_archived=True))
        live: dict[str, int] = {}
        archived = 0
        for kind, is_archived, count in self.conn.execute(
            f"SELECT m.kind, m.archived_at IS NOT NULL, count(*) FROM memories m WHERE {where} "
            "GROUP BY 1, 2",
            params,
        ):
            if is_archived:
                archived += int(count)
            else:
                live[kind] = int(count)
        return {"live_by_kind": live, "archived": archived}

    def size_bytes(self) -> int | None:
        """Every table of the memento schema with its indexes and TOAST data."""
        value = self._one(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (migrations.SCHEMA,),
        )
        return None if value is None else int(value)

    # ---- search ---------------------------------------------------------------------

    def knn(self, vector: bytes, k: int, filters: Filters) -> list[tuple[int, float]]:
        """The k nearest by cosine distance, filters exact: an exact scan when the filters
        leave at most ``EXACT_MAX`` memories, else the HNSW index with iterative scans
        (filters applied inside the walk), falling back to the exact scan when the walk
        ends with fewer than k (its scan budget spent on memories the filters reject)."""
        k = int(k)
        if k <= 0 or filters.scopes == ():
            return []
        query = vector_text(vector)
        where, params = memories_where(filters)
        where += " AND m.embedding IS NOT NULL"
        matching = int(
            self._one(
                f"SELECT count(*) FROM (SELECT 1 FROM memories m WHERE {where} LIMIT %s) s",
                [*params, EXACT_MAX + 1],
            )
        )
        if matching <= EXACT_MAX:
            return self._knn_exact(query, k, where, params)
        with self._in_transaction():
            self.conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)", (str(EF_SEARCH),)
            )
            if self._iterative:
                self.conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
            hits = self.conn.execute(
                f"SELECT m.seq, m.embedding <=> %s::vector AS d FROM memories m WHERE {where} "
                "ORDER BY m.embedding <=> %s::vector LIMIT %s",
                [query, *params, query, k],
            ).fetchall()
        if len(hits) < k:
            return self._knn_exact(query, k, where, params)
        return [(int(s), float(d)) for s, d in hits]

    def _knn_exact(
        self, query: str, k: int, where: str, params: list[Any]
    ) -> list[tuple[int, float]]:
        # MATERIALIZED: the distances are computed for the matching rows and sorted, never
        # handed to the HNSW index (whose walk may stop short under a selective filter)
        rows = self.conn.execute(
            "WITH c AS MATERIALIZED (SELECT m.seq, m.embedding <=> %s::vector AS d "
            f"FROM memories m WHERE {where}) SELECT seq, d FROM c ORDER BY d, seq LIMIT %s",
            [query, *params, k],
        ).fetchall()
        return [(int(s), float(d)) for s, d in rows]

    @contextlib.contextmanager
    def _in_transaction(self) -> Iterator[None]:
        """The caller's transaction, or one of its own (``set_config(..., true)`` lasts
        until the end of a transaction)."""
        if self.conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            yield
        else:
            with self.conn.transaction():
                yield

    def keyword(self, text: str, k: int, filters: Filters) -> list[tuple[int, float]]:
        """BM25 hits (lower is better, as FTS5 returns it), filters exact: every memory
        holding a query term is scored, with FTS5's formula and column weights over the
        whole store's document count and mean length (``keyword_stats``)."""
        terms: list[str] = []
        for word in keyword_terms(text):
            for term in tokenize(word):
                if term not in terms:
                    terms.append(term)
        if not terms or int(k) <= 0:
            return []
        docs, tokens = self.conn.execute(
            "SELECT coalesce(sum(docs), 0), coalesce(sum(tokens), 0) FROM keyword_stats"
        ).fetchone()
        docs = int(docs)
        if docs <= 0:
            return []
        frequency = self._document_frequencies(terms)
        terms = bounded(terms, frequency, docs)
        if not terms:
            return []
        # FTS5: idf = log((N - n + 0.5) / (n + 0.5)), at least 1e-6
        idf = [
            max(math.log((docs - frequency[t] + 0.5) / (frequency[t] + 0.5)), 1e-6)
            for t in terms
        ]
        average = max(int(tokens) / docs, 1e-9)
        where, params = memories_where(filters)
        tsquery = " | ".join(quote(t) for t in terms)
        # Each term's frequency read from the memory's JSON of them: 10x faster than
        # unnesting its tsvector. In large stores, as on SQLite (sqlite.keyword), the best
        # KEYWORD_OVERFETCH(_FILTERED) * k by BM25 alone are scored first and the filters
        # applied to those; the full join runs when fewer than k pass.
        scores = (
            "WITH q AS (SELECT * FROM unnest(%s::text[], %s::float8[]) AS q(term, idf)) "
            "SELECT t.seq, -sum(q.idf * f.tf * %s / (f.tf + %s * (%s + %s * t.doclen / %s))) "
            "AS rank FROM memory_terms t CROSS JOIN q "
            "CROSS JOIN LATERAL (SELECT (t.frequencies ->> q.term)::float8 AS tf) f "
            "WHERE t.terms @@ %s::tsquery AND f.tf IS NOT NULL GROUP BY t.seq"
        )
        bm25 = [terms, idf, BM25_K1 + 1, BM25_K1, 1 - BM25_B, BM25_B, average, tsquery]
        if docs >= KEYWORD_MIN_ROWS:
            fetch = int(k) * (KEYWORD_OVERFETCH_FILTERED if filters.narrowed else KEYWORD_OVERFETCH)
            rows = self.conn.execute(
                f"SELECT s.seq, s.rank FROM ({scores} ORDER BY rank, t.seq LIMIT %s) s "
                f"JOIN memories m ON m.seq = s.seq WHERE {where} ORDER BY s.rank, s.seq LIMIT %s",
                [*bm25, fetch, *params, int(k)],
            ).fetchall()
            if len(rows) >= int(k):
                return [(int(s), float(r)) for s, r in rows]
        rows = self.conn.execute(
            f"SELECT s.seq, s.rank FROM ({scores}) s JOIN memories m ON m.seq = s.seq "
            f"WHERE {where} ORDER BY s.rank, s.seq LIMIT %s",
            [*bm25, *params, int(k)],
        ).fetchall()
        return [(int(s), float(r)) for s, r in rows]

    def _document_frequencies(self, terms: list[str]) -> dict[str, int]:
        """How many memories hold each term (through the GIN index)."""
        rows = self.conn.execute(
            "SELECT t, (SELECT count(*) FROM memory_terms WHERE terms @@ "
            "(quote_literal(t))::tsquery) FROM unnest(%s::text[]) AS t",
            (terms,),
        ).fetchall()
        return {t: int(n) for t, n in rows}

    def similarities(self, vector: bytes, seqs: Sequence[int]) -> dict[int, float]:
        if not seqs:
            return {}
        rows = self.conn.execute(
            "SELECT seq, 1 - (embedding <=> %s::vector) FROM memories "
            "WHERE seq = ANY(%s) AND embedding IS NOT NULL",
            (vector_text(vector), [int(s) for s in seqs]),
        )
        return {int(s): float(v) for s, v in rows}

    def stems(self, texts: Sequence[str]) -> list[frozenset[str]]:
        return [frozenset(tokenize(text)) for text in texts]

    def vectors(self, seqs: Sequence[int]) -> dict[int, bytes]:
        import numpy as np

        if not seqs:
            return {}
        # as float4[]: each value crosses as written (float4 -> Python float -> float32)
        rows = self.conn.execute(
            "SELECT seq, embedding::real[] FROM memories "
            "WHERE seq = ANY(%s) AND embedding IS NOT NULL",
            ([int(s) for s in seqs],),
        )
        return {int(seq): np.asarray(values, dtype="<f4").tobytes() for seq, values in rows}

    # ---- bearer tokens of the HTTP server (memento.memory.tokens) -------------------

    def add_token(self, token: TokenRow, digest: str) -> None:
        self.conn.execute(
            "INSERT INTO tokens(name, hash, read_only, project, created_at, last_used_at) "
            "VALUES (%s, %s, %s, %s, %s, NULL)",
            (token.name, digest, token.read_only, token.project, token.created_at),
        )

    def tokens(self) -> list[TokenRow]:
        return [_token(r) for r in self.conn.execute(f"{TOKEN_SELECT} ORDER BY t.name")]

    def find_token(self, digest: str) -> TokenRow | None:
        raw = self.conn.execute(f"{TOKEN_SELECT} WHERE t.hash = %s", (digest,)).fetchone()
        return None if raw is None else _token(raw)

    def delete_token(self, name: str) -> bool:
        return self.conn.execute("DELETE FROM tokens WHERE name = %s", (name,)).rowcount > 0

    def touch_token(self, name: str, at: datetime) -> None:
        self.conn.execute("UPDATE tokens SET last_used_at = %s WHERE name = %s", (at, name))

    # ---- writes ---------------------------------------------------------------------

    def insert(self, memory: NewMemory, vector: bytes) -> int:
        terms, frequencies, doclen = terms_vector(memory.content, memory.subject_key)
        seq = int(
            self._one(
                "INSERT INTO memories(id, content, kind, subject_key, importance, metadata, "
                "source, created_at, updated_at, archived_at, embedding_model, scope, "
                "embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector) "
                "RETURNING seq",
                (
                    memory.id, memory.content, memory.kind, memory.subject_key,
                    memory.importance, _json(memory.metadata), memory.source,
                    memory.created_at, memory.updated_at, memory.archived_at,
                    memory.embedding_model, memory.scope, vector_text(vector),
                ),
            )
        )
        self.conn.execute(
            "INSERT INTO memory_terms(seq, terms, frequencies, doclen) "
            "VALUES (%s, %s::tsvector, %s::jsonb, %s)",
            (seq, terms, frequencies, doclen),
        )
        return seq

    def update(self, seq: int, values: dict[str, Any], vector: bytes | None = None) -> None:
        unknown = set(values) - set(WRITABLE)
        if unknown:
            raise ValueError(f"not a writable column: {sorted(unknown)}")
        assignments: list[str] = []
        params: list[Any] = []
        for name, value in values.items():
            assignments.append(f"{name} = %s")
            params.append(_json(value) if name == "metadata" else value)
        if vector is not None:
            assignments.append("embedding = %s::vector")
            params.append(vector_text(vector))
        if "content" in values or "subject_key" in values:
            current = self.fetch([seq]).get(seq)
            if current is not None:
                terms, frequencies, doclen = terms_vector(
                    values.get("content", current.content),
                    values.get("subject_key", current.subject_key),
                )
                self.conn.execute(
                    "UPDATE memory_terms SET terms = %s::tsvector, frequencies = %s::jsonb, "
                    "doclen = %s WHERE seq = %s",
                    (terms, frequencies, doclen, seq),
                )
        if assignments:
            self.conn.execute(
                f"UPDATE memories SET {', '.join(assignments)} WHERE seq = %s", [*params, seq]
            )

    def delete(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        part = [int(s) for s in seqs]
        self.conn.execute(
            "DELETE FROM injected WHERE memory_id IN (SELECT id FROM memories WHERE seq = ANY(%s))",
            (part,),
        )
        self.conn.execute("DELETE FROM memory_versions WHERE seq = ANY(%s)", (part,))
        self.conn.execute("DELETE FROM memory_terms WHERE seq = ANY(%s)", (part,))
        self.conn.execute("DELETE FROM memories WHERE seq = ANY(%s)", (part,))

    def after_delete(self) -> None:
        """VACUUM the tables a hard delete touched: their dead rows and index entries go,
        and the space is reused by later writes. It does not overwrite the freed bytes or
        reach the WAL, replicas and backups (README: "Forgetting on PostgreSQL")."""
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("VACUUM memories, memory_terms, memory_versions, injected")

    # ---- earlier versions -------------------------------------------------------------

    def add_version(
        self, row: Row, valid_from: datetime, valid_until: datetime, replaced_by: str
    ) -> None:
        self.conn.execute(
            "INSERT INTO memory_versions(seq, version, content, kind, subject_key, importance, "
            "metadata, source, scope, valid_from, valid_until, replaced_by) VALUES (%s, "
            "(SELECT coalesce(max(version), 0) + 1 FROM memory_versions WHERE seq = %s), "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row.seq, row.seq, row.content, row.kind, row.subject_key, row.importance,
                _json(row.metadata), row.source, row.scope, valid_from, valid_until,
                replaced_by,
            ),
        )

    def versions(self, seqs: Sequence[int]) -> dict[int, list[Version]]:
        out: dict[int, list[Version]] = {}
        if not seqs:
            return out
        import json

        rows = self.conn.execute(
            "SELECT v.seq, v.version, v.content, v.kind, v.subject_key, v.importance, "
            "v.metadata, v.source, p.id, p.name, v.valid_from, v.valid_until, v.replaced_by "
            "FROM memory_versions v JOIN projects p ON p.id = v.scope "
            "WHERE v.seq = ANY(%s) ORDER BY v.seq, v.version",
            ([int(s) for s in seqs],),
        )
        for r in rows:
            out.setdefault(int(r[0]), []).append(
                Version(
                    seq=int(r[0]), version=int(r[1]), content=r[2], kind=r[3],
                    subject_key=r[4], importance=float(r[5]),
                    metadata=json.loads(r[6]) if r[6] else {}, source=r[7], scope=r[8],
                    project=None if r[8] == GLOBAL else r[9], valid_from=_utc(r[10]),
                    valid_until=_utc(r[11]), replaced_by=r[12],
                )
            )
        return out

    def version_counts(self, seqs: Sequence[int]) -> dict[int, int]:
        if not seqs:
            return {}
        rows = self.conn.execute(
            "SELECT seq, count(*) FROM memory_versions WHERE seq = ANY(%s) GROUP BY seq",
            ([int(s) for s in seqs],),
        )
        return {int(s): int(n) for s, n in rows}

    def seqs_with_versions(self, filters: Filters) -> list[int]:
        keyed = replace(
            filters, include_archived=True, only_keyed=True, kinds=None, since=None, until=None
        )
        where, params = memories_where(keyed, alias="v")
        return [
            int(r[0])
            for r in self.conn.execute(
                f"SELECT DISTINCT v.seq FROM memory_versions v WHERE {where}", params
            )
        ]

    # ---- what agent sessions were given ----------------------------------------------

    def injected(self, session: str) -> set[str]:
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT memory_id FROM injected WHERE session = %s", (session,)
            )
        }

    def mark_injected(self, session: str, ids: Sequence[str], at: datetime) -> None:
        if not ids:
            return
        self.conn.execute(
            "INSERT INTO injected(session, memory_id, at) "
            "SELECT %s, i, %s FROM unnest(%s::text[]) i "
            "ON CONFLICT (session, memory_id) DO UPDATE SET at = excluded.at",
            (session, at, list(dict.fromkeys(ids))),
        )

    def clear_injected(self, session: str | None = None, before: datetime | None = None) -> None:
        if session is not None:
            self.conn.execute("DELETE FROM injected WHERE session = %s", (session,))
        if before is not None:
            self.conn.execute("DELETE FROM injected WHERE at < %s", (before,))


def reset_database(url: str) -> None:
    """Empty the memento schema of the database at ``url`` (``memento init --force``):
    refused while another memento connection (an MCP server, a hook, a teammate's agent)
    uses the database, as SQLite refuses while another process has the file open; else
    dropped whole under the write lock. The next open recreates it."""
    where = display_location(url)
    conn = connect(url)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.WRITE_LOCK,))
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'memento' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            if others:
                raise DatabaseError(
                    f"{where} is in use by {others} other memento connection(s) (MCP servers, "
                    "hooks, commands, here or on other machines): stop them, then run "
                    "`memento init --force` again"
                )
            conn.execute(f"DROP SCHEMA IF EXISTS {migrations.SCHEMA} CASCADE")
    except psycopg.Error as exc:
        raise DatabaseError(describe_postgres_error(exc, display_location(url))) from None
    finally:
        conn.close()
