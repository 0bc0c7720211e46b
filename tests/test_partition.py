"""The partition of a large SQLite store (memento/store/sqlite_parts.py): trained by the first
write once a store reaches the size where the near-duplicate check uses it, kept complete by
every later write, seen by other connections, dropped with the vectors, and never trained by
a client that may not write. The store size where it starts and the number of partitions
are lowered so that a few hundred real sentences make a partitioned store."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from memento import AccessError, Memory
from memento.embedder import Embedder
from memento.projects import GLOBAL
from memento.store import Filters, sqlite_index, sqlite_parts
from tests.conftest import HashEmbedder
from tests.test_batch_dedup import SUBJECTS

FACTS = [
    f"{subject.capitalize()} {what}"
    for subject in SUBJECTS
    for what in (
        "listens on port 8443",
        "is owned by the platform team",
        "is deployed every Tuesday",
        "logs to the central Loki cluster",
        "was rewritten in Go last year",
    )
]


@pytest.fixture
def small_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 60)
    monkeypatch.setattr(sqlite_parts, "PARTS", 8)
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 4)
    monkeypatch.setattr(sqlite_parts, "PROBE", 2)


def _parts(m: Memory) -> dict[int, int | None]:
    return dict(m.conn.execute("SELECT seq, part FROM memory_bits WHERE bits IS NOT NULL"))


def test_a_store_reaching_the_size_is_partitioned_and_stays_so(
    tmp_path: Path, embedder: Embedder, small_scale: None
) -> None:
    path = tmp_path / "m.db"
    with Memory(path=path, embedder=embedder) as m, Memory(path=path, embedder=embedder) as seen:
        m.store_many([{"content": f} for f in FACTS[:50]])
        assert sqlite_parts.generation(m.conn) is None  # below the size: no partition
        m.store_many([{"content": f} for f in FACTS[50:70]])
        # another connection holding the index from before the partition
        assert seen.recall("which port does the API server use", limit=1)
        m.store("The API server listens on port 8443")  # the first write at 70 memories
        centroids = sqlite_parts.centroids(m.conn)
        assert centroids is not None and centroids.shape == (8, 384)
        parts = _parts(m)
        assert len(parts) == 70 and None not in parts.values() and len(set(parts.values())) > 1
        # later writes land in their nearest partition
        new = m.store_many([{"content": f} for f in FACTS[70:]])
        assert all(r.action == "created" for r in new)
        vectors = m._store.vectors([m._store.find_by_id(r.id)[0].seq for r in new])
        for seq, vector in vectors.items():
            assert _parts(m)[seq] == sqlite_parts.part_of(m.conn, vector)
        # a restatement is still caught through the partition, and a new related fact listed
        again = m.store("the API server listens on port 8443")  # said again
        assert again.action == "deduplicated"
        related = m.store("The API server listens on port 9443")
        assert related.action == "created" and related.related
        # the other connection reads the partition and the rows' parts again
        assert seen.store("The api server LISTENS on port 8443").action == "deduplicated"
        index = sqlite_index.for_connection(seen.conn)
        assert index.generation == sqlite_parts.generation(m.conn)
        assert sorted(index.part.tolist()) == sorted(_parts(m).values())
    # another process opens the file: the same partition, the same answers
    with Memory(path=path, embedder=embedder) as other:
        assert (sqlite_parts.centroids(other.conn) == centroids).all()
        assert other.store("THE API SERVER LISTENS ON PORT 8443").action == "deduplicated"


def test_training_is_deterministic(
    tmp_path: Path, embedder: Embedder, small_scale: None
) -> None:
    """Two stores holding the same vectors get the same centroids, so their checks agree."""
    found = []
    for name in ("a.db", "b.db"):
        with Memory(path=tmp_path / name, embedder=embedder) as m:
            m.store_many([{"content": f} for f in FACTS[:80]])
            m.store("One more fact to train on")
            found.append((sqlite_parts.centroids(m.conn), _parts(m)))
    assert (found[0][0] == found[1][0]).all() and found[0][1] == found[1][1]


def test_a_dense_topic_is_spread_over_several_partitions() -> None:
    """While training, a centroid takes at most ``ROOM`` x the mean of the rows (but for
    rows with no room nearer), so the memories of a dense topic fill several partitions
    and a check there reaches fewer of them; plain k-means leaves one partition of over 3x
    the mean there. Vectors: 2,000 close to one topic (a store mostly about one subject),
    50 close to each of 7 others."""
    import numpy as np

    rng = np.random.default_rng(0)
    topics = rng.standard_normal((8, 384))
    rows = [
        topic + rng.standard_normal((size, 384)) * 0.06
        for topic, size in zip(topics, [2_000] + [50] * 7)
    ]
    sample = sqlite_parts._unit(np.concatenate(rows).astype(np.float32))
    parts = 32
    mean = len(sample) / parts

    def sizes(room: float | None) -> Any:
        centroids = sqlite_parts.kmeans(sample, parts, room=room)
        # the rows placed by cosine alone, as a store places them
        return np.bincount(np.argmax(sample @ centroids.T, axis=1), minlength=parts)

    plain, even = sizes(None), sizes(sqlite_parts.ROOM)
    assert plain.max() > 3 * mean
    assert even.max() <= 1.1 * sqlite_parts.ROOM * mean


def test_a_read_only_client_never_trains_one(
    tmp_path: Path, embedder: Embedder, small_scale: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    with Memory(path=path, embedder=embedder) as m:
        monkeypatch.setattr(sqlite_index, "MIN_ROWS", 10**9)  # filled without a partition
        m.store_many([{"content": f} for f in FACTS[:80]])
        _, token = m.create_token("reader", read_only=True)
        monkeypatch.setattr(sqlite_index, "MIN_ROWS", 60)
        reader = m.granted(m.check_token(token), None)
        with pytest.raises(AccessError, match="read-only"):
            reader.store("The API server listens on port 8443")
        assert sqlite_parts.generation(m.conn) is None
        assert m.conn.execute("SELECT count(*) FROM memory_parts").fetchone()[0] == 0
        assert m.stats()["total"] == 80


def test_vectors_of_another_dimension_drop_the_partition(
    tmp_path: Path, embedder: Embedder, small_scale: None
) -> None:
    """``reembed`` to another model replaces the vector table: the old centroids cannot place
    the new vectors, so the partition goes with them (the next write at scale trains one)."""
    with Memory(path=tmp_path / "m.db", embedder=embedder) as m:
        m.store_many([{"content": f} for f in FACTS[:80]])
        m.store("One more fact to train on")
        assert sqlite_parts.generation(m.conn) is not None
        with m._store.transaction():
            m._store.recreate_vectors(256)
        assert sqlite_parts.generation(m.conn) is None
        assert m.conn.execute("SELECT count(*) FROM memory_parts").fetchone()[0] == 0
        assert m.conn.execute(
            "SELECT count(*) FROM memory_bits WHERE part IS NOT NULL"
        ).fetchone()[0] == 0


def test_another_models_vectors_get_a_partition_of_their_own(
    tmp_path: Path, embedder: Embedder, small_scale: None
) -> None:
    """After ``reembed`` to another model of the same dimension the centroids describe the
    old model's vectors: the check searches the whole store until the next write trains a
    partition on the new ones."""
    with Memory(path=tmp_path / "m.db", embedder=embedder) as m:
        m.store_many([{"content": f} for f in FACTS[:80]])
        m.store("One more fact to train on")
        vector = m._embed(["The API server listens on port 8443"])
        first = sqlite_parts.generation(m.conn)
        assert m._store.regions(vector) is not None
        with m._store.transaction():
            m._store.set_setting("embedding_model", "another/model-384")  # as reembed ends
        assert m._store.regions(vector) is None
        m._store.prepare_writes()
        assert sqlite_parts.generation(m.conn) not in (None, first)
        assert m._store.get_setting(sqlite_parts.MODEL_SETTING) == "another/model-384"
        assert m._store.regions(vector) is not None


def test_too_few_vectors_are_not_counted_again_until_the_store_doubles(
    tmp_path: Path, embedder: Embedder, small_scale: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store whose seqs passed the size but that holds fewer vectors than the training
    needs (80 here) tries once, then again only at twice that size."""
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 10)
    with Memory(path=tmp_path / "m.db", embedder=embedder) as m:
        for fact in FACTS[:61]:
            m.store(fact)  # the 61st write finds 60 memories: too few to train on
        assert m._store.get_setting(sqlite_parts.TOO_FEW_SETTING) == "60"
        m.store_many([{"content": f} for f in FACTS[61:120]])
        assert sqlite_parts.generation(m.conn) is None  # 119 < 2 x 60: not tried again
        m.store("The 121st memory trains the partition")
        assert sqlite_parts.generation(m.conn) is not None
        assert m._store.get_setting(sqlite_parts.TOO_FEW_SETTING) is None


