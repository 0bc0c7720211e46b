"""The ground floor of :class:`memento.Memory`: what every room of it stands on.

The open store, the lock, the (lazily loaded) embedder and the lifecycle; and the rules
every room shares: how an item to store is checked and redacted, which project a write goes
to, what a read covers, how an id (prefix) names a memory, the filters of a read.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from .. import validate
from ..config import redaction_enabled, resolve_location
from ..dates import parse_when
from ..embedder import Embedder
from ..errors import (
    AccessError,
    AmbiguousIdError,
    DatabaseError,
    InvalidInputError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
)
from ..ids import new_id, normalize_id_prefix
from ..projects import GLOBAL, Project, find_project
from ..recall import DEFAULT_WEIGHTS, Weights
from ..records import KINDS, MemoryRecord
from ..store import Filters, NewMemory, Row, Store, open_store

STORE_KEYS = frozenset(
    {"content", "kind", "importance", "subject_key", "metadata", "source", "created_at", "scope"}
)
# Facts about the user travel with them: keys under this prefix default to the global scope.
USER_PREFIX = "user."

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound="MemoryBase")


def database_errors(method: F) -> F:
    """Turn driver errors escaping a public method into a one-line DatabaseError."""

    @functools.wraps(method)
    def wrapper(self: MemoryBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self._store.errors as exc:
            raise DatabaseError(self._store.describe_error(exc)) from None

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Grant:
    """What a client's bearer token allows (:mod:`memento.memory.tokens`): ``read_only``
    refuses every write; a ``project`` confines reads and writes to it and the global
    memories."""

    name: str
    read_only: bool = False
    project: Project | None = None


@dataclass(frozen=True)
class Item:
    content: str
    kind: str
    importance: float
    subject_key: str | None
    metadata: dict[str, Any] | None
    source: str
    created_at: datetime | None  # None: the moment it is written
    redactions: tuple[str, ...]
    project: Project | None  # the scope: None is global


class MemoryBase:
    """The store, the lock and the embedder of one :class:`memento.Memory`, its lifecycle,
    and the helpers every room of it uses."""

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
        #: What the client of a server may do (None: anything); see :meth:`granted`.
        self.grant: Grant | None = None
        self._shared = False
        self.upgraded_from: int | None = None
        self._store: Store = open_store(location, create=create)
        #: The database file this memory lives in, or the URL of its PostgreSQL database
        #: shown without its password (the store keeps the full URL to itself).
        self.path: Path | str = location if isinstance(location, Path) else self._store.location
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
        """The backend's own connection (APSW for SQLite, psycopg for PostgreSQL): an escape
        hatch for scripts and tests."""
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
        if self._shared:  # a view of granted(): the memory it shares is closed by its owner
            return
        with self._lock:
            self._store.close()

    def granted(self: M, grant: Grant | None, project: Project | None) -> M:
        """This memory as one client of a server sees it: ``project`` is its current
        project, and ``grant`` (its token) what it may do. A token bound to a project makes
        that project the current one, whatever ``project`` says, and no argument (a
        ``scope``, ``all_projects``, an id) reaches past it and the global memories. The
        view shares the store, the lock and the embedder, so a server holds one open
        memory and one loaded model for every client; closing the view does nothing."""
        if self._embedder is None:  # made here, so every view shares one loaded model
            with contextlib.suppress(ModelError):  # reported by the first call that embeds
                self.embedder  # noqa: B018
        view = copy.copy(self)
        view.grant = grant
        view.project = grant.project if grant and grant.project else project
        view._shared = True
        return view

    def __enter__(self: M) -> M:
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
        self._check_writable()
        return self._store.transaction(write=True)

    def _check_writable(self) -> None:
        if self.grant is not None and self.grant.read_only:
            raise AccessError(
                f"token {self.grant.name} is read-only: storing, updating or forgetting needs "
                "a token made without --read-only (`memento token create NAME`)"
            )
        if self.readonly:
            raise DatabaseError(
                f"{self.path} is read-only: fix its permissions to store or forget memories"
            )

    def _resolve(self, memory_id: object) -> Row:
        prefix = normalize_id_prefix(memory_id)
        rows = self._store.find_by_id(prefix)
        if not rows:
            raise NotFoundError(
                f"no memory with id {prefix}: find ids with recall or recent (`memento list`)"
            )
        bound = self._bound()
        if bound is not None:  # another project's memory does not exist for this client
            rows = [r for r in rows if r.scope in (GLOBAL, bound.id)]
            if not rows:
                raise NotFoundError(
                    f"no memory with id {prefix}: find ids with recall or recent (`memento "
                    "list`)"
                )
        if len(rows) > 1:
            raise AmbiguousIdError(
                f"id prefix {prefix} matches several memories: give more characters of the id"
            )
        return rows[0]

    def _bound(self) -> Project | None:
        """The project the client's token confines it to, if any."""
        return self.grant.project if self.grant is not None else None

    def _unbound(self, what: str) -> None:
        """Refuse ``what`` (a whole-store operation) to a client with a restricted token."""
        if self.grant is not None and (self.grant.project or self.grant.read_only):
            raise AccessError(
                f"token {self.grant.name} cannot {what}: it is read-only or bound to a project"
            )

    def _prepare(self, item: Mapping[str, Any], where: str = "") -> Item:
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
            content, metadata, redactions = redacted(
                validate.content(item.get("content")),
                None if metadata is None else validate.metadata(metadata),
            )
            created = item.get("created_at")
            prepared = Item(
                content=content,
                kind=validate.kind(item.get("kind", "fact")),
                importance=validate.importance(item.get("importance", 0.5)),
                subject_key=validate.subject_key(
                    identifier(item.get("subject_key"), "subject_key")
                ),
                metadata=metadata,
                source=validate.source(identifier(item.get("source", "api"), "source")),
                created_at=None if created is None else parse_when(created, "created_at"),
                redactions=redactions,
                project=None,
            )
            return replace(prepared, project=self._scope_project(item.get("scope"), prepared))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}{exc}") from None

    def _scope_project(self, scope: object, item: Item | None = None) -> Project | None:
        """The project a write goes to (None: global). ``scope`` is ``"global"``,
        ``"project"`` (the current one), a directory, a known project id, or None for the
        default: the current project, except for ``user.*`` facts. A client bound to a
        project writes there or to global, nowhere else."""
        project = self._chosen_project(scope, item)
        bound = self._bound()
        if bound is not None and project is not None and project.id != bound.id:
            raise AccessError(
                f"token {self.grant.name} is bound to project {bound.name}: "  # type: ignore[union-attr]
                'store to it (scope "project") or to every project (scope "global")'
            )
        return project

    def _chosen_project(self, scope: object, item: Item | None) -> Project | None:
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
        bound = self._bound()
        if bound is not None:
            if all_projects:
                raise AccessError(
                    f"token {self.grant.name} is bound to project {bound.name}: "  # type: ignore[union-attr]
                    "all_projects is not allowed; reads cover that project and the global "
                    "memories"
                )
            return (GLOBAL, bound.id)
        if all_projects or self.project is None:
            return None
        return (GLOBAL, self.project.id)

    def _record(self, seq: int, **changes: Any) -> MemoryRecord:
        return replace(self._records([self._store.fetch([seq])[seq]])[0], **changes)

    def _records(self, rows: Sequence[Row]) -> list[MemoryRecord]:
        """The records of ``rows``, each with how many versions it has had."""
        counts = self._store.version_counts([r.seq for r in rows]) if rows else {}
        return [r.record(versions=counts.get(r.seq, 0) + 1) for r in rows]

    def _new_memory(
        self,
        item: Item,
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


def identifier(value: Any, name: str) -> Any:
    """``subject_key`` or ``source`` as given (checked before validation lower-cases a key,
    which would hide an AWS key id from its pattern); one holding a secret is refused, not
    rewritten (a rewritten key would stop naming its memory), unless MEMENTO_REDACT=off."""
    if isinstance(value, str) and redaction_enabled():
        from ..redact import check_identifier  # its patterns compile in ~15 ms: only on writes

        check_identifier(value, name)
    return value


def redacted(
    content: str | None, metadata: dict[str, Any] | None
) -> tuple[str | None, Any, tuple[str, ...]]:
    """Validated content and metadata (None: not given) with secrets replaced by markers,
    unless MEMENTO_REDACT=off, and the sorted kinds of secret found in either."""
    if not redaction_enabled():
        return content, metadata, ()
    found: set[str] = set()
    if content is not None:
        from ..redact import redact

        content, kinds = redact(content)
        found.update(kinds)
    if metadata is not None:
        from ..redact import redact_json

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
