"""``Memory``, the one class the CLI, the MCP server, benchmarks and users call, and its rooms.

One concept, one file:

- ``facade.py``: :class:`Memory` itself (its docstring, writing, reading, stats);
- ``base.py``: what every room stands on: the store, the lock, the embedder, the lifecycle,
  and the shared rules (checking and redacting an item, scopes, ids, read filters);
- ``search.py``: ``recall``: hybrid search, relevance, ``min_score``, ``max_tokens``,
  ``explain``;
- ``history.py``: versions: what a change keeps, ``history``, ``browse(as_of=...)``, the
  versions an import brings;
- ``bulk.py``: ``export``, ``import_records``, ``reembed``;
- ``briefing.py``: ``context``, the block for agents (the packing itself is
  :mod:`memento.context`);
- ``tokens.py``: the HTTP server's bearer tokens (create, list, revoke, check); what a
  token allows is a :class:`base.Grant`, applied by :meth:`Memory.granted`.

Each room is a class over :class:`base.MemoryBase` holding its concept's public methods next
to their helpers, and ``Memory`` is made of them (``class Memory(Bulk, History, Briefing,
Search)``). Rooms rather than modules of functions that ``Memory`` delegates to: a public
method keeps its signature and docstring in one place, beside the code that does it, instead
of twice (a delegating method in the facade, a function in the room), and the private
helpers that tests and benchmarks call on a ``Memory`` (``_search``, ``_candidates``,
``_filters``, ``_embed``) stay where they were. A room that uses another subclasses it
(``Bulk`` keeps versions: ``History``; ``Briefing`` recalls: ``Search``), so every ``self.``
call resolves in the class it is written in, and no module imports one above it.
"""

from ..embedder import Embedder
from .base import STORE_KEYS, USER_PREFIX, Grant
from .briefing import CONTEXT_CANDIDATES, INJECTED_TTL, PROMPT_CANDIDATES
from .facade import DEDUP_SIMILARITY, MAX_RELATED, RELATED_SIMILARITY, Memory
from .search import DEFAULT_LIMIT, MIN_LINE_TOKENS, MIN_POOL
from .tokens import TokenInfo

__all__ = [
    "CONTEXT_CANDIDATES",
    "DEDUP_SIMILARITY",
    "DEFAULT_LIMIT",
    "INJECTED_TTL",
    "MAX_RELATED",
    "MIN_LINE_TOKENS",
    "MIN_POOL",
    "PROMPT_CANDIDATES",
    "RELATED_SIMILARITY",
    "STORE_KEYS",
    "USER_PREFIX",
    "Embedder",
    "Grant",
    "Memory",
    "TokenInfo",
]
