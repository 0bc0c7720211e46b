"""Eight agents writing one file at once, with readers watching: nothing lost, nothing
doubled, no "database is locked" reaching a caller.

The children are real processes (tests/fixtures/storage_child.py) that open a brand-new
file at the same moment, so the first open (which creates the schema) races too. They use
a hash embedder: this is about storage, not recall quality.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from memento.store import sqlite as store

CHILD = Path(__file__).parent / "fixtures" / "storage_child.py"
_spec = importlib.util.spec_from_file_location("storage_child", CHILD)
assert _spec is not None and _spec.loader is not None
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)

WRITERS = 8
PER_WRITER = 500
READERS = 2


def _spawn(mode: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> None:
    # 175 s seen for the postgres variant under coverage on a loaded 2-core machine
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"{proc.args[2]} failed:\n{err[-3000:]}"


@pytest.mark.slow
def test_eight_writers_and_two_readers_on_a_new_file(
    tmp_path: Path, db_location: Path | str
) -> None:
    """On SQLite a new file, on PostgreSQL a new database without the schema: the first
    opens (which create the schema) race too."""
    # neither the file nor its directory exists yet
    db = tmp_path / "fresh" / "memory.db" if isinstance(db_location, Path) else db_location
    go, stop = tmp_path / "go", tmp_path / "stop"
    writers = [
        _spawn("writer", str(db), w, PER_WRITER, str(go), str(tmp_path / f"w{w}.json"))
        for w in range(WRITERS)
    ]
    readers = [
        _spawn("reader", str(db), str(go), str(stop), str(tmp_path / f"r{r}.json"))
        for r in range(READERS)
    ]
    go.touch()
    try:
        for proc in writers:
            _finish(proc)
    finally:
        stop.touch()
        for proc in readers:
            _finish(proc)

    results = [json.loads((tmp_path / f"w{w}.json").read_text()) for w in range(WRITERS)]
    expected: dict[str, str] = {}
    for result in results:
        assert len(result["created"]) == PER_WRITER
        expected.update(result["created"])
    assert len(expected) == WRITERS * PER_WRITER  # ids never collide across processes

    if isinstance(db, str):
        from memento.store.postgres import connect

        conn = connect(db)
    else:
        conn = store.connect(db, create=False)
    try:
        rows = dict(conn.execute("SELECT id, content FROM memories WHERE subject_key IS NULL "
                                 "OR subject_key NOT LIKE 'shared.%%'").fetchall())
        assert rows == expected  # every memory there, exactly once, with its last content
        contents = [r[0] for r in conn.execute("SELECT content FROM memories")]
        assert len(contents) == len(set(contents))

        # Every upsert of a shared key, in any process, landed on one and the same memory.
        shared_ids: dict[str, set[str]] = {}
        for result in results:
            for key, ids in result["shared"].items():
                shared_ids.setdefault(key, set()).update(ids)
        assert all(len(ids) == 1 for ids in shared_ids.values()), shared_ids
        live = conn.execute(
            "SELECT subject_key, id, content FROM memories WHERE subject_key LIKE 'shared.%%'"
        ).fetchall()
        assert {key: {memory_id} for key, memory_id, _ in live} == shared_ids
        assert all(content.startswith(f"{key} written by w") for key, _, content in live)

        agree = child.postgres_agrees if isinstance(db, str) else child.tables_agree
        total = agree(conn)
        assert total == WRITERS * PER_WRITER + len(shared_ids)
    finally:
        conn.close()

    for r in range(READERS):
        report = json.loads((tmp_path / f"r{r}.json").read_text())
        assert report["reads"] >= 20


def test_second_writer_waits_instead_of_failing(tmp_path: Path, hash_embedder) -> None:
    """A write lock held by another connection for longer than the first retries of BEGIN
    IMMEDIATE is waited out (busy timeout), not reported as "database is locked"."""
    from memento import Memory

    db = tmp_path / "memory.db"
    with Memory(db, embedder=hash_embedder) as first:
        first.store("first")
    holder = _spawn_holder(db)
    try:
        with Memory(db, embedder=hash_embedder) as second:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            # The holder lets go after 1.5 s; the store must wait for it and succeed.
            stored = second.store("written while another process held the lock")
            assert second.get(stored.id).content.startswith("written while")
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0
    conn = store.connect(db, create=False)
    try:
        assert child.tables_agree(conn) == 2
    finally:
        conn.close()


def _spawn_holder(db: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time, apsw\n"
        f"c = apsw.Connection({str(db)!r})\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT INTO settings(key, value) VALUES ('holder', 'x')\")\n"
        "print('locked', flush=True)\n"
        "time.sleep(1.5)\n"
        "c.execute('COMMIT')\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
