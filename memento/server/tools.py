"""The ``memento_*`` tools: plain typed functions over :class:`Memory`, registered by
``create_server``. Every rule lives in ``Memory``; a tool translates arguments in and records
out, and a :class:`MementoError` becomes a ``ToolError`` (the one exception whose message
reaches the client).

A tool returns one of the result models of :mod:`.schemas`; :func:`tool` sends it as lean
structured content (no empty or default fields) and a compact text rendering of the same
data, rather than the SDK's default of the full model twice, once as indented JSON.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.session import ServerSession
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..errors import MementoError
from ..memory import Grant, Memory
from ..projects import Project, find_project
from ..records import KINDS, MemoryRecord
from .schemas import (
    AllProjects,
    Budget,
    Explain,
    ForgetPrefixResult,
    ForgetResult,
    HistoryResult,
    Importance,
    IncludeArchived,
    KindFilter,
    KindParam,
    Limit,
    MaxTokens,
    MemoryId,
    MemoryItem,
    MemoryList,
    Metadata,
    MinScore,
    PrefixFilter,
    Queries,
    QueryResult,
    RecalledMemory,
    RecallLimit,
    RecallManyResult,
    RecallResult,
    Scope,
    Since,
    Stats,
    StoredMemory,
    StoreItem,
    StoreManyResult,
    SubjectKey,
    Until,
    VersionItem,
)

log = logging.getLogger("memento.server")

# How long a client that offers roots gets to list them before the working directory is
# used instead: a client that advertises the capability and never answers must not hang a
# tool call.
ROOTS_TIMEOUT = 5.0

# The 2026-07-28 protocol deprecates roots, but the clients that run memento today (Claude
# Code, Cursor, VS Code) speak earlier versions and offer them; the warning says nothing to
# the user of the server.
warnings.filterwarnings("ignore", message="The roots capability is deprecated")

# ---- the server ---------------------------------------------------------------------


@dataclass
class State:
    """What the lifespan yields: the open memory (or why it could not be opened) and how
    each client's current project is chosen.

    A client's current project is, in order: the project its token is bound to (HTTP);
    ``--project DIR`` (``pinned``); the client's first ``file://`` root that is a directory
    here, asked on its first request that reads or writes memory (and again after
    ``notifications/roots/list_changed``); the server's working directory (``fallback``).
    Each connection has its own (an HTTP server serves many clients at once); each tool call
    works on a :meth:`Memory.granted` view of the one open memory with that project and
    the client's token, so there is one store and one loaded model per process."""

    memory: Memory | None
    error: str | None = None
    warming: bool = False
    pinned: bool = False
    fallback: Project | None = None
    # connection -> its project from roots; a connection absent has not been asked yet
    _roots: weakref.WeakKeyDictionary[Any, Project | None] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    _roots_lock: anyio.Lock = field(default_factory=anyio.Lock)
    ready: threading.Event = field(default_factory=threading.Event)

    def warm_up(self) -> None:
        """Load the embedding model in a background thread, once, so the first recall does
        not pay for it."""
        if self.memory is None or self.warming:
            return
        self.warming = True
        threading.Thread(
            target=_load_model, args=(self.memory, self.ready), name="memento-model",
            daemon=True,
        ).start()

    def wait_ready(self) -> None:
        """Wait for the warm-up to finish before touching memory. Two threads importing
        numpy at once break it for the whole process (seen here: "cannot import name
        '__cpu_features__' from partially initialized module", then "cannot load module
        more than once per process" on every later call), and the warm-up imports it (with
        onnxruntime) while a tool may import it for a search: so no tool runs during the
        warm-up. It lasts a few hundred milliseconds, once, right after the handshake."""
        if self.warming:
            self.ready.wait(WARM_UP_WAIT_S)

    def roots_changed(self, session: ServerSession) -> None:
        """The client's roots changed: ask again on its next request."""
        self._roots.pop(_connection(session), None)

    def project_of(self, session: ServerSession) -> Project | None:
        """The current project of the client on ``session`` (before its token's)."""
        if self.memory is None or self.pinned:
            return self.memory.project if self.memory else None
        return self._roots.get(_connection(session), self.fallback)

    async def resolve_project(self, session: ServerSession) -> None:
        """Settle the client's current project from its roots, if not done yet."""
        key = _connection(session)
        if self.memory is None or self.pinned or key in self._roots:
            return
        async with self._roots_lock:  # concurrent first calls wait for one answer
            if key in self._roots:
                return
            project = await _project_from_roots(session)
            self._roots[key] = project or self.fallback

    def memory_for(self, session: ServerSession, grant: Grant | None) -> Memory:
        """The open memory as this client sees it (its project, its token's limits)."""
        if self.memory is None:
            raise ToolError(self.error or "memory is not open")
        self.wait_ready()
        return self.memory.granted(grant, self.project_of(session))


