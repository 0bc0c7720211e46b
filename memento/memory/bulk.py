"""Bulk work over a whole store: export, import, and re-embedding every memory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..dates import parse_when, utcnow
from ..errors import InvalidInputError, ModelError
from ..ids import new_id, normalize_id_prefix
from ..projects import GLOBAL, Project
from ..store import NewMemory
from .base import STORE_KEYS, database_errors
from .history import History, OldVersion, exported_project, exported_version, supersedes


class Bulk(History):
    """Export, import and reembed. An import keeps versions, so this room stands on
    :class:`History`."""

    @database_errors
    def export(self) -> Iterator[dict[str, Any]]:
        """Every memory, archived included, oldest first, as JSON-ready dicts."""
        self._unbound("export the whole store")
        with self._lock:
            rows = list(self._store.iter_rows())
            versions = self._store.versions([r.seq for r in rows])
        for row in rows:
            data = row.record().to_dict()
            for key in ("score", "relevance", "action", "redactions", "versions"):
                data.pop(key)
            if row.seq in versions:
                data["history"] = [exported_version(v) for v in versions[row.seq]]
            yield data

    @database_errors
    def import_records(
        self,
        records: Sequence[Mapping[str, Any]],
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
        labels: Sequence[str] | None = None,
        scope: str | os.PathLike[str] | None = None,
    ) -> dict[str, int]:
        """Restore exported memories losslessly (same ids, timestamps, archived state,
        scope, earlier versions). A record whose id is present is skipped, so importing
        twice adds nothing, unless it is a newer state of that memory (changed, and not
        older than the stored one): then the memory is updated in place and the state it
        replaces kept as a version (``import``). Returns ``{"added", "updated",
        "skipped"}``. Records
        without a scope of their own (other tools' memories) go to ``scope``: global unless
        told (``"project"``, a directory). Every record is checked before anything is
        written; then each batch is one transaction."""
        self._unbound("import memories")
        fallback = None if scope in (None, "", GLOBAL) else self._scope_project(scope)
        prepared: list[tuple[NewMemory, Project | None, list[OldVersion]]] = []
        for n, record in enumerate(records):
            where = f"{labels[n]}: " if labels else f"record {n + 1}: "
            prepared.append(self._prepare_import(record, where, fallback))
        added = updated = skipped = 0
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size]
            with self._lock:
                present = {}
                for new, _, _ in batch:
                    rows = self._store.find_by_id(new.id)
                    if rows:
                        present[new.id] = rows[0]
            fresh = [entry for entry in batch if entry[0].id not in present]
            newer = [e for e in batch if e[0].id in present and supersedes(e[0], present[e[0].id])]
            skipped += len(batch) - len(fresh) - len(newer)
            if not fresh and not newer:
                if progress:
                    progress(min(start + batch_size, len(prepared)), len(prepared))
                continue
            # vectors for the new memories, and for the changed ones whose text changed
            texts = [new.content for new, _, _ in fresh]
            texts += [new.content for new, _, _ in newer if new.content != present[new.id].content]
            vectors = iter(self._embed(texts))
            fresh_vectors = [next(vectors) for _ in fresh]
            newer_vectors = [
                next(vectors) if new.content != present[new.id].content else None
                for new, _, _ in newer
            ]
            with self._lock, self._write():
                projects = {p for _, p, _ in fresh + newer if p is not None}
                projects |= {o.project for _, _, h in fresh for o in h if o.project}
                for project in projects:
                    self._store.register_project(project)
                for (new, _, history), vector in zip(fresh, fresh_vectors):
                    if self._store.find_by_id(new.id):
                        skipped += 1
                        continue
                    key = new.subject_key
                    if (
                        key is not None
                        and new.archived_at is None
                        and self._store.find_live_subject(key, new.scope) is not None
                    ):  # the live memory already holding the key wins; keep this archived
                        new = replace(new, archived_at=utcnow())
                    seq = self._store.insert(new, vector)
                    for old in history:  # its earlier versions, oldest first
                        self._store.add_version(
                            old.row(seq, new), old.valid_from, old.valid_until, old.replaced_by
                        )
                    added += 1
                for (new, _, _), vector in zip(newer, newer_vectors):
                    if self._refresh(new, vector):
                        updated += 1
                    else:
                        skipped += 1
            if progress:
                progress(min(start + batch_size, len(prepared)), len(prepared))
        return {"added": added, "updated": updated, "skipped": skipped}

    def _prepare_import(
        self, record: Mapping[str, Any], where: str, fallback: Project | None
    ) -> tuple[NewMemory, Project | None, list[OldVersion]]:
        hint = (
            " (is this a `memento export` file? For another tool's memories use "
            "`memento import`)"
        )
        if not isinstance(record, Mapping):
            raise InvalidInputError(f"{where}expected a JSON object{hint}")
        if not isinstance(record.get("content"), str):
            raise InvalidInputError(f"{where}no content text{hint}")
        try:
            raw_id = record.get("id")
            try:
                memory_id = normalize_id_prefix(raw_id) if raw_id is not None else new_id()
            except InvalidInputError:
                memory_id = ""
            if len(memory_id) != 26:
                raise InvalidInputError(
                    f"id {str(raw_id)[:40]!r} is not a memento id (26 characters){hint}"
                )
            fields = {k: record[k] for k in STORE_KEYS if k in record and k != "scope"}
            item = self._prepare({**fields, "scope": GLOBAL}, "")
            project = exported_project(record) if "scope" in record else fallback
            updated = record.get("updated_at")
            archived = record.get("archived_at")
            created = item.created_at or utcnow()
            new = self._new_memory(
                replace(item, created_at=created, project=project),
                created,
                memory_id=memory_id,
                updated_at=parse_when(updated, "updated_at") if updated else created,
                archived_at=parse_when(archived, "archived_at") if archived else None,
            )
            return new, project, self._prepare_history(record.get("history"), project)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}{exc}") from None

    @database_errors
    def reembed(
        self,
        all: bool = False,
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-encode memories whose vector came from another model (or every memory), in
        batches of one transaction each; an interrupted run resumes where it stopped. A
        vector table of another dimension is rebuilt in one transaction once every new
        vector is made, so a failure leaves the old table. Returns how many were written.

        A memory whose content changed while its batch was being embedded is skipped: the
        update that changed it wrote its own vector (or left it stale for the next run)."""
        self._unbound("re-embed the store")
        model = self.embedder
        # A manifest whose dimension the model does not make fails here (ModelError),
        # before anything in the store changes.
        model.load()
        with self._lock:
            rebuild = self._store.vector_dimension() != model.dimension
        if rebuild:
            return self._rebuild_vectors(batch_size, progress)
        with self._lock, self._write():
            if all:
                self._store.mark_all_stale()
            pending = self._store.stale_seqs(model.name)
        self._vectors_checked = True
        done = written = 0
        for start in range(0, len(pending), batch_size):
            seqs = pending[start : start + batch_size]
            with self._lock:
                rows = self._store.fetch(seqs)
            texts = {seq: rows[seq].content for seq in seqs if seq in rows}
            vectors = self._vectors(list(texts.values()))
            with self._lock, self._write():
                now = self._store.fetch(list(texts))
                for (seq, text), vector in zip(texts.items(), vectors):
                    if seq in now and now[seq].content == text:
                        self._store.update(seq, {"embedding_model": model.name}, vector)
                        written += 1
            done += len(seqs)
            if progress:
                progress(done, len(pending))
        with self._lock, self._write():
            self._store.set_setting("embedding_model", model.name)
        return written

    def _vectors(self, texts: Sequence[str]) -> list[bytes]:
        vectors = self.embedder.embed(list(texts))
        if len(texts) and vectors.shape[-1] != self.embedder.dimension:
            raise ModelError(
                f"the model {self.embedder.name} made vectors of {vectors.shape[-1]} values, "
                f"its manifest says {self.embedder.dimension}: fix the manifest or re-export "
                "the model"
            )
        return [row.astype("<f4").tobytes() for row in vectors]

    def _rebuild_vectors(
        self, batch_size: int, progress: Callable[[int, int], None] | None
    ) -> int:
        """Every vector made again for a table of the model's dimension: all of them are
        embedded first (held in memory, 1.5 KB each at 384 dimensions), then one
        transaction drops the old table, creates the new one and writes them; memories
        added or changed meanwhile are embedded inside it."""
        model = self.embedder
        with self._lock:
            texts = {row.seq: row.content for row in self._store.iter_rows()}
        made: dict[int, tuple[str, bytes]] = {}
        seqs = list(texts)
        for start in range(0, len(seqs), batch_size):
            part = seqs[start : start + batch_size]
            vectors = self._vectors([texts[s] for s in part])
            made.update((s, (texts[s], v)) for s, v in zip(part, vectors))
            if progress:
                progress(len(made), len(seqs))
        with self._lock, self._write():
            now = {row.seq: row.content for row in self._store.iter_rows()}
            changed = [s for s, text in now.items() if s not in made or made[s][0] != text]
            for s, vector in zip(changed, self._vectors([now[s] for s in changed])):
                made[s] = (now[s], vector)
            self._store.recreate_vectors(model.dimension)
            for s in now:
                self._store.update(s, {"embedding_model": model.name}, made[s][1])
            self._store.set_setting("embedding_model", model.name)
        self._vectors_checked = True
        return len(now)
