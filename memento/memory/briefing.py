"""The context block of :meth:`Memory.context`: which memories to put in front of an agent.

This room chooses them (a session start's sections, a prompt's relevant memories, what a
session was already given); counting tokens and packing lines under a budget are the pure
work of :mod:`memento.context`.
"""

from __future__ import annotations

from datetime import timedelta

from ..context import (
    LINE_SHARE_PROMPT,
    LINE_SHARE_SESSION,
    MAX_BUDGET,
    MIN_BUDGET,
    PROMPT_BUDGET,
    PROMPT_CHARS,
    RECENT_EVENT_DAYS,
    SESSION_BUDGET,
    SESSION_SHARES,
    ContextBlock,
    Section,
    pack,
)
from ..dates import utcnow
from ..errors import InvalidInputError
from ..projects import GLOBAL
from ..recall import RELEVANT
from ..store import Filters, Row
from .base import USER_PREFIX, database_errors
from .search import Search

# How long the memories given to an agent session are remembered (so a prompt hook does not
# repeat them): a day covers a working session with room to spare, and keeps the table small.
INJECTED_TTL = timedelta(days=1)
# At most this many memories are considered per part of a session-start block, and per
# prompt: more would not fit any sensible budget.
CONTEXT_CANDIDATES = 200
PROMPT_CANDIDATES = 12


class Briefing(Search):
    """``context``: the block for agents. A prompt's block is a recall, so this room stands
    on :class:`Search`."""

    @database_errors
    def context(
        self,
        prompt: str | None = None,
        budget: int | None = None,
        session_id: str | None = None,
        all_projects: bool = False,
    ) -> ContextBlock:
        """The block of memories to put in front of an agent, at most ``budget`` tokens
        (:func:`memento.context.count_tokens`).

        Without a ``prompt`` (a session start): global facts and lessons (``user.*`` keys
        first), then the current project's facts and lessons (most important, then most
        recently confirmed, first), then its events of the last two weeks; default budget
        1,200 tokens. With a ``prompt``: only memories relevant to it (relevance at least
        :data:`memento.recall.RELEVANT`), best first; default budget 400. An empty block
        (``text == ""``) means nothing is worth saying.

        With a ``session_id`` (the agent session's id), a memory already given to that
        session is not given again; a session start gives everything afresh (it follows a
        ``/clear``, a resume or a compaction, after which the agent has lost it)."""
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidInputError("prompt must be text")
        default = SESSION_BUDGET if prompt is None else PROMPT_BUDGET
        budget = default if budget is None else budget
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise InvalidInputError(f"budget must be a whole number of tokens, got {budget!r}")
        if not 0 <= budget <= MAX_BUDGET:
            raise InvalidInputError(f"budget must be between 0 and {MAX_BUDGET} tokens")
        if session_id is not None and (
            not isinstance(session_id, str) or not 0 < len(session_id) <= 200
        ):
            raise InvalidInputError("session_id must be text of 1 to 200 characters")
        self._scopes(all_projects)  # a client bound to a project may not ask for all
        if budget < MIN_BUDGET or (prompt is not None and not prompt.strip()):
            return ContextBlock(budget=budget)
        if prompt is None:
            block = self._session_block(budget, all_projects)
        else:
            block = self._prompt_block(prompt, budget, session_id, all_projects)
        # A session start forgets what the session was given (after a compaction or /clear
        # the agent no longer has it); a prompt records only what it gave.
        if session_id is not None and not self.readonly and (prompt is None or block.records):
            now = utcnow()
            with self._lock, self._write():
                if prompt is None:
                    self._store.clear_injected(session=session_id)
                self._store.clear_injected(before=now - INJECTED_TTL)
                self._store.mark_injected(session_id, [r.id for r in block.records], now)
        return block

    def _session_block(self, budget: int, all_projects: bool) -> ContextBlock:
        facts = ("fact", "lesson")
        since = utcnow() - timedelta(days=RECENT_EVENT_DAYS)
        # the project part: the current project, every project, or none (no project known)
        scopes: tuple[str, ...] | None = (self.project.id,) if self.project else None
        with_projects = all_projects or self.project is not None
        if all_projects:
            scopes = None
        with self._lock, self._store.transaction(write=False):
            mine = self._store.rows(
                Filters(kinds=facts, scopes=(GLOBAL,)), "important", CONTEXT_CANDIDATES
            )
            project: list[Row] = []
            events: list[Row] = []
            if with_projects:
                project = self._store.rows(
                    Filters(kinds=facts, scopes=scopes), "important", CONTEXT_CANDIDATES
                )
                events = self._store.rows(
                    Filters(kinds=("event",), scopes=scopes, since=since),
                    "newest",
                    CONTEXT_CANDIDATES,
                )
        # The user's own keys first: they are what the user set out to have remembered.
        mine.sort(key=lambda r: not (r.subject_key or "").startswith(USER_PREFIX))
        name = "all projects" if all_projects or not self.project else self.project.name
        sections = [
            Section("The user (all projects)", [r.record() for r in mine], SESSION_SHARES[0]),
            Section(
                f"Project {name}: facts and lessons",
                [r.record() for r in project if r.scope != GLOBAL],
                SESSION_SHARES[1],
            ),
            Section(
                f"Project {name}: recent events",
                [r.record() for r in events],
                SESSION_SHARES[2],
            ),
        ]
        header = (
            "# memento: what you remember from earlier sessions\n"
            "Ids are for memento_update / memento_forget when something here is stale."
        )
        return pack(header, sections, budget, max(MIN_BUDGET, budget // LINE_SHARE_SESSION))

    def _prompt_block(
        self, prompt: str, budget: int, session_id: str | None, all_projects: bool
    ) -> ContextBlock:
        found = self.recall(
            prompt.strip()[:PROMPT_CHARS],
            limit=PROMPT_CANDIDATES,
            min_score=RELEVANT,
            all_projects=all_projects,
        )
        if session_id is not None and found:
            with self._lock:
                given = self._store.injected(session_id)
            found = [r for r in found if r.id not in given]
        header = "# memento: memories that may bear on this prompt"
        return pack(
            header, [Section("", found)], budget, max(MIN_BUDGET, budget // LINE_SHARE_PROMPT)
        )
