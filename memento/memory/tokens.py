"""Bearer tokens of the HTTP server (``memento start --http``): create, list, revoke and
check them, and what a token grants (:class:`Grant`).

A token is ``memento_`` and 32 random bytes (256 bits, URL-safe base64), shown once when it
is made. The store keeps its SHA-256 only: a slow, salted hash protects passwords people
choose; a random 256-bit key cannot be guessed from its hash, and an unsalted digest lets
the server check every request with one indexed lookup. The prefix lets secret scanners
(and memento's own redaction) recognise a leaked token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..dates import utcnow
from ..errors import InvalidInputError, NotFoundError
from ..projects import Project, find_project, normalise_url
from ..store import TokenRow
from .base import Grant, MemoryBase, database_errors

TOKEN_PREFIX = "memento_"
TOKEN_BYTES = 32
# The longest text taken for a token: a real one is 51 characters; anything much longer is
# refused before it is hashed.
MAX_TOKEN_CHARS = 200
# last_used_at is written at most once a minute per token: a write per request would queue
# every request behind the write lock under load, and a minute tells a token in use from a
# forgotten one well enough.
TOUCH_EVERY = timedelta(minutes=1)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class TokenInfo:
    """A token as ``memento token list`` shows it (never the token itself)."""

    name: str
    read_only: bool
    project: Project | None  # None: every project
    created_at: datetime
    last_used_at: datetime | None


def digest(token: str) -> str:
    """The SHA-256 hex a token is stored and looked up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens(MemoryBase):
    """The token methods of :class:`memento.Memory`."""

    @database_errors
    def create_token(
        self, name: str, read_only: bool = False, project: str | None = None
    ) -> tuple[TokenInfo, str]:
        """A new token called ``name``: (what is stored about it, the token). The token is
        returned once and never stored. ``read_only`` tokens cannot write; a ``project``
        (a directory, a known project id or name, or a git remote URL such as
        ``github.com/acme/shop``) binds the token to that project and the global memories."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                "a token name is 1 to 64 letters, digits, '.', '_', '-' or '@', starting "
                f"with a letter or digit (e.g. alice-laptop), got {str(name)[:80]!r}"
            )
        bound = None if project in (None, "") else self._token_project(str(project))
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock, self._write():
            if any(t.name == name for t in self._store.tokens()):
                raise InvalidInputError(
                    f"a token called {name} exists: revoke it first (`memento token revoke "
                    f"{name}`) or choose another name"
                )
            if bound is not None:
                self._store.register_project(bound)
            row = TokenRow(
                name=name,
                read_only=bool(read_only),
                project=bound.id if bound else None,
                created_at=utcnow(),
            )
            self._store.add_token(row, digest(token))
        return _info(row, bound), token

    @database_errors
    def tokens(self) -> list[TokenInfo]:
        """Every token, by name."""
        with self._lock:
            return [_info(t) for t in self._store.tokens()]

    @database_errors
    def has_tokens(self) -> bool:
        """Whether any token exists (the HTTP server refuses to start without one)."""
        with self._lock:
            return bool(self._store.tokens())

    @database_errors
    def revoke_token(self, name: str) -> TokenInfo:
        """Delete the token called ``name``: the next request that presents it is refused."""
        with self._lock, self._write():
            found = [t for t in self._store.tokens() if t.name == name]
            if not found:
                raise NotFoundError(
                    f"no token called {str(name)[:80]!r}: `memento token list` shows them"
                )
            self._store.delete_token(name)
        return _info(found[0])

    @database_errors
    def check_token(self, token: object) -> Grant | None:
        """What ``token`` grants, or None when it is no live token (malformed, unknown or
        revoked). Records when it was last used (at most once a minute)."""
        if (
            not isinstance(token, str)
            or not token.startswith(TOKEN_PREFIX)
            or len(token) > MAX_TOKEN_CHARS
            or not token.isascii()
        ):
            return None
        key = digest(token)
        with self._lock:
            row = self._store.find_token(key)
        if row is None:
            return None
        now = utcnow()
        if not self.readonly and (
            row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY
        ):
            with self._lock, self._store.transaction(write=True):
                self._store.touch_token(row.name, now)
        project = _info(row).project
        return Grant(name=row.name, read_only=row.read_only, project=project)

    def _token_project(self, text: str) -> Project:
        """The project a token is bound to: a directory here, a project the store knows (by
        id, or by name when only one has it), or a git remote URL."""
        if Path(text).expanduser().is_dir():
            return find_project(text)
        with self._lock:
            known = [p for p in self._store.projects() if p["id"] != "global"]
        for wanted in ("id", "name"):
            matches = [p for p in known if p[wanted] == text]
            if len(matches) == 1:
                found = matches[0]
                return Project(id=found["id"], name=found["name"], root=found["root"] or "")
        remote = normalise_url(text)
        host = remote.split("/", 1)[0]
        if "/" in remote and "." in host and not text.startswith(("/", ".", "~")):
            return Project(id=remote, name=remote.rsplit("/", 1)[-1], root="")
        raise InvalidInputError(
            f"project {text[:200]!r} is not a directory, a project this store knows or a git "
            "remote URL: give the project's directory or its origin URL (e.g. "
            "github.com/acme/shop)"
        )


def _info(row: TokenRow, project: Project | None = None) -> TokenInfo:
    if project is None and row.project is not None:
        project = Project(id=row.project, name=row.project_name or row.project, root="")
    return TokenInfo(
        name=row.name,
        read_only=row.read_only,
        project=project,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


__all__ = ["MAX_TOKEN_CHARS", "TOKEN_PREFIX", "TOUCH_EVERY", "TokenInfo", "Tokens", "digest"]
