"""Pulling the plug: a child process is SIGKILLed at chosen I/O steps (before its N-th
write, sync or truncate of a database file, N drawn from fixed seeds) while it runs
``store_many``, ``reembed`` or ``import_records``, many times over on the same file.

After every kill the file must open, pass ``PRAGMA integrity_check``, keep
``memories``/``memory_fts``/``memory_vec`` in step, hold every batch whole or not at all,
and keep everything the child reported as committed. After the last kill of each run,
``memento verify``'s checks pass on the file exactly as the crash left it.
"""

from __future__ import annotations

import importlib.util
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memento import Memory, health
from memento.store import sqlite as store

CHILD = Path(__file__).parent / "fixtures" / "storage_child.py"
_spec = importlib.util.spec_from_file_location("storage_child", CHILD)
assert _spec is not None and _spec.loader is not None
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)

pytestmark = pytest.mark.slow


def _kill_run(mode: str, *args: object) -> list[list[str]]:
    """Run one child until it kills itself; the lines it printed, split into words."""
    done = subprocess.run(
        [sys.executable, str(CHILD), mode, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    return [line.split() for line in done.stdout.splitlines()]


def _verify_as_left(db: Path) -> None:
    """`memento verify` on the file as the crash left it (WAL and -shm included). The
    vectors check is about the real model, which these children do not use: the storage
    half of it (one vector per memory) is checked with no model."""
    checks = {c.name: c for c in health.run_checks(db)}
    failed = {name: c.detail for name, c in checks.items() if not c.ok and name != "vectors"}
    assert failed == {}
    conn = store.connect(db, create=False)
    try:
        assert health.check_vectors(conn, None).ok
    finally:
        conn.close()


def _check(db: Path) -> dict[str, int]:
    """Open the file as a user would next (a kill before the schema was complete leaves
    an empty file, which opening finishes), then check it."""
    with Memory(db, embedder=child.HashEmbedder(), create=False) as m:
        child.tables_agree(m.conn)
        return child.batches_whole(m.conn)


def test_kills_during_store_many_and_hard_forget(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    rng = random.Random(7)
    committed: set[str] = set()
    forgetting: set[str] = set()
    kills = 14
    for run in range(kills):
        # The first run starts on no file: its kill lands while the schema is created or
        # in the first batch. Later runs reach a dozen batches and several hard forgets.
        # (the first batch on a new file writes ~850 times: vec0 allocates a 1.5 MB chunk)
        kill_at = rng.randint(1, 1200) if run else rng.randint(1, 120)
        for words in _kill_run("crash_store_many", str(db), run, kill_at):
            (committed if words[0] == "committed" else forgetting).add(words[1])
        if not db.exists():
            continue
        present = _check(db)
        assert committed - forgetting <= set(present), "a committed batch was lost"
    assert len(committed) > 20  # the kills did land across many transactions
    _verify_as_left(db)


def _vectors_match_models(db: Path, models: dict[str, child.HashEmbedder]) -> int:
    """Every vector is the one its memory's ``embedding_model`` makes (or, for memories
    waiting to be re-embedded, one some model made); returns how many are labelled."""
    conn = store.connect(db, create=False)
    try:
        child.tables_agree(conn)
        dimension = store.vector_dimension(conn)
        labelled = 0
        rows = conn.execute(
            "SELECT m.content, m.embedding_model, v.embedding FROM memories m "
            "JOIN memory_vec v ON v.rowid = m.seq"
        ).fetchall()
        for content, model_name, blob in rows:
            got = np.frombuffer(blob, dtype="<f4")
            assert got.size == dimension
            if model_name is not None:
                want = models[model_name].embed([content])[0]
                assert np.array_equal(got, want), f"{content!r}: vector is not {model_name}'s"
                labelled += 1
            else:
                assert any(
                    np.array_equal(got, m.embed([content])[0])
                    for m in models.values()
                    if m.dimension == dimension
                ), f"{content!r}: vector from no model"
        return labelled
    finally:
        conn.close()


def test_kills_during_reembed_including_a_dimension_change(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    specs = ["hash-a:384", "hash-b:384", "hash-c:128"]
    models = {spec.split(":")[0]: child.model_for(spec) for spec in specs}
    with Memory(db, embedder=models["hash-a"]) as m:
        m.store_many(child.batch_items("seed", 60))
    rng = random.Random(11)
    kills = 9
    for run in range(kills):
        _kill_run("crash_reembed", str(db), specs[run % 3], rng.randint(1, 400))
        _vectors_match_models(db, models)
        assert _check(db) == {"seed": 60}
    _verify_as_left(db)
    # An interrupted re-embed resumes and finishes.
    with Memory(db, embedder=models["hash-b"]) as m:
        m.reembed()
        assert m.stats()["model"] == "hash-b"
    assert _vectors_match_models(db, models) == 60


def test_kills_during_import(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    with Memory(db, embedder=child.HashEmbedder()) as m:  # the vec0 chunk exists
        m.store("already here before the imports", kind="event")
    rng = random.Random(23)
    rounds: set[tuple[int, int]] = set()
    kills = 9
    for run in range(kills):
        seed = run % 3  # runs with the same seed re-import the same ids: skipped, not doubled
        for words in _kill_run("crash_import", str(db), seed, rng.randint(1, 500)):
            rounds.add((seed, int(words[1])))
        present = _check(db)
        for seed_done, round_done in rounds:
            for record in child.import_records_for(seed_done, round_done):
                assert record["metadata"]["batch"] in present
    assert rounds  # at least one whole round finished between kills
    _verify_as_left(db)
    with Memory(db, embedder=child.HashEmbedder()) as m:
        ids = [r["id"] for r in m.export()]
        assert len(ids) == len(set(ids))
        archived = {r["id"] for r in m.export() if r["archived_at"]}
    expected_archived = {
        record["id"]
        for seed in range(3)
        for round_ in range(20)
        for record in child.import_records_for(seed, round_)
        if record["archived_at"] and record["id"] in set(ids)
    }
    assert archived == expected_archived  # the archived state survived the kills
