"""``memento copy``: a whole store moved into another, between any two backends.

Everything goes through the :class:`memento.store.Store` interface, so a SQLite file, a
PostgreSQL database or any later backend can be either side. What is copied, as stored:
every memory (same id, timestamps, archived state, metadata, importance, source,
subject_key, scope and the label of the model that made its vector), its earlier versions,
the projects it is scoped to, and its vector, byte for byte.

Vectors are copied, never re-embedded: a copy then needs no model, loads no ONNX session
and is exact (recall on the copy ranks as on the original). The two stores must hold
vectors of one dimension (a new target is made with the source's); each vector keeps the
name of the model that made it, so a target whose own model is another one counts those
memories as stale and ``memento reembed`` re-encodes just them, resumably.

Copying again adds nothing. A memory already in the target (by id) is left alone when it
is the same; when the source holds a newer state of it (``updated_at`` later: every change,
archive and restore included, moves it) the target takes that state with the earlier
versions it lacks, and a state of the target's own that the source never had is kept as a
version, so nothing is lost. A target's newer state is kept (``kept``): a copy never
overwrites later work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import is_url, resolve_location
from ..dates import utcnow
from ..errors import DatabaseError, InvalidInputError
from ..projects import GLOBAL, Project
from ..store import Filters, NewMemory, Row, Store, open_store
from ..store.base import Version

# Memories read, and written in one target transaction, at a time: large enough that a
# transaction's commit (an fsync) is paid rarely, small enough that a batch's vectors (1.5 KB
# each at 384 dimensions) stay a few hundred KB and the progress bar moves.
BATCH_SIZE = 500
_STATE = ("content", "kind", "subject_key", "importance", "metadata", "source", "scope")


@dataclass(frozen=True)
class CopyResult:
    """What a copy did. ``added``: memories new to the target; ``updated``: memories the
    target had in an older state; ``unchanged``: the same in both; ``kept``: the target's
    state was newer (or its subject_key is held by another live memory there) and stays;
    ``archived``: added archived because a live memory of the target already holds their
    subject_key; ``versions``: earlier versions written; ``projects``: projects new to the target;
    ``stale``: memories of the target whose vector was made by another model than the
    target's (``memento reembed`` re-encodes them)."""

    source: str
    target: str
    total: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    archived: int = 0
    versions: int = 0
    projects: int = 0
    stale: int = 0
    created: bool = False  # the target was made by this copy
    model: str | None = None  # the target's embedding model


def copy_store(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    finishing: Callable[[str], None] | None = None,
) -> CopyResult:
    """Copy every memory of the store at ``source`` into the store at ``target`` (a file
    path or a URL each; the target is created when missing). See the module docstring for
    what is copied and what a second copy does. ``progress(done, total)`` is called after
    each batch; ``finishing(what)`` before work that follows the last batch (building the
    vector index of a PostgreSQL target that started empty: a minute or more at 100,000
    memories). Raises InvalidInputError when the target is the source, DatabaseError for a
    missing source, a target holding vectors of another dimension (or another
    application's tables), and any storage failure; batches already written stay (copying
    again resumes)."""
    src_location, dst_location = _location(source, "source"), _location(target, "target")
    if _same(src_location, dst_location):
        raise InvalidInputError(
            f"the source and the target are the same store ({src_location}): give another target"
        )
    if not is_url(src_location) and not Path(src_location).exists():
        raise DatabaseError(
            f"nothing to copy: no memento database at {src_location}: check the source path"
        )
    src = open_store(src_location, create=False)
    try:
        with _described(src):
            _ready_source(src)
        created = not is_url(dst_location) and not Path(dst_location).exists()
        dst = open_store(dst_location, create=True)
        try:
            if src.location == dst.location:  # one server named two ways
                raise InvalidInputError(
                    f"the source and the target are the same store ({src.location}): give "
                    "another target"
                )
            with _described(dst):
                created = _ready_target(dst, src) or created
            return _copy(src, dst, batch_size, progress, finishing, created)
        finally:
            dst.close()
    finally:
        src.close()


def _location(location: str | os.PathLike[str], what: str) -> str:
    if location is None or not str(location).strip():
        raise InvalidInputError(f"give the {what} store: a database file or a URL")
    resolved = resolve_location(str(location).strip())
    return str(resolved if is_url(resolved) else Path(resolved).resolve())


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    if is_url(a) or is_url(b):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:  # the target does not exist yet
        return False


@contextlib.contextmanager
def _described(store: Store) -> Iterator[None]:
    """A driver error of ``store`` as one line naming that store."""
    try:
        yield
    except store.errors as exc:
        raise DatabaseError(store.describe_error(exc)) from None


