"""The SQLite backend: the one function that opens a connection, transactions, and every
query over ``memories``, ``memory_fts`` and ``memory_vec`` (:class:`SQLiteStore`).

Rows of ``memories`` are keyed by an integer ``seq`` that is also the rowid of their FTS5
and vec0 rows. FTS5 follows ``memories`` through triggers; the vector row is written by the
same transaction as the memory (vectors are computed before the transaction starts).
Vectors are little-endian float32 BLOBs.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import re
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import apsw

from ..config import make_private_dirs
from ..dates import from_iso, to_iso, to_micros, utcnow
from ..errors import DatabaseError, InvalidInputError
from ..projects import GLOBAL, Project
from ..recall import keyword_query
from . import sqlite_index as index
from . import sqlite_migrations as migrations
from . import sqlite_parts as parts
from .base import COLUMNS as WRITABLE
from .base import Filters, NewMemory, Row, Store, Version, read_metadata
from .sqlite_index import VectorMeta
from .sqlite_meta import get_setting, set_setting
from .sqlite_tokens import SQLiteTokens

if TYPE_CHECKING:
    import numpy as np

BUSY_TIMEOUT_MS = 30_000
VEC_MAX_K = 4096
COLUMNS = (
    "m.seq, m.id, m.content, m.kind, m.subject_key, m.importance, m.metadata, m.source, "
    "m.created_at, m.updated_at, m.archived_at, m.embedding_model, p.id, p.name"
)
# Every read of whole rows: the memory with its project's id and name.
SELECT = f"SELECT {COLUMNS} FROM memories m JOIN projects p ON p.code = m.scope"
_TIMES = ("created_at", "updated_at", "archived_at")


def sqlite_vec_path() -> str:
    """The sqlite-vec loadable extension, found without importing the ``sqlite_vec``
    package (which imports numpy: 60-90 ms that ``memento --help`` should not pay)."""
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("sqlite-vec is not installed: pip install sqlite-vec")
    return os.path.join(next(iter(spec.submodule_search_locations)), "vec0")


def connect(path: Path, create: bool = True) -> apsw.Connection:
    """Open the database: APSW, sqlite-vec loaded (and loading disabled again), WAL,
    a busy timeout, foreign keys, synchronous=NORMAL and secure_delete.

    A new file is created 0600 in a directory created 0700. A file this process cannot
    write is opened read-only: reads work, writes fail with a clear error.
    """
    if not path.exists():
        if not create:
            raise DatabaseError(
                f"no memento database at {path}: create it with `memento init --db {path}`, "
                "or check --db and MEMENTO_PATH"
            )
        if not path.parent.exists():
            try:
                make_private_dirs(path.parent)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create directory {path.parent} ({exc.strerror}): "
                    "choose another path with --db or MEMENTO_PATH"
                ) from None
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise DatabaseError(
                f"cannot create {path} ({exc.strerror}): choose another path with --db "
                "or MEMENTO_PATH"
            ) from None
    if path.is_dir():
        raise DatabaseError(f"{path} is a directory: give the path of a database file")
    check_private(path)
    readonly = not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)
    try:
        return _open(str(path), readonly)
    except (apsw.CantOpenError, apsw.ReadOnlyError) as exc:
        if not readonly or os.access(path.parent, os.W_OK) or _wal_pending(path):
            raise DatabaseError(describe_sqlite_error(exc, path)) from None
    except apsw.Error as exc:
        raise DatabaseError(describe_sqlite_error(exc, path)) from None
    # A WAL database is read through a -shm file beside it, which a directory this process
    # cannot write cannot hold: reads failed ("cannot open") though the file is readable.
    # Without a pending -wal file there is nothing but the file itself to read, so it is
    # opened immutable (no locks, no -shm). A writer with rights to the directory could
    # still change it meanwhile; this reader would then see a stale snapshot or report the
    # file as corrupt, never write.
    try:
        return _open(f"file:{quote(str(path))}?immutable=1", readonly=True, uri=True)
    except apsw.Error as exc:
        raise DatabaseError(describe_sqlite_error(exc, path)) from None


def check_private(path: Path) -> None:
    """Refuse a database that other users could read through or change: the file (or its
    -wal and -shm files, which hold recent writes) owned by another user or writable by
    others, or a directory writable by others (sticky or not: another user could plant the
    -wal and -shm files there first, owning them) or owned by another user than root. A
    0666 file pre-created by another user in /tmp was used as is, and that user read
    everything stored. Root may own a directory: it can read everything anyway."""
    me = os.geteuid()
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            continue
        except OSError:
            return  # not even stat-able: opening it will say why
        if info.st_uid != me:
            raise DatabaseError(
                f"{name} belongs to another user (uid {info.st_uid}), who can read or change "
                "what you store: move it away, or choose another path with --db or "
                "MEMENTO_PATH"
            )
        if _others_can_write(info):
            raise DatabaseError(
                f"{name} is writable by other users (mode {info.st_mode & 0o7777:04o}): run "
                f"`chmod 600 {name}`, or choose another path"
            )
    directory = path.parent
    try:
        info = os.stat(directory)
    except OSError:
        return
    if info.st_uid not in (me, 0):
        raise DatabaseError(
            f"directory {directory} belongs to another user (uid {info.st_uid}), who can "
            "replace the database's files: keep the database in a directory of your own"
        )
    if _others_can_write(info):
        raise DatabaseError(
            f"directory {directory} is writable by other users (mode "
            f"{info.st_mode & 0o7777:04o}), who can plant or replace the database's files: "
            f"run `chmod 700 {directory}`, or keep the database in a directory of your own"
        )


def _others_can_write(info: os.stat_result) -> bool:
    """Whether users other than this one can write the file: it is writable by others, or
    by a group that is not this user's own. Distributions that give each user a private
    group (Debian, Ubuntu, Fedora) set umask 002, so a user's directories are group-writable
    by a group holding only that user: that is no one else."""
    if info.st_mode & 0o002:
        return True
    if not info.st_mode & 0o020:
        return False
    if info.st_gid != os.getegid():
        return True
    try:
        import grp
        import pwd

        members = set(grp.getgrgid(info.st_gid).gr_mem)
        me = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return True
    return bool(members - {me})


def _wal_pending(path: Path) -> bool:
    try:
        return os.path.getsize(f"{path}-wal") > 0
    except OSError:
        return False


def _open(name: str, readonly: bool, uri: bool = False) -> apsw.Connection:
    flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE
    if uri:
        flags |= apsw.SQLITE_OPEN_URI
    conn = apsw.Connection(name, flags=flags)
    try:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec_path())
        conn.enable_load_extension(False)
        # Look before touching: switching to WAL rewrites the header (bytes 18-19) of a file
        # that may be another application's, or a newer memento's. Those are refused as
        # they are, byte for byte.
        migrations.check_not_newer(migrations.current_version(conn))
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
        conn.execute(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON"
        )
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


# How long `memento init --force` waits for the file to be free. Every open memento
# connection (WAL mode) holds a shared lock on the file for its whole life, so waiting
# longer would not help against a running server; this only rides out a short command.
RESET_WAIT_MS = 1000


def reset_database(path: Path) -> None:
    """Empty the database at ``path`` in place, or refuse while any other connection (in
    this process or another) has it open.

    Deleting the file under a running MCP server let it go on serving the deleted file and
    lose the writes it acknowledged after the reset. Here an exclusive lock (exclusive
    locking mode, which in WAL mode needs every other connection gone) is taken first and
    held while SQLite rewrites the file empty (SQLITE_DBCONFIG_RESET_DATABASE + VACUUM), so
    every process sees one file. A file that is not a SQLite database (no SQLite connection
    can be using it) is deleted with its -wal and -shm.
    """
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    except apsw.Error as exc:
        raise DatabaseError(describe_sqlite_error(exc, path)) from None
    try:
        conn.set_busy_timeout(RESET_WAIT_MS)
        conn.enable_load_extension(True)  # the vec0 tables are dropped with the rest
        conn.load_extension(sqlite_vec_path())
        conn.enable_load_extension(False)
        conn.execute("PRAGMA locking_mode = EXCLUSIVE").fetchall()
        try:
            conn.execute("BEGIN EXCLUSIVE; COMMIT")
        except apsw.BusyError:
            raise DatabaseError(
                f"{path} is open in another process (a memento MCP server, hook or command): "
                "stop it, then run `memento init --force` again"
            ) from None
        except (apsw.NotADBError, apsw.CorruptError):
            conn.close()
            _delete_files(path)
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            conn.config(apsw.SQLITE_DBCONFIG_RESET_DATABASE, 1)
            conn.execute("VACUUM")
            conn.config(apsw.SQLITE_DBCONFIG_RESET_DATABASE, 0)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except (apsw.NotADBError, apsw.CorruptError):
            # too damaged to rewrite: deleted while the lock still keeps everyone out
            _delete_files(path)
    except apsw.Error as exc:
        raise DatabaseError(describe_sqlite_error(exc, path)) from None
    finally:
        conn.close()


def _delete_files(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def describe_sqlite_error(
    exc: BaseException, path: Path | str, system_errno: int | None = None
) -> str:
    """One line for a driver error; ``system_errno`` (the connection's last OS error) tells
    apart write failures SQLite reports all alike as "disk I/O error"."""
    if system_errno == errno.EFBIG:  # a write past `ulimit -f` (Python ignores SIGXFSZ)
        return (
            f"cannot write {path}: it reached the file-size limit of this process (ulimit -f): "
            "raise the limit, or move the database where it may grow"
        )
    if system_errno == errno.ENOSPC:
        return f"the disk holding {path} is full: free some space and retry"
    if isinstance(exc, apsw.NotADBError):
        return (
            f"{path} is not a SQLite database or is corrupt: restore it from a backup "
            "(`memento import_data`) or move it away and run `memento init`"
        )
    if isinstance(exc, apsw.CorruptError):
        return f"{path} is corrupt: run `memento verify`, then restore from a backup"
    if isinstance(exc, apsw.ReadOnlyError):
        return f"{path} is read-only: fix its permissions to store or forget memories"
    if isinstance(exc, apsw.BusyError):
        return f"{path} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s: retry"
    if isinstance(exc, apsw.CantOpenError):
        return f"cannot open {path}: check that the path and its directory are accessible"
    if isinstance(exc, apsw.FullError):
        return f"the disk holding {path} is full: free some space and retry"
    return f"database error on {path}: {exc}"


@contextlib.contextmanager
def transaction(conn: apsw.Connection, write: bool = True) -> Iterator[None]:
    """BEGIN IMMEDIATE for writes (the write lock is taken up front, so two writers queue
    on the busy timeout instead of failing mid-way), BEGIN for a consistent read snapshot.
    Rolls back on any error."""
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"
    for attempt in range(5):
        try:
            conn.execute(begin)
            break
        except apsw.BusyError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    if not prefix:
        return None
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    nxt = last + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return prefix[:-1] + chr(nxt)


def memories_where(filters: Filters, alias: str = "m") -> tuple[str, list[Any]]:
    """SQL conditions and bindings on ``memories`` for ``filters`` (exact)."""
    clauses: list[str] = []
    params: list[Any] = []
    if not filters.include_archived:
        clauses.append(f"{alias}.archived_at IS NULL")
    if filters.kinds:
        clauses.append(f"{alias}.kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(filters.kinds)
    if filters.prefix:
        # Whole key segments: "project.shop" is the key itself and "project.shop.*", never
        # "project.shopify"; a prefix ending in "." means the keys below it. A range on the
        # index of subject_key finds the children.
        prefix = filters.prefix
        child = prefix if prefix.endswith(".") else prefix + "."
        below = f"(substr({alias}.subject_key, 1, ?) = ? AND {alias}.subject_key >= ?"
        below_params: list[Any] = [len(child), child, child]
        upper = prefix_upper_bound(child)
        if upper is not None:
            below += f" AND {alias}.subject_key < ?"
            below_params.append(upper)
        below += ")"
        if child is prefix:
            clauses.append(below)
        else:
            clauses.append(f"({alias}.subject_key = ? OR {below})")
            params.append(prefix)
        params.extend(below_params)
    if filters.since is not None:
        clauses.append(f"{alias}.created_at >= ?")
        params.append(to_iso(filters.since))
    if filters.until is not None:
        clauses.append(f"{alias}.created_at <= ?")
        params.append(to_iso(filters.until))
    if filters.only_keyed:
        clauses.append(f"{alias}.subject_key IS NOT NULL")
    if filters.scopes is not None:
        marks = ",".join("?" * len(filters.scopes)) or "NULL"
        clauses.append(f"{alias}.scope IN (SELECT code FROM projects WHERE id IN ({marks}))")
        params.extend(filters.scopes)
    return (" AND ".join(clauses) or "1"), params


def scope_codes(conn: apsw.Connection, filters: Filters) -> tuple[int, ...] | None:
    """The integer codes of ``filters.scopes`` (None: every scope). vec0 and the large-store
    index filter on these codes: vec0 cannot filter on a subquery, and its text metadata
    filters fail on values longer than 12 bytes (sqlite-vec 0.1.9), which project ids are."""
    if filters.scopes is None:
        return None
    if not filters.scopes:
        return ()
    marks = ",".join("?" * len(filters.scopes))
    return tuple(
        int(r[0])
        for r in conn.execute(f"SELECT code FROM projects WHERE id IN ({marks})", filters.scopes)
    )


def _vec_where(
    filters: Filters, codes: tuple[int, ...] | None = None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if not filters.include_archived:
        clauses.append("archived = 0")
    if codes is not None:
        clauses.append(f"scope IN ({','.join('?' * len(codes)) or 'NULL'})")
        params.extend(codes)
    if filters.kinds:
        clauses.append(f"kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(filters.kinds)
    if filters.prefix:
        # The exact matches, found through the index on memories.subject_key.
        where, where_params = memories_where(filters)
        clauses.append(
            f"rowid IN (SELECT m.seq FROM memories m WHERE {where})"
        )
        params.extend(where_params)
    if filters.since is not None:
        clauses.append("created >= ?")
        params.append(to_micros(filters.since))
    if filters.until is not None:
        clauses.append("created <= ?")
        params.append(to_micros(filters.until))
    return "".join(f" AND {c}" for c in clauses), params


# ---- schema facts -------------------------------------------------------------------

_DIM = re.compile(r"float\[(\d+)\]", re.IGNORECASE)


def vector_dimension(conn: apsw.Connection) -> int | None:
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'memory_vec'"
    ).fetchone()
    if row is None:
        return None
    match = _DIM.search(row[0] or "")
    return int(match.group(1)) if match else None


def count_stale(conn: apsw.Connection, model_name: str) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM memories WHERE embedding_model IS NOT ?", (model_name,)
        ).fetchone()[0]
    )


# ---- rows -----------------------------------------------------------------------------


def to_row(raw: Sequence[Any]) -> Row:
    """A :class:`Row` from the columns of :data:`COLUMNS`, in that order. A row whose values
    cannot be read back (a damaged page that SQLite's own checks let through) raises
    ``apsw.CorruptError``, which callers report as a corrupt file."""
    try:
        return Row(
            seq=int(raw[0]),
            id=raw[1],
            content=raw[2],
            kind=raw[3],
            subject_key=raw[4],
            importance=float(raw[5]),
            metadata=read_metadata(raw[6]),
            source=raw[7],
            created_at=from_iso(raw[8]),
            updated_at=from_iso(raw[9]),
            archived_at=from_iso(raw[10]) if raw[10] else None,
            embedding_model=raw[11],
            scope=raw[12],
            project=None if raw[12] == GLOBAL else raw[13],
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise apsw.CorruptError(f"memory row {raw[0]!r} cannot be read ({exc})") from None


def encode(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as SQLite stores them: timestamps as ISO text, metadata as JSON."""
    out = dict(values)
    for name in _TIMES:
        if out.get(name) is not None:
            out[name] = to_iso(out[name])
    if "metadata" in out:
        out["metadata"] = json.dumps(out["metadata"] or {}, ensure_ascii=False)
    return out


def fetch_seqs(conn: apsw.Connection, seqs: Sequence[int]) -> dict[int, Row]:
    out: dict[int, Row] = {}
    for start in range(0, len(seqs), 500):
        part = list(seqs[start : start + 500])
        marks = ",".join("?" * len(part))
        for raw in conn.execute(f"{SELECT} WHERE m.seq IN ({marks})", part):
            out[raw[0]] = to_row(raw)
    return out


def factors(
    conn: apsw.Connection, seqs: Sequence[int]
) -> dict[int, tuple[float, datetime, str]]:
    out: dict[int, tuple[float, datetime, str]] = {}
    for start in range(0, len(seqs), 500):
        part = list(seqs[start : start + 500])
        marks = ",".join("?" * len(part))
        sql = f"SELECT seq, importance, created_at, id FROM memories WHERE seq IN ({marks})"
        for seq, importance, created, memory_id in conn.execute(sql, part):
            try:
                out[int(seq)] = (float(importance), from_iso(created), str(memory_id))
            except (TypeError, ValueError, AttributeError) as exc:  # as to_row says
                raise apsw.CorruptError(f"memory row {seq!r} cannot be read ({exc})") from None
    return out


def find_by_id(conn: apsw.Connection, prefix: str) -> list[Row]:
    """Rows whose id starts with ``prefix`` (already normalised); at most two."""
    if len(prefix) == 26:
        rows = conn.execute(f"{SELECT} WHERE m.id = ?", (prefix,))
    else:
        rows = conn.execute(
            f"{SELECT} WHERE m.id >= ? AND m.id < ? LIMIT 2",
            (prefix, prefix + "~"),
        )
    return [to_row(r) for r in rows]


def find_live_subject(conn: apsw.Connection, subject_key: str, scope: str) -> Row | None:
    raw = conn.execute(
        f"{SELECT} WHERE m.subject_key = ? AND m.archived_at IS NULL AND p.id = ?",
        (subject_key, scope),
    ).fetchone()
    return None if raw is None else to_row(raw)


def project_code(conn: apsw.Connection, scope: str) -> int:
    """The integer code of a scope (0: global); the project must have been registered."""
    if scope == GLOBAL:
        return 0
    row = conn.execute("SELECT code FROM projects WHERE id = ?", (scope,)).fetchone()
    if row is None:
        raise ValueError(f"project {scope!r} is not registered: call register_project first")
    return int(row[0])


def register_project(conn: apsw.Connection, project: Project) -> None:
    """Record a project (or its newer name and root). An empty root (a project known by id
    only: a token's, over HTTP) never replaces a known one."""
    conn.execute(
        "INSERT INTO projects(id, name, root, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
        "root = coalesce(nullif(excluded.root, ''), projects.root)",
        (project.id, project.name, project.root, to_iso(utcnow())),
    )


# ---- writes ---------------------------------------------------------------------------


def insert(conn: apsw.Connection, memory: NewMemory, vector: bytes) -> int:
    values = encode(memory.values())
    values["scope"] = project_code(conn, memory.scope)
    conn.execute(
        "INSERT INTO memories(id, content, kind, subject_key, importance, metadata, source, "
        "created_at, updated_at, archived_at, embedding_model, scope) VALUES "
        "(:id, :content, :kind, :subject_key, :importance, :metadata, :source, "
        ":created_at, :updated_at, :archived_at, :embedding_model, :scope)",
        values,
    )
    seq = conn.last_insert_rowid()
    meta = VectorMeta(memory.kind, memory.archived_at is not None, to_micros(memory.created_at),
                      values["scope"])  # fmt: skip
    conn.execute(
        "INSERT INTO memory_vec(rowid, embedding, kind, archived, created, scope) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (seq, vector, *meta.vec_values()),
    )
    index.write_row(conn, seq, vector, meta)
    return seq


def update(
    conn: apsw.Connection, seq: int, values: dict[str, Any], vector: bytes | None = None
) -> None:
    """Replace the given columns of one memory and keep its vector rows in step."""
    unknown = set(values) - set(WRITABLE)
    if unknown:
        raise ValueError(f"not a writable column: {sorted(unknown)}")
    encoded = encode(values)
    if "scope" in values:
        encoded["scope"] = project_code(conn, values["scope"])
    if encoded:
        assignments = ", ".join(f"{name} = :{name}" for name in encoded)
        conn.execute(f"UPDATE memories SET {assignments} WHERE seq = :seq", {**encoded, "seq": seq})
    row = conn.execute(
        "SELECT kind, archived_at, created_at, scope FROM memories WHERE seq = ?", (seq,)
    ).fetchone()
    meta = VectorMeta(row[0], row[1] is not None, to_micros(from_iso(row[2])), int(row[3]))
    if vector is not None:
        conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (seq,))
        conn.execute(
            "INSERT INTO memory_vec(rowid, embedding, kind, archived, created, scope) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (seq, vector, *meta.vec_values()),
        )
    else:
        conn.execute(
            "UPDATE memory_vec SET kind = ?, archived = ?, created = ?, scope = ? "
            "WHERE rowid = ?",
            (*meta.vec_values(), seq),
        )
    index.write_row(conn, seq, vector, meta)


def delete(conn: apsw.Connection, seqs: Sequence[int]) -> None:
    for seq in seqs:
        conn.execute(
            "DELETE FROM injected WHERE memory_id = (SELECT id FROM memories WHERE seq = ?)",
            (seq,),
        )
        conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (seq,))
        conn.execute("DELETE FROM memory_versions WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM memories WHERE seq = ?", (seq,))
        index.delete_row(conn, seq)


