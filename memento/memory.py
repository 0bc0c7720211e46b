"""The ``Memory`` facade: the one class the CLI, the MCP server, benchmarks and users call.

It owns one store (``memento.store``: every SQL statement lives there) and one (lazily
loaded) embedder, and holds the rules: validation, redaction, deduplication, fusion. Every
write computes its vectors first, then changes the memory, its keyword row and its vector
together in one write transaction, so a crash or an error never leaves one without the others.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from . import validate
from .config import redaction_enabled, resolve_location
from .context import (
    LINE_SHARE_PROMPT,
    LINE_SHARE_SESSION,
    MAX_BUDGET,
    MIN_BUDGET,
    PROMPT_BUDGET,
    PROMPT_CHARS,
    RECENT_EVENT_DAYS,
    SESSION_BUDGET,
    SESSION_SHARES,
    ContextBlock,
    Section,
    count_many,
    full_line,
    pack,
)
from .dates import parse_when, to_iso, utcnow
from .embedder import Embedder
from .errors import (
    AmbiguousIdError,
    DatabaseError,
    InvalidInputError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
)
from .ids import new_id, normalize_id_prefix
from .projects import GLOBAL, Project, find_project
from .recall import (
    DEFAULT_WEIGHTS,
    RELEVANT,
    Evidence,
    Explanation,
    Weights,
    adjust,
    coverage,
    factors,
    fuse,
    relevance,
    relevance_terms,
    scaled,
)
from .records import CHANGES, KINDS, MemoryRecord, MemoryVersion, Related
from .store import Filters, NewMemory, Row, Store, open_store
from .store.base import Version

# Two facts (or lessons) whose vectors are at least this similar are the same memory said
# twice; the second store returns the first. Measured with benches/dedup.py: restatements of
# one fact score 0.77-0.99 with the bundled model, but distinct facts about one subject score
# up to 0.954 ("Use Python 3.11" / "Use Python 3.12"). Merging two different facts loses one,
# a missed restatement only costs a near-duplicate row: so the bar sits above every distinct
# pair measured. Changing a fact is what subject_key upserts are for.
DEDUP_SIMILARITY = 0.97
# A fact or lesson stored without a subject_key lists the live memories of its kind and scope
# at least this similar (and below DEDUP_SIMILARITY) as ``related``: one of them may be the
# value it changes. Measured with benches/dedup.py (2026-11-26): at 0.65, 70 % of 30 pairs
# "same subject, a changed value" are surfaced, none of 435 pairs of facts about different
# subjects (highest 0.574) and none of 10 pairs of compatible facts about one subject
# (highest 0.616); 0.60 would surface 83 % but the first compatible pair, 0.75 only 40 %.
RELATED_SIMILARITY = 0.65
MAX_RELATED = 3
MIN_POOL = 50
# How many results recall returns when not told.
DEFAULT_LIMIT = 10
# No memory's line costs fewer tokens than this (an id, a kind and a date alone cost 20):
# recall with max_tokens and no limit looks at no more than max_tokens / this results.
MIN_LINE_TOKENS = 16
STORE_KEYS = frozenset(
    {"content", "kind", "importance", "subject_key", "metadata", "source", "created_at", "scope"}
)
# What an exported earlier version holds besides its times and scope.
_HISTORY_FIELDS = ("content", "kind", "importance", "subject_key", "metadata", "source")
# The fields whose change keeps the memory's previous version (Memory.history).
_VERSIONED = ("content", "kind", "importance", "metadata", "subject_key", "scope")
# Facts about the user travel with them: keys under this prefix default to the global scope.
USER_PREFIX = "user."
# How long the memories given to an agent session are remembered (so a prompt hook does not
# repeat them): a day covers a working session with room to spare, and keeps the table small.
INJECTED_TTL = timedelta(days=1)
# At most this many memories are considered per part of a session-start block, and per
# prompt: more would not fit any sensible budget.
CONTEXT_CANDIDATES = 200
PROMPT_CANDIDATES = 12

F = TypeVar("F", bound=Callable[..., Any])


def _database_errors(method: F) -> F:
    """Turn driver errors escaping a public method into a one-line DatabaseError."""

    @functools.wraps(method)
    def wrapper(self: Memory, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self._store.errors as exc:
            raise DatabaseError(self._store.describe_error(exc)) from None

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
    project: Project | None  # the scope: None is global


@dataclass(frozen=True)
class _OldVersion:
    """An earlier version of a memory being imported (its export's ``history``)."""

    item: _Item
    project: Project | None
    valid_from: datetime
    valid_until: datetime
    replaced_by: str

    def row(self, seq: int, memory: NewMemory) -> Row:
        """This version as the store keeps versions: a row of the memory ``seq``."""
        return Row(
            seq=seq,
            id=memory.id,
            content=self.item.content,
            kind=self.item.kind,
            subject_key=self.item.subject_key,
            importance=self.item.importance,
            metadata=self.item.metadata or {},
            source=self.item.source,
            created_at=memory.created_at,
            updated_at=self.valid_from,
            archived_at=None,
            embedding_model=None,
            scope=self.project.id if self.project else GLOBAL,
        )


@dataclass(frozen=True)
class _Candidate:
    """One recall hit before the cut: its fused (rank-ordering) score, its relevance."""

    row: Row
    score: float
    relevance: float
    evidence: Evidence
    matched: tuple[int, ...] = ()  # which of the query's relevance terms it contains


class Memory:
    """Persistent memory in one SQLite file, scoped by project.

    ``project`` (a directory, or a :class:`memento.projects.Project`) is the current
    project: new memories belong to it (facts under ``user.`` keys excepted: they are
    global), and reads cover it plus the global memories. Without a project, new memories are
    global and reads cover every project. Any call can say otherwise: ``scope="global"``,
    ``scope="project"`` or ``scope=<directory>`` on writes, ``all_projects=True`` on reads.

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
        project: str | os.PathLike[str] | Project | None = None,
    ) -> None:
        location = resolve_location(path)
        #: The current project (memento.projects): where new memories go by default, and
        #: with the global memories what reads cover. None: reads cover every scope and new
        #: memories are global unless told otherwise.
        self.project: Project | None = (
            project if isinstance(project, Project) or project is None else find_project(project)
        )
        self.weights = weights
        self._embedder = embedder
        self._lock = threading.RLock()
        self._vectors_checked = False
        self.upgraded_from: int | None = None
        self._store: Store = open_store(location, create=create)
        #: The database file (or the URL of the server) this memory lives in.
        self.path: Path | str = location
        try:
            self._upgrade()
        except self._store.errors as exc:
            message = self._store.describe_error(exc)
            self._store.close()
            raise DatabaseError(message) from None
        except BaseException:
            self._store.close()
            raise

    # ---- lifecycle ----------------------------------------------------------------

    def _upgrade(self) -> None:
        if not self._store.needs_upgrade():
            return
        #: The schema version the file had before this open upgraded it (0: it was new).
        self.upgraded_from = self._store.schema_version()
        if self.readonly:
            raise DatabaseError(
                f"{self.path} has schema version {self._store.schema_version()} and needs an "
                "upgrade, but it is read-only: make it writable and run `memento init`"
            )
        known = self._store.vector_dimension() if self._store.schema_version() else None
        self._store.upgrade(known or self.embedder.dimension)

    @property
    def backend(self) -> Store:
        """The storage backend (``memento.store``)."""
        return self._store

    @property
    def conn(self) -> Any:
        """The SQLite backend's APSW connection: an escape hatch for scripts and tests."""
        return self._store.conn  # type: ignore[attr-defined]

    @property
    def readonly(self) -> bool:
        return self._store.readonly

    @property
    def purge_pending(self) -> bool:
        """True while the text of a hard-forgotten memory may still be on disk: another
        process's read transaction kept the checkpoint from finishing. The next write or
        close (in any memento process) finishes it once that reader is done."""
        with self._lock:
            return self._store.purge_pending()

    @property
    def embedder(self) -> Embedder:
        """The embedding model; its files are read and checked on the first embed."""
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def close(self) -> None:
        with self._lock:
            self._store.close()

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
        """Refuse to mix vectors of two models (or dimensions) in one store."""
        if self._vectors_checked:
            return
        model, dimension = self.embedder.name, self.embedder.dimension
        with self._lock:
            stored_dim = self._store.vector_dimension()
            if stored_dim is not None and stored_dim != dimension:
                raise ModelMismatchError(
                    f"the vectors in this database have {stored_dim} dimensions but the model "
                    f"{model} makes {dimension}: run `memento reembed`"
                )
            stored_model = self._store.get_setting("embedding_model")
            if stored_model is not None and stored_model != model:
                stale = self._store.count_stale_vectors(model)
                if stale:
                    raise ModelMismatchError(
                        f"{stale} memories have vectors from model {stored_model}, not "
                        f"{model}: run `memento reembed`"
                    )
        self._vectors_checked = True

    def _write(self) -> Any:
        if self.readonly:
            raise DatabaseError(
                f"{self.path} is read-only: fix its permissions to store or forget memories"
            )
        return self._store.transaction(write=True)

    def _resolve(self, memory_id: object) -> Row:
        prefix = normalize_id_prefix(memory_id)
        rows = self._store.find_by_id(prefix)
        if not rows:
            raise NotFoundError(
                f"no memory with id {prefix}: find ids with recall or recent (`memento list`)"
            )
        if len(rows) > 1:
            raise AmbiguousIdError(
                f"id prefix {prefix} matches several memories: give more characters of the id"
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
            prepared = _Item(
                content=content,
                kind=validate.kind(item.get("kind", "fact")),
                importance=validate.importance(item.get("importance", 0.5)),
                subject_key=validate.subject_key(
                    _identifier(item.get("subject_key"), "subject_key")
                ),
                metadata=metadata,
                source=validate.source(_identifier(item.get("source", "api"), "source")),
                created_at=None if created is None else parse_when(created, "created_at"),
                redactions=redactions,
                project=None,
            )
            return replace(prepared, project=self._scope_project(item.get("scope"), prepared))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}{exc}") from None

    def _scope_project(self, scope: object, item: _Item | None = None) -> Project | None:
        """The project a write goes to (None: global). ``scope`` is ``"global"``,
        ``"project"`` (the current one), a directory, a known project id, or None for the
        default: the current project, except for ``user.*`` facts."""
        if scope is None or scope == "":
            key = item.subject_key if item else None
            if key is not None and key.startswith(USER_PREFIX):
                return None
            return self.project
        if isinstance(scope, os.PathLike):
            return find_project(scope)
        if not isinstance(scope, str):
            raise InvalidInputError(
                f"scope must be text (global, project or a directory), got {type(scope).__name__}"
            )
        if scope == GLOBAL:
            return None
        if scope == "project":
            if self.project is None:
                raise InvalidInputError(
                    "scope 'project' needs a current project: open Memory(project=DIR), run "
                    "the command inside the project, or pass --project DIR"
                )
            return self.project
        with self._lock:
            known = {p["id"]: p for p in self._store.projects()}
        if scope in known:
            return Project(id=scope, name=known[scope]["name"], root=known[scope]["root"] or "")
        return find_project(scope)

    def _scopes(self, all_projects: bool) -> tuple[str, ...] | None:
        """What reads cover: the current project and global, or every scope."""
        if all_projects or self.project is None:
            return None
        return (GLOBAL, self.project.id)

    def _record(self, seq: int, **changes: Any) -> MemoryRecord:
        versions = self._store.version_counts([seq]).get(seq, 0) + 1
        return replace(self._store.fetch([seq])[seq].record(versions=versions), **changes)

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
        scope: str | os.PathLike[str] | None = None,
    ) -> MemoryRecord:
        """Remember one thing. With a ``subject_key`` that a live memory of the same scope
        already has, that memory is updated in place (same id). A fact or lesson that is a
        near duplicate of a live one of the same kind and scope returns the existing memory.
        ``record.action`` says which of ``created``, ``updated``, ``unchanged`` (the same
        key with the same content, kind, importance and metadata) or ``deduplicated``
        happened. ``scope``: see the class docstring."""
        item = {
            "content": content,
            "kind": kind,
            "importance": importance,
            "subject_key": subject_key,
            "metadata": metadata,
            "source": source,
            "created_at": created_at,
            "scope": scope,
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
            self._store.prepare_writes()
        with self._lock, self._write():
            if self._store.get_setting("embedding_model") is None:
                self._store.set_setting("embedding_model", self.embedder.name)
            for project in {item.project for item in items if item.project is not None}:
                self._store.register_project(project)
            return [self._write_one(item, vector) for item, vector in zip(items, vectors)]

    def _write_one(self, item: _Item, vector: bytes) -> MemoryRecord:
        now = utcnow()
        scope = item.project.id if item.project else GLOBAL
        if item.subject_key is not None:
            existing = self._store.find_live_subject(item.subject_key, scope)
            if existing is not None and (
                existing.content == item.content
                and existing.kind == item.kind
                and existing.importance == item.importance
                and (item.metadata is None or existing.metadata == item.metadata)
            ):  # said again, word for word: nothing to change, and updated_at stays
                return self._record(existing.seq, action="unchanged", redactions=item.redactions)
            if existing is not None:
                self._keep_version(existing, now, "upsert")
                values: dict[str, Any] = {
                    "content": item.content,
                    "kind": item.kind,
                    "importance": item.importance,
                    "source": item.source,
                    "updated_at": now,
                    "embedding_model": self.embedder.name,
                }
                if item.metadata is not None:
                    values["metadata"] = item.metadata
                self._store.update(existing.seq, values, vector)
                return self._record(existing.seq, action="updated", redactions=item.redactions)
        elif item.kind in ("fact", "lesson"):
            near = Filters(kinds=(item.kind,), scopes=(scope,))
            hits = self._store.knn(vector, 1 + MAX_RELATED, near)
            if hits and 1.0 - hits[0][1] >= DEDUP_SIMILARITY:
                seq = hits[0][0]
                row = self._store.fetch([seq])[seq]
                if item.importance > row.importance:
                    self._keep_version(row, now, "dedup")
                    self._store.update(seq, {"importance": item.importance, "updated_at": now})
                return self._record(seq, action="deduplicated", redactions=item.redactions)
            similar = [(s, 1.0 - d) for s, d in hits if 1.0 - d >= RELATED_SIMILARITY]
            seq = self._store.insert(self._new_memory(item, now), vector)
            rows = self._store.fetch([s for s, _ in similar])
            related = tuple(
                Related(rows[s].id, round(similarity, 4), rows[s].content)
                for s, similarity in similar[:MAX_RELATED]
                if s in rows
            )
            return self._record(
                seq, action="created", redactions=item.redactions, related=related
            )
        seq = self._store.insert(self._new_memory(item, now), vector)
        return self._record(seq, action="created", redactions=item.redactions)

    def _keep_version(self, row: Row, now: datetime, change: str) -> None:
        """Keep ``row`` as it stands (before a change of kind ``change``) as its memory's
        latest earlier version: valid from the end of the one before it, or from the
        memory's creation, until ``now``. Inside the change's write transaction."""
        earlier = self._store.versions([row.seq]).get(row.seq)
        since = earlier[-1].valid_until if earlier else row.created_at
        self._store.add_version(row, min(since, now), now, change)

    def _new_memory(
        self,
        item: _Item,
        now: datetime,
        memory_id: str | None = None,
        updated_at: datetime | None = None,
        archived_at: datetime | None = None,
    ) -> NewMemory:
        """The row of a new memory, for a store and for an import alike."""
        return NewMemory(
            id=memory_id or new_id(),
            content=item.content,
            kind=item.kind,
            subject_key=item.subject_key,
            importance=item.importance,
            metadata=item.metadata or {},
            source=item.source,
            created_at=item.created_at or now,
            updated_at=updated_at or now,
            archived_at=archived_at,
            embedding_model=self.embedder.name,
            scope=item.project.id if item.project else GLOBAL,
        )

    @_database_errors
    def update(
        self,
        id: str,
        content: str | None = None,
        importance: float | None = None,
        metadata: dict[str, Any] | None = None,
        kind: str | None = None,
        subject_key: str | None = None,
        scope: str | os.PathLike[str] | None = None,
    ) -> MemoryRecord:
        """Change fields of one memory (id or a unique prefix of 8+ characters). New content
        is re-embedded. ``subject_key=""`` removes the key. ``scope`` moves the memory:
        ``"global"``, ``"project"`` (the current one) or a project directory."""
        values: dict[str, Any] = {}
        project: Project | None = None
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
            values["metadata"] = checked
        if kind is not None:
            values["kind"] = validate.kind(kind)
        if subject_key is not None:
            values["subject_key"] = validate.subject_key(_identifier(subject_key, "subject_key"))
        if scope is not None and scope != "":
            project = self._scope_project(scope)
            values["scope"] = project.id if project else GLOBAL
        if not values:
            raise InvalidInputError(
                "nothing to update: give content, importance, metadata, kind, subject_key or "
                "scope"
            )
        with self._lock:
            self._resolve(id)  # fail fast on a bad id before embedding
        if "content" in values:
            vector = self._embed([values["content"]])[0]
            values["embedding_model"] = self.embedder.name
        with self._lock, self._write():
            row = self._resolve(id)
            key = values.get("subject_key", row.subject_key)
            target = values.get("scope", row.scope)
            if project is not None:
                self._store.register_project(project)
            if key is not None and row.archived_at is None:
                holder = self._store.find_live_subject(key, target)
                if holder is not None and holder.seq != row.seq:
                    raise InvalidInputError(
                        f"subject_key {key!r} already belongs to memory {holder.id[:12]} in "
                        f"{holder.project or GLOBAL}: update or forget that one instead"
                    )
            now = utcnow()
            if any(values[name] != getattr(row, name) for name in _VERSIONED if name in values):
                self._keep_version(row, now, "update")
            values["updated_at"] = now
            self._store.update(row.seq, values, vector)
            return self._record(row.seq, action="updated", redactions=redactions)

    @_database_errors
    def forget(self, id: str, hard: bool = False) -> MemoryRecord:
        """Archive one memory (hidden from recall, recoverable with :meth:`restore`), or
        with ``hard=True`` delete it from every table and scrub its text from the file."""
        with self._lock:
            with self._write():
                row = self._resolve(id)
                record = row.record()
                if hard:
                    self._store.delete([row.seq])
                elif row.archived_at is None:
                    now = utcnow()
                    self._store.update(row.seq, {"archived_at": now, "updated_at": now})
                    record = self._record(row.seq)
            if hard:
                self._store.after_delete()
            return record

    @_database_errors
    def restore(self, id: str) -> MemoryRecord:
        """Bring an archived memory back into recall."""
        with self._lock, self._write():
            row = self._resolve(id)
            if row.archived_at is None:
                return row.record()
            key = row.subject_key
            if key is not None and self._store.find_live_subject(key, row.scope) is not None:
                raise InvalidInputError(
                    f"subject_key {key!r} is used by a live memory: forget that one first"
                )
            self._store.update(row.seq, {"archived_at": None, "updated_at": utcnow()})
            return self._record(row.seq)

    @_database_errors
    def restore_prefix(self, prefix: str, all_projects: bool = False) -> dict[str, int]:
        """Bring back every archived memory under ``prefix`` (whole segments, as in
        :meth:`forget_prefix`). One whose subject_key a live memory holds stays archived:
        ``{"restored": n, "kept": m}``."""
        text = validate.prefix(prefix, "prefix")
        if not text:
            raise InvalidInputError(
                "prefix is empty: give the start of the subject keys to restore, e.g. project.old"
            )
        filters = Filters(prefix=text, include_archived=True, scopes=self._scopes(all_projects))
        restored = kept = 0
        with self._lock, self._write():
            # newest first: of several archived versions of one key, the latest comes back
            for row in self._store.rows(filters, order="newest"):
                if row.archived_at is None:
                    continue
                key = row.subject_key
                if key is not None and self._store.find_live_subject(key, row.scope):
                    kept += 1
                    continue
                self._store.update(row.seq, {"archived_at": None, "updated_at": utcnow()})
                restored += 1
        return {"restored": restored, "kept": kept}

    @_database_errors
    def forget_prefix(
        self,
        prefix: str,
        hard: bool = False,
        all_projects: bool = False,
        dry_run: bool = False,
    ) -> int:
        """Archive (or delete) every memory whose subject_key is ``prefix`` or lies below it
        (whole segments: ``project.shop`` covers ``project.shop.*``, not ``project.shopify``),
        in the current project and global (``all_projects``: everywhere); ``%`` and ``_``
        are ordinary characters. Returns how many memories were (with ``dry_run``: would
        be) affected."""
        text = validate.prefix(prefix, "prefix")
        if not text:
            raise InvalidInputError(
                "prefix is empty: give the start of the subject keys to forget, e.g. project.old"
            )
        filters = Filters(prefix=text, include_archived=hard, scopes=self._scopes(all_projects))
        if dry_run:
            with self._lock:
                return len(self._store.rows(filters, order="seq"))
        with self._lock:
            with self._write():
                rows = self._store.rows(filters, order="seq")
                if hard:
                    self._store.delete([r.seq for r in rows])
                else:
                    now = utcnow()
                    for row in rows:
                        self._store.update(row.seq, {"archived_at": now, "updated_at": now})
            if hard and rows:
                self._store.after_delete()
        return len(rows)

    # ---- reading ------------------------------------------------------------------

    @_database_errors
    def get(self, id: str) -> MemoryRecord:
        """One memory by id or unique id prefix (8+ characters)."""
        with self._lock:
            return self._records([self._resolve(id)])[0]

    @_database_errors
    def recent(
        self,
        limit: int = 10,
        kind: str | Sequence[str] | None = None,
        include_archived: bool = False,
        all_projects: bool = False,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> list[MemoryRecord]:
        """The newest memories first (the current project and global, or all projects),
        optionally under a subject-key prefix and within a time window."""
        limit = validate.limit(limit)
        filters = self._filters(
            kind, subject_key_prefix, since, until, include_archived, all_projects
        )
        with self._lock:
            rows = self._store.rows(filters, order="newest", limit=limit)
            return self._records(rows)

    def _records(self, rows: Sequence[Row]) -> list[MemoryRecord]:
        """The records of ``rows``, each with how many versions it has had."""
        counts = self._store.version_counts([r.seq for r in rows]) if rows else {}
        return [r.record(versions=counts.get(r.seq, 0) + 1) for r in rows]

    @_database_errors
    def browse(
        self,
        subject_key_prefix: str = "",
        limit: int = 100,
        all_projects: bool = False,
        as_of: datetime | str | None = None,
    ) -> list[MemoryRecord]:
        """Live memories whose subject_key is the prefix or lies below it (whole segments:
        ``project.shop`` covers ``project.shop.*``, not ``project.shopify``), sorted by key.

        ``as_of`` (a moment, or a day, month... meaning its end: the forms of ``until``)
        shows the memories as they stood then, each as the version that held at that
        moment: what was believed before a change. A memory created later, or forgotten
        by then, is left out (a memory forgotten and restored since counts as never
        forgotten: archiving keeps no history)."""
        limit = validate.limit(limit)
        prefix = validate.prefix(subject_key_prefix)
        if as_of is not None and as_of != "":
            moment = parse_when(as_of, "as_of", end=True)
            return self._browse_as_of(prefix, limit, all_projects, moment)
        filters = Filters(prefix=prefix, only_keyed=True, scopes=self._scopes(all_projects))
        with self._lock:
            rows = self._store.rows(filters, order="key", limit=limit)
            return self._records(rows)

    def _browse_as_of(
        self, prefix: str, limit: int, all_projects: bool, moment: datetime
    ) -> list[MemoryRecord]:
        scopes = self._scopes(all_projects)
        # every memory keyed under the prefix now or in an earlier version, in any scope:
        # the scope (like the key) is the one of the version that held at the moment
        filters = Filters(prefix=prefix, only_keyed=True, include_archived=True)
        with self._lock, self._store.transaction(write=False):
            rows = {r.seq: r for r in self._store.rows(filters, order="seq")}
            extra = [s for s in self._store.seqs_with_versions(filters) if s not in rows]
            rows.update(self._store.fetch(extra))
            versions = self._store.versions(list(rows))
        found = []
        for seq, row in rows.items():
            if row.created_at > moment or (row.archived_at and row.archived_at <= moment):
                continue
            earlier = versions.get(seq, [])
            held = next((v for v in earlier if moment < v.valid_until), None)
            record = row.record(versions=len(earlier) + 1)
            if held is not None:
                record = replace(record, **_version_fields(held), updated_at=held.valid_from)
            key = record.subject_key
            if key is None or not _under(key, prefix):
                continue
            if scopes is not None and record.scope not in scopes:
                continue
            found.append(record)
        found.sort(key=lambda r: (r.subject_key or "", r.id))
        return found[:limit]

    @_database_errors
    def history(
        self, id_or_subject_key: str, all_projects: bool = False
    ) -> list[MemoryVersion]:
        """Every version of one memory, oldest first, the live one last: its fields, when
        each held (``valid_from``, ``valid_until``) and what replaced it. The memory is
        named by its id (or a unique prefix of 8+ characters) or by its subject_key: the
        live memory holding it (the current project's before a global one), else the
        latest forgotten one."""
        if not isinstance(id_or_subject_key, str) or not id_or_subject_key.strip():
            raise InvalidInputError("give a memory id or a subject_key")
        with self._lock, self._store.transaction(write=False):
            row = self._named(id_or_subject_key.strip(), all_projects)
            earlier = self._store.versions([row.seq]).get(row.seq, [])
        out = [
            MemoryVersion(
                id=row.id, version=v.version, **_version_fields(v), valid_from=v.valid_from,
                valid_until=v.valid_until, replaced_by=v.replaced_by,
            )
            for v in earlier
        ]
        live = _version_fields(row)
        out.append(
            MemoryVersion(
                id=row.id, version=len(earlier) + 1, **live,
                valid_from=earlier[-1].valid_until if earlier else row.created_at,
                valid_until=None, replaced_by=None, archived_at=row.archived_at,
            )
        )
        return out

    def _named(self, name: str, all_projects: bool) -> Row:
        """The memory an id (prefix) or a subject_key names."""
        try:
            return self._resolve(name)
        except (InvalidInputError, NotFoundError):
            pass
        try:
            key = validate.subject_key(name)
        except InvalidInputError:
            key = None
        rows = []
        if key:
            filters = Filters(prefix=key, include_archived=True, scopes=self._scopes(all_projects))
            rows = [r for r in self._store.rows(filters, order="newest") if r.subject_key == key]
        if not rows:
            raise NotFoundError(
                f"no memory with id or subject_key {name[:60]!r}: find ids with recall or "
                "`memento list`, keys with browse"
            )
        here = self.project.id if self.project else None
        rows.sort(key=lambda r: (r.archived_at is not None, r.scope != here,
                                 -(r.archived_at or r.updated_at).timestamp()))  # fmt: skip
        return rows[0]

    def _filters(
        self,
        kind: str | Sequence[str] | None,
        subject_key_prefix: str | None,
        since: object,
        until: object,
        include_archived: bool,
        all_projects: bool = False,
    ) -> Filters:
        since_dt = None if since in (None, "") else parse_when(since, "since")
        # a day, a month, "last week" as until: up to its end (until=2026-11-21 keeps 16:00)
        until_dt = None if until in (None, "") else parse_when(until, "until", end=True)
        if since_dt and until_dt and since_dt > until_dt:
            raise InvalidInputError("since is after until: swap them")
        return Filters(
            kinds=_kinds(kind),
            prefix=validate.prefix(subject_key_prefix),
            since=since_dt,
            until=until_dt,
            include_archived=bool(include_archived),
            scopes=self._scopes(all_projects),
        )

    def recall(
        self,
        query: str,
        limit: int | None = None,
        kind: str | Sequence[str] | None = None,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_archived: bool = False,
        min_score: float | None = None,
        all_projects: bool = False,
        explain: bool = False,
        max_tokens: int | None = None,
    ) -> list[MemoryRecord]:
        """Memories that match ``query`` by meaning and by keyword, best first, each with a
        ``score`` (the fused rank order, comparable only within one result list) and a
        ``relevance`` (0..1, the same for a memory and a query whatever else is stored:
        see :func:`memento.recall.relevance`). Filters are exact; the current project and
        global are searched unless ``all_projects``. ``min_score`` keeps only memories whose
        relevance is at least that much, so a query nothing answers returns ``[]``;
        :data:`memento.recall.RELEVANT` (0.5) is the calibrated bar for "relevant". Without
        ``min_score``, returns min(limit, number of matching memories) records.

        ``limit`` defaults to 10, or with ``max_tokens`` to as many as fit. ``max_tokens``
        keeps the best results whose lines, counted as the context block counts them
        (:func:`memento.context.count_tokens` of each memory's line), fit in that many
        tokens together; one too long for what is left is passed over and the next ones
        may still fit (as in the context block), and a memory is never cut.

        ``explain=True`` gives each record an ``explanation``
        (:class:`memento.recall.Explanation`): the parts its score and relevance were made
        of, and the filters that applied."""
        return self.recall_many(
            [query],
            limit,
            kind,
            subject_key_prefix,
            since,
            until,
            include_archived,
            min_score,
            all_projects,
            explain,
            max_tokens,
        )[0]

    @_database_errors
    def recall_many(
        self,
        queries: Sequence[str],
        limit: int | None = None,
        kind: str | Sequence[str] | None = None,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_archived: bool = False,
        min_score: float | None = None,
        all_projects: bool = False,
        explain: bool = False,
        max_tokens: int | None = None,
    ) -> list[list[MemoryRecord]]:
        """:meth:`recall` for several queries in one call (one result list per query);
        ``min_score``, ``max_tokens`` and ``explain`` apply to each, as in :meth:`recall`;
        ``min_score`` is a bar on each result's ``relevance``."""
        texts = validate.queries(queries)
        tokens = _max_tokens(max_tokens)
        if limit is None:
            limit = DEFAULT_LIMIT if tokens is None else tokens // MIN_LINE_TOKENS + 1
            limit = min(limit, validate.MAX_RECALL_LIMIT)
        limit = validate.limit(limit, maximum=validate.MAX_RECALL_LIMIT)
        threshold = validate.min_score(min_score)
        filters = self._filters(
            kind, subject_key_prefix, since, until, include_archived, all_projects
        )
        vectors = self._embed(texts) if texts else []
        return [
            self._search(
                text, vector, limit, filters, threshold, explain=bool(explain), max_tokens=tokens
            )
            for text, vector in zip(texts, vectors)
        ]

    def _search(
        self,
        text: str,
        vector: bytes,
        limit: int,
        filters: Filters,
        min_score: float | None,
        mode: str = "hybrid",
        *,
        explain: bool = False,
        max_tokens: int | None = None,
    ) -> list[MemoryRecord]:
        """The best ``limit`` candidates by fused score, keeping only those whose relevance
        is at least ``min_score`` (never padded with weaker ones) and, with ``max_tokens``,
        whose lines fit in it. Relevance is assessed ``limit`` candidates at a time, best
        first, until enough pass: stemming all ~85 candidates of a SciFact recall costs
        6 ms, the recall itself 13."""
        trace: dict[str, Any] | None = {} if explain else None
        hits = self._hits(text, vector, max(MIN_POOL, 2 * limit), filters, mode, trace)
        words = relevance_terms(text)
        query_terms = self._store.stems(words)
        seqs = {row.id: row.seq for row, _, _ in hits}
        results: list[MemoryRecord] = []
        spent = 0
        for start in range(0, len(hits), limit):
            found = [
                (c, c.row.record(round(c.score, 6), relevance=round(c.relevance, 6)))
                for c in self._assess(query_terms, hits[start : start + limit])
                if min_score is None or c.relevance >= min_score
            ]
            if trace is not None:
                applied = _applied(filters, min_score, max_tokens)
                found = [
                    (c, replace(r, explanation=self._explain(c, trace, words, applied)))
                    for c, r in found
                ]
            if max_tokens is None:
                results.extend(r for _, r in found)
            else:
                costs = count_many([full_line(r) + "\n" for _, r in found])
                for (_, record), cost in zip(found, costs):
                    if spent + cost <= max_tokens and len(results) < limit:
                        results.append(record)
                        spent += cost
                if max_tokens - spent < MIN_LINE_TOKENS:
                    break
            if len(results) >= limit:
                break
        results = results[:limit]
        with self._lock:
            counts = self._store.version_counts([seqs[r.id] for r in results])
        return [replace(r, versions=counts[seqs[r.id]] + 1) if seqs[r.id] in counts else r
                for r in results]  # fmt: skip

    def _explain(
        self, c: _Candidate, trace: dict[str, Any], words: list[str], applied: dict[str, Any]
    ) -> Explanation:
        """The parts of one result's score, from what :meth:`_hits` traced."""
        seq = c.row.seq
        vector = trace["vector"].get(seq)
        keyword = trace["keyword"].get(seq)
        age_days = (trace["now"] - c.row.created_at).total_seconds() / 86400
        importance_factor, recency_factor = factors(c.row.importance, age_days, self.weights)
        return Explanation(
            vector_rank=vector[0] if vector else None,
            vector_part=vector[1] if vector else 0.0,
            similarity=c.evidence.similarity,
            keyword_rank=keyword[0] if keyword else None,
            keyword_part=keyword[1] if keyword else 0.0,
            bm25=trace["bm25"].get(seq),
            matched_terms=tuple(words[i] for i in c.matched),
            fused=trace["fused"][seq],
            importance=c.row.importance,
            importance_factor=importance_factor,
            age_days=age_days,
            recency_factor=recency_factor,
            score=c.score,
            coverage=c.evidence.coverage,
            query_terms=c.evidence.terms,
            relevance=c.relevance,
            method=self.weights.method,
            weights={"vector": self.weights.vector, "keyword": self.weights.keyword},
            filters=applied,
        )

    def _candidates(
        self, text: str, vector: bytes, pool: int, filters: Filters, mode: str = "hybrid"
    ) -> list[_Candidate]:
        """Every hit of the ``pool`` nearest and ``pool`` best keyword matches, best fused
        score first, each with the evidence of its relevance (benches/relevance.py reads it)."""
        hits = self._hits(text, vector, pool, filters, mode)
        return self._assess(self._store.stems(relevance_terms(text)), hits)

    def _hits(
        self,
        text: str,
        vector: bytes,
        pool: int,
        filters: Filters,
        mode: str,
        trace: dict[str, Any] | None = None,
    ) -> list[tuple[Row, float, float]]:
        """(row, fused score after importance and recency, cosine similarity) of every
        candidate, best score first. ``trace`` (a dict) is filled with what an explanation
        needs: each list's places and scaled scores, the BM25 scores, the fused scores and
        the moment the ages were taken at."""
        with self._lock, self._store.transaction(write=False):
            vector_hits = self._store.knn(vector, pool, filters) if mode != "keyword" else []
            keyword_hits = (
                self._store.keyword(text, pool, filters) if mode != "dense" else []
            )
            fused = fuse(vector_hits, keyword_hits, self.weights)
            rows = self._store.fetch(list(fused))
            # keyword-only hits have no distance from the nearest-neighbour search
            similarity = {seq: 1.0 - distance for seq, distance in vector_hits}
            missing = [seq for seq in fused if seq not in similarity]
            similarity.update(self._store.similarities(vector, missing))
        if len(rows) != len(fused):  # one read snapshot: only a damaged index gets here
            raise DatabaseError(
                f"the search index of {self.path} points at memories that do not exist: "
                "run `memento verify`, then restore from a backup"
            )
        now = utcnow()
        if trace is not None:
            trace.update(
                vector=scaled(vector_hits, self.weights),
                keyword=scaled(keyword_hits, self.weights),
                bm25={seq: -raw for seq, raw in keyword_hits},
                fused=fused,
                now=now,
            )
        hits = []
        for seq, base in fused.items():
            row = rows[seq]
            age_days = (now - row.created_at).total_seconds() / 86400
            score = adjust(base, row.importance, age_days, self.weights)
            hits.append((row, score, similarity.get(seq, 0.0)))
        hits.sort(key=lambda hit: (-hit[1], -hit[0].seq))
        return hits

    def _assess(
        self, query_terms: list[frozenset[str]], hits: Sequence[tuple[Row, float, float]]
    ) -> list[_Candidate]:
        """The relevance of each hit, from its similarity and the query words it contains."""
        documents = self._store.stems(
            [f"{row.content} {row.subject_key or ''}" for row, _, _ in hits]
        )
        found = []
        for (row, score, similarity), document in zip(hits, documents):
            evidence = Evidence(similarity, coverage(query_terms, document), len(query_terms))
            matched = tuple(i for i, word in enumerate(query_terms) if word & document)
            found.append(_Candidate(row, score, relevance(evidence), evidence, matched))
        return found

    # ---- bulk -----------------------------------------------------------------------

    @_database_errors
    def export(self) -> Iterator[dict[str, Any]]:
        """Every memory, archived included, oldest first, as JSON-ready dicts."""
        with self._lock:
            rows = list(self._store.iter_rows())
            versions = self._store.versions([r.seq for r in rows])
        for row in rows:
            data = row.record().to_dict()
            for key in ("score", "relevance", "action", "redactions", "versions"):
                data.pop(key)
            if row.seq in versions:
                data["history"] = [_exported_version(v) for v in versions[row.seq]]
            yield data

    @_database_errors
    def import_records(
        self,
        records: Sequence[Mapping[str, Any]],
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
        labels: Sequence[str] | None = None,
        scope: str | os.PathLike[str] | None = None,
    ) -> dict[str, int]:
        """Restore exported memories losslessly (same ids, timestamps, archived state,
        scope, earlier versions). A record whose id is present is skipped, so importing
        twice adds nothing, unless it is a newer state of that memory (changed, and not
        older than the stored one): then the memory is updated in place and the state it
        replaces kept as a version (``import``). Returns ``{"added", "updated",
        "skipped"}``. Records
        without a scope of their own (other tools' memories) go to ``scope``: global unless
        told (``"project"``, a directory). Every record is checked before anything is
        written; then each batch is one transaction."""
        fallback = None if scope in (None, "", GLOBAL) else self._scope_project(scope)
        prepared: list[tuple[NewMemory, Project | None, list[_OldVersion]]] = []
        for n, record in enumerate(records):
            where = f"{labels[n]}: " if labels else f"record {n + 1}: "
            prepared.append(self._prepare_import(record, where, fallback))
        added = updated = skipped = 0
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size]
            with self._lock:
                present = {}
                for new, _, _ in batch:
                    rows = self._store.find_by_id(new.id)
                    if rows:
                        present[new.id] = rows[0]
            fresh = [entry for entry in batch if entry[0].id not in present]
            newer = [e for e in batch if e[0].id in present and _supersedes(e[0], present[e[0].id])]
            skipped += len(batch) - len(fresh) - len(newer)
            if not fresh and not newer:
                if progress:
                    progress(min(start + batch_size, len(prepared)), len(prepared))
                continue
            # vectors for the new memories, and for the changed ones whose text changed
            texts = [new.content for new, _, _ in fresh]
            texts += [new.content for new, _, _ in newer if new.content != present[new.id].content]
            vectors = iter(self._embed(texts))
            fresh_vectors = [next(vectors) for _ in fresh]
            newer_vectors = [
                next(vectors) if new.content != present[new.id].content else None
                for new, _, _ in newer
            ]
            with self._lock, self._write():
                projects = {p for _, p, _ in fresh + newer if p is not None}
                projects |= {o.project for _, _, h in fresh for o in h if o.project}
                for project in projects:
                    self._store.register_project(project)
                for (new, _, history), vector in zip(fresh, fresh_vectors):
                    if self._store.find_by_id(new.id):
                        skipped += 1
                        continue
                    key = new.subject_key
                    if (
                        key is not None
                        and new.archived_at is None
                        and self._store.find_live_subject(key, new.scope) is not None
                    ):  # the live memory already holding the key wins; keep this archived
                        new = replace(new, archived_at=utcnow())
                    seq = self._store.insert(new, vector)
                    for old in history:  # its earlier versions, oldest first
                        self._store.add_version(
                            old.row(seq, new), old.valid_from, old.valid_until, old.replaced_by
                        )
                    added += 1
                for (new, _, _), vector in zip(newer, newer_vectors):
                    if self._refresh(new, vector):
                        updated += 1
                    else:
                        skipped += 1
            if progress:
                progress(min(start + batch_size, len(prepared)), len(prepared))
        return {"added": added, "updated": updated, "skipped": skipped}

    def _refresh(self, new: NewMemory, vector: bytes | None) -> bool:
        """Bring a present memory up to a newer imported state, keeping the one it replaces
        as a version (``import``); False when that is not (or no longer) right: it changed
        meanwhile, or its subject_key is held by another live memory."""
        rows = self._store.find_by_id(new.id)
        if not rows or not _supersedes(new, rows[0]):
            return False
        row = rows[0]
        if vector is None and new.content != row.content:
            return False  # its text changed since the vector was made: leave it
        if new.subject_key is not None and new.archived_at is None:
            holder = self._store.find_live_subject(new.subject_key, new.scope)
            if holder is not None and holder.seq != row.seq:
                return False
        self._keep_version(row, utcnow(), "import")
        values: dict[str, Any] = {
            "content": new.content,
            "kind": new.kind,
            "importance": new.importance,
            "subject_key": new.subject_key,
            "metadata": new.metadata,
            "source": new.source,
            "scope": new.scope,
            "updated_at": new.updated_at,
            "archived_at": new.archived_at,
        }
        if vector is not None:
            values["embedding_model"] = self.embedder.name
        self._store.update(row.seq, values, vector)
        return True

    def _prepare_import(
        self, record: Mapping[str, Any], where: str, fallback: Project | None
    ) -> tuple[NewMemory, Project | None, list[_OldVersion]]:
        hint = (
            " (is this a `memento export` file? For another tool's memories use "
            "`memento import`)"
        )
        if not isinstance(record, Mapping):
            raise InvalidInputError(f"{where}expected a JSON object{hint}")
        if not isinstance(record.get("content"), str):
            raise InvalidInputError(f"{where}no content text{hint}")
        try:
            raw_id = record.get("id")
            try:
                memory_id = normalize_id_prefix(raw_id) if raw_id is not None else new_id()
            except InvalidInputError:
                memory_id = ""
            if len(memory_id) != 26:
                raise InvalidInputError(
                    f"id {str(raw_id)[:40]!r} is not a memento id (26 characters){hint}"
                )
            fields = {k: record[k] for k in STORE_KEYS if k in record and k != "scope"}
            item = self._prepare({**fields, "scope": GLOBAL}, "")
            project = _exported_project(record) if "scope" in record else fallback
            updated = record.get("updated_at")
            archived = record.get("archived_at")
            created = item.created_at or utcnow()
            new = self._new_memory(
                replace(item, created_at=created, project=project),
                created,
                memory_id=memory_id,
                updated_at=parse_when(updated, "updated_at") if updated else created,
                archived_at=parse_when(archived, "archived_at") if archived else None,
            )
            return new, project, self._prepare_history(record.get("history"), project)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}{exc}") from None

    def _prepare_history(self, history: object, project: Project | None) -> list[_OldVersion]:
        """The earlier versions of an exported memory (its ``history``), checked and
        redacted as a store would, oldest first."""
        if history is None:
            return []
        if not isinstance(history, list):
            raise InvalidInputError("history must be a list of earlier versions")
        versions: list[tuple[int, _OldVersion]] = []
        for n, entry in enumerate(history, 1):
            where = f"history version {n}: "
            if not isinstance(entry, Mapping):
                raise InvalidInputError(f"{where}expected an object")
            try:
                fields = {k: entry[k] for k in _HISTORY_FIELDS if k in entry}
                item = self._prepare({**fields, "scope": GLOBAL}, "")
                change = entry.get("replaced_by")
                if change not in CHANGES:
                    raise InvalidInputError(f"replaced_by must be one of {', '.join(CHANGES)}")
                start = parse_when(entry.get("valid_from"), "valid_from")
                stop = parse_when(entry.get("valid_until"), "valid_until")
                if start > stop:
                    raise InvalidInputError("valid_from is after valid_until")
                order = entry.get("version", n)
                if isinstance(order, bool) or not isinstance(order, int):
                    raise InvalidInputError("version must be a whole number")
            except InvalidInputError as exc:
                raise InvalidInputError(f"{where}{exc}") from None
            owner = _exported_project(entry) if "scope" in entry else project
            versions.append((order, _OldVersion(item, owner, start, stop, change)))
        return [v for _, v in sorted(versions, key=lambda pair: pair[0])]

    @_database_errors
    def reembed(
        self,
        all: bool = False,
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-encode memories whose vector came from another model (or every memory), in
        batches of one transaction each; an interrupted run resumes where it stopped. A
        vector table of another dimension is rebuilt in one transaction once every new
        vector is made, so a failure leaves the old table. Returns how many were written.

        A memory whose content changed while its batch was being embedded is skipped: the
        update that changed it wrote its own vector (or left it stale for the next run)."""
        model = self.embedder
        # A manifest whose dimension the model does not make fails here (ModelError),
        # before anything in the store changes.
        model.load()
        with self._lock:
            rebuild = self._store.vector_dimension() != model.dimension
        if rebuild:
            return self._rebuild_vectors(batch_size, progress)
        with self._lock, self._write():
            if all:
                self._store.mark_all_stale()
            pending = self._store.stale_seqs(model.name)
        self._vectors_checked = True
        done = written = 0
        for start in range(0, len(pending), batch_size):
            seqs = pending[start : start + batch_size]
            with self._lock:
                rows = self._store.fetch(seqs)
            texts = {seq: rows[seq].content for seq in seqs if seq in rows}
            vectors = self._vectors(list(texts.values()))
            with self._lock, self._write():
                now = self._store.fetch(list(texts))
                for (seq, text), vector in zip(texts.items(), vectors):
                    if seq in now and now[seq].content == text:
                        self._store.update(seq, {"embedding_model": model.name}, vector)
                        written += 1
            done += len(seqs)
            if progress:
                progress(done, len(pending))
        with self._lock, self._write():
            self._store.set_setting("embedding_model", model.name)
        return written

    def _vectors(self, texts: Sequence[str]) -> list[bytes]:
        vectors = self.embedder.embed(list(texts))
        if len(texts) and vectors.shape[-1] != self.embedder.dimension:
            raise ModelError(
                f"the model {self.embedder.name} made vectors of {vectors.shape[-1]} values, "
                f"its manifest says {self.embedder.dimension}: fix the manifest or re-export "
                "the model"
            )
        return [row.astype("<f4").tobytes() for row in vectors]

    def _rebuild_vectors(
        self, batch_size: int, progress: Callable[[int, int], None] | None
    ) -> int:
        """Every vector made again for a table of the model's dimension: all of them are
        embedded first (held in memory, 1.5 KB each at 384 dimensions), then one
        transaction drops the old table, creates the new one and writes them; memories
        added or changed meanwhile are embedded inside it."""
        model = self.embedder
        with self._lock:
            texts = {row.seq: row.content for row in self._store.iter_rows()}
        made: dict[int, tuple[str, bytes]] = {}
        seqs = list(texts)
        for start in range(0, len(seqs), batch_size):
            part = seqs[start : start + batch_size]
            vectors = self._vectors([texts[s] for s in part])
            made.update((s, (texts[s], v)) for s, v in zip(part, vectors))
            if progress:
                progress(len(made), len(seqs))
        with self._lock, self._write():
            now = {row.seq: row.content for row in self._store.iter_rows()}
            changed = [s for s, text in now.items() if s not in made or made[s][0] != text]
            for s, vector in zip(changed, self._vectors([now[s] for s in changed])):
                made[s] = (now[s], vector)
            self._store.recreate_vectors(model.dimension)
            for s in now:
                self._store.update(s, {"embedding_model": model.name}, made[s][1])
            self._store.set_setting("embedding_model", model.name)
        self._vectors_checked = True
        return len(now)

    # ---- facts --------------------------------------------------------------------

    @_database_errors
    def stats(self, all_projects: bool = False) -> dict[str, Any]:
        """Counts by kind and archived (the current project and global, or all projects),
        the projects, schema version, model, dimension and file size."""
        scopes = self._scopes(all_projects)
        with self._lock:
            counts = self._store.counts(Filters(scopes=scopes))
            projects = [
                p for p in self._store.projects() if scopes is None or p["id"] in scopes
            ]
            by_kind = {kind: counts["live_by_kind"].get(kind, 0) for kind in KINDS}
            version = self._store.schema_version()
            model = self._store.get_setting("embedding_model")
            dimension = self._store.vector_dimension()
            size = self._store.size_bytes()
        return {
            "path": str(self.path),
            "total": sum(by_kind.values()) + counts["archived"],
            "live": sum(by_kind.values()),
            "by_kind": by_kind,
            "archived": counts["archived"],
            "schema_version": version,
            "model": model,
            "dimension": dimension,
            "file_size_bytes": size,
            "project": self.project.id if self.project else None,
            "projects": projects,
        }

    @_database_errors
    def about(
        self, events: int = 10, all_projects: bool = False
    ) -> dict[str, list[MemoryRecord]]:
        """What memento knows about the user: ``user.*`` memories, the lessons learned
        (most important first), then recent events."""
        filters = Filters(kinds=("lesson",), scopes=self._scopes(all_projects))
        with self._lock:
            lessons = self._store.rows(filters, order="important", limit=validate.MAX_LIMIT)
        return {
            "user": self.browse("user.", limit=validate.MAX_LIMIT, all_projects=all_projects),
            "lessons": [r.record() for r in lessons],
            "events": self.recent(limit=events, kind="event", all_projects=all_projects),
        }

    # ---- context for agents -----------------------------------------------------------

    @_database_errors
    def context(
        self,
        prompt: str | None = None,
        budget: int | None = None,
        session_id: str | None = None,
        all_projects: bool = False,
    ) -> ContextBlock:
        """The block of memories to put in front of an agent, at most ``budget`` tokens
        (:func:`memento.context.count_tokens`).

        Without a ``prompt`` (a session start): global facts and lessons (``user.*`` keys
        first), then the current project's facts and lessons (most important, then most
        recently confirmed, first), then its events of the last two weeks; default budget
        1,200 tokens. With a ``prompt``: only memories relevant to it (relevance at least
        :data:`memento.recall.RELEVANT`), best first; default budget 400. An empty block
        (``text == ""``) means nothing is worth saying.

        With a ``session_id`` (the agent session's id), a memory already given to that
        session is not given again; a session start gives everything afresh (it follows a
        ``/clear``, a resume or a compaction, after which the agent has lost it)."""
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidInputError("prompt must be text")
        default = SESSION_BUDGET if prompt is None else PROMPT_BUDGET
        budget = default if budget is None else budget
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise InvalidInputError(f"budget must be a whole number of tokens, got {budget!r}")
        if not 0 <= budget <= MAX_BUDGET:
            raise InvalidInputError(f"budget must be between 0 and {MAX_BUDGET} tokens")
        if session_id is not None and (
            not isinstance(session_id, str) or not 0 < len(session_id) <= 200
        ):
            raise InvalidInputError("session_id must be text of 1 to 200 characters")
        if budget < MIN_BUDGET or (prompt is not None and not prompt.strip()):
            return ContextBlock(budget=budget)
        if prompt is None:
            block = self._session_block(budget, all_projects)
        else:
            block = self._prompt_block(prompt, budget, session_id, all_projects)
        # A session start forgets what the session was given (after a compaction or /clear
        # the agent no longer has it); a prompt records only what it gave.
        if session_id is not None and not self.readonly and (prompt is None or block.records):
            now = utcnow()
            with self._lock, self._write():
                if prompt is None:
                    self._store.clear_injected(session=session_id)
                self._store.clear_injected(before=now - INJECTED_TTL)
                self._store.mark_injected(session_id, [r.id for r in block.records], now)
        return block

    def _session_block(self, budget: int, all_projects: bool) -> ContextBlock:
        facts = ("fact", "lesson")
        since = utcnow() - timedelta(days=RECENT_EVENT_DAYS)
        # the project part: the current project, every project, or none (no project known)
        scopes: tuple[str, ...] | None = (self.project.id,) if self.project else None
        with_projects = all_projects or self.project is not None
        if all_projects:
            scopes = None
        with self._lock, self._store.transaction(write=False):
            mine = self._store.rows(
                Filters(kinds=facts, scopes=(GLOBAL,)), "important", CONTEXT_CANDIDATES
            )
            project: list[Row] = []
            events: list[Row] = []
            if with_projects:
                project = self._store.rows(
                    Filters(kinds=facts, scopes=scopes), "important", CONTEXT_CANDIDATES
                )
                events = self._store.rows(
                    Filters(kinds=("event",), scopes=scopes, since=since),
                    "newest",
                    CONTEXT_CANDIDATES,
                )
        # The user's own keys first: they are what the user set out to have remembered.
        mine.sort(key=lambda r: not (r.subject_key or "").startswith(USER_PREFIX))
        name = "all projects" if all_projects or not self.project else self.project.name
        sections = [
            Section("The user (all projects)", [r.record() for r in mine], SESSION_SHARES[0]),
            Section(
                f"Project {name}: facts and lessons",
                [r.record() for r in project if r.scope != GLOBAL],
                SESSION_SHARES[1],
            ),
            Section(
                f"Project {name}: recent events",
                [r.record() for r in events],
                SESSION_SHARES[2],
            ),
        ]
        header = (
            "# memento: what you remember from earlier sessions\n"
            "Ids are for memento_update / memento_forget when something here is stale."
        )
        return pack(header, sections, budget, max(MIN_BUDGET, budget // LINE_SHARE_SESSION))

    def _prompt_block(
        self, prompt: str, budget: int, session_id: str | None, all_projects: bool
    ) -> ContextBlock:
        found = self.recall(
            prompt.strip()[:PROMPT_CHARS],
            limit=PROMPT_CANDIDATES,
            min_score=RELEVANT,
            all_projects=all_projects,
        )
        if session_id is not None and found:
            with self._lock:
                given = self._store.injected(session_id)
            found = [r for r in found if r.id not in given]
        header = "# memento: memories that may bear on this prompt"
        return pack(
            header, [Section("", found)], budget, max(MIN_BUDGET, budget // LINE_SHARE_PROMPT)
        )


def _version_fields(v: Version | Row) -> dict[str, Any]:
    """The fields a version keeps, as MemoryRecord and MemoryVersion name them."""
    return {
        "content": v.content,
        "kind": v.kind,
        "importance": v.importance,
        "subject_key": v.subject_key,
        "metadata": v.metadata,
        "source": v.source,
        "scope": v.scope,
        "project": v.project,
    }


def _exported_version(v: Version) -> dict[str, Any]:
    return {
        "version": v.version,
        **_version_fields(v),
        "valid_from": to_iso(v.valid_from),
        "valid_until": to_iso(v.valid_until),
        "replaced_by": v.replaced_by,
    }


def _supersedes(new: NewMemory, row: Row) -> bool:
    """Whether an imported state of a memory replaces the stored one: something that keeps
    a version differs, and it is not older."""
    mine = (row.content, row.kind, row.importance, row.subject_key, row.metadata or {}, row.scope)
    theirs = (new.content, new.kind, new.importance, new.subject_key, new.metadata or {},
              new.scope)  # fmt: skip
    return mine != theirs and new.updated_at >= row.updated_at


def _under(key: str, prefix: str) -> bool:
    """Whether ``key`` is ``prefix`` or lies below it, by whole segments (as the store's
    prefix filter)."""
    if not prefix:
        return True
    child = prefix if prefix.endswith(".") else prefix + "."
    return key == prefix or key.startswith(child)


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"max_tokens must be a whole number of tokens, got {value!r}")
    if not MIN_LINE_TOKENS <= value <= MAX_BUDGET:
        raise InvalidInputError(
            f"max_tokens must be between {MIN_LINE_TOKENS} and {MAX_BUDGET}, got {value}: no "
            f"memory's line costs fewer than {MIN_LINE_TOKENS}"
        )
    return value


def _applied(filters: Filters, min_score: float | None, max_tokens: int | None) -> dict[str, Any]:
    """The filters a search applied, as an explanation lists them (only those set)."""
    applied: dict[str, Any] = {}
    if filters.kinds:
        applied["kind"] = list(filters.kinds)
    if filters.prefix:
        applied["subject_key_prefix"] = filters.prefix
    if filters.since is not None:
        applied["since"] = to_iso(filters.since)
    if filters.until is not None:
        applied["until"] = to_iso(filters.until)
    if filters.include_archived:
        applied["include_archived"] = True
    if filters.scopes is not None:
        applied["scopes"] = list(filters.scopes)
    if min_score is not None:
        applied["min_score"] = min_score
    if max_tokens is not None:
        applied["max_tokens"] = max_tokens
    return applied


def _identifier(value: Any, name: str) -> Any:
    """``subject_key`` or ``source`` as given (checked before validation lower-cases a key,
    which would hide an AWS key id from its pattern); one holding a secret is refused, not
    rewritten (a rewritten key would stop naming its memory), unless MEMENTO_REDACT=off."""
    if isinstance(value, str) and redaction_enabled():
        from .redact import check_identifier  # its patterns compile in ~15 ms: only on writes

        check_identifier(value, name)
    return value


def _redacted(
    content: str | None, metadata: dict[str, Any] | None
) -> tuple[str | None, Any, tuple[str, ...]]:
    """Validated content and metadata (None: not given) with secrets replaced by markers,
    unless MEMENTO_REDACT=off, and the sorted kinds of secret found in either."""
    if not redaction_enabled():
        return content, metadata, ()
    found: set[str] = set()
    if content is not None:
        from .redact import redact

        content, kinds = redact(content)
        found.update(kinds)
    if metadata is not None:
        from .redact import redact_json

        metadata, kinds = redact_json(metadata)
        found.update(kinds)
    return content, metadata, tuple(sorted(found))


def _exported_project(record: Mapping[str, Any]) -> Project | None:
    """The project of an exported memory (``scope``: its id, ``project``: its name)."""
    scope = record.get("scope")
    if scope in (None, "", GLOBAL):
        return None
    if not isinstance(scope, str) or len(scope) > 1000:
        raise InvalidInputError("scope must be 'global' or a project id (text)")
    name = record.get("project")
    if not isinstance(name, str) or not name.strip():
        name = scope.rstrip("/").rsplit("/", 1)[-1] or scope
    return Project(id=scope, name=name, root="")


def _kinds(kind: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if kind is None or kind == "" or kind == []:
        return None
    if isinstance(kind, str):
        return (validate.kind(kind),)
    if isinstance(kind, Sequence):
        return tuple(dict.fromkeys(validate.kind(k) for k in kind))
    raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}")


