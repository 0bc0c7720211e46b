"""The everyday commands: init, verify, stats, list, show, search, store, start, export,
import, reembed, about, forget and restore. Each parses, calls :class:`memento.Memory` and
prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..config import display_location, file_only, is_url, resolve_location
from ..context import MAX_BUDGET
from ..errors import InvalidInputError, MementoError
from ..jsonl import read_jsonl
from ..memory.search import MIN_LINE_TOKENS
from ..records import KINDS
from ..textsafe import json_printable, printable
from ..validate import MAX_LIMIT, MAX_RECALL_LIMIT
from .base import (
    DbPath,
    _human_size,
    _one_line,
    all_projects_option,
    cli,
    confirm,
    db_option,
    db_path,
    echo_json,
    explained_filters,
    explanation_lines,
    list_line,
    memories,
    open_memory,
    progress,
    project_option,
    scope_of,
    search_line,
    version_line,
)


@cli.command()
@click.argument("path", required=False, type=DbPath(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Delete the database and create an empty one.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation with --force.")
@db_option
@click.pass_context
def init(
    ctx: click.Context, path: Path | None, force: bool, yes: bool, sub_db: Path | None
) -> None:
    """Create an empty database, or upgrade an older one in place.

    \b
    Example:
      memento init
      memento init ~/work/project-memory.db --force --yes
    """
    from ..store import reset_store, store_exists

    target = db_path(ctx, path, sub_db)
    shown = display_location(target)
    existed = store_exists(target)
    if force and existed:
        try:
            with open_memory(target) as memory:
                count = memory.stats(all_projects=True)["total"]
            what = f"all {count} memories in {shown}" if count else f"the empty {shown}"
        except MementoError as exc:
            what = f"{shown} ({_one_line(str(exc))})"
        confirm(f"Delete {what} and start empty?", yes)
        reset_store(target)
        existed = False
    with open_memory(target, create=True, announce=False) as memory:
        stats = memory.stats(all_projects=True)
        upgraded = memory.upgraded_from
    version = stats["schema_version"]
    if not existed:
        click.echo(f"Initialized memento at {shown}")
    elif upgraded:
        click.echo(f"Upgraded {shown} from schema version {upgraded} to {version}")
    else:
        click.echo(
            f"{shown} already exists: {memories(stats['total'])}, schema version {version} "
            "(nothing to do; --force starts empty)"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@db_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool, sub_db: Path | None) -> None:
    """Check the database and the model: 9 checks, PASS or FAIL with the fix.

    Exit status 1 when any check fails.

    \b
    Example:
      memento verify
      memento verify --json | jq '.checks[] | select(.ok | not)'
    """
    from ..health import run_checks

    target = db_path(ctx, sub_db)
    if isinstance(target, str):  # the checks read a SQLite file's pages
        raise file_only(target, "memento verify")
    if not target.exists():  # one line, not nine failed checks
        raise click.ClickException(
            f"no memento database at {target}: create it with `memento init --db {target}`, "
            "or check --db and MEMENTO_PATH"
        )
    checks = run_checks(target)
    ok = all(c.ok for c in checks)
    if as_json:
        echo_json({"ok": ok, "path": str(target), "checks": [c.to_dict() for c in checks]})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.status}  {c.name:<{width}}  {_one_line(c.detail)}")
            if not c.ok and c.fix:
                click.echo(f"{'':4}  {'':<{width}}  fix: {c.fix}")
        failed = sum(not c.ok for c in checks)
        click.echo("All checks passed." if ok else f"{failed} of {len(checks)} checks failed.")
    if not ok:
        ctx.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool, sub_db: Path | None) -> None:
    """Counts by kind, archived, schema version, model, dimension and file size.

    \b
    Example:
      memento stats --json
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        data = memory.stats()
    if as_json:
        echo_json(data)
        return
    kinds = ", ".join(f"{kind} {count}" for kind, count in data["by_kind"].items())
    model = data["model"] or "(none yet)"
    click.echo(f"path:            {data['path']}")
    if data["project"]:
        names = [p["name"] for p in data["projects"] if p["id"] == data["project"]]
        name = printable(names[0] if names else data["project"])  # imported names are data
        click.echo(f"project:         {name} (and global)")
    else:
        click.echo(f"projects:        all ({len(data['projects'])} scopes)")
    click.echo(f"memories:        {data['live']} live ({kinds}), {data['archived']} archived")
    click.echo(f"schema version:  {data['schema_version']}")
    click.echo(f"model:           {model}, {data['dimension']} dimensions")
    # a server's tables with their indexes, or the file with its WAL: same width either way
    label = "size on server:" if is_url(str(data["path"])) else "file size:     "
    click.echo(f"{label}  {_human_size(data['file_size_bytes'])}")


