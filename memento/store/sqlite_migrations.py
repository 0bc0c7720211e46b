"""SQLite schema migrations: small numbered functions, each applied in its own transaction and
recorded in ``schema_version``. Opening an older file upgrades it in place; a file from a
newer memento is refused rather than touched."""

from __future__ import annotations

from collections.abc import Callable

import apsw

from ..dates import to_iso, utcnow
from ..errors import SchemaError


def _v1_initial(conn: apsw.Connection, dimension: int) -> None:
    conn.execute(
        """
        CREATE TABLE memories (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            content TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('fact', 'event', 'lesson')),
            subject_key TEXT,
            importance REAL NOT NULL CHECK (importance >= 0 AND importance <= 1),
            metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
            source TEXT NOT NULL DEFAULT 'api',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            archived_at TEXT,
            embedding_model TEXT
        );
        CREATE INDEX memories_created ON memories(created_at);
        CREATE INDEX memories_subject ON memories(subject_key);

        CREATE VIRTUAL TABLE memory_fts USING fts5(
            content, subject_key,
            content='memories', content_rowid='seq',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
            INSERT INTO memory_fts(rowid, content, subject_key)
            VALUES (new.seq, new.content, new.subject_key);
        END;
        CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
            INSERT INTO memory_fts(memory_fts, rowid, content, subject_key)
            VALUES ('delete', old.seq, old.content, old.subject_key);
        END;
        CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, subject_key ON memories BEGIN
            INSERT INTO memory_fts(memory_fts, rowid, content, subject_key)
            VALUES ('delete', old.seq, old.content, old.subject_key);
            INSERT INTO memory_fts(rowid, content, subject_key)
            VALUES (new.seq, new.content, new.subject_key);
        END;
        """
    )
    # The vector table as version 1 made it (version 4 adds the scope column).
    conn.execute(
        f"CREATE VIRTUAL TABLE memory_vec USING vec0(embedding float[{int(dimension)}] "
        "distance_metric=cosine, kind text, archived integer, created integer)"
    )


def _v2_settings_and_live_keys(conn: apsw.Connection, dimension: int) -> None:
    """A settings table (which model the vectors belong to) and one live memory per key."""
    conn.execute(
        """
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE INDEX memories_kind ON memories(kind, created_at);
        CREATE UNIQUE INDEX memories_live_subject ON memories(subject_key)
            WHERE subject_key IS NOT NULL AND archived_at IS NULL;
        """
    )
    row = conn.execute(
        "SELECT embedding_model FROM memories WHERE embedding_model IS NOT NULL "
        "GROUP BY embedding_model ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    if row is not None:
        conn.execute(
            "INSERT INTO settings(key, value) VALUES ('embedding_model', ?)", (row[0],)
        )


def create_vector_table(conn: apsw.Connection, dimension: int) -> None:
    """The vec0 table as the latest schema has it. Its metadata columns mirror ``memories``
    so the kind, archived, time and scope filters run inside the KNN scan and stay exact.
    (A subject-key prefix is applied as ``rowid IN (...)``: range filters on vec0 text
    columns fail in sqlite-vec 0.1.9 once keys are longer than 12 bytes; the scope is the
    project's integer code for the same reason.)"""
    conn.execute(
        f"""
        CREATE VIRTUAL TABLE memory_vec USING vec0(
            embedding float[{int(dimension)}] distance_metric=cosine,
            kind text,
            archived integer,
            created integer,
            scope integer
        )
        """
    )


def _v3_scale_index(conn: apsw.Connection, dimension: int) -> None:
    """``memory_bits``: the sign bits, a float copy and the filter columns of every vector,
    for the coarse pass and exact re-ranking of large stores (memento/index.py), filled from
    the vectors already stored; and
    ``memory_fts_vocab``, the document frequency of every indexed term, so keyword recall
    can leave out words that most memories contain."""
    conn.execute(
        """
        CREATE TABLE memory_bits (
            seq INTEGER PRIMARY KEY,
            bits BLOB,
            embedding BLOB,
            kind INTEGER NOT NULL,
            archived INTEGER NOT NULL,
            created INTEGER NOT NULL,
            stamp INTEGER NOT NULL
        );
        CREATE INDEX memory_bits_stamp ON memory_bits(stamp);
        CREATE VIRTUAL TABLE memory_fts_vocab USING fts5vocab(memory_fts, 'row');
        """
    )
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memory_vec'"
    ).fetchone():
        from . import sqlite_index

        sqlite_index.fill(conn)


def _v4_scopes(conn: apsw.Connection, dimension: int) -> None:
    """Project scopes: ``projects`` (code 0 is ``global``), ``memories.scope``, one live
    memory per subject_key *per scope*, and the scope beside every vector. Every existing
    memory becomes global. vec0 tables cannot gain a column, so the vectors are copied into a
    new ``memory_vec``."""
    conn.execute(
        """
        CREATE TABLE projects (
            code INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            root TEXT,
            created_at TEXT NOT NULL
        );
        ALTER TABLE memories ADD COLUMN scope INTEGER NOT NULL DEFAULT 0;
        DROP INDEX memories_live_subject;
        CREATE UNIQUE INDEX memories_live_subject ON memories(scope, subject_key)
            WHERE subject_key IS NOT NULL AND archived_at IS NULL;
        CREATE INDEX memories_scope ON memories(scope, created_at);
        ALTER TABLE memory_bits ADD COLUMN scope INTEGER NOT NULL DEFAULT 0;
        CREATE TEMP TABLE vec_copy AS
            SELECT rowid AS seq, embedding, kind, archived, created FROM memory_vec;
        DROP TABLE memory_vec;
        """
    )
    conn.execute(
        "INSERT INTO projects(code, id, name, root, created_at) "
        "VALUES (0, 'global', 'global', NULL, ?)",
        (to_iso(utcnow()),),
    )
    create_vector_table(conn, dimension)
    conn.execute(
        """
        INSERT INTO memory_vec(rowid, embedding, kind, archived, created, scope)
            SELECT seq, embedding, kind, archived, created, 0 FROM vec_copy ORDER BY seq;
        DROP TABLE temp.vec_copy;
        """
    )


