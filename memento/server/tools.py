"""The ``memento_*`` tools: plain typed functions over :class:`Memory`, registered by
``create_server``. Every rule lives in ``Memory``; a tool translates arguments in and records
out, and a :class:`MementoError` becomes a ``ToolError`` (the one exception whose message
reaches the client)."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from ..errors import MementoError
from ..memory import Memory
from ..records import KINDS
from .schemas import (
    ForgetPrefixResult,
    ForgetResult,
    Importance,
    IncludeArchived,
    KindFilter,
    KindParam,
    Limit,
    MemoryId,
    MemoryItem,
    MemoryList,
    Metadata,
    MinScore,
    PrefixFilter,
    RecallManyResult,
    RecallResult,
    Since,
    Stats,
    StoredMemory,
    StoreItem,
    StoreManyResult,
    SubjectKey,
    Until,
    as_item,
    as_recalled,
    as_stored,
)

log = logging.getLogger("memento.server")

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


def _memory(ctx: Context) -> Memory:
    state: State = ctx.request_context.lifespan_context
    if state.memory is None:
        raise ToolError(state.error or "memory is not open")
    return state.memory


T = TypeVar("T", bound=Callable[..., Any])


def tool_errors(fn: T) -> T:
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
    return as_stored(record)


def memento_store_many(
    ctx: Context,
    items: Annotated[list[StoreItem], Field(description="The memories to store")],
) -> StoreManyResult:
    """Store several memories at once, atomically: if any item is invalid nothing is stored
    and the error names the item."""
    records = _memory(ctx).store_many(item.model_dump(exclude_none=True) for item in items)
    stored = [as_stored(r) for r in records]
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
    return RecallResult(query=query, count=len(records), memories=[as_recalled(r) for r in records])


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
            RecallResult(query=q, count=len(rs), memories=[as_recalled(r) for r in rs])
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
    return as_stored(record)


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
        memory=MemoryItem(**as_item(record)),
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
    return MemoryList(count=len(records), memories=[MemoryItem(**as_item(r)) for r in records])


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
    return MemoryList(count=len(records), memories=[MemoryItem(**as_item(r)) for r in records])


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
