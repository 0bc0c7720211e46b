"""JSON lines: one JSON value a line, the format of ``memento export`` and of the MCP
memory server's ``memory.json``. One reader for both, so a bad line reads the same."""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidInputError
from .validate import MAX_METADATA_DEPTH


def read_jsonl(text: str, where: str = "") -> list[tuple[str, Any]]:
    """``("line N", value)`` for every line of ``text`` that is not blank. A line that is
    not JSON raises InvalidInputError naming it (after ``where``, e.g. the file's name):
    nothing is read until every line is, so nothing is imported."""
    values: list[tuple[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append((f"line {n}", json.loads(line)))
        except ValueError as exc:
            raise InvalidInputError(
                f"{where}line {n}: not valid JSON ({exc.msg}); nothing was imported"
            ) from None
        except RecursionError:  # past Python's parser: far past the metadata depth limit
            raise InvalidInputError(
                f"{where}line {n}: nested too deeply to read (metadata may nest at most "
                f"{MAX_METADATA_DEPTH} levels); nothing was imported"
            ) from None
    return values
