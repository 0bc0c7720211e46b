"""What every importer shares: the plan it builds, stable ids, and mapping of foreign values.

An importer reads its source into a list of records in the shape of ``memento export``
(id, content, kind, importance, subject_key, metadata, source, created_at, archived_at) and
hands them to :meth:`Memory.import_records`. Each record's id is derived from the source
row (its own id or hash, else its content and time), so importing the same source twice
adds nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dates import parse_when, to_iso
from ..errors import DatabaseError, InvalidInputError
from ..ids import encode_ulid
from ..validate import MAX_CONTENT_CHARS, MAX_SUBJECT_KEY_CHARS

if TYPE_CHECKING:
    from ..memory import Memory

# Foreign kinds (memory types, categories) that mean an event or a lesson here; anything
# else becomes a fact, and the original value is kept in metadata["original_kind"].
EVENT_KINDS = frozenset(
    {"event", "events", "episode", "episodic", "conversation", "session", "log", "activity"}
)
LESSON_KINDS = frozenset(
    {"lesson", "lessons", "learning", "insight", "procedural", "procedure", "rule", "howto"}
)
IMPORTANCE_WORDS = {"critical": 1.0, "high": 0.8, "medium": 0.5, "normal": 0.5, "low": 0.2}


@dataclass
class ImportResult:
    """What an import found, and (unless it was a dry run) what it wrote."""

    format: str
    source: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "row 4: empty content", ...
    dry_run: bool = False
    added: int = 0
    updated: int = 0  # present, and the source holds a newer state (kept as a version)
    already_present: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": str(self.source),
            "found": len(self.records),
            "added": self.added,
            "updated": self.updated,
            "already_present": self.already_present,
            "skipped": self.skipped,
            "dry_run": self.dry_run,
        }


def write(
    memory: Memory,
    result: ImportResult,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    scope: str | os.PathLike[str] | None = None,
) -> ImportResult:
    """Store the records of ``result`` (all checked before any is written) unless dry_run,
    in ``scope`` (default global: foreign memories belong to no project until told)."""
    result.dry_run = dry_run
    if not dry_run and result.records:
        counts = memory.import_records(
            result.records, progress=progress, labels=result.labels, scope=scope
        )
        result.added = counts["added"]
        result.updated = counts["updated"]
        result.already_present = counts["skipped"]
    return result


def stable_id(*parts: object, created_at: datetime | None = None) -> str:
    """A ULID-shaped id derived from ``parts``: the same source row always gets the same
    id. Its time part is ``created_at`` when known, so ids still sort by creation."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    if created_at is not None:
        ms = int(created_at.timestamp() * 1000) & ((1 << 48) - 1)
    else:
        ms = int.from_bytes(digest[10:16], "big")
    return encode_ulid((ms << 80) | int.from_bytes(digest[:10], "big"))


def map_kind(value: object) -> tuple[str, str | None]:
    """(memento kind, the original value when it was something else)."""
    if value is None or str(value).strip() == "":
        return "fact", None
    text = str(value).strip()
    lowered = text.lower()
    if lowered in ("fact", "event", "lesson"):
        return lowered, None
    if lowered in EVENT_KINDS:
        return "event", text
    if lowered in LESSON_KINDS:
        return "lesson", text
    return "fact", text


def map_importance(value: object, default: float = 0.5) -> float:
    """0..1 from a fraction, a 1-10 or 1-100 score, or a word such as ``high``."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, str):
        word = value.strip().lower()
        if word in IMPORTANCE_WORDS:
            return IMPORTANCE_WORDS[word]
        try:
            value = float(word)
        except ValueError:
            return default
    if not isinstance(value, (int, float)) or value != value:  # NaN
        return default
    number = float(value)
    if number > 10:
        number /= 100
    elif number > 1:
        number /= 10
    return min(1.0, max(0.0, number))


def parse_time(value: object) -> datetime | None:
    """A datetime from epoch seconds (or milliseconds) or any string memento understands;
    None when absent or unreadable (the import time is used instead)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, (int, float)):
        seconds = float(value) / 1000 if value > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    try:
        return parse_when(text)
    except InvalidInputError:
        pass
    try:
        return parse_time(float(text))
    except ValueError:
        pass
    try:  # SQLite's CURRENT_TIMESTAMP and friends: "2026-11-24 10:00:00"
        return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def parse_json_object(value: object) -> dict[str, Any]:
    """A dict from a JSON object (or its text); {} for anything else."""
    if isinstance(value, dict):
        return value
    if isinstance(value, (str, bytes)):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def parse_tags(value: object) -> list[str]:
    """Tags from a JSON list, or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(t).strip() for t in value if str(t).strip()]
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parse_tags(parsed)
    return [t.strip() for t in text.split(",") if t.strip()]


def clean_content(value: object) -> str | None:
    """The text to store, or None when the row has nothing storable."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    if not text or len(text) > MAX_CONTENT_CHARS:
        return None
    return text


def clean_key(value: object) -> str | None:
    """A foreign key made a memento subject key (memento.validate.subject_key): lower case,
    whitespace runs as ``_``, no empty segments. None when nothing is left."""
    if value is None:
        return None
    text = "_".join(str(value).replace("\x00", "").lower().split())
    text = ".".join(part for part in text.split(".") if part)
    return text[:MAX_SUBJECT_KEY_CHARS].strip(".") or None


def record(
    *,
    id: str,
    content: str,
    kind: str = "fact",
    importance: float = 0.5,
    subject_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    source: str,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    archived_at: datetime | None = None,
) -> dict[str, Any]:
    """One record in the shape :meth:`Memory.import_records` takes."""
    data: dict[str, Any] = {
        "id": id,
        "content": content,
        "kind": kind,
        "importance": importance,
        "subject_key": subject_key,
        "metadata": json_safe(metadata or {}),
        "source": source,
    }
    if created_at is not None:
        data["created_at"] = to_iso(created_at)
    if updated_at is not None:
        data["updated_at"] = to_iso(updated_at)
    if archived_at is not None:
        data["archived_at"] = to_iso(archived_at)
    return data


def json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """The dict with anything JSON cannot hold turned into text: bytes, dates and other
    objects, and the numbers NaN and infinity (SQLite reads ``9e999`` as infinity; one
    such value used to refuse a whole import) as ``"nan"``, ``"inf"``. Only values change,
    never text: replacing "NaN" in the JSON turned the words "NaN values" into "null
    values"."""
    return json.loads(json.dumps(_finite(value), default=str, ensure_ascii=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A read-only connection to a foreign SQLite file (stdlib sqlite3: no extension is
    needed to read plain tables, and the file is never written)."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read {path} as SQLite ({exc}): check the file") from None
    conn.row_factory = sqlite3.Row
    return conn


def quote_identifier(name: str) -> str:
    """``name`` as an SQL identifier: in double quotes, each double quote doubled (a table
    named ``mem"ories`` broke the import)."""
    return '"' + name.replace('"', '""') + '"'


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({quote_identifier(table)})")]


def first_present(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` that is a column (case-insensitive), as spelt there."""
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None
