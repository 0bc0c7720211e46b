"""Paths and settings, read from the environment in one place.

- ``MEMENTO_PATH``: the database file (default ``$XDG_DATA_HOME/memento/memory.db``, i.e.
  ``~/.local/share/memento/memory.db``), or a ``postgresql://`` URL (``memento.store``).
- ``MEMENTO_EMBEDDING_MODEL``: a local model directory (manifest.json + model.onnx +
  tokenizer.json) or a Hugging Face repo id; default: the model bundled with memento.
- ``MEMENTO_REDACT``: ``off`` stores text verbatim; anything else redacts secrets first.
- ``MEMENTO_MODEL_CACHE``: ``off`` makes the embedder hash the model and build its session in
  every process instead of keeping both under ``$XDG_CACHE_HOME/memento`` (``memento.embedder``).
- ``MEMENTO_HOOK_TIMEOUT``: seconds a Claude Code hook may take before it gives up, printing
  nothing (default 5; ``memento.integrations.claude_code.hooks``).
- ``MEMENTO_HOST``, ``MEMENTO_PORT``: where ``memento start --http`` listens (default
  127.0.0.1 and 8765; ``memento.server.http``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import DatabaseError

# scheme://... : a URL, never a relative file path (postgresql://user:pw@host/db would
# otherwise create ./postgresql:/user:pw@host/db, the password in a directory name)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_url(location: str | Path) -> bool:
    """Whether a database location is a URL (a server) rather than a file path."""
    return isinstance(location, str) and bool(_URL.match(location))


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or
    ``postgres://``)."""
    return is_url(location) and str(location).split("://", 1)[0].lower() in POSTGRES_SCHEMES


def url_refused(location: str) -> DatabaseError:
    """The error for a URL of a kind memento cannot open (the URL itself is left out of
    the message: it may hold a password)."""
    scheme = location.split("://", 1)[0]
    return DatabaseError(
        f"{scheme}:// URLs are not supported as a database: give the path of a SQLite file "
        "or a postgresql:// URL with --db or MEMENTO_PATH"
    )


def file_only(location: str | Path, what: str) -> DatabaseError:
    """The error for something that only a SQLite file has (``what``), asked of a server."""
    return DatabaseError(
        f"{what} works on a SQLite file, and {display_location(location)} is a PostgreSQL "
        "database: use the server's own tools for it"
    )


def display_location(location: str | Path) -> str:
    """A location as shown to the user: a URL without its password (in the user part or as
    a ``password=`` parameter), a path as it is."""
    text = str(location)
    if not is_url(text):
        return text
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if "@" in netloc:
            user, host = netloc.rsplit("@", 1)
            netloc = f"{user.split(':', 1)[0]}@{host}" if user else host
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k.lower() != "password"]  # fmt: skip
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/"), ""))
    except ValueError:  # unparseable: show only what kind of URL it is
        return text.split("://", 1)[0] + "://..."


BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


def default_db_path() -> Path:
    """The database path from ``MEMENTO_PATH``, else the XDG data directory (also when
    ``MEMENTO_PATH`` holds a URL: that is no file path, and logs still need a directory)."""
    env = os.environ.get("MEMENTO_PATH")
    if env and not is_url(env.strip()):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(data_home).expanduser() / "memento" / "memory.db"


def resolve_db_path(path: str | os.PathLike[str] | None) -> Path:
    """An explicit path (``~`` expanded) or the default one, made absolute, for what needs
    a file. A URL (given, or in ``MEMENTO_PATH``) is refused: read as a path,
    ``postgresql://user:pw@host/db`` created ``./postgresql:/user:pw@host/db``, the
    password in a directory name."""
    text = os.fspath(path) if path not in (None, "") else os.environ.get("MEMENTO_PATH", "")
    if isinstance(text, str) and is_url(text.strip()):
        raise url_refused(text.strip())
    chosen = Path(path).expanduser() if path not in (None, "") else default_db_path()
    return chosen.absolute()


def resolve_location(location: str | os.PathLike[str] | None) -> str | Path:
    """Where the memories live: a ``postgresql://`` URL as given, else the file path of
    :func:`resolve_db_path`. ``MEMENTO_PATH`` may hold either; another URL is refused."""
    if location in (None, ""):
        env = os.environ.get("MEMENTO_PATH", "").strip()
        if env and is_postgres_url(env):
            return env
    elif isinstance(location, str) and is_postgres_url(location.strip()):
        return location.strip()
    return resolve_db_path(location)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parent, each 0700 whatever the umask: ``mkdir(mode=,
    parents=True)`` gives the parents the default mode, and with umask 000 that was 0777.
    Directories that already exist are left as they are."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: not ours to change
            continue
        os.chmod(directory, 0o700)


def bundled_model_dir() -> Path:
    """Where the bundled model lives: inside the installed package, or in a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "models" / BUNDLED_MODEL_NAME
    if installed.is_dir():
        return installed
    return here.parent / "models" / BUNDLED_MODEL_NAME


def embedding_model_spec() -> str | None:
    """The value of ``MEMENTO_EMBEDDING_MODEL``, or None for the bundled model."""
    value = os.environ.get("MEMENTO_EMBEDDING_MODEL", "").strip()
    return value or None


def redaction_enabled() -> bool:
    """Secrets are redacted unless ``MEMENTO_REDACT`` is ``off`` (or 0/false/no)."""
    return os.environ.get("MEMENTO_REDACT", "on").strip().lower() not in {"off", "0", "false", "no"}