def purge_deleted_text(conn: apsw.Connection) -> None:
    """Rewrite the FTS5 index so deleted text no longer sits in old segments (used after a
    hard forget; secure_delete zeroes the freed pages)."""
    conn.execute("INSERT INTO memory_fts(memory_fts) VALUES ('optimize')")


# How long a checkpoint waits for other connections' read transactions to end. It holds
# the write lock while it waits, so it must stay short: the busy timeout (30 s) here made a
# hard forget next to an open reader block every writer for 30 s and then fail anyway.
CHECKPOINT_WAIT_MS = 100
# Set (in the delete's own transaction) while a hard delete's text may still be in the
# file or its WAL; cleared once a checkpoint has copied and truncated the WAL.
PURGE_PENDING = "purge_pending"


def checkpoint(conn: apsw.Connection) -> bool:
    """Copy the WAL into the database and truncate it, so old page images leave the disk.
    False when it could not finish: another connection's read transaction still uses the
    WAL (or the disk is full); the caller tries again later."""
    conn.set_busy_timeout(CHECKPOINT_WAIT_MS)
    try:
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except apsw.Error:
        return False
    finally:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    # busy: it could not finish; log/done: frames in the WAL and frames copied (both 0
    # after a truncate, -1 when the file is not in WAL mode)
    return busy == 0 and log == done