def _kind_option(help_text: str) -> Callable[..., Any]:
    return click.option(
        "--kind",
        "-k",
        type=click.Choice(KINDS, case_sensitive=False),
        help=help_text,
    )


def _limit_option(default: int, maximum: int = MAX_LIMIT) -> Callable[..., Any]:
    return click.option(
        "--limit",
        "-n",
        type=click.IntRange(1, maximum),
        default=default,
        show_default=True,
        help="How many memories at most.",
    )


_since = click.option(
    "--since",
    help="Created at or after: 2026-11-01, 2026-11-24T10:00Z, 7d, 12h, '3 days ago', today, "
    "yesterday, 'last week', 'this month', 'March 2026', 2026-03 (days in UTC).",
)
_until = click.option(
    "--until",
    help="Created at or before (same forms as --since); a day or month counts whole: "
    "--until 2026-11-21 includes that day.",
)
_prefix = click.option(
    "--prefix", "-p",
    help="Only subject keys under this, by whole segments (project.shop: project.shop.*).",
)


@cli.command(name="list")
@_kind_option("Only this kind.")
@_limit_option(20)
@_prefix
@_since
@_until
@click.option("--all", "-a", "include_archived", is_flag=True, help="Include archived memories.")
@click.option("--json", "as_json", is_flag=True, help="Print the memories as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def list_(
    ctx: click.Context,
    kind: str | None,
    limit: int,
    prefix: str | None,
    since: str | None,
    until: str | None,
    include_archived: bool,
    as_json: bool,
    sub_db: Path | None,
) -> None:
    """The most recent memories, one line each: id, date, kind, importance, project, key.

    \b
    Example:
      memento list --kind fact --limit 5
      memento list --prefix project.shop --since 7d
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        records = memory.recent(
            limit=limit,
            kind=kind,
            include_archived=include_archived,
            subject_key_prefix=prefix,
            since=since,
            until=until,
        )
    if as_json:
        echo_json([r.to_dict() for r in records])
    elif not records:
        filtered = kind or prefix or since or until
        click.echo(
            "No matching memories." if filtered
            else "No memories yet. Store one: memento store \"...\""
        )
    else:
        for record in records:
            click.echo(list_line(record))


@cli.command()
@click.argument("memory_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the memory as JSON.")
@db_option
@click.pass_context
def show(ctx: click.Context, memory_id: str, as_json: bool, sub_db: Path | None) -> None:
    """One memory in full: every field, then the content. An id prefix of 8+ characters
    is enough.

    \b
    Example:
      memento show 01KVF2CKW772
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        record = memory.get(memory_id)
    if as_json:
        echo_json(record.to_dict())
        return
    data = record.to_dict()
    rows = [
        ("id", record.id),
        ("kind", record.kind),
        ("importance", f"{record.importance:.2f}"),
        ("subject_key", record.subject_key or "-"),
        ("source", record.source),
        ("created_at", data["created_at"]),
        ("updated_at", data["updated_at"]),
        ("archived_at", data["archived_at"] or "-"),
        ("metadata", json.dumps(record.metadata, ensure_ascii=False) if record.metadata else "-"),
    ]
    if record.versions > 1:
        rows.append(("versions", f"{record.versions} (memento history {record.short_id})"))
    for name, value in rows:
        click.echo(f"{name + ':':<13}{printable(value)}")
    click.echo("")
    for line in record.content.splitlines() or [""]:
        click.echo(f"    {printable(line)}")


