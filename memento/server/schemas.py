"""The MCP tools' parameter types and structured results (pydantic models: their JSON
schemas are what the client sees)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..records import KINDS, MemoryRecord
from ..validate import MAX_LIMIT

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


def as_item(record: MemoryRecord) -> dict[str, Any]:
    data = record.to_dict()
    for key in ("score", "action", "redactions"):
        data.pop(key)
    return data


def as_recalled(record: MemoryRecord) -> RecalledMemory:
    return RecalledMemory(**as_item(record), score=record.score or 0.0)


def as_stored(record: MemoryRecord) -> StoredMemory:
    return StoredMemory(
        **as_item(record),
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
