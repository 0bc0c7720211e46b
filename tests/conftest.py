"""Shared fixtures: real SQLite files in a temp dir and the real bundled model.

The embedder is loaded once per session and shared, because loading it is the slow part;
every test still gets a fresh database file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
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
def embedder() -> Embedder:
    """The real bundled model, loaded once."""
    model = Embedder()
    model.load()
    return model


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture
def memory(db_path: Path, embedder: Embedder) -> Iterator[Memory]:
    with Memory(path=db_path, embedder=embedder) as m:
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


@pytest.fixture(scope="session")
def mcp_connect() -> Any:
    """``async with mcp_connect(db, log[, command]) as session``: a real MCP client over
    stdio to a new memento server process."""
    return _mcp_session
