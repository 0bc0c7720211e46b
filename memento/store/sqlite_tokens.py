"""The SQLite statements of the HTTP server's bearer tokens (``tokens``, schema v7): a room
of :class:`memento.store.sqlite.SQLiteStore`, apart so the store's main module stays about
memories."""

from __future__ import annotations

from datetime import datetime

import apsw

from ..dates import from_iso, to_iso
from .base import TokenRow

_SELECT = (
    "SELECT t.name, t.read_only, t.project, t.created_at, t.last_used_at, p.name "
    "FROM tokens t LEFT JOIN projects p ON p.id = t.project"
)


def _token(raw: tuple) -> TokenRow:  # type: ignore[type-arg]
    return TokenRow(
        name=raw[0],
        read_only=bool(raw[1]),
        project=raw[2],
        created_at=from_iso(raw[3]),
        last_used_at=from_iso(raw[4]) if raw[4] else None,
        project_name=raw[5],
    )


class SQLiteTokens:
    """``Store``'s token methods over ``self.conn``."""

    conn: apsw.Connection

    def add_token(self, token: TokenRow, digest: str) -> None:
        self.conn.execute(
            "INSERT INTO tokens(name, hash, read_only, project, created_at, last_used_at) "
            "VALUES (?, ?, ?, ?, ?, NULL)",
            (token.name, digest, int(token.read_only), token.project, to_iso(token.created_at)),
        )

    def tokens(self) -> list[TokenRow]:
        return [_token(r) for r in self.conn.execute(f"{_SELECT} ORDER BY t.name")]

    def find_token(self, digest: str) -> TokenRow | None:
        raw = self.conn.execute(f"{_SELECT} WHERE t.hash = ?", (digest,)).fetchone()
        return _token(raw) if raw else None

    def delete_token(self, name: str) -> bool:
        self.conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return self.conn.changes() > 0

    def touch_token(self, name: str, at: datetime) -> None:
        self.conn.execute(
            "UPDATE tokens SET last_used_at = ? WHERE name = ?", (to_iso(at), name)
        )
