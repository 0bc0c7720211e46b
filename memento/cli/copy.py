"""``memento copy``: one store into another (any two backends). The rules are
:func:`memento.memory.copy.copy_store`'s; this parses and prints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import click

from ..memory.copy import copy_store
from ..textsafe import printable
from .base import cli, memories, progress


@cli.command(name="copy")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
def copy_(source: str, target: str) -> None:
    """Copy every memory of SRC into DST: database files or URLs (DST is created if
    missing).

    Lossless: ids, timestamps, archived state, metadata, scopes and projects, earlier
    versions, and the vectors as stored (DST must use vectors of the same dimension).
    Copying again adds nothing: memories DST already has are left alone, or brought up to
    SRC's newer state with the versions they lack; a memory changed later in DST stays as
    DST has it.

    \b
    Example:
      memento copy ~/.local/share/memento/memory.db ~/backup/memory.db
      memento copy ~/.local/share/memento/memory.db postgresql://me@host/memento
    """
    with contextlib.ExitStack() as stack:
        bar: list[Callable[[int, int], None] | None] = []

        def update(done: int, total: int) -> None:
            if not bar:  # the first call (before any batch) tells the total
                bar.append(stack.enter_context(progress("Copying", total)))
            if bar[0] is not None:
                bar[0](done, total)

        def finishing(what: str) -> None:
            if bar:  # close the bar first, so the line is not drawn over
                stack.close()
            click.echo(f"Copied; now {printable(what)}...", err=True)

        result = copy_store(source, target, progress=update, finishing=finishing)
    parts = [f"{result.added:,} added"]
    if result.archived:
        parts[0] += f" ({result.archived} archived: a live memory in DST holds their subject_key)"
    parts += [f"{n:,} {name}" for name, n in (("updated", result.updated),
              ("unchanged", result.unchanged)) if n]  # fmt: skip
    if result.kept:
        parts.append(f"{result.kept:,} kept as DST has them (changed there later)")
    extra = [_count(result.versions, "earlier version")] if result.versions else []
    if result.projects:
        extra.append(_count(result.projects, "project"))
    target = printable(result.target)
    click.echo(
        f"Copied {memories(result.total)} from {printable(result.source)} to {target}"
        f"{' (new)' if result.created else ''}: {', '.join(parts)}"
        + (f"; {', '.join(extra)}" if extra else "")
    )
    if result.stale:
        vectors = "has a vector" if result.stale == 1 else "have vectors"
        click.echo(
            f"{memories(result.stale)} in {target} {vectors} of another model than "
            f"{result.model}: run `memento reembed --db {target}`",
            err=True,
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n:,} {noun}s"
