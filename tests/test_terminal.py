"""Stored text cannot drive the user's terminal (issue 16 item 8): escape sequences an agent
wrote are shown as visible ``\\x1b`` text by every human-facing command, and JSON output
stays the same data with every control character escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from memento import Memory, cli
from memento.textsafe import json_printable, printable

# A retitle (OSC 0 ending in BEL), a screen clear, a colour, an OSC 8 hyperlink ending in ST,
# and the same with 8-bit C1 controls (CSI U+009B, OSC U+009D, ST U+009C).
HOSTILE = (
    "\x1b]0;pwned\x07 \x1b[2J hello \x1b[31mred\x1b[0m "
    "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \x9b2J \x9d0;c1\x9c \x08\x0d\x7f end"
)
# Any C0 control except tab and newline, DEL, or a C1 control.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_printable_shows_controls_and_keeps_tabs_newlines_and_text() -> None:
    assert printable("\x1b[2J a\tb\nc é ✓ \x9b") == "\\x1b[2J a\tb\nc é ✓ \\x9b"
    assert printable("plain text") == "plain text"


def test_json_printable_is_the_same_json_value() -> None:
    data = {"content": HOSTILE, "note": "é ✓"}
    text = json_printable(json.dumps(data, ensure_ascii=False))
    assert not RAW_CONTROL.search(text) and "é ✓" in text
    assert json.loads(text) == data


@pytest.fixture
def stored(db_location: Path, memory: Memory) -> str:
    """A memory whose content, subject_key, source and metadata carry escape sequences."""
    record = memory.store(
        HOSTILE,
        kind="event",
        subject_key="user.\x1b[8mhidden",
        metadata={"\x1b[2Jkey": HOSTILE},
        source="agent\x1b]0;x\x07",
    )
    return record.id


def _run(db_location: Path, *args: str) -> str:
    result = CliRunner().invoke(cli.cli, ["--db", str(db_location), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    "command",
    [("list",), ("list", "--all"), ("search", "hello red link"), ("show", "ID"), ("about",)],
)
def test_human_output_has_no_raw_control_characters(
    db_location: Path, stored: str, command: tuple[str, ...]
) -> None:
    out = _run(db_location, *(stored if part == "ID" else part for part in command))
    assert not RAW_CONTROL.search(out), repr(out)
    assert "\\x1b" in out  # shown, not hidden: the user can see something odd was stored
    if command[0] == "show":
        assert "\\x1b]0;pwned\\x07 \\x1b[2J hello" in out
        assert "user.\\x1b[8mhidden" in out and "agent\\x1b]0;x\\x07" in out


@pytest.mark.parametrize("command", [("list", "--json"), ("show", "ID", "--json"), ("export",)])
def test_json_output_is_exact_and_has_no_raw_control_characters(
    db_location: Path, stored: str, command: tuple[str, ...]
) -> None:
    out = _run(db_location, *(stored if part == "ID" else part for part in command))
    assert not RAW_CONTROL.search(out.replace("\n", "")), repr(out)
    first = out if command[0] != "export" else out.splitlines()[0]
    data = json.loads(first)
    data = data[0] if isinstance(data, list) else data
    assert data["content"] == HOSTILE.strip()
    assert data["subject_key"] == "user.\x1b[8mhidden"
    assert data["metadata"] == {"\x1b[2Jkey": HOSTILE}


def test_errors_quoting_user_input_are_made_printable(
    db_location: Path, stored: str, tmp_path: Path
) -> None:
    for args in (["show", "\x1b]0;pwned\x07zz"], ["import", f"{tmp_path}/\x1b[2J.json"]):
        result = CliRunner().invoke(cli.cli, ["--db", str(db_location), *args])
        assert result.exit_code == 1
        assert not RAW_CONTROL.search(result.output), repr(result.output)
        assert "\\x1b" in result.output


def test_list_and_show_on_a_real_terminal(db_location: Path, stored: str) -> None:
    """Through a pseudo-terminal, as the user sees it (the width code path of a TTY)."""
    import os
    import pty
    import subprocess
    import sys

    for args in (["list"], ["show", stored]):
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "memento.cli", "--db", str(db_location), *args],
                stdout=follower,
                stderr=subprocess.PIPE,
                timeout=60,
                env={**os.environ, "COLUMNS": "200"},
            )
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's other end is closed and drained
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(leader)
        out = b"".join(chunks).decode("utf-8")
        assert proc.returncode == 0, proc.stderr
        # a terminal turns "\n" into "\r\n"; anything else raw would be the stored text's
        assert not RAW_CONTROL.search(out.replace("\r\n", "\n")), repr(out)
        assert "\\x1b]0;pwned\\x07" in out