def test_placing_the_stored_rows_resumes_after_an_interruption(
    tmp_path: Path, embedder: Embedder, small_scale: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows stored before the partition are placed a transaction at a time; a process
    that stops half-way leaves the rest to the next write, by any process, and checks reach
    the unplaced rows meanwhile."""
    from memento.store import sqlite

    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 10**9)
    path = tmp_path / "m.db"
    with Memory(path=path, embedder=embedder) as m:
        m.store_many([{"content": f} for f in FACTS[:100]])
        monkeypatch.setattr(sqlite_index, "MIN_ROWS", 60)
        monkeypatch.setattr(sqlite_parts, "PLACE_CHUNK", 30)
        with sqlite.transaction(m.conn, write=False):
            matrix = sqlite_parts.train(m.conn)
        with sqlite.transaction(m.conn):
            sqlite_parts.install(m.conn, matrix)
        with sqlite.transaction(m.conn):
            sqlite_parts.place_some(m.conn)  # then the process "stops"
        installed = sqlite_parts.generation(m.conn)
        assert sum(p is not None for p in _parts(m).values()) == 30
        # a check reaches the rows not placed yet (the 41st, here)
        (vector,) = m._embed(["the mail relay listens on port 8443"])
        where = Filters(kinds=("fact",), scopes=(GLOBAL,))
        (hits,) = m._store.knn_many([vector], 1, [where], min_similarity=0.97)
        assert [seq for seq, _ in hits] == [41] and _parts(m)[41] is None
    with Memory(path=path, embedder=embedder) as m:
        assert m.store("the mail relay listens on port 8443").action == "deduplicated"
        assert None not in _parts(m).values() and len(_parts(m)) == 100
        assert not sqlite_parts.placing(m.conn)
        assert sqlite_parts.generation(m.conn) not in (None, installed)


def test_an_idle_connection_sees_a_partition_trained_again(
    tmp_path: Path, embedder: Embedder, small_scale: None
) -> None:
    """Dropped and trained again (a reembed there and back), the partition gets a name no
    earlier one had: a connection that cached the old centroids reads the new ones."""
    path = tmp_path / "m.db"
    with Memory(path=path, embedder=embedder) as m, Memory(path=path, embedder=embedder) as idle:
        m.store_many([{"content": f} for f in FACTS[:80]])
        m.store("One more fact to train on")
        old = sqlite_parts.centroids(idle.conn)
        assert old is not None
        with m._store.transaction():
            sqlite_parts.drop(m.conn)
        m.store_many([{"content": f"{f}, said differently"} for f in FACTS[80:]])
        new = sqlite_parts.centroids(m.conn)
        assert new is not None and not (new == old).all()
        assert (sqlite_parts.centroids(idle.conn) == new).all()


class _ChosenVectors(HashEmbedder):
    """A stand-in model for the index's mechanics: the texts of ``vectors`` get those
    vectors, every other text a pseudo-random unit vector (``HashEmbedder``)."""

    def __init__(self, vectors: dict[str, Any]) -> None:
        super().__init__(name="test-chosen")
        self.vectors = vectors

    def embed(self, texts, batch_size: int = 32):  # type: ignore[no-untyped-def]
        out = super().embed(texts, batch_size)
        for i, text in enumerate(texts):
            if text in self.vectors:
                out[i] = self.vectors[text]
        return out


def _misleading_vectors() -> dict[str, Any]:
    """Unit vectors for a new fact and the stored facts its sign bits mislead about: twelve
    decoys share its signs on its 376 small dimensions and oppose it on its 8 large ones
    (cosine -0.54, Hamming distance 8-19, each with large values of its own so that none
    is a near duplicate of another), and a related fact shares its large dimensions and 3
    in 4 of its small ones (cosine 0.95, distance 94; a random fact's is ~190)."""
    import numpy as np

    rng = np.random.default_rng(5)
    signs = rng.choice([-1.0, 1.0], 384)
    query = np.where(np.arange(384) < 8, 1.0, 0.05) * signs
    close = query.copy()
    close[8::4] *= -1  # a quarter of the small dimensions flipped
    chosen = {"the new fact": query, "the related fact": close}
    for n in range(12):
        decoy = query.copy()
        decoy[:8] *= -1
        own = slice(8 + 8 * n, 16 + 8 * n)  # large values of its own: no decoy repeats another
        decoy[own] = signs[own]
        decoy[200 : 200 + n] *= -1  # distinct distances, 8 to 19
        chosen[f"decoy {n}"] = decoy
    chosen = {t: (v / np.linalg.norm(v)).astype(np.float32) for t, v in chosen.items()}
    cosine = float(chosen["the new fact"] @ chosen["the related fact"])
    assert cosine == pytest.approx(0.95, abs=0.01)
    return chosen


@pytest.fixture
def every_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partitioned store of ~80 memories in 4 partitions, every one reached by a check (so
    the pool alone decides), whose pool is 4 of the 16 nearest in Hamming distance."""
    monkeypatch.setattr(sqlite_index, "MIN_ROWS", 60)
    monkeypatch.setattr(sqlite_parts, "PARTS", 4)
    monkeypatch.setattr(sqlite_parts, "MIN_PER_PART", 4)
    monkeypatch.setattr(sqlite_parts, "PROBE", 4)
    monkeypatch.setattr(sqlite_parts, "MIN_POOL", 4)


def test_a_check_finds_a_related_fact_its_sign_bits_alone_would_rank_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every_partition: None
) -> None:
    """A check keeps the memories nearest to its vector in Hamming distance, WIDEN times its
    pool, then the pool of them whose sign bits best match its vector's values. With the
    decoys of ``_misleading_vectors`` stored, a store, one or in a batch, still lists the
    related fact as related, where the 4 nearest by Hamming distance (the pool here) would
    not hold it."""
    chosen = _misleading_vectors()
    model = _ChosenVectors(chosen)

    def related(name: str, batch: bool) -> list[str]:
        with Memory(path=tmp_path / name, embedder=model) as m:  # type: ignore[arg-type]
            m.store_many([{"content": f"filler {n}"} for n in range(70)])
            m.store_many([{"content": t} for t in chosen if t != "the new fact"])
            assert sqlite_parts.generation(m.conn) is not None
            stored = m.conn.execute("SELECT count(*) FROM memories").fetchone()[0]
            assert stored == 70 + len(chosen) - 1  # no decoy taken for another
            if batch:
                record = m.store_many([{"content": "the new fact"}, {"content": "filler 99"}])[0]
            else:
                record = m.store("the new fact")
            assert record.action == "created"
            return [r.content for r in record.related]

    assert related("one.db", batch=False) == ["the related fact"]
    assert related("batch.db", batch=True) == ["the related fact"]
    monkeypatch.setattr(sqlite_parts, "WIDEN", 1)  # the Hamming distance alone: the decoys
    assert related("hamming.db", batch=False) == []


@pytest.mark.parametrize("written", ["before", "in the transaction", "before, two forgotten"])
def test_a_checks_pool_is_the_best_scored_of_the_nearest(
    tmp_path: Path, every_partition: None, written: str
) -> None:
    """The pool a check re-ranks is the related fact and the three decoys of
    ``_misleading_vectors`` that score best (decoy n's score falls with n) out of the 16
    nearest in Hamming distance, whether those rows were stored before or written by the
    open write transaction (the check then takes them from the transaction's own read).
    Forgotten decoys, the nearest of all, are never in it: the next best take their place."""
    from datetime import timedelta

    from memento.dates import utcnow
    from memento.ids import new_id
    from memento.store import NewMemory
    from memento.store.sqlite import scope_codes

    chosen = _misleading_vectors()
    model = _ChosenVectors(chosen)
    facts = Filters(kinds=("fact",), scopes=(GLOBAL,))
    with Memory(path=tmp_path / "m.db", embedder=model) as m:  # type: ignore[arg-type]
        m.store_many([{"content": f"filler {n}"} for n in range(70)])
        m.store("one more filler")  # the partition is trained before this write
        store, now = m._store, utcnow()
        texts = [t for t in chosen if t != "the new fact"]
        if written.startswith("before"):
            stored = m.store_many([{"content": t} for t in texts])
        expected = {"the related fact", "decoy 0", "decoy 1", "decoy 2"}
        if written == "before, two forgotten":
            for record in stored[1:3]:  # decoys 0 and 1
                m.forget(record.id)
            expected = {"the related fact", "decoy 2", "decoy 3", "decoy 4"}
        # a read transaction keeps the rows stored before in the index's copy; a write
        # transaction overlays the rows it wrote (or that are newer than the copy) instead
        with store.transaction(write=written == "in the transaction"):
            if written == "in the transaction":
                for n, text in enumerate(texts):
                    row = NewMemory(
                        id=new_id(), content=text, kind="fact", subject_key=None,
                        importance=0.5, metadata={}, source="test",
                        created_at=now + timedelta(seconds=n), updated_at=now,
                    )  # fmt: skip
                    store.insert(row, chosen[text].tobytes())
            vector = chosen["the new fact"].tobytes()
            [(_, reach)] = store.regions([vector])
            index = sqlite_index.for_connection(store.conn)
            if written == "before, two forgotten":
                index.layout = None  # made again: the forgotten decoys lie in it, not allowed
            [pool] = index.candidates_many(
                store.conn, [vector], facts, sqlite_parts.POOL, None,
                scope_codes(store.conn, facts), reach=[reach], least=4,
            )  # fmt: skip
            contents = {row.content for row in store.fetch(pool).values()}
            assert contents == expected
            hits = store.knn_many([vector], 4, [facts], min_similarity=0.65)[0]
            assert [store.fetch([s])[s].content for s, _ in hits] == ["the related fact"]


@pytest.mark.parametrize("dimension", [384, 100])
def test_the_score_is_the_vectors_dot_product_with_the_sign_bits(
    dimension: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The score that picks a check's pool is the query's dot product with each memory's
    signs as +1/-1, computed from the bits where they differ from the query's, for the bits
    as the index packs them (the last word padded when the dimension is not a multiple of
    64), the query taken as a unit vector whatever its length (a model may return others);
    the Hamming distance is the count of those bits."""
    import numpy as np

    rng = np.random.default_rng(dimension)
    stored = rng.standard_normal((40, dimension)).astype(np.float32)
    query = rng.standard_normal(dimension).astype(np.float32)
    words = np.stack(
        [sqlite_index._words(sqlite_index.bits_of(row.tobytes())) for row in stored], axis=1
    )
    unit = query.astype(np.float64) / np.linalg.norm(query)
    expected = np.where(stored > 0, 1.0, -1.0) @ unit
    own = sqlite_index._words(sqlite_index.bits_of(query.tobytes()))
    hamming = ((stored > 0) != (query > 0)).sum(axis=1).tolist()
    # numpy without bitwise_count (before 2.0) counts through a table; the index's copy in
    # partition order holds its columns in Fortran order, as a gather of columns makes them
    older = types.SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if n != "bitwise_count"})
    monkeypatch.setattr(sqlite_index, "_POPCOUNT8", sqlite_index._popcount_table())
    for numpy in (np, older):
        for order in ("C", "F"):
            differing = np.array(words, order=order)
            distances = sqlite_index._differences(numpy, differing, own)
            assert distances.tolist() == hamming, (numpy is np, order)
            assert (differing == words ^ own[:, None]).all()
    for length in (1e-8, 1.0, 1e4):  # the same scores for a very short or long vector
        vector = (unit * length).astype(np.float32).tobytes()
        table = sqlite_index._sign_table(np, vector, words.shape[0])
        scores = sqlite_index._sign_scores(np, table, differing) / sqlite_index.SIGN_SCALE
        assert scores == pytest.approx(expected, abs=dimension * 2**-20)