def _v5_injected(conn: apsw.Connection, dimension: int) -> None:
    # Which memories a Claude Code session has already been given (memento.context), so a
    # prompt hook never repeats one. Rows are short-lived: Memory.context drops those older
    # than a day. No foreign key: a hard forget deletes them itself (Store.delete).
    conn.execute(
        """
        CREATE TABLE injected (
            session TEXT NOT NULL,
            memory_id TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (session, memory_id)
        ) WITHOUT ROWID;
        CREATE INDEX injected_at ON injected(at);
        """
    )


def _v6_versions(conn: apsw.Connection, dimension: int) -> None:
    # The earlier versions of each memory (Memory.history): the fields a change replaced,
    # when they held, and what replaced them. Never embedded and never in memory_fts, so
    # they cost their text and nothing else; a hard forget deletes them with the memory.
    conn.execute(
        """
        CREATE TABLE memory_versions (
            seq INTEGER NOT NULL REFERENCES memories(seq) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            content TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject_key TEXT,
            importance REAL NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            source TEXT NOT NULL,
            scope INTEGER NOT NULL,
            valid_from TEXT NOT NULL,
            valid_until TEXT NOT NULL,
            replaced_by TEXT NOT NULL,
            PRIMARY KEY (seq, version)
        ) WITHOUT ROWID;
        CREATE INDEX memory_versions_subject ON memory_versions(subject_key);
        """
    )


def _v7_tokens(conn: apsw.Connection, dimension: int) -> None:
    # The bearer tokens of the HTTP server (memento.memory.tokens): only the SHA-256 of a
    # token is kept, never the token. A revoked token is deleted (its name may be reused).
    # project is a projects.id (text, not the code: a token names its project before any
    # memory is stored there); NULL lets the token cover every project.
    conn.execute(
        """
        CREATE TABLE tokens (
            name TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            read_only INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
            project TEXT,
            created_at TEXT NOT NULL,
            last_used_at TEXT
        );
        """
    )


def _v8_parts(conn: apsw.Connection, dimension: int) -> None:
    # The partition of a large store's vectors for the near-duplicate check of writes
    # (memento/store/sqlite_parts.py): its centroids, and each row's nearest one. Empty until
    # a write at scale trains it.
    conn.execute(
        """
        CREATE TABLE memory_parts (part INTEGER PRIMARY KEY, centroid BLOB NOT NULL);
        ALTER TABLE memory_bits ADD COLUMN part INTEGER;
        """
    )


MIGRATIONS: list[tuple[int, str, Callable[[apsw.Connection, int], None]]] = [
    (1, "memories, memory_fts (FTS5) and memory_vec (vec0)", _v1_initial),
    (2, "settings table and one live memory per subject_key", _v2_settings_and_live_keys),
    (3, "memory_bits (coarse vector index) and memory_fts_vocab", _v3_scale_index),
    (4, "project scopes: projects, memories.scope, scope beside every vector", _v4_scopes),
    (5, "injected: memories already given to an agent session", _v5_injected),
    (6, "memory_versions: the earlier versions of each memory", _v6_versions),
    (7, "tokens: hashed bearer tokens of the HTTP server", _v7_tokens),
    (8, "memory_parts: a partition of the vectors for the near-duplicate check", _v8_parts),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: apsw.Connection) -> int:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not has_table:
        other = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()
        if other is not None:
            raise SchemaError(
                "this SQLite file is not a memento database (it has other tables): "
                "choose another path with --db or MEMENTO_PATH"
            )
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def check_not_newer(version: int) -> None:
    if version > LATEST:
        raise SchemaError(
            f"this database has schema version {version}, newer than this memento "
            f"understands ({LATEST}): upgrade memento (pip install -U memento-agent-memory, "
            "or reinstall from a newer checkout)"
        )


def migrate(conn: apsw.Connection, dimension: int, target: int | None = None) -> list[int]:
    """Apply pending migrations up to ``target`` (default: all), each in its own
    transaction, re-reading the version inside it so two processes never apply one twice.
    Returns the numbers applied."""
    target = LATEST if target is None else target
    applied: list[int] = []
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = current_version(conn)
            check_not_newer(version)
            pending = [m for m in MIGRATIONS if version < m[0] <= target]
            if not pending:
                conn.execute("COMMIT")
                return applied
            number, description, step = pending[0]
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            step(conn, dimension)
            conn.execute(
                "INSERT INTO schema_version(version, description, applied_at) VALUES (?, ?, ?)",
                (number, description, to_iso(utcnow())),
            )
            conn.execute("COMMIT")
            applied.append(number)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