def finish_purge(conn: apsw.Connection) -> bool:
    """Checkpoint if a hard delete's purge is pending, and record that it is done. Called
    outside transactions: after a hard delete, after later writes and on close. True when
    nothing is left pending."""
    if get_setting(conn, PURGE_PENDING) is None:
        return True
    if not checkpoint(conn):
        return False
    # The WAL is empty now; this write puts only the settings page back into it.
    with transaction(conn):
        conn.execute("DELETE FROM settings WHERE key = ?", (PURGE_PENDING,))
    return True


# ---- search ---------------------------------------------------------------------------


def knn(conn: apsw.Connection, vector: bytes, k: int, filters: Filters) -> list[tuple[int, float]]:
    """The k nearest live vectors by cosine distance, filters exact.

    Small stores are scanned exactly by vec0 (``knn_exact``). From ``index.MIN_ROWS``
    memories a binary-quantised coarse pass picks ``index.POOL`` candidates that are then
    re-ranked by exact cosine (``memento/index.py``). A subject-key prefix matching at most
    that many memories is answered exactly from those memories alone, at any size."""
    k = min(int(k), VEC_MAX_K)
    codes = scope_codes(conn, filters)
    if codes == ():  # none of the asked-for projects has a memory
        return []
    size = index.size_hint(conn)
    large = size >= index.MIN_ROWS
    if filters.prefix and large:
        where, params = memories_where(filters)
        seqs = [
            int(r[0])
            for r in conn.execute(
                f"SELECT m.seq FROM memories m WHERE {where} LIMIT ?", [*params, index.POOL + 1]
            )
        ]
        if len(seqs) <= index.POOL:
            return index.rerank(conn, vector, seqs, k)
    if not index.has_table(conn):
        return knn_exact(conn, vector, k, filters, codes)
    if not large:
        copy = index.for_connection(conn)
        found = None
        if copy.fits(size):
            found = copy.exact_knn(
                conn, vector, k, filters, lambda: _prefix_seqs(conn, filters), codes
            )
        return knn_exact(conn, vector, k, filters, codes) if found is None else found
    return index.knn(conn, vector, k, filters, _prefix_seqs(conn, filters), codes=codes)


