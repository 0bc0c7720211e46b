"""Import a foreign SQLite memory database ("PMB": a persistent memory base).

No public specification of the original PMB format exists, so columns are mapped by the
names such stores usually use. The table read is ``memories`` (or ``memory``, ``notes``,
``entries``), else the first table that has a content column.

=================  =============================================================
memento field      source column (first one present, case-insensitive)
=================  =============================================================
content            content, text, memory, body
kind               kind, type, memory_type, category (episode/session/... -> event,
                   learning/insight/procedure/... -> lesson, anything else -> fact)
importance         importance, priority (0-1 kept; 1-10 and 1-100 scaled; high/low words)
subject_key        subject_key, key, topic
created_at         created_at, timestamp, created, date (ISO text or epoch s/ms)
updated_at         updated_at, modified_at
archived_at        archived_at, deleted_at
metadata           metadata (a JSON object), plus tags (JSON list or comma-separated)
id                 id, uuid: a memento id is kept as is; any other id seeds a stable id
=================  =============================================================

Columns that are not mapped are kept in ``metadata["pmb"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from .common import (
    ImportResult,
    clean_content,
    clean_key,
    first_present,
    map_importance,
    map_kind,
    open_sqlite,
    parse_json_object,
    parse_tags,
    parse_time,
    quote_identifier,
    record,
    stable_id,
    table_columns,
    write,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..memory import Memory

FORMAT = "pmb"
TABLES = ("memories", "memory", "notes", "entries")
CONTENT = ("content", "text", "memory", "body")
KIND = ("kind", "type", "memory_type", "category")
IMPORTANCE = ("importance", "priority")
SUBJECT = ("subject_key", "key", "topic")
CREATED = ("created_at", "timestamp", "created", "date")
UPDATED = ("updated_at", "modified_at")
ARCHIVED = ("archived_at", "deleted_at")
METADATA = ("metadata",)
TAGS = ("tags",)
IDS = ("id", "uuid")
# Bookkeeping of other stores that says nothing about the memory itself.
IGNORED = frozenset({"embedding", "embedding_model", "vector", "seq", "rowid"})


def find_table(conn: Any) -> str | None:
    """The table holding the memories, or None."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
        )
    ]
    ordered = [t for name in TABLES for t in tables if t.lower() == name]
    ordered += [t for t in tables if t not in ordered]
    for table in ordered:
        if first_present(table_columns(conn, table), CONTENT):
            return table
    return None


def read_pmb(path: Path) -> ImportResult:
    """Read the memories of a foreign SQLite database without writing anything."""
    result = ImportResult(FORMAT, path)
    conn = open_sqlite(path)
    try:
        table = find_table(conn)
        if table is None:
            raise InvalidInputError(
                f"{path} has no table with a content column ({', '.join(CONTENT)}): "
                "it is not a memory database memento can read"
            )
        columns = table_columns(conn, table)
        pick = {
            name: first_present(columns, candidates)
            for name, candidates in {
                "content": CONTENT,
                "kind": KIND,
                "importance": IMPORTANCE,
                "subject_key": SUBJECT,
                "created": CREATED,
                "updated": UPDATED,
                "archived": ARCHIVED,
                "metadata": METADATA,
                "tags": TAGS,
                "id": IDS,
            }.items()
        }
        mapped = {c for c in pick.values() if c} | {
            c for c in columns if c.lower() in IGNORED
        }
        for n, row in enumerate(conn.execute(f"SELECT * FROM {quote_identifier(table)}"), 1):
            _add_row(result, dict(row), pick, mapped, f"{table} row {n}")
    finally:
        conn.close()
    return result


def _add_row(
    result: ImportResult,
    row: dict[str, Any],
    pick: dict[str, str | None],
    mapped: set[str],
    label: str,
) -> None:
    def get(name: str) -> Any:
        column = pick[name]
        return row.get(column) if column else None

    content = clean_content(get("content"))
    if content is None:
        result.skipped.append(f"{label}: empty or oversized content")
        return
    kind, original_kind = map_kind(get("kind"))
    metadata = parse_json_object(get("metadata"))
    tags = parse_tags(get("tags"))
    if tags:
        metadata["tags"] = tags
    if original_kind:
        metadata["original_kind"] = original_kind
    extra = {k: v for k, v in row.items() if k not in mapped and v is not None}
    extra = {k: v for k, v in extra.items() if not isinstance(v, bytes)}
    if extra:
        metadata["pmb"] = extra
    created = parse_time(get("created"))
    source_id = get("id")
    memory_id = _memento_id(source_id) or stable_id(
        FORMAT, source_id if source_id is not None else content, created_at=created
    )
    result.records.append(
        record(
            id=memory_id,
            content=content,
            kind=kind,
            importance=map_importance(get("importance")),
            subject_key=clean_key(get("subject_key")),
            metadata=metadata,
            source=FORMAT,
            created_at=created,
            updated_at=parse_time(get("updated")),
            archived_at=parse_time(get("archived")),
        )
    )
    result.labels.append(label)


def _memento_id(value: object) -> str | None:
    """The value itself when it already is a ULID (a memento file read as PMB keeps ids)."""
    if not isinstance(value, str) or len(value) != 26:
        return None
    text = value.upper()
    valid = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    return text if set(text) <= valid and text[0] in "01234567" else None


def import_pmb(
    memory: Memory,
    path: str | Path,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import a foreign SQLite memory database into ``memory``.

    >>> import_pmb(Memory(), "old_memories.db").added
    12
    """
    return write(memory, read_pmb(Path(path)), dry_run, progress)
