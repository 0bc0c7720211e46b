"""The ``memento`` command line: the group, the shared options and the printing helpers.

Every rule lives in ``Memory``; commands parse, call and print. A ``MementoError`` becomes
one line on stderr (``Error: ...``) and exit status 1; usage errors exit 2. Nothing here
imports numpy, onnxruntime or the MCP SDK at module level, so ``memento --help``,
``memento list`` and ``memento stats`` start fast.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..config import resolve_location
from ..embedder import _embedders, shared_embedder  # noqa: F401  (cli._embedders: tests share one model)
from ..errors import MementoError
from ..memory import Memory
from ..projects import Project, find_project
from ..recall import Explanation
from ..records import MemoryRecord, MemoryVersion
from ..textsafe import json_printable, printable

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# Progress bars appear only for jobs this large (about a second of embedding).
PROGRESS_MIN_ITEMS = 100

class MementoGroup(click.Group):
    """Turns a MementoError (and an unreadable file) into one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MementoError as exc:
            raise click.ClickException(_one_line(str(exc))) from None
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None
        except KeyboardInterrupt:
            # click would print "Aborted!" and exit 1, as for a failure; Ctrl-C during a
            # command ends the way shells expect (128 + SIGINT), saying so
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # `memento import-data` is an alias of `memento import_data`.
        if args and args[0] == "import-data":
            args = ["import_data", *args[1:]]
        return super().resolve_command(ctx, args)


def _one_line(text: str) -> str:
    # errors and details can quote stored text: never let it reach the terminal raw
    return printable(" ".join(text.split()))


# ---- opening the database ------------------------------------------------------------


class DbPath(click.Path):
    """A database path, or a URL kept as text (a Path would fold ``//``): a
    ``postgresql://`` URL names a server's database, another URL is refused in one line."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..config import is_url

        if isinstance(value, str) and is_url(value.strip()):
            return value.strip()
        return super().convert(value, param, ctx)


def db_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--db PATH`` on a subcommand, for ``memento list --db x.db`` as well as
    ``memento --db x.db list``."""
    return click.option(
        "--db",
        "sub_db",
        type=DbPath(path_type=Path),
        help="Database file or postgresql:// URL (default: --db of memento, MEMENTO_PATH, "
        "or ~/.local/share/memento/memory.db).",
    )(function)


def db_path(ctx: click.Context, *choices: Path | str | None) -> Path | str:
    """The first location given (positional PATH, then --db), else the group's
    --db/MEMENTO_PATH, else the default: a file path, or a ``postgresql://`` URL as text."""
    for choice in choices:
        if choice is not None:
            return resolve_location(choice)
    return resolve_location(ctx.find_root().params.get("db"))


# ---- project scopes -------------------------------------------------------------------
# The CLI's current project is its working directory's (memento.projects); `--project DIR`
# names another, `--all-projects` lifts the scope on reads. The options store what they were
# given in the click context, so every command opens its Memory the same way.

_PROJECT = "memento.project"
_ALL = "memento.all_projects"


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value:
            ctx.meta[key] = value
        return value

    return callback


def project_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--project DIR``: the project to work in instead of the working directory's."""
    return click.option(
        "--project",
        "project_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember(_PROJECT),
        help="Work in the project of DIR (default: the working directory's project).",
    )(function)


