"""store_many decides every item as one store after another would (issue 18).

The near-duplicate check of a batch asks the store once (``Store.knn_many``) and adds what
the batch itself wrote; these tests store the same items one by one and as one batch, into
two stores that start alike, and compare them memory for memory, with the real model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memento import Memory
from memento.embedder import Embedder
from memento.store import Filters, sqlite, sqlite_index
from memento.store.base import Store

SUBJECTS = [
    "the API server", "the staging database", "the billing worker", "the search service",
    "the auth proxy", "the metrics exporter", "the nightly backup job", "the web frontend",
    "the mail relay", "the image resizer", "the cache cluster", "the payments gateway",
    "the admin dashboard", "the event bus", "the export service", "the login page",
    "the report generator", "the feature flag service", "the audit log", "the video encoder",
    "the chat bot", "the job scheduler", "the CDN edge", "the mobile API",
]  # fmt: skip
# Restatements of one fact, distinct facts about one subject (another value), and facts
# about other things: similarities on both sides of both bars (0.97 and 0.65).
TEMPLATES = [
    "{s} listens on port {n}",
    "{s} runs on port {n}",
    "The port of {s} is {n}",
    "{s} is served on port {n}",
    "{s} is deployed every {d}",
    "We deploy {s} on {d}s",
    "{s} is owned by the {t} team",
    "The {t} team owns {s}",
]
DAYS = ["Monday", "Tuesday", "Friday"]
TEAMS = ["platform", "payments", "growth"]


def _items() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(stored first one by one in both stores, then the batch): facts, lessons and events,
    repeats inside the batch, subject_key upserts (one turning a fact into an event), and a
    project scope."""
    texts = []
    for (i, s), template in itertools.product(enumerate(SUBJECTS), TEMPLATES):
        texts.append(
            template.format(s=s, n=8000 + i % 3, d=DAYS[i % 3], t=TEAMS[i % 3]).capitalize()
        )
    first = [{"content": t, "kind": "fact"} for t in texts[::5]]
    first += [
        {"content": "The staging database is PostgreSQL 16", "subject_key": "project.db"},
        {"content": "The user prefers dark mode", "subject_key": "user.theme"},
        {"content": "Always run ruff before committing", "kind": "lesson"},
        {"content": "Deploys are frozen on Fridays", "subject_key": "project.freeze"},
        {"content": "Our API gateway uses port 9090"},
    ]
    # four keyed facts nearer to a later query than the gateway fact, all rewritten by the
    # batch before that query comes: the store must be asked for more than four neighbours
    first += [
        {"content": f"The API gateway listens on port 808{n}", "subject_key": f"project.gw{n}"}
        for n in range(5)
    ]
    batch: list[dict[str, Any]] = []
    for n, text in enumerate(texts):
        kind = "lesson" if n % 7 == 3 else "event" if n % 11 == 5 else "fact"
        batch.append({"content": text, "kind": kind, "importance": 0.4 + (n % 5) / 10})
        if n % 9 == 0:  # said again later in the same batch, slightly reworded
            batch.append({"content": text + ".", "kind": kind, "importance": 0.9})
        if n % 13 == 0:
            batch.append({"content": text, "kind": "fact", "scope": "project"})
    batch[40:40] = [
        {"content": "The staging database is MySQL 8", "subject_key": "project.db"},
        {"content": "The user prefers dark mode", "kind": "event", "subject_key": "user.theme"},
        {"content": "The user prefers light mode", "subject_key": "user.theme2"},
    ]
    batch[120:120] = [
        {"content": "The staging database is MySQL 8.0", "subject_key": "project.db"},
        {"content": "The user prefers light mode in editors", "subject_key": "user.theme2"},
        {"content": "The user prefers dark mode"},
        {"content": "Run ruff before every commit", "kind": "lesson"},
        {"content": "The staging database is PostgreSQL 16"},  # no longer what project.db says
        {"content": "Deploys are frozen on Fridays"},  # project.freeze is an event now
        {"content": "The API gateway listens on port 8080"},
    ]
    batch[60:60] = [
        {
            "content": "Deploys are frozen on Fridays",
            "kind": "event",
            "subject_key": "project.freeze",
        },
        *(
            {"content": f"The office plant number {n} needs water", "subject_key": f"project.gw{n}"}
            for n in range(5)
        ),
    ]
    return first, batch


def _summary(memory: Memory, records: list[Any]) -> list[tuple[Any, ...]]:
    """Each record as what a user sees: the action, the memory it landed in (by content and
    scope), its importance, and the related memories listed."""
    out = []
    for r in records:
        landed = memory.get(r.id)
        related = tuple((memory.get(x.id).content, round(x.similarity, 2)) for x in r.related)
        out.append(
            (r.action, landed.content, landed.kind, landed.scope, landed.importance, related)
        )
    return out


