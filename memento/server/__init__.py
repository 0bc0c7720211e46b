"""The MCP server: the ``memento_*`` tools over stdio, a thin face over :class:`Memory`.

Run it with ``memento start`` (or ``python -m memento.server``); wire it into Claude Code
with ``claude mcp add memento -- memento start``. Every rule lives in :class:`Memory`;
this module only translates arguments in and records out. A :class:`MementoError` becomes
a ``ToolError`` so the client sees its message as an error result, and the server keeps
serving. Only protocol messages go to stdout: logs go to stderr.

The one open ``Memory`` lives in the server's lifespan. The ``initialize`` handshake never
waits for the embedding model: it is loaded in a background thread once the handshake is
done (a tool call that embeds before then waits for it).

Importing this module pulls in the MCP SDK (~0.7 s); no other memento module imports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import MCPServer

from .. import __version__
from ..errors import MementoError
from ..memory import Memory
from .tools import TOOLS, State, log, tool_errors

INSTRUCTIONS = """\
memento is your persistent memory: it outlives this conversation and is shared by every \
agent session on this machine. Use it so the user never has to tell you the same thing twice.

Before asking the user something they may have told you before (preferences, names, paths, \
decisions, how to run or deploy a project), call memento_recall first; use \
memento_recall_many for several questions at once. At the start of work on a project, \
memento_browse with subject_key_prefix "project.<name>." shows what you already know.

What to store (memento_store, or memento_store_many for several at once):
- kind "fact": a durable truth. Give it a subject_key naming what it is about: \
"user.<topic>" for the user (user.editor.theme, user.name, user.os), \
"project.<name>.<topic>" for a project (project.memento.test_command). Storing again with \
the same subject_key updates that memory in place, so a changed preference replaces the \
old one instead of contradicting it.
- kind "event": something that happened, with its date in the text and in created_at \
("2026-11-24: released v0.3; the migration failed once on Windows"). Events are never merged.
- kind "lesson": a rule learned the hard way, written as an instruction for next time \
("Always run the migrations before the tests in project X, or they fail with ...").
Write each memory so it stands alone: full names, no "he" or "this", one idea per memory. \
Set importance (0 to 1) higher for things that matter often or a lot. Never store secrets: \
tokens and passwords are redacted anyway.

Keep memory true: when something changes, memento_update the memory (or store it with the \
same subject_key) rather than adding a second, contradicting one. A fact or lesson that \
nearly repeats an existing one is deduplicated: the result's action says "deduplicated" and \
gives the existing id. memento_forget archives a memory that is wrong or obsolete \
(hard=true deletes it for good); memento_forget_prefix does that for a whole subject_key \
prefix. memento_recent shows the newest memories and memento_stats the counts.
"""


async def _warm_up_after_handshake(
    ctx: ServerRequestContext[State, Any], call_next: CallNext
) -> Any:
    """Start loading the model once the client has the ``initialize`` answer: loading it
    during the handshake (importing onnxruntime holds the GIL) delayed the answer (by
    ~0.1 s of ~1.5 s on a 2-core machine, median of 4)."""
    result = await call_next(ctx)
    if ctx.method == "notifications/initialized":
        ctx.lifespan_context.warm_up()
    return result


def create_server(db_path: str | None = None) -> MCPServer[State]:
    """The memento MCP server over the database at ``db_path`` (None: ``MEMENTO_PATH`` or
    the default path)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[State]) -> AsyncIterator[State]:
        try:
            memory = Memory(path=db_path)
        except MementoError as exc:
            # Keep serving so the agent sees why, rather than a server that will not start.
            log.error("cannot open memory: %s", exc)
            yield State(memory=None, error=str(exc))
            return
        try:
            yield State(memory=memory)
        finally:
            memory.close()

    server: MCPServer[State] = MCPServer(
        "memento",
        title="memento",
        description="Persistent, local-first memory for AI coding agents",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        middleware=[_warm_up_after_handshake],
        log_level="WARNING",
    )
    for fn, hints in TOOLS:
        server.add_tool(tool_errors(fn), annotations=hints, structured_output=True)
    return server


def run(db_path: str | None = None) -> None:
    """Serve memento over stdio until the client closes the connection."""
    create_server(db_path).run("stdio")

