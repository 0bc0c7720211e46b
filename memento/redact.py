"""Secrets never reach the database file: they are replaced by a typed marker such as
``[REDACTED:github-token]`` before a memory is stored. ``MEMENTO_REDACT=off`` disables it."""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
    ),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "aws-secret-key",
        re.compile(r"(?i)(aws_?secret_?access_?key\s*[=:]\s*['\"]?)[A-Za-z0-9/+=]{40}"),
    ),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("openai-key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    (
        "password",
        re.compile(
            r"(?i)\b((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)"
            r"\s*[=:]\s*)(?!\[REDACTED:)(\"[^\"\n]+\"|'[^'\n]+'|[^\s,;]+)"
        ),
    ),
]


def redact(text: str) -> tuple[str, tuple[str, ...]]:
    """The text with secrets replaced, and the sorted kinds of secret that were found."""
    found: set[str] = set()
    for name, pattern in _PATTERNS:
        marker = f"[REDACTED:{name}]"

        def replace(
            match: re.Match[str], name: str = name, marker: str = marker, pattern=pattern
        ) -> str:
            found.add(name)
            if pattern.groups:  # keep the "password=" part, replace only the value
                return match.group(1) + marker
            return marker

        text = pattern.sub(replace, text)
    return text, tuple(sorted(found))


def redact_json(value: object) -> tuple[object, tuple[str, ...]]:
    """``value`` (JSON-ready metadata) with secrets redacted in every string, keys included,
    and the sorted kinds of secret that were found."""
    found: set[str] = set()

    def walk(item: object) -> object:
        if isinstance(item, str):
            text, kinds = redact(item)
            found.update(kinds)
            return text
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item

    return walk(value), tuple(sorted(found))
