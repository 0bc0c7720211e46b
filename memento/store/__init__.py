"""Storage backends behind one interface (:class:`Store`): SQLite files (the default) and
PostgreSQL databases named by a ``postgresql://`` URL. ``open_store`` picks the backend from
the location."""

from __future__ import annotations

from pathlib import Path

from ..config import display_location, is_postgres_url, is_url, url_refused
from .base import COLUMNS, Filters, NewMemory, Row, Store, TokenRow


def open_store(location: str | Path, create: bool = True) -> Store:
    """The store at ``location``: a SQLite file path (absolute, already resolved) or a
    ``postgresql://`` URL (psycopg needed: the ``postgres`` extra)."""
    if is_postgres_url(location):
        from .postgres import PostgresStore

        return PostgresStore(str(location), create=create)
    if is_url(location):
        raise url_refused(str(location))
    from .sqlite import SQLiteStore

    return SQLiteStore(Path(location), create=create)


def store_exists(location: str | Path) -> bool:
    """Whether a memento store is at ``location``: the file exists, or the database has the
    memento schema (a server that cannot be reached raises DatabaseError)."""
    if not is_url(location):
        return Path(location).exists()
    store = open_store(location, create=True)
    try:
        return store.schema_version() > 0
    finally:
        store.close()


def reset_store(location: str | Path) -> None:
    """Empty the store at ``location`` (``memento init --force``); refused with a
    DatabaseError while another connection has it open (SQLite) or a writer is midway
    (PostgreSQL)."""
    if is_postgres_url(location):
        from .postgres import reset_database as reset_postgres

        reset_postgres(str(location))
        return
    from .sqlite import reset_database

    reset_database(Path(location))


__all__ = [
    "COLUMNS",
    "Filters",
    "NewMemory",
    "Row",
    "Store",
    "TokenRow",
    "display_location",
    "is_postgres_url",
    "is_url",
    "open_store",
    "reset_store",
    "store_exists",
    "url_refused",
]
