"""The large-store paths (memento/index.py, the keyword bound) forced at small scale by
lowering their thresholds: the coarse pass plus re-rank returns the exact answer when the
pool covers the store, filters stay exact, and the index follows every kind of write."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import apsw
import pytest

from memento import Memory
from memento.dates import utcnow
from memento.store import sqlite as store
from memento.store import sqlite_index as index
from memento.store import sqlite_migrations as migrations
from tests.conftest import follows_one_memory

TEXTS = [f"note {n} about topic {n % 7} and module {n % 5}" for n in range(120)]


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store counts as large: recall takes the index path."""
    monkeypatch.setattr(index, "MIN_ROWS", 1)
    monkeypatch.setattr(store, "KEYWORD_MIN_ROWS", 1)


def _key(n: int) -> str | None:
    """Every fourth memory has a key, in segments a prefix can pick: proj.a.0.1.0016."""
    if n % 4:
        return None
    return f"proj.{'ab'[n % 8 // 4]}.{n // 100}.{n % 100 // 10}.{n:04d}"


def _fill(m: Memory) -> None:
    now = utcnow()
    m.store_many(
        [
            {
                "content": text,
                "kind": ("fact", "event", "lesson")[n % 3],
                "subject_key": _key(n),
                "created_at": now - timedelta(days=n),
            }
            for n, text in enumerate(TEXTS)
        ]
    )


def _both(m: Memory, text: str, filters: store.Filters, k: int = 10) -> tuple[list, list]:
    vector = m._embed([text])[0]
    with store.transaction(m.conn, write=False):
        fast = store.knn(m.conn, vector, k, filters)
        exact = store.knn_exact(m.conn, vector, k, filters)
    return [s for s, _ in fast], [s for s, _ in exact]


