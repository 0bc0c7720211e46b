"""The ``memento`` command line: a thin face over :class:`memento.Memory`.

Every rule lives in ``Memory``; commands parse, call and print. A ``MementoError`` becomes
one line on stderr (``Error: ...``) and exit status 1; usage errors exit 2. Nothing here
imports numpy, onnxruntime or the MCP SDK at module level, so ``memento --help``,
``memento list`` and ``memento stats`` start fast.

``base`` holds the group and the helpers every command shares; each other module adds its
commands to the group when imported. The Claude Code hooks, which run in a new process on
every prompt, skip all of that (:func:`main`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["_embedders", "cli", "main", "shared_embedder"]


def main(argv: Sequence[str] | None = None) -> None:
    """The ``memento`` entry point: never a traceback for an expected error."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if "hook" in args:
        from ..integrations.claude_code.hooks import main as hook

        hook(args)  # exits when the command line is a hook's
    _commands()
    from .base import main as run

    run(args)


def _commands() -> None:
    from . import commands, context, copy, install, tokens  # noqa: F401  (registers the commands)


def __getattr__(name: str) -> Any:
    if name in ("cli", "_embedders", "shared_embedder"):
        _commands()
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