def _prefix_seqs(conn: apsw.Connection, filters: Filters) -> np.ndarray | None:
    """The sorted seqs of the memories whose subject key has the filters' prefix (None: no
    prefix filter)."""
    if not filters.prefix:
        return None
    import numpy as np

    where, params = memories_where(filters)
    seqs = np.fromiter(
        (r[0] for r in conn.execute(f"SELECT m.seq FROM memories m WHERE {where}", params)),
        dtype=np.int64,
    )
    seqs.sort()
    return seqs


# A batch of at least this many queries is compared against the stored vectors in one pass
# (knn_many) instead of one vec0 scan each: reading the float copies of a store from
# memory_bits costs 2-5 us per memory (0.22-0.27 s for the 50,000 facts of a 100k store,
# read by a scan of all 100k rows, on this shared 2-core machine), a vec0 scan 0.8-2 us
# per memory and query, so from about 3 queries on one pass is cheaper.
BATCH_MIN = 4
# In a large store a query through the index (inside the write) costs 12-16 ms at 100k
# memories, while one exact pass costs 0.7-1.0 s to read and score the 50,000 facts plus
# ~2.5 ms a query (benches/store_rate.py, this shared 2-core machine): the pass is cheaper
# from ~75 queries, i.e. size / ~1,300. A batch of at least size / INDEX_QUERY_ROWS queries
# is compared exactly (calls of 50 at 100k measured 47 items/s exactly, 61 through the
# index; calls of 250, 104-110 exactly).
INDEX_QUERY_ROWS = 1_500
# Stored vectors scored per matrix product: 8,192 x 384 float32 is 12 MB.
BATCH_CHUNK = 8_192


