"""The storage seam: the row shape, the filters, and the interface every backend implements.

``Memory`` holds the rules (validation, deduplication, redaction, fusion) and talks to storage
only through :class:`Store`. A backend owns every statement, how values are encoded, how
vectors are indexed and searched, and how its errors read. Timestamps cross the seam as aware
UTC datetimes, metadata as a dict, vectors as little-endian float32 bytes.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..projects import GLOBAL, Project
from ..records import MemoryRecord
from ..validate import MAX_METADATA_DEPTH, json_depth

# What a write may change on a memory (``Store.update``); ``id`` and ``created_at`` never change.
COLUMNS = (
    "content",
    "kind",
    "subject_key",
    "importance",
    "metadata",
    "source",
    "updated_at",
    "archived_at",
    "embedding_model",
    "scope",
)


# Metadata stored nested deeper than validation allows (written before the limit, or by
# another program) reads back as its JSON text under this key: every face can then carry it
# (one such memory used to break `memento export` for the whole store) and the export keeps
# the text as stored.
TOO_DEEP_KEY = "memento_metadata_too_deep"


def read_metadata(text: str | None) -> dict[str, Any]:
    """Stored metadata JSON as a dict (see :data:`TOO_DEEP_KEY`). Raises ValueError for
    text that is not JSON."""
    if not text:
        return {}
    # Only text with more brackets than the limit can nest past it: the common case pays
    # for two counts, not a walk.
    if text.count("{") + text.count("[") <= MAX_METADATA_DEPTH:
        return json.loads(text)
    try:
        value = json.loads(text)
        if json_depth(value) <= MAX_METADATA_DEPTH:
            return value
    except RecursionError:  # deeper than the parser goes
        pass
    return {TOO_DEEP_KEY: text}


@dataclass(frozen=True)
class Row:
    """One stored memory, as a backend reads it. ``seq`` is the backend's own key (also the
    key of the memory's vector and keyword rows); callers outside the store use ``id``."""

    seq: int
    id: str
    content: str
    kind: str
    subject_key: str | None
    importance: float
    metadata: dict[str, Any]
    source: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    embedding_model: str | None
    scope: str = GLOBAL  # "global" or a project id (memento.projects)
    project: str | None = None  # the project's readable name; None when global

    def record(self, score: float | None = None, **extra: Any) -> MemoryRecord:
        return MemoryRecord(
            id=self.id,
            content=self.content,
            kind=self.kind,
            importance=self.importance,
            subject_key=self.subject_key,
            metadata=self.metadata,
            source=self.source,
            created_at=self.created_at,
            updated_at=self.updated_at,
            archived_at=self.archived_at,
            scope=self.scope,
            project=self.project,
            score=score,
            **extra,
        )


@dataclass(frozen=True)
class Version:
    """An earlier version of a memory: its fields from ``valid_from`` until ``valid_until``,
    when a change of kind ``replaced_by`` (``memento.records.CHANGES``) replaced them.
    ``seq`` is the memory's; ``version`` counts from 1, the oldest."""

    seq: int
    version: int
    content: str
    kind: str
    subject_key: str | None
    importance: float
    metadata: dict[str, Any]
    source: str
    scope: str
    project: str | None
    valid_from: datetime
    valid_until: datetime
    replaced_by: str


@dataclass(frozen=True)
class NewMemory:
    """Everything a new row holds: built once by ``Memory`` for a store and for an import."""

    id: str
    content: str
    kind: str
    subject_key: str | None
    importance: float
    metadata: dict[str, Any]
    source: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    embedding_model: str | None = None
    scope: str = GLOBAL  # a project registered with ``Store.register_project``, or global

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class TokenRow:
    """One bearer token of the HTTP server, as stored: never the token itself, only the
    SHA-256 ``Store.add_token`` is given. ``project`` is a project id (``projects``), None
    for a token that covers every project; ``project_name`` its readable name."""

    name: str
    read_only: bool
    project: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    project_name: str | None = None


