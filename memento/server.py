"""The MCP server: the ten ``memento_*`` tools over stdio, a thin face over :class:`Memory`.

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

import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .errors import MementoError
from .memory import Memory
from .records import KINDS, MemoryRecord
from .validate import MAX_LIMIT

log = logging.getLogger("memento.server")

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

# ---- structured results -----------------------------------------------------------


class MemoryItem(BaseModel):
    """One memory as stored."""

    id: str = Field(description="Full 26-character id; any unique prefix of 8+ works too")
    content: str
    kind: Literal["fact", "event", "lesson"]
    importance: float = Field(description="0 to 1")
    subject_key: str | None = Field(description="Dotted key such as user.theme, if any")
    metadata: dict[str, Any]
    source: str
    created_at: str = Field(description="ISO-8601 UTC")
    updated_at: str = Field(description="ISO-8601 UTC")
    archived_at: str | None = Field(description="Set when forgotten (soft); hidden from recall")


class RecalledMemory(MemoryItem):
    score: float = Field(description="Relevance, higher is better")


class StoredMemory(MemoryItem):
    action: Literal["created", "updated", "deduplicated"] = Field(
        description="created: a new memory; updated: the live memory with this subject_key "
        "(or this id) was changed in place; deduplicated: a near-identical memory of the "
        "same kind already existed and is returned instead"
    )
    redactions: list[str] = Field(
        description="Kinds of secret replaced by a marker before storing (empty if none)"
    )


class RecallResult(BaseModel):
    query: str
    count: int
    memories: list[RecalledMemory] = Field(description="Best first")


class RecallManyResult(BaseModel):
    results: list[RecallResult] = Field(description="One per query, in the order given")


class StoreManyResult(BaseModel):
    count: int
    created: int
    updated: int
    deduplicated: int
    memories: list[StoredMemory] = Field(description="One per item, in the order given")


class MemoryList(BaseModel):
    count: int
    memories: list[MemoryItem]


class ForgetResult(BaseModel):
    id: str
    status: Literal["archived", "deleted"] = Field(
        description="archived: hidden from recall, recoverable; deleted: gone for good"
    )
    memory: MemoryItem = Field(description="The memory as it is now (or was, if deleted)")


class ForgetPrefixResult(BaseModel):
    prefix: str
    status: Literal["archived", "deleted"]
    count: int = Field(description="How many memories were affected")


class KindCounts(BaseModel):
    fact: int
    event: int
    lesson: int


class Stats(BaseModel):
    path: str
    total: int = Field(description="All memories, archived included")
    live: int
    by_kind: KindCounts = Field(description="Live memories by kind")
    archived: int
    schema_version: int
    model: str | None = Field(description="Embedding model of the stored vectors")
    dimension: int | None
    file_size_bytes: int


def _item(record: MemoryRecord) -> dict[str, Any]:
    data = record.to_dict()
    for key in ("score", "action", "redactions"):
        data.pop(key)
    return data


def _recalled(record: MemoryRecord) -> RecalledMemory:
    return RecalledMemory(**_item(record), score=record.score or 0.0)


def _stored(record: MemoryRecord) -> StoredMemory:
    return StoredMemory(
        **_item(record),
        action=record.action or "updated",
        redactions=list(record.redactions),
    )


# ---- parameters ---------------------------------------------------------------------

# Kind and importance are advertised in the schema but checked by Memory, so a bad value
# gets memento's own one-line message rather than a pydantic dump.
KindParam = Annotated[
    str,
    Field(
        description="fact (a durable truth), event (something that happened, dated) or "
        "lesson (a rule learned)",
        json_schema_extra={"enum": list(KINDS)},
    ),
]
Importance = Annotated[
    float,
    Field(
        description="How much this matters, 0 to 1",
        json_schema_extra={"minimum": 0, "maximum": 1},
    ),
]
SubjectKey = Annotated[
    str | None,
    Field(
        description="Dotted key naming what this is about, e.g. user.editor.theme or "
        "project.memento.test_command. A live memory with the same key is updated in place."
    ),
]
Metadata = Annotated[
    dict[str, Any] | None, Field(description="Free-form JSON object kept with the memory")
]
MemoryId = Annotated[str, Field(description="Memory id, or a unique prefix of 8+ characters")]
Limit = Annotated[
    int,
    Field(
        description=f"Maximum number of results (1 to {MAX_LIMIT})",
        json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
    ),
]
KindFilter = Annotated[
    str | list[str] | None,
    Field(description="Only these kinds: fact, event, lesson (one or a list)"),
]
PrefixFilter = Annotated[
    str | None, Field(description="Only memories whose subject_key starts with this")
]
Since = Annotated[
    str | None,
    Field(description="Only memories created at or after: ISO date/time or an age (7d, 12h)"),
]
Until = Annotated[
    str | None,
    Field(description="Only memories created at or before: ISO date/time or an age (7d, 12h)"),
]
IncludeArchived = Annotated[bool, Field(description="Also search forgotten (archived) memories")]
MinScore = Annotated[
    float | None, Field(description="Drop results scoring below this (default: keep all)")
]


class StoreItem(BaseModel):
    """One memory to store in a batch."""

    model_config = ConfigDict(extra="forbid")

    content: Annotated[str, Field(description="The text to remember")]
    kind: KindParam = "fact"
    importance: Importance = 0.5
    subject_key: SubjectKey = None
    metadata: Metadata = None
    source: Annotated[str, Field(description="Where it came from")] = "mcp"
    created_at: Annotated[
        str | None, Field(description="When it happened (ISO-8601); default now")
    ] = None


# ---- the server ---------------------------------------------------------------------


@dataclass
class State:
    """What the lifespan yields: the open memory, or why it could not be opened."""

    memory: Memory | None
    error: str | None = None
    warming: bool = False

    def warm_up(self) -> None:
        """Load the embedding model in a background thread, once, so the first recall does
        not pay for it. A tool call that comes first loads it itself (the embedder locks)."""
        if self.memory is None or self.warming:
            return
        self.warming = True
        threading.Thread(
            target=_load_model, args=(self.memory,), name="memento-model", daemon=True
        ).start()


def _load_model(memory: Memory) -> None:
    try:
        memory.embedder.load()
    except MementoError as exc:  # the first tool that embeds reports it to the client
        log.warning("embedding model not loaded: %s", exc)


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


def _memory(ctx: Context) -> Memory:
    state: State = ctx.request_context.lifespan_context
    if state.memory is None:
        raise ToolError(state.error or "memory is not open")
    return state.memory


T = TypeVar("T", bound=Callable[..., Any])


def _tool_errors(fn: T) -> T:
    """Raise memento's errors as ToolError, the one exception whose message reaches the
    client; anything else stays a crash the SDK reports without details."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MementoError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def memento_store(
    ctx: Context,
    content: Annotated[str, Field(description="The text to remember; make it stand alone")],
    kind: KindParam = "fact",
    importance: Importance = 0.5,
    subject_key: SubjectKey = None,
    metadata: Metadata = None,
    source: Annotated[str, Field(description="Where it came from")] = "mcp",
    created_at: Annotated[
        str | None,
        Field(description="When it happened (ISO-8601, e.g. 2026-11-24); default now"),
    ] = None,
) -> StoredMemory:
    """Remember one thing. With a subject_key a live memory already has, that memory is
    updated in place (same id). A fact or lesson that nearly repeats an existing one returns
    the existing memory (action "deduplicated")."""
    record = _memory(ctx).store(
        content,
        kind=kind,
        importance=importance,
        subject_key=subject_key,
        metadata=metadata,
        source=source,
        created_at=created_at,
    )
    return _stored(record)