def _connection(session: ServerSession) -> Any:
    """What identifies a client's connection. The SDK makes a ``ServerSession`` per
    request and keeps the per-client state on its connection object (public on the SDK's
    ``Context.connection``, which the runner does not hand tools yet)."""
    return getattr(session, "_connection", session)


def grant_of(request: Any) -> Grant | None:
    """The grant the HTTP server's bearer check put on ``request`` (None on stdio)."""
    scope = getattr(request, "scope", None)
    return scope.get(GRANT_KEY) if isinstance(scope, dict) else None


#: Where the HTTP server's bearer check leaves the client's Grant in the ASGI scope.
GRANT_KEY = "memento.grant"


async def _project_from_roots(session: ServerSession) -> Project | None:
    """The project of the client's first ``file://`` root that is a directory here; None
    when the client offers no roots, cannot list them in time, or none is local."""
    capabilities = session.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    try:
        with anyio.fail_after(ROOTS_TIMEOUT):
            answer = await session.list_roots()
    # Whatever goes wrong (an error answer, no back-channel, a timeout, a malformed
    # answer), the working directory is a good answer: tools must not fail for it.
    except Exception as exc:
        log.warning("cannot list the client's roots (%s): using the working directory", exc)
        return None
    for root in answer.roots:
        directory = _file_path(str(root.uri))
        if directory is None:
            continue
        try:
            return find_project(directory)
        except MementoError:
            continue
    return None


def _file_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return url2pathname(parsed.path)


# The longest a request waits for the warm-up (a model load takes ~0.3 s; a loaded machine
# may take several): past it, the request goes ahead and loads what it needs itself.
WARM_UP_WAIT_S = 60.0


def _load_model(memory: Memory, ready: threading.Event) -> None:
    try:
        memory.embedder.load()
        import numpy  # noqa: F401  (onnxruntime brought it in; the search paths use it)
    except MementoError as exc:  # the first tool that embeds reports it to the client
        log.warning("embedding model not loaded: %s", exc)
    finally:
        ready.set()


def _memory(ctx: Context) -> Memory:
    request = ctx.request_context
    state: State = request.lifespan_context
    return state.memory_for(request.session, grant_of(request.request))


def lean(result: BaseModel) -> CallToolResult:
    """``result`` as the client gets it: the structured content without empty or default
    fields, and its compact text rendering (``render()``) as the one text block."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.render())],  # type: ignore[attr-defined]
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )


T = TypeVar("T", bound=Callable[..., Any])


def tool(fn: T) -> T:
    """A tool as the SDK registers it: the result sent :func:`lean`; memento's errors
    raised as ToolError, the one exception whose message reaches the client (anything else
    stays a crash the SDK reports without details). The SDK reads the signature, return
    annotation included (the output schema), through ``__wrapped__``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return lean(fn(*args, **kwargs))
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
    scope: Scope = None,
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
        scope=scope,
    )
    return StoredMemory.of_stored(record)


def memento_store_many(
    ctx: Context,
    items: Annotated[list[StoreItem], Field(description="The memories to store")],
) -> StoreManyResult:
    """Store several memories at once, atomically: if any item is invalid nothing is stored
    and the error names the item."""
    records = _memory(ctx).store_many(item.model_dump(exclude_none=True) for item in items)
    stored = [StoredMemory.of_stored(r) for r in records]
    budget = Budget()
    shown = budget.fit(stored)
    return StoreManyResult(
        count=len(stored),
        created=sum(s.action == "created" for s in stored),
        updated=sum(s.action == "updated" for s in stored),
        unchanged=sum(s.action == "unchanged" for s in stored),
        deduplicated=sum(s.action == "deduplicated" for s in stored),
        memories=shown,
        omitted=budget.omitted_or_none(),
    )


def memento_recall(
    ctx: Context,
    query: Annotated[str, Field(description="What you want to know, in plain words")],
    limit: RecallLimit = None,
    kind: KindFilter = None,
    subject_key_prefix: PrefixFilter = None,
    since: Since = None,
    until: Until = None,
    include_archived: IncludeArchived = False,
    min_score: MinScore = None,
    all_projects: AllProjects = False,
    max_tokens: MaxTokens = None,
    explain: Explain = False,
) -> RecallResult:
    """Search memory by meaning and by keyword, in the current project and the global
    memories; best matches first, each with its relevance (0 to 1). Call this before asking
    the user something they may have told you before."""
    records = _memory(ctx).recall(
        query,
        limit=limit,
        kind=kind,
        subject_key_prefix=subject_key_prefix,
        since=since,
        until=until,
        include_archived=include_archived,
        min_score=min_score,
        all_projects=all_projects,
        max_tokens=max_tokens,
        explain=explain,
    )
    return _recalled(records, Budget())


def _recalled(records: list[MemoryRecord], budget: Budget) -> RecallResult:
    """Recall results as sent: within the answer's size budget, and with the filters that
    applied when they were explained."""
    before = budget.omitted
    memories = budget.fit([RecalledMemory.of_recalled(r) for r in records])
    why = records[0].explanation if records else None
    return RecallResult(
        count=len(memories),
        memories=memories,
        omitted=(budget.omitted - before) or None,
        filters=why.filters if why is not None else None,
    )