def _contents(memory: Memory) -> list[tuple[Any, ...]]:
    return sorted(
        (r["content"], r["kind"], r["subject_key"], r["importance"], r["scope"])
        for r in memory.export()
    )


def _compare(
    tmp_path: Path, embedder: Embedder, locations: tuple[str | Path, str | Path] | None = None
) -> list[tuple[Any, ...]]:
    """Store the items one by one into the first location and as one batch into the second
    (two SQLite files in ``tmp_path`` unless given), and compare."""
    first, batch = _items()
    assert len(batch) > 200 and len(first) + len(batch) > 250
    project = tmp_path / "proj"
    project.mkdir()
    if locations is None:
        locations = (tmp_path / "one-by-one.db", tmp_path / "batch.db")
    results = []
    for name, location in zip(("one-by-one", "batch"), locations):
        with Memory(path=location, embedder=embedder, project=project) as m:
            for item in first:
                m.store(**item)
            if name == "batch":
                records = m.store_many(batch)
            else:
                records = [m.store(**item) for item in batch]
            results.append((_summary(m, records), _contents(m)))
    (one, one_rows), (many, many_rows) = results
    for n, (a, b) in enumerate(zip(one, many)):
        assert a == b, f"item {n}: {batch[n]['content']!r}: one by one {a}, batched {b}"
    assert one_rows == many_rows
    return one


def test_store_many_decides_every_item_as_one_by_one_stores(
    tmp_path: Path, embedder: Embedder
) -> None:
    decided = _compare(tmp_path, embedder)
    actions = {a[0] for a in decided}
    # the batch exercises every decision, related lists included
    assert actions == {"created", "deduplicated", "updated"}
    assert sum(1 for a in decided if a[5]) > 20
    assert sum(1 for a in decided if a[0] == "deduplicated") > 10


def test_large_store_index_path_decides_alike(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's candidates for each query (what a batch too small to read the whole
    store takes there), re-ranked in several groups."""
    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 1)
    monkeypatch.setattr(sqlite, "INDEX_QUERY_ROWS", 0)
    monkeypatch.setattr(sqlite_index, "RERANK_GROUP", 7)
    _compare(tmp_path, embedder)


def test_the_default_knn_many_decides_alike(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a backend without its own knn_many (the base class's, one knn per vector)
    decides is what SQLite's batched comparison decides."""
    from memento.store.sqlite import SQLiteStore

    monkeypatch.setattr(SQLiteStore, "knn_many", Store.knn_many)
    _compare(tmp_path, embedder)


@pytest.mark.slow
def test_postgres_decides_alike(
    tmp_path: Path, embedder: Embedder, new_postgres_database: Callable[[], str]
) -> None:
    """PostgreSQL has no knn_many of its own: the base class's asks its knn (an exact scan
    in a store this size) once per item, inside the batch's write transaction, and adds what
    the batch wrote; one by one, each store asks knn itself. Both decide alike, as on SQLite."""
    from memento.store.postgres import PostgresStore

    assert PostgresStore.knn_many is Store.knn_many
    decided = _compare(tmp_path, embedder, (new_postgres_database(), new_postgres_database()))
    assert {a[0] for a in decided} == {"created", "deduplicated", "updated"}
    assert sum(1 for a in decided if a[0] == "deduplicated") > 10


def test_knn_many_answers_as_knn(tmp_path: Path, embedder: Embedder) -> None:
    first, batch = _items()
    with Memory(path=tmp_path / "m.db", embedder=embedder, project=tmp_path) as m:
        m.store_many(first + batch)
        queries = [item["content"] for item in batch[:40]]
        vectors = m._embed(queries)
        filters = [Filters(kinds=(k,)) for k in ("fact", "lesson")] * 20
        store = m._store
        with store.transaction(write=False):
            many = store.knn_many(vectors, 6, filters)
            floored = store.knn_many(vectors, 6, filters, min_similarity=0.8)
            one = [store.knn(v, 6, f) for v, f in zip(vectors, filters)]
        for a, b, c in zip(many, one, floored):
            assert [s for s, _ in a] == [s for s, _ in b]
            assert [d for _, d in a] == pytest.approx([d for _, d in b], abs=1e-5)
            assert [s for s, _ in c] == [s for s, d in b if 1 - d >= 0.8]


