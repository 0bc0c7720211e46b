"""Importers from other memory stores, each on a small file of its format built here."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from memento import InvalidInputError, Memory, cli
from memento.embedder import Embedder
from memento.importers import detect_format, import_source
from memento.importers.mcp_memory_json import import_mcp_memory_json
from memento.importers.mcp_memory_service import import_mcp_memory_service
from memento.importers.pmb import import_pmb
from memento.store import store_exists


@pytest.fixture(autouse=True)
def _one_model(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli._embedders, None, embedder)


@pytest.fixture
def pmb_file(tmp_path: Path) -> Path:
    """A foreign memory database with the usual column names but none of memento's."""
    path = tmp_path / "pmb.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT, category TEXT, "
        "priority INTEGER, topic TEXT, timestamp REAL, tags TEXT, mood TEXT, deleted_at TEXT)"
    )
    conn.executemany(
        "INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (1, "The user prefers tabs over spaces", "preference", 8, "user.indent",
             1763978400.0, '["style", "editor"]', "calm", None),
            (2, "Met with Dana about the billing migration", "episode", 5, None,
             "2026-10-01 14:00:00", "meeting,billing", None, None),
            (3, "Never deploy on Fridays", "insight", 0.9, "ops.fridays", None, None, None,
             None),
            (4, "   ", "fact", 3, None, None, None, None, None),
            (5, "The old VPN host was vpn1", "fact", 2, "infra.vpn", None, None, None,
             "2026-09-01T00:00:00Z"),
        ],
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def mcp_json_file(tmp_path: Path) -> Path:
    path = tmp_path / "memory.json"
    lines = [
        {"type": "entity", "name": "John Smith", "entityType": "person",
         "observations": ["Speaks fluent Spanish", "Prefers morning meetings"]},
        {"type": "entity", "name": "Anthropic", "entityType": "organization",
         "observations": []},
        {"type": "relation", "from": "John Smith", "to": "Anthropic",
         "relationType": "works_at"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def service_file(tmp_path: Path) -> Path:
    """An mcp-memory-service sqlite_vec database (its memories table; no vectors needed)."""
    path = tmp_path / "sqlite_vec.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE memories (id INTEGER PRIMARY KEY AUTOINCREMENT, content_hash TEXT "
        "UNIQUE NOT NULL, content TEXT NOT NULL, tags TEXT, memory_type TEXT, metadata TEXT, "
        "created_at REAL, updated_at REAL, created_at_iso TEXT, updated_at_iso TEXT, "
        "deleted_at REAL)"
    )
    conn.executemany(
        "INSERT INTO memories(content_hash, content, tags, memory_type, metadata, created_at, "
        "updated_at, created_at_iso, updated_at_iso, deleted_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            ("h1", "The API uses FastAPI with SQLAlchemy", "python,api", "note",
             '{"project": "billing"}', 1762000000.0, 1762000100.0, None, None, None),
            ("h2", "Debugging session: fixed the flaky login test", "testing", "session",
             "{}", 1763000000.0, 1763000000.0, None, None, None),
            ("h3", "Old note that was deleted", "", "note", None, 1761000000.0,
             1761000000.0, None, None, 1761500000.0),
        ],
    )
    conn.commit()
    conn.close()
    return path


