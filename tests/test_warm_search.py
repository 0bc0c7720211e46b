"""The exact search of small stores in a connection that searches again (a server, the
Python API): from its second search on, the float vectors are scored in numpy
(``sqlite_index.BitIndex.exact_knn``) instead of by vec0's scan. It must answer what the
scan answers, under every filter and after every write, this connection's or another's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from memento import Memory
from memento.dates import utcnow
from memento.store import sqlite as store
from memento.store import sqlite_index as index
from tests.conftest import follows_one_memory

TEXTS = [f"note {n} about topic {n % 7} and module {n % 5}" for n in range(120)]


def _fill(m: Memory, texts: list[str] = TEXTS, offset: int = 0) -> None:
    now = utcnow()
    m.store_many(
        [
            {
                "content": text,
                "kind": ("fact", "event", "lesson")[n % 3],
                "subject_key": f"proj.{'ab'[n % 2]}.{n:04d}" if n % 4 == 0 else None,
                "created_at": now - timedelta(days=n + offset),
            }
            for n, text in enumerate(texts)
        ]
    )


def _warm(m: Memory) -> None:
    """Two searches: the second loads the float copy."""
    m.recall("warm up", limit=1)
    m.recall("warm up", limit=1)
    assert index.for_connection(m.conn).vectors is not None


def _answers(m: Memory, text: str, filters: store.Filters, k: int = 10) -> tuple[list, list]:
    vector = m._embed([text])[0]
    with store.transaction(m.conn, write=False):
        warm = store.knn(m.conn, vector, k, filters)
        scan = store.knn_exact(m.conn, vector, k, filters)
    return warm, scan


def _same(warm: list, scan: list) -> None:
    assert [s for s, _ in warm] == [s for s, _ in scan]
    assert [d for _, d in warm] == pytest.approx([d for _, d in scan], abs=1e-5)


def test_a_single_search_never_loads_the_copy(db_path: Path, hash_embedder) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
    with Memory(db_path, embedder=hash_embedder) as m:  # a command or hook: one search
        assert m.recall(TEXTS[3], limit=1)[0].content == TEXTS[3]
        assert index.for_connection(m.conn).vectors is None


@pytest.mark.parametrize(
    "filters",
    [
        store.Filters(),
        store.Filters(kinds=("lesson",)),
        store.Filters(kinds=("fact", "event")),
        store.Filters(prefix="proj.a."),
        store.Filters(include_archived=True),
        store.Filters(since=utcnow() - timedelta(days=40), until=utcnow() - timedelta(days=9)),
        store.Filters(scopes=("global",)),
    ],
    ids=["none", "kind", "kinds", "prefix", "archived", "since-until", "global-scope"],
)
def test_warm_search_answers_what_the_scan_answers(
    db_path: Path, hash_embedder, tmp_path: Path, filters: store.Filters
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with Memory(db_path, embedder=hash_embedder, project=project) as m:
        _fill(m, [f"{t} in the project" for t in TEXTS[:40]], offset=3)
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        m.forget_prefix("proj.b.")  # some archived rows
        _warm(m)
        for text in ("module 2 topic 4", TEXTS[17], "note 33 in the project"):
            warm, scan = _answers(m, text, filters, k=30)
            assert scan
            _same(warm, scan)


def test_warm_copy_follows_writes_from_here_and_from_another_connection(
    db_path: Path, hash_embedder
) -> None:
    with Memory(db_path, embedder=hash_embedder) as a, Memory(
        db_path, embedder=hash_embedder
    ) as b:
        _fill(a)
        _warm(b)
        target = b.recall(TEXTS[7], limit=1)[0]
        assert target.content == TEXTS[7]
        follows_one_memory(a, b, target.id, "the kettle is blue")
        fresh = b.store("a memory stored by the searching connection", kind="event")
        assert b.recall("a memory stored by the searching connection", limit=1)[0].id == fresh.id
        _fill(a, [f"second batch {n}" for n in range(30)])
        for text in ("second batch 12", TEXTS[50], "the kettle is blue"):
            _same(*_answers(b, text, store.Filters(), k=25))


def test_a_store_that_outgrows_the_copy_lets_it_go(
    db_path: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m, TEXTS[:60])
        _warm(m)
        monkeypatch.setattr(index, "FLOAT_ROWS", 80)
        _fill(m, TEXTS[60:])
        _same(*_answers(m, TEXTS[90], store.Filters(), k=20))
        assert index.for_connection(m.conn).vectors is None  # vec0 answers again


def test_vectors_of_another_dimension_reload_the_copy(db_path: Path, hash_embedder) -> None:
    hash_model = type(hash_embedder)
    with Memory(db_path, embedder=hash_model(384)) as m:
        _fill(m)
        _warm(m)
        with Memory(db_path, embedder=hash_model(128, "other")) as other:
            assert other.reembed() == len(TEXTS)
        vector = hash_model(128).embed([TEXTS[4]])[0].astype("<f4").tobytes()
        for _ in range(2):
            with store.transaction(m.conn, write=False):
                warm = store.knn(m.conn, vector, 10, store.Filters())
                scan = store.knn_exact(m.conn, vector, 10, store.Filters())
            _same(warm, scan)
        assert warm[0][1] == pytest.approx(0.0, abs=1e-6)
        assert index.for_connection(m.conn).dim == 128


def test_recall_is_the_same_on_the_first_search_and_after(db_path: Path, embedder) -> None:
    """With the real model: what a one-shot command answers (vec0) and what a server answers
    from its second search on (the float copy) are the same memories, in the same order,
    with the same scores."""
    texts = [
        "The deploy script needs AWS_PROFILE set to staging",
        "Run the migrations before the integration tests",
        "The user prefers tabs over spaces in Python files",
        "Redis runs on port 6380 in the dev compose file",
        "The billing service retries failed webhooks three times",
        "CI caches the pip wheels between runs",
        "Never force-push to the release branch",
        "The frontend build uses pnpm, not npm",
        "Logs older than 30 days are deleted by a cron job",
        "The staging database is reset every Sunday night",
    ]
    queries = ["how do I deploy", "which package manager", "database reset", "port of redis"]
    with Memory(db_path, embedder=embedder) as m:
        m.store_many([{"content": t, "kind": "fact"} for t in texts])
    first = []
    for q in queries:  # a new connection each time: every recall is a first search
        with Memory(db_path, embedder=embedder) as m:
            first.append([(r.id, r.score) for r in m.recall(q, limit=5)])
    with Memory(db_path, embedder=embedder) as m:
        m.recall("warm up")
        later = [[(r.id, r.score) for r in m.recall(q, limit=5)] for q in queries]
        assert index.for_connection(m.conn).vectors is not None
    for a, b in zip(first, later):
        assert [i for i, _ in a] == [i for i, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_a_check_inside_a_write_sees_the_transaction_and_forgets_it_on_rollback(
    db_path: Path, hash_embedder
) -> None:
    import apsw

    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        _warm(m)
        item = m._prepare({"content": "a brand new fact", "kind": "fact"})
        vector = m._embed(["a brand new fact"])[0]
        near = store.Filters(kinds=("fact",))
        with pytest.raises(apsw.ConstraintError), store.transaction(m.conn):
            assert m._write_one(item, vector).action == "created"
            warm = store.knn(m.conn, vector, 5, near)
            _same(warm, store.knn_exact(m.conn, vector, 5, near))
            assert warm[0][1] == pytest.approx(0.0, abs=1e-6)  # the row written just now
            assert m._write_one(item, vector).action == "deduplicated"
            m.conn.execute("INSERT INTO memories SELECT * FROM memories LIMIT 1")
        with store.transaction(m.conn, write=False):
            after = store.knn(m.conn, vector, 5, near)
        _same(after, store.knn_exact(m.conn, vector, 5, near))
        assert after[0][1] > 0.01  # rolled back: not in the copy either
        assert m.store("a brand new fact", kind="fact").action == "created"


def test_a_check_inside_a_write_sees_rows_it_changed_as_they_are_now(
    db_path: Path, hash_embedder
) -> None:
    """A memory rewritten or archived by the open transaction is found by its new vector
    and columns only, never by what the copy held before."""
    import apsw

    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m)
        _warm(m)
        seq = {r.content: r.id for r in m.recent(limit=200)}
        rewritten = m.conn.execute(
            "SELECT seq FROM memories WHERE id = ?", (seq[TEXTS[7]],)
        ).fetchone()[0]
        archived = m.conn.execute(
            "SELECT seq FROM memories WHERE id = ?", (seq[TEXTS[8]],)
        ).fetchone()[0]
        old, new, gone = m._embed([TEXTS[7], "the kettle is blue", TEXTS[8]])
        with pytest.raises(apsw.ConstraintError), store.transaction(m.conn):
            store.update(m.conn, rewritten, {"content": "the kettle is blue"}, new)
            store.update(m.conn, archived, {"archived_at": utcnow()})
            for vector, absent in ((old, rewritten), (gone, archived)):
                warm = store.knn(m.conn, vector, 5, store.Filters())
                _same(warm, store.knn_exact(m.conn, vector, 5, store.Filters()))
                assert absent not in [s for s, _ in warm]
            warm = store.knn(m.conn, new, 5, store.Filters())
            assert warm[0][0] == rewritten and warm[0][1] == pytest.approx(0.0, abs=1e-6)
            m.conn.execute("INSERT INTO memories SELECT * FROM memories LIMIT 1")


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, a 1 for every vec0 scan."""
    calls: list[int] = []
    real = store.knn_exact

    def counted(*args: Any, **kwargs: Any) -> list[tuple[int, float]]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "knn_exact", counted)
    return calls


