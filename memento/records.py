"""The record memento returns for a memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .dates import to_iso
from .recall import Explanation

KINDS: tuple[str, ...] = ("fact", "event", "lesson")
ACTIONS: tuple[str, ...] = ("created", "updated", "unchanged", "deduplicated")


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

    @property
    def short_id(self) -> str:
        """The first 12 characters of the id, as the CLI shows it."""
        return self.id[:12]

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: timestamps as ISO-8601 UTC strings; ``explanation`` only when
        recall explained."""
        data = asdict(self)
        if self.explanation is None:
            del data["explanation"]
        else:
            data["explanation"] = self.explanation.to_dict()
        for key in ("created_at", "updated_at", "archived_at"):
            value = data[key]
            data[key] = to_iso(value) if value is not None else None
        data["redactions"] = list(self.redactions)
        return data