def memento_store_many(
    ctx: Context,
    items: Annotated[list[StoreItem], Field(description="The memories to store")],
) -> StoreManyResult:
    """Store several memories at once, atomically: if any item is invalid nothing is stored
    and the error names the item."""
    records = _memory(ctx).store_many(item.model_dump(exclude_none=True) for item in items)
    stored = [_stored(r) for r in records]
    return StoreManyResult(
        count=len(stored),
        created=sum(s.action == "created" for s in stored),
        updated=sum(s.action == "updated" for s in stored),
        deduplicated=sum(s.action == "deduplicated" for s in stored),
        memories=stored,
    )


def memento_recall(
    ctx: Context,
    query: Annotated[str, Field(description="What you want to know, in plain words")],
    limit: Limit = 10,
    kind: KindFilter = None,
    subject_key_prefix: PrefixFilter = None,
    since: Since = None,
    until: Until = None,
    include_archived: IncludeArchived = False,
    min_score: MinScore = None,
) -> RecallResult:
    """Search memory by meaning and by keyword; best matches first, each with a score.
    Call this before asking the user something they may have told you before."""
    records = _memory(ctx).recall(
        query,
        limit=limit,
        kind=kind,
        subject_key_prefix=subject_key_prefix,
        since=since,
        until=until,
        include_archived=include_archived,
        min_score=min_score,
    )
    return RecallResult(query=query, count=len(records), memories=[_recalled(r) for r in records])


