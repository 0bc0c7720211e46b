"""Import the knowledge graph of the official MCP memory server (``memory.json``).

The server (modelcontextprotocol/servers, ``src/memory``) writes one JSON object a line::

    {"type": "entity", "name": "John_Smith", "entityType": "person",
     "observations": ["Speaks fluent Spanish"]}
    {"type": "relation", "from": "John_Smith", "to": "Anthropic", "relationType": "works_at"}

Older versions wrote one object ``{"entities": [...], "relations": [...]}``; both are read.

- Each observation becomes a fact ``"<name>: <observation>"`` under the subject key
  ``<name>.<n>`` (the name lower-cased, spaces as ``_``; n counts from 1), so
  ``memento search --prefix john_smith.`` finds everything about one entity.
- An entity without observations becomes the fact ``"<name> is a <entityType>"``
  (key ``<name>.type``).
- A relation becomes the fact ``"<from> <relation type> <to>"`` under
  ``<from>.<relationType>.<to>``.

The entity name, its type and the relation are kept in metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..jsonl import read_jsonl
from .common import ImportResult, clean_content, clean_key, record, stable_id, write

if TYPE_CHECKING:
    from ..memory import Memory

FORMAT = "mcp-memory-json"
_SEPARATORS = re.compile(r"[\s./]+")


def slug(name: str) -> str:
    """A subject-key part from an entity name: lower case, spaces and dots as ``_``."""
    return _SEPARATORS.sub("_", name.strip().lower()).strip("_") or "entity"


def read_objects(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(label, object) for every entity and relation in the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text: is it really a memory.json?") from None
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            whole = json.loads(stripped)
        except ValueError:
            whole = None
        if isinstance(whole, dict) and ("entities" in whole or "relations" in whole):
            return _graph_objects(whole)
    objects = []
    for label, obj in read_jsonl(text, f"{path} "):
        if not isinstance(obj, dict):
            raise InvalidInputError(f"{path} {label}: expected a JSON object")
        objects.append((label, obj))
    return objects


def _graph_objects(whole: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for n, entity in enumerate(whole.get("entities") or [], 1):
        if isinstance(entity, dict):
            objects.append((f"entity {n}", {"type": "entity", **entity}))
    for n, relation in enumerate(whole.get("relations") or [], 1):
        if isinstance(relation, dict):
            objects.append((f"relation {n}", {"type": "relation", **relation}))
    return objects


def read_mcp_memory_json(path: Path) -> ImportResult:
    """Read the entities and relations of a memory.json without writing anything."""
    result = ImportResult(FORMAT, path)
    for label, obj in read_objects(path):
        kind = obj.get("type")
        if kind == "entity":
            _add_entity(result, label, obj)
        elif kind == "relation":
            _add_relation(result, label, obj)
        else:
            result.skipped.append(f"{label}: type {kind!r} is neither entity nor relation")
    return result


def _add(result: ImportResult, label: str, content: str | None, key: str, meta: dict) -> None:
    if content is None:
        result.skipped.append(f"{label}: empty or oversized text")
        return
    result.records.append(
        record(
            id=stable_id(FORMAT, key, content),
            content=content,
            kind="fact",
            subject_key=clean_key(key),
            metadata=meta,
            source=FORMAT,
        )
    )
    result.labels.append(label)


def _add_entity(result: ImportResult, label: str, obj: dict[str, Any]) -> None:
    name = str(obj.get("name") or "").strip()
    if not name:
        result.skipped.append(f"{label}: entity without a name")
        return
    entity_type = str(obj.get("entityType") or "entity").strip()
    meta = {"entity": name, "entity_type": entity_type}
    observations = [o for o in obj.get("observations") or [] if isinstance(o, str) and o.strip()]
    if not observations:
        _add(result, label, clean_content(f"{name} is a {entity_type}"), f"{slug(name)}.type", meta)
    for n, observation in enumerate(observations, 1):
        content = clean_content(f"{name}: {observation.strip()}")
        _add(result, f"{label} observation {n}", content, f"{slug(name)}.{n}", meta)


def _add_relation(result: ImportResult, label: str, obj: dict[str, Any]) -> None:
    source, target = str(obj.get("from") or "").strip(), str(obj.get("to") or "").strip()
    relation = str(obj.get("relationType") or "").strip()
    if not (source and target and relation):
        result.skipped.append(f"{label}: relation needs from, to and relationType")
        return
    content = clean_content(f"{source} {relation.replace('_', ' ')} {target}")
    key = f"{slug(source)}.{slug(relation)}.{slug(target)}"
    meta = {"relation": {"from": source, "to": target, "relationType": relation}}
    _add(result, label, content, key, meta)


def import_mcp_memory_json(
    memory: Memory,
    path: str | Path,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import the MCP memory server's memory.json into ``memory``."""
    return write(memory, read_mcp_memory_json(Path(path)), dry_run, progress)