def test_pool_covering_the_store_gives_the_exact_answer(
    db_path: Path, hash_embedder, large: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        for pool in (len(TEXTS), 10_000):
            monkeypatch.setattr(index, "POOL", pool)
            fast, exact = _both(m, "note 3 about topic 3", store.Filters(), k=25)
            assert fast == exact and len(fast) == 25
        # a pool smaller than the store still returns k memories, nearest first
        monkeypatch.setattr(index, "POOL", 20)
        vector = m._embed(["note 3 about topic 3"])[0]
        hits = store.knn(m.conn, vector, 10, store.Filters())
        assert len(hits) == 10 and [d for _, d in hits] == sorted(d for _, d in hits)


@pytest.mark.parametrize(
    "filters",
    [
        store.Filters(kinds=("lesson",)),
        store.Filters(kinds=("fact", "event")),
        store.Filters(prefix="proj.a."),
        store.Filters(include_archived=True),
    ],
    ids=["kind", "kinds", "prefix", "archived"],
)
def test_filters_are_exact_on_the_index_path(
    db_path: Path, hash_embedder, large: None, monkeypatch: pytest.MonkeyPatch, filters
) -> None:
    monkeypatch.setattr(index, "POOL", 10_000)
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        m.forget_prefix("proj.a.0.1")  # some archived rows
        fast, exact = _both(m, "module 2 topic 4", filters, k=30)
        assert fast == exact and fast


def test_time_filters_are_exact_with_a_small_pool(
    db_path: Path, hash_embedder, large: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "POOL", 15)
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        f = m._filters("fact", None, utcnow() - timedelta(days=30.5), None, False)
        fast, exact = _both(m, "note 9", f)
        assert fast == exact and len(fast) == 10  # 11 facts in range: fewer than the pool
        records = m.recall("note 9", kind="fact", since=utcnow() - timedelta(days=30.5))
        assert {r.content for r in records} <= {TEXTS[n] for n in range(0, 31, 3)}


def test_index_follows_update_forget_and_restore(
    db_path: Path, hash_embedder, large: None
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        target = m.recall("note 5 about topic 5 and module 0", limit=1)[0]
        assert target.content == TEXTS[5]
        follows_one_memory(m, m, target.id, "completely different words about bread")
        assert m.forget_prefix("proj.") == 30
        assert not [r for r in m.recall("note", limit=100) if r.subject_key]
        assert m.forget_prefix("proj.", hard=True) == 30
        fresh = m.store("a memory stored after the deletes", kind="event")
        assert m.recall("a memory stored after the deletes", limit=1)[0].id == fresh.id


def test_other_connections_see_each_others_writes(
    db_path: Path, hash_embedder, large: None
) -> None:
    with Memory(db_path, embedder=hash_embedder) as a, Memory(
        db_path, embedder=hash_embedder
    ) as b:
        _fill(a)
        assert b.recall(TEXTS[7], limit=1)[0].content == TEXTS[7]  # b loads its index
        moved = a.update(b.recall(TEXTS[7], limit=1)[0].id, content="the kettle is blue")
        assert b.recall("the kettle is blue", limit=1)[0].id == moved.id
        a.forget(moved.id, hard=True)
        assert moved.id not in {r.id for r in b.recall("the kettle is blue")}


def test_rolled_back_store_many_leaves_nothing_behind(
    db_path: Path, hash_embedder, large: None
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        m.recall("warm the index")
        item = m._prepare({"content": "a brand new fact", "kind": "fact"})
        vector = m._embed(["a brand new fact"])[0]
        with pytest.raises(apsw.ConstraintError), store.transaction(m.conn):
            # the near-duplicate check searches inside the write transaction
            assert m._write_one(item, vector).action == "created"
            assert m._write_one(item, vector).action == "deduplicated"  # seen via the overlay
            m.conn.execute("INSERT INTO memories SELECT * FROM memories LIMIT 1")
        assert all(r.content != "a brand new fact" for r in m.recall("a brand new fact"))
        stored = m.store("a brand new fact", kind="fact")
        assert stored.action == "created"
        assert m.recall("a brand new fact", limit=1)[0].id == stored.id


def test_reembed_to_another_dimension_rebuilds_the_index(
    db_path: Path, hash_embedder, large: None
) -> None:
    hash_model = type(hash_embedder)
    with Memory(db_path, embedder=hash_model(384)) as m:
        _fill(m)
        assert m.recall(TEXTS[4], limit=1)[0].content == TEXTS[4]
    with Memory(db_path, embedder=hash_model(128, "other")) as m:
        assert m.reembed() == len(TEXTS)
        assert m.recall(TEXTS[4], limit=1)[0].content == TEXTS[4]
        assert store.vector_dimension(m.conn) == 128
        widths = {r[0] for r in m.conn.execute("SELECT length(bits) FROM memory_bits")}
        assert widths == {16}


def test_v2_file_is_upgraded_with_its_vectors(
    db_path: Path, hash_embedder, large: None
) -> None:
    conn = store.connect(db_path)
    migrations.migrate(conn, 384, target=2)
    # fill the v2 file as memento 0.1 wrote it: memories, FTS (triggers) and vec0 rows
    now = utcnow()
    with store.transaction(conn):
        for n, text in enumerate(TEXTS):
            created = now - timedelta(days=n)
            iso = created.isoformat().replace("+00:00", "Z")
            conn.execute(
                "INSERT INTO memories(id, content, kind, subject_key, importance, metadata, "
                "source, created_at, updated_at, embedding_model) "
                "VALUES (?, ?, ?, ?, 0.5, '{}', 'api', ?, ?, ?)",
                (f"01JAAAAAAAAAAAAAAAAAA{n:05d}", text, ("fact", "event", "lesson")[n % 3],
                 f"proj.{'ab'[n % 2]}.{n:04d}" if n % 4 == 0 else None, iso, iso,
                 hash_embedder.name),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO memory_vec(rowid, embedding, kind, archived, created) "
                "VALUES (?, ?, ?, 0, ?)",
                (conn.last_insert_rowid(), hash_embedder.embed([text])[0].tobytes(),
                 ("fact", "event", "lesson")[n % 3], int(created.timestamp() * 1e6)),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO settings(key, value) VALUES ('embedding_model', ?)",
            (hash_embedder.name,),
        )
    conn.close()
    with Memory(db_path, embedder=hash_embedder) as m:
        assert m.stats()["schema_version"] == migrations.LATEST
        assert m.conn.execute("SELECT count(*) FROM memory_bits").fetchone()[0] == len(TEXTS)
        fast, exact = _both(m, TEXTS[11], store.Filters(kinds=("event",)), k=20)
        assert fast == exact
        assert m.recall(TEXTS[11], limit=1)[0].content == TEXTS[11]


def test_common_keywords_are_left_out_when_rarer_ones_exist(
    db_path: Path, hash_embedder, large: None
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        m.store("the zebra crossing is painted", kind="event")
        with store.transaction(m.conn, write=False):
            assert store.bounded_match(m.conn, '"notes" OR "zebra"') == '"zebra"'
            assert store.bounded_match(m.conn, '"notes" OR "about"') in ('"notes"', '"about"')
            assert store.bounded_match(m.conn, '"unknownword"') == '"unknownword"'
        assert m.recall("notes about the zebra", limit=1)[0].content.startswith("the zebra")


def test_large_store_keyword_query_keeps_filters_exact(
    db_path: Path, hash_embedder, large: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        m.forget_prefix("proj.a.0.0")
        for filters in (store.Filters(kinds=("lesson",)), store.Filters(), store.Filters(
            prefix="proj.a.0", include_archived=True
        )):
            with store.transaction(m.conn, write=False):
                fast = store.keyword(m.conn, '"note"', 5, filters)
                monkeypatch.setattr(store, "KEYWORD_MIN_ROWS", 10**12)
                slow = store.keyword(m.conn, '"note"', 5, filters)
                monkeypatch.setattr(store, "KEYWORD_MIN_ROWS", 1)
            assert fast == slow and len(fast) == 5


def test_rows_without_a_float_copy_are_scored_from_vec0(db_path: Path, hash_embedder) -> None:
    """A memory whose float copy in memory_bits is missing (a damaged or partly rebuilt
    index table) is still scored, from vec0, as before; re-ranking a pool none of whose
    rows has a copy gives nothing rather than an error."""
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store_many([{"content": t} for t in TEXTS[:10]])
        vector = m._embed([TEXTS[3]])[0]
        seqs = [int(r[0]) for r in m.conn.execute("SELECT seq FROM memories ORDER BY seq")]
        before = m._store.similarities(vector, seqs)
        assert max(before, key=before.__getitem__) == seqs[3]
        m.conn.execute("UPDATE memory_bits SET embedding = NULL")
        assert index.rerank(m.conn, vector, seqs, 3) == []
        assert index.rerank_many(m.conn, [vector], [seqs], 3) == [[]]
        after = m._store.similarities(vector, seqs)
        assert after.keys() == before.keys()
        assert [after[s] for s in seqs] == pytest.approx([before[s] for s in seqs], abs=1e-5)


def test_writes_without_a_check_leave_the_large_store_index_unloaded(
    db_path: Path, hash_embedder, large: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that only stores events or keyed facts into a large store does not read its
    index (~3 s at a million memories, for a one-shot `memento store --kind event`), neither
    before the write nor inside it; the first fact's near-duplicate check loads it and still
    sees every memory, those events included."""
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
    loads: list[int] = []
    load = index.BitIndex._load

    def counted(self: index.BitIndex, conn: apsw.Connection, after: int) -> dict:
        loads.append(after)
        return load(self, conn, after)

    monkeypatch.setattr(index.BitIndex, "_load", counted)
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store("The deploy of the API server finished", kind="event")
        m.store("The user prefers dark mode", subject_key="user.theme")
        key = _key(0)
        assert key is not None
        assert m.store("Another text for the first key", subject_key=key).action == "updated"
        m.store_many([{"content": f"build {n} passed", "kind": "event"} for n in range(3)])
        assert loads == []
        copy = index.for_connection(m.conn)
        assert m.store(TEXTS[3]).action == "deduplicated"
        assert loads and loads[0] == index.NO_STAMP
        assert copy.stamp != index.NO_STAMP and len(copy.seqs) == len(TEXTS) + 5
        assert m.store("The deploy of the API server finished").action == "created"
