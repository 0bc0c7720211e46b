"""The record memento returns for a memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .dates import to_iso
from .recall import Explanation

KINDS: tuple[str, ...] = ("fact", "event", "lesson")
ACTIONS: tuple[str, ...] = ("created", "updated", "unchanged", "deduplicated")
# What can replace a version of a memory: a store with its subject_key (upsert), an update
# (fields or scope), a near-duplicate store that raised its importance (dedup), an import of
# a newer state of it (import).
CHANGES: tuple[str, ...] = ("upsert", "update", "dedup", "import")


@dataclass(frozen=True)
class Related:
    """A live memory similar to one just stored, below the near-duplicate bar: it may say
    what the new one replaces (``similarity``: the cosine of their vectors)."""

    id: str
    similarity: float
    content: str


@dataclass(frozen=True)
class MemoryRecord:
    """One memory as stored.

    ``scope`` is ``global`` or the id of the project the memory belongs to, ``project`` that
    project's readable name (None when global). ``score`` is set by recall (higher is
    better) and None elsewhere. ``action`` is set by
    ``store``/``store_many``: ``created``, ``updated`` (a live memory with the same
    subject_key was replaced in place), ``unchanged`` (it was stored again word for word:
    nothing changed) or ``deduplicated`` (a near-identical memory of the
    same kind already existed and is returned instead). ``redactions`` names the kinds of
    secret that were replaced by a marker before the text was stored. ``explanation``
    holds the parts of its score when recall was asked to explain (``explain=True``).
    ``versions`` is how many versions the memory has had, the live one included
    (:meth:`memento.Memory.history` lists them); set by recall, recent and browse.
    ``related`` is set by a store of a fact or lesson without a subject_key: the live
    memories of its kind and scope that are similar but not near duplicates, most similar
    first; one of them may be stale now (update or forget it).
    """

    id: str
    content: str
    kind: str
    importance: float
    subject_key: str | None
    metadata: dict[str, Any]
    source: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    scope: str = "global"
    project: str | None = None
    score: float | None = None
    relevance: float | None = None
    action: str | None = None
    redactions: tuple[str, ...] = field(default=())
    explanation: Explanation | None = None
    versions: int = 1
    related: tuple[Related, ...] = field(default=())

    @property
    def short_id(self) -> str:
        """The first 12 characters of the id, as the CLI shows it."""
        return self.id[:12]

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: timestamps as ISO-8601 UTC strings; ``explanation`` only when
        recall explained, ``related`` only when a store found some."""
        data = asdict(self)
        if self.explanation is None:
            del data["explanation"]
        else:
            data["explanation"] = self.explanation.to_dict()
        if self.related:
            data["related"] = list(data["related"])
        else:
            del data["related"]
        for key in ("created_at", "updated_at", "archived_at"):
            value = data[key]
            data[key] = to_iso(value) if value is not None else None
        data["redactions"] = list(self.redactions)
        return data


@dataclass(frozen=True)
class MemoryVersion:
    """One version of a memory (:meth:`memento.Memory.history`): its fields while it held,
    from ``valid_from`` until ``valid_until`` (None: it is the live version), and the kind
    of change that replaced it, ``replaced_by`` (``upsert``: stored again under its
    subject_key; ``update``; ``dedup``: a near duplicate raised its importance;
    ``import``: an import brought a newer state; None for the live version). ``version``
    counts from 1, the oldest. The live version carries the memory's ``archived_at``."""

    id: str
    version: int
    content: str
    kind: str
    importance: float
    subject_key: str | None
    metadata: dict[str, Any]
    source: str
    scope: str
    project: str | None
    valid_from: datetime
    valid_until: datetime | None
    replaced_by: str | None
    archived_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.valid_until is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("valid_from", "valid_until", "archived_at"):
            value = data[key]
            data[key] = to_iso(value) if value is not None else None
        return data