def test_pmb_maps_columns_by_usual_names(memory: Memory, pmb_file: Path) -> None:
    result = import_pmb(memory, pmb_file)
    assert (result.added, result.already_present) == (4, 0)
    assert result.skipped == ["memories row 4: empty or oversized content"]
    by_text = {r["content"]: r for r in memory.export()}
    tabs = by_text["The user prefers tabs over spaces"]
    assert tabs["kind"] == "fact" and tabs["importance"] == 0.8
    assert tabs["subject_key"] == "user.indent"
    assert tabs["created_at"].startswith("2025-11-24T10:00:00")
    assert tabs["metadata"]["tags"] == ["style", "editor"]
    assert tabs["metadata"]["original_kind"] == "preference"
    assert tabs["metadata"]["pmb"] == {"mood": "calm"}
    meeting = by_text["Met with Dana about the billing migration"]
    assert meeting["kind"] == "event" and meeting["metadata"]["tags"] == ["meeting", "billing"]
    assert meeting["created_at"].startswith("2026-10-01T14:00:00")
    lesson = by_text["Never deploy on Fridays"]
    assert lesson["kind"] == "lesson" and lesson["importance"] == 0.9
    assert by_text["The old VPN host was vpn1"]["archived_at"].startswith("2026-09-01")
    assert memory.recall("which indentation does the user like")[0].content == tabs["content"]
    again = import_pmb(memory, pmb_file)
    assert (again.added, again.already_present) == (0, 4)
    assert memory.stats()["total"] == 4


def test_pmb_dry_run_writes_nothing(memory: Memory, pmb_file: Path) -> None:
    result = import_pmb(memory, pmb_file, dry_run=True)
    assert len(result.records) == 4 and result.added == 0
    assert memory.stats()["total"] == 0


def test_mcp_memory_json_entities_and_relations(memory: Memory, mcp_json_file: Path) -> None:
    result = import_mcp_memory_json(memory, mcp_json_file)
    assert result.added == 4
    keys = {r["subject_key"]: r for r in memory.export()}
    assert keys["john_smith.1"]["content"] == "John Smith: Speaks fluent Spanish"
    assert keys["john_smith.2"]["metadata"] == {"entity": "John Smith", "entity_type": "person"}
    assert keys["anthropic.type"]["content"] == "Anthropic is a organization"
    assert keys["john_smith.works_at.anthropic"]["content"] == "John Smith works at Anthropic"
    assert all(r["kind"] == "fact" for r in keys.values())
    assert [r.subject_key for r in memory.browse("john_smith.")] == [
        "john_smith.1", "john_smith.2", "john_smith.works_at.anthropic"
    ]
    assert memory.recall("what languages does John speak")[0].subject_key == "john_smith.1"
    assert import_mcp_memory_json(memory, mcp_json_file).added == 0


def test_mcp_memory_json_graph_object_and_bad_line(memory: Memory, tmp_path: Path) -> None:
    whole = tmp_path / "graph.json"
    whole.write_text(json.dumps({
        "entities": [{"name": "Ada", "entityType": "person", "observations": ["Writes Rust"]}],
        "relations": [],
    }), encoding="utf-8")
    assert import_source(memory, whole).added == 1
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "entity", "name": "A", "observations": ["x"]}\n{oops\n',
                      encoding="utf-8")
    with pytest.raises(InvalidInputError, match="line 2: not valid JSON"):
        import_source(memory, broken, "mcp-memory-json")
    assert memory.stats()["total"] == 1


def test_mcp_memory_service(memory: Memory, service_file: Path) -> None:
    result = import_mcp_memory_service(memory, service_file)
    assert result.added == 3
    by_text = {r["content"]: r for r in memory.export()}
    api = by_text["The API uses FastAPI with SQLAlchemy"]
    assert api["kind"] == "fact" and api["metadata"]["tags"] == ["python", "api"]
    assert api["metadata"]["project"] == "billing" and api["metadata"]["memory_type"] == "note"
    assert api["created_at"].startswith("2025-11-01T12:26:40")
    session = by_text["Debugging session: fixed the flaky login test"]
    assert session["kind"] == "event"
    assert by_text["Old note that was deleted"]["archived_at"] is not None
    assert [r.content for r in memory.recall("web framework of the API", limit=1)] == [
        api["content"]
    ]
    assert import_mcp_memory_service(memory, service_file).added == 0