FACTS = [
    "The API server listens on port 8080",
    "The API server runs on port 8080",
    "The port of the API server is 8080",
    "The API server listens on port 9090",
    "The staging database is PostgreSQL 16",
    "Staging uses PostgreSQL 16 as its database",
    "The billing worker is deployed every Monday",
    "We deploy the billing worker on Mondays",
    "The search service is owned by the platform team",
    "The platform team owns the search service",
    "Never force-push to the release branch",
    "The frontend build uses pnpm, not npm",
    "The frontend is built with pnpm",
    "Logs older than 30 days are deleted by a cron job",
    "A cron job deletes logs after 30 days",
    "The API server listens on port 8080",
]


def test_stores_in_a_warm_connection_decide_as_first_searches_do(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real model: the near-duplicate check of a server's stores (the float copy,
    inside the write) decides each item as a one-shot `memento store` (vec0) does."""
    decided = {}
    for name in ("cold", "warm"):
        path = tmp_path / f"{name}.db"
        with Memory(path, embedder=embedder) as m:
            _fill(m, [f"filler note {n} about the office" for n in range(60)])
        records = []
        if name == "cold":
            for text in FACTS:  # a new connection each time: every check is a first search
                with Memory(path, embedder=embedder) as m:
                    records.append(m.store(text, kind="fact"))
        else:
            with Memory(path, embedder=embedder) as m:
                _warm(m)
                scans = _count_scans(monkeypatch)
                records = [m.store(text, kind="fact") for text in FACTS]
            assert not scans  # every check was answered from the copy
        with Memory(path, embedder=embedder) as m:
            decided[name] = [
                (
                    r.action,
                    m.get(r.id).content,
                    tuple((m.get(x.id).content, round(x.similarity, 4)) for x in r.related),
                )
                for r in records
            ]
    assert decided["warm"] == decided["cold"]
    actions = [a for a, _, _ in decided["warm"]]
    assert "deduplicated" in actions and "created" in actions
    assert any(related for _, _, related in decided["warm"])


def test_a_copy_loaded_over_an_emptied_store_takes_new_memories(
    db_path: Path, hash_embedder
) -> None:
    """A server started after every memory was deleted: its copy holds only tombstones
    when the first new memory arrives (on a freed seq)."""
    with Memory(db_path, embedder=hash_embedder) as m:
        for record in m.store_many([{"content": f"note {n}", "kind": "event"} for n in range(5)]):
            m.forget(record.id, hard=True)
    with Memory(db_path, embedder=hash_embedder) as m:
        m.recall("a")
        m.recall("b")
        assert index.for_connection(m.conn).vectors is not None
        fresh = m.store("hello world", kind="event")
        assert [r.id for r in m.recall("hello world")] == [fresh.id]
        assert m.store("hello world again", kind="fact").action == "created"
        assert {r.content for r in m.recall("hello world", limit=5)} == {
            "hello world",
            "hello world again",
        }


@pytest.mark.parametrize("large", [False, True], ids=["float-copy", "large-store-index"])
def test_a_model_whose_dimension_is_not_a_multiple_of_64_is_searched_alike(
    db_path: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    """Sign bits of 100 dimensions fill 13 bytes, not whole 64-bit words."""
    if large:
        monkeypatch.setattr(index, "MIN_ROWS", 1)
    hash_model = type(hash_embedder)
    with Memory(db_path, embedder=hash_model(100, "hash-100")) as m:
        _fill(m)
        m.recall("warm up")
        m.recall("warm up")
        for text in (TEXTS[4], TEXTS[77], "module 2 topic 4"):
            _same(*_answers(m, text, store.Filters(), k=20))
        assert m.recall(TEXTS[4], limit=1)[0].content == TEXTS[4]
        assert m.store(TEXTS[3], kind="fact").action == "deduplicated"  # TEXTS[3] is a fact


def test_a_copy_is_let_go_when_batches_grow_the_store_past_its_size(
    db_path: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches check with one pass of their own, never a single search: the write itself
    lets the copy go once the store is too large for it."""
    monkeypatch.setattr(index, "FLOAT_ROWS", 50)
    with Memory(db_path, embedder=hash_embedder) as m:
        _fill(m, TEXTS[:40])
        _warm(m)
        for batch in range(3):
            m.store_many([{"content": f"batch {batch} note {n}"} for n in range(30)])
        assert index.for_connection(m.conn).vectors is None
        assert not index.for_connection(m.conn).exact