def all_projects_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--all-projects``: reads span every project, not just the current one and global."""
    return click.option(
        "--all-projects",
        "-A",
        is_flag=True,
        expose_value=False,
        callback=_remember(_ALL),
        help="Cover every project (default: the current project and global memories).",
    )(function)


def current_project(ctx: click.Context) -> Project | None:
    """The project the command works in: None with --all-projects (reads cover every
    project), else --project DIR's or the working directory's."""
    if ctx.meta.get(_ALL):
        return None
    return find_project(ctx.meta.get(_PROJECT) or Path.cwd())


def open_memory(path: Path | str, create: bool = False, announce: bool = True) -> Memory:
    """Open the database in the command's project. Without ``create`` a missing file says
    to run `memento init`; with it, a new file is made and (``announce``) said on stderr,
    so a typo in --db or MEMENTO_PATH never quietly starts a second memory."""
    ctx = click.get_current_context(silent=True)
    project = current_project(ctx) if ctx is not None else None
    memory = Memory(path, embedder=shared_embedder(), create=create, project=project)
    if announce and memory.upgraded_from == 0:
        click.echo(f"Created a new memento database at {memory.path}", err=True)
    return memory


# ---- printing -------------------------------------------------------------------------


def _width() -> int:
    """The terminal's width, or 0 when stdout is not a terminal (a pipe, a file): then
    lines are never cut, so `memento list | grep` sees every word."""
    if sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((80, 24)).columns)
    return 0


def list_line(record: MemoryRecord, suffix: str = "", lead: str = "  ") -> str:
    """``  01KVF2CKW772  2026-11-20  fact    imp=0.80  @shop [project.shop.db] The shop ...``
    (the creation date; ``@name``: the project the memory belongs to, none when global).
    On a terminal the content is cut to fit its width; elsewhere it is whole."""
    day = record.created_at.strftime("%Y-%m-%d")
    head = f"{lead}{record.short_id}  {day}  {record.kind:<6}  imp={record.importance:.2f}  "
    if record.versions > 1:
        head += f"v{record.versions} "
    if record.project:
        head += f"@{printable(record.project)} "
    if record.subject_key:
        head += f"[{printable(record.subject_key)}] "
    text = printable(" ".join(record.content.split()))
    if record.archived:
        text = f"(archived) {text}"
    width = _width()
    if width:
        room = max(width - len(head) - len(suffix) - 1, 10)
        if len(text) > room:
            text = text[: room - 1].rstrip() + "…"
    return f"{head}{text}{suffix}"


def memories(count: int) -> str:
    """``1 memory``, ``3 memories``."""
    return f"{count} memory" if count == 1 else f"{count:,} memories"


def scope_of(record: MemoryRecord) -> str:
    """Where a memory belongs, as a command reports it: ``project shop`` or ``global``."""
    return f"project {printable(record.project)}" if record.project else "global"


def search_line(n: int, record: MemoryRecord) -> str:
    """``   1. 01KVF2CKW772  2026-11-20  fact    imp=0.80  [user.theme] I prefer ...  0.83``
    (ranks right-aligned, so ranks of 10 and up keep the columns; the relevance last)."""
    value = record.relevance if record.relevance is not None else record.score
    return list_line(record, suffix=f"  {value or 0.0:.2f}", lead=f"  {n:>2}. ")


def version_line(version: MemoryVersion) -> str:
    """``v1  2026-11-20 10:02 -> 2026-11-24 09:15  upsert  fact  imp=0.50  [user.theme] ...``
    (when it held, what replaced it; the live version says ``now``)."""
    start = version.valid_from.strftime("%Y-%m-%d %H:%M")
    if version.valid_until is None:
        span, change = f"{start} -> now             ", "live  "
        if version.archived_at is not None:
            change = "forgotten"
    else:
        span = f"{start} -> {version.valid_until.strftime('%Y-%m-%d %H:%M')}"
        change = f"{version.replaced_by:<6}"
    head = f"  v{version.version:<3} {span}  {change}  {version.kind:<6}  "
    head += f"imp={version.importance:.2f}  "
    if version.project:
        head += f"@{printable(version.project)} "
    if version.subject_key:
        head += f"[{printable(version.subject_key)}] "
    return head + printable(" ".join(version.content.split()))


def explanation_lines(why: Explanation) -> list[str]:
    """A result's score and relevance taken apart, three lines (``search --explain``)."""
    vector = (
        f"vector #{why.vector_rank} part {why.vector_part:.3f}" if why.vector_rank
        else "vector: not a candidate"
    )
    if why.keyword_rank:
        keyword = f"keyword #{why.keyword_rank} bm25 {why.bm25:.3f} part {why.keyword_part:.3f}"
    else:
        keyword = "keyword: no match"
    matched = ", ".join(printable(t) for t in why.matched_terms) or "none"
    mean = "mean" if why.weights["vector"] == why.weights["keyword"] else "weighted mean"
    return [
        f"score {why.score:.4f} = fused {why.fused:.4f} x importance {why.importance_factor:.3f}"
        f" (imp {why.importance:.2f}) x recency {why.recency_factor:.3f} "
        f"({why.age_days:.1f} days old)",
        f"fused = {mean} of {vector}; {keyword} ({why.method} fusion)",
        f"relevance {why.relevance:.3f} from cosine {why.similarity:.3f} and coverage "
        f"{why.coverage:.2f} (matched {len(why.matched_terms)} of {why.query_terms} query words, "
        f"counted over at least 3: {matched})",
    ]


