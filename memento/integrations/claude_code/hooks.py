"""The Claude Code hooks: ``memento hook session-start`` and ``memento hook user-prompt``.

Claude Code runs a hook command with a JSON object on stdin (``session_id``,
``transcript_path``, ``cwd``, ``hook_event_name``, and ``source`` for SessionStart or
``prompt`` for UserPromptSubmit) and adds what the command prints on stdout to the model's
context. These hooks print :meth:`memento.Memory.context` for the project of ``cwd``.

A hook must never break the user's session. Whatever goes wrong (malformed input, a missing,
damaged or locked database, a missing model, a bug), the hook prints nothing, exits 0 and
writes one line to ``hooks.log`` next to the database; and it gives up after its own time
limit (``MEMENTO_HOOK_TIMEOUT`` seconds, default 5), printing nothing, long before Claude
Code's own limit.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

EVENTS = ("session-start", "user-prompt")
# Claude Code's own limit is 60 s; a prompt must not wait anywhere near that. A cold prompt
# hook takes ~0.35 s on a 2-core machine (p95 0.44 s, benches/hooks.py over 10k memories),
# so 5 s leaves room for a busy machine and still bounds the wait.
DEFAULT_TIMEOUT_S = 5.0
# Hook input larger than this is not what Claude Code sends (a prompt is at most a few
# hundred KB of pasted text): read no more, and treat it as malformed.
MAX_INPUT_BYTES = 4 * 1024 * 1024
# The log is for finding out why nothing was injected, not an archive: past this size it is
# rotated to hooks.log.1.
MAX_LOG_BYTES = 1024 * 1024
LOG_NAME = "hooks.log"


class HookInputError(ValueError):
    """The hook's stdin is not what Claude Code sends."""


def timeout_seconds() -> float:
    raw = os.environ.get("MEMENTO_HOOK_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def log_path(db: str | os.PathLike[str] | None) -> Path:
    """``hooks.log`` beside the database file (for a server URL: in the default data dir)."""
    from ...config import default_db_path, resolve_location

    try:
        location = resolve_location(db)
    except Exception:
        location = default_db_path()
    if isinstance(location, Path):
        return location.parent / LOG_NAME
    return default_db_path().parent / LOG_NAME


def write_log(path: Path, event: str, message: str) -> None:
    """Append one line; never raise (a log that cannot be written is no reason to fail)."""
    try:
        if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
            path.replace(path.with_name(path.name + ".1"))
        # a PostgreSQL user's log goes to the data directory, which nothing else made
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = " ".join(f"{stamp} {event}: {message}".split())[:1000]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except Exception:
        pass


def read_input(stream: IO[bytes]) -> dict[str, Any]:
    """The hook's JSON object, with its fields checked."""
    raw = stream.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise HookInputError(f"input larger than {MAX_INPUT_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HookInputError(f"input is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HookInputError("input is not a JSON object")
    for name in ("session_id", "cwd", "prompt", "source", "hook_event_name"):
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise HookInputError(f"{name} is not text")
    return data


def run(
    event: str,
    db: str | os.PathLike[str] | None,
    budget: int | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    exit_now: Callable[[int], None] = os._exit,
) -> int:
    """Run one hook; always returns 0. What it prints is the context block, or nothing."""
    # One-shot process: OpenBLAS need not start a thread per core when numpy is imported
    # (46 instead of ~100 ms of the import; 110 ms of CPU per prompt, benches/hooks.py).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout
    log = log_path(db)
    limit = timeout_seconds()

    def give_up() -> None:
        write_log(log, event, f"gave up after {limit:g} s (MEMENTO_HOOK_TIMEOUT); printed nothing")
        exit_now(0)  # from a timer thread: os._exit, so nothing half-written is flushed

    timer = threading.Timer(limit, give_up)
    timer.daemon = True
    timer.start()
    try:
        text = _context_text(event, db, budget, read_input(stdin))
        if text:
            stdout.write(text)
            stdout.flush()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            write_log(log, event, "interrupted")
        else:
            write_log(log, event, f"{type(exc).__name__}: {exc}")
    finally:
        timer.cancel()
    return 0


def _context_text(
    event: str, db: str | os.PathLike[str] | None, budget: int | None, data: dict[str, Any]
) -> str:
    from ...config import resolve_location
    from ...memory import Memory
    from ...projects import find_project

    if event not in EVENTS:
        raise HookInputError(f"unknown hook {event!r}: use {' or '.join(EVENTS)}")
    cwd = data.get("cwd") or ""
    if not cwd:
        raise HookInputError("input has no cwd: cannot tell which project this is")
    project = find_project(cwd)
    prompt: str | None = None
    if event == "user-prompt":
        prompt = data.get("prompt") or ""
        if not prompt.strip():
            return ""
    location = resolve_location(db)
    if isinstance(location, Path) and not location.exists():
        raise FileNotFoundError(f"no memento database at {location}: nothing to inject")
    with Memory(location, project=project, create=False) as memory:
        block = memory.context(prompt=prompt, budget=budget, session_id=data.get("session_id"))
    return block.text


def parse_command_line(args: list[str]) -> tuple[str, str | None, int | None] | None:
    """``[--db PATH] hook EVENT [--budget N] [--db PATH]`` as (event, db, budget); None
    when the command line is not a hook's (another command, or --help: click answers)."""
    rest = list(args)
    db: str | None = None
    while rest and rest[0].startswith("-"):
        if rest[0] == "--db" and len(rest) > 1:
            db, rest = rest[1], rest[2:]
        elif rest[0].startswith("--db="):
            db, rest = rest[0][5:], rest[1:]
        else:
            return None
    if len(rest) < 2 or rest[0] != "hook" or any(a in ("-h", "--help") for a in rest):
        return None
    event, options = rest[1], rest[2:]
    budget: int | None = None
    while options:
        name, value = options[0], options[1] if len(options) > 1 else None
        if "=" in name:
            name, value = name.split("=", 1)
            options = [name, value, *options[1:]]
        if value is None or name not in ("--db", "--budget", "-b"):
            raise HookInputError(f"unexpected hook option {options[0]!r}")
        if name == "--db":
            db = value
        else:
            try:
                budget = int(value)
            except ValueError:
                raise HookInputError(f"--budget must be a whole number, got {value!r}") from None
        options = options[2:]
    return event, db, budget


def main(args: list[str]) -> bool:
    """The hook without the CLI's machinery (click and every command: ~35 ms of a process
    started on every prompt). Returns False when ``args`` are not a hook's command line;
    otherwise runs it and exits 0, whatever happens."""
    try:
        parsed = parse_command_line(args)
    except HookInputError as exc:
        write_log(log_path(None), "hook", str(exc))
        sys.exit(0)
    if parsed is None:
        return False
    event, db, budget = parsed
    db = db if db is not None else (os.environ.get("MEMENTO_PATH") or None)
    if event not in EVENTS:
        write_log(log_path(db), event[:40], f"unknown hook: use {' or '.join(EVENTS)}")
        sys.exit(0)
    run(event, db, budget=budget)
    sys.exit(0)

