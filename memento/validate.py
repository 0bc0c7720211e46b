"""Checks on everything a caller hands to memento, shared by the API, the CLI and MCP.

Each function returns the normalised value or raises :class:`InvalidInputError` whose
message says what is wrong and what to do.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import InvalidInputError
from .records import KINDS

MAX_CONTENT_CHARS = 100_000
MAX_SUBJECT_KEY_CHARS = 256
# Results per listing call (list, recent, browse): a whole small store in one page.
MAX_LIMIT = 1000
# Results per recall query: recall pools max(50, 2 * limit) candidates and assesses them
# one by one, so its cost grows with limit; nobody reads past the first hundred answers to
# one question (the hooks use 12, the tools default to 10).
MAX_RECALL_LIMIT = 100
# Queries per recall_many call: each is embedded and searched (~20 ms each here), and its
# results are held until the call returns. 1,000 queries used to be accepted: 400 queries
# matching one 200 KB memory made a 158 MB MCP answer. An agent's batch of questions is a
# handful; 20 bounds one call to 2,000 results.
MAX_QUERIES = 20
# Metadata nests at most this many objects and lists deep (the object itself is level 1).
# Real metadata is shallow (the importers write 2 levels); Python's json, copy and the
# redaction walk recurse once or more per level against a recursion limit of 1,000, so a
# memory nested 495 levels was stored and then broke every export. 32 is far from both.
MAX_METADATA_DEPTH = 32


def _check_text(value: str, name: str) -> None:
    if "\x00" in value:
        raise InvalidInputError(f"{name} contains a NUL character (\\x00): remove it and retry")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{name} is not valid Unicode (lone surrogate at position {exc.start}): "
            "send UTF-8 text"
        ) from None


def content(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"content must be text, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError("content is empty: give the text to remember")
    if len(value) > MAX_CONTENT_CHARS:
        raise InvalidInputError(
            f"content is {len(value):,} characters, over the limit of {MAX_CONTENT_CHARS:,}: "
            "split it into several memories"
        )
    _check_text(value, "content")
    return value.strip()


def kind(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in KINDS:
        return value.strip().lower()
    shown = value if isinstance(value, str) else type(value).__name__
    raise InvalidInputError(f"kind {str(shown)[:40]!r} is not valid: use one of {', '.join(KINDS)}")


def optional_kind(value: object) -> str | None:
    return None if value is None or value == "" else kind(value)


def importance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(
            f"importance must be a number between 0 and 1, got {type(value).__name__}"
        )
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise InvalidInputError(f"importance must be between 0 and 1, got {value!r}")
    return number


def subject_key(value: object) -> str | None:
    """A subject key: dotted segments such as ``user.editor.theme``. Keys are compared
    lower-cased (``User.Theme`` is ``user.theme``, as the importers have always stored
    them); whitespace inside a key and empty segments (``a..b``, a leading or trailing dot)
    are refused, so a key is always one word a prefix can match by segments."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"subject_key must be text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_SUBJECT_KEY_CHARS:
        raise InvalidInputError(
            f"subject_key is {len(text)} characters, over {MAX_SUBJECT_KEY_CHARS}: "
            "use a short dotted key such as user.theme"
        )
    _check_text(text, "subject_key")
    _check_key(text, "subject_key", trailing_dot=False)
    return text.lower()


def _check_key(text: str, name: str, trailing_dot: bool) -> None:
    if any(ch.isspace() for ch in text):
        raise InvalidInputError(
            f"{name} {text[:60]!r} contains whitespace: use dotted words such as "
            "project.shop.test_command"
        )
    parts = text.split(".")
    if trailing_dot and text.endswith("."):
        parts = parts[:-1]
    if any(not part for part in parts):
        raise InvalidInputError(
            f"{name} {text[:60]!r} has an empty segment: use dotted words such as "
            "project.shop.test_command"
        )


def prefix(value: object, name: str = "subject_key prefix") -> str:
    """A subject-key prefix, matched by whole segments (``project.shop`` is that key and
    ``project.shop.*``); lower-cased like keys; may end with a dot."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be text, got {type(value).__name__}")
    _check_text(value, name)
    text = value.strip()
    if text:
        _check_key(text, name, trailing_dot=True)
    return text.lower()


def metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"metadata must be a JSON object (a dict), got {type(value).__name__}"
        )
    _check_tree(value)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metadata is not JSON-serialisable ({exc}): use strings, numbers, booleans, "
            "lists and objects"
        ) from None
    except RecursionError:  # unreachable after _check_tree; kept for a self-reference
        raise InvalidInputError(
            f"metadata is nested too deeply: keep it within {MAX_METADATA_DEPTH} levels"
        ) from None
    if len(text) > MAX_CONTENT_CHARS:
        raise InvalidInputError(f"metadata is over {MAX_CONTENT_CHARS:,} characters as JSON")
    return json.loads(text)


def json_depth(value: object, stop: int = MAX_METADATA_DEPTH + 1) -> int:
    """How many objects and lists deep ``value`` nests (a scalar is 0), counted without
    recursion; counting stops at ``stop``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest >= stop:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_tree(value: dict[str, Any]) -> None:
    """Metadata's nesting depth, and every key and text value (the rule content follows:
    no NUL, no lone surrogate), checked without recursion. A walk that meets more values
    than fit in MAX_CONTENT_CHARS of JSON (one character each at least) stops: the same
    list referenced a thousand times at every level would otherwise never end."""
    stack: list[tuple[object, int, str]] = [(value, 1, "metadata")]
    seen = 0
    while stack:
        item, depth, where = stack.pop()
        seen += 1
        if seen > MAX_CONTENT_CHARS:
            raise InvalidInputError(f"metadata is over {MAX_CONTENT_CHARS:,} characters as JSON")
        if isinstance(item, str):
            _check_text(item, where)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_METADATA_DEPTH:
            raise InvalidInputError(
                f"metadata is nested too deeply (over {MAX_METADATA_DEPTH} levels, at "
                f"{where[:60]}...): flatten it"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}"[:200] if isinstance(key, str) else where
                if isinstance(key, str):
                    _check_text(key, f"{where} key {key[:40]!r}")
                stack.append((child, depth + 1, name))
        else:
            stack.extend((child, depth + 1, f"{where}[{n}]") for n, child in enumerate(item))


def source(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("source must be a non-empty string such as 'api' or 'cli'")
    _check_text(value, "source")
    return value.strip()[:100]


def limit(value: object, name: str = "limit", maximum: int = MAX_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            f"{name} must be a whole number between 1 and {maximum}, got {str(value)[:40]!r}"
        )
    if not 1 <= value <= maximum:
        raise InvalidInputError(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def queries(value: object) -> list[str]:
    """The queries of one recall_many call: a list of 1 to MAX_QUERIES query strings."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidInputError("recall_many takes a list of query strings")
    if len(value) > MAX_QUERIES:
        raise InvalidInputError(
            f"{len(value):,} queries in one call, over the limit of {MAX_QUERIES}: "
            "split them into several calls"
        )
    return [query(q) for q in value]


def query(value: object) -> str:
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"query must be text, got {type(value).__name__}")
    if not value or not value.strip():
        raise InvalidInputError("query is empty: give words to search for")
    _check_text(value, "query")
    return value.strip()[:MAX_CONTENT_CHARS]


def min_score(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidInputError(f"min_score must be a number, got {value!r}")
    return float(value)
