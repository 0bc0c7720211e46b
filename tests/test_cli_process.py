"""The CLI as a user's shell runs it: progress bars only on a terminal, a pipe closed early,
Ctrl-C, and a bug, each ending in one line rather than a traceback."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from memento import Memory, cli
from memento.cli.base import main
from memento.embedder import Embedder
from tests.conftest import HashEmbedder

MEMENTO = [sys.executable, "-m", "memento.cli"]


@pytest.fixture(autouse=True)
def _one_model(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """A store of 600 memories of ~300 characters (stored with the hash model: neither
    copy nor export embeds)."""
    path = tmp_path / "many.db"
    padding = "with enough words to make a line of a few hundred characters " * 4
    with Memory(path, embedder=HashEmbedder()) as m:  # type: ignore[arg-type]
        m.store_many([{"content": f"memory number {n} {padding}"} for n in range(600)])
    return path


def on_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run memento with stderr on a pseudo-terminal: (status, stdout, what the terminal
    showed)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [*MEMENTO, *args], stdout=subprocess.PIPE, stderr=follower, timeout=120, text=True
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    return proc.returncode, proc.stdout, b"".join(chunks).decode("utf-8", "replace")


def test_copy_and_export_draw_a_progress_bar_only_on_a_terminal(
    many: Path, tmp_path: Path
) -> None:
    status, out, shown = on_terminal(["copy", str(many), str(tmp_path / "copy.db")])
    assert status == 0, shown
    assert "Copying" in shown and "100%" in shown
    assert out.startswith("Copied 600 memories from ") and out.count("\n") == 1
    status, _, shown = on_terminal(["--db", str(many), "export", "-o", str(tmp_path / "x")])
    assert status == 0 and "Exporting" in shown and "100%" in shown
    # the same commands with stderr to a pipe (a script, an agent's shell): no bar
    piped = subprocess.run(
        [*MEMENTO, "copy", str(many), str(tmp_path / "copy.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0 and piped.stderr == ""
    assert "0 added, 600 unchanged" in piped.stdout


def test_export_into_a_pipe_closed_early_ends_quietly(many: Path) -> None:
    # `memento export | head -n 1`: head exits after one line
    proc = subprocess.Popen(
        [*MEMENTO, "--db", str(many), "export"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    status = proc.wait(timeout=120)
    assert first.startswith(b'{"id": ')
    assert proc.stderr.read() == b""  # no BrokenPipeError traceback
    assert status == 1


def test_a_bug_is_one_line_unless_memento_debug(
    db_location: str | Path,
    memory: Memory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    memory.store("a memory")

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(Memory, "stats", broken)
    with pytest.raises(SystemExit) as exit_:
        main(["--db", str(db_location), "stats"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "Error: unexpected RuntimeError: something unexpected (set MEMENTO_DEBUG=1 to see "
        "the traceback, and please report it)\n"
    )
    monkeypatch.setenv("MEMENTO_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something"):
        main(["--db", str(db_location), "stats"])


def test_ctrl_c_says_interrupted_and_exits_130(
    db_location: str | Path,
    memory: Memory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Memory, "stats", interrupted)
    with pytest.raises(SystemExit) as exit_:
        main(["--db", str(db_location), "stats"])
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "Interrupted.\n"