def knn_many(
    conn: apsw.Connection,
    vectors: Sequence[bytes],
    k: int,
    filters: Sequence[Filters],
    min_similarity: float | None = None,
) -> list[list[tuple[int, float]]]:
    """What ``knn`` answers for each vector under its own filters, a batch at a time.

    The live vectors the filters allow are read once from their float copies in
    ``memory_bits`` and scored against every query by one matrix product per chunk: exact,
    as the vec0 scan of a small store is. In a large store a batch too small to pay for that
    read (fewer than size / ``INDEX_QUERY_ROWS`` queries) gives each query the candidates
    the large-store index gives ``knn``, re-ranked exactly, the index refreshed and filtered
    once; a large batch is compared exactly, so it finds every neighbour the index's pool
    would (the pool misses one rarely: recall@10 0.994 at 1M). Filters on a subject-key
    prefix or time, and batches smaller than ``BATCH_MIN``, take ``knn`` once per vector.

    A large store with a partition (``sqlite_parts``: the near-duplicate check's structure)
    answers every query, whatever the batch size, from the memories of the partitions its
    vector reaches (``regions``): what the check of one store and of a batch both see."""
    k = min(int(k), VEC_MAX_K)
    simple = all(
        not f.prefix and f.since is None and f.until is None and not f.only_keyed
        for f in filters
    )
    reach = partition_reach(conn, vectors) if simple else None
    if reach is not None:
        return _grouped(
            conn, vectors, filters,
            lambda batch, where, codes, members: index.knn_many(
                conn, batch, k, where, codes, min_similarity, [reach[i] for i in members]
            ),
        )  # fmt: skip
    if len(vectors) < BATCH_MIN or not simple or not index.has_table(conn):
        out = []
        for vector, where in zip(vectors, filters):
            hits = knn(conn, vector, k, where)
            if min_similarity is not None:
                hits = [(s, d) for s, d in hits if 1.0 - d >= min_similarity]
            out.append(hits)
        return out
    size = index.size_hint(conn)

    def search(batch: list[bytes], where: Filters, codes: Any, members: list[int]) -> Any:
        if size >= index.MIN_ROWS and len(batch) * INDEX_QUERY_ROWS < size:
            return index.knn_many(conn, batch, k, where, codes, min_similarity)
        return _exact_many(conn, batch, k, where, codes, min_similarity)

    return _grouped(conn, vectors, filters, search)


def _grouped(
    conn: apsw.Connection,
    vectors: Sequence[bytes],
    filters: Sequence[Filters],
    search: Any,
) -> list[list[tuple[int, float]]]:
    """``search(batch, filters, scope codes, positions)`` once per distinct filters, the
    answers put back in the order of ``vectors``."""
    results: list[list[tuple[int, float]]] = [[] for _ in vectors]
    groups: dict[Filters, list[int]] = {}
    for i, where in enumerate(filters):
        groups.setdefault(where, []).append(i)
    for where, members in groups.items():
        codes = scope_codes(conn, where)
        if codes == ():  # none of the asked-for projects has a memory
            continue
        found = search([vectors[i] for i in members], where, codes, members)
        for i, hits in zip(members, found):
            results[i] = hits
    return results


def partition_reach(
    conn: apsw.Connection, vectors: Sequence[bytes]
) -> list[frozenset[int]] | None:
    """The partitions each vector's near-duplicate check reaches in a large store that has
    a partition (``sqlite_parts``); None where the check searches the whole store."""
    found = partition_regions(conn, vectors)
    return None if found is None else [reach for _, reach in found]


def partition_regions(
    conn: apsw.Connection, vectors: Sequence[bytes]
) -> list[tuple[int, frozenset[int]]] | None:
    return parts.regions(conn, vectors) if vectors and partitioned(conn) else None


def partitioned(conn: apsw.Connection) -> bool:
    """Whether the near-duplicate check answers from the partition: a large store with one
    trained on its model's vectors."""
    if index.size_hint(conn) < index.MIN_ROWS or not index.has_table(conn):
        return False
    return parts.current(conn)


def train_partition(conn: apsw.Connection) -> None:
    """Partition a store that has reached the size where the check uses a partition and
    has none (or one of another model's vectors), then place the rows stored before it a
    transaction at a time (resuming a placing another process left unfinished). The
    centroids are computed in a read transaction, so other writers wait only for the short
    transactions that write them and the rows' parts."""
    size = index.size_hint(conn)
    if size < index.MIN_ROWS or not index.has_table(conn) or not parts.table_exists(conn):
        return
    if not parts.current(conn) and parts.worth_trying(conn, size):
        with transaction(conn, write=False):
            matrix = parts.train(conn)
        with transaction(conn):
            if not parts.current(conn):  # else another process was first
                if matrix is None:
                    parts.too_few(conn, size)
                else:
                    parts.install(conn, matrix)
    while parts.placing(conn):
        with transaction(conn):
            parts.place_some(conn)


def _exact_many(
    conn: apsw.Connection,
    vectors: Sequence[bytes],
    k: int,
    filters: Filters,
    codes: tuple[int, ...] | None,
    min_similarity: float | None,
) -> list[list[tuple[int, float]]]:
    """Every allowed live vector scored against every query, chunk by chunk, keeping each
    query's ``k`` best (at least ``min_similarity``): exact, like the vec0 scan."""
    import numpy as np

    if k <= 0:
        return [[] for _ in vectors]
    clauses = ["embedding IS NOT NULL"]
    params: list[Any] = []
    if not filters.include_archived:
        clauses.append("archived = 0")
    if codes is not None:
        clauses.append(f"scope IN ({','.join('?' * len(codes))})")
        params.extend(codes)
    if filters.kinds:
        clauses.append(f"kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(index.KIND_CODES[kind] for kind in filters.kinds)
    queries = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), -1)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
    width = queries.shape[1] * 4
    floor = -np.inf if min_similarity is None else float(min_similarity)
    best: list[list[tuple[float, int]]] = [[] for _ in vectors]
    cursor = conn.cursor().execute(
        f"SELECT seq, embedding FROM memory_bits WHERE {' AND '.join(clauses)}", params
    )
    while True:
        rows = [r for _, r in zip(range(BATCH_CHUNK), cursor)]
        if not rows:
            break
        same = [r for r in rows if len(r[1]) == width]  # another dimension: reembed pending
        if not same:
            continue
        seqs = np.fromiter((r[0] for r in same), dtype=np.int64, count=len(same))
        matrix = np.frombuffer(b"".join(r[1] for r in same), dtype="<f4").reshape(len(same), -1)
        scores = queries @ matrix.T
        scores /= np.maximum(np.linalg.norm(matrix, axis=1), 1e-30)
        mask = scores >= floor
        if k < len(same) and int(mask.sum()) > k * len(vectors):
            # many pass the floor (or there is none): keep each query's k best of the chunk,
            # ties at the k-th score included (which of equal vectors is kept is decided
            # below, as everywhere: the newest first)
            kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
            mask &= scores >= kth
        for q, col in zip(*np.nonzero(mask)):
            best[q].append((float(scores[q, col]), int(seqs[col])))
        for hits in best:
            if len(hits) > 4 * k:  # keep the lists short
                hits[:] = sorted(hits, key=lambda h: (-h[0], -h[1]))[:k]
    return [
        [(seq, 1.0 - score) for score, seq in sorted(hits, key=lambda h: (-h[0], -h[1]))[:k]]
        for hits in best
    ]


def sync_index(conn: apsw.Connection, load: bool = True) -> None:
    """Read the writes of other connections, and this one's last, into this one's copy of
    the index: the large-store index (loaded first when ``load``), or a small store's float
    copy once a search loaded it (inside a write transaction a search only overlays what
    changed since, so a server that stores without recalling would otherwise read ever more
    rows per check). Called outside a write transaction; searches call it themselves."""
    size = index.size_hint(conn)
    if size >= index.MIN_ROWS and index.has_table(conn):
        copy = index.for_connection(conn)
        with copy.lock:
            if load or copy.stamp != index.NO_STAMP:
                copy.refresh(conn)
    else:
        index.sync_floats(conn, size)


