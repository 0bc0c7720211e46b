"""Version history: every change to a memory keeps the state it replaces.

:meth:`Memory.history` lists a memory's versions, ``browse(as_of=...)`` shows memories as
they stood at a moment, and an import brings a memory's earlier versions (or a newer state
of a present memory) with it. The store keeps the versions (``memento.store``); this room
holds the rules: which changes keep one, when each held, what replaced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .. import validate
from ..dates import parse_when, to_iso, utcnow
from ..errors import InvalidInputError, NotFoundError
from ..projects import GLOBAL, Project
from ..records import CHANGES, MemoryRecord, MemoryVersion
from ..store import Filters, NewMemory, Row
from ..store.base import Version
from .base import Item, MemoryBase, database_errors

# What an exported earlier version holds besides its times and scope.
_HISTORY_FIELDS = ("content", "kind", "importance", "subject_key", "metadata", "source")
# The fields whose change keeps the memory's previous version (Memory.history).
VERSIONED = ("content", "kind", "importance", "metadata", "subject_key", "scope")


@dataclass(frozen=True)
class OldVersion:
    """An earlier version of a memory being imported (its export's ``history``)."""

    item: Item
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


class History(MemoryBase):
    """The versions of memories: keeping them, listing them, reading the past."""

    def _keep_version(self, row: Row, now: datetime, change: str) -> None:
        """Keep ``row`` as it stands (before a change of kind ``change``) as its memory's
        latest earlier version: valid from the end of the one before it, or from the
        memory's creation, until ``now``. Inside the change's write transaction."""
        earlier = self._store.versions([row.seq]).get(row.seq)
        since = earlier[-1].valid_until if earlier else row.created_at
        self._store.add_version(row, min(since, now), now, change)

    @database_errors
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

    def _refresh(self, new: NewMemory, vector: bytes | None) -> bool:
        """Bring a present memory up to a newer imported state, keeping the one it replaces
        as a version (``import``); False when that is not (or no longer) right: it changed
        meanwhile, or its subject_key is held by another live memory."""
        rows = self._store.find_by_id(new.id)
        if not rows or not supersedes(new, rows[0]):
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

    def _prepare_history(self, history: object, project: Project | None) -> list[OldVersion]:
        """The earlier versions of an exported memory (its ``history``), checked and
        redacted as a store would, oldest first."""
        if history is None:
            return []
        if not isinstance(history, list):
            raise InvalidInputError("history must be a list of earlier versions")
        versions: list[tuple[int, OldVersion]] = []
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
            owner = exported_project(entry) if "scope" in entry else project
            versions.append((order, OldVersion(item, owner, start, stop, change)))
        return [v for _, v in sorted(versions, key=lambda pair: pair[0])]


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


def exported_version(v: Version) -> dict[str, Any]:
    return {
        "version": v.version,
        **_version_fields(v),
        "valid_from": to_iso(v.valid_from),
        "valid_until": to_iso(v.valid_until),
        "replaced_by": v.replaced_by,
    }


def supersedes(new: NewMemory, row: Row) -> bool:
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


def exported_project(record: Mapping[str, Any]) -> Project | None:
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
