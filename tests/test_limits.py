"""The limits of issue 16 through the API and the CLI: metadata already stored deeper than
validation allows, the cost of one recall call, untrusted files and directories, and the
odd environments of item 13. The MCP side is in test_server_abuse.py and test_hostile.py.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest
from click.testing import CliRunner, Result

from memento import DatabaseError, InvalidInputError, Memory, cli
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
@pytest.mark.sqlite_only
@pytest.mark.parametrize("levels", [33, 495, 999])
def test_metadata_stored_too_deep_does_not_block_export(
    db_location: Path, hash_embedder, levels: int
) -> None:
    with Memory(db_location, embedder=hash_embedder) as m:
        deep = m.store("A memory whose metadata an old version let through", kind="event")
        m.store("An ordinary memory stored beside it", kind="event")
    stored = _nested_json(levels)
    with apsw.Connection(str(db_location)) as conn:  # as an older memento (or another tool) left it
        conn.execute("UPDATE memories SET metadata = ? WHERE id = ?", (stored, deep.id))

    export = _memento(db_location, "export")
    assert export.exit_code == 0, export.output
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    assert len(lines) == 2
    kept = next(line for line in lines if line["id"] == deep.id)
    assert kept["metadata"] == {TOO_DEEP_KEY: stored}  # the stored text, byte for byte

    for args in (["list", "--json"], ["show", deep.id], ["search", "--json", "old version"]):
        result = _memento(db_location, *args)
        assert result.exit_code == 0, (args, result.output)
        assert TOO_DEEP_KEY in result.stdout, args


# ---- item 10: the work of one recall call ------------------------------------------------


def test_recall_many_takes_at_most_20_queries(db_location: Path, hash_embedder) -> None:
    from memento import InvalidInputError
    from memento.validate import MAX_QUERIES

    with Memory(db_location, embedder=hash_embedder) as m:
        m.store("One memory to find", kind="event")
        assert len(m.recall_many(["memory"] * MAX_QUERIES, limit=1)) == MAX_QUERIES
        with pytest.raises(InvalidInputError, match="1,000 queries in one call, over the limit"):
            m.recall_many(["memory"] * 1000)
        with pytest.raises(InvalidInputError, match="between 1 and 100, got 1000"):
            m.recall("memory", limit=1000)


# ---- item 13: odd environments -------------------------------------------------------------

URL = "mysql://user:hunter2@db.example/memories"
# a PostgreSQL URL of a port where no server listens: refused at once, no network needed
PG_URL = "postgresql://user:hunter2@127.0.0.1:1/memories"


@pytest.mark.parametrize("how", ["env", "--db", "sub --db"])
@pytest.mark.parametrize("url", [URL, PG_URL])
def test_a_url_is_refused_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, url: str
) -> None:
    """Another kind of URL is refused; a PostgreSQL one that cannot be reached says so.
    Either way in one line, without the password, and nothing is created as a path."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if how == "env":
        monkeypatch.setenv("MEMENTO_PATH", url)
        args = ["store", "A memory with nowhere to go"]
    elif how == "--db":
        args = ["--db", url, "store", "A memory with nowhere to go"]
    else:
        args = ["list", "--db", url]

    result = CliRunner().invoke(cli.cli, args)

    assert result.exit_code == 1, result.output
    if url == URL:
        assert result.stderr.strip() == (
            "Error: mysql:// URLs are not supported as a database: give the path of a SQLite "
            "file or a postgresql:// URL with --db or MEMENTO_PATH"
        )
    else:
        line = result.stderr.strip()
        assert line.startswith("Error: cannot connect to postgresql://user@127.0.0.1:1/memories")
        assert line.endswith("check the URL in --db or MEMENTO_PATH and that the server is running")
        assert len(line.splitlines()) == 1
    assert "hunter2" not in result.output
    assert list(work.iterdir()) == []  # no ./mysql:/user:hunter2@db.example/...