def knn_exact(
    conn: apsw.Connection,
    vector: bytes,
    k: int,
    filters: Filters,
    codes: tuple[int, ...] | None = None,
) -> list[tuple[int, float]]:
    """The k nearest live vectors by cosine distance, filters applied inside the vec0 scan
    (a brute-force float scan: exact, ~2 us per memory)."""
    if codes is None:
        codes = scope_codes(conn, filters)
    where, params = _vec_where(filters, codes)
    sql = (
        "SELECT rowid, distance FROM memory_vec WHERE embedding MATCH ? AND k = ?"
        f"{where} ORDER BY distance"
    )
    hits = conn.execute(sql, [vector, min(int(k), VEC_MAX_K), *params]).fetchall()
    if any(r[1] is None for r in hits):  # a damaged vector chunk that vec0 read as NULL
        raise apsw.CorruptError("the vector table holds unreadable vectors")
    return [(int(r[0]), float(r[1])) for r in hits]


# In stores of at least KEYWORD_MIN_ROWS memories, a keyword term found in more than this
# fraction of them is left out of the query when a rarer term is left: BM25 gives such a
# word almost no weight, yet FTS5 would score every memory containing it (a third of a
# million-memory store for "cells" in SciFact).
KEYWORD_MIN_ROWS = 50_000
KEYWORD_MAX_DF = 0.02
# ... and the terms kept, rarest first, stop before their document frequencies add up to more
# than this many postings (the rarest is always kept): FTS5 scores every posting, ~1 us each.
KEYWORD_MAX_POSTINGS = 40_000
# In large stores FTS5 ranks alone first and the filters are applied to its best
# KEYWORD_OVERFETCH * k, or KEYWORD_OVERFETCH_FILTERED * k when a kind, prefix or time
# filter narrows the search (joining memories for every posting doubles the cost); when
# fewer than k of those pass the filters, the full join runs. The CROSS JOIN keeps SQLite
# from driving the join from the memories side: with that plan, fetching 1,000 cost 425 ms
# instead of 36 at a million memories. Keyword half of kind=lesson recall at 1M, p50: 82 ms
# with 4x (the full join runs), 38 ms with 40x; unfiltered: 32 ms with 4x, 37 with 40x.
KEYWORD_OVERFETCH = 4
KEYWORD_OVERFETCH_FILTERED = 40
_TERM = re.compile(r'"((?:[^"]|"")*)"')


def bounded_match(conn: apsw.Connection, match: str) -> str:
    """``match`` (an OR of quoted terms, as recall.keyword_query builds it) without the
    terms that most memories contain: each term is tokenized by the FTS5 tokenizer of
    ``memory_fts`` and its document frequency read from ``memory_fts_vocab``. Terms above
    ``KEYWORD_MAX_DF`` of the store are dropped unless none is below it (then only the
    rarest is kept), and of the rest, rarest first, those that would take the postings past
    ``KEYWORD_MAX_POSTINGS``."""
    terms = [t.replace('""', '"') for t in _TERM.findall(match)]
    total = index.size_hint(conn)
    if len(terms) < 1 or total < KEYWORD_MIN_ROWS:
        return match
    try:
        tokenize = conn.fts5_tokenizer("porter", ["unicode61", "remove_diacritics", "2"])
    except apsw.Error:
        return match
    frequency: list[tuple[int, str]] = []
    for term in terms:
        tokens = [t[2] for t in tokenize(term.encode("utf-8"), apsw.FTS5_TOKENIZE_QUERY, None)]
        df = 0
        for token in tokens:
            row = conn.execute(
                "SELECT doc FROM memory_fts_vocab WHERE term = ?", (token,)
            ).fetchone()
            df = max(df, int(row[0]) if row else 0)
        if df:  # a term no memory contains adds nothing
            frequency.append((df, term))
    if not frequency:
        return match
    limit = KEYWORD_MAX_DF * total
    frequency.sort()
    kept = [term for df, term in frequency if df <= limit] or [frequency[0][1]]
    postings = 0
    for n, (df, _) in enumerate(frequency[: len(kept)]):
        postings += df
        if postings > KEYWORD_MAX_POSTINGS and n > 0:
            kept = kept[:n]
            break
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in kept)


def keyword(
    conn: apsw.Connection, match: str, k: int, filters: Filters
) -> list[tuple[int, float]]:
    """FTS5 BM25 hits (lower is better, as SQLite returns it), filters applied exactly.
    In large stores, very common terms are left out first (``bounded_match``)."""
    large = index.has_table(conn) and index.size_hint(conn) >= KEYWORD_MIN_ROWS
    if large:  # memory_fts_vocab came with memory_bits
        match = bounded_match(conn, match)
    where, params = memories_where(filters)
    if large:
        sql = (
            "SELECT m.seq, f.rank FROM (SELECT rowid, bm25(memory_fts, 1.0, 0.5) AS rank "
            "FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?) f "
            f"CROSS JOIN memories m ON m.seq = f.rowid WHERE {where} ORDER BY f.rank LIMIT ?"
        )
        narrowed = filters.narrowed
        fetch = int(k) * (KEYWORD_OVERFETCH_FILTERED if narrowed else KEYWORD_OVERFETCH)
        try:
            rows = conn.execute(sql, [match, fetch, *params, int(k)]).fetchall()
        except apsw.SQLError as exc:
            raise InvalidInputError(f"keyword query could not be run: {exc}") from None
        if len(rows) >= int(k):
            return [(int(r[0]), float(r[1])) for r in rows]
    sql = (
        "SELECT m.seq, bm25(memory_fts, 1.0, 0.5) AS rank FROM memory_fts "
        "JOIN memories m ON m.seq = memory_fts.rowid "
        f"WHERE memory_fts MATCH ? AND {where} ORDER BY rank LIMIT ?"
    )
    try:
        rows = conn.execute(sql, [match, *params, int(k)])
        return [(int(r[0]), float(r[1])) for r in rows]
    except apsw.SQLError as exc:  # should not happen: queries are built from quoted terms
        raise InvalidInputError(f"keyword query could not be run: {exc}") from None


def similarities(conn: apsw.Connection, vector: bytes, seqs: Sequence[int]) -> dict[int, float]:
    """The cosine similarity of ``vector`` to each stored vector of ``seqs`` (seqs without
    a vector are left out). Read from the float copies in ``memory_bits`` (``index.rerank``,
    written with every vector since schema 3): vec0's lookup by rowid walks a chunk blob per
    row, 3 ms instead of 0.07 for 35 SciFact abstracts; vec0 only for what they lack."""
    if not seqs:
        return {}
    found: dict[int, float] = {}
    if index.has_table(conn):
        found = {seq: 1.0 - d for seq, d in index.rerank(conn, vector, seqs, len(seqs))}
    missing = [int(s) for s in seqs if int(s) not in found]
    for start in range(0, len(missing), 500):
        part = missing[start : start + 500]
        rows = conn.execute(
            "SELECT rowid, vec_distance_cosine(embedding, ?) FROM memory_vec "
            f"WHERE rowid IN ({','.join('?' * len(part))})",
            [vector, *part],
        )
        for seq, distance in rows:
            if distance is not None:
                found[int(seq)] = 1.0 - float(distance)
    return found


