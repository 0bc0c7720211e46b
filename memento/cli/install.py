"""``memento install claude-code`` and ``memento uninstall claude-code``: set up (or take
away) the MCP server and the hooks in Claude Code's settings. The rules live in
:mod:`memento.integrations.claude_code.install`; these commands parse, call and print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..config import resolve_location
from .base import cli, db_option, db_path, open_memory

TARGETS = ("claude-code",)


def _plan_and_apply(
    ctx: click.Context, action: str, project: bool, dry_run: bool, sub_db: Path | None
) -> None:
    from ..integrations.claude_code import install as claude_code

    db = None
    if action == "install":
        # Bake the database in only when one was chosen (--db or MEMENTO_PATH), so hooks and
        # server agree with it; otherwise both follow memento's default at run time.
        chosen = sub_db if sub_db is not None else ctx.find_root().params.get("db")
        db = resolve_location(chosen) if chosen is not None else None
    plan = claude_code.make_plan(action, project=Path.cwd() if project else None, db=db)
    where = f"{plan.target.scope} settings"
    if action == "install" and not dry_run:
        _ensure_database(ctx, sub_db)
    for note in plan.notes:
        click.echo(note, err=True)
    if not plan.changes:
        for line in plan.unchanged:
            click.echo(line)
        click.echo(
            f"Nothing to change: memento is already {action}ed for Claude Code ({where})."
            if action == "install"
            else f"Nothing to change: no memento entries in Claude Code's {where}."
        )
        return
    for change in plan.changes:
        click.echo(f"{'Would change' if dry_run else 'Changing'} {change.path}:")
        for line in change.summary:
            click.echo(f"  - {line}")
        if dry_run:
            click.echo(change.diff(), nl=False)
    if dry_run:
        click.echo("Dry run: nothing was written.")
        return
    for copy in claude_code.apply(plan):
        click.echo(f"Backup: {copy}")
    if action == "install":
        _prepare_model(ctx, sub_db)
        click.echo("Done. Restart Claude Code (or start a new session) to use memento.")
        if plan.target.scope == "project":
            click.echo("Claude Code asks once, in this project, to approve the .mcp.json server.")
    else:
        click.echo("Done. memento is no longer set up for Claude Code.")


def _ensure_database(ctx: click.Context, sub_db: Path | None) -> None:
    """Create the database the hooks and the server will use, if it is not there yet: a
    hook never creates one, so without it the first sessions would find nothing to read."""
    from ..store import store_exists

    target = db_path(ctx, sub_db)
    if not store_exists(target):
        with open_memory(target, create=True):
            pass


def _prepare_model(ctx: click.Context, sub_db: Path | None) -> None:
    """Load the embedding model once now, so its checked hashes and optimised session are
    cached before the first prompt: the prompt hook is a new process each time, gives up
    after 5 s, and a cold one took 2.1 s against 1.0 s warm (2-core machine, under load).
    A model that does not load leaves the install in place, with a warning: whatever
    failed (memento's checks, or onnxruntime itself), the settings are written and the
    hooks already give up quietly on their own."""
    try:
        with open_memory(db_path(ctx, sub_db)) as memory:
            memory.embedder.load()
    except Exception as exc:
        click.echo(f"warning: the embedding model did not load ({exc}): the hooks will "
                   "print nothing until `memento verify` passes", err=True)  # fmt: skip


def _options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The target argument and the options install and uninstall share."""
    function = click.option(
        "--dry-run", is_flag=True, help="Show what would change; write nothing."
    )(function)
    function = click.option(
        "--project",
        is_flag=True,
        help="The current project's .claude/settings.json and .mcp.json instead of your "
        "user settings.",
    )(function)
    function = click.argument("target", type=click.Choice(TARGETS))(function)
    return function


@cli.command()
@_options
@db_option
@click.pass_context
def install(
    ctx: click.Context, target: str, project: bool, dry_run: bool, sub_db: Path | None
) -> None:
    """Set up memento for an agent: the MCP server and the context hooks.

    For claude-code: registers `memento start` as the MCP server in your user scope (with
    `claude mcp add --scope user` when the claude CLI is on PATH, else in ~/.claude.json)
    and adds the SessionStart and UserPromptSubmit hooks to ~/.claude/settings.json. Both
    use the absolute path of this memento, and --db (or MEMENTO_PATH) when given. Running
    it again changes nothing; every file it changes is backed up beside itself first.

    \b
    Example:
      memento install claude-code --dry-run
      memento install claude-code
      memento --db ~/work/memory.db install claude-code --project
    """
    _plan_and_apply(ctx, "install", project, dry_run, sub_db)


@cli.command()
@_options
@click.pass_context
def uninstall(ctx: click.Context, target: str, project: bool, dry_run: bool) -> None:
    """Remove what `memento install` added, and nothing else.

    \b
    Example:
      memento uninstall claude-code --dry-run
      memento uninstall claude-code
    """
    _plan_and_apply(ctx, "uninstall", project, dry_run, None)
