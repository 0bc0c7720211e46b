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
    if not text:
        return 0
    pieces = len(_wordpiece().encode(text, add_special_tokens=False).ids)
    return max(pieces, math.ceil(len(text.encode("utf-8")) / 4))


def memory_line(record: MemoryRecord, max_tokens: int) -> str | None:
    """``- [01KVF2CKW772 fact user.theme 2026-11-20] I prefer dark mode`` (one line, content
    cut at a word with an ellipsis to fit ``max_tokens``); None if not even the head fits."""
    when = record.created_at if record.kind == "event" else record.updated_at
    head = [record.short_id, record.kind]
    if record.subject_key:
        head.append(record.subject_key)
    head.append(when.strftime("%Y-%m-%d"))
    prefix = f"- [{' '.join(head)}] "
    text = " ".join(record.content.split())
    line = prefix + text
    if count_tokens(line) <= max_tokens:
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

    def cost(n: int, line_cost: int) -> int:
        return line_cost + (titles[n] if not chosen[n] else 0)

    def fill(n: int, limit: int) -> None:
        nonlocal total
        spent = 0
        for i, record in enumerate(sections[n].records):
            if record.id in taken:
                continue
            if lines[n][i] is None:
                text = memory_line(record, min(line_tokens, budget))
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
