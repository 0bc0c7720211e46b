"""What only the PostgreSQL backend has: exact filters inside the HNSW search at 100,000
memories, the same keyword hits and relevance evidence as SQLite, migrations recorded in
the database, what a hard forget leaves, URLs that never show their password, and the one
line a user without psycopg gets. (Everything else runs on both backends through the
``memory`` and ``db_location`` fixtures.)"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from memento import Memory
from memento.config import display_location
from memento.dates import utcnow
from memento.store import Filters
from memento.store.postgres import EXACT_MAX, PostgresStore
from tests.conftest import HashEmbedder


def _bulk(store: PostgresStore, count: int, dimension: int, kind: str, scope: str,
          seed: int) -> None:  # fmt: skip
    """``count`` memories with random unit vectors, written by COPY (the storage mechanics
    of the search are under test, not the write path)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = utcnow()
    with store.conn.transaction(), store.conn.cursor() as cur, cur.copy(
        "COPY memories (id, content, kind, importance, created_at, updated_at, "
        "embedding_model, scope, embedding) FROM STDIN"
    ) as copy:
        for n, vector in enumerate(vectors):
            copy.write_row((
                f"01BULK{seed:04d}{n:016d}", f"bulk memory {seed} {n}", kind, 0.5, now, now,
                "test-hash", scope, "[" + ",".join(f"{v:.6f}" for v in vector) + "]",
            ))  # fmt: skip