@cli.command()
@click.argument("name", metavar="ID|KEY")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def history(ctx: click.Context, name: str, as_json: bool, sub_db: Path | None) -> None:
    """Every version of one memory, oldest first, the live one last: when each held,
    what replaced it, and its fields. Name the memory by id (8+ characters) or by
    subject key.

    \b
    Example:
      memento history user.theme
      memento history 01KVF2CKW772 --json
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        versions = memory.history(name)
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    for version in versions:
        click.echo(version_line(version))


@cli.command()
@click.argument("prefix", default="")
@_limit_option(100)
@click.option(
    "--as-of",
    help="Show the memories as they stood then: 2026-11-20 (its end), '3 days ago', "
    "'last month' (the forms of --until).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the memories as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def browse(
    ctx: click.Context,
    prefix: str,
    limit: int,
    as_of: str | None,
    as_json: bool,
    sub_db: Path | None,
) -> None:
    """Live memories with a subject key under PREFIX (whole segments), sorted by key;
    with --as-of, as they stood at that time (what was believed before a change).

    \b
    Example:
      memento browse user.
      memento browse project.shop --as-of "last month"
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        records = memory.browse(prefix, limit=limit, as_of=as_of)
    if as_json:
        echo_json([r.to_dict() for r in records])
    elif not records:
        click.echo("No memories with a subject key under that prefix" + (
            " at that time." if as_of else "."))
    else:
        for record in records:
            click.echo(list_line(record))


@cli.command()
@click.argument("query")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, MAX_RECALL_LIMIT),
    help=f"How many memories at most (default 10, at most {MAX_RECALL_LIMIT}; with "
    "--max-tokens, as many as fit).",
)
@_kind_option("Only this kind.")
@_prefix
@_since
@_until
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    help="Keep only results whose relevance (0 to 1, the same meaning for every query) is at "
    "least this; 0.5 is the bar the Claude Code hooks use. Default: keep all.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(MIN_LINE_TOKENS, MAX_BUDGET),
    help="Only the best results that fit in this many tokens, counted as the context block "
    "counts a memory's line.",
)
@click.option(
    "--explain", is_flag=True, help="Show the parts of each result's score and relevance."
)
@click.option("--all", "-a", "include_archived", is_flag=True, help="Include archived memories.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    limit: int | None,
    kind: str | None,
    prefix: str | None,
    since: str | None,
    until: str | None,
    min_score: float | None,
    max_tokens: int | None,
    explain: bool,
    include_archived: bool,
    as_json: bool,
    sub_db: Path | None,
) -> None:
    """Hybrid recall (meaning and keywords), best first, with each memory's relevance.

    \b
    Example:
      memento search "what theme does the user like"
      memento search "deploy" --kind lesson --since "last month" --prefix project.api
      memento search "how do we deploy" --min-score 0.5 --max-tokens 500
      memento search "deploy" --explain
    """
    if not query.strip():
        raise click.ClickException(
            "the query is empty: give words to search for; `memento list` shows the newest "
            "memories"
        )
    with open_memory(db_path(ctx, sub_db)) as memory:
        records = memory.recall(
            query,
            limit=limit,
            kind=kind,
            subject_key_prefix=prefix,
            since=since,
            until=until,
            include_archived=include_archived,
            min_score=min_score,
            explain=explain,
            max_tokens=max_tokens,
        )
    if as_json:
        echo_json([r.to_dict() for r in records])
    elif not records:
        click.echo("No matching memories." if min_score is None else "Nothing relevant.")
    else:
        if explain and records[0].explanation is not None:
            click.echo(explained_filters(records[0].explanation))
        for n, record in enumerate(records, 1):
            click.echo(search_line(n, record))
            if explain and record.explanation is not None:
                for line in explanation_lines(record.explanation):
                    click.echo(f"        {line}")


def _parse_meta(values: Sequence[str]) -> dict[str, Any] | None:
    if not values:
        return None
    meta: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--meta")
        meta[key.strip()] = value
    return meta


