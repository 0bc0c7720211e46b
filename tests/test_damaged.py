"""A damaged environment: corrupt, truncated and read-only files, impossible paths, a file
from a newer memento, vectors of the wrong size and a tampered model. Each gives one clear
line through the API and the CLI, and leaves the file as it was."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memento import (
    DatabaseError,
    Memory,
    ModelError,
    ModelMismatchError,
    SchemaError,
    cli,
)
from memento.config import bundled_model_dir
from memento.store import sqlite_migrations as migrations


@pytest.fixture(autouse=True)
def _hash_model(hash_embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI commands in this process use the hash embedder unless a test says otherwise."""
    monkeypatch.setitem(cli._embedders, None, hash_embedder)


def _memento(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.cli, ["--db", str(db), *args])


def _error_line(result: Result) -> str:
    """The single error line of a failed command."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def healthy(db_path: Path, hash_embedder) -> bytes:
    """A closed, checkpointed store of 300 memories; its bytes."""
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store_many(
            [{"content": f"note {i} " + "about the build " * 20, "kind": "event",
              "subject_key": f"notes.{i}"} for i in range(300)]
        )
    assert not Path(f"{db_path}-wal").exists()
    return db_path.read_bytes()


def _every_face(db: Path, hash_embedder, message: str, commands: list[list[str]]) -> None:
    """Using the file through the API and the CLI fails with ``message``."""
    with pytest.raises(DatabaseError, match=message), Memory(db, embedder=hash_embedder) as m:
        m.recall("note about the build")
        m.stats()
    for args in commands:
        assert message in _error_line(_memento(db, *args)), args


def test_corrupt_pages(db_path: Path, healthy: bytes, hash_embedder) -> None:
    with db_path.open("r+b") as f:
        for page in range(5, len(healthy) // 4096, 7):
            f.seek(page * 4096 + 100)
            f.write(bytes(range(256)) * 6)
    damaged = db_path.read_bytes()
    # Reads that meet a damaged page say so (the pages a command never reads, it cannot).
    _every_face(db_path, hash_embedder, "run `memento verify`", [["search", "build"], ["stats"]])
    assert db_path.read_bytes() == damaged
    assert "FAIL  integrity" in _memento(db_path, "verify").output


def test_truncated_file(db_path: Path, healthy: bytes, hash_embedder) -> None:
    os.truncate(db_path, len(healthy) // 2)
    commands = [["search", "build"], ["store", "x", "--kind", "event"], ["stats"], ["list"]]
    _every_face(db_path, hash_embedder, "is corrupt", commands)
    assert db_path.read_bytes() == healthy[: len(healthy) // 2]


def test_read_only_file_via_cli(
    db_path: Path, healthy: bytes, hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        one = m.browse("notes.1", limit=1)[0].id
    healthy = db_path.read_bytes()
    db_path.chmod(0o400)
    if os.geteuid() == 0:  # root writes anyway: make memento's permission check see 0400
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode)
        )
    try:
        assert "note 299" in _memento(db_path, "list", "--limit", "1").output
        assert "note 7 " in _memento(db_path, "search", "note 7").output
        writes = (["store", "x"], ["forget", one, "--hard", "--yes"], ["forget-prefix", "notes."])
        for args in writes:
            assert "is read-only: fix its permissions" in _error_line(_memento(db_path, *args))
    finally:
        db_path.chmod(0o600)
    assert db_path.read_bytes() == healthy


def test_missing_directories_are_created_but_a_file_in_the_way_is_refused(
    tmp_path: Path, hash_embedder
) -> None:
    deep = tmp_path / "a" / "b" / "memory.db"
    assert _memento(deep, "init").exit_code == 0 and deep.exists()
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    inside = blocker / "memory.db"
    with pytest.raises(DatabaseError, match="cannot create"):
        Memory(inside, embedder=hash_embedder)
    line = _error_line(_memento(inside, "init"))
    assert f"cannot create directory {blocker}" in line or f"cannot create {inside}" in line
    assert blocker.read_text() == "I am a file"
    with pytest.raises(DatabaseError, match="is a directory"):
        Memory(tmp_path / "a", embedder=hash_embedder)
    assert "is a directory" in _error_line(_memento(tmp_path / "a", "init"))


def test_newer_schema_refused_everywhere_even_by_init(
    db_path: Path, healthy: bytes, hash_embedder
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        m.conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
            (migrations.LATEST + 7,),
        )
    before = db_path.read_bytes()
    with pytest.raises(SchemaError, match="upgrade memento"):
        Memory(db_path, embedder=hash_embedder)
    for args in (["list"], ["store", "x"], ["init"]):
        assert "newer than this memento" in _error_line(_memento(db_path, *args)), args
    assert "FAIL  schema version" in _memento(db_path, "verify").output
    assert db_path.read_bytes() == before


def test_wrong_dimension_asks_for_reembed_via_cli(db_path: Path, hash_embedder) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store("The cache lives in Redis", kind="fact")
        m.conn.execute("DROP TABLE memory_vec")
        migrations.create_vector_table(m.conn, 128)
    before = db_path.read_bytes()
    for args in (["search", "cache"], ["store", "another"]):
        assert "run `memento reembed`" in _error_line(_memento(db_path, *args))
    assert "The cache lives in Redis" in _memento(db_path, "list").output
    assert db_path.read_bytes() == before
    with pytest.raises(ModelMismatchError):
        Memory(db_path, embedder=hash_embedder).recall("cache")


def _tampered_model(tmp_path: Path, tamper: Callable[[Path], None]) -> Path:
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    tamper(model)
    return model


def test_model_file_with_wrong_sha256(
    tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flip_a_byte(model: Path) -> None:
        data = bytearray((model / "tokenizer.json").read_bytes())
        data[100] ^= 1
        (model / "tokenizer.json").write_bytes(bytes(data))

    model = _tampered_model(tmp_path, flip_a_byte)
    monkeypatch.setenv("MEMENTO_EMBEDDING_MODEL", str(model))
    monkeypatch.setattr(cli, "_embedders", {})
    assert _memento(db_path, "init").exit_code == 0
    before = db_path.read_bytes()
    with Memory(db_path) as m, pytest.raises(ModelError, match="sha256"):
        m.store("the model is damaged")
    line = _error_line(_memento(db_path, "store", "the model is damaged"))
    assert "tokenizer.json" in line and "sha256" in line
    assert "sha256" in _error_line(_memento(db_path, "search", "anything"))
    assert _memento(db_path, "list").exit_code == 0  # what needs no model still works
    assert db_path.read_bytes() == before


@pytest.mark.parametrize(
    ("error", "errno_", "advice"),
    [
        ("ReadOnlyError", None, "/d/m.db is read-only: fix its permissions"),
        ("BusyError", None, "/d/m.db stayed locked by another process for 30 s: retry"),
        ("CantOpenError", None, "cannot open /d/m.db: check that the path and its directory"),
        ("FullError", None, "the disk holding /d/m.db is full: free some space and retry"),
        ("IOError", errno.ENOSPC, "the disk holding /d/m.db is full: free some space and retry"),
        ("IOError", errno.EFBIG, "it reached the file-size limit of this process (ulimit -f)"),
        ("IOError", None, "database error on /d/m.db: disk I/O error"),
    ],
)
def test_each_driver_error_reads_as_what_to_do(
    error: str, errno_: int | None, advice: str
) -> None:
    import apsw

    from memento.store.sqlite import describe_sqlite_error

    exc = getattr(apsw, error)("disk I/O error")
    assert advice in describe_sqlite_error(exc, Path("/d/m.db"), errno_)


def test_a_file_where_a_directory_should_be_is_refused(tmp_path: Path, hash_embedder) -> None:
    (tmp_path / "blocker").write_text("I am a file")
    with pytest.raises(DatabaseError, match=r"cannot create directory .*blocker/sub"):
        Memory(tmp_path / "blocker" / "sub" / "memory.db", embedder=hash_embedder)
