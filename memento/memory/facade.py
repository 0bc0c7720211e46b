"""The ``Memory`` facade: the one class the CLI, the MCP server, benchmarks and users call.

It owns one store (``memento.store``: every SQL statement lives there) and one (lazily
loaded) embedder, and holds the rules: validation, redaction, deduplication, fusion. Every
write computes its vectors first, then changes the memory, its keyword row and its vector
together in one write transaction, so a crash or an error never leaves one without the others.

This module holds the class itself with writing (deduplication, subject_key upserts, forget
and restore) and reading; recall, history, bulk work and the context block are the rooms it
is made of, each in its own module (see :mod:`memento.memory`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import validate
from ..dates import parse_when, utcnow
from ..errors import InvalidInputError
from ..projects import GLOBAL, Project
from ..records import KINDS, MemoryRecord, Related
from ..store import Filters, Row
from .base import Item, database_errors, identifier, redacted
from .briefing import Briefing
from .bulk import Bulk
from .history import VERSIONED, History
from .search import Search
from .tokens import Tokens

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
# Items of one store_many whose near-duplicate check is one call of ``Store.knn_many``: the
# SQLite store reads the stored vectors once per call, so larger is faster, and the
# neighbours asked for grow with the batch's subject_key upserts (at most this many).
CHECK_BATCH = 1_000


# A store_many with at least twice this many checked items (facts and lessons without a
# subject_key) embeds its items in parts of this many, each part's near-duplicate check
# running while the next part embeds (_embed_checking), where the store says it pays
# (Store.early_check_version). Parts of 50 and 100 measured alike within the machine's
# spread (five interleaved runs of calls of 200 at a million memories,
# benches/results/2026-11-27-early-check.md); smaller parts leave less of the last part's
# check unhidden.
EMBED_AHEAD = 50


def _scope(item: Item) -> str:
    return item.project.id if item.project else GLOBAL


def _checked(item: Item) -> bool:
    """Whether storing ``item`` runs the near-duplicate check (a fact or lesson without a
    subject_key; a keyed one updates the memory holding its key instead)."""
    return item.subject_key is None and item.kind in ("fact", "lesson")


class Memory(Bulk, History, Briefing, Search, Tokens):
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

    @database_errors
    def _store_items(self, items: list[Item]) -> list[MemoryRecord]:
        self._check_vectors()  # a model that does not fit the store: before anything else
        search = any(map(_checked, items))
        first = items[:CHECK_BATCH]
        with self._lock:
            self._check_writable()  # before prepare_writes, which may write (an index)
            ahead = (
                sum(map(_checked, first)) >= 2 * EMBED_AHEAD
                and self._store.early_check_version() is not None
            )
            if ahead:
                self._store.prepare_writes(search=True)  # what the early checks search
        early: Ahead | None = None
        if ahead:
            vectors, early = self._embed_checking(first)
            vectors += self._embed([item.content for item in items[len(first) :]])
        else:
            vectors = self._embed([item.content for item in items])
        with self._lock:
            # after the embedding: what other writers wrote meanwhile is read into the index
            # here, not overlaid on every check inside the write transaction
            self._store.prepare_writes(search=search)
        with self._lock, self._write():
            if self._store.get_setting("embedding_model") is None:
                self._store.set_setting("embedding_model", self.embedder.name)
            for project in {item.project for item in items if item.project is not None}:
                self._store.register_project(project)
            if early is not None:
                version = self._store.early_check_version()
                if version != early.version or self._check_size(first) != early.size:
                    early = None  # the store changed since: the check is made again here
            records: list[MemoryRecord] = []
            for start in range(0, len(items), CHECK_BATCH):
                part = slice(start, start + CHECK_BATCH)
                before = early.hits if early is not None and start == 0 else None
                records += self._write_batch(items[part], vectors[part], before)
            return records

    def _embed_checking(self, items: list[Item]) -> tuple[list[bytes], Ahead | None]:
        """The vectors of ``items`` and their near-duplicate check against the store as it
        is now, made in parts of ``EMBED_AHEAD``, each part's check running while the next
        part embeds (the check runs on one core, the embedding on two: run one after the
        other, one core idles through the check). Each check runs in a read transaction of
        its own, so the connection is free between them. The write transaction trusts the
        checks only if the store has not changed since (``Store.early_check_version``) and
        they asked for as many neighbours as it would (``_check_size``); None when the store
        changed between two parts, or stopped telling its version."""
        from concurrent.futures import ThreadPoolExecutor

        texts = [item.content for item in items]
        vectors: list[bytes] = []
        hits: dict[int, list[tuple[int, float]]] = {}
        versions: set[Any] = set()
        size = 0
        with ThreadPoolExecutor(1, thread_name_prefix="memento-embed-ahead") as pool:
            pending = pool.submit(self._embed, texts[:EMBED_AHEAD])
            for start in range(0, len(items), EMBED_AHEAD):
                vectors += pending.result()
                following = start + EMBED_AHEAD
                if following < len(items):
                    pending = pool.submit(self._embed, texts[following : following + EMBED_AHEAD])
                with self._lock, self._store.transaction(write=False):
                    versions.add(self._store.early_check_version())
                    size = size or self._check_size(items)
                    positions = [n for n in range(start, len(vectors)) if _checked(items[n])]
                    hits.update(self._near(items, vectors, positions, size))
        version = versions.pop() if len(versions) == 1 else None
        return vectors, None if version is None else Ahead(version, size, hits)

    def _check_size(self, items: list[Item]) -> int:
        """The neighbours a batch's check asks the store for: the ``1 + MAX_RELATED`` an
        item keeps, and one more for each live memory an item's subject_key will rewrite
        (``BatchVectors.merge`` leaves those out)."""
        holders = {
            row.seq
            for item in items
            if item.subject_key is not None
            and (row := self._store.find_live_subject(item.subject_key, _scope(item))) is not None
        }
        return 1 + MAX_RELATED + len(holders)

    def _near(
        self, items: list[Item], vectors: list[bytes], positions: list[int], size: int
    ) -> dict[int, list[tuple[int, float]]]:
        """The store's near neighbours (seq, cosine distance) of the items at ``positions``,
        of their kind and scope: one ``Store.knn_many`` call."""
        if not positions:
            return {}
        near = self._store.knn_many(
            [vectors[n] for n in positions],
            size,
            [Filters(kinds=(items[n].kind,), scopes=(_scope(items[n]),)) for n in positions],
            min_similarity=RELATED_SIMILARITY,
        )
        return dict(zip(positions, near))

    def _write_batch(
        self,
        items: list[Item],
        vectors: list[bytes],
        before: dict[int, list[tuple[int, float]]] | None = None,
    ) -> list[MemoryRecord]:
        """Write ``items`` in order, deciding each exactly as one store after another would.

        The near-duplicate check asks the store once for the whole batch (``knn_many``),
        against the memories as they were before it (or takes ``before``, that answer made
        ahead, :meth:`_embed_checking`), then each item adds what the batch itself has
        written so far (``BatchVectors``). The store's answer leaves out the memories an
        earlier item of the batch rewrote (a subject_key upsert can change a memory's vector
        and kind), so it is asked for that many more neighbours than needed
        (:meth:`_check_size`). Where the store answers from each vector's regions only
        (``Store.regions``), the batch's own memories count for an item when they lie in
        its regions, as in the store."""
        checked = [n for n, item in enumerate(items) if _checked(item)]
        if before is None:
            before = self._near(items, vectors, checked, self._check_size(items)) if checked else {}
        written = BatchVectors()
        regions = self._store.regions(vectors) if checked else None
        return [
            self._write_one(item, vector, before.get(n), written, regions[n] if regions else None)
            for n, (item, vector) in enumerate(zip(items, vectors))
        ]

    def _write_one(
        self,
        item: Item,
        vector: bytes,
        before: list[tuple[int, float]] | None = None,
        written: BatchVectors | None = None,
        region: tuple[int, frozenset[int]] | None = None,
    ) -> MemoryRecord:
        """Write one item. ``before`` (the store's near neighbours of ``vector`` before
        this batch), ``written`` (what the batch wrote since) and ``region`` (where the
        vector lands and what its check reaches, from ``Store.regions``) come from
        :meth:`_write_batch`; without them the store is searched now."""
        home, reach = region if region is not None else (None, None)
        now = utcnow()
        scope = item.project.id if item.project else GLOBAL
        related: tuple[Related, ...] = ()
        if item.subject_key is not None:
            existing = self._store.find_live_subject(item.subject_key, scope)
            if existing is not None:
                record = self._upsert(existing, item, vector, now)
                if written is not None and record.action == "updated":
                    written.add(existing.seq, item.kind, scope, vector, home)
                return record
        elif item.kind in ("fact", "lesson"):
            if before is None or written is None:
                near = Filters(kinds=(item.kind,), scopes=(scope,))
                hits = self._store.knn(vector, 1 + MAX_RELATED, near)
            else:
                hits = written.merge(before, vector, item.kind, scope, 1 + MAX_RELATED, reach)
            if hits and 1.0 - hits[0][1] >= DEDUP_SIMILARITY:
                return self._deduplicated(hits[0][0], item, now)
            similar = [(s, 1.0 - d) for s, d in hits if 1.0 - d >= RELATED_SIMILARITY]
            rows = self._store.fetch([s for s, _ in similar])
            related = tuple(
                Related(rows[s].id, round(similarity, 4), rows[s].content)
                for s, similarity in similar[:MAX_RELATED]
                if s in rows
            )
        seq = self._store.insert(self._new_memory(item, now), vector)
        if written is not None:
            written.add(seq, item.kind, scope, vector, home)
        return self._record(seq, action="created", redactions=item.redactions, related=related)

    def _upsert(self, existing: Row, item: Item, vector: bytes, now: datetime) -> MemoryRecord:
        """A store under a subject_key the live memory ``existing`` holds: it is replaced in
        place (its old state kept as a version), unless it was said again word for word."""
        if (
            existing.content == item.content
            and existing.kind == item.kind
            and existing.importance == item.importance
            and (item.metadata is None or existing.metadata == item.metadata)
        ):  # nothing to change, and updated_at stays
            return self._record(existing.seq, action="unchanged", redactions=item.redactions)
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

    def _deduplicated(self, seq: int, item: Item, now: datetime) -> MemoryRecord:
        """A near duplicate of the live memory ``seq``: that one is returned, keeping the
        higher importance."""
        row = self._store.fetch([seq])[seq]
        if item.importance > row.importance:
            self._keep_version(row, now, "dedup")
            self._store.update(seq, {"importance": item.importance, "updated_at": now})
        return self._record(seq, action="deduplicated", redactions=item.redactions)

    @database_errors
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
        text, checked, redactions = redacted(
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
            values["subject_key"] = validate.subject_key(identifier(subject_key, "subject_key"))
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
            if any(values[name] != getattr(row, name) for name in VERSIONED if name in values):
                self._keep_version(row, now, "update")
            values["updated_at"] = now
            self._store.update(row.seq, values, vector)
            return self._record(row.seq, action="updated", redactions=redactions)

    @database_errors
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

    @database_errors
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

    @database_errors
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

    @database_errors
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

    @database_errors
    def get(self, id: str) -> MemoryRecord:
        """One memory by id or unique id prefix (8+ characters)."""
        with self._lock:
            return self._records([self._resolve(id)])[0]

    @database_errors
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

    @database_errors
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

    # ---- facts --------------------------------------------------------------------

    @database_errors
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

    @database_errors
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


class BatchVectors:
    """The vectors one batch of ``store_many`` has written so far (new memories, and
    memories whose vector or kind an upsert changed), so that each item's near-duplicate
    check sees them as a store after store would. Kept as one growing matrix per kind and
    scope: an item compares itself with its group in one product, not a join per item."""

    def __init__(self) -> None:
        # (kind, scope) -> seqs, unit vectors (rows beyond len(seqs) unused), live flags,
        # regions (None: the store has none)
        self.groups: dict[
            tuple[str, str], tuple[list[int], list[Any], list[bool], list[int | None]]
        ] = {}
        self.where: dict[int, tuple[tuple[str, str], int]] = {}  # seq -> group, row

    def __contains__(self, seq: int) -> bool:
        return seq in self.where

    def add(
        self, seq: int, kind: str, scope: str, vector: bytes, region: int | None = None
    ) -> None:
        import numpy as np

        if seq in self.where:  # rewritten by an upsert: its old row no longer counts
            key, row = self.where[seq]
            self.groups[key][2][row] = False
        seqs, matrix, live, regions = self.groups.setdefault(
            (kind, scope), ([], [None], [], [])
        )
        values = np.frombuffer(vector, dtype="<f4")
        if matrix[0] is None or len(seqs) == len(matrix[0]):
            grown = np.zeros((max(16, 2 * len(seqs)), len(values)), dtype=np.float32)
            if matrix[0] is not None:
                grown[: len(seqs)] = matrix[0]
            matrix[0] = grown
        matrix[0][len(seqs)] = values / max(float(np.linalg.norm(values)), 1e-30)
        self.where[seq] = ((kind, scope), len(seqs))
        seqs.append(seq)
        live.append(True)
        regions.append(region)

    def merge(
        self,
        before: list[tuple[int, float]],
        vector: bytes,
        kind: str,
        scope: str,
        k: int,
        reach: frozenset[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest (seq, cosine distance), best first: the store's hits from
        before the batch that the batch has not rewritten, and the batch's own memories of
        ``kind`` in ``scope`` (those in the regions ``reach`` only, when given)."""
        import numpy as np

        hits = [(seq, d) for seq, d in before if seq not in self.where]
        group = self.groups.get((kind, scope))
        if group is not None:
            seqs, matrix, live, regions = group
            query = np.frombuffer(vector, dtype="<f4")
            cosines = (matrix[0][: len(seqs)] @ query) / max(float(np.linalg.norm(query)), 1e-30)
            for i in np.flatnonzero(cosines >= RELATED_SIMILARITY).tolist():
                if live[i] and (reach is None or regions[i] is None or regions[i] in reach):
                    hits.append((seqs[i], 1.0 - float(cosines[i])))
        hits.sort(key=lambda h: (h[1], h[0]))
        return hits[:k]


@dataclass(frozen=True)
class Ahead:
    """A batch's near-duplicate check made before its write transaction
    (``Memory._embed_checking``): the store's ``early_check_version`` then, the neighbours each
    item asked for (``Memory._check_size``), and the hits by item position."""

    version: Any
    size: int
    hits: dict[int, list[tuple[int, float]]]