@cli.command()
@click.argument("content")
@_kind_option("fact (default), event or lesson.")
@click.option(
    "--importance",
    "-i",
    type=float,
    default=0.5,
    show_default=True,
    help="How much it matters, 0 to 1.",
)
@click.option("--subject-key", "-s", help="A key such as user.theme: storing it again updates.")
@click.option("--meta", "-m", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
@click.option("--source", default="cli", show_default=True, help="Where the memory came from.")
@click.option(
    "--created-at", help="When it happened, if not now: 2026-11-20, 2026-11-20T16:00Z, 3d."
)
@click.option("--json", "as_json", is_flag=True, help="Print the stored memory as JSON.")
@click.option("--global", "global_", is_flag=True, help="Store it for every project.")
@project_option
@db_option
@click.pass_context
def store(
    ctx: click.Context,
    content: str,
    kind: str | None,
    importance: float,
    subject_key: str | None,
    meta: tuple[str, ...],
    source: str,
    created_at: str | None,
    global_: bool,
    as_json: bool,
    sub_db: Path | None,
) -> None:
    """Remember something. CONTENT `-` reads it from stdin. It belongs to the current
    project (the working directory's, or --project DIR's) unless --global; facts under
    `user.*` keys are global by default.

    \b
    Example:
      memento store "I prefer dark mode in editors" --subject-key user.theme -i 0.8
      git log -1 --format=%B | memento store - --kind event --meta repo=api
    """
    if content == "-":
        content = sys.stdin.read()
    metadata = _parse_meta(meta)
    with open_memory(db_path(ctx, sub_db), create=True) as memory:
        record = memory.store(
            content,
            kind=kind or "fact",
            importance=importance,
            subject_key=subject_key,
            metadata=metadata,
            source=source,
            created_at=created_at,
            scope="global" if global_ else None,
        )
    if as_json:
        echo_json(record.to_dict())
        return
    verb = {
        "created": "Stored",
        "updated": "Updated",
        "unchanged": "Unchanged:",
        "deduplicated": "Already known:",
    }
    click.echo(f"{verb.get(record.action or '', 'Stored')} {record.short_id} ({scope_of(record)})")
    if record.related:
        click.echo(
            "Similar memories, possibly stale now (memento update ID or memento forget ID):"
        )
        for other in record.related:
            text = printable(" ".join(other.content.split()))
            click.echo(f"  {other.id[:12]}  {other.similarity:.2f}  {text}")
    if record.redactions:
        click.echo(f"Redacted before storing: {', '.join(record.redactions)}", err=True)


@cli.command()
@db_option
@click.option(
    "--project",
    "project_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Pin the current project to DIR's (default: the client's root folder if it "
    "offers one, else the working directory's).",
)
@click.option(
    "--http", "http", is_flag=True,
    help="Serve MCP Streamable HTTP at /mcp for many clients, each with a bearer token "
    "(`memento token create`), instead of stdio.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="MEMENTO_HOST", show_envvar=True,
    help="With --http: the address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
    envvar="MEMENTO_PORT", show_envvar=True, help="With --http: the port (0: any free one).",
)
@click.option(
    "--allow-host", "allow_hosts", multiple=True, metavar="NAME",
    help="With --http: a Host name requests may carry besides the address listened on, "
    "e.g. the public name a reverse proxy passes on (repeatable).",
)
@click.pass_context
def start(
    ctx: click.Context,
    sub_db: Path | None,
    project_dir: Path | None,
    http: bool,
    host: str,
    port: int,
    allow_hosts: tuple[str, ...],
) -> None:
    """Run the MCP server on stdio, for an agent to connect to, or with --http for many.

    Memories stored through it belong to the current project (user.* facts are global)
    and reads cover that project plus the global memories.

    With --http every request needs a bearer token: create one first (`memento token
    create NAME`); the server refuses to start while none exists. It listens on 127.0.0.1
    unless --host says otherwise and says where on stderr.

    \b
    Examples:
      claude mcp add memento -- memento start
      memento start --project ~/work/shop
      memento start --http --port 8765
    """
    explicit = sub_db or ctx.find_root().params.get("db")
    location = str(resolve_location(explicit)) if explicit else None
    if http:
        from ..server.http import serve  # the MCP SDK and uvicorn are only paid for here

        serve(location, project=project_dir, host=host, port=port, allow_hosts=allow_hosts)
        return
    from ..server import run  # the MCP SDK is only paid for here

    # A path or a URL as Memory takes it: one that cannot be opened (a directory, a URL) is
    # reported on every tool call, after the handshake, like any other open failure.
    run(location, project=project_dir)


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


@cli.command()
@click.argument("path", required=False, type=DbPath(path_type=Path))
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@db_option
@click.pass_context
def export(
    ctx: click.Context, path: Path | None, output: Path | None, sub_db: Path | None
) -> None:
    """Every memory, archived included, as one JSON object a line, on stdout or to a file.

    A PATH that is an existing database is read (the older form, `memento export DB`);
    any other PATH is the file to write, like -o.

    \b
    Example:
      memento export > backup.jsonl
      memento export -o backup.jsonl
    """
    database = sub_db
    if path is not None:
        if isinstance(path, str) or _is_sqlite(path):  # a postgresql:// URL or a file
            database = database or path
        elif output is None:
            output = path
        else:
            raise click.UsageError(
                f"{path} is not a memento database: give the database with --db and the file "
                "with -o"
            )
    with open_memory(db_path(ctx, database)) as memory:
        rows = list(memory.export())
    if output is not None:
        # written beside the target, then renamed: an interrupted export never leaves a
        # half-written backup under the backup's name
        partial = output.with_name(output.name + ".partial")
        with partial.open("w", encoding="utf-8") as out:
            _write_rows(out, rows)
        partial.replace(output)
        click.echo(f"Exported {memories(len(rows))} to {output}", err=True)
    else:
        _write_rows(sys.stdout, rows)


def _write_rows(out: Any, rows: list[dict[str, Any]]) -> None:
    with progress("Exporting", len(rows)) as update:
        for n, row in enumerate(rows, 1):
            # C1 controls as \u escapes: the same JSON, safe when stdout is a terminal
            out.write(json_printable(json.dumps(row, ensure_ascii=False)) + "\n")
            if update and n % 100 == 0:
                update(n, len(rows))
    out.flush()


def _path_and_file(
    ctx: click.Context, args: tuple[str, ...], what: str
) -> tuple[Path | str, str]:
    """``[PATH] FILE``: one argument is the file, two are the database then the file."""
    if len(args) == 1:
        return db_path(ctx, ctx.params.get("sub_db")), args[0]
    if len(args) == 2:
        if is_url(args[0].strip()):
            return db_path(ctx, args[0].strip()), args[1]
        first, second = Path(args[0]), Path(args[1])
        if first.exists() and not _is_sqlite(first) and (_is_sqlite(second) or is_url(args[1])):
            raise click.UsageError(
                f"the database comes first: memento {ctx.info_name} {args[1]} {args[0]} "
                f"(or give the database with --db)"
            )
        return db_path(ctx, first), args[1]
    raise click.UsageError(
        f"give [PATH] {what}: the database (optional; better: --db) then the {what}"
    )


def _read_jsonl(name: str) -> tuple[list[Any], list[str]]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name} is not UTF-8 text: is it a memento export?") from None
    lines = read_jsonl(text)
    return [value for _, value in lines], [label for label, _ in lines]