@dataclass(frozen=True)
class Filters:
    """What a search or listing restricts itself to, applied exactly inside the query (never
    after a too-small top-k). ``prefix`` selects ``subject_key`` by whole segments:
    ``project.shop`` is that key and every ``project.shop.*`` key, never
    ``project.shopify``; ``project.`` is every key below ``project``."""

    kinds: tuple[str, ...] | None = None
    prefix: str = ""
    since: datetime | None = None
    until: datetime | None = None
    include_archived: bool = False
    only_keyed: bool = False  # only memories that have a subject_key
    scopes: tuple[str, ...] | None = None  # "global" and/or project ids; None: every scope

    @property
    def narrowed(self) -> bool:
        """Whether anything beyond "live memories" is asked for."""
        return bool(
            self.kinds or self.prefix or self.since or self.until or self.scopes is not None
        )


class Store(ABC):
    """One open database. Methods are called under ``Memory``'s lock; writes only inside
    ``transaction(write=True)``, and a search's several reads inside one
    ``transaction(write=False)`` so they see one snapshot."""

    #: Where the data lives, as shown to the user (a file path or a URL without password).
    location: str
    #: The exceptions of the driver that ``describe_error`` turns into one line.
    errors: tuple[type[BaseException], ...] = ()

    # ---- lifecycle ------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def readonly(self) -> bool: ...

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def upgrade(self, dimension: int | None) -> list[int]:
        """Apply pending migrations; ``dimension`` is the vector size for a new store."""

    @abstractmethod
    def needs_upgrade(self) -> bool: ...

    @abstractmethod
    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager[None]: ...

    @abstractmethod
    def describe_error(self, exc: BaseException) -> str:
        """One line for a driver error: what went wrong and what to do."""

    # ---- settings and vectors ------------------------------------------------------

    @abstractmethod
    def get_setting(self, key: str) -> str | None: ...

    @abstractmethod
    def set_setting(self, key: str, value: str) -> None: ...

    @abstractmethod
    def vector_dimension(self) -> int | None: ...

    @abstractmethod
    def count_stale_vectors(self, model_name: str) -> int:
        """Memories whose vector was not made by ``model_name``."""

    @abstractmethod
    def stale_seqs(self, model_name: str) -> list[int]:
        """The seqs of those memories, oldest first (what ``reembed`` re-encodes)."""

    @abstractmethod
    def mark_all_stale(self) -> None:
        """Forget which model made every vector, so ``reembed`` re-encodes them all."""

    @abstractmethod
    def recreate_vectors(self, dimension: int) -> None:
        """Replace the vector storage with an empty one of ``dimension`` (every memory stale)."""

    @abstractmethod
    def vectors(self, seqs: Sequence[int]) -> dict[int, bytes]:
        """The stored vector of each of ``seqs`` as little-endian float32 bytes, exactly as
        written (``memento copy`` moves them to another store); a seq without one is left
        out."""

    # ---- reads ----------------------------------------------------------------------

    @abstractmethod
    def fetch(self, seqs: Sequence[int]) -> dict[int, Row]: ...

    @abstractmethod
    def factors(self, seqs: Sequence[int]) -> dict[int, tuple[float, datetime, str]]:
        """The importance, creation time and id of each memory of ``seqs`` (those that
        exist): what ranking weighs, read for every candidate of a recall, whose full rows
        are read only for those it returns (the id tells a row read later from another
        memory given a freed seq)."""

    @abstractmethod
    def find_by_id(self, prefix: str) -> list[Row]:
        """Rows whose id starts with ``prefix`` (normalised, 8+ characters); at most two."""

    @abstractmethod
    def find_live_subject(self, subject_key: str, scope: str) -> Row | None:
        """The live memory holding ``subject_key`` in ``scope`` (one at most)."""

    @abstractmethod
    def register_project(self, project: Project) -> None:
        """Record a project (id, readable name, root) before memories are scoped to it; a
        known project takes the new name, and the new root unless it is empty."""

    @abstractmethod
    def projects(self) -> list[dict[str, Any]]:
        """Every scope: ``id``, ``name``, ``root``, ``live`` and ``archived`` counts."""

    @abstractmethod
    def rows(
        self, filters: Filters, order: str = "newest", limit: int | None = None
    ) -> list[Row]:
        """Rows matching ``filters``: ``order`` is ``newest`` (created_at, newest first),
        ``important`` (importance, then the most recently updated, first), ``key``
        (subject_key) or ``seq`` (insertion order)."""

    @abstractmethod
    def iter_rows(self) -> Iterator[Row]:
        """Every row, archived included, in insertion order, read in chunks."""

    @abstractmethod
    def counts(self, filters: Filters) -> dict[str, Any]:
        """``live_by_kind`` (kind -> count) and ``archived`` among the memories that
        ``filters`` allows (its ``include_archived`` is ignored)."""

    @abstractmethod
    def size_bytes(self) -> int | None: ...

    # ---- search ---------------------------------------------------------------------

    @abstractmethod
    def knn(self, vector: bytes, k: int, filters: Filters) -> list[tuple[int, float]]:
        """The ``k`` nearest memories by cosine distance, best first, filters exact."""

    def knn_many(
        self,
        vectors: Sequence[bytes],
        k: int,
        filters: Sequence[Filters],
        min_similarity: float | None = None,
    ) -> list[list[tuple[int, float]]]:
        """For each of ``vectors``, what :meth:`knn` answers for it under its own
        ``filters[i]`` (the same ``k`` nearest, best first), keeping only the hits whose
        cosine similarity (1 - distance) is at least ``min_similarity`` when given. The
        near-duplicate check of ``store_many`` asks it once per batch. This default asks
        ``knn`` once per vector, which is correct for any backend; a backend can compare
        the whole batch at once (SQLite: one matrix product per chunk of stored vectors).
        A backend whose :meth:`regions` says so answers from each vector's regions only."""
        if len(vectors) != len(filters):
            raise ValueError("knn_many takes one Filters per vector")
        out = []
        for vector, where in zip(vectors, filters):
            hits = self.knn(vector, k, where)
            if min_similarity is not None:
                hits = [(seq, d) for seq, d in hits if 1.0 - d >= min_similarity]
            out.append(hits)
        return out

    def early_check_version(self) -> Hashable | None:
        """Where a batch's near-duplicate check costs enough that running it before the
        write transaction, beside the embedding of the batch's next items, saves time, a
        value that changes whenever what :meth:`knn_many` answers may change (a vector,
        kind, scope or archived flag written, a memory forgotten, the regions remade): the
        check made early is trusted inside the transaction when the value is the same.
        None (this default): the check runs inside the transaction that writes."""
        return None

    def regions(self, vectors: Sequence[bytes]) -> list[tuple[int, frozenset[int]]] | None:
        """When :meth:`knn_many` looks only in some regions of the vector space (SQLite's
        partition of a large store), for each vector: the region a memory written with it
        lands in, and the regions its :meth:`knn_many` reaches; the near-duplicate check of
        a batch holds the batch's own memories to the same rule. None (this default): every
        memory is within reach of every vector."""
        return None

    @abstractmethod
    def keyword(self, text: str, k: int, filters: Filters) -> list[tuple[int, float]]:
        """Keyword hits for free ``text`` as (seq, raw score), best first; lower raw scores
        are better (BM25 as SQLite returns it), filters exact."""

    @abstractmethod
    def similarities(self, vector: bytes, seqs: Sequence[int]) -> dict[int, float]:
        """The cosine similarity (-1..1) of ``vector`` to the stored vector of each of
        ``seqs``; a seq without a vector is left out. Recall uses it for the keyword hits
        that the nearest-neighbour search did not return, to give every hit a relevance."""

    @abstractmethod
    def stems(self, texts: Sequence[str]) -> list[frozenset[str]]:
        """The terms the keyword index makes of each text (after its case folding and
        stemming), so recall can tell which query words a memory contains."""

    def prepare_writes(self, search: bool = True) -> None:  # noqa: B027 - optional hook
        """Called before a write transaction, outside any transaction; ``search``: its
        writes search the store (the near-duplicate check), and those searches must see
        other processes' writes. A backend may bring an index up to date here (SQLite trains
        its partition when a store reaches the size that uses it, and loads its index only
        for writes that search)."""

    @contextlib.contextmanager
    def loading(self) -> Iterator[bool]:
        """Around a bulk load (``memento copy``), outside any transaction: a backend may
        put off the upkeep of an index until the end when it starts empty. The store stays
        correct for readers meanwhile, only slower. Yields whether an index is built when
        the block ends (so a caller can say why it waits). This default does nothing."""
        yield False

    # ---- writes ---------------------------------------------------------------------

    @abstractmethod
    def insert(self, memory: NewMemory, vector: bytes) -> int:
        """Insert a memory with its vector; returns its seq."""

    @abstractmethod
    def update(self, seq: int, values: dict[str, Any], vector: bytes | None = None) -> None:
        """Set the given columns (names from :data:`COLUMNS`) and, if given, the vector."""

    @abstractmethod
    def delete(self, seqs: Sequence[int]) -> None:
        """Delete memories, their earlier versions, and every trace of their text the store
        can reach."""

    # ---- earlier versions (Memory.history) ------------------------------------------

    @abstractmethod
    def add_version(
        self, row: Row, valid_from: datetime, valid_until: datetime, replaced_by: str
    ) -> None:
        """Keep ``row``'s fields as the memory's next earlier version (inside a write)."""

    @abstractmethod
    def versions(self, seqs: Sequence[int]) -> dict[int, list[Version]]:
        """The earlier versions of each memory that has any, oldest first."""

    @abstractmethod
    def version_counts(self, seqs: Sequence[int]) -> dict[int, int]:
        """How many earlier versions each memory that has any keeps."""

    @abstractmethod
    def seqs_with_versions(self, filters: Filters) -> list[int]:
        """The memories with an earlier version that ``filters``' prefix and scopes match
        (what a browse of the past needs besides the live rows)."""

    def after_delete(self) -> None:  # noqa: B027 - optional hook
        """Called after the transaction of a hard delete commits (e.g. to checkpoint)."""

    def purge_pending(self) -> bool:
        """True while a hard delete's text may still be on disk (a backend with a log that
        other readers hold open); the backend finishes the purge on a later write or close."""
        return False

    # ---- what agent sessions were given (memento.context) ---------------------------

    @abstractmethod
    def injected(self, session: str) -> set[str]:
        """The ids of the memories already given to agent session ``session``."""

    @abstractmethod
    def mark_injected(self, session: str, ids: Sequence[str], at: datetime) -> None:
        """Record that ``ids`` were given to ``session`` at ``at`` (inside a write)."""

    @abstractmethod
    def clear_injected(self, session: str | None = None, before: datetime | None = None) -> None:
        """Forget what ``session`` was given, and/or every record older than ``before``."""

    # ---- bearer tokens of the HTTP server (memento.memory.tokens) -------------------

    @abstractmethod
    def add_token(self, token: TokenRow, digest: str) -> None:
        """Record a token under its SHA-256 hex ``digest`` (inside a write). The caller has
        checked that the name is free."""

    @abstractmethod
    def tokens(self) -> list[TokenRow]:
        """Every token, by name."""

    @abstractmethod
    def find_token(self, digest: str) -> TokenRow | None:
        """The token whose SHA-256 hex is ``digest``, if any."""

    @abstractmethod
    def delete_token(self, name: str) -> bool:
        """Delete (revoke) the token called ``name`` (inside a write); False if none is."""

    @abstractmethod
    def touch_token(self, name: str, at: datetime) -> None:
        """Set the token's ``last_used_at`` (inside a write)."""


__all__ = ["COLUMNS", "Filters", "NewMemory", "Row", "Store", "TokenRow", "Version"]
