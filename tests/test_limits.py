"""The limits of issue 16 through the API and the CLI: metadata already stored deeper than
validation allows, the cost of one recall call, untrusted files and directories, and the
odd environments of item 13. The MCP side is in test_server_abuse.py and test_hostile.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner, Result

from memento import Memory, cli
from memento.store.base import TOO_DEEP_KEY


@pytest.fixture(autouse=True)
def _hash_model(hash_embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI commands in this process use the hash embedder (storage mechanics only)."""
    monkeypatch.setitem(cli._embedders, None, hash_embedder)


def _memento(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.cli, ["--db", str(db), *args])


def _nested_json(levels: int) -> str:
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


# ---- item 5: metadata nested deeper than the limit, already in the file ------------------


# 999: the deepest SQLite's json_valid accepts, past what Python's json reads back.
@pytest.mark.parametrize("levels", [33, 495, 999])
def test_metadata_stored_too_deep_does_not_block_export(
    db_path: Path, hash_embedder, levels: int
) -> None:
    with Memory(db_path, embedder=hash_embedder) as m:
        deep = m.store("A memory whose metadata an old version let through", kind="event")
        m.store("An ordinary memory stored beside it", kind="event")
    stored = _nested_json(levels)
    with apsw.Connection(str(db_path)) as conn:  # as an older memento (or another tool) left it
        conn.execute("UPDATE memories SET metadata = ? WHERE id = ?", (stored, deep.id))

    export = _memento(db_path, "export")
    assert export.exit_code == 0, export.output
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    assert len(lines) == 2
    kept = next(line for line in lines if line["id"] == deep.id)
    assert kept["metadata"] == {TOO_DEEP_KEY: stored}  # the stored text, byte for byte

    for args in (["list", "--json"], ["show", deep.id], ["search", "--json", "old version"]):
        result = _memento(db_path, *args)
        assert result.exit_code == 0, (args, result.output)
        assert TOO_DEEP_KEY in result.stdout, args


# ---- item 10: the work of one recall call ------------------------------------------------


def test_recall_many_takes_at_most_20_queries(db_path: Path, hash_embedder) -> None:
    from memento import InvalidInputError
    from memento.validate import MAX_QUERIES

    with Memory(db_path, embedder=hash_embedder) as m:
        m.store("One memory to find", kind="event")
        assert len(m.recall_many(["memory"] * MAX_QUERIES, limit=1)) == MAX_QUERIES
        with pytest.raises(InvalidInputError, match="1,000 queries in one call, over the limit"):
            m.recall_many(["memory"] * 1000)
        with pytest.raises(InvalidInputError, match="between 1 and 100, got 1000"):
            m.recall("memory", limit=1000)