def memento_recall_many(
    ctx: Context,
    queries: Queries,
    limit: RecallLimit = None,
    kind: KindFilter = None,
    subject_key_prefix: PrefixFilter = None,
    since: Since = None,
    until: Until = None,
    include_archived: IncludeArchived = False,
    min_score: MinScore = None,
    all_projects: AllProjects = False,
    max_tokens: MaxTokens = None,
    explain: Explain = False,
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
        all_projects=all_projects,
        max_tokens=max_tokens,
        explain=explain,
    )
    budget = Budget()  # one for the whole answer, spent in the order of the queries
    results = []
    for query, records in zip(queries, batches):
        found = _recalled(records, budget)
        results.append(QueryResult(query=query, **found.model_dump(exclude_none=True)))
    return RecallManyResult(results=results)


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
    scope: Annotated[
        str | None,
        Field(
            description='Move it: "project" (the current project), "global" (every project) '
            "or a project's directory"
        ),
    ] = None,
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
        scope=scope,
    )
    return StoredMemory.of_stored(record)


def memento_forget(
    ctx: Context,
    id: MemoryId,
    hard: Annotated[
        bool, Field(description="Delete for good instead of archiving (cannot be undone)")
    ] = False,
) -> ForgetResult:
    """Forget one memory: archive it (hidden from recall, recoverable), or with hard=true
    delete it from the database for good."""
    memory = _memory(ctx)
    record = memory.forget(id, hard=hard)
    return ForgetResult(
        id=record.id, status="deleted" if hard else "archived", memory=MemoryItem.of(record),
        purge_pending=hard and memory.purge_pending,
    )


def memento_forget_prefix(
    ctx: Context,
    prefix: Annotated[
        str, Field(description="Start of the subject keys to forget, e.g. project.old.")
    ],
    hard: Annotated[
        bool, Field(description="Delete for good instead of archiving (cannot be undone)")
    ] = False,
    all_projects: AllProjects = False,
) -> ForgetPrefixResult:
    """Forget every memory whose subject_key starts with prefix, in the current project and
    the global memories (archive, or hard=true to delete)."""
    memory = _memory(ctx)
    count = memory.forget_prefix(prefix, hard=hard, all_projects=all_projects)
    return ForgetPrefixResult(
        prefix=prefix, status="deleted" if hard else "archived", count=count,
        purge_pending=hard and count > 0 and memory.purge_pending,
    )


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
    all_projects: AllProjects = False,
    since: Since = None,
    until: Until = None,
) -> MemoryList:
    """The newest memories first (the current project and the global memories)."""
    records = _memory(ctx).recent(
        limit=limit,
        kind=kind,
        include_archived=include_archived,
        all_projects=all_projects,
        since=since,
        until=until,
    )
    return _listed(records)


def memento_browse(
    ctx: Context,
    subject_key_prefix: Annotated[
        str, Field(description='Start of the subject keys to list, e.g. "user." ("" for all)')
    ] = "",
    limit: Limit = 100,
    all_projects: AllProjects = False,
    as_of: Annotated[
        str | None,
        Field(
            description="Show the memories as they stood at this time (what was believed "
            'before a change): 2026-11-20 (its end), "last month", "3 days ago"'
        ),
    ] = None,
) -> MemoryList:
    """Live memories that have a subject_key starting with the prefix, sorted by key: what
    you know about the user ("user.") or a project ("project.<name>."), in the current
    project and the global memories."""
    records = _memory(ctx).browse(
        subject_key_prefix, limit=limit, all_projects=all_projects, as_of=as_of
    )
    return _listed(records)


def _listed(records: list[MemoryRecord]) -> MemoryList:
    budget = Budget()
    memories = budget.fit([MemoryItem.of(r) for r in records])
    return MemoryList(count=len(memories), memories=memories, omitted=budget.omitted_or_none())


def memento_history(
    ctx: Context,
    id: Annotated[
        str, Field(description="Memory id (or a unique prefix of 8+ characters) or subject_key")
    ],
    all_projects: AllProjects = False,
) -> HistoryResult:
    """Every version of one memory, oldest first, the live one last: what it said before
    each change, when, and what replaced it (upsert, update or dedup)."""
    versions = _memory(ctx).history(id, all_projects=all_projects)
    return HistoryResult(
        id=versions[-1].id, count=len(versions), versions=[VersionItem.of(v) for v in versions]
    )


def memento_stats(ctx: Context, all_projects: AllProjects = False) -> Stats:
    """How many memories there are by kind and by project (the current project and the
    global memories), archived ones, the model, and the file size."""
    return Stats(**_memory(ctx).stats(all_projects=all_projects))


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
    (memento_history, READ_ONLY),
    (memento_stats, READ_ONLY),
    (memento_store_many, WRITES),
    (memento_recall_many, READ_ONLY),
)
