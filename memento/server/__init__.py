"""The MCP server: the ``memento_*`` tools over stdio, a thin face over :class:`Memory`.

Run it with ``memento start`` (or ``python -m memento.server``); wire it into Claude Code
with ``claude mcp add memento -- memento start``. ``memento start --http`` serves the same
server over Streamable HTTP to many clients with bearer tokens (:mod:`.http`). Every rule
lives in :class:`Memory`; this module only translates arguments in and records out. A
:class:`MementoError` becomes a ``ToolError`` so the client sees its message as an error
result, and the server keeps serving. Only protocol messages go to stdout: logs go to stderr.

Besides the tools, clients without hooks get the context block (:meth:`Memory.context`) as
the resource ``memento://context`` and the prompt ``memento_context``.

The one open ``Memory`` lives in the server's lifespan. A client's current project is
pinned by ``memento start --project DIR``, else taken from the client's roots on the first
request that needs it (:class:`.tools.State`), else the server's working directory; over
HTTP a token bound to a project overrides all of these. The
``initialize`` handshake never waits for the embedding model: it is loaded in a background
thread once the handshake is done (a tool call that embeds before then waits for it).

Importing this module pulls in the MCP SDK (~0.7 s); no other memento module imports it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import ConfigDict, Field, ValidationError

from .. import __version__
from ..config import default_db_path, display_location
from ..errors import MementoError
from ..memory import Grant, Memory
from ..projects import Project, find_project
from .tools import TOOLS, State, grant_of, log, tool

INSTRUCTIONS = """\
memento is your persistent memory: it outlives this conversation and is shared by every \
agent session on this machine. Use it so the user never has to tell you the same thing twice.

When the Claude Code hooks are installed (`memento install claude-code`), the memories that \
matter arrive by themselves: a block at the start of the session and the relevant ones with \
each prompt, so you need not recall on every turn. Without hooks, read the resource \
memento://context (or the prompt memento_context) at the start of work. Either way, before \
asking the user something they may have told you before (preferences, names, paths, \
decisions, how to run or deploy a project) and not in what you were given, call \
memento_recall; memento_recall_many asks several questions at once. memento_browse with \
subject_key_prefix "project.<name>." lists what you know about a project. since/until take \
dates and phrases ("yesterday", "last week", "March 2026"); max_tokens asks for the best \
results that fit a token budget rather than a count. A changed memory keeps its earlier \
versions: memento_history shows what it said before, memento_browse with as_of what was \
believed at a past time.

Scopes: memories belong to the current project (the client's root folder, else the \
server's directory) or are global. A memory you store belongs to the current project, \
except facts with a user.* subject_key, which are global; pass scope "global" or "project" \
to choose. Recall, recent, browse and stats cover the current project plus the global \
memories; all_projects=true spans every project. Each memory shows its project ("global" \
for the shared ones).

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
When a stored fact or lesson comes back with "related" memories, one of them may say what \
the new one replaces: update it (memento_update) or forget it (memento_forget) rather than \
keeping both; better still, give facts a subject_key so a change replaces the old value.
Write each memory so it stands alone: full names, no "he" or "this", one idea per memory. \
Set importance (0 to 1) higher for things that matter often or a lot. Never store secrets: \
tokens and passwords are redacted anyway.

Keep memory true: when something changes, memento_update the memory (by its id) or store it \
with the same subject_key, rather than adding a second, contradicting one. A fact or lesson \
that nearly repeats an existing one is deduplicated: the result's action says \
"deduplicated" and gives the existing id. memento_forget archives a memory that is wrong or \
obsolete (hard=true deletes it for good); memento_forget_prefix does that for a whole \
subject_key prefix. memento_recent shows the newest memories and memento_stats the counts.

