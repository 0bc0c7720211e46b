"""``memento token``: the bearer tokens of the HTTP server (``memento start --http``).

The rules (names, hashing, what a token may do) live in :mod:`memento.memory.tokens`; these
commands parse, call and print. A token is printed once, by ``create``, on stdout alone (so
``TOKEN=$(memento token create ci)`` works); nothing else ever shows it.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..memory import TokenInfo
from ..textsafe import printable
from .base import cli, db_option, db_path, echo_json, open_memory


@cli.group()
def token() -> None:
    """Bearer tokens for `memento start --http`: create, list, revoke.

    \b
    Examples:
      memento token create alice-laptop
      memento token create ci --read-only --project github.com/acme/shop
      memento token list
      memento token revoke alice-laptop
    """


def _access(info: TokenInfo) -> str:
    return "read-only" if info.read_only else "read-write"


def _scope(info: TokenInfo) -> str:
    return f"project {printable(info.project.name)} and global" if info.project else "every project"


@token.command()
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The token can recall and list, not write.")
@click.option(
    "--project",
    metavar="P",
    help="Bind the token to one project (a directory, a project id or name, or a git remote "
    "URL such as github.com/acme/shop): it sees and writes that project and the global "
    "memories only.",
)
@db_option
@click.pass_context
def create(
    ctx: click.Context, name: str, read_only: bool, project: str | None, sub_db: Path | None
) -> None:
    """Create a token called NAME and print it, once: it is stored hashed and cannot be
    shown again. Hand it to one person or machine; revoke it by name."""
    with open_memory(db_path(ctx, sub_db), create=True) as memory:
        info, secret = memory.create_token(name, read_only=read_only, project=project)
    click.echo(secret)
    click.echo(
        f"Created token {info.name} ({_access(info)}, {_scope(info)}). It is shown only "
        f"now: keep it in a password manager; `memento token revoke {info.name}` ends it.",
        err=True,
    )


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
@db_option
@click.pass_context
def list_tokens(ctx: click.Context, as_json: bool, sub_db: Path | None) -> None:
    """Every token: its name, access, project, when it was made and last used (never the
    token itself)."""
    with open_memory(db_path(ctx, sub_db)) as memory:
        found = memory.tokens()
    if as_json:
        echo_json(
            [
                {
                    "name": t.name,
                    "read_only": t.read_only,
                    "project": t.project.id if t.project else None,
                    "created_at": t.created_at.isoformat(),
                    "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                }
                for t in found
            ]
        )
        return
    if not found:
        click.echo("No tokens: create one with `memento token create NAME`.")
        return
    for t in found:
        used = (
            f"last used {t.last_used_at.strftime('%Y-%m-%d %H:%M')}" if t.last_used_at
            else "never used"
        )
        click.echo(
            f"  {printable(t.name):<20}  {_access(t):<10}  {_scope(t)}  "
            f"created {t.created_at.strftime('%Y-%m-%d %H:%M')}, {used}"
        )


@token.command()
@click.argument("name")
@db_option
@click.pass_context
def revoke(ctx: click.Context, name: str, sub_db: Path | None) -> None:
    """Revoke the token called NAME: a server refuses it from its next request on."""
    with open_memory(db_path(ctx, sub_db)) as memory:
        info = memory.revoke_token(name)
    click.echo(f"Revoked token {printable(info.name)}.")
