"""Storage backends behind one interface (:class:`Store`): SQLite files (the default) and,
later, database servers named by URL. ``open_store`` picks the backend from the location."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DatabaseError
from .base import COLUMNS, Filters, NewMemory, Row, Store

# scheme://... : a URL, never a relative file path (postgresql://user:pw@host/db would
# otherwise create ./postgresql:/user:pw@host/db, the password in a directory name)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URL.match(location))


def url_refused(location: str) -> DatabaseError:
    """The error for a URL where only a file path works yet (the URL itself is left out of
    the message: it may hold a password)."""
    scheme = location.split("://", 1)[0]
    return DatabaseError(
        f"{scheme}:// URLs are not supported as a database: give the path of a SQLite file "
        "with --db or MEMENTO_PATH"
    )


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
    "is_url",
    "open_store",
    "reset_store",
    "url_refused",
]