def test_detect_format(
    tmp_path: Path, pmb_file: Path, mcp_json_file: Path, service_file: Path
) -> None:
    assert detect_format(pmb_file) == "pmb"
    assert detect_format(mcp_json_file) == "mcp-memory-json"
    assert detect_format(service_file) == "mcp-memory-service"
    export = tmp_path / "backup.jsonl"
    export.write_text(json.dumps({"id": "x", "content": "y", "kind": "fact"}) + "\n")
    with pytest.raises(InvalidInputError, match="memento import_data"):
        detect_format(export)
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    with pytest.raises(InvalidInputError, match="--from"):
        detect_format(notes)


def test_cli_import_detects_and_dry_runs(
    db_location: Path, mcp_json_file: Path, service_file: Path
) -> None:
    runner = CliRunner()
    dry = runner.invoke(cli.cli, ["--db", str(db_location), "import", str(mcp_json_file),
                                  "--dry-run"])
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0] == f"Would import 4 memories from {mcp_json_file} (mcp-memory-json):"
    assert "  fact    imp=0.50  [john_smith.1] John Smith: Speaks fluent Spanish" in lines
    assert not store_exists(db_location)  # a dry run creates nothing
    real = runner.invoke(cli.cli, ["import", str(db_location), str(service_file)])
    assert real.exit_code == 0, real.output
    assert real.stdout.strip() == (
        f"Imported 3 memories from {service_file} (mcp-memory-service); 0 already present"
    )
    forced = runner.invoke(cli.cli, ["--db", str(db_location), "import", str(service_file),
                                     "--from", "mcp-memory-json"])
    assert forced.exit_code == 1 and "not UTF-8 text" in forced.stderr


@pytest.mark.parametrize("table", ["memories", 'mem"ories'])
def test_pmb_reads_an_odd_table_name_and_keeps_unreadable_numbers_as_text(
    memory: Memory, tmp_path: Path, table: str
) -> None:
    # Issue 16, item 13: a table named mem"ories crashed the reader; one 9e999 (read by
    # SQLite as infinity, which JSON cannot hold) in a column memento does not map refused
    # the whole import.
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    quoted = '"' + table.replace('"', '""') + '"'
    conn.execute(f"CREATE TABLE {quoted} (text TEXT, reading REAL)")
    conn.executemany(
        f"INSERT INTO {quoted} VALUES (?, ?)",
        [("The sensor saturated during the run", 9e999), ("The sensor read 21.5 C", 21.5)],
    )
    conn.commit()
    conn.close()

    result = import_pmb(memory, path)

    assert result.added == 2, result.skipped
    readings = {r.content: r.metadata["pmb"]["reading"] for r in memory.recent(limit=5)}
    assert readings == {
        "The sensor saturated during the run": "inf",
        "The sensor read 21.5 C": 21.5,
    }


def test_nan_in_metadata_becomes_text_and_the_words_nan_stay(
    memory: Memory, tmp_path: Path
) -> None:
    # Issue 19: "NaN" was replaced by "null" in the JSON text of the metadata, so a note
    # saying "NaN values" was stored as "null values".
    path = tmp_path / "sqlite_vec.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE memories (id INTEGER PRIMARY KEY, content_hash TEXT, content TEXT, "
        "tags TEXT, memory_type TEXT, metadata TEXT, created_at REAL)"
    )
    conn.execute(
        "INSERT INTO memories(content_hash, content, tags, memory_type, metadata, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ("h1", "The loader drops NaN values", "data", "note",
         '{"note": "NaN values in column B", "ratio": NaN, "limits": [Infinity, 1]}',
         1762000000.0),
    )  # fmt: skip
    conn.commit()
    conn.close()
    assert import_mcp_memory_service(memory, path).added == 1
    [record] = memory.export()
    assert record["content"] == "The loader drops NaN values"
    assert record["metadata"]["note"] == "NaN values in column B"
    assert record["metadata"]["ratio"] == "nan"
    assert record["metadata"]["limits"] == ["inf", 1]