def memento_recall_many(
    ctx: Context,
    queries: Annotated[list[str], Field(description="Several questions, answered separately")],
    limit: Limit = 10,
    kind: KindFilter = None,
    subject_key_prefix: PrefixFilter = None,
    since: Since = None,
    until: Until = None,
    include_archived: IncludeArchived = False,
    min_score: MinScore = None,
) -> RecallManyResult:
    """memento_recall for several queries in one call (the same filters apply to each)."""
    batches = _memory(ctx).recall_many(
        queries,
        limit=limit,
        kind=kind,
        subject_key_prefix=subject_key_prefix,
        since=since,
        until=until,
        include_archived=include_archived,
        min_score=min_score,
    )
    return RecallManyResult(
        results=[
            RecallResult(query=q, count=len(rs), memories=[_recalled(r) for r in rs])
            for q, rs in zip(queries, batches)
        ]
    )


def memento_update(
    ctx: Context,
    id: MemoryId,
    content: Annotated[str | None, Field(description="New text (re-embedded)")] = None,
    importance: Annotated[
        float | None,
        Field(description="New importance, 0 to 1", json_schema_extra={"minimum": 0, "maximum": 1}),
    ] = None,
    metadata: Annotated[
        dict[str, Any] | None, Field(description="New metadata (replaces the old)")
    ] = None,
    kind: Annotated[
        str | None,
        Field(
            description="New kind: fact, event or lesson", json_schema_extra={"enum": list(KINDS)}
        ),
    ] = None,
    subject_key: Annotated[str | None, Field(description='New subject_key; "" removes it')] = None,
) -> StoredMemory:
    """Change one memory in place (same id). Prefer this to storing a second, contradicting
    memory when something changes."""
    record = _memory(ctx).update(
        id,
        content=content,
        importance=importance,
        metadata=metadata,
        kind=kind,
        subject_key=subject_key,
    )
    return _stored(record)


def memento_forget(
    ctx: Context,
    id: MemoryId,
    hard: Annotated[
        bool, Field(description="Delete for good instead of archiving (cannot be undone)")
    ] = False,
) -> ForgetResult:
    """Forget one memory: archive it (hidden from recall, recoverable), or with hard=true
    delete it from the database for good."""
    record = _memory(ctx).forget(id, hard=hard)
    return ForgetResult(
        id=record.id,
        status="deleted" if hard else "archived",
        memory=MemoryItem(**_item(record)),
    )


def memento_forget_prefix(
    ctx: Context,
    prefix: Annotated[
        str, Field(description="Start of the subject keys to forget, e.g. project.old.")
    ],
    hard: Annotated[
        bool, Field(description="Delete for good instead of archiving (cannot be undone)")
    ] = False,
) -> ForgetPrefixResult:
    """Forget every memory whose subject_key starts with prefix (archive, or hard=true to
    delete)."""
    count = _memory(ctx).forget_prefix(prefix, hard=hard)
    return ForgetPrefixResult(prefix=prefix, status="deleted" if hard else "archived", count=count)


def memento_recent(
    ctx: Context,
    limit: Limit = 10,
    kind: Annotated[
        str | None,
        Field(
            description="Only this kind: fact, event or lesson",
            json_schema_extra={"enum": list(KINDS)},
        ),
    ] = None,
    include_archived: IncludeArchived = False,
) -> MemoryList:
    """The newest memories first."""
    records = _memory(ctx).recent(limit=limit, kind=kind, include_archived=include_archived)
    return MemoryList(count=len(records), memories=[MemoryItem(**_item(r)) for r in records])


def memento_browse(
    ctx: Context,
    subject_key_prefix: Annotated[
        str, Field(description='Start of the subject keys to list, e.g. "user." ("" for all)')
    ] = "",
    limit: Limit = 100,
) -> MemoryList:
    """Live memories that have a subject_key starting with the prefix, sorted by key: what
    you know about the user ("user.") or a project ("project.<name>.")."""
    records = _memory(ctx).browse(subject_key_prefix, limit=limit)
    return MemoryList(count=len(records), memories=[MemoryItem(**_item(r)) for r in records])


def memento_stats(ctx: Context) -> Stats:
    """How many memories there are by kind, archived ones, the model, and the file size."""
    return Stats(**_memory(ctx).stats())


READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
WRITES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)

TOOLS: tuple[tuple[Callable[..., Any], ToolAnnotations], ...] = (
    (memento_store, WRITES),
    (memento_recall, READ_ONLY),
    (memento_update, WRITES),
    (memento_forget, DESTRUCTIVE),
    (memento_forget_prefix, DESTRUCTIVE),
    (memento_recent, READ_ONLY),
    (memento_browse, READ_ONLY),
    (memento_stats, READ_ONLY),
    (memento_store_many, WRITES),
    (memento_recall_many, READ_ONLY),
)


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
        server.add_tool(_tool_errors(fn), annotations=hints, structured_output=True)
    return server


def run(db_path: str | None = None) -> None:
    """Serve memento over stdio until the client closes the connection."""
    create_server(db_path).run("stdio")


if __name__ == "__main__":
    run()