def stems(conn: apsw.Connection, texts: Sequence[str]) -> list[frozenset[str]]:
    """The terms ``memory_fts`` indexes for each text (lower case, porter stems)."""
    tokenize = conn.fts5_tokenizer("porter", ["unicode61", "remove_diacritics", "2"])
    return [
        frozenset(t[2] for t in tokenize(text.encode("utf-8"), apsw.FTS5_TOKENIZE_DOCUMENT, None))
        for text in texts
    ]


def count_matching(conn: apsw.Connection, filters: Filters) -> int:
    where, params = memories_where(filters)
    return int(conn.execute(f"SELECT count(*) FROM memories m WHERE {where}", params).fetchone()[0])



def select_rows(
    conn: apsw.Connection, filters: Filters, order: str = "newest", limit: int | None = None
) -> list[Row]:
    where, params = memories_where(filters)
    orders = {
        "newest": "m.created_at DESC, m.seq DESC",
        "important": "m.importance DESC, m.updated_at DESC, m.seq DESC",
        "key": "m.subject_key, m.seq",
        "seq": "m.seq",
    }
    sql = f"{SELECT} WHERE {where} ORDER BY {orders[order]}"
    if limit is not None:
        sql += " LIMIT ?"
        params = [*params, int(limit)]
    return [to_row(r) for r in conn.execute(sql, params)]