def _ready_source(src: Store) -> None:
    """Refuse a source that is not a memento store; bring an older one up to date, as every
    memento command opening it would."""
    if src.schema_version() == 0:
        raise DatabaseError(
            f"{src.location} is not a memento database (no memento tables): check the source"
        )
    if src.needs_upgrade():
        if src.readonly:
            raise DatabaseError(
                f"{src.location} has schema version {src.schema_version()} and needs an "
                "upgrade, but it is read-only: make it writable and run `memento init`"
            )
        src.upgrade(None)


def _ready_target(dst: Store, src: Store) -> bool:
    """Create or upgrade the target's schema with the source's vector dimension, and refuse
    one whose vectors have another dimension. True when the target was empty (new)."""
    if dst.readonly:
        raise DatabaseError(f"{dst.location} is read-only: fix its permissions to copy into it")
    dimension = src.vector_dimension()
    new = dst.schema_version() == 0
    if dst.needs_upgrade():
        dst.upgrade(dimension if new else None)
    theirs = dst.vector_dimension()
    if dimension is not None and theirs != dimension:
        raise DatabaseError(
            f"{dst.location} holds vectors of {theirs} dimensions, {src.location} of "
            f"{dimension}: copy into a new target, or first run `memento reembed` on one of "
            "them with the other's model"
        )
    return new


def _copy(
    src: Store,
    dst: Store,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    finishing: Callable[[str], None] | None,
    created: bool,
) -> CopyResult:
    with _described(src):
        counts = src.counts(Filters(include_archived=True))
        total = sum(counts["live_by_kind"].values()) + counts["archived"]
        projects = {p["id"]: p for p in src.projects() if p["id"] != GLOBAL}
        model = src.get_setting("embedding_model")
    with _described(dst), dst.transaction(write=True):
        had = {p["id"] for p in dst.projects()}
        for p in projects.values():  # first: every memory and version names its project
            _register(dst, p)
        if model is not None and dst.get_setting("embedding_model") is None:
            dst.set_setting("embedding_model", model)
        model = dst.get_setting("embedding_model")
    tally = {name: 0 for name in ("added", "updated", "unchanged", "kept", "archived",
                                  "versions")}  # fmt: skip
    done = 0
    if progress:
        progress(0, total)
    with _described(dst), dst.loading() as deferred:
        done = _copy_batches(src, dst, batch_size, progress, projects, model, tally, total)
        if deferred and finishing:
            finishing(f"building the vector index of {dst.location}")
    with _described(dst):
        stale = dst.count_stale_vectors(model) if model else 0
    return CopyResult(
        source=src.location, target=dst.location, total=done, stale=stale, created=created,
        model=model, projects=len(set(projects) - had), **tally,
    )  # fmt: skip


def _copy_batches(
    src: Store,
    dst: Store,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    projects: dict[str, dict[str, Any]],
    model: str | None,
    tally: dict[str, int],
    total: int,
) -> int:
    """Every batch of the source into the target; returns how many memories were read."""
    done = 0
    for seqs in _batches(src, batch_size):
        with _described(src), src.transaction(write=False):  # one snapshot per batch
            rows = src.fetch(seqs)
            vectors = src.vectors(list(rows))
            versions = src.versions(list(rows))
            scopes = {r.scope for r in rows.values()}
            scopes |= {v.scope for vs in versions.values() for v in vs}
            # a project made in the source since the copy began
            fresh = scopes - set(projects) - {GLOBAL}
            if fresh:
                found = {p["id"]: p for p in src.projects() if p["id"] in fresh}
                projects.update(found)
        with _described(dst), dst.transaction(write=True):
            for scope in fresh:
                _register(dst, projects[scope])
            for seq in seqs:
                if seq in rows:
                    _copy_one(dst, rows[seq], vectors.get(seq), versions.get(seq, []), model,
                              tally, src.location)  # fmt: skip
        done += len(seqs)
        if progress:
            progress(min(done, total), total)
    return done


def _register(dst: Store, project: dict[str, Any]) -> None:
    dst.register_project(
        Project(id=project["id"], name=project["name"], root=project["root"] or "")
    )