@pytest.mark.parametrize("layout_changes", [0, 10**9], ids=["layout-remade", "layout-kept"])
def test_partitioned_large_store_decides_alike(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, layout_changes: int
) -> None:
    """In a store with a partition (sqlite_parts), each check reaches only its vector's
    nearest partitions, in the store and among the batch's own memories alike: the batch
    still decides every item as one store after another does. Eight partitions of which two
    are reached make the partition matter in a store this small. The index's copy in
    partition order is made again after every few writes, or never (the rows written since are
    then looked up one by one)."""
    from memento.store import sqlite_parts

    monkeypatch.setattr(sqlite_parts, "LAYOUT_CHANGES", layout_changes)
    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 1)
    monkeypatch.setattr(sqlite_parts, "PARTS", 8)
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 4)
    monkeypatch.setattr(sqlite_parts, "PROBE", 2)
    decided = _compare(tmp_path, embedder)
    for name in ("one-by-one.db", "batch.db"):
        with Memory(path=tmp_path / name, embedder=embedder) as m:
            assert m.conn.execute("SELECT count(*) FROM memory_parts").fetchone()[0] == 8
            unassigned = "SELECT count(*) FROM memory_bits WHERE part IS NULL AND bits IS NOT NULL"
            assert m.conn.execute(unassigned).fetchone()[0] == 0
    # the same items into a store without a partition: some check found more there
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 10**9)
    (tmp_path / "whole").mkdir()
    whole = _compare(tmp_path / "whole", embedder)
    assert decided != whole
    assert sum(len(a[5]) for a in decided) < sum(len(a[5]) for a in whole)
    assert sum(1 for a in decided if a[0] == "deduplicated") > 10