def test_equal_vectors_come_back_in_the_order_the_scan_gives(
    db_path: Path, hash_embedder
) -> None:
    """Memories with the same vector (the same text stored as events): the copy returns the
    newest first, as vec0 does, so a server and a one-shot command pick the same one."""
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store_many([{"content": f"filler {n}", "kind": "event"} for n in range(30)])
        m.store_many([{"content": "same text", "kind": "event"} for _ in range(8)])
        m.store_many([{"content": f"filler 2 {n}", "kind": "event"} for n in range(30)])
        _warm(m)
        for k in (1, 3, 8, 12):
            warm, scan = _answers(m, "same text", store.Filters(), k=k)
            _same(warm, scan)
        # the batch check's own pass over the float copies orders them alike
        vector = m._embed(["same text"])[0]
        batch = store.knn_many(m.conn, [vector] * 4, 3, [store.Filters()] * 4)
        _same(batch[0], scan[:3])


def test_a_memory_deleted_during_a_recall_is_not_replaced_by_a_newcomer(
    db_path: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows past a recall's first results are read after its ranking: a candidate deleted
    in between, whose freed seq a new memory took, is left out, never shown as the
    newcomer (which was no candidate)."""
    long_text = " ".join(["kettle boiling water descaling"] * 80)
    with Memory(db_path, embedder=hash_embedder) as m, Memory(
        db_path, embedder=hash_embedder
    ) as other:
        m.store_many([{"content": f"unrelated filler {n}", "kind": "event"} for n in range(6)])
        m.store(long_text, kind="event", importance=1.0)
        second = m.store("kettle descaling", kind="event", importance=0.1)
        seq = m.conn.execute("SELECT max(seq) FROM memories").fetchone()[0]
        assessed = m._assess
        calls = []

        def between_chunks(*args: Any) -> Any:
            if not calls:  # after the first chunk's rows were read
                other.forget(second.id, hard=True)
                newcomer = other.store("a newcomer", kind="event")
                calls.append(newcomer.id)
                assert other.conn.execute(
                    "SELECT seq FROM memories WHERE id = ?", (newcomer.id,)
                ).fetchone()[0] == seq  # it took the freed seq
            return assessed(*args)

        monkeypatch.setattr(m, "_assess", between_chunks)
        # the keyword half alone ranks just the two kettle memories, the long one first; one
        # result a chunk, and the long one does not fit the budget, so the second chunk's
        # row is read after the deletion
        vector = m._embed([long_text])[0]
        filters = m._filters(None, None, None, None, False)
        ranked, _, _ = m._ranked(long_text, vector, 50, filters, "keyword")
        assert [s for s, _, _ in ranked][1] == seq
        found = m._search(long_text, vector, 1, filters, None, "keyword", max_tokens=60)
        assert calls
        assert found == []  # the kettle memory is gone, and the newcomer was no candidate
