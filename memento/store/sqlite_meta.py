"""The ``settings`` table and the catalogue of a memento SQLite file: small reads and writes
that the store (``sqlite``), its index (``sqlite_index``) and the partition
(``sqlite_parts``) all need, kept here so that none of them imports another for them."""

from __future__ import annotations

import apsw


def get_setting(conn: apsw.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_setting(conn: apsw.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def has_table(conn: apsw.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None