def explained_filters(why: Explanation) -> str:
    """The filters a search applied, one line."""
    if not why.filters:
        return "filters: none"
    parts = []
    for name, value in why.filters.items():
        shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{name}={printable(shown)}")
    return "filters: " + " ".join(parts)


def echo_json(data: Any) -> None:
    click.echo(json_printable(json.dumps(data, ensure_ascii=False, indent=2)))


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawing a bar on stderr, or None when stderr is not a terminal
    or the job is small."""
    if total < PROGRESS_MIN_ITEMS or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        state = {"done": 0}

        def update(done: int, _total: int) -> None:
            bar.update(done - state["done"])
            state["done"] = done

        yield update


def confirm(message: str, yes: bool) -> None:
    """Ask before a destructive step, unless --yes. Without a terminal nobody can answer
    (an agent's shell, a pipe): refuse, and say to add --yes, rather than go ahead."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.ClickException(
            f"{message.rstrip('?')}: refusing without a terminal to confirm; "
            "add --yes to go ahead"
        )
    click.confirm(message, abort=True, err=True)


# ---- commands -------------------------------------------------------------------------


@click.group(cls=MementoGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--db",
    type=DbPath(path_type=Path),
    envvar="MEMENTO_PATH",
    show_envvar=True,
    help="Database file or postgresql:// URL (default: ~/.local/share/memento/memory.db).",
)
@click.version_option(__version__, "--version", prog_name="memento")
def cli(db: Path | None) -> None:
    """memento: persistent, local-first memory for AI coding agents, in one SQLite file.

    \b
    Example, a first day:
      memento init
      memento store "I prefer dark mode in editors" --subject-key user.theme
      memento search "what theme does the user like"
      memento start      # the MCP server, for your agent
    """



def _is_hook(args: Sequence[str]) -> bool:
    """Whether the command line runs ``memento [--db PATH] hook ...``."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] == "--db" else rest[1:]
    return bool(rest) and rest[0] == "hook"


def main(argv: Sequence[str] | None = None) -> None:
    """The ``memento`` entry point: never a traceback for an expected error."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if _is_hook(args):
        # A hook never breaks the user's session: Claude Code treats exit status 2 of a
        # UserPromptSubmit hook as "block this prompt", so even a usage error (a bad --db,
        # MEMENTO_PATH naming a directory) must end in status 0. The hook logs its own
        # failures; what click says goes to stderr, which Claude Code does not inject.
        try:
            cli.main(args=args, prog_name="memento", standalone_mode=False)
        except click.ClickException as exc:
            exc.show()
        except BaseException:
            pass
        sys.exit(0)
    try:
        cli.main(args=args, prog_name="memento")
    except BrokenPipeError:  # `memento export | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("MEMENTO_DEBUG"):
            raise
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
            "(set MEMENTO_DEBUG=1 to see the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)
