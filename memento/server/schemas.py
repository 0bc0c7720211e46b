"""The MCP tools' parameter types and structured results (pydantic models: their JSON
schemas are what the client sees)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..records import KINDS, MemoryRecord, MemoryVersion
from ..validate import MAX_LIMIT, MAX_QUERIES, MAX_RECALL_LIMIT

if TYPE_CHECKING:
    from typing_extensions import Self

# ---- structured results -----------------------------------------------------------
#
# Every result goes to the client twice: as ``structuredContent`` (what Claude Code and VS
# Code hand the model, as compact JSON) and as a text block (what clients that read
# ``content`` hand it), rendered by ``render()`` as one line per memory. Both carry the same
# data and both are lean: fields that hold nothing or the default are left out, dates are
# days, relevance is rounded (benches/mcp_tokens.py measures it).

_KIND = Literal["fact", "event", "lesson"]
DEFAULT_IMPORTANCE = 0.5
DEFAULT_SOURCE = "mcp"


def _day(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d") if value is not None else None


class _Memory(BaseModel):
    """The fields every memory shows. Optional ones are left out when they hold nothing or
    the default."""

    id: str = Field(description="Full id, for memento_update and memento_forget")
    kind: _KIND
    subject_key: str | None = Field(
        default=None, description="Dotted key such as user.theme (absent: none)"
    )
    project: str = Field(
        description='Name of the project it belongs to, or "global" (shared by all projects)'
    )
    date: str = Field(
        description="YYYY-MM-DD (UTC): for an event the day it happened, otherwise the day "
        "it was last stored or changed"
    )
    content: str
    archived: str | None = Field(
        default=None, description="Day it was forgotten (archived: hidden from recall)"
    )
    metadata: dict[str, Any] | None = Field(default=None, description="Absent: none")
    source: str | None = Field(default=None, description="Where it came from (absent: mcp)")
    versions: int | None = Field(
        default=None,
        description="How many versions it has had, this one included (absent: 1); "
        "memento_history lists them",
    )

    @classmethod
    def of(cls, record: MemoryRecord, **extra: Any) -> Self:
        # The day that says how current a memory is: when an event happened, when a fact or
        # lesson was last confirmed (the context block dates its lines the same way).
        when = record.created_at if record.kind == "event" else record.updated_at
        if "importance" in cls.model_fields:
            importance = record.importance
            extra["importance"] = None if importance == DEFAULT_IMPORTANCE else importance
        return cls(
            id=record.id,
            kind=record.kind,  # type: ignore[arg-type]
            subject_key=record.subject_key,
            project=record.project or record.scope,
            date=_day(when) or "",
            content=record.content,
            archived=_day(record.archived_at),
            metadata=record.metadata or None,
            source=None if record.source == DEFAULT_SOURCE else record.source,
            versions=record.versions if record.versions > 1 else None,
            **extra,
        )

    def line(self) -> str:
        """``[id kind subject_key @project date extra=...] content``, continuation lines of
        the content indented."""
        head = [self.id, self.kind]
        if self.subject_key:
            head.append(self.subject_key)
        head += [f"@{self.project}", self.date, *self._marks()]
        for name in ("importance", "archived", "source", "versions"):
            value = getattr(self, name, None)
            if value is not None:
                head.append(f"{name}={value}")
        if self.metadata:
            head.append("metadata=" + _json(self.metadata))
        content = self.content.replace("\n", "\n  ")
        return f"[{' '.join(head)}] {content}"

    def _marks(self) -> list[str]:
        return []


class MemoryItem(_Memory):
    """One memory."""

    importance: float | None = Field(default=None, description="0 to 1 (absent: 0.5)")


class RecalledMemory(_Memory):
    """A memory found by recall. Its importance is left out (the ranking has used it;
    browse and recent show it), so ten results cost half what they did."""

    relevance: float = Field(
        description="How likely it answers the query, 0 to 1 (comparable across queries)"
    )
    explanation: dict[str, Any] | None = Field(
        default=None,
        description="With explain: the parts of its rank score (score = fused x "
        "importance_factor x recency_factor; fused = the mean of vector_part and "
        "keyword_part, its scaled scores in the vector and keyword candidate lists, where "
        "vector_rank and keyword_rank are its places) and of its relevance (similarity: "
        "cosine; coverage: share of the query's words matched, matched_terms)",
    )

    @classmethod
    def of_recalled(cls, record: MemoryRecord) -> Self:
        why = record.explanation
        return cls.of(
            record,
            relevance=round(record.relevance or 0.0, 2),
            explanation=None if why is None else _rounded(_lean_explanation(why.to_dict())),
        )

    def _marks(self) -> list[str]:
        return [f"{self.relevance}"]

    def line(self) -> str:
        text = super().line()
        why = self.explanation
        if why is None:
            return text
        parts = [f"score={why['score']} = fused {why['fused']}"]
        parts.append(f"x importance {why['importance_factor']} x recency {why['recency_factor']}")
        if why["vector_rank"] is not None:
            parts.append(f"; vector #{why['vector_rank']} part {why['vector_part']}")
        if why["keyword_rank"] is not None:
            parts.append(f"; keyword #{why['keyword_rank']} part {why['keyword_part']}")
        matched = ",".join(why["matched_terms"]) or "-"
        parts.append(
            f"; relevance from cosine {why['similarity']}, coverage {why['coverage']} "
            f"(matched {matched})"
        )
        return f"{text}\n  why: {' '.join(parts)}"


def _lean_explanation(data: dict[str, Any]) -> dict[str, Any]:
    """An explanation without what is the same for every result (the filters go once in
    the result; the fusion method and weights are the server's defaults)."""
    return {k: v for k, v in data.items() if k not in ("filters", "method", "weights")}


def _rounded(value: Any) -> Any:
    """Numbers to 4 decimals, in nested dicts and lists (an explanation costs fewer tokens
    and says as much)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


class RelatedMemory(BaseModel):
    id: str
    similarity: float = Field(description="Cosine similarity to the memory just stored")
    content: str


class StoredMemory(MemoryItem):
    action: Literal["created", "updated", "unchanged", "deduplicated"] = Field(
        description="created: a new memory; updated: the live memory with this subject_key "
        "(or this id) was changed in place; unchanged: it was stored again word for word, "
        "nothing changed; deduplicated: a near-identical memory of the same kind already "
        "existed and is returned instead"
    )
    redactions: list[str] | None = Field(
        default=None, description="Kinds of secret replaced by a marker before storing"
    )
    related: list[RelatedMemory] | None = Field(
        default=None,
        description="Live memories of the same kind and scope that are similar but not the "
        "same: if the new memory changes what one of them says, update or forget that one",
    )

    @classmethod
    def of_stored(cls, record: MemoryRecord) -> Self:
        related = [
            RelatedMemory(id=r.id, similarity=round(r.similarity, 2), content=r.content)
            for r in record.related
        ]
        return cls.of(
            record,
            action=record.action or "updated",
            redactions=list(record.redactions) or None,
            related=related or None,
        )

    def line(self) -> str:
        note = f" (redacted: {', '.join(self.redactions)})" if self.redactions else ""
        text = f"{self.action}{note}: {super().line()}"
        for other in self.related or []:
            content = other.content.replace("\n", " ")
            text += f"\n  related {other.similarity} [{other.id}] {content}"
        return text

    def render(self) -> str:
        return self.line()


# The most memory text (content plus metadata as JSON, in characters) one tool result
# carries. One memory at both limits (100,000 characters of content and of metadata) fits
# whole; past it, the memory that crosses the line is cut with a marker and the rest are
# left out, counted in ``omitted``. Without it, 400 queries matching one 200 KB memory made
# a 158 MB answer. An answer carries the text twice (structured content and the text block),
# so it stays under ~400,000 characters of memories plus their ids and dates.
MAX_RESULT_CHARS = 200_000
OMITTED = Field(
    default=None,
    description=f"Results left out to keep the answer under {MAX_RESULT_CHARS:,} characters "
    "(absent: none): lower limit, narrow the query or ask fewer queries",
)

M = TypeVar("M", bound="_Memory")


class Budget:
    """What is left of :data:`MAX_RESULT_CHARS` while one result is put together."""

    def __init__(self, chars: int = MAX_RESULT_CHARS) -> None:
        self.left = chars
        self.omitted = 0

    def fit(self, memories: Sequence[M]) -> list[M]:
        """``memories`` as far as they fit, the one crossing the line cut."""
        kept = []
        for memory in memories:
            if self.left <= 0:
                self.omitted += 1
            else:
                kept.append(self._take(memory))
        return kept

    def omitted_or_none(self) -> int | None:
        return self.omitted or None

    def _take(self, memory: M) -> M:
        meta = len(_json(memory.metadata)) if memory.metadata else 0
        size = len(memory.content) + meta
        if size <= self.left:
            self.left -= size
            return memory
        # The content keeps at least half of what is left; metadata that would take more
        # is left out whole (cut JSON would not be JSON).
        notes = []
        changes: dict[str, Any] = {}
        if meta > self.left // 2:
            notes.append(f"its metadata ({meta:,} characters)")
            changes["metadata"], meta = None, 0
        room = self.left - meta
        content = memory.content
        if len(content) > room:
            notes.insert(0, f"{len(content) - room:,} more characters")
            content = content[:room]
        changes["content"] = (
            f"{content} [... {' and '.join(notes)} left out: an answer carries at most "
            f"{MAX_RESULT_CHARS:,} characters of memories]"
        )
        self.left = 0
        return memory.model_copy(update=changes)


def _left_out(omitted: int | None) -> str:
    if not omitted:
        return ""
    return (
        f"\n({_count(omitted)} more left out to keep this answer under "
        f"{MAX_RESULT_CHARS:,} characters: lower limit or narrow the query)"
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _count(n: int) -> str:
    return f"{n} memory" if n == 1 else f"{n} memories"


def _lines(memories: Sequence[_Memory]) -> str:
    return "\n".join(m.line() for m in memories)


class RecallResult(BaseModel):
    count: int
    memories: list[RecalledMemory] = Field(description="Best first")
    omitted: int | None = OMITTED
    filters: dict[str, Any] | None = Field(
        default=None, description="With explain: the exact filters the search applied"
    )

    @classmethod
    def of_records(cls, records: Sequence[MemoryRecord]) -> Self:
        why = records[0].explanation if records else None
        return cls(
            count=len(records),
            memories=[RecalledMemory.of_recalled(r) for r in records],
            filters=why.filters if why is not None else None,
        )

    def render(self) -> str:
        if not self.memories:
            return "No memories found." + _left_out(self.omitted)
        legend = f"{_count(self.count)}, best first (relevance 0-1 after the date)"
        if self.filters is not None:
            legend += f"; filters {_json(self.filters)}"
        return f"{legend}:\n{_lines(self.memories)}{_left_out(self.omitted)}"


class QueryResult(BaseModel):
    query: str
    count: int
    memories: list[RecalledMemory] = Field(description="Best first")
    omitted: int | None = OMITTED
    filters: dict[str, Any] | None = Field(
        default=None, description="With explain: the exact filters the search applied"
    )

    def render(self) -> str:
        found = RecallResult(
            count=self.count, memories=self.memories, omitted=self.omitted, filters=self.filters
        ).render()
        return f"{_json(self.query)}: {found}"


class RecallManyResult(BaseModel):
    results: list[QueryResult] = Field(description="One per query, in the order given")

    def render(self) -> str:
        return "\n\n".join(r.render() for r in self.results)


class StoreManyResult(BaseModel):
    count: int
    created: int
    updated: int
    unchanged: int = 0
    deduplicated: int
    memories: list[StoredMemory] = Field(description="One per item, in the order given")
    omitted: int | None = Field(
        default=None,
        description="Stored memories left out of this answer to keep it under "
        f"{MAX_RESULT_CHARS:,} characters (absent: none); they are stored all the same",
    )

    def render(self) -> str:
        counts = f"{self.created} created, {self.updated} updated, "
        if self.unchanged:
            counts += f"{self.unchanged} unchanged, "
        counts += f"{self.deduplicated} deduplicated"
        return f"{self.count} stored ({counts}):\n{_lines(self.memories)}{_left_out(self.omitted)}"


class MemoryList(BaseModel):
    count: int
    memories: list[MemoryItem]
    omitted: int | None = OMITTED

    def render(self) -> str:
        if not self.memories:
            return "No memories." + _left_out(self.omitted)
        return f"{_count(self.count)}:\n{_lines(self.memories)}{_left_out(self.omitted)}"


class ForgetResult(BaseModel):
    id: str
    status: Literal["archived", "deleted"] = Field(
        description="archived: hidden from recall, recoverable; deleted: gone for good"
    )
    memory: MemoryItem = Field(description="The memory as it is now (or was, if deleted)")
    purge_pending: bool = Field(
        default=False,
        description="deleted, but its text stays in the database files while another process "
        "reads them; memento finishes the purge on a later write or exit",
    )

    def render(self) -> str:
        return f"{self.status}: {self.memory.line()}{_PENDING if self.purge_pending else ''}"


class ForgetPrefixResult(BaseModel):
    prefix: str
    status: Literal["archived", "deleted"]
    count: int = Field(description="How many memories were affected")
    purge_pending: bool = Field(
        default=False,
        description="deleted, but their text stays in the database files while another "
        "process reads them; memento finishes the purge on a later write or exit",
    )

    def render(self) -> str:
        pending = _PENDING if self.purge_pending else ""
        return f"{self.status} {_count(self.count)} under {_json(self.prefix)}{pending}"


_PENDING = (
    " (the text stays in the database files while another process reads them; "
    "memento finishes the purge on a later write or exit)"
)


class VersionItem(BaseModel):
    """One version of a memory."""

    version: int = Field(description="1 is the oldest")
    kind: _KIND
    subject_key: str | None = None
    project: str = Field(description='Project it belonged to, or "global"')
    importance: float | None = Field(default=None, description="0 to 1 (absent: 0.5)")
    valid_from: str = Field(description="When it began to hold (ISO-8601 UTC)")
    valid_until: str | None = Field(
        default=None, description="When it was replaced (absent: the live version)"
    )
    replaced_by: Literal["upsert", "update", "dedup", "import"] | None = Field(
        default=None,
        description="What replaced it: upsert (stored again under its subject_key), "
        "update, dedup (a near duplicate raised its importance), import (a newer state "
        "imported); absent: the live version",
    )
    archived: str | None = Field(default=None, description="Day the memory was forgotten")
    content: str
    metadata: dict[str, Any] | None = None

    @classmethod
    def of(cls, version: MemoryVersion) -> Self:
        return cls(
            version=version.version,
            kind=version.kind,  # type: ignore[arg-type]
            subject_key=version.subject_key,
            project=version.project or version.scope,
            importance=None if version.importance == DEFAULT_IMPORTANCE else version.importance,
            valid_from=_moment(version.valid_from),
            valid_until=_moment(version.valid_until) if version.valid_until else None,
            replaced_by=version.replaced_by,  # type: ignore[arg-type]
            archived=_day(version.archived_at),
            content=version.content,
            metadata=version.metadata or None,
        )

    def line(self) -> str:
        until = f"{self.valid_until} by {self.replaced_by}" if self.valid_until else "now"
        head = [f"v{self.version}", self.kind]
        if self.subject_key:
            head.append(self.subject_key)
        head += [f"@{self.project}", f"{self.valid_from} -> {until}"]
        if self.importance is not None:
            head.append(f"importance={self.importance}")
        if self.archived:
            head.append(f"archived={self.archived}")
        if self.metadata:
            head.append("metadata=" + _json(self.metadata))
        return f"[{' '.join(head)}] {self.content.replace(chr(10), chr(10) + '  ')}"


def _moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class HistoryResult(BaseModel):
    id: str = Field(description="The memory's full id")
    count: int
    versions: list[VersionItem] = Field(description="Oldest first, the live one last")

    def render(self) -> str:
        lines = "\n".join(v.line() for v in self.versions)
        return f"{self.id}: {self.count} versions, oldest first:\n{lines}"


class KindCounts(BaseModel):
    fact: int
    event: int
    lesson: int


class ProjectCounts(BaseModel):
    id: str = Field(description="What scopes its memories: the git origin, or a directory")
    name: str
    root: str | None = Field(default=None, description="Directory it was last seen in")
    live: int
    archived: int


class Stats(BaseModel):
    path: str
    project: str | None = Field(
        default=None,
        description="Id of the current project (absent: none, reads cover every project)",
    )
    total: int = Field(description="All memories counted, archived included")
    live: int
    by_kind: KindCounts = Field(description="Live memories by kind")
    archived: int
    projects: list[ProjectCounts] = Field(
        default_factory=list, description="Projects counted, global included"
    )
    schema_version: int
    model: str | None = Field(default=None, description="Embedding model of the stored vectors")
    dimension: int | None = None
    file_size_bytes: int

    def render(self) -> str:
        return _json(self.model_dump(mode="json", exclude_none=True))


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

def _whole(value: object) -> object:
    """JSON Schema counts 5.0 as an integer: take it as 5 (strict validation refuses
    every other non-integer, "5" and true included)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Limit = Annotated[
    int,
    BeforeValidator(_whole),
    Field(
        description=f"Maximum number of results (1 to {MAX_LIMIT})",
        json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
    ),
]
RecallLimit = Annotated[
    int | None,
    BeforeValidator(_whole),
    Field(
        description=f"Maximum number of results (1 to {MAX_RECALL_LIMIT}; default 10, or "
        "with max_tokens as many as fit)",
        json_schema_extra={"minimum": 1, "maximum": MAX_RECALL_LIMIT},
    ),
]
Queries = Annotated[
    list[str],
    Field(
        description=f"Several questions (at most {MAX_QUERIES}), answered separately",
        json_schema_extra={"maxItems": MAX_QUERIES},
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
    Field(
        description="Only memories created at or after: ISO date/time, an age (7d, 12h, "
        '"3 days ago") or a phrase (today, yesterday, "last week", "this month", '
        '"March 2026", 2026-03); days in UTC'
    ),
]
Until = Annotated[
    str | None,
    Field(
        description="Only memories created at or before (the forms of since); a day or a "
        "month counts whole: 2026-11-21 includes that day"
    ),
]
IncludeArchived = Annotated[bool, Field(description="Also search forgotten (archived) memories")]
MinScore = Annotated[
    float | None,
    Field(description="Drop results whose relevance (0 to 1) is below this (default: keep all)"),
]
MaxTokens = Annotated[
    int | None,
    Field(
        description="Return the best results that fit in this many tokens (as the context "
        "block counts them) instead of a fixed count; limit still caps the number",
        json_schema_extra={"minimum": 16, "maximum": 20000},
    ),
]
Explain = Annotated[
    bool, Field(description="Give each result an explanation: the parts of its score")
]
Scope = Annotated[
    str | None,
    Field(
        description='Where it belongs: "project" (the current project), "global" (every '
        "project), or a project's directory. Default: the current project, except facts "
        "with a user.* subject_key, which are global."
    ),
]
AllProjects = Annotated[
    bool,
    Field(description="Span every project, not just the current project and global memories"),
]


class StoreItem(BaseModel):
    """One memory to store in a batch."""

    model_config = ConfigDict(extra="forbid", strict=True)

    content: Annotated[str, Field(description="The text to remember")]
    kind: KindParam = "fact"
    importance: Importance = 0.5
    subject_key: SubjectKey = None
    metadata: Metadata = None
    source: Annotated[str, Field(description="Where it came from")] = "mcp"
    created_at: Annotated[
        str | None, Field(description="When it happened (ISO-8601); default now")
    ] = None
    scope: Scope = None
