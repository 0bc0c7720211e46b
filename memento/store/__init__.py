"""Storage backends behind one interface (:class:`Store`): SQLite files (the default) and,
later, database servers named by URL. ``open_store`` picks the backend from the location."""

from __future__ import annotations

from pathlib import Path

from ..config import is_url, url_refused
from .base import COLUMNS, Filters, NewMemory, Row, Store, TokenRow


def open_store(location: str | Path, create: bool = True) -> Store:
    """The store at ``location``: a SQLite file path (absolute, already resolved)."""
    if is_url(location):
        raise url_refused(str(location))
    from .sqlite import SQLiteStore

    return SQLiteStore(Path(location), create=create)


def reset_store(location: str | Path) -> None:
    """Empty the store at ``location`` (``memento init --force``); refused with a
    DatabaseError while another connection has it open."""
    from .sqlite import reset_database

    reset_database(Path(location))


__all__ = [
    "COLUMNS",
    "Filters",
    "NewMemory",
    "Row",
    "Store",
    "TokenRow",
    "is_url",
    "open_store",
    "reset_store",
    "url_refused",
]
