"""Import the SQLite file of mcp-memory-service (doobidoo/mcp-memory-service, sqlite-vec
backend, usually ``~/.local/share/mcp-memory/sqlite_vec.db``).

Its ``memories`` table has ``content``, ``content_hash``, ``tags`` (comma-separated),
``memory_type``, ``metadata`` (JSON), ``created_at``/``updated_at`` (epoch seconds) with
``created_at_iso``/``updated_at_iso``, and in newer versions ``deleted_at`` (soft delete).

- content -> content; memory_type -> kind (session/conversation/... -> event,
  learning/insight/... -> lesson, anything else -> fact, the original kept in metadata)
- tags -> metadata["tags"]; metadata -> metadata; an ``importance`` in its metadata is used
- created_at / updated_at -> the same times; deleted_at -> archived_at
- content_hash seeds the memento id, so importing the same file twice adds nothing.

Its embeddings are not copied: memento re-embeds every memory with its own model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from .common import (
    ImportResult,
    clean_content,
    map_importance,
    map_kind,
    open_sqlite,
    parse_json_object,
    parse_tags,
    parse_time,
    record,
    stable_id,
    table_columns,
    write,
)

if TYPE_CHECKING:
    from ..memory import Memory

FORMAT = "mcp-memory-service"


def is_mcp_memory_service(columns: list[str]) -> bool:
    names = {c.lower() for c in columns}
    return {"content", "content_hash"} <= names


def read_mcp_memory_service(path: Path) -> ImportResult:
    """Read the memories of an mcp-memory-service database without writing anything."""
    result = ImportResult(FORMAT, path)
    conn = open_sqlite(path)
    try:
        columns = table_columns(conn, "memories")
        if not is_mcp_memory_service(columns):
            raise InvalidInputError(
                f"{path} has no mcp-memory-service memories table (content, content_hash): "
                "try --from pmb"
            )
        order = "created_at, rowid" if "created_at" in columns else "rowid"
        for n, row in enumerate(conn.execute(f"SELECT * FROM memories ORDER BY {order}"), 1):
            _add_row(result, dict(row), f"memories row {n}")
    finally:
        conn.close()
    return result


def _add_row(result: ImportResult, row: dict[str, Any], label: str) -> None:
    content = clean_content(row.get("content"))
    if content is None:
        result.skipped.append(f"{label}: empty or oversized content")
        return
    kind, original_kind = map_kind(row.get("memory_type"))
    metadata = parse_json_object(row.get("metadata"))
    tags = parse_tags(row.get("tags"))
    if tags:
        metadata["tags"] = tags
    if original_kind:
        metadata["memory_type"] = original_kind
    if row.get("content_hash"):
        metadata["content_hash"] = row["content_hash"]
    created = parse_time(row.get("created_at")) or parse_time(row.get("created_at_iso"))
    updated = parse_time(row.get("updated_at")) or parse_time(row.get("updated_at_iso"))
    result.records.append(
        record(
            id=stable_id(FORMAT, row.get("content_hash") or content, created_at=created),
            content=content,
            kind=kind,
            importance=map_importance(metadata.get("importance")),
            metadata=metadata,
            source=FORMAT,
            created_at=created,
            updated_at=updated,
            archived_at=parse_time(row.get("deleted_at")),
        )
    )
    result.labels.append(label)


def import_mcp_memory_service(
    memory: Memory,
    path: str | Path,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import an mcp-memory-service SQLite file into ``memory``."""
    return write(memory, read_mcp_memory_service(Path(path)), dry_run, progress)
