"""``memento install claude-code``: wire the MCP server and the two hooks into Claude Code.

Where things go (verified against Claude Code 2.1):

- the hooks: the user settings file ``~/.claude/settings.json`` (``$CLAUDE_CONFIG_DIR``
  replaces ``~/.claude``), or with ``project`` that directory's ``.claude/settings.json``::

      {"hooks": {"SessionStart": [{"hooks": [{"type": "command",
                                              "command": "/abs/memento hook session-start",
                                              "timeout": 10}]}],
                 "UserPromptSubmit": [{"hooks": [{"type": "command",
                                                  "command": "/abs/memento hook user-prompt",
                                                  "timeout": 10}]}]}}

  The SessionStart group has no ``matcher``, so it fires for every source (startup,
  resume, clear, compact).
- the MCP server: user scope, via ``claude mcp add --scope user memento -- /abs/memento
  start`` when the ``claude`` CLI is on PATH, else the same entry written where that command
  writes it (``mcpServers.memento`` in ``~/.claude.json``, or
  ``$CLAUDE_CONFIG_DIR/.claude.json``); with ``project``, ``mcpServers.memento`` in the
  project's ``.mcp.json``.

Our entries are recognised by their command, not by position: a hook whose command is an
absolute path to a ``memento`` executable, optionally ``--db PATH``, then ``hook
session-start`` or ``hook user-prompt``. So a second install changes nothing, an install from
another virtualenv replaces the old entries instead of adding more, and uninstall removes
exactly these and leaves every other setting and hook alone.

Every file is parsed before anything is written: a file that is not a JSON object stops the
whole plan with an :class:`InstallError` naming it, and nothing is written. A file that
changes is first copied beside itself (``settings.json.memento-backup-<time>``). Only the
standard library is imported here, so ``memento --help`` stays fast.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import display_location
from ...errors import MementoError

SERVER_NAME = "memento"
# Claude Code hook event -> `memento hook` subcommand.
HOOK_EVENTS = {"SessionStart": "session-start", "UserPromptSubmit": "user-prompt"}
# The hooks give up on their own after MEMENTO_HOOK_TIMEOUT (5 s by default) and print
# nothing; Claude Code's limit (60 s by default) is only a backstop, set close above that so
# a wedged process never holds a prompt for a minute.
HOOK_TIMEOUT_S = 10
# `claude mcp add/remove` only edit a JSON file; a minute means something is wrong.
CLAUDE_CLI_TIMEOUT_S = 60


class InstallError(MementoError):
    """A settings file cannot be read or parsed, the ``memento`` executable cannot be found,
    or the ``claude`` CLI failed; nothing was written."""


# ---- what to write ----------------------------------------------------------------------


@dataclass(frozen=True)
class Commands:
    """The commands Claude Code will run: the MCP server and one per hook event."""

    server_command: str
    server_args: tuple[str, ...]
    hooks: dict[str, str]  # Claude Code event -> shell command line

    def server_entry(self) -> dict[str, Any]:
        # The shape `claude mcp add` writes, so a later `claude mcp` sees its own format.
        return {
            "type": "stdio",
            "command": self.server_command,
            "args": list(self.server_args),
            "env": {},
        }

    def hook_entry(self, event: str) -> dict[str, Any]:
        return {"type": "command", "command": self.hooks[event], "timeout": HOOK_TIMEOUT_S}


def memento_executable() -> Path:
    """The absolute path of the installed ``memento`` command, so Claude Code finds it
    without the user's virtualenv on PATH.

    The script that is running wins (a pipx shim stays a shim: not resolved, so it survives
    upgrades), then the one installed beside this interpreter, then the one on PATH.
    """
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidates: list[Path] = []
    if running is not None and running.name == "memento":
        candidates.append(running)
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / "memento")
    candidates.append(Path(sys.executable).parent / "memento")
    on_path = shutil.which("memento")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    raise InstallError(
        "cannot find the installed `memento` command: install memento with pip or pipx so "
        "that a `memento` executable exists, then run this again"
    )


def commands_for(executable: Path, db: str | Path | None) -> Commands:
    """The server and hook commands; ``db`` (an absolute path or a URL) is baked in so the
    hooks and the server read the database this install was made for."""
    prefix: list[str] = [str(executable)]
    if isinstance(db, Path):
        db = db.resolve()  # `--db ../x.db` from a subdirectory: a path that reads plainly
    elif db is not None:
        # Claude Code's settings are plain files that backups, dotfile repositories and
        # other tools read: a PostgreSQL password stays out of them (libpq finds it in
        # ~/.pgpass or PGPASSWORD, see PASSWORD_NOTE)
        db = display_location(db)
    if db is not None:
        prefix += ["--db", str(db)]
    hooks = {event: shlex.join([*prefix, "hook", sub]) for event, sub in HOOK_EVENTS.items()}
    return Commands(str(executable), (*prefix[1:], "start"), hooks)


PASSWORD_NOTE = (
    "The password in the database URL was not written into Claude Code's settings: give it "
    "to the server and the hooks in ~/.pgpass (a line host:port:database:user:password, "
    "chmod 600) or in PGPASSWORD where Claude Code runs."
)


def has_password(db: str | Path | None) -> bool:
    """True for a database URL that carries a password (commands_for leaves it out)."""
    return isinstance(db, str) and display_location(db) != db


def is_our_hook(entry: Any, event: str) -> bool:
    """True for a hook that memento installed for ``event``, whichever memento executable
    and database it names."""
    if not isinstance(entry, dict) or entry.get("type", "command") != "command":
        return False
    command = entry.get("command")
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if len(words) not in (3, 5) or words[-2:] != ["hook", HOOK_EVENTS[event]]:
        return False
    program = Path(words[0])
    if not (program.is_absolute() and program.name == "memento"):
        return False
    return len(words) == 3 or words[1] == "--db"


def is_our_server(entry: Any) -> bool:
    """True for an MCP server entry that runs ``<abs>/memento [--db PATH] start``."""
    if not isinstance(entry, dict):
        return False
    command, args = entry.get("command"), entry.get("args") or []
    if not isinstance(command, str) or not isinstance(args, list):
        return False
    program = Path(command)
    with_db = len(args) == 3 and args[0] == "--db" and args[2] == "start"
    return program.is_absolute() and program.name == "memento" and (args == ["start"] or with_db)


def _same_server(entry: Any, commands: Commands) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("command") == commands.server_command
        and list(entry.get("args") or []) == list(commands.server_args)
    )


# ---- where it goes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The two files for one scope: ``settings`` holds the hooks, ``mcp_config`` the
    server; ``scope`` is "user" or "project"."""

    scope: str
    settings: Path
    mcp_config: Path