Tool results show one memory a line, [id kind subject_key @project date] content; recall \
adds each memory's relevance (0 to 1) after the date, and importance=, archived= or \
metadata= appear only when they say something. memento_update and memento_forget take an \
id as shown: the full one from tool results, or the 12-character one from the context \
block. min_score drops results less relevant than it (0.5 keeps the likely answers).
"""

CONTEXT_URI = "memento://context"


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


async def _current_project(ctx: ServerRequestContext[State, Any], call_next: CallNext) -> Any:
    """Settle the current project (the client's roots) before the first request that reads
    or writes memory, and again after the client says its roots changed."""
    state = ctx.lifespan_context
    if ctx.method == "notifications/roots/list_changed":
        state.roots_changed(ctx.session)
    elif ctx.method in READS_MEMORY:
        grant = grant_of(ctx.request)
        if grant is None or grant.project is None:  # a bound token decides the project
            await state.resolve_project(ctx.session)
        _client.set((ctx.session, grant))
    return await call_next(ctx)


# The client of the request being handled, for the resource and the prompt (the SDK hands a
# static resource no Context); worker threads inherit it (anyio copies the context).
_client: contextvars.ContextVar[tuple[Any, Grant | None]] = contextvars.ContextVar("client")


READS_MEMORY = frozenset({"tools/call", "resources/read", "prompts/get"})


class _Server(MCPServer[State]):
    """The SDK's server, with argument errors in one line. The SDK reports arguments that
    do not match a tool's schema with pydantic's multi-line text (``1 validation error for
    memento_storeArguments\ncontent\n  Field required [type=missing...] For further
    information visit https://errors.pydantic.dev/...``); an agent gets one line naming the
    argument and what to send instead."""

    #: The open memory, for a clean stop (set by create_server; None until the lifespan).
    memento_memory: Callable[[], Memory | None] = staticmethod(lambda: None)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            found = self._tool_manager.get_tool(name)
            schema = found.parameters if found is not None else {}
            raise ToolError(argument_errors(name, cause, schema)) from cause


def argument_errors(tool_name: str, error: ValidationError, schema: dict[str, Any]) -> str:
    """One line for the arguments pydantic refused: each argument, what was wrong, and what
    to send (its type and description from the tool's input schema)."""
    properties = schema.get("properties", {})
    parts = []
    for item in error.errors()[:5]:
        loc = [str(p) for p in item.get("loc", ())]
        name = loc[0] if loc else "arguments"
        where = ".".join(loc) or "arguments"
        spec = properties.get(name, {})
        wanted = _schema_type(spec)
        description = str(spec.get("description", "")).rstrip(".")
        if item.get("type") == "missing":
            what = f"{where} is missing"
        elif item.get("type") == "extra_forbidden":
            what = f"{where} is not an argument of {tool_name}"
        else:
            what = f"{where}: {str(item.get('msg', 'invalid')).rstrip('.')}"
        if wanted and item.get("type") != "extra_forbidden":
            what += f": send {wanted}" + (f" ({description})" if description else "")
        parts.append(what)
    more = len(error.errors()) - len(parts)
    line = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return f"{tool_name}: {line}"


def _schema_type(spec: dict[str, Any]) -> str:
    names = {
        "string": "text",
        "number": "a number",
        "integer": "a whole number",
        "boolean": "true or false",
        "object": "an object",
        "array": "a list",
    }
    options = spec.get("anyOf") or [spec]
    kinds = []
    for option in options:
        if "enum" in option:
            kinds.append(" or ".join(repr(v) for v in option["enum"]))
        elif option.get("type") in names:
            text = names[option["type"]]
            bounds = option if "minimum" in option else spec  # optional: bounds outside anyOf
            if option["type"] in ("number", "integer") and "minimum" in bounds:
                text += f" from {bounds['minimum']} to {bounds.get('maximum', '...')}"
            kinds.append(text)
    return " or ".join(dict.fromkeys(kinds))


def create_server(
    db_path: str | None = None,
    project: str | os.PathLike[str] | None = None,
    memory: Memory | None = None,
) -> MCPServer[State]:
    """The memento MCP server over the database at ``db_path`` (None: ``MEMENTO_PATH`` or
    the default path). ``project`` (a directory) pins the current project; without it, the
    client's roots choose it, else the server's working directory. ``memory``: a memory
    opened already (the HTTP server opens it to check its tokens before listening); it is
    warmed up at once, and closed when the server stops."""
    state: State | None = None

    @asynccontextmanager
    async def lifespan(_: MCPServer[State]) -> AsyncIterator[State]:
        nonlocal state
        opened = memory
        if opened is None:
            try:
                opened = Memory(path=db_path, project=project)
            except MementoError as exc:
                # Keep serving so the agent sees why, rather than a server that will not
                # start.
                log.error("cannot open memory: %s", exc)
                state = State(memory=None, error=str(exc))
                yield state
                return
        state = State(memory=opened, pinned=project is not None)
        if project is None:
            state.fallback = opened.project = _working_directory_project()
        if memory is not None:  # many clients will come: load the model before the first
            state.warm_up()
        try:
            yield state
        finally:
            # A stop during the warm-up waits for it: the interpreter exiting while the
            # loading thread is inside onnxruntime aborted the process ("terminate called
            # without an active exception", status -6) instead of exiting 143.
            state.wait_ready()
            opened.close()

    server: MCPServer[State] = _Server(
        "memento",
        title="memento",
        description="Persistent, local-first memory for AI coding agents",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        middleware=[_warm_up_after_handshake, _current_project],
        log_level="WARNING",
    )
    server.memento_memory = lambda: state.memory if state is not None else None
    for fn, hints in TOOLS:
        server.add_tool(tool(fn), annotations=hints, structured_output=True)
        _strict_arguments(server, fn.__name__)

    def block(topic: str | None) -> str:
        if state is None or state.memory is None:
            raise ResourceError(state.error if state and state.error else "memory is not open")
        session, grant = _client.get()
        try:
            memory = state.memory_for(session, grant)
            text = memory.context(prompt=topic).text
        except MementoError as exc:
            raise ResourceError(str(exc)) from exc
        if text:
            return text
        where = f"project {memory.project.name}" if memory.project else "any project"
        if topic:
            return f"# memento\nNothing remembered about {topic!r} in {where}.\n"
        return f"# memento\nNothing remembered yet for {where}.\n"

    @server.resource(
        CONTEXT_URI,
        name="context",
        title="memento: what you remember",
        description="What memento remembers for the current project: the user's "
        "preferences, the project's facts and lessons, its recent events (markdown, one "
        "memory a line with its id). Read it at the start of a session when no hook "
        "provides it.",
        mime_type="text/markdown",
    )
    def context_resource() -> str:
        return block(None)

    @server.prompt(
        name="memento_context",
        title="memento: recall context",
        description="Put what memento remembers in front of the agent: the session-start "
        "block for the current project, or with a topic only the memories relevant to it.",
    )
    def context_prompt(
        topic: Annotated[
            str | None, Field(description="What the work is about (default: everything)")
        ] = None,
    ) -> str:
        return block(topic or None)

    return server


def _strict_arguments(server: MCPServer[State], name: str) -> None:
    """Validate a tool's arguments strictly, as the API does: the SDK's arguments model
    coerces (``importance: true`` became 1.0, ``limit: "5"`` became 5) and ignores unknown
    arguments. Strict, ``true`` is not a number, ``"5"`` is not a whole number, and an
    unknown argument is an error naming it (``additionalProperties: false`` in the
    published schema says so up front). A JSON list or object sent as a string is still
    read (the SDK parses those before validation: some clients send them so)."""
    found = server._tool_manager.get_tool(name)
    assert found is not None
    loose = found.fn_metadata.arg_model
    strict = type(
        loose.__name__,
        (loose,),
        {"model_config": ConfigDict(strict=True, extra="forbid"), "__module__": __name__},
    )
    found.fn_metadata.arg_model = strict
    found.parameters = strict.model_json_schema(by_alias=True)


def _working_directory_project() -> Project | None:
    try:
        return find_project(os.getcwd())
    except (OSError, MementoError):  # a deleted working directory: no current project
        return None


# How long a stop signal waits for a write in progress to commit before the process exits.
STOP_GRACE_S = 5.0


def run(db_path: str | None = None, project: str | os.PathLike[str] | None = None) -> None:
    """Serve memento over stdio until the client closes the connection (``project`` pins
    the current project to a directory). SIGINT (Ctrl-C) and SIGTERM stop it at once, with
    status 130 or 143, after any write in progress has committed."""
    server = create_server(db_path, project)
    _stop_on_signals(server)
    if sys.stderr.isatty():
        where = display_location(
            db_path or os.environ.get("MEMENTO_PATH") or str(default_db_path())
        )
        print(
            f"memento MCP server on {where}: waiting for an MCP client on stdin; Ctrl-C to "
            "stop",
            file=sys.stderr,
            flush=True,
        )
    import anyio

    from .stdio import serve  # the SDK's stdio transport, with every request answered

    anyio.run(serve, server)


def _stop_on_signals(server: _Server) -> None:
    """Stop promptly on SIGINT and SIGTERM. The stdio transport reads stdin in a worker
    thread that no exception can interrupt (the first Ctrl-C used to do nothing, the second
    waited for Enter), so the process exits from the handler itself: first closing the
    memory, which waits (up to STOP_GRACE_S) for a write in progress to commit. Every write
    an agent was told succeeded is already committed."""

    def stop(signum: int, _frame: object) -> None:
        code = 128 + signum
        threading.Timer(STOP_GRACE_S, os._exit, (code,)).start()
        memory = server.memento_memory()
        if memory is not None:
            with contextlib.suppress(Exception):
                memory.close()
        os._exit(code)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