def test_stable_ids_are_ulids_sorted_by_creation(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from memento.ids import normalize_id_prefix
    from memento.importers.common import stable_id

    early = stable_id("a", created_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    late = stable_id("a", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert normalize_id_prefix(early) == early and len(early) == 26
    assert early < late and early[:10] != late[:10]
    assert stable_id("a") == stable_id("a") != stable_id("b")


def test_pmb_reads_odd_importances_times_tags_and_byte_content(tmp_path: Path) -> None:
    """What `memento import --dry-run` shows for the values other stores hold: a word, a
    1-10 or 1-100 score for importance; epoch seconds or milliseconds (as numbers or text)
    and SQLite's own timestamps for times; tags as JSON or a comma list; BLOB text."""
    from memento.importers.pmb import read_pmb

    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body BLOB, priority, timestamp, tags, metadata)")
    conn.executemany(
        "INSERT INTO notes VALUES (?, ?, ?, ?, ?)",
        [
            ("word high", "High", 1763978400000, '["a", "b"]', '{"k": 1}'),
            ("score 7", "7", "1763978400", "x, y", "[1, 2]"),
            ("score 70", 70, "2026-11-24 10:00:00 local", "[broken", "not json"),
            ("unknown word", "urgent-ish", "sometime", None, None),
            (b"bytes content \xff", None, 1e20, "  ", None),
        ],
    )
    conn.commit()
    conn.close()
    records = {r["content"]: r for r in read_pmb(path).records}
    assert {text: r["importance"] for text, r in records.items()} == {
        "word high": 0.8, "score 7": 0.7, "score 70": 0.7, "unknown word": 0.5,
        "bytes content \ufffd": 0.5,
    }  # fmt: skip
    assert records["word high"]["created_at"] == "2025-11-24T10:00:00.000000Z"
    assert records["score 7"]["created_at"] == "2025-11-24T10:00:00.000000Z"
    assert records["score 70"]["created_at"] == "2026-11-24T10:00:00.000000Z"
    # unreadable or out-of-range times: the import's own time is used
    assert "created_at" not in records["unknown word"]
    assert "created_at" not in records["bytes content \ufffd"]
    assert records["word high"]["metadata"] == {"k": 1, "tags": ["a", "b"]}
    assert records["score 7"]["metadata"] == {"tags": ["x", "y"]}
    assert records["score 70"]["metadata"] == {"tags": ["[broken"]}
    assert records["bytes content \ufffd"]["metadata"] == {}


def test_mcp_memory_json_skips_what_it_cannot_use_and_says_why(tmp_path: Path) -> None:
    from memento.importers.mcp_memory_json import read_mcp_memory_json

    lines = [
        {"type": "entity", "name": "  ", "observations": ["orphan"]},
        {"type": "entity", "name": "Dana", "observations": ["x" * 100_001, "Likes tea"]},
        {"type": "relation", "from": "Dana", "to": "", "relationType": "knows"},
        {"type": "note", "text": "not a graph item"},
        [1, 2],
    ]
    path = tmp_path / "memory.json"
    path.write_text("\n".join(json.dumps(line) for line in lines[:4]) + "\n", encoding="utf-8")
    result = read_mcp_memory_json(path)
    assert [r["content"] for r in result.records] == ["Dana: Likes tea"]
    assert result.skipped == [
        "line 1: entity without a name",
        "line 2 observation 1: empty or oversized text",
        "line 3: relation needs from, to and relationType",
        "line 4: type 'note' is neither entity nor relation",
    ]
    path.write_text(json.dumps(lines[4]) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"memory\.json line 1: expected a JSON object"):
        read_mcp_memory_json(path)
    path.write_bytes(b'{"type": "entity", "name": "caf\xe9"}\n')
    with pytest.raises(InvalidInputError, match="is not UTF-8 text"):
        read_mcp_memory_json(path)
    # the older form: one object, non-objects in its lists left out
    path.write_text(json.dumps({"entities": [{"name": "Ana", "entityType": "person"}, 5]}))
    result = read_mcp_memory_json(path)
    assert [r["content"] for r in result.records] == ["Ana is a person"]
