"""Regression tests for the reliability guarantees of the README (issue 16): a reset never
loses another process's writes, reembed never leaves a vector of old text or an empty
vector table, and a hard forget never claims a purge it could not finish. Real files, real
processes; the bundled model where vectors must mean something."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memento import Memory, ModelError
from memento.config import bundled_model_dir
from memento.embedder import Embedder
from memento.health import run_checks
from memento.store import sqlite as sqlite_store

ROOT = Path(__file__).resolve().parent.parent


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memento.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _model_with_dimension(tmp_path: Path, dimension: int) -> Path:
    """The bundled model with a manifest that lies about the dimension (hashes intact)."""
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (model / name).symlink_to(bundled_model_dir() / name)
    manifest = json.loads((bundled_model_dir() / "manifest.json").read_text())
    manifest["dimension"] = dimension
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


# ---- item 3: a wrong manifest and `memento reembed` -------------------------------------


def test_embedder_refuses_a_manifest_whose_dimension_the_model_does_not_make(
    tmp_path: Path,
) -> None:
    model = Embedder(_model_with_dimension(tmp_path, 512))
    with pytest.raises(ModelError, match=r"says dimension 512 but model\.onnx makes 384"):
        model.embed(["anything"])


def test_reembed_with_a_wrong_manifest_leaves_the_vectors_as_they_were(
    tmp_path: Path, db_path: Path, embedder: Embedder
) -> None:
    with Memory(db_path, embedder=embedder) as m:
        m.store_many([{"content": f"note {i} about the deploy pipeline"} for i in range(20)])
    before = db_path.read_bytes()
    wrong = {"MEMENTO_EMBEDDING_MODEL": str(_model_with_dimension(tmp_path, 512))}

    result = _cli("reembed", "--db", str(db_path), env=wrong)

    assert result.returncode == 1
    assert "says dimension 512 but model.onnx makes 384" in result.stderr
    assert "unexpected" not in result.stderr
    assert db_path.read_bytes() == before  # nothing was written, not even the WAL switch
    checks = {c.name: c for c in run_checks(db_path)}
    assert checks["vectors"].ok, checks["vectors"].detail
    with Memory(db_path, embedder=embedder) as m:
        assert m.recall("deploy pipeline", limit=3)


class _FailingEmbedder:
    """A model of another dimension that breaks after ``good`` batches."""

    def __init__(self, dimension: int, good: int) -> None:
        from tests.conftest import HashEmbedder

        self.inner = HashEmbedder(dimension=dimension, name="other-model")
        self.name, self.dimension, self.good = "other-model", dimension, good

    def load(self) -> None:
        pass

    def embed(self, texts, batch_size: int = 32):
        if self.good == 0:
            raise ModelError("the model broke mid-way")
        self.good -= 1
        return self.inner.embed(texts)


def test_a_dimension_change_fails_whole_or_succeeds_whole(db_path: Path, hash_embedder) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store_many([{"content": f"memory number {i}"} for i in range(50)])
    with Memory(db_path, embedder=_FailingEmbedder(64, good=2)) as m:  # type: ignore[arg-type]
        with pytest.raises(ModelError):
            m.reembed(batch_size=10)
        assert sqlite_store.vector_dimension(m.conn) == 384
        assert m.conn.execute("SELECT count(*) FROM memory_vec").fetchone()[0] == 50
    with Memory(db_path, embedder=_FailingEmbedder(64, good=100)) as m:  # type: ignore[arg-type]
        assert m.reembed(batch_size=10) == 50
        assert sqlite_store.vector_dimension(m.conn) == 64
        assert m.conn.execute("SELECT count(*) FROM memory_vec").fetchone()[0] == 50


# ---- item 2: reembed racing with updates ---------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _stored_vector(db: Path, memory_id: str) -> np.ndarray:
    with Memory(db, embedder=None) as m:
        blob = m.conn.execute(
            "SELECT v.embedding FROM memories m, memory_vec v "
            "WHERE m.id = ? AND v.rowid = m.seq",
            (memory_id,),
        ).fetchone()[0]
    return np.frombuffer(blob, dtype="<f4")


TOPICS = [
    "The CI pipeline caches pip wheels between runs",
    "Alice prefers tabs over spaces in Go code",
    "The production database is Postgres 16 on a managed host",
    "Deploys happen on Tuesdays after the standup",
    "The API rate limit is 600 requests per minute per token",
    "Use ruff for linting and formatting Python files",
    "The mobile app supports iOS 16 and later",
    "Error budgets are reviewed at the end of each quarter",
    "The search service indexes documents every ten minutes",
    "Secrets live in the vault, never in environment files",
    "The frontend is built with Svelte and Vite",
    "Bob owns the billing module and its migrations",
]


class _UpdatedMidway:
    """The real model; while it embeds the first batch, another process (`memento update`)
    rewrites one of the memories in that batch: the interleaving that left stale vectors."""

    def __init__(self, model: Embedder, db: Path, memory_id: str, text: str) -> None:
        self.model, self.db, self.memory_id, self.text = model, db, memory_id, text
        self.name, self.dimension = model.name, model.dimension
        self.updated = False

    def load(self) -> None:
        self.model.load()

    def embed(self, texts, batch_size: int | None = None):
        vectors = self.model.embed(texts)
        if not self.updated:
            self.updated = True
            result = _cli("update", self.memory_id, "--content", self.text, "--db", str(self.db))
            assert result.returncode == 0, result.stderr
        return vectors


def test_reembed_never_writes_a_vector_for_text_that_changed_meanwhile(
    db_path: Path, embedder: Embedder
) -> None:
    new_text = "The staging cluster now runs on three ARM nodes in Frankfurt"
    with Memory(db_path, embedder=embedder) as m:
        records = m.store_many([{"content": text} for text in TOPICS])
        assert m.stats()["total"] == len(TOPICS)
    target = records[3].id
    racing = _UpdatedMidway(embedder, db_path, target, new_text)
    with Memory(db_path, embedder=racing) as m:  # type: ignore[arg-type]
        written = m.reembed(all=True, batch_size=8)
    assert written == len(TOPICS) - 1  # the changed memory keeps the vector its update wrote
    assert _cosine(_stored_vector(db_path, target), embedder.embed_one(new_text)) > 0.99
    checks = {c.name: c for c in run_checks(db_path)}
    assert checks["vector content"].ok, checks["vector content"].detail


def test_verify_finds_a_vector_made_for_other_text(db_path: Path, embedder: Embedder) -> None:
    with Memory(db_path, embedder=embedder) as m:
        records = m.store_many([{"content": text} for text in TOPICS])
        stale = embedder.embed_one("My favourite dessert is lemon tart").astype("<f4").tobytes()
        with m.backend.transaction():
            seq = m.conn.execute(
                "SELECT seq FROM memories WHERE id = ?", (records[5].id,)
            ).fetchone()[0]
            m.backend.update(seq, {}, stale)  # what the race left: a vector of old text
    result = _cli("verify", "--db", str(db_path))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if "vector content" in x)
    assert "FAIL" in line and records[5].id[:12] in line
    assert result.stdout.splitlines()[-1] == "1 of 9 checks failed."


# ---- item 6: a hard forget next to an open reader ------------------------------------------

MARKER = "qz7pendingmarker81"
_READER = """
import sys
import time
from memento import Memory
m = Memory(sys.argv[1], embedder=None)
m.conn.execute("BEGIN")  # a read transaction, as a `memento list` in progress holds one
m.conn.execute("SELECT count(*) FROM memories").fetchall()
print("reading", flush=True)
sys.stdin.readline()
m.conn.execute("COMMIT")
m.close()
"""


def _on_disk(db: Path, marker: str) -> list[str]:
    return [
        p.name for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))
        if p.exists() and marker.encode() in p.read_bytes()
    ]


def test_hard_forget_next_to_a_reader_says_pending_and_finishes_later(
    db_path: Path, hash_embedder
) -> None:
    server = Memory(db_path, embedder=hash_embedder)  # stays open, idle, like an MCP server
    server.store_many([{"content": f"ordinary note {i} about builds"} for i in range(30)])
    secret = server.store(f"The vault phrase is {MARKER}")
    server.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    assert _on_disk(db_path, MARKER) == ["memory.db"]
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(db_path)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        started = time.monotonic()
        result = _cli("forget", secret.id, "--hard", "--yes", "--db", str(db_path))
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < 20, f"the hard forget blocked for {elapsed:.1f} s"  # busy timeout: 30 s
        assert result.stdout.startswith(f"Deleted {secret.id[:12]}; its text stays")
        assert server.purge_pending
        assert _on_disk(db_path, MARKER)  # it said so because it is so
    finally:
        reader.communicate("\n", timeout=30)
    assert reader.returncode == 0
    server.store("a later note about the release train")  # any write finishes the purge
    assert not server.purge_pending
    assert _on_disk(db_path, MARKER) == []
    assert len(server.recent(limit=100)) == 31
    server.close()
    assert _on_disk(db_path, MARKER) == []


def test_a_pending_purge_is_finished_on_close(db_path: Path, hash_embedder) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        secret = m.store(f"The vault phrase is {MARKER}")
        m.store("keep me")
    other = Memory(db_path, embedder=hash_embedder)  # keeps SQLite's own last-close checkpoint off
    reader = Memory(db_path, embedder=None)
    reader.conn.execute("BEGIN")
    reader.conn.execute("SELECT count(*) FROM memories").fetchall()
    with Memory(db_path, embedder=hash_embedder) as m:
        m.forget(secret.id, hard=True)
        assert m.purge_pending
    reader.conn.execute("COMMIT")
    reader.close()  # the reader's close finishes what the forget could not
    assert not other.purge_pending
    assert _on_disk(db_path, MARKER) == []
    other.close()


# ---- item 1: `memento init --force` while another process has the file open ----------------

_HOLDER = """
import sys
from tests.conftest import HashEmbedder
from memento import Memory
m = Memory(sys.argv[1], embedder=HashEmbedder())
print("open", flush=True)
sys.stdin.readline()  # idle, like an MCP server between calls
m.store("stored after the refused reset " + sys.argv[2])
print("stored", flush=True)
m.close()
"""


def _bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def test_init_force_is_refused_while_another_process_has_the_file_open(
    db_path: Path, hash_embedder
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        m.store_many([{"content": f"note {i} {MARKER}"} for i in range(10)])
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db_path), "qz7late81"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        before = _bytes(db_path)
        result = _cli("init", "--force", "--yes", "--db", str(db_path))
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
        assert "is open in another process" in result.stderr
        assert _bytes(db_path) == before
        out, _ = holder.communicate("\n", timeout=60)  # the holder writes, then exits
        assert "stored" in out
    finally:
        if holder.poll() is None:
            holder.kill()
    with Memory(db_path, embedder=hash_embedder) as m:  # its acknowledged write is there
        assert m.stats()["total"] == 11

    result = _cli("init", "--force", "--yes", "--db", str(db_path))  # now nothing holds it
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Initialized memento at")
    assert _on_disk(db_path, MARKER) == [] and _on_disk(db_path, "qz7late81") == []
    with Memory(db_path, embedder=hash_embedder) as m:
        assert m.stats()["total"] == 0
        m.store("a fresh start")


def test_init_force_is_refused_while_this_process_has_the_file_open(
    db_path: Path, hash_embedder
) -> None:
    from memento.errors import DatabaseError
    from memento.store import reset_store

    with Memory(db_path, embedder=hash_embedder) as m:
        m.store("kept")
        with pytest.raises(DatabaseError, match="open in another process"):
            reset_store(db_path)
        assert m.stats()["total"] == 1
    reset_store(db_path)
    with Memory(db_path, embedder=hash_embedder) as m:
        assert m.stats()["total"] == 0


def test_init_force_still_starts_over_on_a_damaged_or_foreign_file(
    tmp_path: Path, hash_embedder
) -> None:
    damaged = tmp_path / "damaged.db"
    with Memory(damaged, embedder=hash_embedder) as m:
        m.store_many([{"content": f"note {i} " + "x" * 500} for i in range(200)])
    data = bytearray(damaged.read_bytes())
    for offset in range(4096 * 3, len(data) - 4096, 4096 * 2):
        data[offset : offset + 200] = bytes(range(200))
    damaged.write_bytes(bytes(data))
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database " * 1000)
    for path in (damaged, foreign):
        result = _cli("init", "--force", "--yes", "--db", str(path))
        assert result.returncode == 0, result.stderr
        with Memory(path, embedder=hash_embedder) as m:
            assert m.stats()["total"] == 0
