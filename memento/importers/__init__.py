"""Importers from other memory stores, and detection of which one a file is.

=======================  ===========================================================
format                   source
=======================  ===========================================================
``pmb``                  a foreign SQLite memory database, columns mapped by name
``mcp-memory-json``      the official MCP memory server's ``memory.json``
``mcp-memory-service``   mcp-memory-service's SQLite file (its ``memories`` table)
=======================  ===========================================================

Every importer reads first, then writes with :meth:`Memory.import_records`: all records
are checked before any is written, ids are stable, so importing twice adds nothing.

>>> from memento import Memory
>>> from memento.importers import import_source
>>> import_source(Memory(), "memory.json").added
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from .common import ImportResult, open_sqlite, table_columns, write
from .mcp_memory_json import import_mcp_memory_json, read_mcp_memory_json
from .mcp_memory_service import (
    import_mcp_memory_service,
    is_mcp_memory_service,
    read_mcp_memory_service,
)
from .pmb import find_table, import_pmb, read_pmb

if TYPE_CHECKING:
    from ..memory import Memory

FORMATS = ("pmb", "mcp-memory-json", "mcp-memory-service")
READERS: dict[str, Callable[[Path], ImportResult]] = {
    "pmb": read_pmb,
    "mcp-memory-json": read_mcp_memory_json,
    "mcp-memory-service": read_mcp_memory_service,
}
SQLITE_MAGIC = b"SQLite format 3\x00"

__all__ = [
    "FORMATS",
    "ImportResult",
    "detect_format",
    "import_mcp_memory_json",
    "import_mcp_memory_service",
    "import_pmb",
    "import_source",
    "read_source",
]


def detect_format(path: str | Path) -> str:
    """The format of ``path``: a SQLite file with mcp-memory-service's ``memories`` table,
    another SQLite file with a content column (pmb), or JSON lines of entities and
    relations (mcp-memory-json). Raises InvalidInputError when it is none of them."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file: give the path of the store to import")
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(SQLITE_MAGIC):
        conn = open_sqlite(path)
        try:
            if is_mcp_memory_service(table_columns(conn, "memories")):
                return "mcp-memory-service"
            if find_table(conn) is not None:
                return "pmb"
        finally:
            conn.close()
        raise InvalidInputError(
            f"{path} is a SQLite file without a memories table memento can read"
        )
    first = next((line for line in head.decode("utf-8", "replace").splitlines() if line.strip()),
                 "")
    try:
        obj = json.loads(first)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        try:
            obj = json.loads(text) if text.startswith("{") else None
        except ValueError:
            obj = None
    if isinstance(obj, dict):
        if obj.get("type") in ("entity", "relation") or "entities" in obj:
            return "mcp-memory-json"
        if {"id", "content", "kind"} <= set(obj):
            raise InvalidInputError(
                f"{path} is a memento export: restore it with `memento import_data {path}`"
            )
    raise InvalidInputError(
        f"cannot tell what kind of memory store {path} is: name it with --from "
        f"({', '.join(FORMATS)})"
    )


def read_source(path: str | Path, format: str = "auto") -> ImportResult:
    """Read ``path`` in ``format`` (or the detected one) without writing anything."""
    path = Path(path)
    chosen = detect_format(path) if format == "auto" else format
    if chosen not in READERS:
        raise InvalidInputError(
            f"unknown import format {format!r}: use auto, {', '.join(FORMATS)}"
        )
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file: give the path of the store to import")
    result = READERS[chosen](path)
    # where each memory came from: the importer and the file's name (``source`` is shown by
    # `memento show` and kept in every version; the name, not the path, which may say more
    # about the machine than the memory needs)
    for item in result.records:
        item["source"] = f"{result.format}:{path.name}"[:100]
    return result


def import_source(
    memory: Memory,
    path: str | Path,
    format: str = "auto",
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import another memory store into ``memory`` (or, with ``dry_run``, only read it)."""
    return write(memory, read_source(path, format), dry_run, progress)
