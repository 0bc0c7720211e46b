"""`memento install claude-code` and `memento uninstall claude-code` through the real CLI
(click's runner) in a private HOME: what they write, what they keep, and what they refuse."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memento.cli import cli
from memento.integrations.claude_code.install import memento_executable

MEMENTO = str(memento_executable())

# What a user already has: unrelated settings, and hooks of their own on the same events.
USER_SETTINGS = {
    "permissions": {"allow": ["Bash(npm test:*)"]},
    "env": {"FOO": "bar"},
    "hooks": {
        "SessionStart": [
            {"matcher": "startup", "hooks": [{"type": "command", "command": "echo hi"}]}
        ],
        "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "~/bin/lint-prompt"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "say done", "timeout": 5}]}],
    },
}
USER_STATE = {
    "numStartups": 12,
    "mcpServers": {"github": {"type": "stdio", "command": "npx", "args": ["gh-mcp"], "env": {}}},
    "projects": {"/src/app": {"allowedTools": []}},
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / ".claude").mkdir(parents=True)
    return path


@pytest.fixture
def run(home: Path, tmp_path: Path):
    """``run(*args)``: the memento CLI with HOME at ``home`` and no ``claude`` on PATH, so
    the user-scope server is written to ~/.claude.json directly (the real client is in
    test_claude_code_e2e.py and test_with_the_claude_cli below)."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    runner = CliRunner()

    def invoke(*args: str, path: str | None = None) -> Result:
        env = {"HOME": str(home), "PATH": path or str(empty_bin), "CLAUDE_CONFIG_DIR": None}
        return runner.invoke(cli, list(args), env=env)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def write_json(path: Path, data: dict) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not the indent memento writes, so "unchanged" below means the very bytes.
    raw = json.dumps(data, indent=4).encode()
    path.write_bytes(raw)
    return raw


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def ours(db: Path, sub: str) -> dict:
    command = shlex.join([MEMENTO, "--db", str(db.resolve()), "hook", sub])
    return {"type": "command", "command": command, "timeout": 10}


def backups(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.memento-backup-*"))


def test_install_adds_the_server_and_both_hooks_and_keeps_the_rest(
    run, home: Path, tmp_path: Path
) -> None:
    settings, state = home / ".claude" / "settings.json", home / ".claude.json"
    settings_before = write_json(settings, USER_SETTINGS)
    state_before = write_json(state, USER_STATE)
    db = tmp_path / "memory.db"

    out = ok(run("--db", str(db), "install", "claude-code"))

    assert "add SessionStart hook" in out and "add MCP server 'memento'" in out
    written = load(settings)
    expected = json.loads(json.dumps(USER_SETTINGS))
    expected["hooks"]["SessionStart"].append({"hooks": [ours(db, "session-start")]})
    expected["hooks"]["UserPromptSubmit"].append({"hooks": [ours(db, "user-prompt")]})
    assert written == expected
    server = load(state)["mcpServers"]["memento"]
    assert server == {
        "type": "stdio",
        "command": MEMENTO,
        "args": ["--db", str(db.resolve()), "start"],
        "env": {},
    }
    assert {k: v for k, v in load(state).items() if k != "mcpServers"} == {
        k: v for k, v in USER_STATE.items() if k != "mcpServers"
    }
    assert load(state)["mcpServers"]["github"] == USER_STATE["mcpServers"]["github"]
    # The commands are absolute, so Claude Code needs no virtualenv on PATH.
    assert Path(MEMENTO).is_absolute() and os.access(MEMENTO, os.X_OK)
    # Each file was backed up, byte for byte, before it changed.
    [settings_copy] = backups(home / ".claude")
    [state_copy] = backups(home)
    assert settings_copy.read_bytes() == settings_before
    assert state_copy.read_bytes() == state_before


def test_a_second_install_changes_nothing(run, home: Path) -> None:
    write_json(home / ".claude" / "settings.json", USER_SETTINGS)
    ok(run("install", "claude-code"))
    files = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}

    out = ok(run("install", "claude-code"))

    assert "Nothing to change" in out
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == files


def test_without_db_the_commands_use_mementos_default(run, home: Path, monkeypatch) -> None:
    monkeypatch.delenv("MEMENTO_PATH")
    ok(run("install", "claude-code"))
    hooks = load(home / ".claude" / "settings.json")["hooks"]
    assert hooks["SessionStart"] == [
        {"hooks": [{"type": "command", "command": f"{MEMENTO} hook session-start", "timeout": 10}]}
    ]
    assert hooks["UserPromptSubmit"][0]["hooks"][0]["command"] == f"{MEMENTO} hook user-prompt"
    assert load(home / ".claude.json")["mcpServers"]["memento"]["args"] == ["start"]


