"""Calibration of recall's absolute relevance (``memento.recall.relevance``, ``RELEVANT``).

    python benches/relevance.py --workdir /tmp/memento-eval   # ~1 min on 2 cores (+15 s to build)

A relevance must let recall say "nothing here is relevant". This measures it on the dev
split in ``../shared/eval`` (read at run time, never copied) with three kinds of query, each
run against each LoCoMo conversation's store (built as ``benches/recall_quality.py`` builds
them, and shared with it through ``--workdir``):

- ``own``: the conversation's own category 1-4 questions: relevant; the gold turns are known.
- ``other``: the questions of the four other conversations: unrelated (other people, other
  lives, the same kind of small talk: the hard case).
- ``scifact``: the 809 SciFact training claims: unrelated (another domain).

Every candidate of a hybrid recall (the 50 nearest and the 50 best keyword hits) is kept
with its evidence (``memento.recall.Evidence``). Printed:

1. The fit: slopes by weighted logistic regression (numpy, Newton) of the gold turns of
   ``own`` questions against the ten best-scored candidates of unrelated queries, each of
   the three groups weighing a third; the slopes rounded to whole numbers, and the
   intercept that makes relevance 0.5 the smallest bar keeping ``TARGET_SILENCE`` of the
   ``other`` queries silent.
2. With the constants in ``memento/recall.py``: the sweep of bars, with the share of
   unrelated queries that return nothing and the share of ``own`` questions that keep a
   gold turn among the results (``limit`` 10, recall's default); silence by pair of
   conversations; and a leave-one-store-out check (fit and bar on four stores, measured
   on the fifth).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from recall_quality import EVAL, locomo_questions, locomo_turns

from memento import Memory
from memento.embedder import Embedder
from memento.recall import (
    RELEVANCE_COVERAGE,
    RELEVANCE_INTERCEPT,
    RELEVANCE_SIMILARITY,
    RELEVANT,
)

KINDS = ("own", "other", "scifact")
LIMIT = 10  # recall's default limit: a question keeps a gold turn if one is among these
POOL = 50  # recall's candidate pool per list (memento.memory.search.MIN_POOL)
# The share of ``other`` queries that must return nothing at the chosen bar: the issue asks
# for 90 %; five points of margin because the held-out half of LoCoMo is harder, and for
# context injection a memory given unasked costs more than one missed.
TARGET_SILENCE = 0.95
NEGATIVES_PER_QUERY = 10  # the candidates of an unrelated query that could reach the results
SWEEP = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class Candidates:
    """One row per candidate of one (query, store) recall, in fused-score order per query."""

    query: np.ndarray  # int: which (query, store) recall
    kind: np.ndarray  # int: index in KINDS of that recall
    store: np.ndarray  # int: which conversation's store
    asked: np.ndarray  # int: for ``other``, the conversation the question belongs to; else -1
    rank: np.ndarray  # int: position by fused score
    features: np.ndarray  # float (n, 2): similarity, coverage
    gold: np.ndarray  # bool


def collect(workdir: Path, log=lambda s: print(s, file=sys.stderr)) -> tuple[Candidates, list]:
    data = json.loads((EVAL / "locomo" / "locomo_dev.json").read_text())
    claims = [
        json.loads(line)["text"]
        for line in (EVAL / "scifact" / "queries_train.jsonl").read_text().splitlines()
    ]
    embedder = Embedder()
    questions = {}
    for sample in data:
        known = {t["metadata"]["dia_id"] for t in locomo_turns(sample)}
        questions[sample["sample_id"]] = locomo_questions(sample, known)
    columns: dict[str, list] = {
        k: [] for k in ("query", "kind", "store", "asked", "rank", "f", "gold")
    }
    vectors: dict[str, list[bytes]] = {}
    names = list(questions)
    recalls = 0
    started = time.perf_counter()
    for store, sample in enumerate(data):
        sid = sample["sample_id"]
        path = workdir / f"locomo-{sid}.db"
        fresh = not path.exists()
        with Memory(path=path, embedder=embedder) as memory:
            if fresh:
                memory.store_many(locomo_turns(sample))
            if not vectors:  # embed every query once
                for other, asked in questions.items():
                    vectors[other] = memory._embed([q for q, _, _ in asked])
                vectors["scifact"] = memory._embed(claims)
            filters = memory._filters(None, None, None, None, False)
            batches = [("own", sid)] + [("other", o) for o in questions if o != sid]
            batches.append(("scifact", "scifact"))
            for kind, source in batches:
                texts = claims if source == "scifact" else [q for q, _, _ in questions[source]]
                golds = [g for _, _, g in questions[sid]] if kind == "own" else None
                for i, (text, vector) in enumerate(zip(texts, vectors[source])):
                    found = memory._candidates(text, vector, POOL, filters)
                    for rank, c in enumerate(found):
                        columns["query"].append(recalls)
                        columns["kind"].append(KINDS.index(kind))
                        columns["store"].append(store)
                        columns["asked"].append(names.index(source) if kind == "other" else -1)
                        columns["rank"].append(rank)
                        columns["f"].append((c.evidence.similarity, c.evidence.coverage))
                        columns["gold"].append(
                            golds is not None and c.row.metadata["dia_id"] in golds[i]
                        )
                    recalls += 1
        log(f"  {sid}: {recalls} recalls so far ({time.perf_counter() - started:.0f} s)")
    return Candidates(
        np.array(columns["query"]),
        np.array(columns["kind"]),
        np.array(columns["store"]),
        np.array(columns["asked"]),
        np.array(columns["rank"]),
        np.array(columns["f"], dtype=float),
        np.array(columns["gold"], dtype=bool),
    ), names


def fit_slopes(c: Candidates, mask: np.ndarray) -> np.ndarray:
    """Weighted logistic regression (Newton's method) of gold turns of ``own`` questions
    against the best ``NEGATIVES_PER_QUERY`` candidates of unrelated queries; each of the
    three groups weighs a third. Returns (intercept, *slopes)."""
    positive = mask & (c.kind == 0) & c.gold
    groups = [positive] + [
        mask & (c.kind == k) & (c.rank < NEGATIVES_PER_QUERY) for k in (1, 2)
    ]
    rows = groups[0] | groups[1] | groups[2]
    x = np.column_stack([np.ones(int(rows.sum())), c.features[rows]])
    y = positive[rows].astype(float)
    weight = np.zeros(len(c.kind))
    for group in groups:
        weight[group] = 1.0 / group.sum()
    w = weight[rows] / weight[rows].mean()
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-x @ beta))
        hessian = x.T @ (x * (w * p * (1 - p))[:, None]) + 1e-6 * np.eye(len(beta))
        step = np.linalg.solve(hessian, x.T @ (w * (p - y)))
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta


def measure(
    c: Candidates, logit: np.ndarray, bar: float, mask: np.ndarray
) -> tuple[float, float, float]:
    """(silence on ``other``, silence on ``scifact``, share of ``own`` questions that keep a
    gold turn) when results need ``logit`` >= ``bar`` and the first LIMIT are kept."""
    passed = mask & (logit >= bar)
    queries = np.unique(c.query[mask])
    kinds = np.zeros(c.query.max() + 1, dtype=int)
    kinds[c.query] = c.kind
    answered = np.zeros_like(kinds, dtype=bool)
    answered[c.query[passed]] = True
    # position among the candidates that passed, per query (rows are in rank order)
    order = np.lexsort((c.rank, c.query))
    q, ok = c.query[order], passed[order]
    counts = np.cumsum(ok)
    first = np.r_[0, np.flatnonzero(np.diff(q)) + 1]
    before = np.repeat(counts[first] - ok[first], np.diff(np.r_[first, len(q)]))
    shown = ok & (counts - before <= LIMIT)
    kept = np.zeros_like(answered)
    kept[q[shown & c.gold[order]]] = True
    def mean(values: np.ndarray) -> float:
        return float(np.mean(values)) if len(values) else math.nan

    share = [mean(~answered[queries[kinds[queries] == k]]) for k in (1, 2)]
    return share[0], share[1], mean(kept[queries[kinds[queries] == 0]])


def choose_bar(c: Candidates, logit: np.ndarray, mask: np.ndarray) -> float:
    """The smallest logit bar at which TARGET_SILENCE of the ``other`` queries are silent."""
    other = mask & (c.kind == 1)
    best = np.full(c.query.max() + 1, -np.inf)
    np.maximum.at(best, c.query[other], logit[other])
    tops = np.sort(best[np.unique(c.query[other])])
    return float(tops[min(len(tops) - 1, math.ceil(TARGET_SILENCE * len(tops)))])


def logit_of(c: Candidates, beta: np.ndarray) -> np.ndarray:
    return beta[0] + c.features @ beta[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the built stores here for reuse")
    args = parser.parse_args()
    if not EVAL.is_dir():
        raise SystemExit(f"evaluation data not found at {EVAL}: place ../shared beside the repo")
    with tempfile.TemporaryDirectory() as tmp:
        where = args.workdir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        c, names = collect(where)
    everything = np.ones(len(c.kind), dtype=bool)

    beta = fit_slopes(c, everything)
    print("## Fit on all five stores\n")
    print(f"- slopes: similarity {beta[1]:.2f}, coverage {beta[2]:.2f}; "
          f"fitted intercept {beta[0]:.2f}")
    rounded = np.array([0.0, round(beta[1]), round(beta[2])])  # whole numbers: readable
    bar = choose_bar(c, logit_of(c, rounded), everything)
    print(f"- with the slopes rounded ({rounded[1]:.0f}, {rounded[2]:.0f}), the bar for "
          f"{TARGET_SILENCE:.0%} silence on `other` is {bar:.2f}: RELEVANCE_INTERCEPT = "
          f"{-bar:.2f} makes relevance 0.5 that bar\n")

    current = np.array([RELEVANCE_INTERCEPT, RELEVANCE_SIMILARITY, RELEVANCE_COVERAGE])
    logit = logit_of(c, current)
    kinds = np.zeros(c.query.max() + 1, dtype=int)
    kinds[c.query] = c.kind
    counts = [int(np.sum(kinds == k)) for k in range(3)]
    print(f"## Sweep with memento/recall.py (intercept {current[0]:.2f}, similarity "
          f"{current[1]:.2f}, coverage {current[2]:.2f}; RELEVANT = {RELEVANT})\n")
    print(f"Recalls: {counts[0]} own questions, {counts[1]} other-conversation questions, "
          f"{counts[2]} SciFact claims (5 stores). Keep = a gold turn among the first "
          f"{LIMIT} results.\n")
    print("| min_score | silent: other conversation | silent: SciFact claims "
          "| own questions keeping a gold turn |")
    print("|---|---|---|---|")
    no_bar = measure(c, logit, -np.inf, everything)
    print(f"| none | {no_bar[0]:.3f} | {no_bar[1]:.3f} | {no_bar[2]:.3f} |")
    for value in sorted({*SWEEP, RELEVANT}):
        row = measure(c, logit, math.log(value / (1 - value)), everything)
        mark = " **(RELEVANT)**" if value == RELEVANT else ""
        print(f"| {value:.2f}{mark} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |")

    relevant = math.log(RELEVANT / (1 - RELEVANT))
    print("\n## Silence on `other` at RELEVANT, by conversation asked (row) and store "
          "(column)\n")
    print("| asked \\ store | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for a, asked in enumerate(names):
        cells = []
        for b in range(len(names)):
            pair = (c.asked == a) & (c.store == b)
            cells.append("" if a == b else f"{measure(c, logit, relevant, pair)[0]:.3f}")
        print(f"| {asked} | " + " | ".join(cells) + " |")

    print("\n## Leave one store out (fit and bar on four stores, measured on the fifth)\n")
    print("| held-out store | similarity | coverage | silent: other | silent: SciFact "
          "| keep a gold turn |")
    print("|---|---|---|---|---|---|")
    totals = []
    for store in range(int(c.store.max()) + 1):
        train, test = c.store != store, c.store == store
        fold = fit_slopes(c, train)
        fold[0] -= choose_bar(c, logit_of(c, fold), train)
        row = measure(c, logit_of(c, fold), 0.0, test)
        totals.append(row)
        print(f"| {names[store]} | {fold[1]:.2f} | {fold[2]:.2f} | {row[0]:.3f} | {row[1]:.3f} "
              f"| {row[2]:.3f} |")
    mean = np.mean(totals, axis=0)
    print(f"| mean | | | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} |")


if __name__ == "__main__":
    main()
