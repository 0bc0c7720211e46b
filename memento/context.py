"""The context block: what memento hands an agent without being asked.

One block, printed the same way by ``memento context``, the Claude Code hooks and the MCP
resource, built by :meth:`memento.Memory.context`. This module holds the pure parts: how
tokens are counted, how a memory becomes one line, and how lines are packed under a budget.

Tokens are counted with the bundled model's WordPiece tokenizer, and never below a quarter
of the UTF-8 bytes: WordPiece maps a whole unknown word (an emoji, a rare script) to one
``[UNK]`` token, where the agent's own tokenizer needs several, so the byte floor keeps the
count on the safe side. English prose counts about the same in both; code counts higher in
WordPiece (every punctuation mark is a token), which again errs on the safe side.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import bundled_model_dir
from .records import MemoryRecord

# Default budgets in tokens: a session start gets room for the user's preferences and a
# project's conventions (about 25 one-line memories); a prompt gets a handful of memories,
# since it is paid on every turn.
SESSION_BUDGET = 1200
PROMPT_BUDGET = 400
# A budget below this cannot hold the header and one useful line: nothing is printed.
MIN_BUDGET = 40
# The longest a budget may be: a context block is a summary, not an export.
MAX_BUDGET = 20_000
# Each memory's line is cut to this share of the budget, so one long memory cannot crowd
# out all the others (1,200 -> 200 tokens, about 150 words; 400 -> 133).
LINE_SHARE_SESSION = 6
LINE_SHARE_PROMPT = 3
# What a session-start block reserves for each part before the rest is shared out: the
# user's preferences, the project's facts and lessons, its recent events.
SESSION_SHARES = (0.25, 0.5, 0.25)
# Only the start of a long prompt is searched for: the model reads 256 word pieces (about
# 1,000 characters of English) and the keyword side 32 terms, so more adds nothing.
PROMPT_CHARS = 2000
# Events of the last two weeks are "recent" at a session start.
RECENT_EVENT_DAYS = 14

_tokenizer: Any = None
_tokenizer_lock = threading.Lock()


def _wordpiece() -> Any:
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            from .embedder import shared_tokenizer

            path = bundled_model_dir() / "tokenizer.json"
            # The prompt hook has just embedded the prompt: reuse that tokenizer (25 ms).
            tokenizer = shared_tokenizer(path)
            if tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(path))
                tokenizer.no_truncation()
                tokenizer.no_padding()
            _tokenizer = tokenizer
        return _tokenizer


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the budget counts them (see the module docstring)."""
    return count_many([text])[0]


def count_many(texts: Sequence[str]) -> list[int]:
    """:func:`count_tokens` of each text, in one call to the tokenizer (a session start
    counts a few hundred lines: one by one that took ~140 ms of a cold hook)."""
    if not texts:
        return []
    encoded = _wordpiece().encode_batch(list(texts), add_special_tokens=False)
    return [
        max(len(enc.ids), math.ceil(len(text.encode("utf-8")) / 4)) if text else 0
        for text, enc in zip(texts, encoded)
    ]


def _prefix(record: MemoryRecord) -> str:
    when = record.created_at if record.kind == "event" else record.updated_at
    head = [record.short_id, record.kind]
    if record.subject_key:
        head.append(record.subject_key)
    head.append(when.strftime("%Y-%m-%d"))
    return f"- [{' '.join(head)}] "


def full_line(record: MemoryRecord) -> str:
    """The memory's whole line, before any cut."""
    return _prefix(record) + " ".join(record.content.split())


def memory_line(record: MemoryRecord, max_tokens: int, tokens: int | None = None) -> str | None:
    """``- [01KVF2CKW772 fact user.theme 2026-11-20] I prefer dark mode`` (one line, content
    cut at a word with an ellipsis to fit ``max_tokens``); None if not even the head fits.
    ``tokens``: the whole line's count, when the caller has it already."""
    prefix = _prefix(record)
    text = " ".join(record.content.split())
    line = prefix + text
    if (tokens if tokens is not None else count_tokens(line)) <= max_tokens:
        return line
    words = text.split(" ")
    low, high = 0, len(words)  # the most words that fit, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(prefix + " ".join(words[:middle]) + " …") <= max_tokens:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        return None
    return prefix + " ".join(words[:low]).rstrip(",;:") + " …"


@dataclass(frozen=True)
class Section:
    """A heading and the memories under it, best first."""

    title: str
    records: Sequence[MemoryRecord]
    share: float = 1.0  # of the budget, reserved in the first pass


@dataclass
class ContextBlock:
    """What an agent is given: ``text`` (markdown, empty when nothing is worth saying),
    the ``records`` in it, and the ``tokens`` it costs by :func:`count_tokens`."""

    text: str = ""
    records: list[MemoryRecord] = field(default_factory=list)
    tokens: int = 0
    budget: int = 0

    def __bool__(self) -> bool:
        return bool(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": self.tokens,
            "budget": self.budget,
            "memories": [r.to_dict() for r in self.records],
        }


def pack(header: str, sections: Sequence[Section], budget: int, line_tokens: int) -> ContextBlock:
    """The header and as many lines as fit in ``budget`` tokens: first each section up to
    its share, then what is left in section order. Empty sections are left out, and so is
    everything when no memory fits."""
    total = count_tokens(header + "\n")
    chosen: list[list[tuple[MemoryRecord, str, int]]] = [[] for _ in sections]
    titles = [count_tokens(f"\n## {s.title}\n") if s.title else 0 for s in sections]
    lines: list[list[tuple[MemoryRecord, str, int] | None]] = [
        [None] * len(s.records) for s in sections
    ]
    taken: set[str] = set()
    # every whole line counted at once (with its newline); only lines over the cap are cut
    counts = iter(count_many([full_line(r) + "\n" for s in sections for r in s.records]))
    whole = [[next(counts) for _ in s.records] for s in sections]

    def cost(n: int, line_cost: int) -> int:
        return line_cost + (titles[n] if not chosen[n] else 0)

    def fill(n: int, limit: int) -> None:
        nonlocal total
        spent = 0
        for i, record in enumerate(sections[n].records):
            if record.id in taken:
                continue
            if lines[n][i] is None:
                cap = min(line_tokens, budget)
                if whole[n][i] <= cap:
                    lines[n][i] = (record, full_line(record), whole[n][i])
                else:
                    text = memory_line(record, cap, whole[n][i])
                    if text is None:
                        continue
                    lines[n][i] = (record, text, count_tokens(text + "\n"))
            entry = lines[n][i]
            assert entry is not None
            price = cost(n, entry[2])
            if total + price > budget or spent + price > limit:
                continue
            chosen[n].append(entry)
            taken.add(record.id)
            total += price
            spent += price

    for n, section in enumerate(sections):
        fill(n, int(budget * section.share))
    for n in range(len(sections)):
        fill(n, budget)
    if not any(chosen):
        return ContextBlock(budget=budget)
    parts = [header]
    records: list[MemoryRecord] = []
    for n, section in enumerate(sections):
        if not chosen[n]:
            continue
        if section.title:
            parts.append(f"\n## {section.title}")
        # keep each section's own order (best first), whatever pass chose the line
        order = {r.id: i for i, r in enumerate(section.records)}
        for record, text, _ in sorted(chosen[n], key=lambda entry: order[entry[0].id]):
            parts.append(text)
            records.append(record)
    text = "\n".join(parts) + "\n"
    return ContextBlock(text=text, records=records, tokens=count_tokens(text), budget=budget)