def _batches(src: Store, size: int) -> Iterator[list[int]]:
    """The seqs of every memory of ``src``, in insertion order, ``size`` at a time."""
    batch: list[int] = []
    with _described(src):
        for row in src.iter_rows():
            batch.append(row.seq)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _copy_one(
    dst: Store,
    row: Row,
    vector: bytes | None,
    versions: list[Version],
    model: str | None,
    tally: dict[str, int],
    source: str,
) -> None:
    """One memory of the source into the target (inside the target's write)."""
    if vector is None:
        raise DatabaseError(
            f"memory {row.id} in {source} has no vector: run `memento reembed --all --db "
            f"{source}`, then copy again (what was copied so far stays)"
        )
    found = dst.find_by_id(row.id)
    if not found:
        archived_at = row.archived_at
        if (
            row.subject_key is not None
            and archived_at is None
            and dst.find_live_subject(row.subject_key, row.scope) is not None
        ):  # the target's live memory keeps the key, as an import does; this one is archived
            archived_at = utcnow()
            tally["archived"] += 1
        new = NewMemory(
            id=row.id, content=row.content, kind=row.kind, subject_key=row.subject_key,
            importance=row.importance, metadata=row.metadata, source=row.source,
            created_at=row.created_at, updated_at=row.updated_at, archived_at=archived_at,
            embedding_model=row.embedding_model, scope=row.scope,
        )  # fmt: skip
        seq = dst.insert(new, vector)
        for v in versions:  # oldest first: the target numbers them in this order
            dst.add_version(_version_row(seq, row, v), v.valid_from, v.valid_until, v.replaced_by)
        tally["added"] += 1
        tally["versions"] += len(versions)
        return
    mine = found[0]
    if _whole(mine) == _whole(row):
        tally["unchanged"] += 1
        return
    if _state(mine) == _state(row) and row.updated_at == mine.updated_at:
        # the same memory with another vector (one side was re-embedded): the target takes
        # the vector its own model made
        if model is not None and row.embedding_model == model != mine.embedding_model:
            dst.update(mine.seq, {"embedding_model": row.embedding_model}, vector)
            tally["updated"] += 1
        else:
            tally["unchanged"] += 1
        return
    if row.updated_at <= mine.updated_at:
        tally["kept"] += 1  # the target changed it later: its work stays
        return
    if row.subject_key is not None and row.archived_at is None:
        holder = dst.find_live_subject(row.subject_key, row.scope)
        if holder is not None and holder.seq != mine.seq:
            tally["kept"] += 1  # another live memory of the target holds the key
            return
    tally["versions"] += _merge_versions(dst, mine, row, versions)
    values: dict[str, Any] = {
        "content": row.content, "kind": row.kind, "subject_key": row.subject_key,
        "importance": row.importance, "metadata": row.metadata, "source": row.source,
        "updated_at": row.updated_at, "archived_at": row.archived_at,
        "embedding_model": row.embedding_model, "scope": row.scope,
    }  # fmt: skip
    dst.update(mine.seq, values, vector)
    tally["updated"] += 1


def _merge_versions(dst: Store, mine: Row, row: Row, versions: Sequence[Version]) -> int:
    """Give the target's memory ``mine`` the source's earlier versions it lacks and, when
    its own state is neither among them nor the source's (it changed in the target too),
    keep that state as a version; in the order they ended. Returns how many were written."""
    have = dst.versions([mine.seq]).get(mine.seq, [])
    # a version is the same one when it began at the same moment with the same fields (its
    # end differs when the memory then changed differently in the two stores)
    known = [(v.valid_from, _state(v)) for v in have]
    missing: list[tuple[Row, Any, Any, str]] = [
        (_version_row(mine.seq, row, v), v.valid_from, v.valid_until, v.replaced_by)
        for v in versions
        if (v.valid_from, _state(v)) not in known
    ]
    if _state(mine) not in [_state(row), *(_state(v) for v in versions)]:
        since = have[-1].valid_until if have else mine.created_at
        until = max(row.updated_at, since)
        missing.append((mine, min(since, until), until, "import"))
    missing.sort(key=lambda entry: entry[2])
    for version_row, valid_from, valid_until, replaced_by in missing:
        dst.add_version(version_row, valid_from, valid_until, replaced_by)
    return len(missing)


def _version_row(seq: int, row: Row, v: Version) -> Row:
    """An earlier version ``v`` of the memory ``row`` as the target's store keeps it."""
    return Row(
        seq=seq, id=row.id, content=v.content, kind=v.kind, subject_key=v.subject_key,
        importance=v.importance, metadata=v.metadata, source=v.source,
        created_at=row.created_at, updated_at=v.valid_from, archived_at=None,
        embedding_model=None, scope=v.scope, project=v.project,
    )  # fmt: skip


def _state(r: Row | Version) -> tuple[Any, ...]:
    """What a version of a memory holds."""
    return tuple(getattr(r, name) for name in _STATE)


def _whole(r: Row) -> tuple[Any, ...]:
    """Everything a copy carries of a memory (its vector aside)."""
    return (*_state(r), r.created_at, r.updated_at, r.archived_at, r.embedding_model)


__all__ = ["BATCH_SIZE", "CopyResult", "copy_store"]
