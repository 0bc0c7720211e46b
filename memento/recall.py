"""Ranking for hybrid recall: the keyword query, rank fusion, the gentle importance and
recency factors, and the absolute relevance of a hit (``relevance``, ``RELEVANT``). Pure
functions over ids and numbers; the queries live in ``store``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Words too common to say anything about which memory is meant. Dropped from the keyword
# query (unless nothing else is left), so FTS5 never walks the posting list of "the".
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves
    """.split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 32


def keyword_terms(text: str) -> list[str]:
    """The words of free text that keyword search looks for: lower case, each once, the
    stopwords dropped unless nothing else is left, at most ``MAX_TERMS``."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        word = word.strip("_")
        if word and word not in words:
            words.append(word)
    return ([w for w in words if w not in STOPWORDS] or words)[:MAX_TERMS]


def keyword_query(text: str) -> str | None:
    """An FTS5 MATCH expression for free text: the OR of its words, each a quoted string, so
    nothing the user typed is read as FTS5 syntax. None when there is no word at all."""
    terms = keyword_terms(text)
    return " OR ".join(f'"{w}"' for w in terms) if terms else None


@dataclass(frozen=True)
class Weights:
    """Tuning of the fusion. ``relative`` fusion beat reciprocal-rank fusion on the dev data
    (LoCoMo R@10 0.665 vs 0.603, SciFact nDCG@10 0.735 vs 0.712; benches/recall_quality.py):
    RRF throws away how far apart two candidates' scores are. Equal list weights: a keyword
    weight of 1.3 moved either figure by under 0.01, not worth a number nobody can explain.
    ``rrf_k`` flattens rank differences (RRF only); importance and recency move a score by
    at most ``importance``/2 and ``recency`` (fractions)."""

    method: str = "relative"  # "relative" (min-max scaled scores) or "rrf" (reciprocal ranks)
    rrf_k: float = 60.0
    vector: float = 1.0
    keyword: float = 1.0
    importance: float = 0.2
    recency: float = 0.1
    recency_half_life_days: float = 30.0


DEFAULT_WEIGHTS = Weights()


def scaled(hits: Sequence[tuple[int, float]], weights: Weights) -> dict[int, tuple[int, float]]:
    """The place (1 = best) and the scaled score (0..1, 1 for the best) of each key in one
    best-first list of (key, raw score), as :func:`fuse` weighs it: min-max scaled raw
    scores (``relative``), or ``(rrf_k + 1) / (rrf_k + rank)`` (``rrf``)."""
    if weights.method == "rrf":
        return {
            key: (rank, (weights.rrf_k + 1) / (weights.rrf_k + rank))
            for rank, (key, _) in enumerate(hits, start=1)
        }
    if not hits:
        return {}
    # Both raw scores are "lower is better": cosine distance, and bm25() as SQLite gives it.
    values = [-raw for _, raw in hits]
    low, high = min(values), max(values)
    span = high - low
    return {
        key: (rank, (value - low) / span if span > 0 else 1.0)
        for rank, ((key, _), value) in enumerate(zip(hits, values), start=1)
    }


def fuse(
    vector_hits: Sequence[tuple[int, float]],
    keyword_hits: Sequence[tuple[int, float]],
    weights: Weights = DEFAULT_WEIGHTS,
) -> dict[int, float]:
    """Fuse two best-first lists of (key, raw score) into one score per key, in [0, 1]: the
    weighted mean of each key's :func:`scaled` scores (0 in a list it is not in).

    ``rrf``: reciprocal-rank fusion, scaled so that being first in both lists scores 1.
    ``relative``: each list's scores min-max scaled to [0, 1] (vector hits carry cosine
    distances, keyword hits SQLite's BM25), then a weighted mean.
    """
    total = weights.vector + weights.keyword
    scores: dict[int, float] = {}
    for hits, weight in ((vector_hits, weights.vector), (keyword_hits, weights.keyword)):
        for key, (_, value) in scaled(hits, weights).items():
            scores[key] = scores.get(key, 0.0) + weight * value
    return {key: value / total for key, value in scores.items()}


def factors(importance: float, age_days: float, weights: Weights) -> tuple[float, float]:
    """The importance factor (0..1, neutral at 0.5) and the recency factor (its bonus
    halving every half-life) that :func:`adjust` multiplies a fused score by."""
    factor = 1.0 + weights.importance * (importance - 0.5)
    recency = math.pow(0.5, max(age_days, 0.0) / weights.recency_half_life_days)
    return factor, 1.0 + weights.recency * recency


def adjust(score: float, importance: float, age_days: float, weights: Weights) -> float:
    """Importance and recency as gentle multiplicative factors on a fused score."""
    importance_factor, recency_factor = factors(importance, age_days, weights)
    return score * importance_factor * recency_factor


# ---- relevance ----------------------------------------------------------------------------
#
# The fused score ranks the candidates of one query against each other (each list is min-max
# scaled per query), so it cannot say "nothing here is relevant". Relevance can: it reads only
# evidence about the query and the one memory, never the other candidates or the store's term
# statistics, so it means the same in every store and for every query.
#
# relevance = 1 / (1 + exp(-(INTERCEPT + SIMILARITY * cosine + COVERAGE * coverage))).
# Fitted 2026-11-26 by benches/relevance.py on ../shared/eval (dev split): the slopes by
# weighted logistic regression (numpy, Newton) of the gold turns of LoCoMo questions recalled
# in their own conversation's store, against the ten best candidates of LoCoMo questions
# recalled in another conversation's store and of SciFact claims recalled in a LoCoMo store
# (each group a third of the weight): 15.96 and 10.31, rounded. The intercept is not the
# fitted one (-9.23, which only reflects the chosen weights): it makes relevance 0.5 the bar
# that 95 % of the other-conversation questions stay under. In words: a memory is relevant
# when 1.6 * cosine + coverage >= 1.19, so one sharing no word with the query needs a
# cosine of 0.74, and one holding every word of a long query a cosine of 0.12.
RELEVANCE_INTERCEPT = -11.9
RELEVANCE_SIMILARITY = 16.0
RELEVANCE_COVERAGE = 10.0

# The bar for "relevant enough to put in an agent's context" (Memory.context, min_score).
# Measured by benches/relevance.py, 2026-11-26, on 5 LoCoMo dev stores with limit 10
# (benches/results/2026-11-26-relevance.md): at 0.5, 95.2 % of 3,040 questions asked of
# another conversation and 100 % of 4,045 SciFact claims return nothing, and 62.8 % of the
# 760 LoCoMo questions keep a gold turn (73.2 % have one in their first ten without a bar).
# Fitted without each store in turn and measured on it: 94.2 % silent, 63.7 % keep one.
# Most of the questions that still get an answer from another conversation name a person
# of that conversation too (conv-41 and conv-43 both have a John).
RELEVANT = 0.5


@dataclass(frozen=True)
class Evidence:
    """What says a memory answers a query: the cosine similarity of their vectors, and the
    share of the query's words (``relevance_terms``, stemmed as the keyword index stems)
    found in the memory's text or subject key (``coverage``); ``terms`` is how many words
    the query has."""

    similarity: float
    coverage: float
    terms: int


# Coverage counts the query's words found out of at least this many: one or two shared words
# are weak evidence (a prompt of "continue" or "thanks" would otherwise fully match any memory
# holding that word), so a short query needs the vectors to agree. Free on the dev data: the
# LoCoMo questions have 3+ content words (all but 17 of 760), and refitting with 1, 2, 3 or 4
# here moved the share keeping a gold turn by under 0.01 (features of benches/relevance.py).
MIN_COVERAGE_TERMS = 3


def relevance_terms(text: str) -> list[str]:
    """The words of a query that count as keyword evidence: ``keyword_terms`` without the
    stopwords, even when nothing else is left ("do it" says nothing about any memory)."""
    return [w for w in keyword_terms(text) if w not in STOPWORDS]


def coverage(query_terms: Sequence[frozenset[str]], document: frozenset[str]) -> float:
    """The share of the query's words (each the set of stems it yields) that ``document``
    (the stems of a memory) contains, out of at least ``MIN_COVERAGE_TERMS``."""
    found = sum(1 for word in query_terms if word & document)
    return found / max(len(query_terms), MIN_COVERAGE_TERMS)


def relevance(evidence: Evidence) -> float:
    """The relevance (0..1) of a memory to a query: a logistic function of the evidence,
    0.5 at the calibrated bar ``RELEVANT`` (how it was fitted: see ``RELEVANCE_*``)."""
    z = (
        RELEVANCE_INTERCEPT
        + RELEVANCE_SIMILARITY * evidence.similarity
        + RELEVANCE_COVERAGE * evidence.coverage
    )
    return 1.0 / (1.0 + math.exp(-z))


# ---- explanations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """Why a memory was recalled where it was: every part of its score (``recall(...,
    explain=True)``). In numbers: ``fused = (weights["vector"] * vector_part +
    weights["keyword"] * keyword_part) / (weights["vector"] + weights["keyword"])``, ``score =
    fused * importance_factor * recency_factor``, and ``relevance`` the logistic function of
    ``similarity`` and ``coverage`` (:func:`relevance`).

    ``vector_rank`` and ``keyword_rank`` are its places (1 = best) in the nearest-neighbour
    and the keyword candidate lists, None when it is not in one; ``vector_part`` and
    ``keyword_part`` its scaled scores there (:func:`scaled`, 0 when absent). ``similarity``
    is the cosine of the query's and the memory's vectors (computed for a keyword-only hit
    too), ``bm25`` its keyword score (higher is better; None when no query word matched).
    ``matched_terms`` are the query's words (stop words dropped) found in its content or
    subject key, stemmed as the keyword index stems, and ``coverage`` their share of the
    query's ``query_terms`` words (out of at least 3). ``filters`` are the exact filters the
    search applied (absent: none)."""

    vector_rank: int | None
    vector_part: float
    similarity: float
    keyword_rank: int | None
    keyword_part: float
    bm25: float | None
    matched_terms: tuple[str, ...]
    fused: float
    importance: float
    importance_factor: float
    age_days: float
    recency_factor: float
    score: float
    coverage: float
    query_terms: int
    relevance: float
    method: str
    weights: dict[str, float]
    filters: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self.__dict__.items()
        }
