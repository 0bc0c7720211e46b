"""`memento start` stops on one Ctrl-C or SIGTERM, promptly, and keeps what it stored:
real processes, a real pseudo-terminal, raw JSON-RPC over the server's stdin."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memento import Memory

MEMENTO = [sys.executable, "-m", "memento.cli"]
PROMPT_S = 10  # "promptly": far below the 30 s a stuck server would take


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_one_ctrl_c_in_a_terminal_stops_it(tmp_path: Path) -> None:
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: `memento start` on a terminal, as a user types it
        os.environ["MEMENTO_PATH"] = str(tmp_path / "memory.db")
        os.execv(sys.executable, [*MEMENTO, "start"])
    try:
        banner = _read_until(fd, b"Ctrl-C to stop", 60)
        assert b"waiting for an MCP client on stdin" in banner
        began = time.monotonic()
        os.write(fd, b"\x03")  # the terminal turns ^C into SIGINT
        deadline = began + PROMPT_S
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            pytest.fail("one Ctrl-C did not stop `memento start`")
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert os.waitstatus_to_exitcode(status) == 130


def _rpc(process: subprocess.Popen, message: dict) -> dict | None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()
    if "id" not in message:
        return None
    while True:
        reply = json.loads(process.stdout.readline())
        if reply.get("id") == message["id"]:
            return reply


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_server_and_keeps_what_it_stored(
    tmp_path: Path, hash_embedder, sig: int, code: int
) -> None:
    db = tmp_path / "memory.db"
    process = subprocess.Popen(
        [*MEMENTO, "--db", str(db), "start"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _rpc(
            process,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            },
        )
        _rpc(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        stored = _rpc(
            process,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "memento_store",
                    "arguments": {"content": "Acknowledged before the stop"},
                },
            },
        )
        assert stored is not None and not stored["result"].get("isError"), stored
        began = time.monotonic()
        process.send_signal(sig)
        assert process.wait(PROMPT_S) == -sig or process.returncode == code
        assert time.monotonic() - began < PROMPT_S
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code
    with Memory(db, embedder=hash_embedder, create=False) as m:
        assert [r.content for r in m.recent(all_projects=True)] == ["Acknowledged before the stop"]
