"""The ``memento`` command line: a thin face over :class:`memento.Memory`.

Every rule lives in ``Memory``; commands parse, call and print. A ``MementoError`` becomes
one line on stderr (``Error: ...``) and exit status 1; usage errors exit 2. Nothing here
imports numpy, onnxruntime or the MCP SDK at module level, so ``memento --help``,
``memento list`` and ``memento stats`` start fast.

``base`` holds the group and the helpers every command shares; each other module adds its
commands to the group when imported.
"""

from __future__ import annotations

from . import commands, context, install  # noqa: F401  (registers the commands)
from .base import _embedders, cli, main, shared_embedder

__all__ = ["_embedders", "cli", "main", "shared_embedder"]
