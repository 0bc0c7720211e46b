"""The ``Memory`` facade: the one class the CLI, the MCP server, benchmarks and users call.

It owns one APSW connection and one (lazily loaded) embedder. Every write computes its
vectors first, then changes ``memories``, ``memory_fts`` and ``memory_vec`` together in one
``BEGIN IMMEDIATE`` transaction, so a crash or an error never leaves one without the others.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import apsw

from . import index, migrations, store, validate
from .config import redaction_enabled, resolve_db_path
from .dates import from_iso, parse_when, to_iso, to_micros, utcnow
from .embedder import Embedder
from .errors import (
    AmbiguousIdError,
    DatabaseError,
    InvalidInputError,
    NotFoundError,
)
from .ids import new_id, normalize_id_prefix
from .recall import DEFAULT_WEIGHTS, Weights, adjust, fuse, keyword_query
from .records import KINDS, MemoryRecord
from .redact import redact, redact_json

# Two facts (or lessons) whose vectors are at least this similar are the same memory said
# twice; the second store returns the first. Measured with benches/dedup.py: restatements of
# one fact score 0.77-0.99 with the bundled model, but distinct facts about one subject score
# up to 0.954 ("Use Python 3.11" / "Use Python 3.12"). Merging two different facts loses one,
# a missed restatement only costs a near-duplicate row: so the bar sits above every distinct
# pair measured. Changing a fact is what subject_key upserts are for.
DEDUP_SIMILARITY = 0.97
MIN_POOL = 50
STORE_KEYS = frozenset(
    {"content", "kind", "importance", "subject_key", "metadata", "source", "created_at"}
)

F = TypeVar("F", bound=Callable[..., Any])


def _database_errors(method: F) -> F:
    """Turn SQLite errors escaping a public method into a one-line DatabaseError."""

    @functools.wraps(method)
    def wrapper(self: Memory, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except apsw.Error as exc:
            raise DatabaseError(store.describe_sqlite_error(exc, self.path)) from None

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class _Item:
    content: str
    kind: str
    importance: float
    subject_key: str | None
    metadata: dict[str, Any] | None
    source: str
    created_at: datetime | None  # None: the moment it is written
    redactions: tuple[str, ...]


class Memory:
    """Persistent memory in one SQLite file.

    >>> m = Memory(path="/tmp/demo.db")
    >>> m.store("I prefer dark mode in editors", kind="fact", subject_key="user.theme")
    >>> m.recall("what theme does the user like")[0].content
    'I prefer dark mode in editors'
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        embedder: Embedder | None = None,
        create: bool = True,
        weights: Weights = DEFAULT_WEIGHTS,
    ) -> None:
        self.path: Path = resolve_db_path(path)
        self.weights = weights
        self._embedder = embedder
        self._lock = threading.RLock()
        self._vectors_checked = False
        self.conn: apsw.Connection = store.connect(self.path, create=create)
        try:
            self._upgrade()
        except apsw.Error as exc:
            self.conn.close()
            raise DatabaseError(store.describe_sqlite_error(exc, self.path)) from None
        except BaseException:
            self.conn.close()
            raise

    # ---- lifecycle ----------------------------------------------------------------

    def _upgrade(self) -> None:
        version = migrations.current_version(self.conn)
        migrations.check_not_newer(version)
        if version == migrations.LATEST:
            return
        if self.readonly:
            raise DatabaseError(
                f"{self.path} has schema version {version} and needs an upgrade, but it is "
                "read-only: make it writable and run `memento init`"
            )
        dimension = store.vector_dimension(self.conn) if version else None
        migrations.migrate(self.conn, dimension or self.embedder.dimension)

    @property
    def readonly(self) -> bool:
        return bool(self.conn.readonly("main"))

    @property
    def embedder(self) -> Embedder:
        """The embedding model; its files are read and checked on the first embed."""
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Memory(path={str(self.path)!r})"

    # ---- helpers ------------------------------------------------------------------

    def _embed(self, texts: Sequence[str]) -> list[bytes]:
        self._check_vectors()
        vectors = self.embedder.embed(list(texts))
        return [row.astype("<f4").tobytes() for row in vectors]

    def _check_vectors(self) -> None:
        if self._vectors_checked:
            return
        with self._lock:
            store.check_vectors(self.conn, self.embedder.name, self.embedder.dimension)
        self._vectors_checked = True

    def _write(self) -> Any:
        if self.readonly:
            raise DatabaseError(
                f"{self.path} is read-only: fix its permissions to store or forget memories"
            )
        return store.transaction(self.conn, write=True)

    def _resolve(self, memory_id: object) -> tuple[Any, ...]:
        prefix = normalize_id_prefix(memory_id)
        rows = store.find_by_id(self.conn, prefix)
        if not rows:
            raise NotFoundError(
                f"no memory with id {prefix}: find ids with recall or recent (`memento list`)"
            )
        if len(rows) > 1:
            raise AmbiguousIdError(
                f"id prefix {prefix} matches several memories: give more characters"
            )
        return rows[0]

    def _prepare(self, item: Mapping[str, Any], where: str = "") -> _Item:
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{where}each item must be an object with a content key")
        unknown = set(item) - STORE_KEYS
        if unknown:
            raise InvalidInputError(
                f"{where}unknown field(s) {', '.join(sorted(map(str, unknown)))}: "
                f"use {', '.join(sorted(STORE_KEYS))}"
            )
        try:
            metadata = item.get("metadata")
            content, metadata, redactions = _redacted(
                validate.content(item.get("content")),
                None if metadata is None else validate.metadata(metadata),
            )
            created = item.get("created_at")
            return _Item(
                content=content,
                kind=validate.kind(item.get("kind", "fact")),
                importance=validate.importance(item.get("importance", 0.5)),
                subject_key=validate.subject_key(item.get("subject_key")),
                metadata=metadata,
                source=validate.source(item.get("source", "api")),
                created_at=None if created is None else parse_when(created, "created_at"),
                redactions=redactions,
            )
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}{exc}") from None

    def _record(self, seq: int, **changes: Any) -> MemoryRecord:
        row = store.fetch_seqs(self.conn, [seq])[seq]
        return replace(store.row_to_record(row), **changes)

    # ---- writing ------------------------------------------------------------------

    def store(
        self,
        content: str,
        kind: str = "fact",
        importance: float = 0.5,
        subject_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        source: str = "api",
        created_at: datetime | str | None = None,
    ) -> MemoryRecord:
        """Remember one thing. With a ``subject_key`` that a live memory already has, that
        memory is updated in place (same id). A fact or lesson that is a near duplicate of a
        live one of the same kind returns the existing memory. ``record.action`` says which
        of ``created``, ``updated`` or ``deduplicated`` happened."""
        item = {
            "content": content,
            "kind": kind,
            "importance": importance,
            "subject_key": subject_key,
            "metadata": metadata,
            "source": source,
            "created_at": created_at,
        }
        return self._store_items([self._prepare(item)])[0]

    def store_many(self, items: Iterable[Mapping[str, Any]]) -> list[MemoryRecord]:
        """Store several memories in one transaction: all of them, or none if any is
        invalid. Items are dicts with the keywords of :meth:`store`."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise InvalidInputError("store_many takes a list of items (dicts with a content)")
        prepared = [self._prepare(item, f"item {n}: ") for n, item in enumerate(items, 1)]
        return self._store_items(prepared) if prepared else []

    @_database_errors
    def _store_items(self, items: list[_Item]) -> list[MemoryRecord]:
        vectors = self._embed([item.content for item in items])
        with self._lock:
            # the near-duplicate checks below run inside the write transaction, where the
            # large-store index only overlays changes: bring it up to date first
            store.sync_index(self.conn)
        with self._lock, self._write():
            if store.get_setting(self.conn, "embedding_model") is None:
                store.set_setting(self.conn, "embedding_model", self.embedder.name)
            return [self._write_one(item, vector) for item, vector in zip(items, vectors)]

    def _write_one(self, item: _Item, vector: bytes) -> MemoryRecord:
        moment = utcnow()
        now = to_iso(moment)
        if item.subject_key is not None:
            existing = store.find_live_subject(self.conn, item.subject_key)
            if existing is not None:
                values: dict[str, Any] = {
                    "content": item.content,
                    "kind": item.kind,
                    "importance": item.importance,
                    "source": item.source,
                    "updated_at": now,
                    "embedding_model": self.embedder.name,
                }
                if item.metadata is not None:
                    values["metadata"] = json.dumps(item.metadata, ensure_ascii=False)
                created_us = to_micros(from_iso(existing[8]))
                store.update(self.conn, existing[0], values, vector, created_us)
                return self._record(existing[0], action="updated", redactions=item.redactions)
        elif item.kind in ("fact", "lesson"):
            hits = store.knn(self.conn, vector, 1, store.Filters(kinds=(item.kind,)))
            if hits and 1.0 - hits[0][1] >= DEDUP_SIMILARITY:
                seq = hits[0][0]
                row = store.fetch_seqs(self.conn, [seq])[seq]
                if item.importance > row[5]:
                    store.update(
                        self.conn,
                        seq,
                        {"importance": item.importance, "updated_at": now},
                        None,
                        to_micros(from_iso(row[8])),
                    )
                return self._record(seq, action="deduplicated", redactions=item.redactions)
        values = {
            "id": new_id(),
            "content": item.content,
            "kind": item.kind,
            "subject_key": item.subject_key,
            "importance": item.importance,
            "metadata": json.dumps(item.metadata or {}, ensure_ascii=False),
            "source": item.source,
            "created_at": to_iso(item.created_at or moment),
            "updated_at": now,
            "archived_at": None,
            "embedding_model": self.embedder.name,
        }
        seq = store.insert(self.conn, values, vector, to_micros(item.created_at or moment))
        return self._record(seq, action="created", redactions=item.redactions)

    @_database_errors
    def update(
        self,
        id: str,
        content: str | None = None,
        importance: float | None = None,
        metadata: dict[str, Any] | None = None,
        kind: str | None = None,
        subject_key: str | None = None,
    ) -> MemoryRecord:
        """Change fields of one memory (id or a unique prefix of 8+ characters). New content
        is re-embedded. ``subject_key=""`` removes the key."""
        values: dict[str, Any] = {}
        vector: bytes | None = None
        text, checked, redactions = _redacted(
            None if content is None else validate.content(content),
            None if metadata is None else validate.metadata(metadata),
        )
        if text is not None:
            values["content"] = text
        if importance is not None:
            values["importance"] = validate.importance(importance)
        if checked is not None:
            values["metadata"] = json.dumps(checked, ensure_ascii=False)
        if kind is not None:
            values["kind"] = validate.kind(kind)
        if subject_key is not None:
            values["subject_key"] = validate.subject_key(subject_key)
        if not values:
            raise InvalidInputError(
                "nothing to update: give content, importance, metadata, kind or subject_key"
            )
        with self._lock:
            self._resolve(id)  # fail fast on a bad id before embedding
        if "content" in values:
            vector = self._embed([values["content"]])[0]
            values["embedding_model"] = self.embedder.name
        with self._lock, self._write():
            row = self._resolve(id)
            key = values.get("subject_key", row[4])
            if key is not None and row[10] is None:
                holder = store.find_live_subject(self.conn, key)
                if holder is not None and holder[0] != row[0]:
                    raise InvalidInputError(
                        f"subject_key {key!r} already belongs to memory {holder[1][:12]}: "
                        "update or forget that one instead"
                    )
            values["updated_at"] = to_iso(utcnow())
            store.update(self.conn, row[0], values, vector, to_micros(from_iso(row[8])))
            return self._record(row[0], action="updated", redactions=redactions)

    @_database_errors
    def forget(self, id: str, hard: bool = False) -> MemoryRecord:
        """Archive one memory (hidden from recall, recoverable with :meth:`restore`), or
        with ``hard=True`` delete it from every table and scrub its text from the file."""
        with self._lock:
            with self._write():
                row = self._resolve(id)
                record = store.row_to_record(row)
                if hard:
                    store.delete(self.conn, [row[0]])
                    store.purge_deleted_text(self.conn)
                elif row[10] is None:
                    now = to_iso(utcnow())
                    store.update(
                        self.conn,
                        row[0],
                        {"archived_at": now, "updated_at": now},
                        None,
                        to_micros(from_iso(row[8])),
                    )
                    record = self._record(row[0])
            if hard:
                store.checkpoint(self.conn)
            return record

    @_database_errors
    def restore(self, id: str) -> MemoryRecord:
        """Bring an archived memory back into recall."""
        with self._lock, self._write():
            row = self._resolve(id)
            if row[10] is None:
                return store.row_to_record(row)
            if row[4] is not None and store.find_live_subject(self.conn, row[4]) is not None:
                raise InvalidInputError(
                    f"subject_key {row[4]!r} is used by a live memory: forget that one first"
                )
            store.update(
                self.conn,
                row[0],
                {"archived_at": None, "updated_at": to_iso(utcnow())},
                None,
                to_micros(from_iso(row[8])),
            )
            return self._record(row[0])

    @_database_errors
    def forget_prefix(self, prefix: str, hard: bool = False) -> int:
        """Archive (or delete) every memory whose subject_key starts with ``prefix``; ``%``
        and ``_`` are ordinary characters. Returns how many memories were affected."""
        text = validate.prefix(prefix, "prefix")
        if not text:
            raise InvalidInputError(
                "prefix is empty: give the start of the subject keys to forget, e.g. project.old"
            )
        filters = store.Filters(prefix=text, include_archived=hard)
        where, params = store.memories_where(filters)
        with self._lock:
            with self._write():
                rows = self.conn.execute(
                    f"SELECT seq, created_at FROM memories m WHERE {where}", params
                ).fetchall()
                if hard:
                    store.delete(self.conn, [r[0] for r in rows])
                    if rows:
                        store.purge_deleted_text(self.conn)
                else:
                    now = to_iso(utcnow())
                    for seq, created in rows:
                        store.update(
                            self.conn,
                            seq,
                            {"archived_at": now, "updated_at": now},
                            None,
                            to_micros(from_iso(created)),
                        )
            if hard and rows:
                store.checkpoint(self.conn)
        return len(rows)

    # ---- reading ------------------------------------------------------------------

    @_database_errors
    def get(self, id: str) -> MemoryRecord:
        """One memory by id or unique id prefix (8+ characters)."""
        with self._lock:
            return store.row_to_record(self._resolve(id))

    @_database_errors
    def recent(
        self, limit: int = 10, kind: str | None = None, include_archived: bool = False
    ) -> list[MemoryRecord]:
        """The newest memories first."""
        limit = validate.limit(limit)
        filters = store.Filters(
            kinds=_kinds(kind), include_archived=include_archived
        )
        where, params = store.memories_where(filters)
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {store.COLUMNS} FROM memories m WHERE {where} "
                "ORDER BY created_at DESC, seq DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [store.row_to_record(r) for r in rows]

    @_database_errors
    def browse(self, subject_key_prefix: str = "", limit: int = 100) -> list[MemoryRecord]:
        """Live memories that have a subject_key starting with the prefix, sorted by key."""
        limit = validate.limit(limit)
        filters = store.Filters(prefix=validate.prefix(subject_key_prefix))
        where, params = store.memories_where(filters)
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {store.COLUMNS} FROM memories m WHERE {where} "
                "AND m.subject_key IS NOT NULL ORDER BY subject_key LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [store.row_to_record(r) for r in rows]

    def _filters(
        self,
        kind: str | Sequence[str] | None,
        subject_key_prefix: str | None,
        since: object,
        until: object,
        include_archived: bool,
    ) -> store.Filters:
        since_dt = None if since in (None, "") else parse_when(since, "since")
        until_dt = None if until in (None, "") else parse_when(until, "until")
        if since_dt and until_dt and since_dt > until_dt:
            raise InvalidInputError("since is after until: swap them")
        return store.Filters(
            kinds=_kinds(kind),
            prefix=validate.prefix(subject_key_prefix),
            since=to_iso(since_dt) if since_dt else None,
            until=to_iso(until_dt) if until_dt else None,
            since_us=to_micros(since_dt) if since_dt else None,
            until_us=to_micros(until_dt) if until_dt else None,
            include_archived=bool(include_archived),
        )

    def recall(
        self,
        query: str,
        limit: int = 10,
        kind: str | Sequence[str] | None = None,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_archived: bool = False,
        min_score: float | None = None,
    ) -> list[MemoryRecord]:
        """Memories that match ``query`` by meaning and by keyword, best first, each with a
        ``score``. Filters are exact. Without ``min_score``, returns min(limit, number of
        matching memories) records."""
        return self.recall_many(
            [query], limit, kind, subject_key_prefix, since, until, include_archived, min_score
        )[0]

    @_database_errors
    def recall_many(
        self,
        queries: Sequence[str],
        limit: int = 10,
        kind: str | Sequence[str] | None = None,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_archived: bool = False,
        min_score: float | None = None,
    ) -> list[list[MemoryRecord]]:
        """:meth:`recall` for several queries in one call (one result list per query)."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError("recall_many takes a list of query strings")
        texts = [validate.query(q) for q in queries]
        limit = validate.limit(limit)
        threshold = validate.min_score(min_score)
        filters = self._filters(kind, subject_key_prefix, since, until, include_archived)
        vectors = self._embed(texts) if texts else []
        return [
            self._search(text, vector, limit, filters, threshold)
            for text, vector in zip(texts, vectors)
        ]

    def _search(
        self,
        text: str,
        vector: bytes,
        limit: int,
        filters: store.Filters,
        min_score: float | None,
        mode: str = "hybrid",
    ) -> list[MemoryRecord]:
        pool = max(MIN_POOL, 2 * limit)
        match = keyword_query(text)
        with self._lock, store.transaction(self.conn, write=False):
            vector_hits = store.knn(self.conn, vector, pool, filters) if mode != "keyword" else []
            keyword_hits = (
                store.keyword(self.conn, match, pool, filters)
                if match and mode != "dense"
                else []
            )
            fused = fuse(vector_hits, keyword_hits, self.weights)
            rows = store.fetch_seqs(self.conn, list(fused))
        if len(rows) != len(fused):  # one read snapshot: only a damaged index gets here
            raise DatabaseError(
                f"the search index of {self.path} points at memories that do not exist: "
                "run `memento verify`, then restore from a backup"
            )
        now = utcnow()
        scored = []
        for seq, base in fused.items():
            row = rows[seq]
            age_days = (now - from_iso(row[8])).total_seconds() / 86400
            scored.append((adjust(base, float(row[5]), age_days, self.weights), seq))
        scored.sort(key=lambda pair: (-pair[0], -pair[1]))
        results = [store.row_to_record(rows[seq], round(score, 6)) for score, seq in scored]
        if min_score is not None:
            results = [r for r in results if (r.score or 0.0) >= min_score]
        return results[:limit]

    # ---- bulk -----------------------------------------------------------------------

    @_database_errors
    def export(self) -> Iterator[dict[str, Any]]:
        """Every memory, archived included, oldest first, as JSON-ready dicts."""
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {store.COLUMNS} FROM memories ORDER BY seq"
            ).fetchall()
        for row in rows:
            data = store.row_to_record(row).to_dict()
            for key in ("score", "action", "redactions"):
                data.pop(key)
            yield data

    @_database_errors
    def import_records(
        self,
        records: Sequence[Mapping[str, Any]],
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
        labels: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Restore exported memories losslessly (same ids, timestamps, archived state).
        Ids already present are skipped, so importing twice adds nothing. Every record is
        checked before anything is written; then each batch is one transaction."""
        prepared: list[tuple[dict[str, Any], datetime]] = []
        for n, record in enumerate(records):
            where = f"{labels[n]}: " if labels else f"record {n + 1}: "
            prepared.append(self._prepare_import(record, where))
        added = skipped = 0
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size]
            with self._lock:
                known = {
                    values["id"]
                    for values, _ in batch
                    if store.find_by_id(self.conn, values["id"])
                }
            fresh = [(values, created) for values, created in batch if values["id"] not in known]
            skipped += len(batch) - len(fresh)
            if fresh:
                vectors = self._embed([values["content"] for values, _ in fresh])
                with self._lock, self._write():
                    for (values, created), vector in zip(fresh, vectors):
                        if store.find_by_id(self.conn, values["id"]):
                            skipped += 1
                            continue
                        key = values["subject_key"]
                        if (
                            key is not None
                            and values["archived_at"] is None
                            and store.find_live_subject(self.conn, key) is not None
                        ):  # the live memory already holding the key wins; keep this archived
                            values = {**values, "archived_at": to_iso(utcnow())}
                        values = {**values, "embedding_model": self.embedder.name}
                        store.insert(self.conn, values, vector, to_micros(created))
                        added += 1
            if progress:
                progress(min(start + batch_size, len(prepared)), len(prepared))
        return {"added": added, "skipped": skipped}

    def _prepare_import(
        self, record: Mapping[str, Any], where: str
    ) -> tuple[dict[str, Any], datetime]:
        if not isinstance(record, Mapping):
            raise InvalidInputError(f"{where}expected a JSON object")
        try:
            raw_id = record.get("id")
            memory_id = normalize_id_prefix(raw_id) if raw_id is not None else new_id()
            if len(memory_id) != 26:
                raise InvalidInputError(f"id {raw_id!r} is not a full 26-character id")
            item = self._prepare(
                {k: record[k] for k in STORE_KEYS if k in record}, ""
            )
            updated = record.get("updated_at")
            archived = record.get("archived_at")
            created_dt = item.created_at or utcnow()
            updated_dt = parse_when(updated, "updated_at") if updated else created_dt
            archived_dt = parse_when(archived, "archived_at") if archived else None
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}{exc}") from None
        values = {
            "id": memory_id,
            "content": item.content,
            "kind": item.kind,
            "subject_key": item.subject_key,
            "importance": item.importance,
            "metadata": json.dumps(item.metadata or {}, ensure_ascii=False),
            "source": item.source,
            "created_at": to_iso(created_dt),
            "updated_at": to_iso(updated_dt),
            "archived_at": to_iso(archived_dt) if archived_dt else None,
        }
        return values, created_dt

    @_database_errors
    def reembed(
        self,
        all: bool = False,
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-encode memories whose vector came from another model (or every memory), in
        batches of one transaction each; an interrupted run resumes where it stopped. A
        vector table of another dimension is recreated first. Returns how many were done."""
        model = self.embedder
        with self._lock, self._write():
            if store.vector_dimension(self.conn) != model.dimension:
                self.conn.execute("DROP TABLE IF EXISTS memory_vec")
                migrations.create_vector_table(self.conn, model.dimension)
                index.reset(self.conn)
                self.conn.execute("UPDATE memories SET embedding_model = NULL")
            if all:
                self.conn.execute("UPDATE memories SET embedding_model = NULL")
            pending = [
                int(r[0])
                for r in self.conn.execute(
                    "SELECT seq FROM memories WHERE embedding_model IS NOT ? ORDER BY seq",
                    (model.name,),
                )
            ]
        self._vectors_checked = True
        done = 0
        for start in range(0, len(pending), batch_size):
            seqs = pending[start : start + batch_size]
            with self._lock:
                rows = store.fetch_seqs(self.conn, seqs)
            vectors = self.embedder.embed([rows[s][2] for s in seqs])
            with self._lock, self._write():
                for seq, vector in zip(seqs, vectors):
                    store.update(
                        self.conn,
                        seq,
                        {"embedding_model": model.name},
                        vector.astype("<f4").tobytes(),
                        to_micros(from_iso(rows[seq][8])),
                    )
            done += len(seqs)
            if progress:
                progress(done, len(pending))
        with self._lock, self._write():
            store.set_setting(self.conn, "embedding_model", model.name)
        return done

    # ---- facts --------------------------------------------------------------------

    @_database_errors
    def stats(self) -> dict[str, Any]:
        """Counts by kind, archived, schema version, model, dimension and file size."""
        with self._lock:
            by_kind = dict.fromkeys(KINDS, 0)
            for kind_name, count in self.conn.execute(
                "SELECT kind, count(*) FROM memories WHERE archived_at IS NULL GROUP BY kind"
            ):
                by_kind[kind_name] = count
            archived = self.conn.execute(
                "SELECT count(*) FROM memories WHERE archived_at IS NOT NULL"
            ).fetchone()[0]
            version = migrations.current_version(self.conn)
            model = store.get_setting(self.conn, "embedding_model")
            dimension = store.vector_dimension(self.conn)
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"))
            if p.exists()
        )
        return {
            "path": str(self.path),
            "total": sum(by_kind.values()) + archived,
            "live": sum(by_kind.values()),
            "by_kind": by_kind,
            "archived": archived,
            "schema_version": version,
            "model": model,
            "dimension": dimension,
            "file_size_bytes": size,
        }

    @_database_errors
    def about(self, events: int = 10) -> dict[str, list[MemoryRecord]]:
        """What memento knows about the user: ``user.*`` memories, then recent events."""
        return {
            "user": self.browse("user.", limit=validate.MAX_LIMIT),
            "events": self.recent(limit=events, kind="event"),
        }


def _redacted(
    content: str | None, metadata: dict[str, Any] | None
) -> tuple[str | None, Any, tuple[str, ...]]:
    """Validated content and metadata (None: not given) with secrets replaced by markers,
    unless MEMENTO_REDACT=off, and the sorted kinds of secret found in either."""
    if not redaction_enabled():
        return content, metadata, ()
    found: set[str] = set()
    if content is not None:
        content, kinds = redact(content)
        found.update(kinds)
    if metadata is not None:
        metadata, kinds = redact_json(metadata)
        found.update(kinds)
    return content, metadata, tuple(sorted(found))


def _kinds(kind: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if kind is None or kind == "" or kind == []:
        return None
    if isinstance(kind, str):
        return (validate.kind(kind),)
    if isinstance(kind, Sequence):
        return tuple(dict.fromkeys(validate.kind(k) for k in kind))
    raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}")


