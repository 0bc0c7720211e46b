"""`memento verify`: passes on a healthy store, fails with the right line on a damaged one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner, Result

from memento import Memory, cli, config
from memento.embedder import Embedder
from memento.health import NAMES, run_checks
from memento.store import sqlite as store
from memento.store import sqlite_migrations as migrations

# memento verify reads a SQLite file's pages: its checks run on SQLite only
pytestmark = pytest.mark.sqlite_only

@pytest.fixture(autouse=True)
def _one_model(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)


@pytest.fixture
def healthy(memory: Memory, db_path: Path) -> Path:
    memory.store("I prefer dark mode in editors", subject_key="user.theme")
    memory.store("Deployed release 2.3", kind="event")
    memory.store("Pin the numpy version in CI", kind="lesson")
    return db_path


def verify(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.cli, ["--db", str(db_path), "verify", *args])


def line_of(result: Result, name: str) -> str:
    return next(line for line in result.stdout.splitlines() if line[6:].startswith(name))


def test_healthy_store_passes_all_nine(healthy: Path) -> None:
    result = verify(healthy)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line[:4] for line in lines[:9]] == ["PASS"] * 9
    assert [line[6:].split("  ")[0].strip() for line in lines[:9]] == list(NAMES)
    assert lines[-1] == "All checks passed."
    data = json.loads(verify(healthy, "--json").stdout)
    assert data["ok"] is True and data["path"] == str(healthy)
    assert [c["name"] for c in data["checks"]] == list(NAMES)
    assert {c["status"] for c in data["checks"]} == {"PASS"}


def test_deleted_fts_row_fails_fts_check(healthy: Path) -> None:
    conn = store.connect(healthy)
    seq, content, key = conn.execute(
        "SELECT seq, content, subject_key FROM memories LIMIT 1"
    ).fetchone()
    conn.execute(
        "INSERT INTO memory_fts(memory_fts, rowid, content, subject_key) "
        "VALUES ('delete', ?, ?, ?)",
        (seq, content, key),
    )
    conn.close()
    result = verify(healthy)
    assert result.exit_code == 1
    assert line_of(result, "fts index").startswith(
        "FAIL  fts index       1 memories missing from the index"
    )
    assert "VALUES('rebuild')" in result.stdout
    assert result.stdout.count("FAIL") == 1
    assert result.stdout.splitlines()[-1] == "1 of 9 checks failed."


@pytest.mark.parametrize(
    ("table", "column", "failure"),
    [
        ("memory_vec", "rowid", "1 memories without a vector"),
        (
            "memory_bits",
            "seq",
            "the large-store index disagrees with the memories (1 missing",
        ),
    ],
)
def test_a_lost_vector_row_fails_vectors_and_reembed_mends_it(
    healthy: Path, table: str, column: str, failure: str
) -> None:
    conn = store.connect(healthy)
    conn.execute(f"DELETE FROM {table} WHERE {column} = (SELECT max(seq) FROM memories)")
    conn.close()
    result = verify(healthy)
    assert result.exit_code == 1
    assert line_of(result, "vectors").startswith(f"FAIL  vectors         {failure}")
    assert "fix: run `memento reembed --all`" in result.stdout
    mended = CliRunner().invoke(cli.cli, ["--db", str(healthy), "reembed", "--all"])
    assert mended.exit_code == 0, mended.output
    assert verify(healthy).exit_code == 0


def _model_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "model-copy"
    shutil.copytree(config.bundled_model_dir(), copy)
    return copy


def test_tampered_model_file_fails_model_check(
    healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _model_copy(tmp_path)
    with (copy / "tokenizer.json").open("ab") as handle:
        handle.write(b" ")
    monkeypatch.setenv("MEMENTO_EMBEDDING_MODEL", str(copy))
    result = verify(healthy)
    assert result.exit_code == 1
    assert line_of(result, "model files").startswith(
        f"FAIL  model files     {copy / 'tokenizer.json'} does not match its sha256"
    )
    assert line_of(result, "golden vector").startswith("FAIL  golden vector   not checked")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("negated", "mean -0.9"),  # a model whose space is not the reference's
        ("shuffled", "needs mean >= 0.98"),  # each sentence against another one's vector
        ("truncated", "golden vectors have 200 values, the model makes 384"),
    ],
)
def test_golden_vector_mismatch_fails(
    healthy: Path, tmp_path: Path, damage: str, expected: str
) -> None:
    copy = _model_copy(tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    sentences = manifest["golden"]["sentences"]
    vectors = [s["vector"] for s in sentences]
    for n, sentence in enumerate(sentences):
        if damage == "negated":
            sentence["vector"] = [-v for v in vectors[n]]
        elif damage == "shuffled":
            sentence["vector"] = vectors[(n + 1) % len(vectors)]
        else:
            sentence["vector"] = vectors[n][:200]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    checks = {c.name: c for c in run_checks(healthy, model_dir=copy)}
    assert checks["model files"].ok
    assert not checks["golden vector"].ok
    assert expected in checks["golden vector"].detail
    assert "force-reinstall memento" not in (checks["golden vector"].fix or "")


def test_old_schema_fails_until_init_upgrades(db_path: Path, embedder: Embedder) -> None:
    conn = store.connect(db_path)
    migrations.migrate(conn, embedder.dimension, target=1)
    conn.close()
    result = verify(db_path)
    assert result.exit_code == 1
    assert line_of(result, "schema version").startswith(
        f"FAIL  schema version  version 1, current is {migrations.LATEST}"
    )
    assert "fix: run `memento init` to upgrade the file in place" in result.stdout
    assert CliRunner().invoke(cli.cli, ["init", str(db_path)]).exit_code == 0
    assert verify(db_path).exit_code == 0


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    result = verify(tmp_path / "absent.db")  # one line, not a cascade of failed checks
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"Error: no memento database at {tmp_path / 'absent.db'}: create it with "
        f"`memento init --db {tmp_path / 'absent.db'}`, or check --db and MEMENTO_PATH"
    )
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    assert "not a SQLite database" in line_of(verify(garbage), "file opens")


def test_corrupt_page_fails_integrity(healthy: Path) -> None:
    conn = apsw.Connection(str(healthy))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'memories_created'"
    ).fetchone()[0]
    conn.close()
    with healthy.open("r+b") as handle:
        handle.seek((root - 1) * page_size + 8)
        handle.write(b"\xff" * 64)
    result = verify(healthy)
    assert result.exit_code == 1
    assert line_of(result, "integrity").startswith("FAIL  integrity")