@cli.command(name="import_data")
@click.argument("args", nargs=-1, required=True, metavar="[PATH] FILE")
@db_option
@click.pass_context
def import_data(ctx: click.Context, args: tuple[str, ...], sub_db: Path | None) -> None:
    """Restore memories from `memento export` (alias: import-data). FILE `-` is stdin.

    Lossless: same ids, timestamps and archived state. Memories already present are
    skipped, so importing a file twice adds nothing. Every line is checked before anything
    is written: a bad line is reported with its number and nothing is imported.

    \b
    Example:
      memento import_data backup.jsonl
      memento import-data ~/new.db backup.jsonl
    """
    target, name = _path_and_file(ctx, args, "FILE")
    if name != "-" and (is_url(name) or _is_sqlite(Path(name))):
        what = "a database URL" if is_url(name) else "a SQLite database"
        raise click.UsageError(
            f"{display_location(name)} is {what}, not a `memento export` file: to restore "
            "into it use --db; to import another tool's store use `memento import`"
        )
    records, labels = _read_jsonl(name)
    with open_memory(target, create=True) as memory, progress("Importing", len(records)) as bar:
        counts = memory.import_records(records, progress=bar, labels=labels)
    changed = f"{counts['updated']} updated, " if counts["updated"] else ""
    click.echo(
        f"Imported {counts['added']} memories from {name} "
        f"({changed}{counts['skipped']} already present)"
    )


def _import_scope(ctx: click.Context) -> str | None:
    """Foreign memories go to the project named with --project, else to global."""
    project = ctx.meta.get("memento.project")
    return str(project) if project else None