@pytest.mark.sqlite_only
def test_a_file_size_limit_is_named(db_location: Path) -> None:
    # A real process under `ulimit -f`: Python ignores SIGXFSZ, so the write fails with
    # EFBIG, which SQLite reports as a plain "disk I/O error".
    with Memory(db_location, embedder=None) as m:
        m.store("The first memory, written before the limit", kind="event")
    limit = db_location.stat().st_size + 300_000
    script = (
        "import random, string, sys\n"
        "from memento import Memory, MementoError\n"
        "m = Memory(sys.argv[1])\n"
        "for n in range(40):\n"
        "    text = ''.join(random.choices(string.ascii_letters, k=99_000))\n"
        "    try:\n"
        "        m.store(f'{n} {text}', kind='event')\n"
        "    except MementoError as exc:\n"
        "        print(exc)\n"
        "        break\n"
    )

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-c", script, str(db_location)],
        capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(
        "reached the file-size limit of this process (ulimit -f): raise the limit, or move "
        "the database where it may grow"
    ), done.stdout


def _read_only_mount(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run with ``directory`` mounted read-only in a private mount namespace:
    a read-only directory even for root, whom permission bits do not stop."""
    script = (
        f"mount --bind {directory} {directory} && "
        f"mount -o remount,ro,bind {directory} && exec \"$@\""
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *command],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


@pytest.mark.sqlite_only
def test_a_read_only_database_in_a_read_only_directory_can_be_read(
    db_location: Path, embedder
) -> None:
    probe = _read_only_mount(db_location.parent, "true")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount read-only here: {probe.stderr.strip()}")
    with Memory(db_location, embedder=embedder) as m:
        m.store("The read-only store still answers questions", kind="event")
    assert not Path(f"{db_location}-wal").exists()

    memento = [sys.executable, "-m", "memento.cli", "--db", str(db_location)]
    listed = _read_only_mount(db_location.parent, *memento, "list")
    found = _read_only_mount(db_location.parent, *memento, "search", "read-only store")
    stored = _read_only_mount(db_location.parent, *memento, "store", "Something new")

    assert listed.returncode == 0, listed.stderr
    assert "The read-only store still answers questions" in listed.stdout
    assert found.returncode == 0 and "still answers" in found.stdout, found.stderr
    assert stored.returncode == 1
    assert stored.stderr.strip() == (
        f"Error: {db_location} is read-only: fix its permissions to store or forget memories"
    )


def test_start_on_a_directory_answers_the_handshake_and_says_why(
    tmp_path: Path, mcp_connect
) -> None:
    import anyio

    command = (sys.executable, "-m", "memento.cli", "start", "--db", str(tmp_path))

    async def main() -> str:
        async with mcp_connect(tmp_path / "unused.db", tmp_path / "server.log", command) as s:
            result = await s.call_tool("memento_stats", {})
            assert result.is_error
            return result.content[0].text

    message = anyio.run(main)
    assert message.endswith(f"{tmp_path} is a directory: give the path of a database file")


# ---- item 9: files and directories other users control -------------------------------------
# Tests run as root, whom permission bits do not stop: they check what memento refuses, with
# real modes and owners (os.chown to an unused uid stands for "another user").

OTHER_UID = 54_321


def _stored(db_location: Path, hash_embedder) -> None:
    with Memory(db_location, embedder=hash_embedder) as m:
        m.store("A private memory", kind="event")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.chmod(0o666), "is writable by other users (mode 0666): run `chmod 600"),
        (lambda p: p.chmod(0o620) or os.chown(p, -1, OTHER_UID),
         "is writable by other users (mode 0620)"),
        (lambda p: os.chown(p, OTHER_UID, -1), f"belongs to another user (uid {OTHER_UID})"),
        (lambda p: p.parent.chmod(0o1777), "is writable by other users (mode 1777)"),
        (lambda p: p.parent.chmod(0o777), "is writable by other users (mode 0777)"),
        (lambda p: os.chown(p.parent, OTHER_UID, -1), "belongs to another user"),
        (lambda p: Path(f"{p}-wal").touch(mode=0o666) or os.chown(f"{p}-wal", OTHER_UID, -1),
         "-wal belongs to another user"),
    ],
    ids=["file 0666", "file group-writable", "file of another user", "sticky /tmp-like dir",
         "dir 0777", "dir of another user", "-wal of another user"],
)
def test_a_database_others_control_is_refused(
    tmp_path: Path, hash_embedder, change, message: str
) -> None:
    db_location = tmp_path / "shared" / "memory.db"
    _stored(db_location, hash_embedder)
    change(db_location)

    with pytest.raises(DatabaseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Memory(db_location, embedder=hash_embedder)
    result = _memento(db_location, "list")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_group_write_for_ones_own_private_group_is_fine(tmp_path: Path, hash_embedder) -> None:
    """umask 002 (Debian, Ubuntu, Fedora) makes a user's directories group-writable for a
    group that holds only that user: no other user can write there."""
    import grp
    import pwd

    members = set(grp.getgrgid(os.getegid()).gr_mem) - {pwd.getpwuid(os.geteuid()).pw_name}
    if members:
        pytest.skip("this user's primary group has other members")
    db_location = tmp_path / "team" / "memory.db"
    _stored(db_location, hash_embedder)
    db_location.parent.chmod(0o775)
    db_location.chmod(0o660)
    with Memory(db_location, embedder=hash_embedder) as m:
        assert m.recent(all_projects=True)[0].content == "A private memory"


def test_a_read_only_database_of_ones_own_is_used(
    tmp_path: Path, hash_embedder
) -> None:
    db_location = tmp_path / "memory.db"
    _stored(db_location, hash_embedder)
    db_location.chmod(0o400)  # read-only, one's own: fine

    assert _memento(db_location, "list").exit_code == 0


def test_every_directory_memento_makes_is_private_whatever_the_umask(
    tmp_path: Path, hash_embedder
) -> None:
    db_location = tmp_path / "a" / "b" / "c" / "memory.db"
    old = os.umask(0)
    try:
        _stored(db_location, hash_embedder)
    finally:
        os.umask(old)

    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert db_location.stat().st_mode & 0o777 == 0o600


def test_an_export_line_too_deep_to_read_is_one_line_error(tmp_path: Path) -> None:
    backup = tmp_path / "backup.jsonl"
    line = {"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "content": "x", "metadata": "@"}
    backup.write_text(json.dumps(line).replace('"@"', _nested_json(3000)) + "\n")

    result = _memento(tmp_path / "new.db", "import_data", str(backup))

    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: line 1: nested too deeply to read (metadata may nest at most 32 levels); "
        "nothing was imported\n"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.store(5), "content must be text, got int"),
        (lambda m: m.store("x", subject_key=5), "subject_key must be text, got int"),
        (lambda m: m.store("x", source=""), "source must be a non-empty string"),
        (lambda m: m.store("x", metadata={"a": "b" * 100_001}), "metadata is over 100,000"),
        (lambda m: m.store("x", metadata={n: "x" * 1000 for n in map(str, range(101))}),
         "metadata is over 100,000"),
        (lambda m: m.recall(5), "query must be text, got int"),
        (lambda m: m.recall("   "), "query is empty"),
        (lambda m: m.recall("x", min_score="high"), "min_score must be a number, got 'high'"),
        (lambda m: m.recall_many("one query"), "recall_many takes a list of query strings"),
        (lambda m: m.recent(subject_key_prefix=5), "subject_key prefix must be text, got int"),
    ],
)  # fmt: skip
def test_wrong_values_through_the_api_are_one_clear_error(
    memory: Memory, call: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        call(memory)
    assert memory.stats()["total"] == 0
