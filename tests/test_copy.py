"""`memento copy SRC DST`: a whole store into another, losslessly and idempotently: between
real SQLite files, and from SQLite to a real PostgreSQL server and back (the same code runs
through the Store interface for any backend)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from memento import DatabaseError, InvalidInputError, Memory, cli
from memento.embedder import Embedder
from memento.memory.copy import copy_store
from tests.conftest import HashEmbedder, query, shown, with_password


@pytest.fixture(autouse=True)
def _one_model(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)


def fill(path: Path, embedder: object, project: Path) -> dict[str, str]:
    """A store with a bit of everything a copy must carry: versions (an upsert and an
    update), an archived memory, a project scope, metadata, importance, source, an old
    created_at."""
    project.mkdir(exist_ok=True)
    with Memory(path, embedder=embedder) as m:  # type: ignore[arg-type]
        theme = m.store("I prefer dark mode in editors", subject_key="user.theme", importance=0.8)
        m.store("I prefer light mode in editors", subject_key="user.theme", importance=0.8)
        db = m.store(
            "The shop uses PostgreSQL 16 for orders",
            subject_key="project.shop.db",
            scope=str(project),
            metadata={"ticket": "OPS-7", "nested": {"a": [1, 2]}},
            source="claude-code",
        )
        m.update(db.id, content="The shop uses PostgreSQL 17 for orders")
        old = m.store("The staging server is called apollo", subject_key="infra.staging")
        m.forget(old.id)
        event = m.store(
            "Deployed release 2.3 to production",
            kind="event",
            created_at="2026-11-20T09:30:00Z",
            importance=0.3,
        )
        lesson = m.store("Run the migrations before deploying the API", kind="lesson")
    return {"theme": theme.id, "db": db.id, "old": old.id, "event": event.id,
            "lesson": lesson.id}  # fmt: skip


def snapshot(path: Path, embedder: object) -> dict[str, object]:
    """Everything a user can read of a store: the export (histories included), the
    projects, and every stored vector by id."""
    with Memory(path, embedder=embedder) as m:  # type: ignore[arg-type]
        rows = list(m.backend.iter_rows())
        vectors = m.backend.vectors([r.seq for r in rows])
        return {
            "export": list(m.export()),
            "projects": [(p["id"], p["name"], p["root"]) for p in m.backend.projects()],
            "vectors": {r.id: vectors[r.seq] for r in rows},
            "model": m.backend.get_setting("embedding_model"),
        }


def test_copy_into_a_new_file_is_lossless_and_recall_works_on_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "copies" / "dst.db"
    ids = fill(src, embedder, tmp_path / "shop")
    result = copy_store(src, dst)
    assert (result.added, result.updated, result.unchanged, result.kept) == (5, 0, 0, 0)
    assert result.created and result.versions == 2 and result.projects == 1
    assert result.stale == 0 and result.model == embedder.name
    before, after = snapshot(src, embedder), snapshot(dst, embedder)
    assert after == before
    with Memory(dst, embedder=embedder) as m:
        [old] = [r for r in m.export() if r["id"] == ids["old"]]
        assert old["archived_at"] is not None
        history = m.history(ids["theme"])
        assert [v.content for v in history] == [
            "I prefer dark mode in editors",
            "I prefer light mode in editors",
        ]
        assert [v.replaced_by for v in history] == ["upsert", None]
        hits = m.recall("which database stores the orders", all_projects=True)
        assert hits[0].id == ids["db"] and hits[0].project == "shop"
        assert m.recall("what theme does the user like")[0].id == ids["theme"]
    with Memory(src, embedder=embedder) as m:
        scores = [h.score for h in m.recall("which database stores the orders")]
    with Memory(dst, embedder=embedder) as m:
        assert [h.score for h in m.recall("which database stores the orders")] == scores


def test_copying_twice_adds_nothing_and_a_third_copy_brings_the_changes(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    ids = fill(src, hash_embedder, tmp_path / "shop")
    copy_store(src, dst)
    first = snapshot(dst, hash_embedder)
    again = copy_store(src, dst)
    assert (again.added, again.updated, again.unchanged, again.versions) == (0, 0, 5, 0)
    assert not again.created
    assert snapshot(dst, hash_embedder) == first
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.store("I prefer solarized in editors", subject_key="user.theme", importance=0.8)
        m.forget(ids["lesson"])
        m.restore(ids["old"])
        m.store("The CI runs on GitHub Actions")
    third = copy_store(src, dst)
    assert (third.added, third.updated, third.unchanged, third.kept) == (1, 3, 2, 0)
    assert third.versions == 1  # the theme's third version; archive/restore keep none
    assert snapshot(dst, hash_embedder) == snapshot(src, hash_embedder)


def test_a_memory_changed_later_in_the_target_is_kept_and_never_lost(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    ids = fill(src, hash_embedder, tmp_path / "shop")
    copy_store(src, dst)
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.update(ids["event"], content="Deployed release 2.4 to production")
    result = copy_store(src, dst)
    assert result.kept == 1 and result.updated == 0
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.get(ids["event"]).content == "Deployed release 2.4 to production"
    # then the source changes it later still: the target takes that, and keeps its own
    # state as a version
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.update(ids["event"], content="Deployed release 3.0 to production")
    result = copy_store(src, dst)
    assert result.updated == 1
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert [v.content for v in m.history(ids["event"])] == [
            "Deployed release 2.3 to production",
            "Deployed release 2.4 to production",
            "Deployed release 3.0 to production",
        ]


def test_copy_into_a_populated_store_keeps_its_memories(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    ids = fill(src, hash_embedder, tmp_path / "shop")
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        mine = m.store("The user writes in British English", subject_key="user.spelling")
        theirs = m.store("I prefer a high-contrast theme", subject_key="user.theme")
    result = copy_store(src, dst)
    assert result.added == 5 and result.archived == 1
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.get(mine.id).content == "The user writes in British English"
        # the target's live memory keeps the key; the copied one arrives archived
        assert m.get(theirs.id).archived_at is None
        assert m.get(ids["theme"]).archived_at is not None
        assert m.stats(all_projects=True)["total"] == 7
    assert copy_store(src, dst).added == 0


def test_a_memory_written_to_the_source_during_the_copy_is_copied_with_its_project(
    tmp_path: Path, hash_embedder: HashEmbedder, db_location: str | Path
) -> None:
    """On either backend as the source (each batch is read in a snapshot of its own)."""
    src, dst = db_location, tmp_path / "dst.db"
    fill(src, hash_embedder, tmp_path / "shop")
    (tmp_path / "billing").mkdir()
    seen: list[tuple[int, int]] = []
    with Memory(src, embedder=hash_embedder) as writer:  # type: ignore[arg-type]

        def progress(done: int, total: int) -> None:
            seen.append((done, total))
            if done == 2:  # after the first batch, another process writes
                writer.store("Invoices are numbered per year", scope=str(tmp_path / "billing"))

        result = copy_store(src, dst, batch_size=2, progress=progress)
    assert seen[0] == (0, 5) and result.added == 6 and result.projects == 2
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        [invoices] = [r for r in m.export() if r["content"].startswith("Invoices")]
        assert invoices["project"] == "billing"


def test_vectors_of_another_model_are_copied_and_counted_stale(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    fill(src, hash_embedder, tmp_path / "shop")
    other = HashEmbedder(name="other-model")
    with Memory(dst, embedder=other) as m:  # type: ignore[arg-type]
        m.store("a memory of the target")
    result = copy_store(src, dst)
    assert result.stale == 5 and result.model == "other-model"
    with Memory(dst, embedder=other) as m:  # type: ignore[arg-type]
        assert m.reembed() == 5
        assert m.backend.count_stale_vectors("other-model") == 0


def test_refusals_leave_both_stores_untouched(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    src = tmp_path / "src.db"
    fill(src, hash_embedder, tmp_path / "shop")
    with pytest.raises(InvalidInputError, match="the same store"):
        copy_store(src, src)
    (tmp_path / "link.db").symlink_to(src)
    with pytest.raises(InvalidInputError, match="the same store"):
        copy_store(src, tmp_path / "link.db")
    with pytest.raises(DatabaseError, match=r"no memento database at .*missing\.db"):
        copy_store(tmp_path / "missing.db", tmp_path / "new.db")
    assert not (tmp_path / "new.db").exists()
    small = tmp_path / "small.db"
    with Memory(small, embedder=HashEmbedder(dimension=16)) as m:  # type: ignore[arg-type]
        m.store("a memory of sixteen dimensions")
    with pytest.raises(DatabaseError, match=r"vectors of 16 dimensions, .* of 384"):
        copy_store(src, small)
    with Memory(small, embedder=HashEmbedder(dimension=16)) as m:  # type: ignore[arg-type]
        assert m.stats()["total"] == 1
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(DatabaseError, match=r"notes\.txt is not a SQLite database"):
        copy_store(tmp_path / "notes.txt", tmp_path / "new.db")
    with pytest.raises(InvalidInputError, match="give the target store"):
        copy_store(src, " ")


def test_vectors_come_from_the_vector_table_when_the_index_lacks_them(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    path = tmp_path / "src.db"
    with Memory(path, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        record = m.store("a memory")
        seq = m.backend.find_by_id(record.id)[0].seq
        expected = m.backend.vectors([seq])[seq]
        m.conn.execute("DELETE FROM memory_bits")
        assert m.backend.vectors([seq, 999]) == {seq: expected}


def test_cli_copy_prints_one_line_and_errors_exit_1(tmp_path: Path, embedder: Embedder) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    fill(src, embedder, tmp_path / "shop")
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["copy", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Copied 5 memories from {src} to {dst} (new): 5 added; 2 earlier versions, 1 project\n"
    )
    assert result.stderr == ""  # no progress bar without a terminal
    result = runner.invoke(cli.cli, ["copy", str(src), str(dst)])
    assert result.stdout == f"Copied 5 memories from {src} to {dst}: 0 added, 5 unchanged\n"
    result = runner.invoke(cli.cli, ["copy", str(src), str(src)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the source and the target are the same store")
    assert result.stderr.count("\n") == 1
    result = runner.invoke(cli.cli, ["copy", str(tmp_path / "nope.db"), str(dst)])
    assert result.exit_code == 1 and "no memento database" in result.stderr
    assert runner.invoke(cli.cli, ["copy", str(src)]).exit_code == 2


def test_cli_copy_says_when_the_target_needs_reembed(
    tmp_path: Path, embedder: Embedder, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.store("made by the hash model")
    with Memory(dst, embedder=embedder) as m:
        m.store("made by the bundled model")
    result = CliRunner().invoke(cli.cli, ["copy", str(src), str(dst)])
    assert result.exit_code == 0
    assert result.stderr == (
        f"1 memory in {dst} has a vector of another model than {embedder.name}: run "
        f"`memento reembed --db {dst}`\n"
    )


def test_copying_again_after_reembedding_the_source_brings_the_new_vectors(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    fill(src, hash_embedder, tmp_path / "shop")
    other = HashEmbedder(name="other-model")
    with Memory(dst, embedder=other) as m:  # type: ignore[arg-type]
        m.store("a memory of the target")
    assert copy_store(src, dst).stale == 5
    with Memory(src, embedder=other) as m:  # type: ignore[arg-type]
        assert m.reembed() == 5  # the source moves to the target's model
    again = copy_store(src, dst)
    assert (again.updated, again.stale) == (5, 0)
    theirs, ours = snapshot(src, other)["vectors"], snapshot(dst, other)["vectors"]
    assert all(ours[memory_id] == vector for memory_id, vector in theirs.items())


def test_a_newer_source_state_whose_key_the_target_gave_to_another_memory_is_kept(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    ids = fill(src, hash_embedder, tmp_path / "shop")
    copy_store(src, dst)
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.forget(ids["theme"])
        holder = m.store("I prefer a sepia theme", subject_key="user.theme")
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.update(ids["theme"], importance=0.9)  # later than the target's forget
    result = copy_store(src, dst)
    assert result.kept == 1 and result.updated == 0
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.get(ids["theme"]).archived_at is not None
        assert m.get(holder.id).archived_at is None


def test_a_source_that_is_not_a_memento_store_or_lacks_a_vector_is_refused(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch(mode=0o600)
    with pytest.raises(DatabaseError, match=r"empty\.db is not a memento database"):
        copy_store(empty, tmp_path / "dst.db")
    src = tmp_path / "src.db"
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        first = m.store("a memory with its vector")
        lost = m.store("a memory whose vector was lost")
        seq = m.backend.find_by_id(lost.id)[0].seq
        m.conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (seq,))
        m.conn.execute("DELETE FROM memory_bits WHERE seq = ?", (seq,))
    with pytest.raises(DatabaseError, match=rf"memory {lost.id} in .* has no vector: run "
                       r"`memento reembed --all --db"):  # fmt: skip
        copy_store(src, tmp_path / "dst.db")
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.reembed(all=True)  # what the message says to do
    result = copy_store(src, tmp_path / "dst.db")
    assert result.added == 2
    with Memory(tmp_path / "dst.db", embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.get(first.id).content == "a memory with its vector"


# ---- between backends: SQLite -> PostgreSQL -> SQLite, on a real server --------------------


def fill_tricky(path: Path, embedder: object, root: Path) -> dict[str, str]:
    """``fill`` plus the values a backend could round off: importances that are not short
    decimals, odd microseconds, a timestamp far in the past, unicode and float metadata,
    and projects registered in an order their ids do not sort in."""
    ids = fill(path, embedder, root / "shop")
    for name in ("zeta", "alpha"):
        (root / name).mkdir(exist_ok=True)
    with Memory(path, embedder=embedder) as m:  # type: ignore[arg-type]
        zeta = m.store(
            "Zeta builds its docs with Sphinx",
            scope=str(root / "zeta"),
            importance=1 / 3,
            created_at="2026-11-21T10:11:12.345678Z",
            metadata={"note": "naïve café ☕ 日本", "ratio": 0.1 + 0.2, "big": 2**53 + 1},
        )
        alpha = m.store(
            "Alpha keeps its secrets in SOPS files",
            scope=str(root / "alpha"),
            importance=0.1 + 0.2,
            created_at="1970-01-01T00:00:00.000001Z",
            subject_key="project.alpha.secrets",
        )
        m.update(alpha.id, content="Alpha keeps its secrets in Vault", importance=0.7)
        m.forget(alpha.id)
    return {**ids, "zeta": zeta.id, "alpha": alpha.id}


def rows_of(location: str | Path, embedder: object) -> list[tuple[object, ...]]:
    """Every stored field of every memory and of each of its earlier versions, as the store
    gives them back (datetimes, floats, dicts: no rounding of a printed form)."""
    with Memory(location, embedder=embedder) as m:  # type: ignore[arg-type]
        rows = list(m.backend.iter_rows())
        versions = m.backend.versions([r.seq for r in rows])
        return [
            (
                replace(r, seq=0),
                [replace(v, seq=0) for v in versions.get(r.seq, [])],
            )
            for r in rows
        ]


QUESTIONS = [
    "which database stores the orders",
    "what theme does the user like",
    "how are the docs built",
    "where are secrets kept",
    "what happened in production",
]


def top_hits(location: str | Path, embedder: Embedder) -> list[list[tuple[str, float]]]:
    with Memory(location, embedder=embedder) as m:
        return [
            [(h.id, h.score) for h in m.recall(q, all_projects=True, include_archived=True)[:5]]
            for q in QUESTIONS
        ]


def test_sqlite_to_postgres_and_back_is_lossless_and_idempotent(
    tmp_path: Path, embedder: Embedder, postgres_url: str
) -> None:
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    ids = fill_tricky(src, embedder, tmp_path)

    there = copy_store(src, postgres_url)
    assert (there.added, there.versions, there.projects) == (7, 3, 3)
    assert there.created and there.stale == 0
    again = copy_store(src, postgres_url)
    assert (again.added, again.updated, again.unchanged, again.versions) == (0, 0, 7, 0)
    assert (again.projects, again.created) == (0, False)
    home = copy_store(postgres_url, back, batch_size=3)  # a snapshot per batch of three
    assert (home.added, home.versions, home.projects, home.created) == (7, 3, 3, True)
    assert copy_store(postgres_url, back).unchanged == 7

    expected = snapshot(src, embedder)
    for copy in (postgres_url, back):
        got = snapshot(copy, embedder)
        assert got["export"] == expected["export"]
        assert got["vectors"] == expected["vectors"]  # byte for byte
        assert got["model"] == expected["model"]
        # the same projects; the order they were registered in is not kept (a copy
        # registers them in one transaction)
        assert sorted(got["projects"]) == sorted(expected["projects"])  # type: ignore[arg-type]
        assert rows_of(copy, embedder) == rows_of(src, embedder)
    with Memory(postgres_url, embedder=embedder) as m:
        zeta = m.get(ids["zeta"])
        assert zeta.importance == 1 / 3
        assert zeta.created_at == datetime(2026, 11, 21, 10, 11, 12, 345678, timezone.utc)
        assert zeta.metadata == {"note": "naïve café ☕ 日本", "ratio": 0.1 + 0.2, "big": 2**53 + 1}
        alpha = m.get(ids["alpha"])
        assert alpha.archived_at is not None and alpha.project == "alpha"
        assert [v.importance for v in m.history(ids["alpha"])] == [0.1 + 0.2, 0.7]

    mine, theirs, ours = top_hits(src, embedder), top_hits(postgres_url, embedder), top_hits(
        back, embedder
    )
    for a, b, c in zip(mine, theirs, ours):
        assert [i for i, _ in a] == [i for i, _ in b] == [i for i, _ in c]
        assert [s for _, s in b] == pytest.approx([s for _, s in a], abs=1e-4)
        # SQLite to SQLite: the same numbers, but for recency, which moves on between two
        # recalls and can turn the sixth decimal of a rounded score (seen in a run)
        assert [s for _, s in c] == pytest.approx([s for _, s in a], abs=2e-6)
    assert mine[0][0][0] == ids["db"] and mine[2][0][0] == ids["zeta"]


@pytest.mark.parametrize("backend", ["postgres"])
def test_copy_rules_hold_with_a_postgres_target(
    tmp_path: Path, hash_embedder: HashEmbedder, db_location: str
) -> None:
    """A second copy, a newer source state, a target's later change and its own memories,
    with PostgreSQL as the target (the SQLite tests above run each alone)."""
    src, dst = tmp_path / "src.db", db_location
    ids = fill(src, hash_embedder, tmp_path / "shop")
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        mine = m.store("The user writes in British English", subject_key="user.spelling")
        theirs = m.store("I prefer a high-contrast theme", subject_key="user.theme")
    first = copy_store(src, dst)
    assert (first.added, first.archived, first.created) == (5, 1, False)
    assert copy_store(src, dst).unchanged == 5
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.get(theirs.id).archived_at is None  # the target's live memory keeps the key
        assert m.get(ids["theme"]).archived_at is not None
        m.update(ids["event"], content="Deployed release 2.4 to production")
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.update(ids["db"], content="The shop uses PostgreSQL 18 for orders")
        m.forget(ids["lesson"])
        m.restore(ids["old"])
    third = copy_store(src, dst)
    assert (third.added, third.updated, third.kept, third.unchanged) == (0, 3, 1, 1)
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.update(ids["event"], content="Deployed release 3.0 to production")
    assert copy_store(src, dst).updated == 1
    with Memory(dst, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.get(mine.id).content == "The user writes in British English"
        assert [v.content for v in m.history(ids["event"])] == [
            "Deployed release 2.3 to production",
            "Deployed release 2.4 to production",
            "Deployed release 3.0 to production",
        ]
        assert [v.content for v in m.history(ids["db"])][-1] == (
            "The shop uses PostgreSQL 18 for orders"
        )
        assert m.get(ids["lesson"]).archived_at is not None
        assert m.get(ids["old"]).archived_at is None


def test_postgres_to_postgres_and_the_same_database_named_twice(
    tmp_path: Path, hash_embedder: HashEmbedder, new_postgres_database: Callable[[], str]
) -> None:
    src, first, second = tmp_path / "src.db", new_postgres_database(), new_postgres_database()
    fill(src, hash_embedder, tmp_path / "shop")
    copy_store(src, first)
    result = copy_store(first, second, batch_size=2)
    assert (result.added, result.versions, result.projects) == (5, 2, 1)
    assert snapshot(second, hash_embedder) == snapshot(first, hash_embedder)
    for other_name in (first, with_password(first, "another-pw")):
        with pytest.raises(InvalidInputError, match="the same store"):
            copy_store(first, other_name)
    small, empty = new_postgres_database(), new_postgres_database()
    with Memory(small, embedder=HashEmbedder(dimension=16)) as m:  # type: ignore[arg-type]
        m.store("a memory of sixteen dimensions")
    with pytest.raises(DatabaseError, match=r"vectors of 16 dimensions, .* of 384"):
        copy_store(first, small)
    with Memory(small, embedder=HashEmbedder(dimension=16)) as m:  # type: ignore[arg-type]
        assert m.stats()["total"] == 1
    with pytest.raises(DatabaseError, match=r"no memento database at postgresql://"):
        copy_store(empty, tmp_path / "new.db")
    assert not (tmp_path / "new.db").exists()


def test_cli_copy_to_a_postgres_url_and_back_never_prints_the_password(
    tmp_path: Path, embedder: Embedder, postgres_url: str
) -> None:
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    fill(src, embedder, tmp_path / "shop")
    url = with_password(postgres_url)
    password = urlsplit(url).password
    assert password
    shown_url = shown(url)
    runner = CliRunner()

    there = runner.invoke(cli.cli, ["copy", str(src), url])
    assert there.exit_code == 0, there.output
    assert there.stdout == (
        f"Copied 5 memories from {src} to {shown_url} (new): 5 added; 2 earlier versions, "
        "1 project\n"
    )
    # into an empty database the index is built after the last batch: it says so
    assert f"Copied; now building the vector index of {shown_url}..." in there.stderr
    again = runner.invoke(cli.cli, ["copy", str(src), url])
    assert again.stdout == f"Copied 5 memories from {src} to {shown_url}: 0 added, 5 unchanged\n"
    home = runner.invoke(cli.cli, ["copy", url, str(back)])
    assert home.exit_code == 0, home.output
    assert home.stdout.startswith(f"Copied 5 memories from {shown_url} to {back} (new): 5 added")
    assert "building" not in again.stderr + home.stderr  # the index was kept up as it went
    # a server that is not there: one line naming it, without the password
    gone = runner.invoke(cli.cli, ["copy", str(src), f"postgresql://me:{password}@127.0.0.1:1/x"])
    assert gone.exit_code == 1
    assert gone.stderr.startswith("Error: cannot connect to postgresql://me@127.0.0.1:1/x")
    assert gone.stderr.count("\n") == 1
    for result in (there, again, home, gone):
        assert password not in result.stdout + result.stderr
    assert snapshot(back, embedder)["export"] == snapshot(src, embedder)["export"]


def test_postgres_keeps_extreme_values_as_sqlite_does(
    tmp_path: Path, hash_embedder: HashEmbedder, postgres_url: str
) -> None:
    """Vectors holding float32's edges (negative zero, subnormals, the largest finite values),
    and timestamps at the ends of what memento stores (years 1 and 9999, to the microsecond),
    copied to PostgreSQL and back: the same bytes and the same moments."""
    import numpy as np

    edges = np.array(
        [0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 0.1, 1 / 3],
        dtype="<f4",
    )
    vector = np.resize(edges, 384).astype("<f4").tobytes()
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        early = m.store("the first moment memento stores", created_at="0001-01-01T00:00:00Z")
        late = m.store("the last moment", created_at="9999-12-31T23:59:59.999999Z")
        seq = m.backend.find_by_id(late.id)[0].seq
        with m.backend.transaction(write=True):
            m.backend.update(seq, {}, vector)
    copy_store(src, postgres_url)
    copy_store(postgres_url, back)
    for location in (postgres_url, back):
        with Memory(location, embedder=hash_embedder) as m:  # type: ignore[arg-type]
            [row] = m.backend.find_by_id(late.id)
            assert m.backend.vectors([row.seq])[row.seq] == vector
            assert row.created_at == datetime(9999, 12, 31, 23, 59, 59, 999999, timezone.utc)
            assert m.get(early.id).created_at == datetime(1, 1, 1, tzinfo=timezone.utc)


def test_a_copy_into_an_empty_postgres_builds_its_vector_index_once(
    tmp_path: Path, hash_embedder: HashEmbedder, postgres_url: str
) -> None:
    """The HNSW index is dropped while a copy fills an empty PostgreSQL store and built at
    the end: there after a copy, after a copy that failed half way, and rebuilt by the next
    copy when a killed one left it missing."""
    src = tmp_path / "src.db"
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.store_many([{"content": f"memory {n} of a bulk load"} for n in range(30)])
        lost = m.store("a memory whose vector was lost")
        seq = m.backend.find_by_id(lost.id)[0].seq
        m.conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (seq,))
        m.conn.execute("DELETE FROM memory_bits WHERE seq = ?", (seq,))

    def indexed() -> bool:
        with Memory(postgres_url, embedder=hash_embedder) as m:  # type: ignore[arg-type]
            [(found,)] = query(m, "SELECT to_regclass('memento.memories_embedding') IS NOT NULL")
            return bool(found)

    assert indexed()  # a new store has it

    during: list[bool] = []
    with pytest.raises(DatabaseError, match="has no vector"):
        copy_store(src, postgres_url, batch_size=10, progress=lambda *_: during.append(indexed()))
    assert during == [True, False, False, False]  # before the load, then after 3 batches
    assert indexed()  # the failed copy built it before it gave up
    with Memory(postgres_url, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        assert m.stats()["total"] == 30
        m.conn.execute("DROP INDEX memento.memories_embedding")  # as a killed copy leaves it
        assert m.recall("memory 7 of a bulk load")[0].content == "memory 7 of a bulk load"
    with Memory(src, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        m.reembed(all=True)
    assert copy_store(src, postgres_url).added == 1
    assert indexed()
    with Memory(postgres_url, embedder=hash_embedder) as m:  # type: ignore[arg-type]
        [(valid, method)] = query(
            m, "SELECT i.indisvalid, a.amname FROM pg_index i JOIN pg_class c ON "
            "c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indexrelid = 'memento.memories_embedding'::regclass"
        )
        assert (valid, method) == (True, "hnsw")