@cli.command(name="import")
@click.argument("args", nargs=-1, required=True, metavar="[PATH] SOURCE")
@click.option(
    "--from",
    "format_",
    type=click.Choice(["auto", "pmb", "mcp-memory-json", "mcp-memory-service"]),
    default="auto",
    show_default=True,
    envvar="MEMENTO_IMPORT_FORMAT",
    help="The format of SOURCE; auto detects it.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@project_option
@db_option
@click.pass_context
def import_(
    ctx: click.Context,
    args: tuple[str, ...],
    format_: str,
    dry_run: bool,
    sub_db: Path | None,
) -> None:
    """Import another memory store: a foreign SQLite memory database (pmb), the MCP memory
    server's memory.json (mcp-memory-json) or mcp-memory-service's SQLite file. The
    memories are global unless --project DIR names their project.

    \b
    Example:
      memento import ~/.local/share/mcp-memory/sqlite_vec.db --dry-run
      memento import memory.json --from mcp-memory-json
    """
    from ..importers import read_source, write

    target, source = _path_and_file(ctx, args, "SOURCE")
    result = read_source(Path(source), format_)
    if dry_run:
        click.echo(
            f"Would import {len(result.records)} memories from {source} ({result.format}):"
        )
        for rec in result.records:
            key = f"[{printable(rec['subject_key'])}] " if rec.get("subject_key") else ""
            text = printable(" ".join(rec["content"].split()))
            text = text if len(text) <= 80 else text[:79] + "…"
            click.echo(f"  {rec['kind']:<6}  imp={rec['importance']:.2f}  {key}{text}")
    else:
        with open_memory(target, create=True) as memory, progress(
            "Importing", len(result.records)
        ) as bar:
            write(memory, result, progress=bar, scope=_import_scope(ctx))
        changed = f"{result.updated} updated, " if result.updated else ""
        click.echo(
            f"Imported {result.added} memories from {source} ({result.format}); "
            f"{changed}{result.already_present} already present"
        )
    for reason in result.skipped:
        click.echo(f"Skipped {printable(reason)}", err=True)


@cli.command()
@click.option("--all", "-a", "everything", is_flag=True, help="Re-encode every memory.")
@db_option
@click.pass_context
def reembed(ctx: click.Context, everything: bool, sub_db: Path | None) -> None:
    """Re-encode memories whose vector was made by another model (or all of them).

    Runs in batches, one transaction each: an interrupted run resumes where it stopped.

    \b
    Example:
      MEMENTO_EMBEDDING_MODEL=~/models/bge-small memento reembed
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        total = memory.stats()["total"]
        with progress("Re-embedding", total) as bar:
            done = memory.reembed(all=everything, progress=bar)
        name = memory.embedder.name
    click.echo(f"Re-embedded {done} memories with {name}")


@cli.command()
@click.option(
    "--events", "-e", type=click.IntRange(1, MAX_LIMIT), default=10, show_default=True,
    help="How many recent events.",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@project_option
@all_projects_option
@db_option
@click.pass_context
def about(ctx: click.Context, events: int, as_json: bool, sub_db: Path | None) -> None:
    """What memento knows about the user: `user.*` facts, the lessons learned, then the
    most recent events.

    \b
    Example:
      memento about --events 5
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        data = memory.about(events=events)
    if as_json:
        echo_json({name: [r.to_dict() for r in records] for name, records in data.items()})
        return
    if not any(data.values()):
        click.echo("Nothing about you yet. Store facts under user.* keys, e.g.")
        click.echo('  memento store "I prefer dark mode" --subject-key user.theme')
        return
    click.echo("About you:")
    for record in data["user"]:
        click.echo(list_line(record))
    if not data["user"]:
        click.echo("  (no user.* facts)")
    click.echo("Lessons learned:")
    for record in data["lessons"]:
        click.echo(list_line(record))
    if not data["lessons"]:
        click.echo("  (no lessons)")
    click.echo("Recent events:")
    for record in data["events"]:
        click.echo(list_line(record))
    if not data["events"]:
        click.echo("  (no events)")


_hard = click.option("--hard", is_flag=True, help="Delete for good instead of archiving.")
_yes = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@cli.command()
@click.argument("memory_id", metavar="ID")
@_hard
@_yes
@db_option
@click.pass_context
def forget(
    ctx: click.Context, memory_id: str, hard: bool, yes: bool, sub_db: Path | None
) -> None:
    """Archive a memory (hidden from recall, `memento restore` brings it back), or delete
    it for good with --hard.

    \b
    Example:
      memento forget 01KVF2CKW772
      memento forget 01KVF2CKW772 --hard --yes
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        record = memory.get(memory_id)
        if hard:
            confirm(f"Delete 1 memory, {record.short_id} ({record.content[:50]!r}), for good?", yes)
        memory.forget(record.id, hard=hard)
        pending = hard and memory.purge_pending
    click.echo(f"{'Deleted' if hard else 'Archived'} {record.short_id}{_pending(pending)}")


@cli.command(name="forget-prefix")
@click.argument("prefix")
@_hard
@_yes
@project_option
@all_projects_option
@db_option
@click.pass_context
def forget_prefix(
    ctx: click.Context, prefix: str, hard: bool, yes: bool, sub_db: Path | None
) -> None:
    """Archive (or delete with --hard) every memory whose subject_key is PREFIX or lies
    below it, by whole segments: `project.shop` covers `project.shop.*` but not
    `project.shopify`. `%` and `_` are ordinary characters.

    \b
    Example:
      memento forget-prefix project.old --hard --yes
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        if hard:
            found = memory.forget_prefix(prefix, hard=True, dry_run=True)
            if found:
                confirm(f"Delete {memories(found)} under {prefix!r} for good?", yes)
        count = memory.forget_prefix(prefix, hard=hard)
        pending = hard and count > 0 and memory.purge_pending
    click.echo(
        f"{'Deleted' if hard else 'Archived'} {memories(count)} under {prefix!r}"
        f"{_pending(pending)}"
    )


def _pending(pending: bool) -> str:
    if not pending:
        return ""
    return (
        "; its text stays in the database files while another process reads them "
        "(memento finishes the purge on its next write or exit after that)"
    )


@cli.command()
@click.argument("memory_id", metavar="ID")
@click.option("--content", "-c", help="New text (`-` reads it from stdin); it is re-embedded.")
@click.option("--importance", "-i", type=float, help="How much it matters, 0 to 1.")
@click.option("--kind", "-k", type=click.Choice(KINDS, case_sensitive=False), help="New kind.")
@click.option("--subject-key", "-s", help="New key; an empty string removes it.")
@click.option("--meta", "-m", multiple=True, metavar="KEY=VALUE", help="Replace the metadata.")
@click.option("--global", "global_", is_flag=True, help="Move it to the global scope.")
@click.option(
    "--to-project", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Move it to the project of this directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the memory as JSON.")
@db_option
@click.pass_context
def update(
    ctx: click.Context,
    memory_id: str,
    content: str | None,
    importance: float | None,
    kind: str | None,
    subject_key: str | None,
    meta: tuple[str, ...],
    global_: bool,
    to_project: Path | None,
    as_json: bool,
    sub_db: Path | None,
) -> None:
    """Change fields of one memory, keeping its id.

    \b
    Example:
      memento update 01KVF2CKW772 --content "Tests run with make test-all" -i 0.8
      memento update 01KVF2CKW772 --global
    """
    if global_ and to_project:
        raise click.UsageError("give --global or --to-project, not both")
    if content == "-":
        content = sys.stdin.read()
    scope = "global" if global_ else (str(to_project) if to_project else None)
    with open_memory(db_path(ctx, sub_db)) as memory:
        record = memory.update(
            memory_id,
            content=content,
            importance=importance,
            metadata=_parse_meta(meta),
            kind=kind,
            subject_key=subject_key,
            scope=scope,
        )
    if as_json:
        echo_json(record.to_dict())
        return
    click.echo(f"Updated {record.short_id} ({scope_of(record)})")


@cli.command(name="restore-prefix")
@click.argument("prefix")
@project_option
@all_projects_option
@db_option
@click.pass_context
def restore_prefix(ctx: click.Context, prefix: str, sub_db: Path | None) -> None:
    """Bring back every archived memory under PREFIX (whole key segments), the undo of
    `memento forget-prefix`. A memory whose key a live memory now holds stays archived.

    \b
    Example:
      memento restore-prefix project.shop
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        counts = memory.restore_prefix(prefix)
    line = f"Restored {memories(counts['restored'])} under {prefix!r}"
    if counts["kept"]:
        line += f"; {counts['kept']} kept archived (a live memory holds their key)"
    click.echo(line)


@cli.command()
@click.argument("memory_id", metavar="ID")
@db_option
@click.pass_context
def restore(ctx: click.Context, memory_id: str, sub_db: Path | None) -> None:
    """Bring an archived memory back into recall.

    \b
    Example:
      memento restore 01KVF2CKW772
    """
    with open_memory(db_path(ctx, sub_db)) as memory:
        record = memory.restore(memory_id)
    click.echo(f"Restored {record.short_id}")
