"""``memento context`` (the block an agent is given) and ``memento hook`` (Claude Code's
hooks, which print that block)."""

from __future__ import annotations

from pathlib import Path

import click

from ..context import MAX_BUDGET, PROMPT_BUDGET, SESSION_BUDGET
from ..textsafe import printable
from .base import (
    all_projects_option,
    cli,
    db_option,
    db_path,
    echo_json,
    open_memory,
    project_option,
)


@cli.command()
@click.option("--prompt", "-p", help="Only memories relevant to this prompt.")
@click.option(
    "--budget",
    "-b",
    type=click.IntRange(0, MAX_BUDGET),
    help=f"Hard cap in tokens (default: {SESSION_BUDGET} without --prompt, {PROMPT_BUDGET} "
    "with).",
)
@click.option("--session", "session_id", help="An agent session id: skip what it was given.")
@click.option("--json", "as_json", is_flag=True, help="Print the block and its memories as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def context(
    ctx: click.Context,
    prompt: str | None,
    budget: int | None,
    session_id: str | None,
    as_json: bool,
    sub_db: Path | None,
) -> None:
    """The block of memories an agent is given: what the Claude Code hooks inject.

    Without --prompt (a session start): your global preferences, the current project's
    facts and lessons, and its events of the last two weeks. With --prompt: only the
    memories relevant to it, or nothing at all. The block never exceeds --budget tokens.

    \b
    Example:
      memento context
      memento context --prompt "how do I run the tests?" --budget 200
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        block = memory.context(prompt=prompt, budget=budget, session_id=session_id)
    if as_json:
        echo_json(block.to_dict())
    elif block.text:
        # stored text, shown to a person on a terminal or in the agent's UI: never raw escapes
        click.echo(printable(block.text), nl=False)
    else:
        click.echo("Nothing relevant to inject.", err=True)


@cli.command()
@click.argument("event", type=click.Choice(["session-start", "user-prompt"]))
@click.option("--budget", "-b", type=click.IntRange(0, MAX_BUDGET), help="Hard cap in tokens.")
@db_option
@click.pass_context
def hook(ctx: click.Context, event: str, budget: int | None, sub_db: Path | None) -> None:
    """A Claude Code hook: reads the hook's JSON on stdin, prints the context block for the
    project of its cwd. Never fails: on any problem it prints nothing, exits 0 and writes
    one line to hooks.log beside the database.

    \b
    Installed by `memento install claude-code`; by hand, in ~/.claude/settings.json:
      SessionStart      -> memento hook session-start
      UserPromptSubmit  -> memento hook user-prompt

    \b
    Example (what Claude Code does on each prompt):
      echo '{"session_id": "s1", "cwd": ".", "prompt": "run the tests"}' \\
        | memento hook user-prompt
    """
    from ..integrations.claude_code.hooks import run

    explicit = sub_db or ctx.find_root().params.get("db")
    run(event, str(explicit) if explicit else None, budget=budget)
