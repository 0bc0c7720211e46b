"""The keyword side of the PostgreSQL backend: the terms of a text as SQLite's FTS5 index
makes them (the same tokenizer, run through APSW without a database), the tsvector and
term-frequency values stored for each memory, and the BM25 settings and term bounds SQLite
uses, so keyword hits, their scores and recall's relevance evidence are the same on both
backends."""

from __future__ import annotations

import threading
from typing import Any

# BM25 as SQLite's FTS5 computes it (k1, b), with its column weights for the terms of the
# content (A) and of the subject key (B): ``bm25(memory_fts, 1.0, 0.5)``.
BM25_K1 = 1.2
BM25_B = 0.75
# Large stores leave out keyword terms most memories contain, as SQLite does
# (sqlite.bounded_match): same thresholds, same reasons.
KEYWORD_MIN_ROWS = 50_000
KEYWORD_MAX_DF = 0.02
KEYWORD_MAX_POSTINGS = 40_000
# ... and BM25 ranks alone first, the filters then applied to its best 4 * k, or 40 * k when
# the search is narrowed (sqlite.KEYWORD_OVERFETCH and _FILTERED, same reasons).
KEYWORD_OVERFETCH = 4
KEYWORD_OVERFETCH_FILTERED = 40
# tsvector limits: a lexeme is at most 2047 bytes, a position at most 16383, and a lexeme
# keeps at most 256 positions. Longer terms are cut (the same cut on both sides of a match).
MAX_LEXEME_BYTES = 2000
MAX_POSITION = 16_383
MAX_POSITIONS = 255

_tokenizer_lock = threading.Lock()
_tokenizer: Any = None


def tokenize(text: str) -> list[str]:
    """The terms FTS5 (``porter unicode61 remove_diacritics 2``, as SQLite's memory_fts)
    makes of ``text``, in order, each cut to what a tsvector lexeme holds."""
    global _tokenizer
    import apsw

    with _tokenizer_lock:
        if _tokenizer is None:
            conn = apsw.Connection(":memory:")
            tokenizer = conn.fts5_tokenizer("porter", ["unicode61", "remove_diacritics", "2"])
            _tokenizer = (conn, tokenizer)
        tokens = _tokenizer[1](text.encode("utf-8"), apsw.FTS5_TOKENIZE_DOCUMENT, None)
    return [_cut(t[2]) for t in tokens]


def _cut(term: str) -> str:
    data = term.encode("utf-8")
    if len(data) <= MAX_LEXEME_BYTES:
        return term
    return data[:MAX_LEXEME_BYTES].decode("utf-8", errors="ignore")


def quote(term: str) -> str:
    """A lexeme in tsvector/tsquery input syntax: quoted, quotes and backslashes escaped."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def terms_vector(content: str, subject_key: str | None) -> tuple[str, str, int]:
    """A memory's keyword terms: the tsvector literal (content terms weighted A, key terms
    B) that the GIN index finds it by, the JSON of each term's BM25 frequency (1 per use in
    the content, 0.5 in the key, FTS5's column weights), and how many terms it has (BM25's
    document length, as FTS5 counts it)."""
    import json

    positions: dict[str, list[str]] = {}
    frequency: dict[str, float] = {}
    count = 0
    for weight, share, text in (("A", 1.0, content), ("B", 0.5, subject_key or "")):
        for term in tokenize(text):
            count += 1
            frequency[term] = frequency.get(term, 0.0) + share
            found = positions.setdefault(term, [])
            if len(found) < MAX_POSITIONS:
                found.append(f"{min(count, MAX_POSITION)}{weight}")
    literal = " ".join(f"{quote(t)}:{','.join(p)}" for t, p in positions.items())
    return literal, json.dumps(frequency, ensure_ascii=False), count


def bounded(terms: list[str], frequency: dict[str, int], docs: int) -> list[str]:
    """The terms worth scoring: those some memory holds, and in large stores without
    the ones most memories hold (SQLite's ``bounded_match``, same thresholds)."""
    present = [t for t in terms if frequency.get(t)]
    if docs < KEYWORD_MIN_ROWS or not present:
        return present
    ranked = sorted(present, key=lambda t: frequency[t])
    limit = KEYWORD_MAX_DF * docs
    kept = [t for t in ranked if frequency[t] <= limit] or ranked[:1]
    postings = 0
    for n, term in enumerate(kept):
        postings += frequency[term]
        if postings > KEYWORD_MAX_POSTINGS and n > 0:
            return kept[:n]
    return kept
