"""Migrations, model mismatches and re-embedding, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import pytest

from memento import DatabaseError, Memory, ModelMismatchError, SchemaError
from memento.store import sqlite as store
from memento.store import sqlite_migrations as migrations


def _make_v1_file(path: Path, embedder) -> None:
    """A database as memento's first schema left it, with one memory in it."""
    conn = store.connect(path)
    vector = embedder.embed_one("Old note about the release train").tobytes()
    migrations.migrate(conn, 384, target=1)
    conn.execute(
        "INSERT INTO memories(id, content, kind, subject_key, importance, metadata, source, "
        "created_at, updated_at, embedding_model) VALUES "
        "('01JAAAAAAAAAAAAAAAAAAAAAAA', 'Old note about the release train', 'fact', "
        "'project.release', 0.5, '{}', 'api', '2024-01-01T00:00:00.000000Z', "
        "'2024-01-01T00:00:00.000000Z', 'sentence-transformers/all-MiniLM-L6-v2')"
    )
    conn.execute(
        "INSERT INTO memory_vec(rowid, embedding, kind, archived, created) "
        "VALUES (1, ?, 'fact', 0, 1704067200000000)",
        (vector,),
    )
    conn.close()


def test_older_schema_is_upgraded_in_place(db_path: Path, embedder) -> None:
    _make_v1_file(db_path, embedder)
    with Memory(path=db_path, embedder=embedder) as m:
        assert m.stats()["schema_version"] == migrations.LATEST
        versions = [r[0] for r in m.conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, migrations.LATEST + 1))
        old = m.get("01JAAAAAAAAAAAAAAAAAAAAAAA")
        assert old.content == "Old note about the release train"
        assert old.scope == "global" and old.project is None  # v4: every old memory is global
        assert m.stats()["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert m.recall("when does the release train leave")[0].subject_key == "project.release"
        m.store("New notes work too", subject_key="project.release")
        assert m.get("01JAAAAAAAAAAAAAAAAAAAAAAA").content == "New notes work too"


def test_newer_schema_is_refused_untouched(db_path: Path, embedder) -> None:
    with Memory(path=db_path, embedder=embedder) as m:
        m.conn.execute(
            "INSERT INTO schema_version VALUES (99, 'from the future', '2030-01-01T00:00:00Z')"
        )
    before = db_path.read_bytes()
    with pytest.raises(SchemaError, match="newer than this memento"):
        Memory(path=db_path, embedder=embedder)
    assert db_path.read_bytes() == before


def test_wrong_dimension_vector_table_asks_for_reembed(db_path: Path, embedder) -> None:
    with Memory(path=db_path, embedder=embedder) as m:
        m.store("The cache lives in Redis", kind="fact")
        m.conn.execute("DROP TABLE memory_vec")
        migrations.create_vector_table(m.conn, 128)
    with Memory(path=db_path, embedder=embedder) as m:
        with pytest.raises(ModelMismatchError, match="memento reembed"):
            m.recall("where is the cache")
        with pytest.raises(ModelMismatchError, match="memento reembed"):
            m.store("Another fact")
        assert m.reembed() == 1
        assert m.recall("where is the cache")[0].content == "The cache lives in Redis"
        assert store.vector_dimension(m.conn) == 384


def test_vectors_from_another_model_are_reembedded(db_path: Path, embedder, hash_embedder):
    with Memory(path=db_path, embedder=hash_embedder) as m:
        m.store_many(
            [{"content": "The office is in Porto", "kind": "fact"},
             {"content": "Standup is at 9:30", "kind": "fact"}]
        )
    with Memory(path=db_path, embedder=embedder) as m:
        with pytest.raises(ModelMismatchError, match="2 memories have vectors from model test-h"):
            m.recall("where is the office")
        progress: list[tuple[int, int]] = []
        assert m.reembed(progress=lambda done, total: progress.append((done, total))) == 2
        assert progress[-1] == (2, 2)
        assert m.recall("where is the office")[0].content == "The office is in Porto"
        assert m.reembed() == 0  # nothing left: resumable and idempotent
        assert m.stats()["model"] == embedder.name


def test_not_a_memento_file_is_refused(tmp_path: Path, embedder) -> None:
    other = tmp_path / "other.db"
    conn = apsw.Connection(str(other))
    conn.execute("CREATE TABLE notes(x)")
    conn.close()
    with pytest.raises(SchemaError, match="not a memento database"):
        Memory(path=other, embedder=embedder)


def test_garbage_file_gives_a_clear_error(tmp_path: Path, embedder) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(DatabaseError, match="not a SQLite database or is corrupt"):
        Memory(path=junk, embedder=embedder)
    assert junk.read_bytes() == b"this is not sqlite at all" * 200


def test_missing_file_with_create_false(tmp_path: Path, embedder) -> None:
    with pytest.raises(DatabaseError, match="memento init"):
        Memory(path=tmp_path / "absent.db", embedder=embedder, create=False)
    assert not (tmp_path / "absent.db").exists()


def test_read_only_file_reads_but_refuses_writes(db_path: Path, embedder, monkeypatch) -> None:
    with Memory(path=db_path, embedder=embedder) as m:
        stored = m.store("Readable even when read-only", kind="fact")
    db_path.chmod(0o400)
    if os.geteuid() == 0:  # root may write anyway: make the permission check see 0400
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode)
        )
    try:
        with Memory(path=db_path, embedder=embedder) as m:
            assert m.get(stored.id).content == "Readable even when read-only"
            assert m.recall("read-only")[0].id == stored.id
            with pytest.raises(DatabaseError, match="read-only"):
                m.store("cannot write this")
    finally:
        db_path.chmod(0o600)
