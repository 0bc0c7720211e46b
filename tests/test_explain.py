"""Why this memory: recall's explanation of each score, and the best results within a token
budget, through the API and the CLI (the MCP tools: tests/test_server_recall.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from memento import InvalidInputError, Memory, cli
from memento.context import count_many, full_line
from memento.embedder import Embedder
from memento.recall import (
    RELEVANCE_COVERAGE,
    RELEVANCE_INTERCEPT,
    RELEVANCE_SIMILARITY,
    relevance_terms,
)

NOTES = [
    ("Run the database migrations before deploying the API", "lesson", 0.9, None),
    ("Deployed release 2.3 of the API to production", "event", 0.5, None),
    ("The API is deployed with GitHub Actions on every tag", "fact", 0.7, "project.api.deploy"),
    ("I prefer dark mode in editors", "fact", 0.8, "user.theme"),
    ("The staging server is called apollo", "fact", 0.3, None),
    ("Lunch with the design team on Friday", "event", 0.2, None),
]


@pytest.fixture
def notes(memory: Memory) -> Memory:
    for content, kind, importance, key in NOTES:
        created = "2026-10-01T12:00:00Z" if kind == "event" else None
        memory.store(
            content, kind=kind, importance=importance, subject_key=key, created_at=created
        )
    return memory


def test_each_score_is_recomputed_from_its_parts(notes: Memory) -> None:
    query = "how do we deploy the API"
    plain = notes.recall(query, limit=10)
    explained = notes.recall(query, limit=10, explain=True)

    assert [(r.id, r.score, r.relevance) for r in explained] == [
        (r.id, r.score, r.relevance) for r in plain
    ]  # explaining changes nothing about the result
    assert all(r.explanation is None for r in plain)
    words = relevance_terms(query)
    for record in explained:
        why = record.explanation
        assert why is not None
        w = why.weights
        fused = (w["vector"] * why.vector_part + w["keyword"] * why.keyword_part) / (
            w["vector"] + w["keyword"]
        )
        assert why.fused == pytest.approx(fused, abs=1e-12)
        assert why.importance == record.importance
        assert why.importance_factor == pytest.approx(1 + 0.2 * (record.importance - 0.5))
        assert why.recency_factor == pytest.approx(1 + 0.1 * 0.5 ** (why.age_days / 30))
        assert record.score == round(why.fused * why.importance_factor * why.recency_factor, 6)
        z = (
            RELEVANCE_INTERCEPT
            + RELEVANCE_SIMILARITY * why.similarity
            + RELEVANCE_COVERAGE * why.coverage
        )
        assert record.relevance == round(1 / (1 + math.exp(-z)), 6)
        assert why.coverage == pytest.approx(len(why.matched_terms) / max(len(words), 3))
        assert set(why.matched_terms) <= set(words) and why.query_terms == len(words)
        assert (why.keyword_rank is None) == (why.bm25 is None)
    ranked = sorted((r for r in explained if r.explanation.vector_rank), key=lambda r: (
        r.explanation.vector_rank))
    similarities = [r.explanation.similarity for r in ranked]
    assert similarities == sorted(similarities, reverse=True)  # the vector list's order
    top = explained[0].explanation
    assert top.vector_rank and top.keyword_rank  # found by meaning and by keyword
    assert {"deploy", "api"} <= set(top.matched_terms)
    data = explained[0].to_dict()["explanation"]
    assert data["matched_terms"] == list(top.matched_terms)
    assert "explanation" not in plain[0].to_dict()


def test_the_explanation_lists_the_filters_that_applied(notes: Memory) -> None:
    found = notes.recall(
        "deploy", kind=["event", "lesson"], since="2026-01", until="2026-12",
        subject_key_prefix="", min_score=0.0, explain=True,
    )
    assert found and all(r.kind in ("event", "lesson") for r in found)
    assert found[0].explanation.filters == {
        "kind": ["event", "lesson"],
        "since": "2026-01-01T00:00:00.000000Z",
        "until": "2026-12-31T23:59:59.999999Z",
        "min_score": 0.0,
    }
    assert notes.recall("deploy", explain=True)[0].explanation.filters == {}


def greedy(records: list, budget: int) -> list[str]:
    """The ids that fit in ``budget``, best first, each line counted as the context block
    counts it, passing over one too long for what is left."""
    chosen, spent = [], 0
    for record, cost in zip(records, count_many([full_line(r) + "\n" for r in records])):
        if spent + cost <= budget:
            chosen.append(record.id)
            spent += cost
    return chosen


def test_max_tokens_returns_the_best_results_that_fit(notes: Memory) -> None:
    everything = notes.recall("deploy the API", limit=50)
    for budget in (16, 25, 60, 100, 1000):
        found = notes.recall("deploy the API", max_tokens=budget)
        assert [r.id for r in found] == greedy(everything, budget)
        lines = [full_line(r) + "\n" for r in found]
        assert sum(count_many(lines)) <= budget
    assert len(notes.recall("deploy the API", max_tokens=1000)) == len(NOTES)  # not capped at 10
    assert len(notes.recall("deploy the API", max_tokens=1000, limit=2)) == 2


def test_max_tokens_passes_over_a_memory_too_long_for_the_budget(notes: Memory) -> None:
    long = notes.store(
        "The zebra rollout checklist for the API: " + "step and check again, " * 120,
        kind="lesson",
    )
    ranked = [r.id for r in notes.recall("zebra rollout checklist for the API")]
    assert ranked[0] == long.id
    found = [r.id for r in notes.recall("zebra rollout checklist for the API", max_tokens=120)]
    assert long.id not in found
    assert found[:2] == ranked[1:3]  # the next best still fit


@pytest.mark.parametrize("bad", [0, 15, 20_001, "500", True, 1.5])
def test_max_tokens_must_be_a_sensible_number(notes: Memory, bad: object) -> None:
    with pytest.raises(InvalidInputError, match="max_tokens"):
        notes.recall("deploy", max_tokens=bad)  # type: ignore[arg-type]


def test_cli_search_explains_and_fits_a_budget(
    db_location: Path, notes: Memory, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli.cli, ["--db", str(db_location), *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    out = run("search", "deploy the API", "--explain", "--kind", "lesson", "--limit", "1")
    lines = out.splitlines()
    assert lines[0].startswith("filters: kind=lesson scopes=global,")  # + the project
    assert "Run the database migrations" in lines[1]
    assert lines[2].strip().startswith("score ") and "= fused 1.0000 x importance 1.080" in lines[2]
    assert "vector #1" in lines[3] and "keyword #1" in lines[3]
    assert "matched 2 of 2 query words" in lines[4] and "deploy, api" in lines[4]
    data = json.loads(run("search", "deploy the API", "--explain", "--json", "--limit", "2"))
    assert data[0]["explanation"]["vector_rank"] >= 1
    assert data[0]["score"] == round(
        data[0]["explanation"]["fused"] * data[0]["explanation"]["importance_factor"]
        * data[0]["explanation"]["recency_factor"], 6)
    everything = notes.recall("deploy the API", limit=50)
    fitted = run("search", "deploy the API", "--max-tokens", "60").splitlines()
    assert [line.split()[1] for line in fitted] == [i[:12] for i in greedy(everything, 60)]
