"""A file that is not ours, or is from a newer memento, is refused and left byte for byte
as it was (issue 16 item 4): real files, the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memento import Memory
from memento.store import sqlite_migrations as migrations

MEMENTO = [sys.executable, "-m", "memento.cli"]
COMMANDS = (["stats"], ["list"], ["store", "hello"], ["search", "hello"], ["init"], ["verify"])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refuses_untouched(db: Path, needle: str) -> None:
    before = digest(db)
    files = sorted(p.name for p in db.parent.iterdir())
    for command in COMMANDS:
        out = subprocess.run(
            [*MEMENTO, "--db", str(db), *command], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        assert needle in out.stdout + out.stderr, (command, out.stdout, out.stderr)
        assert digest(db) == before, command
    assert sorted(p.name for p in db.parent.iterdir()) == files  # no -wal, no -shm


def test_another_applications_file_is_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    refuses_untouched(db, "not a memento database")


@pytest.mark.parametrize("journal", ["DELETE", "TRUNCATE"])
def test_a_newer_mementos_file_is_left_as_it_was(tmp_path: Path, hash_embedder, journal) -> None:
    db = tmp_path / "newer.db"
    with Memory(db, embedder=hash_embedder) as m:
        m.store("made by a newer memento")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute(
        "INSERT INTO schema_version VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
        (migrations.LATEST + 1,),
    )
    conn.commit()
    conn.close()
    refuses_untouched(db, "newer")