def claude_config_dir() -> Path:
    """Claude Code's user directory: ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    env = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    return Path(env).expanduser().absolute() if env else Path.home() / ".claude"


def user_target() -> Target:
    env = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    # Claude Code keeps its user state (user-scope MCP servers among it) in ~/.claude.json,
    # or inside $CLAUDE_CONFIG_DIR when that is set.
    state = claude_config_dir() / ".claude.json" if env else Path.home() / ".claude.json"
    return Target("user", claude_config_dir() / "settings.json", state)


def project_target(directory: str | os.PathLike[str]) -> Target:
    """The project of ``directory``: the top of its git work tree, else the directory."""
    from ...projects import find_project

    root = Path(find_project(directory).root)
    return Target("project", root / ".claude" / "settings.json", root / ".mcp.json")


# ---- reading and planning ---------------------------------------------------------------


@dataclass
class Change:
    """One file to rewrite (``after`` None: delete it), or with ``run`` one ``claude``
    command to run instead of writing the file ourselves."""

    path: Path
    before: str | None
    after: str | None
    summary: list[str]
    run: list[list[str]] = field(default_factory=list)

    def diff(self) -> str:
        if self.run:
            return "".join(f"  $ {shlex.join(command)}\n" for command in self.run)
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path) if self.after is not None else "/dev/null",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass
class Plan:
    """What install or uninstall would do; ``unchanged`` says what is already as wanted."""

    action: str
    target: Target
    changes: list[Change]
    unchanged: list[str]
    notes: list[str] = field(default_factory=list)  # what the user must do besides


def _read_json(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The file's text (None when absent) and its object; an empty file is ``{}``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read {path}: {exc}; nothing was changed") from None
    if not text.strip():
        return text, {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InstallError(
            f"{path} is not valid JSON ({exc}); fix or move it, then run this again. "
            "Nothing was changed"
        ) from None
    if not isinstance(data, dict):
        raise InstallError(
            f"{path} does not hold a JSON object; fix or move it, then run this again. "
            "Nothing was changed"
        )
    return text, data


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _section(data: dict[str, Any], key: str, path: Path, kind: type) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise InstallError(
            f"{path}: {key!r} is not a JSON {'object' if kind is dict else 'array'}; fix it, "
            "then run this again. Nothing was changed"
        )
    return value


def _edit_hooks(
    path: Path, data: dict[str, Any], commands: Commands | None
) -> tuple[list[str], list[str]]:
    """Remove our hooks that differ from ``commands`` (all of them when None) and add the
    missing ones, in place. Returns (what changed, what was already right)."""
    changed: list[str] = []
    kept: list[str] = []
    hooks = _section(data, "hooks", path, dict)
    if hooks is None:
        if commands is None:
            return changed, kept
        hooks = data["hooks"] = {}
    for event in HOOK_EVENTS:
        groups = _section(hooks, event, path, list)
        wanted = commands.hook_entry(event) if commands else None
        found = removed = False
        new_groups: list[Any] = []
        for group in groups or []:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(inner, list):
                new_groups.append(group)
                continue
            remaining = []
            for entry in inner:
                if not is_our_hook(entry, event):
                    remaining.append(entry)
                elif wanted is not None and entry == wanted and not found:
                    found = True
                    remaining.append(entry)
                else:
                    removed = True
                    changed.append(f"remove {event} hook: {entry.get('command')}")
            if remaining or not inner:
                # A group we emptied goes; one the user left empty is theirs to keep.
                new_groups.append({**group, "hooks": remaining} if remaining != inner else group)
        if wanted is not None and not found:
            new_groups.append({"hooks": [wanted]})
            changed.append(f"add {event} hook: {wanted['command']}")
        elif found:
            kept.append(f"{event} hook already installed in {path}")
        if new_groups:
            hooks[event] = new_groups
        elif removed:
            del hooks[event]
    if not hooks and changed:
        del data["hooks"]
    return changed, kept


def _edit_server(
    path: Path, data: dict[str, Any], commands: Commands | None
) -> tuple[list[str], list[str]]:
    """Set (or with None remove) ``mcpServers.memento`` in place."""
    servers = _section(data, "mcpServers", path, dict)
    current = (servers or {}).get(SERVER_NAME)
    if commands is not None:
        if _same_server(current, commands):
            return [], [f"MCP server {SERVER_NAME!r} already configured in {path}"]
        if servers is None:
            servers = data["mcpServers"] = {}
        verb = "replace" if current is not None else "add"
        servers[SERVER_NAME] = commands.server_entry()
        line = shlex.join([commands.server_command, *commands.server_args])
        return [f"{verb} MCP server {SERVER_NAME!r}: {line}"], []
    if current is None:
        return [], []
    if not is_our_server(current):
        return [], [
            f"MCP server {SERVER_NAME!r} in {path} does not run `memento start`: left alone"
        ]
    del servers[SERVER_NAME]
    if not servers:
        del data["mcpServers"]
    return [f"remove MCP server {SERVER_NAME!r}"], []


def _file_change(
    path: Path,
    before: str | None,
    data: dict[str, Any],
    summary: list[str],
    delete_when_empty: bool,
) -> Change | None:
    if not summary:
        return None
    after: str | None = _dump(data)
    if delete_when_empty and not data and not path.is_symlink():
        after = None
    return Change(path, before, after, summary)


def plan(
    action: str,
    target: Target,
    commands: Commands | None,
    claude: str | None,
) -> Plan:
    """What ``action`` ("install" or "uninstall") would change for ``target``. ``commands``
    is what to install (ignored for uninstall); ``claude`` the ``claude`` CLI to register
    the user-scope server with, or None to write the file directly."""
    install = action == "install"
    wanted = commands if install else None
    changes: list[Change] = []
    unchanged: list[str] = []

    before, data = _read_json(target.settings)
    summary, kept = _edit_hooks(target.settings, data, wanted)
    unchanged += kept
    # An uninstall that leaves a settings file we may have created empty removes it; the
    # user's own `{}` is in the backup.
    change = _file_change(target.settings, before, data, summary, delete_when_empty=not install)
    if change:
        changes.append(change)

    before, data = _read_json(target.mcp_config)
    current = (_section(data, "mcpServers", target.mcp_config, dict) or {}).get(SERVER_NAME)
    summary, kept = _edit_server(target.mcp_config, data, wanted)
    unchanged += kept
    if summary:
        if target.scope == "user" and claude is not None:
            # Let Claude Code edit its own state file; it also knows how it is locked.
            run: list[list[str]] = []
            if current is not None:
                run.append([claude, "mcp", "remove", "--scope", "user", SERVER_NAME])
            if wanted is not None:
                run.append(
                    [
                        claude, "mcp", "add", "--scope", "user", SERVER_NAME, "--",
                        wanted.server_command, *wanted.server_args,
                    ]
                )  # fmt: skip
            changes.append(Change(target.mcp_config, before, before, summary, run))
        else:
            change = _file_change(
                target.mcp_config,
                before,
                data,
                summary,
                delete_when_empty=not install and target.scope == "project",
            )
            if change:
                changes.append(change)
    return Plan(action, target, changes, unchanged)


# ---- applying ---------------------------------------------------------------------------


def backup(path: Path) -> Path | None:
    """Copy ``path`` to ``<name>.memento-backup-<UTC time>`` beside it (None when absent)."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    copy = path.with_name(f"{path.name}.memento-backup-{stamp}")
    n = 1
    while copy.exists():
        copy = path.with_name(f"{path.name}.memento-backup-{stamp}-{n}")
        n += 1
    shutil.copy2(path, copy)
    return copy


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a crash leaves the old file whole."""
    if path.is_symlink():
        # A settings file linked from a dotfiles repository stays a link: write its target.
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run_claude(command: Sequence[str]) -> None:
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=CLAUDE_CLI_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"`{shlex.join(command)}` failed: {exc}") from None
    if done.returncode != 0:
        why = " ".join((done.stderr or done.stdout).split())[:300]
        raise InstallError(f"`{shlex.join(command)}` failed (exit {done.returncode}): {why}")


def apply(plan: Plan) -> list[Path]:
    """Carry out ``plan``: back up each file, then write it (or run ``claude``). Returns
    the backups made."""
    backups: list[Path] = []
    # The `claude` commands first: they are the ones that can fail, and then nothing is
    # written at all.
    for change in sorted(plan.changes, key=lambda change: not change.run):
        copy = backup(change.path)
        if copy is not None:
            backups.append(copy)
        if change.run:
            for command in change.run:
                _run_claude(command)
        elif change.after is None:
            change.path.unlink(missing_ok=True)
        else:
            _write(change.path, change.after)
    return backups


def make_plan(
    action: str,
    project: str | os.PathLike[str] | None = None,
    db: str | Path | None = None,
    use_claude_cli: bool = True,
) -> Plan:
    """The plan for ``memento install|uninstall claude-code``: user scope, or with
    ``project`` (a directory) that project's files."""
    target = project_target(project) if project is not None else user_target()
    commands = commands_for(memento_executable(), db) if action == "install" else None
    claude = shutil.which("claude") if use_claude_cli and target.scope == "user" else None
    made = plan(action, target, commands, claude)
    if commands is not None and has_password(db):
        made.notes.append(PASSWORD_NOTE)
    return made


__all__ = [
    "HOOK_EVENTS",
    "HOOK_TIMEOUT_S",
    "PASSWORD_NOTE",
    "SERVER_NAME",
    "Change",
    "Commands",
    "InstallError",
    "Plan",
    "Target",
    "apply",
    "backup",
    "commands_for",
    "is_our_hook",
    "is_our_server",
    "make_plan",
    "memento_executable",
    "plan",
    "project_target",
    "user_target",
]