def test_a_check_reaches_every_allowed_memory_of_its_partitions_and_no_other(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's copy in partition order keeps each partition's facts, events and lessons
    apart, so a check of facts reads the facts alone: for every kind filter, the memories a
    check reaches (its pool made as large as they are) are exactly those the table says are
    live, of those kinds, not archived and in the partitions asked for or in none, each
    once; rows written or changed since the copy was made, rows changed inside the
    transaction, and rows waiting to be placed in a partition included."""
    from memento.store import sqlite_parts

    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 1)
    monkeypatch.setattr(sqlite_parts, "PARTS", 8)
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 4)
    monkeypatch.setattr(sqlite_parts, "LAYOUT_CHANGES", 10**9)  # keep the first copy
    first, batch = _items()
    with Memory(path=tmp_path / "m.db", embedder=embedder, project=tmp_path) as m:
        m.store_many(first)
        m.store_many(batch[:150])  # its write trains the partition first
        vectors = m._embed(["The billing worker runs on port 8001", "Run ruff first"])
        wanted = [frozenset({0, 3}), frozenset({5, 7})]  # 7: the highest
        kinds_asked = [("fact",), ("event",), ("lesson",), ("fact", "lesson"), ()]
        store = m._store
        index = sqlite_index.for_connection(store.conn)

        def check() -> None:
            live = "SELECT seq, kind, part FROM memory_bits WHERE bits IS NOT NULL AND NOT archived"
            rows = store.conn.execute(live).fetchall()
            for kinds in kinds_asked:
                pools = index.candidates_many(
                    store.conn, vectors, Filters(kinds=kinds), 10**9, None, reach=wanted,
                    least=10**9,
                )  # fmt: skip
                codes = [sqlite_index.KIND_CODES[k] for k in kinds or sqlite_index.KIND_CODES]
                for pool, parts_asked in zip(pools, wanted):
                    assert len(pool) == len(set(pool)), kinds
                    assert set(pool) == {
                        s for s, k, p in rows if k in codes and (p is None or p in parts_asked)
                    }, kinds

        assert store.conn.execute("SELECT count(*) FROM memory_parts").fetchone()[0] == 8
        index.layout = None  # made again from every kind stored so far
        with store.transaction(write=False):
            check()
            # the check of facts gathers facts only (the other kinds' runs are not read)
            assert index.layout is not None
            mask = index._allowed(index._columns(), Filters(kinds=("fact",)), None, None)
            gathered, _, _ = index.layout.reached(
                index, wanted[0], mask, index.layout.valid(mask), [0]
            )
            kind_of = dict(store.conn.execute("SELECT seq, kind FROM memory_bits").fetchall())
            assert len(gathered) > 10
            assert {kind_of[s] for s in gathered.tolist()} == {0}
        # the copy in partition order now exists; rows written after it are looked up
        m.store_many(batch[150:])
        m.forget(m.recall("port", limit=1)[0].id)
        # rows changed after it was made (another text, another kind) as they are now
        changed = [r.id for r in m.recall("the team owns", limit=3)]
        m.update(changed[1], content="The billing worker moved to port 9100 last spring")
        m.update(changed[2], kind="event" if m.get(changed[2]).kind != "event" else "fact")
        with store.transaction(write=False):
            check()
            assert index.layout.size < len(index.seqs) and index.layout.count > 0
        # inside a write transaction, its own changes overlay the copy
        fact = "SELECT min(seq) FROM memory_bits WHERE kind = 0 AND bits IS NOT NULL"
        with store.transaction(write=True):
            store.update(store.conn.execute(fact).fetchone()[0], {"kind": "lesson"})
            check()
        # a partition made again: the stored rows wait to be placed, in none, reached by all
        with store.transaction(write=True):
            centroids = sqlite_parts.centroids(store.conn)
            assert centroids is not None
            sqlite_parts.install(store.conn, centroids)
        unplaced = "SELECT count(*) FROM memory_bits WHERE part IS NULL AND bits IS NOT NULL"
        assert store.conn.execute(unplaced).fetchone()[0] > 200
        with store.transaction(write=False):
            check()


FILLER = [
    "The nightly backup job keeps 14 days of snapshots",
    "The mail relay rejects attachments over 25 MB",
    "The image resizer caches thumbnails for a week",
    "The chat bot answers in English and German",
    "The video encoder uses two passes for 4K",
    "The audit log is shipped to cold storage monthly",
    "The CDN edge purges its cache on every deploy",
    "The report generator runs at 06:00 UTC",
    "The feature flag service is read-only on weekends",
    "The export service writes CSV files in UTF-8",
    "The job scheduler retries a failed job three times",
]
PORT = "The billing worker runs on port 8001"


def _spy_on_checks(m: Memory, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each ``knn_many`` call of the store ran inside a write transaction."""
    import apsw

    calls: list[bool] = []
    real = m._store.knn_many

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(m._store.conn.txn_state("main") == apsw.SQLITE_TXN_WRITE)
        return real(*args, **kwargs)

    monkeypatch.setattr(m._store, "knn_many", spy)
    return calls


@pytest.mark.parametrize(
    "meanwhile", ["nothing", "another writer forgets", "another writer stores"]
)
def test_a_check_made_while_the_batch_embeds_is_made_again_if_the_store_changed(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """In a store checked through its partition, store_many checks its first parts while
    the next ones embed, before its write transaction. When another writer changes the store
    between that check and the write, the check is made again inside the transaction: a
    restated fact is not merged into a memory just forgotten, and is merged into one just
    stored; when nothing changed, no check runs inside the transaction."""
    from memento.memory import facade
    from memento.store import sqlite_parts

    monkeypatch.setattr(facade, "EMBED_AHEAD", 4)
    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 60)  # a partition of 4, every one reached
    monkeypatch.setattr(sqlite_parts, "PARTS", 4)
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 4)
    monkeypatch.setattr(sqlite_parts, "PROBE", 4)
    path = tmp_path / "m.db"
    with Memory(path=path, embedder=embedder) as m, Memory(path=path, embedder=embedder) as other:
        m.store_many([{"content": f"Standup note {n}", "kind": "event"} for n in range(70)])
        m.store("The team meets on Tuesdays")  # the partition is trained before this write
        assert sqlite_parts.generation(m.conn) is not None
        if meanwhile != "another writer stores":
            port = m.store(PORT)
        checks = _spy_on_checks(m, monkeypatch)
        real = m._embed_checking

        def then_another_writer(items: Any) -> Any:
            out = real(items)
            if meanwhile == "another writer forgets":
                other.forget(port.id)
            elif meanwhile == "another writer stores":
                other.store(PORT)
            return out

        monkeypatch.setattr(m, "_embed_checking", then_another_writer)
        records = m.store_many([{"content": t} for t in [*FILLER[:5], PORT, *FILLER[5:]]])
        assert [r.action for r in records[:5] + records[6:]] == ["created"] * len(FILLER)
        landed = records[5]
        if meanwhile == "another writer forgets":
            assert landed.action == "created" and landed.id != port.id
            assert m.get(landed.id).content == PORT
        elif meanwhile == "another writer stores":
            assert landed.action == "deduplicated"
            assert [r.content for r in other.recall(PORT, limit=3)].count(PORT) == 1
        else:
            assert landed.action == "deduplicated" and landed.id == port.id
        # three parts of four checked ahead, then one check inside the write if needed
        assert checks[:3] == [False, False, False]
        assert checks[3:] == ([] if meanwhile == "nothing" else [True])