class SQLiteStore(SQLiteTokens, Store):
    """One SQLite file through one APSW connection (``conn``: the escape hatch for tests,
    benchmarks and ``memento verify``)."""

    errors = (apsw.Error,)

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        self.location = str(path)
        self.conn: apsw.Connection = connect(path, create=create)

    # ---- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        if not self.readonly:
            # a hard delete this or another process could not purge: try once more
            with contextlib.suppress(apsw.Error):
                finish_purge(self.conn)
        self.conn.close()

    @property
    def readonly(self) -> bool:
        return bool(self.conn.readonly("main"))

    def schema_version(self) -> int:
        return migrations.current_version(self.conn)

    def needs_upgrade(self) -> bool:
        version = self.schema_version()
        migrations.check_not_newer(version)
        return version != migrations.LATEST

    def upgrade(self, dimension: int | None) -> list[int]:
        if self.schema_version() and vector_dimension(self.conn):
            dimension = vector_dimension(self.conn)
        if dimension is None:
            raise ValueError("a new store needs the vector dimension")
        return migrations.migrate(self.conn, dimension)

    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager[None]:
        return self._write_then_purge() if write else transaction(self.conn, write=False)

    @contextlib.contextmanager
    def _write_then_purge(self) -> Iterator[None]:
        with transaction(self.conn, write=True):
            yield
        # a purge left pending by a hard delete (here or in another process) is finished by
        # the next write once the readers that held it up are gone
        with contextlib.suppress(apsw.Error):
            finish_purge(self.conn)

    def describe_error(self, exc: BaseException) -> str:
        try:
            system_errno = self.conn.system_errno
        except apsw.Error:  # a closed connection
            system_errno = None
        return describe_sqlite_error(exc, self.path, system_errno)

    # ---- settings and vectors ------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        return get_setting(self.conn, key)

    def set_setting(self, key: str, value: str) -> None:
        set_setting(self.conn, key, value)

    def vector_dimension(self) -> int | None:
        return vector_dimension(self.conn)

    def count_stale_vectors(self, model_name: str) -> int:
        return count_stale(self.conn, model_name)

    def stale_seqs(self, model_name: str) -> list[int]:
        return [
            int(r[0])
            for r in self.conn.execute(
                "SELECT seq FROM memories WHERE embedding_model IS NOT ? ORDER BY seq",
                (model_name,),
            )
        ]

    def mark_all_stale(self) -> None:
        self.conn.execute("UPDATE memories SET embedding_model = NULL")

    def recreate_vectors(self, dimension: int) -> None:
        self.conn.execute("DROP TABLE IF EXISTS memory_vec")
        migrations.create_vector_table(self.conn, dimension)
        index.reset(self.conn)
        parts.drop(self.conn)
        self.mark_all_stale()

    def vectors(self, seqs: Sequence[int]) -> dict[int, bytes]:
        # from the float copies in memory_bits, one B-tree row each (vec0's lookup by rowid
        # walks a chunk blob per row); memory_vec for what they lack
        found: dict[int, bytes] = {}
        tables = ["memory_vec"]
        if index.has_table(self.conn):
            tables.insert(0, "memory_bits")
        for table in tables:
            missing = [int(s) for s in seqs if int(s) not in found]
            key = "seq" if table == "memory_bits" else "rowid"
            for start in range(0, len(missing), 500):
                part = missing[start : start + 500]
                rows = self.conn.execute(
                    f"SELECT {key}, embedding FROM {table} "
                    f"WHERE {key} IN ({','.join('?' * len(part))}) AND embedding IS NOT NULL",
                    part,
                )
                found.update((int(seq), bytes(blob)) for seq, blob in rows)
        return found

    # ---- reads ----------------------------------------------------------------------

    def fetch(self, seqs: Sequence[int]) -> dict[int, Row]:
        return fetch_seqs(self.conn, seqs)

    def factors(self, seqs: Sequence[int]) -> dict[int, tuple[float, datetime, str]]:
        return factors(self.conn, seqs)

    def find_by_id(self, prefix: str) -> list[Row]:
        return find_by_id(self.conn, prefix)

    def find_live_subject(self, subject_key: str, scope: str) -> Row | None:
        return find_live_subject(self.conn, subject_key, scope)

    def register_project(self, project: Project) -> None:
        register_project(self.conn, project)

    def projects(self) -> list[dict[str, Any]]:
        return [
            {"id": r[0], "name": r[1], "root": r[2], "live": int(r[3]), "archived": int(r[4])}
            for r in self.conn.execute(
                "SELECT p.id, p.name, p.root, count(m.seq) - count(m.archived_at), "
                "count(m.archived_at) FROM projects p LEFT JOIN memories m ON m.scope = p.code "
                "GROUP BY p.code ORDER BY p.code"
            )
        ]

    def rows(
        self, filters: Filters, order: str = "newest", limit: int | None = None
    ) -> list[Row]:
        return select_rows(self.conn, filters, order, limit)

    def iter_rows(self) -> Iterator[Row]:
        last = 0
        while True:
            chunk = self.conn.execute(
                f"{SELECT} WHERE m.seq > ? ORDER BY m.seq LIMIT 1000", (last,)
            ).fetchall()
            if not chunk:
                return
            for raw in chunk:
                yield to_row(raw)
            last = chunk[-1][0]

    def counts(self, filters: Filters) -> dict[str, Any]:
        where, params = memories_where(replace(filters, include_archived=True))
        live: dict[str, int] = {}
        archived = 0
        for kind, is_archived, count in self.conn.execute(
            f"SELECT m.kind, m.archived_at IS NOT NULL, count(*) FROM memories m WHERE {where} "
            "GROUP BY 1, 2",
            params,
        ):
            if is_archived:
                archived += int(count)
            else:
                live[kind] = int(count)
        return {"live_by_kind": live, "archived": archived}

    def size_bytes(self) -> int | None:
        return sum(
            p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
        )

    # ---- search ---------------------------------------------------------------------

    def knn(self, vector: bytes, k: int, filters: Filters) -> list[tuple[int, float]]:
        return knn(self.conn, vector, k, filters)

    def knn_many(
        self,
        vectors: Sequence[bytes],
        k: int,
        filters: Sequence[Filters],
        min_similarity: float | None = None,
    ) -> list[list[tuple[int, float]]]:
        if len(vectors) != len(filters):
            raise ValueError("knn_many takes one Filters per vector")
        return knn_many(self.conn, vectors, k, filters, min_similarity)

    def keyword(self, text: str, k: int, filters: Filters) -> list[tuple[int, float]]:
        match = keyword_query(text)
        return keyword(self.conn, match, k, filters) if match else []

    def similarities(self, vector: bytes, seqs: Sequence[int]) -> dict[int, float]:
        return similarities(self.conn, vector, seqs)

    def stems(self, texts: Sequence[str]) -> list[frozenset[str]]:
        return stems(self.conn, texts)

    def prepare_writes(self, search: bool = True) -> None:
        # a store that has grown to the size where the check uses a partition gets one;
        # then, as the near-duplicate checks run inside the write transaction, where the
        # large-store index only overlays changes, bring the index up to date first (load
        # it only for writes that search: ~3 s at a million memories, for nothing when a
        # one-shot command stores an event)
        train_partition(self.conn)
        sync_index(self.conn, load=search)

    def regions(self, vectors: Sequence[bytes]) -> list[tuple[int, frozenset[int]]] | None:
        return partition_regions(self.conn, vectors)

    def early_check_version(self) -> Hashable | None:
        # Only a store checked through its partition: there a check costs ~1 ms an item at
        # a million memories, and checking early made facts 0.90-1.21x as fast at 100k and
        # 1M (1.06x the median of eleven runs); below it, where a check costs 0.04-0.6 ms,
        # splitting the embedding into parts cost more than it saved (0.82x at 3,000
        # memories, 0.94x at 10,000; benches/store_rate.py --in-write). Every write, update
        # and forget gives its row the next stamp (stamps only grow, a forgotten row stays
        # as a tombstone); a partition installed or dropped is a new generation. Placing
        # rows in a partition changes their part without a stamp, but prepare_writes
        # finishes the placing before any check, and the index reads the parts only from
        # the generation that ends it.
        if not partitioned(self.conn):
            return None
        return (index.top_stamp(self.conn), parts.generation(self.conn))

    # ---- writes ---------------------------------------------------------------------

    def insert(self, memory: NewMemory, vector: bytes) -> int:
        return insert(self.conn, memory, vector)

    def update(self, seq: int, values: dict[str, Any], vector: bytes | None = None) -> None:
        update(self.conn, seq, values, vector)

    def delete(self, seqs: Sequence[int]) -> None:
        delete(self.conn, seqs)
        if seqs:
            purge_deleted_text(self.conn)
            set_setting(self.conn, PURGE_PENDING, to_iso(utcnow()))

    def after_delete(self) -> None:
        finish_purge(self.conn)

    def purge_pending(self) -> bool:
        return get_setting(self.conn, PURGE_PENDING) is not None

    # ---- earlier versions -------------------------------------------------------------

    def add_version(
        self, row: Row, valid_from: datetime, valid_until: datetime, replaced_by: str
    ) -> None:
        self.conn.execute(
            "INSERT INTO memory_versions(seq, version, content, kind, subject_key, importance, "
            "metadata, source, scope, valid_from, valid_until, replaced_by) VALUES (?, "
            "(SELECT coalesce(max(version), 0) + 1 FROM memory_versions WHERE seq = ?), "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.seq, row.seq, row.content, row.kind, row.subject_key, row.importance,
                json.dumps(row.metadata or {}, ensure_ascii=False), row.source,
                project_code(self.conn, row.scope), to_iso(valid_from), to_iso(valid_until),
                replaced_by,
            ),
        )

    def versions(self, seqs: Sequence[int]) -> dict[int, list[Version]]:
        out: dict[int, list[Version]] = {}
        for start in range(0, len(seqs), 500):
            part = [int(s) for s in seqs[start : start + 500]]
            rows = self.conn.execute(
                "SELECT v.seq, v.version, v.content, v.kind, v.subject_key, v.importance, "
                "v.metadata, v.source, p.id, p.name, v.valid_from, v.valid_until, "
                "v.replaced_by FROM memory_versions v JOIN projects p ON p.code = v.scope "
                f"WHERE v.seq IN ({','.join('?' * len(part))}) ORDER BY v.seq, v.version",
                part,
            )
            for r in rows:
                out.setdefault(int(r[0]), []).append(
                    Version(
                        seq=int(r[0]), version=int(r[1]), content=r[2], kind=r[3],
                        subject_key=r[4], importance=float(r[5]),
                        metadata=json.loads(r[6]) if r[6] else {}, source=r[7], scope=r[8],
                        project=None if r[8] == GLOBAL else r[9], valid_from=from_iso(r[10]),
                        valid_until=from_iso(r[11]), replaced_by=r[12],
                    )
                )
        return out

    def version_counts(self, seqs: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for start in range(0, len(seqs), 500):
            part = [int(s) for s in seqs[start : start + 500]]
            rows = self.conn.execute(
                "SELECT seq, count(*) FROM memory_versions "
                f"WHERE seq IN ({','.join('?' * len(part))}) GROUP BY seq",
                part,
            )
            out.update((int(seq), int(n)) for seq, n in rows)
        return out

    def seqs_with_versions(self, filters: Filters) -> list[int]:
        keyed = replace(
            filters, include_archived=True, only_keyed=True, kinds=None, since=None, until=None
        )
        where, params = memories_where(keyed, alias="v")
        return [
            int(r[0])
            for r in self.conn.execute(
                f"SELECT DISTINCT v.seq FROM memory_versions v WHERE {where}", params
            )
        ]

    # ---- what agent sessions were given ----------------------------------------------

    def injected(self, session: str) -> set[str]:
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT memory_id FROM injected WHERE session = ?", (session,)
            )
        }

    def mark_injected(self, session: str, ids: Sequence[str], at: datetime) -> None:
        when = to_iso(at)
        for memory_id in ids:
            self.conn.execute(
                "INSERT OR REPLACE INTO injected(session, memory_id, at) VALUES (?, ?, ?)",
                (session, memory_id, when),
            )

    def clear_injected(self, session: str | None = None, before: datetime | None = None) -> None:
        if session is not None:
            self.conn.execute("DELETE FROM injected WHERE session = ?", (session,))
        if before is not None:
            self.conn.execute("DELETE FROM injected WHERE at < ?", (to_iso(before),))
