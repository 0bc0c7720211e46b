"""A real `memento start --http` process for the HTTP tests, and a real SDK client for it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

MEMENTO = [sys.executable, "-m", "memento.cli"]
START_TIMEOUT_S = 120  # a cold model cache on a loaded 2-core machine: a hang fails, not blocks
CALL_TIMEOUT_S = 60
_BANNER = re.compile(r"on (http://\S+/mcp) serving")


def environment(db: Path | str, cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a memento process: its own database (a file or a URL) and the
    shared model cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMENTO_")}
    env.update(MEMENTO_PATH=str(db), XDG_CACHE_HOME=str(cache), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def memento(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MEMENTO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def create_token(env: dict[str, str], name: str, *options: str) -> str:
    done = memento(env, "token", "create", name, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Server:
    """``memento start --http --port 0`` in its own process; ``url`` from its banner.

    A thread reads its stderr all along: the start-up line is waited for with a deadline (a
    stalled start fails the test instead of hanging the run), lines before it are skipped,
    and logs never fill the pipe and block the server."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*MEMENTO, "start", "--http", "--port", "0", *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.banner = ""
        self.url = ""
        self._before: list[str] = []  # stderr lines before the banner
        self._after: list[str] = []  # and after it
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT_S) or not self.url:
            self.process.kill()
            self.process.wait(timeout=30)
            self._reader.join(timeout=10)
            raise AssertionError(f"no start-up line within {START_TIMEOUT_S} s: {self._before!r}")

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if self.url:
                self._after.append(line)
            elif found := _BANNER.search(line):
                self.banner, self.url = line.strip(), found.group(1)
                self._ready.set()
            else:
                self._before.append(line)
        self._ready.set()  # the process ended (its stderr closed)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Stop it with ``sig``: (exit status, stdout, the rest of stderr)."""
        if self.alive():
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=30)
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        return self.process.returncode, out, "".join(self._after)


@asynccontextmanager
async def connect(url: str, token: str | None, **headers: str) -> AsyncIterator[ClientSession]:
    """An initialised SDK client session over Streamable HTTP with ``token``."""
    sent = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=sent, timeout=CALL_TIMEOUT_S) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        with anyio.fail_after(CALL_TIMEOUT_S):
            await session.initialize()
        yield session
