"""End to end with the real Claude Code CLI: `memento install claude-code`, then `claude -p`
in one project, and the session transcript holds that project's memory and the user's global
preference, and not another project's memory.

No network is needed: Claude Code runs the SessionStart and UserPromptSubmit hooks and writes
their output to the transcript (``~/.claude/projects/<dir>/<session>.jsonl``) before it
tries the API, which here is a closed local port, so it fails within a second. CI installs
the client (``.ci/run``); elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memento import Memory
from memento.embedder import Embedder
from memento.integrations.claude_code.install import memento_executable

CLAUDE_TIMEOUT_S = 120


def _missing_client() -> str | None:
    for tool in ("node", "npm", "claude"):
        if shutil.which(tool) is None:
            return (
                f"`{tool}` is not on PATH: install Node.js and the client with "
                "`npm install -g @anthropic-ai/claude-code` (.ci/run does)"
            )
    return None


MISSING = _missing_client()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


@pytest.fixture
def claude_env(tmp_path: Path) -> dict[str, str]:
    """A private HOME for Claude Code, offline: a dummy key, the API pointed at a closed
    local port, no retries, no updater, telemetry or other background traffic."""
    home = tmp_path / "home"
    home.mkdir()
    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "CLAUDE_", "MEMENTO_"))
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        ANTHROPIC_API_KEY="sk-ant-offline-test",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{closed_port}",
        CLAUDE_CODE_MAX_RETRIES="0",
        API_TIMEOUT_MS="5000",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        HF_HUB_OFFLINE="1",
    )
    return env


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True, capture_output=True)
    return path


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=CLAUDE_TIMEOUT_S,
    )


def _transcript_hook_outputs(home: Path) -> tuple[str, list[str]]:
    """All transcript text of the one session, and the hook events that printed."""
    transcripts = sorted((home / ".claude" / "projects").glob("*/*.jsonl"))
    assert len(transcripts) == 1, f"expected one session transcript, found {transcripts}"
    text = transcripts[0].read_text(encoding="utf-8")
    events = []
    for line in text.splitlines():
        attachment = json.loads(line).get("attachment") or {}
        if attachment.get("type", "").startswith("hook") and attachment.get("stdout"):
            events.append(attachment.get("hookEvent"))
    return text, events


def test_claude_session_gets_this_projects_memories_and_the_users_preference(
    tmp_path: Path, claude_env: dict[str, str], embedder: Embedder
) -> None:
    claude = shutil.which("claude")
    assert claude is not None
    memento = str(memento_executable())
    db = tmp_path / "memory.db"
    shop = _git_repo(tmp_path / "work" / "shop")
    blog = _git_repo(tmp_path / "work" / "blog")
    with Memory(db, embedder=embedder, project=shop) as m:
        m.store("The shop deploys with the quintbarrow script, never by hand", importance=0.9)
        # older than the two weeks of events a session start brings: only the prompt finds it
        m.store(
            "The shop deploy failed because the velvetquokka TLS certificate had expired",
            kind="event",
            created_at=datetime.now(timezone.utc) - timedelta(days=60),
        )
    with Memory(db, embedder=embedder, project=blog) as m:
        m.store("The blog deploys with the zephyrmoss script on Fridays", importance=0.9)
    with Memory(db, embedder=embedder) as m:
        pref = m.store(
            "I like answers short, and I write tests with plumwhistle fixtures",
            subject_key="user.style",
            importance=0.9,
        )
    assert pref.scope == "global"

    installed = _run([memento, "--db", str(db), "install", "claude-code"], claude_env, tmp_path)
    assert installed.returncode == 0, installed.stderr
    home = Path(claude_env["HOME"])
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert set(settings["hooks"]) == {"SessionStart", "UserPromptSubmit"}

    servers = _run([claude, "mcp", "list"], claude_env, shop)
    assert servers.returncode == 0, servers.stderr
    assert "memento" in servers.stdout and "Connected" in servers.stdout, servers.stdout

    session = _run(
        [claude, "-p", "Why did the deploy fail last time, was it the TLS certificate?"],
        claude_env,
        shop,
    )
    text, printed = _transcript_hook_outputs(home)
    log = db.parent / "hooks.log"
    detail = (
        f"hooks that printed: {printed}; claude exit {session.returncode}: "
        f"{session.stdout[-500:]} {session.stderr[-500:]}; "
        f"hooks.log: {log.read_text() if log.exists() else '(none)'}"
    )
    # Claude Code records a hook in the transcript only when it prints something.
    assert "SessionStart" in printed and "UserPromptSubmit" in printed, detail
    assert not log.exists(), detail  # every hook failure writes a line there
    assert "quintbarrow" in text, detail
    assert "plumwhistle" in text, detail
    assert "velvetquokka" in text, detail  # what the prompt hook found
    assert "zephyrmoss" not in text, detail


def test_uninstall_leaves_claude_without_memento(
    tmp_path: Path, claude_env: dict[str, str]
) -> None:
    claude = shutil.which("claude")
    assert claude is not None
    memento = str(memento_executable())
    for action in ("install", "uninstall"):
        done = _run([memento, action, "claude-code"], claude_env, tmp_path)
        assert done.returncode == 0, done.stderr
    servers = _run([claude, "mcp", "get", "memento"], claude_env, tmp_path)
    assert servers.returncode != 0, servers.stdout
    assert not (Path(claude_env["HOME"]) / ".claude" / "settings.json").exists()