def test_memento_path_is_baked_in(run, home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEMENTO_PATH", str(tmp_path / "env.db"))
    ok(run("install", "claude-code"))
    args = load(home / ".claude.json")["mcpServers"]["memento"]["args"]
    assert args == ["--db", str((tmp_path / "env.db").resolve()), "start"]


def test_uninstall_removes_exactly_what_install_added(run, home: Path, tmp_path: Path) -> None:
    settings, state = home / ".claude" / "settings.json", home / ".claude.json"
    write_json(settings, USER_SETTINGS)
    write_json(state, USER_STATE)
    ok(run("--db", str(tmp_path / "m.db"), "install", "claude-code"))

    out = ok(run("uninstall", "claude-code"))

    assert "remove SessionStart hook" in out and "remove MCP server 'memento'" in out
    assert load(settings) == USER_SETTINGS
    assert load(state) == USER_STATE
    assert "Nothing to change" in ok(run("uninstall", "claude-code"))


def test_uninstall_removes_the_files_install_created(run, home: Path) -> None:
    ok(run("install", "claude-code"))
    ok(run("uninstall", "claude-code"))
    assert not (home / ".claude" / "settings.json").exists()
    assert load(home / ".claude.json") == {}  # Claude Code's own state file stays


def test_an_install_from_another_virtualenv_is_replaced_not_duplicated(
    run, home: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MEMENTO_PATH")
    old = {"type": "command", "command": "/old/venv/bin/memento hook session-start"}
    mine = {"type": "command", "command": "echo mine"}
    settings = home / ".claude" / "settings.json"
    write_json(settings, {"hooks": {"SessionStart": [{"hooks": [mine, old]}]}})

    out = ok(run("install", "claude-code"))

    assert "remove SessionStart hook: /old/venv/bin/memento hook session-start" in out
    groups = load(settings)["hooks"]["SessionStart"]
    assert groups == [
        {"hooks": [mine]},
        {"hooks": [{"type": "command", "command": f"{MEMENTO} hook session-start", "timeout": 10}]},
    ]
    ok(run("uninstall", "claude-code"))
    assert load(settings) == {"hooks": {"SessionStart": [{"hooks": [mine]}]}}


def test_a_server_named_memento_that_is_not_memento_is_left_alone_by_uninstall(
    run, home: Path
) -> None:
    state = {"mcpServers": {"memento": {"command": "docker", "args": ["run", "memento"]}}}
    write_json(home / ".claude.json", state)
    ok(run("uninstall", "claude-code"))
    assert load(home / ".claude.json") == state


@pytest.mark.parametrize(
    "text",
    ["{not json", '["a list"]', '{"hooks": ["SessionStart"]}', '{"hooks": {"SessionStart": {}}}'],
)
def test_a_settings_file_it_cannot_parse_is_refused_untouched(run, home: Path, text: str) -> None:
    settings = home / ".claude" / "settings.json"
    settings.write_text(text)

    result = run("install", "claude-code")

    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and str(settings) in line and "Nothing was changed" in line
    assert settings.read_text() == text
    assert not (home / ".claude.json").exists()
    assert backups(home / ".claude") == []


def test_an_unparseable_state_file_stops_before_the_hooks_are_written(run, home: Path) -> None:
    (home / ".claude.json").write_text("{")
    result = run("install", "claude-code")
    assert result.exit_code == 1 and str(home / ".claude.json") in result.output
    assert not (home / ".claude" / "settings.json").exists()


def test_dry_run_shows_the_change_and_writes_nothing(run, home: Path) -> None:
    settings = home / ".claude" / "settings.json"
    raw = write_json(settings, USER_SETTINGS)

    out = ok(run("install", "claude-code", "--dry-run"))

    assert f'+            "command": "{MEMENTO} --db' in out  # a unified diff
    assert "Dry run: nothing was written." in out
    assert settings.read_bytes() == raw
    assert sorted(p.name for p in home.rglob("*")) == [".claude", "settings.json"]


def test_project_writes_the_projects_files_only(
    run, home: Path, tmp_path: Path, monkeypatch
) -> None:
    repo = tmp_path / "shop"
    (repo / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    mine = {"mcpServers": {"db": {"command": "pg-mcp", "args": []}}}
    write_json(repo / ".mcp.json", mine)
    monkeypatch.chdir(repo / "src")  # from a subdirectory: the files go to the repo's top
    db = tmp_path / "m.db"

    out = ok(run("--db", str(db), "install", "claude-code", "--project"))

    assert str(repo / ".mcp.json") in out
    settings = load(repo / ".claude" / "settings.json")
    assert settings == {
        "hooks": {
            "SessionStart": [{"hooks": [ours(db, "session-start")]}],
            "UserPromptSubmit": [{"hooks": [ours(db, "user-prompt")]}],
        }
    }
    servers = load(repo / ".mcp.json")["mcpServers"]
    assert servers["db"] == mine["mcpServers"]["db"]
    assert servers["memento"]["command"] == MEMENTO
    assert sorted(p.name for p in home.rglob("*")) == [".claude"]  # user files untouched
    assert "Nothing to change" in ok(run("--db", str(db), "install", "claude-code", "--project"))

    ok(run("uninstall", "claude-code", "--project"))
    assert load(repo / ".mcp.json") == mine
    assert not (repo / ".claude" / "settings.json").exists()


def test_with_the_claude_cli_the_server_is_added_by_claude(run, home: Path) -> None:
    claude = shutil.which("claude")
    if claude is None:
        pytest.skip("the claude CLI is not on PATH (npm install -g @anthropic-ai/claude-code)")
    path = f"{Path(claude).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    write_json(home / ".claude.json", USER_STATE)

    out = ok(run("install", "claude-code", "--dry-run", path=path))
    assert f"$ {claude} mcp add --scope user memento -- {MEMENTO}" in out

    ok(run("install", "claude-code", path=path))
    state = load(home / ".claude.json")
    assert state["mcpServers"]["memento"]["command"] == MEMENTO
    assert state["mcpServers"]["github"] == USER_STATE["mcpServers"]["github"]
    assert "Nothing to change" in ok(run("install", "claude-code", path=path))

    ok(run("uninstall", "claude-code", path=path))
    assert "memento" not in load(home / ".claude.json")["mcpServers"]


def test_claude_config_dir_is_where_the_user_files_go(run, home: Path, tmp_path: Path) -> None:
    config = tmp_path / "claude-config"
    runner = CliRunner()
    env = {"HOME": str(home), "PATH": str(tmp_path / "bin"), "CLAUDE_CONFIG_DIR": str(config)}
    assert runner.invoke(cli, ["install", "claude-code"], env=env).exit_code == 0
    assert set(load(config / "settings.json")["hooks"]) == {"SessionStart", "UserPromptSubmit"}
    assert load(config / ".claude.json")["mcpServers"]["memento"]["command"] == MEMENTO
    assert sorted(p.name for p in home.rglob("*")) == [".claude"]


def test_a_settings_file_linked_from_dotfiles_stays_a_link(run, home: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "claude-settings.json"
    raw = write_json(dotfiles, USER_SETTINGS)
    settings = home / ".claude" / "settings.json"
    settings.symlink_to(dotfiles)

    ok(run("install", "claude-code"))
    assert settings.is_symlink() and "SessionStart" in load(dotfiles)["hooks"]

    ok(run("uninstall", "claude-code"))
    assert settings.is_symlink() and load(dotfiles) == USER_SETTINGS
    assert backups(home / ".claude")[0].read_bytes() == raw  # the one install made


def test_a_postgres_password_stays_out_of_claude_codes_settings(
    run, home: Path, postgres_url: str
) -> None:
    from memento import Memory
    from tests.conftest import HashEmbedder, with_password

    url = with_password(postgres_url)
    password = url.split("@", 1)[0].rsplit(":", 1)[1]

    result = run("--db", url, "install", "claude-code")

    assert result.exit_code == 0, result.output
    assert "~/.pgpass" in result.stderr and password not in result.output
    written = {p: p.read_text() for p in home.rglob("*") if p.is_file()}
    assert written and not [p for p, text in written.items() if password in text]
    [baked] = {a for a in load(home / ".claude.json")["mcpServers"]["memento"]["args"]
               if a.startswith("postgresql://")}  # fmt: skip
    assert baked.endswith(postgres_url.split("@", 1)[1])  # the same server and database
    with Memory(baked, embedder=HashEmbedder()) as memory:  # the test server trusts its socket
        assert memory.stats()["total"] == 0


def test_install_prepares_the_model_for_the_first_prompt(tmp_path: Path) -> None:
    """The model's optimised session is cached by install, so the first prompt hook (a new
    process with a 5 s limit) does not build it."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMENTO_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), PATH=str(tmp_path))
    done = subprocess.run(
        [MEMENTO, "--db", str(tmp_path / "m.db"), "install", "claude-code"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert list((cache / "memento").glob("sessions/*/sha256.json"))