def test_a_new_databases_first_open_filters_inside_the_index_walk(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    """pgvector >= 0.8 is asked for iterative scans after the first migration installed it:
    asked before, a server started on a new database searched through the fallback path
    until it was restarted."""
    with Memory(postgres_url, embedder=hash_embedder) as memory:
        assert memory.backend._iterative
    with Memory(postgres_url, embedder=hash_embedder) as memory:
        assert memory.backend._iterative


@pytest.mark.slow
def test_three_matches_among_100000_are_found_by_every_filter(postgres_url: str) -> None:
    """3 lessons among 100,000 facts, 3 memories under one key prefix, 3 from one week, and
    6,000 of one project (above the exact-scan bound, so through the HNSW index with
    iterative scans): each search returns exactly what its filter allows, never fewer than
    asked for because a top-k was cut before filtering."""
    dimension = 16
    embedder = HashEmbedder(dimension=dimension)
    with Memory(postgres_url, embedder=embedder) as memory:
        store = memory.backend
        assert isinstance(store, PostgresStore)
        memory.store("seed so the project exists", scope="global")
        from memento.projects import Project

        with store.transaction():
            store.register_project(Project(id="p-big", name="big", root=""))
        # as a bulk load does: the HNSW index is built once, after the rows are in
        store.conn.execute("DROP INDEX memories_embedding")
        _bulk(store, 94_000, dimension, "fact", "global", seed=1)
        _bulk(store, EXACT_MAX + 1_000, dimension, "event", "p-big", seed=2)
        store.conn.execute(
            "CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops)"
        )
        lessons = [memory.store(f"lesson number {n}", kind="lesson").id for n in range(3)]
        keyed = [
            memory.store(f"keyed fact {n}", subject_key=f"deep.area.k{n}").id for n in range(3)
        ]
        old = [
            memory.store(f"old event {n}", kind="event", created_at=f"2020-03-0{n + 1}").id
            for n in range(3)
        ]
        store.conn.execute("ANALYZE memories")
        assert memory.stats()["total"] > 100_000

        query = embedder.embed(["anything at all"])[0].astype("<f4").tobytes()

        def ids(filters: Filters, k: int = 10) -> list[str]:
            with store.transaction(write=False):
                hits = store.knn(query, k, filters)
            rows = store.fetch([s for s, _ in hits])
            return [rows[s].id for s, _ in hits]

        assert sorted(ids(Filters(kinds=("lesson",)))) == sorted(lessons)
        assert sorted(ids(Filters(prefix="deep.area"))) == sorted(keyed)
        since = datetime(2020, 3, 1, tzinfo=timezone.utc)
        week = Filters(since=since, until=since + timedelta(days=7))
        assert sorted(ids(week)) == sorted(old)
        assert ids(Filters(kinds=("lesson",), scopes=("p-big",))) == []

        # A filter too wide for the exact scan: the index walk, filters inside it.
        big = Filters(scopes=("p-big",))
        found = ids(big, k=50)
        assert len(found) == 50
        rows = store.fetch([s for s, _ in store.knn(query, 50, big)])
        assert {r.scope for r in rows.values()} == {"p-big"}
        # ... and its best hits are the exact best (recall@10 of the index walk >= 0.9)
        exact = store._knn_exact(
            "[" + ",".join(repr(float(v)) for v in np.frombuffer(query, "<f4")) + "]",
            10, "m.scope = %s AND m.archived_at IS NULL", ["p-big"],
        )  # fmt: skip
        approx = store.knn(query, 10, big)
        overlap = len({s for s, _ in exact} & {s for s, _ in approx})
        assert overlap >= 9, overlap


def test_keyword_hits_scores_and_stems_equal_sqlite(
    tmp_path: Path, postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    """The same memories give the same BM25 hits, in the same order with the same scores
    (FTS5's formula and column weights), and the same stems for recall's relevance."""
    texts = [
        ("The deploy script runs database migrations before the web servers", None),
        ("Running migrations by hand broke production twice", "project.deploy.migrations"),
        ("Café menus list crêpes and naïve pricing", None),
        ("Deploys happen on Fridays; migrations on Mondays", "team.schedule"),
        ("Unrelated note about keyboard shortcuts", None),
    ]
    results = {}
    for name, location in (("sqlite", tmp_path / "m.db"), ("postgres", postgres_url)):
        with Memory(location, embedder=hash_embedder) as memory:
            for content, key in texts:
                memory.store(content, subject_key=key, kind="event")
            store = memory.backend
            by_seq = {r.seq: r.content for r in store.iter_rows()}
            hits = store.keyword("running migrations deploy cafe", 10, Filters())
            results[name] = (
                [(by_seq[s], round(score, 6)) for s, score in hits],
                store.stems(["Running the CAFÉ migrations", "naïve"]),
            )
    assert results["sqlite"] == results["postgres"]
    assert results["postgres"][0]  # it did find something


def test_migrations_are_recorded_and_a_newer_schema_is_refused(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    with Memory(postgres_url, embedder=hash_embedder) as memory:
        assert memory.upgraded_from == 0
        rows = memory.conn.execute(
            "SELECT version, description FROM memento.schema_version"
        ).fetchall()
        assert [r[0] for r in rows] == [1, 2]
        memory.conn.execute(
            "INSERT INTO memento.schema_version(version, description) VALUES (99, 'future')"
        )
    from memento.errors import SchemaError

    with pytest.raises(SchemaError, match="newer than this memento"):
        Memory(postgres_url, embedder=hash_embedder)


def test_hard_forget_leaves_no_row_version_or_session_trace(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    with Memory(postgres_url, embedder=hash_embedder) as memory:
        first = memory.store("codename qz7heron", subject_key="project.codename")
        memory.store("codename qz7falcon", subject_key="project.codename")
        memory.context(session_id="s1")
        started = memory.conn.execute("SELECT clock_timestamp()").fetchone()[0]
        memory.forget(first.id, hard=True)
        counts = memory.conn.execute(
            "SELECT (SELECT count(*) FROM memories), (SELECT count(*) FROM memory_versions), "
            "(SELECT count(*) FROM injected), (SELECT sum(docs) FROM keyword_stats)"
        ).fetchone()
        assert counts == (0, 0, 0, 0)
        # VACUUM ran after the delete: no dead row version of the memory is left in the
        # table's pages. (Not n_dead_tup: a session sends its DELETE's count to the statistics
        # at most once a second, so on a slow machine it can arrive after VACUUM zeroed the
        # count, which then says 1 of a row VACUUM removed.)
        vacuumed = memory.conn.execute(
            "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'memories'"
        ).fetchone()[0]
        assert vacuumed is not None and vacuumed >= started


def test_a_password_in_the_url_is_never_shown(postgres_url: str) -> None:
    with_password = postgres_url.replace("postgres:@", "postgres:s3cret-pw@")
    assert "s3cret" not in display_location(with_password)
    assert "s3cret" not in display_location(with_password + "&password=s3cret-pw")
    assert display_location("postgresql://u:p@db.example:5432/mem?sslmode=require") == (
        "postgresql://u@db.example:5432/mem?sslmode=require"
    )
    # a wrong server: the one-line error names the place, not the password
    bad = "postgresql://someone:s3cret-pw@127.0.0.1:1/nothing?connect_timeout=2"
    out = subprocess.run(
        [sys.executable, "-m", "memento.cli", "--db", bad, "list"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "s3cret" not in out.stderr + out.stdout
    assert "cannot connect to postgresql://someone@127.0.0.1:1/nothing" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_without_psycopg_a_url_names_the_extra(tmp_path: Path) -> None:
    """psycopg hidden from the import system: one line naming the extra, exit 1."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _NoPsycopg:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'psycopg' or name.startswith('psycopg.'):\n"
        "            raise ImportError('hidden by the test')\n"
        "sys.meta_path.insert(0, _NoPsycopg())\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "memento.cli", "--db", "postgresql://u:pw@localhost/m", "list"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error: a postgresql:// database needs psycopg: "
        "pip install 'memento-agent-memory[postgres]'"
    )


def test_verify_on_a_server_says_what_it_checks(postgres_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memento.cli", "--db", postgres_url, "verify"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "works on a SQLite file" in out.stderr and "postgres:@" not in out.stderr


def test_a_dropped_connection_fails_one_call_then_reconnects(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    """The server ended the session (a restart, an admin, a network drop): the call that
    finds out is a one-line DatabaseError, and the next one works on a new connection."""
    import psycopg

    from memento.errors import DatabaseError

    with Memory(postgres_url, embedder=hash_embedder) as memory:
        kept = memory.store("survives a dropped connection")
        pid = memory.conn.info.backend_pid
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DatabaseError, match="connection"):
            memory.get(kept.id)
        assert memory.get(kept.id).content == "survives a dropped connection"


def test_init_force_is_refused_while_another_memento_uses_the_database(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    from memento.errors import DatabaseError
    from memento.store import reset_store

    with Memory(postgres_url, embedder=hash_embedder) as memory:
        memory.store("a teammate's memory")
        with pytest.raises(DatabaseError, match="in use by 1 other memento connection"):
            reset_store(postgres_url)
        assert memory.stats()["total"] == 1
    reset_store(postgres_url)
    with Memory(postgres_url, embedder=hash_embedder) as memory:
        assert memory.upgraded_from == 0 and memory.stats()["total"] == 0


def test_reembed_to_a_model_of_another_dimension(postgres_url: str) -> None:
    """The vector column is replaced by one of the new dimension, every memory re-encoded,
    and searches work on the new vectors (storage mechanics: hash models)."""
    with Memory(postgres_url, embedder=HashEmbedder(dimension=16, name="small")) as memory:
        stored = [memory.store(f"memory number {n}", kind="event").id for n in range(5)]
    bigger = HashEmbedder(dimension=32, name="bigger")
    with Memory(postgres_url, embedder=bigger) as memory:
        memory.reembed(all=True)
        assert memory.stats()["dimension"] == 32 and memory.stats()["model"] == "bigger"
        assert memory.backend.count_stale_vectors("bigger") == 0
        vector = bigger.embed(["memory number 3"])[0].astype("<f4").tobytes()
        seq, distance = memory.backend.knn(vector, 1, Filters())[0]
        assert memory.backend.fetch([seq])[seq].id == stored[3] and distance < 1e-5


def test_a_user_who_may_only_read_gets_reads_and_a_one_line_refusal(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    """A role with SELECT only (a reporting user, a standby): reads work, a write is one
    line naming the database, nothing changes."""
    import psycopg

    from memento.errors import DatabaseError

    with Memory(postgres_url, embedder=hash_embedder) as memory:
        memory.store("readable by everyone")
    from urllib.parse import urlsplit

    role = "reader_" + urlsplit(postgres_url).path.strip("/")  # unique like the database
    try:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {role} LOGIN")
            admin.execute(f"GRANT USAGE ON SCHEMA memento TO {role}")
            admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA memento TO {role}")
    except psycopg.Error as exc:
        pytest.skip(f"cannot create a role on this server: {exc}")
    reader_url = postgres_url.replace("postgres:@", f"{role}:@", 1)
    try:
        with Memory(reader_url, embedder=hash_embedder) as reader:
            assert reader.readonly
            assert [r.content for r in reader.recent()] == ["readable by everyone"]
            with pytest.raises(DatabaseError, match="is read-only"):
                reader.store("not allowed")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_a_process_that_waited_for_another_s_migration_opens_the_store(
    postgres_url: str, hash_embedder: HashEmbedder
) -> None:
    """Several processes opening a new database at once: one migrates, the others wait for
    it and must then see its tables and open the store (one of 8 writers once failed with
    "holds tables that are not memento's" there)."""
    import threading
    import time

    from memento.store import postgres_migrations as migrations
    from memento.store.postgres import connect

    holder = connect(postgres_url)  # the first process: it holds the lock and migrates
    holder.execute("SELECT pg_advisory_lock(%s)", (migrations.WRITE_LOCK,))
    outcome: list[object] = []

    def open_store() -> None:
        try:
            with Memory(postgres_url, embedder=hash_embedder) as memory:
                outcome.append(memory.stats()["schema_version"])
        except Exception as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=open_store)
    waiter.start()
    for _ in range(200):  # until the other opener waits for the lock
        waiting = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0]
        if waiting:
            break
        time.sleep(0.05)
    assert waiting, "the second opener never waited for the migration lock"
    migrations.migrate(holder, hash_embedder.dimension)
    holder.execute("SELECT pg_advisory_unlock(%s)", (migrations.WRITE_LOCK,))
    waiter.join(60)
    holder.close()
    assert outcome == [migrations.LATEST]
