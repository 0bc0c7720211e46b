"""Forgetting for good and privacy on disk, checked in the bytes of the database file,
its WAL and its shared-memory file, not through memento's own queries.

A hash embedder stands in for the model: what matters here is what reaches the disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from memento import Memory, cli

# Markers are lower-case letters and digits so that the FTS5 tokenizer stores them as is.
CONTENT = "qz7content81"
OLD_CONTENT = "qz7oldversion81"
KEY = "qz7subjectkey81"
META = "qz7metadata81"


def _disk(db: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
    )


def _leftovers(db: Path, *markers: str) -> list[str]:
    data = _disk(db).lower()
    return [m for m in markers if m.encode() in data]


def _vector_pieces(db: Path, vector: bytes) -> int:
    """How many 64-byte pieces of ``vector`` are on disk (a vec0 chunk spans overflow pages,
    so the whole vector need not be contiguous)."""
    data = _disk(db)
    return sum(vector[i : i + 64] in data for i in range(0, len(vector), 64))


def _fill(m: Memory, tag: str) -> None:
    m.store_many(
        [{"content": f"ordinary {tag} note number {i} about the build", "kind": "event"}
         for i in range(40)]
    )


def _secret_memory(m: Memory, key: str = f"secret.{KEY}") -> tuple[str, bytes]:
    """A memory carrying every marker (the old content only in its history); its id and
    the bytes of its vector."""
    record = m.store(
        f"The vault phrase is {OLD_CONTENT}", kind="fact", subject_key=key,
        metadata={"note": META},
    )
    m.update(record.id, content=f"The vault phrase is now {CONTENT}")
    vector = m.embedder.embed([f"The vault phrase is now {CONTENT}"])[0].astype("<f4")
    return record.id, vector.tobytes()


@pytest.mark.sqlite_only
def test_hard_forget_leaves_nothing_on_disk(db_location: Path, hash_embedder) -> None:
    markers = (CONTENT, OLD_CONTENT, KEY, META)
    with Memory(db_location, embedder=hash_embedder) as m:
        _fill(m, "before")
        secret, vector = _secret_memory(m)
        _fill(m, "after")
        m.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # The test can see what it looks for, the old version (kept in its history) too.
        assert len(m.history(secret)) == 2
        assert _leftovers(db_location, *markers) == list(markers)
        assert _vector_pieces(db_location, vector) > 0
        m.forget(secret, hard=True)
        # Still open (the server keeps it open): nothing in the file, WAL or -shm.
        assert _leftovers(db_location, *markers) == []
        assert _vector_pieces(db_location, vector) == 0  # nor its slot in the vec0 chunk
        assert len(m.recall("ordinary note", limit=100)) == 80  # the rest is intact
    assert _leftovers(db_location, *markers) == []


@pytest.mark.sqlite_only
def test_hard_forget_prefix_scrubs_archived_and_live(db_location: Path, hash_embedder) -> None:
    with Memory(db_location, embedder=hash_embedder) as m:
        _fill(m, "before")
        archived, _ = _secret_memory(m, key=f"old.{KEY}.a")
        m.forget(archived)  # soft: hidden but still on disk
        live = m.store(f"Second note {CONTENT}x", subject_key=f"old.{KEY}.b")
        _fill(m, "after")
        assert m.forget_prefix("old.", hard=True) == 2
        assert _leftovers(db_location, CONTENT, OLD_CONTENT, KEY, META) == []
        assert live.subject_key not in str(m.browse(""))


@pytest.mark.sqlite_only
def test_cli_hard_forget_scrubs_the_file(
    db_location: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli._embedders, None, hash_embedder)
    with Memory(db_location, embedder=hash_embedder) as m:
        _fill(m, "before")
        one, _ = _secret_memory(m)
        m.store(f"project detail {CONTENT}z", subject_key=f"proj.{KEY}z")
    runner = CliRunner()
    done = runner.invoke(cli.cli, ["--db", str(db_location), "forget", one, "--hard", "--yes"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        cli.cli, ["--db", str(db_location), "forget-prefix", "proj.", "--hard", "--yes"]
    )
    assert done.exit_code == 0 and "Deleted 1 memory" in done.output, done.output
    assert _leftovers(db_location, CONTENT, OLD_CONTENT, KEY, META) == []


# ---- privacy --------------------------------------------------------------------------

# Built by concatenation so that secret scanners do not flag this file.
SECRETS = {
    "private-key": "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEAqz7\n"
    "-----END RSA " + "PRIVATE KEY-----",
    "aws-access-key": "AKIA" + "IOSFODNN7QZ7EXAM",
    "aws-secret-key": "aws_secret_access_key=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYQZ7EXAMPLE",
    "github-token": "ghp_" + "Qz7aB2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7",
    "slack-token": "xox" + "b-1234567890-Qz7abcdefghij",
    "openai-key": "sk-" + "proj-Qz7abcdefghijklmnopqrstuvwx",
    "password": "password=" + "Qz7hunter2secret",
}


def _secret_value(kind: str, text: str) -> str:
    return text.split("=", 1)[1] if "=" in text else text


@pytest.mark.sqlite_only
@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_kind_of_secret_is_redacted_before_the_file(
    db_location: Path, hash_embedder, kind: str
) -> None:
    text = SECRETS[kind]
    value = _secret_value(kind, text)
    with Memory(db_location, embedder=hash_embedder) as m:
        stored = m.store(f"Deploy with {text} tomorrow", kind="lesson")
        assert stored.redactions == (kind,)
        assert f"[REDACTED:{kind}]" in stored.content and value not in stored.content
        many = m.store_many([{"content": f"note: {text}", "kind": "event"}])
        assert many[0].redactions == (kind,)
        updated = m.update(stored.id, content=f"Changed: {text}")
        assert updated.redactions == (kind,)
        meta = m.store("see metadata", kind="event", metadata={"env": {"TOKEN": text}})
        assert meta.redactions == (kind,)
        assert value not in json.dumps(meta.metadata)
        imported = m.import_records([{"content": f"imported {text}", "kind": "event"}])
        assert imported == {"added": 1, "updated": 0, "skipped": 0}
        m.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert value.encode() not in _disk(db_location)


def test_redaction_off_keeps_metadata_verbatim(
    db_location: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMENTO_REDACT", "off")
    with Memory(db_location, embedder=hash_embedder) as m:
        stored = m.store("fixture", kind="event", metadata={"login": "password=fixture1"})
    assert stored.metadata == {"login": "password=fixture1"} and stored.redactions == ()


def test_wal_and_shm_are_private_too(tmp_path: Path, hash_embedder) -> None:
    old = os.umask(0o022)  # a common umask: files would be 0644 unless memento says otherwise
    try:
        db = tmp_path / "new" / "memory.db"
        with Memory(db, embedder=hash_embedder) as m:
            m.store("a note", kind="event")
            modes = {
                p.name: p.stat().st_mode & 0o777
                for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))
            }
    finally:
        os.umask(old)
    assert modes == {"memory.db": 0o600, "memory.db-wal": 0o600, "memory.db-shm": 0o600}
    assert db.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.sqlite_only  # reads the file's bytes
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_mcp_store_result_reports_redactions(
    db_location: Path, hash_embedder, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    """Through a real MCP client (in-process transport): the agent is told what was
    redacted, and the secret is not in the file."""
    from mcp import Client

    from memento.memory import base as memory_module  # where Memory makes its Embedder()
    from memento.server import create_server

    monkeypatch.setattr(memory_module, "Embedder", lambda: hash_embedder)
    token = SECRETS["github-token"]
    async with Client(create_server(str(db_location))) as client:
        result = await client.call_tool(
            "memento_store",
            {"content": f"CI uses {token}", "kind": "event", "metadata": {"pw": "password=x1"}},
        )
    assert not result.is_error, result.content
    stored = result.structured_content
    assert stored is not None
    assert stored["redactions"] == ["github-token", "password"]
    assert "[REDACTED:github-token]" in stored["content"]
    assert token.encode() not in _disk(db_location)
