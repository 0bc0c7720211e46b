"""Absolute relevance: recall can say "nothing here is relevant" (issue 12 section 2).

Real SQLite files and the real bundled model. int8 kernels give slightly different vectors
per CPU (cosine ~0.987 between machines), so the assertions leave wide margins: the related
queries below score above 0.95 on the machine that calibrated them, the unrelated ones below
0.01, against a bar of 0.5.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memento import Memory
from memento.embedder import Embedder
from memento.recall import (
    MIN_COVERAGE_TERMS,
    RELEVANT,
    Evidence,
    coverage,
    keyword_terms,
    relevance,
    relevance_terms,
)

PROJECT = [
    ("The project uses PostgreSQL 16 as its main database", "fact", "project.db"),
    ("Run the test suite with pytest -q from the repo root", "fact", "project.tests"),
    ("I prefer dark mode in editors", "fact", "user.theme"),
    ("Deploy to staging with docker compose up -d on the build box", "fact", None),
    ("Lesson: CI fails when ruff finds unused imports; run ruff check before pushing",
     "lesson", None),
    ("Fixed the flaky login test by mocking the clock", "event", None),
]
RELATED = {
    "which database do we use?": "PostgreSQL 16",
    "how do I run the tests": "pytest -q",
    "how to deploy to staging": "docker compose",
    "was the login test flaky": "mocking the clock",
}
UNRELATED = [
    "recipe for banana bread",
    "who won the 1998 world cup",
    "what's the weather in Paris tomorrow",
    "best hiking trails in Colorado",
]
# Other people's lives and other domains: what a busy store also holds.
NOISE = [
    "Caroline went to an LGBTQ support group on Tuesday",
    "Melanie painted a sunrise over the lake last summer",
    "The mitochondria produce ATP through oxidative phosphorylation",
    "Quarterly revenue grew by twelve percent in the retail segment",
    "Our cat knocked a plant off the windowsill again",
    "The museum exhibition on Roman coins opens in March",
    "Bake the bread at 200 degrees for forty minutes",
    "The hiking club meets at the trailhead every Saturday",
] * 3


@pytest.fixture
def project(memory: Memory) -> Memory:
    for content, kind, key in PROJECT:
        memory.store(content, kind=kind, subject_key=key)
    return memory


@pytest.mark.parametrize("query", sorted(RELATED))
def test_related_query_finds_its_memory_above_the_bar(project: Memory, query: str) -> None:
    found = project.recall(query, min_score=RELEVANT)
    assert found, f"{query!r} found nothing relevant"
    assert RELATED[query] in found[0].content
    assert found[0].relevance is not None and found[0].relevance >= RELEVANT


@pytest.mark.parametrize("query", UNRELATED)
def test_unrelated_query_returns_nothing(project: Memory, query: str) -> None:
    assert project.recall(query, min_score=RELEVANT) == []
    everything = project.recall(query)  # without a bar recall still ranks what it has
    assert len(everything) == len(PROJECT)
    assert max(r.relevance or 0.0 for r in everything) < RELEVANT / 5


def test_every_result_has_a_relevance_and_the_bar_never_pads(project: Memory) -> None:
    query = "which database do we use?"
    everything = project.recall(query, limit=50)
    assert all(r.relevance is not None and 0.0 <= r.relevance <= 1.0 for r in everything)
    assert [r.score for r in everything] == sorted((r.score for r in everything), reverse=True)
    kept = project.recall(query, limit=50, min_score=RELEVANT)
    assert 0 < len(kept) < len(everything)
    assert all((r.relevance or 0.0) >= RELEVANT for r in kept)
    # the bar filters, it does not reorder: the kept results are the passing ones, in order
    assert [r.id for r in kept] == [
        r.id for r in everything if (r.relevance or 0.0) >= RELEVANT
    ]


def test_recall_many_applies_the_bar_to_each_query(project: Memory) -> None:
    answers = project.recall_many(
        ["how do I run the tests", "recipe for banana bread"], min_score=RELEVANT
    )
    assert "pytest" in answers[0][0].content
    assert answers[1] == []


def test_relevance_of_a_hit_does_not_depend_on_the_rest_of_the_store(
    tmp_path: Path, embedder: Embedder
) -> None:
    query = "how do I run the tests"
    with Memory(path=tmp_path / "small.db", embedder=embedder) as small:
        for content, kind, key in PROJECT:
            small.store(content, kind=kind, subject_key=key)
        alone = {r.content: r.relevance for r in small.recall(query, limit=50)}
    with Memory(path=tmp_path / "busy.db", embedder=embedder) as busy:
        busy.store_many({"content": f"{text} ({i})", "kind": "event"}
                        for i, text in enumerate(NOISE))
        for content, kind, key in PROJECT:
            busy.store(content, kind=kind, subject_key=key)
        crowded = {r.content: r.relevance for r in busy.recall(query, limit=50)}
    # the min-max scaled score of the same memory moves with its neighbours; relevance not
    for content, value in alone.items():
        assert crowded[content] == pytest.approx(value, abs=1e-4)


def test_keyword_only_hits_get_their_cosine(memory: Memory) -> None:
    """A hit that only the keyword search found still has its true cosine similarity, so
    its relevance is not that of a memory with nothing in common with the query."""
    import numpy as np

    memory.store_many(
        {"content": f"Chatter number {i} about gardening and tomatoes", "kind": "event"}
        for i in range(20)
    )
    text = "zebrafish retina regeneration after injury"
    target = memory.store(text, kind="event")
    # the keyword side looks for the zebrafish words, the vector side for gardening: the
    # five nearest are all gardening notes and the zebrafish memory is a keyword-only hit
    vector = memory._embed(["gardening tomatoes"])[0]
    filters = memory._filters(None, None, None, None, False)
    with memory._store.transaction(write=False):
        nearest = {seq for seq, _ in memory._store.knn(vector, 5, filters)}
    words = "zebrafish retina regeneration"
    found = {c.row.id: c for c in memory._candidates(words, vector, 5, filters)}
    hit = found[target.id]
    assert hit.row.seq not in nearest
    expected = float(
        np.frombuffer(vector, dtype="<f4") @ np.frombuffer(memory._embed([text])[0], dtype="<f4")
    )
    assert hit.evidence.similarity == pytest.approx(expected, abs=1e-3)
    assert hit.evidence.coverage == 1.0


def test_coverage_counts_query_words_as_the_keyword_index_stems_them(memory: Memory) -> None:
    running, tests, zebra, cats = memory._store.stems(["Running", "test", "zebra", "cats"])
    (document,) = memory._store.stems(["Caroline ran running tests"])
    assert running <= document and tests <= document
    words = [running, tests, zebra, cats]
    assert coverage(words, document) == 0.5
    assert coverage(words[:2], document) == pytest.approx(2 / MIN_COVERAGE_TERMS)
    assert coverage([], document) == 0.0


def test_short_and_empty_prompts_are_not_relevant(project: Memory) -> None:
    """Stopwords say nothing, and one shared word is weak evidence: "continue" must not
    inject every memory that happens to hold the word."""
    project.store("Continue the migration after the release freeze", kind="event")
    for prompt in ("do it", "yes", "ok, go on", "continue"):
        assert project.recall(prompt, min_score=RELEVANT) == [], prompt


def test_relevance_grows_with_each_kind_of_evidence() -> None:
    low = relevance(Evidence(similarity=0.3, coverage=0.0, terms=3))
    assert low < relevance(Evidence(similarity=0.6, coverage=0.0, terms=3))
    assert low < relevance(Evidence(similarity=0.3, coverage=1.0, terms=3))
    assert 0.0 < relevance(Evidence(-1.0, 0.0, 1)) < relevance(Evidence(1.0, 1.0, 1)) < 1.0


def test_keyword_terms_drop_stopwords_unless_nothing_is_left() -> None:
    assert keyword_terms("What is the database?") == ["database"]
    assert keyword_terms("what is the") == ["what", "is", "the"]
    assert keyword_terms("!!!") == []
    assert relevance_terms("what is the") == []  # evidence never comes from stopwords


@pytest.mark.sqlite_only
def test_similarities_from_the_index_copies_equal_the_vector_table(
    db_location: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cosines are read from the float copies in memory_bits, and from vec0 when a
    store lacks them: both must give the same figure, or relevance would depend on it."""
    from memento.store import sqlite as store
    from memento.store import sqlite_index as index

    with Memory(path=db_location, embedder=embedder) as m:
        for content, kind, key in PROJECT:
            m.store(content, kind=kind, subject_key=key)
        vector = m._embed(["how do I run the tests"])[0]
        seqs = list(range(1, len(PROJECT) + 1))
        with store.transaction(m.conn, write=False):
            copies = store.similarities(m.conn, vector, seqs)
            monkeypatch.setattr(index, "has_table", lambda conn: False)
            table = store.similarities(m.conn, vector, seqs)
    assert set(copies) == set(table) == set(seqs)
    for seq in seqs:
        assert copies[seq] == pytest.approx(table[seq], abs=1e-5)
    assert max(table.values()) > 0.3 > min(table.values())
