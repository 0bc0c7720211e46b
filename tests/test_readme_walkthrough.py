"""The README, followed literally by a new user: every `$ memento ...` command of its console
examples runs in a fresh HOME, and prints what the README shows (ids, dates, paths and scores
aside). Then the Claude Code set-up it describes, and `memento context`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
README_HOME = "/home/me"
ID = re.compile(r"\b[0-9A-Z]{12}\b")


def memento_command() -> list[str]:
    """The installed `memento` when it is this interpreter's, else the module."""
    found = shutil.which("memento")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [found]
    return [sys.executable, "-m", "memento.cli"]


def console_examples() -> list[tuple[str, list[str]]]:
    """(command, the output lines shown under it) for each `$ memento` line of the README's
    console blocks."""
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                examples.append((line[2:], []))
            elif examples:
                examples[-1][1].append(line)
    return examples


def pattern(expected: str) -> re.Pattern[str]:
    """The README's line with ids, dates and scores as wildcards."""
    text = re.escape(expected)
    text = re.sub(r"[0-9A-Z]{12}", "[0-9A-Z]{12}", text)
    text = re.sub(r"\d{4}\\-\d\d\\-\d\d", r"\\d{4}-\\d\\d-\\d\\d", text)
    text = re.sub(r"\d\\\.\d\d", r"\\d\\.\\d\\d", text)
    return re.compile(text)


@pytest.fixture
def new_user(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMENTO_", "XDG_", "CLAUDE"))}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1", PATH=f"/nonexistent:{env.get('PATH', '')}")
    return env


def run(env: dict[str, str], args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*memento_command(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_the_readme_command_line_examples(new_user: dict[str, str], tmp_path: Path) -> None:
    examples = console_examples()
    assert len(examples) >= 5, "the README lost its console examples"
    work = tmp_path / "work"
    work.mkdir()
    ids: dict[str, str] = {}  # the README's ids -> this run's
    for command, shown in examples:
        words = shlex.split(command)
        assert words[0] == "memento", command
        args = [ids.get(w, w) for w in words[1:]]
        out = run(new_user, args, work)
        assert out.returncode == 0, (command, out.stdout, out.stderr)
        printed = out.stdout.replace(new_user["HOME"], README_HOME).splitlines()
        for n, line in enumerate(shown):
            assert n < len(printed), (command, shown, printed)
            assert pattern(line).fullmatch(printed[n]), (command, line, printed[n])
            for readme_id, actual in zip(ID.findall(line), ID.findall(printed[n])):
                ids.setdefault(readme_id, actual)


def test_the_claude_code_setup_it_describes(new_user: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    home = Path(new_user["HOME"])
    dry = run(new_user, ["install", "claude-code", "--dry-run"], project)
    assert dry.returncode == 0 and "nothing was written" in dry.stdout
    assert not (home / ".claude" / "settings.json").exists()
    installed = run(new_user, ["install", "claude-code"], project)
    assert installed.returncode == 0, installed.stderr
    hooks = json.loads((home / ".claude" / "settings.json").read_text())["hooks"]
    assert set(hooks) == {"SessionStart", "UserPromptSubmit"}
    again = run(new_user, ["install", "claude-code"], project)
    assert "Nothing to change" in again.stdout
    stored = run(
        new_user, ["store", "Run the shop's tests with make test-fast", "-k", "lesson"], project
    )
    assert "(project shop)" in stored.stdout
    block = run(new_user, ["context"], project)
    assert "make test-fast" in block.stdout and block.stdout.startswith("# memento")
    prompt = run(new_user, ["context", "--prompt", "how do I run the tests?"], project)
    assert "make test-fast" in prompt.stdout
    quiet = run(new_user, ["context", "--prompt", "a recipe for banana bread"], project)
    assert quiet.stdout == "" and "Nothing relevant" in quiet.stderr
    removed = run(new_user, ["uninstall", "claude-code"], project)
    assert removed.returncode == 0
    assert not (home / ".claude" / "settings.json").exists()
