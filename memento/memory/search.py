"""Recall: finding the memories that answer a query, and saying how well they do.

Hybrid search (the nearest vectors and the best keyword matches, fused by
:func:`memento.recall.fuse`, then adjusted for importance and recency), the relevance of each
hit, ``min_score`` and ``max_tokens`` cuts, and the explanation of a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .. import validate
from ..context import MAX_BUDGET, count_many, full_line
from ..dates import to_iso, utcnow
from ..errors import DatabaseError, InvalidInputError
from ..recall import (
    Evidence,
    Explanation,
    adjust,
    coverage,
    factors,
    fuse,
    relevance,
    relevance_terms,
    scaled,
)
from ..records import MemoryRecord
from ..store import Filters, Row
from .base import MemoryBase, database_errors

MIN_POOL = 50
# How many results recall returns when not told.
DEFAULT_LIMIT = 10
# No memory's line costs fewer tokens than this (an id, a kind and a date alone cost 20):
# recall with max_tokens and no limit looks at no more than max_tokens / this results.
MIN_LINE_TOKENS = 16


@dataclass(frozen=True)
class _Candidate:
    """One recall hit before the cut: its fused (rank-ordering) score, its relevance."""

    row: Row
    score: float
    relevance: float
    evidence: Evidence
    matched: tuple[int, ...] = ()  # which of the query's relevance terms it contains


class Search(MemoryBase):
    """``recall`` and ``recall_many``, and the search beneath them."""

    def recall(
        self,
        query: str,
        limit: int | None = None,
        kind: str | Sequence[str] | None = None,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_archived: bool = False,
        min_score: float | None = None,
        all_projects: bool = False,
        explain: bool = False,
        max_tokens: int | None = None,
    ) -> list[MemoryRecord]:
        """Memories that match ``query`` by meaning and by keyword, best first, each with a
        ``score`` (the fused rank order, comparable only within one result list) and a
        ``relevance`` (0..1, the same for a memory and a query whatever else is stored:
        see :func:`memento.recall.relevance`). Filters are exact; the current project and
        global are searched unless ``all_projects``. ``min_score`` keeps only memories whose
        relevance is at least that much, so a query nothing answers returns ``[]``;
        :data:`memento.recall.RELEVANT` (0.5) is the calibrated bar for "relevant". Without
        ``min_score``, returns min(limit, number of matching memories) records.

        ``limit`` defaults to 10, or with ``max_tokens`` to as many as fit. ``max_tokens``
        keeps the best results whose lines, counted as the context block counts them
        (:func:`memento.context.count_tokens` of each memory's line), fit in that many
        tokens together; one too long for what is left is passed over and the next ones
        may still fit (as in the context block), and a memory is never cut.

        ``explain=True`` gives each record an ``explanation``
        (:class:`memento.recall.Explanation`): the parts its score and relevance were made
        of, and the filters that applied."""
        return self.recall_many(
            [query],
            limit,
            kind,
            subject_key_prefix,
            since,
            until,
            include_archived,
            min_score,
            all_projects,
            explain,
            max_tokens,
        )[0]

    @database_errors
    def recall_many(
        self,
        queries: Sequence[str],
        limit: int | None = None,
        kind: str | Sequence[str] | None = None,
        subject_key_prefix: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_archived: bool = False,
        min_score: float | None = None,
        all_projects: bool = False,
        explain: bool = False,
        max_tokens: int | None = None,
    ) -> list[list[MemoryRecord]]:
        """:meth:`recall` for several queries in one call (one result list per query);
        ``min_score``, ``max_tokens`` and ``explain`` apply to each, as in :meth:`recall`;
        ``min_score`` is a bar on each result's ``relevance``."""
        texts = validate.queries(queries)
        tokens = _max_tokens(max_tokens)
        if limit is None:
            limit = DEFAULT_LIMIT if tokens is None else tokens // MIN_LINE_TOKENS + 1
            limit = min(limit, validate.MAX_RECALL_LIMIT)
        limit = validate.limit(limit, maximum=validate.MAX_RECALL_LIMIT)
        threshold = validate.min_score(min_score)
        filters = self._filters(
            kind, subject_key_prefix, since, until, include_archived, all_projects
        )
        vectors = self._embed(texts) if texts else []
        return [
            self._search(
                text, vector, limit, filters, threshold, explain=bool(explain), max_tokens=tokens
            )
            for text, vector in zip(texts, vectors)
        ]

    def _search(
        self,
        text: str,
        vector: bytes,
        limit: int,
        filters: Filters,
        min_score: float | None,
        mode: str = "hybrid",
        *,
        explain: bool = False,
        max_tokens: int | None = None,
    ) -> list[MemoryRecord]:
        """The best ``limit`` candidates by fused score, keeping only those whose relevance
        is at least ``min_score`` (never padded with weaker ones) and, with ``max_tokens``,
        whose lines fit in it. Relevance is assessed ``limit`` candidates at a time, best
        first, until enough pass: stemming all ~85 candidates of a SciFact recall costs
        6 ms, the recall itself 13."""
        trace: dict[str, Any] | None = {} if explain else None
        ranked, rows, ids = self._ranked(
            text, vector, max(MIN_POOL, 2 * limit), filters, mode, trace, rows=limit
        )
        words = relevance_terms(text)
        with self._lock:  # the store's tokenizer is its connection's: one thread at a time
            query_terms = self._store.stems(words)
        results: list[MemoryRecord] = []
        spent = 0
        applied = _applied(filters, min_score, max_tokens) if trace is not None else {}
        for start in range(0, len(ranked), limit):
            chunk = ranked[start : start + limit]
            unread = [seq for seq, _, _ in chunk if seq not in rows]
            if unread:  # past the first chunk: the rest are read as they are needed
                with self._lock, self._store.transaction(write=False):
                    later = self._store.fetch(unread)
                # a memory deleted since the ranking's snapshot is left out, and so is
                # another memory that has taken its freed seq
                rows.update((seq, row) for seq, row in later.items() if row.id == ids[seq])
            hits = [(rows[seq], score, sim) for seq, score, sim in chunk if seq in rows]
            found = [
                (c, c.row.record(round(c.score, 6), relevance=round(c.relevance, 6)))
                for c in self._assess(query_terms, hits)
                if min_score is None or c.relevance >= min_score
            ]
            if trace is not None:
                found = [
                    (c, replace(r, explanation=self._explain(c, trace, words, applied)))
                    for c, r in found
                ]
            if max_tokens is None:
                results.extend(r for _, r in found)
            else:
                costs = count_many([full_line(r) + "\n" for _, r in found])
                for (_, record), cost in zip(found, costs):
                    if spent + cost <= max_tokens and len(results) < limit:
                        results.append(record)
                        spent += cost
                if max_tokens - spent < MIN_LINE_TOKENS:
                    break
            if len(results) >= limit:
                break
        results = results[:limit]
        seqs = {row.id: row.seq for row in rows.values()}
        with self._lock:
            counts = self._store.version_counts([seqs[r.id] for r in results])
        return [replace(r, versions=counts.get(seqs[r.id], 0) + 1) for r in results]

    def _explain(
        self, c: _Candidate, trace: dict[str, Any], words: list[str], applied: dict[str, Any]
    ) -> Explanation:
        """The parts of one result's score, from what :meth:`_ranked` traced."""
        seq = c.row.seq
        vector = trace["vector"].get(seq)
        keyword = trace["keyword"].get(seq)
        age_days = (trace["now"] - c.row.created_at).total_seconds() / 86400
        importance_factor, recency_factor = factors(c.row.importance, age_days, self.weights)
        return Explanation(
            vector_rank=vector[0] if vector else None,
            vector_part=vector[1] if vector else 0.0,
            similarity=c.evidence.similarity,
            keyword_rank=keyword[0] if keyword else None,
            keyword_part=keyword[1] if keyword else 0.0,
            bm25=trace["bm25"].get(seq),
            matched_terms=tuple(words[i] for i in c.matched),
            fused=trace["fused"][seq],
            importance=c.row.importance,
            importance_factor=importance_factor,
            age_days=age_days,
            recency_factor=recency_factor,
            score=c.score,
            coverage=c.evidence.coverage,
            query_terms=c.evidence.terms,
            relevance=c.relevance,
            method=self.weights.method,
            weights={"vector": self.weights.vector, "keyword": self.weights.keyword},
            filters=applied,
        )

    def _candidates(
        self, text: str, vector: bytes, pool: int, filters: Filters, mode: str = "hybrid"
    ) -> list[_Candidate]:
        """Every hit of the ``pool`` nearest and ``pool`` best keyword matches, best fused
        score first, each with the evidence of its relevance (benches/relevance.py reads it)."""
        ranked, rows, _ = self._ranked(text, vector, pool, filters, mode)
        hits = [(rows[seq], score, similarity) for seq, score, similarity in ranked]
        with self._lock:
            terms = self._store.stems(relevance_terms(text))
        return self._assess(terms, hits)

    def _ranked(
        self,
        text: str,
        vector: bytes,
        pool: int,
        filters: Filters,
        mode: str,
        trace: dict[str, Any] | None = None,
        rows: int | None = None,
    ) -> tuple[list[tuple[int, float, float]], dict[int, Row], dict[int, str]]:
        """(seq, fused score after importance and recency, cosine similarity) of every
        candidate, best score first, the rows of the first ``rows`` of them (None: of
        all), read in the same snapshot, and every candidate's id. Ranking needs only each
        candidate's importance and age: reading the ~90 full rows of a recall cost 1.3 ms,
        a fifth of the search at 10,000 memories, for the 10 it returns. ``trace`` (a
        dict) is filled with what an explanation needs: each list's places and scaled
        scores, the BM25 scores, the fused scores and the moment the ages were taken at."""
        with self._lock, self._store.transaction(write=False):
            vector_hits = self._store.knn(vector, pool, filters) if mode != "keyword" else []
            keyword_hits = (
                self._store.keyword(text, pool, filters) if mode != "dense" else []
            )
            fused = fuse(vector_hits, keyword_hits, self.weights)
            weighed = self._store.factors(list(fused))
            # keyword-only hits have no distance from the nearest-neighbour search
            similarity = {seq: 1.0 - distance for seq, distance in vector_hits}
            missing = [seq for seq in fused if seq not in similarity]
            similarity.update(self._store.similarities(vector, missing))
            if len(weighed) != len(fused):  # one read snapshot: only a damaged index
                raise DatabaseError(
                    f"the search index of {self.path} points at memories that do not exist: "
                    "run `memento verify`, then restore from a backup"
                )
            now = utcnow()
            ranked = []
            for seq, base in fused.items():
                importance, created_at, _ = weighed[seq]
                age_days = (now - created_at).total_seconds() / 86400
                score = adjust(base, importance, age_days, self.weights)
                ranked.append((seq, score, similarity.get(seq, 0.0)))
            ranked.sort(key=lambda hit: (-hit[1], -hit[0]))
            found = self._store.fetch([seq for seq, _, _ in ranked[:rows]])
        if trace is not None:
            trace.update(
                vector=scaled(vector_hits, self.weights),
                keyword=scaled(keyword_hits, self.weights),
                bm25={seq: -raw for seq, raw in keyword_hits},
                fused=fused,
                now=now,
            )
        ids = {seq: memory_id for seq, (_, _, memory_id) in weighed.items()}
        return ranked, found, ids

    def _assess(
        self, query_terms: list[frozenset[str]], hits: Sequence[tuple[Row, float, float]]
    ) -> list[_Candidate]:
        """The relevance of each hit, from its similarity and the query words it contains."""
        with self._lock:  # concurrent recalls (the HTTP server) share the connection
            documents = self._store.stems(
                [f"{row.content} {row.subject_key or ''}" for row, _, _ in hits]
            )
        found = []
        for (row, score, similarity), document in zip(hits, documents):
            evidence = Evidence(similarity, coverage(query_terms, document), len(query_terms))
            matched = tuple(i for i, word in enumerate(query_terms) if word & document)
            found.append(_Candidate(row, score, relevance(evidence), evidence, matched))
        return found


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"max_tokens must be a whole number of tokens, got {value!r}")
    if not MIN_LINE_TOKENS <= value <= MAX_BUDGET:
        raise InvalidInputError(
            f"max_tokens must be between {MIN_LINE_TOKENS} and {MAX_BUDGET}, got {value}: no "
            f"memory's line costs fewer than {MIN_LINE_TOKENS}"
        )
    return value


def _applied(filters: Filters, min_score: float | None, max_tokens: int | None) -> dict[str, Any]:
    """The filters a search applied, as an explanation lists them (only those set)."""
    applied: dict[str, Any] = {}
    if filters.kinds:
        applied["kind"] = list(filters.kinds)
    if filters.prefix:
        applied["subject_key_prefix"] = filters.prefix
    if filters.since is not None:
        applied["since"] = to_iso(filters.since)
    if filters.until is not None:
        applied["until"] = to_iso(filters.until)
    if filters.include_archived:
        applied["include_archived"] = True
    if filters.scopes is not None:
        applied["scopes"] = list(filters.scopes)
    if min_score is not None:
        applied["min_score"] = min_score
    if max_tokens is not None:
        applied["max_tokens"] = max_tokens
    return applied
