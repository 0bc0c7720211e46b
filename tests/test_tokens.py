"""The token rules below the faces: `Memory.create_token` / `tokens` / `revoke_token` /
`check_token`, and what a `Memory.granted` view lets a client do, and the `memento token`
commands. Each runs on a real SQLite file and a real PostgreSQL database (the ``db_location``
fixture); the hash embedder only stores vectors here (no test reads recall quality)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from memento import AccessError, InvalidInputError, Memory, NotFoundError
from memento.cli import cli
from memento.memory.tokens import TOKEN_PREFIX
from memento.projects import find_project
from tests.conftest import HashEmbedder, is_postgres, query, with_password


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    shop, other = tmp_path / "shop", tmp_path / "other"
    shop.mkdir()
    other.mkdir()
    return shop, other


@pytest.fixture
def mem(db_location: str | Path) -> Iterator[Memory]:
    with Memory(db_location, embedder=HashEmbedder()) as memory:
        yield memory


def test_a_token_is_shown_once_and_stored_only_as_its_hash(mem: Memory) -> None:
    info, token = mem.create_token("alice")

    assert token.startswith(TOKEN_PREFIX) and len(token) >= 50
    assert (info.name, info.read_only, info.project, info.last_used_at) == (
        "alice", False, None, None
    )
    stored = repr(query(mem, "SELECT * FROM tokens"))
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token[len(TOKEN_PREFIX):] not in stored
    if not is_postgres(mem.path):  # every byte the SQLite file and its journal hold
        files = b"".join(p.read_bytes() for p in Path(mem.path).parent.glob("memory.db*"))
        assert token[len(TOKEN_PREFIX):].encode() not in files


def test_check_token_grants_what_the_token_allows(mem: Memory, dirs: tuple[Path, Path]) -> None:
    shop, _ = dirs
    _, full = mem.create_token("full")
    _, reader = mem.create_token("reader", read_only=True)
    _, bound = mem.create_token("bound", project=str(shop))

    assert mem.check_token(full).name == "full"
    assert mem.check_token(reader).read_only is True
    assert mem.check_token(bound).project.id == find_project(shop).id
    for wrong in (None, "", "memento_", full + "x", full.upper(), "x" * 10_000, 42):
        assert mem.check_token(wrong) is None
    assert mem.tokens()[0].last_used_at is not None  # "bound" sorts first; it was used


def test_revoke_refuses_the_token_at_once(mem: Memory) -> None:
    _, token = mem.create_token("gone")
    mem.revoke_token("gone")

    assert mem.check_token(token) is None
    assert mem.tokens() == [] and not mem.has_tokens()
    with pytest.raises(NotFoundError, match="memento token list"):
        mem.revoke_token("gone")


def test_names_are_checked_and_unique(mem: Memory) -> None:
    mem.create_token("ci")
    with pytest.raises(InvalidInputError, match="exists"):
        mem.create_token("ci")
    for bad in ("", "has space", "-leading", "x" * 65, "tab\t"):
        with pytest.raises(InvalidInputError, match="token name"):
            mem.create_token(bad)


def test_a_project_is_a_directory_a_known_project_or_a_remote(
    mem: Memory, dirs: tuple[Path, Path]
) -> None:
    shop, _ = dirs
    assert mem.create_token("a", project=str(shop))[0].project.name == "shop"
    assert mem.create_token("b", project="shop")[0].project.id == find_project(shop).id
    remote = mem.create_token("c", project="git@github.com:acme/Shop.git")[0].project
    assert (remote.id, remote.name) == ("github.com/acme/Shop", "Shop")
    with pytest.raises(InvalidInputError, match="origin URL"):
        mem.create_token("d", project="nowhere")


def test_a_read_only_view_refuses_every_write(mem: Memory) -> None:
    kept = mem.store("The build uses make", kind="fact").id
    _, token = mem.create_token("reader", read_only=True)
    view = mem.granted(mem.check_token(token), None)

    writes = [
        lambda: view.store("new"),
        lambda: view.store_many([{"content": "new"}]),
        lambda: view.update(kept, content="changed"),
        lambda: view.forget(kept),
        lambda: view.forget(kept, hard=True),
        lambda: view.forget_prefix("project."),
        lambda: view.restore(kept),
        lambda: view.import_records([]),
    ]
    for write in writes:
        with pytest.raises(AccessError, match="read-only"):
            write()
    assert [r.id for r in view.recall("build")] == [kept]
    assert mem.get(kept).content == "The build uses make"


def test_a_bound_view_sees_and_writes_its_project_and_global_only(
    mem: Memory, dirs: tuple[Path, Path]
) -> None:
    shop, other = dirs
    theirs = mem.store("Other project: the deploy key rotates monthly", scope=str(other)).id
    shared = mem.store("I prefer tabs", subject_key="user.indent").id
    _, token = mem.create_token("shop", project=str(shop))
    view = mem.granted(mem.check_token(token), find_project(other))  # the token wins

    mine = view.store("Shop: the deploy key is in vault")
    assert mine.project == "shop"
    assert {r.id for r in view.recent()} == {mine.id, shared}
    assert theirs not in {r.id for r in view.recall("deploy key")}
    assert view.stats()["project"] == find_project(shop).id
    for call in (
        lambda: view.recall("x", all_projects=True),
        lambda: view.recent(all_projects=True),
        lambda: view.browse("", all_projects=True),
        lambda: view.stats(all_projects=True),
        lambda: view.context(all_projects=True),
        lambda: view.store("escape", scope=str(other)),
        lambda: view.update(mine.id, scope=str(other)),
        lambda: list(view.export()),
        lambda: view.reembed(),
    ):
        with pytest.raises(AccessError):
            call()
    for call in (
        lambda: view.get(theirs),
        lambda: view.forget(theirs),
        lambda: view.update(theirs, content="hijacked"),
        lambda: view.history(theirs),
    ):
        with pytest.raises(NotFoundError):
            call()
    view.close()  # a view never closes the memory it shares
    assert mem.get(theirs).archived_at is None
    roots = {p["id"]: p["root"] for p in mem.backend.projects()}
    assert roots[find_project(shop).id] == str(shop.resolve())  # a token's write kept it


def test_cli_token_commands(db_location: str | Path) -> None:
    db = str(with_password(db_location) if is_postgres(db_location) else db_location)
    runner = CliRunner()

    made = runner.invoke(cli, ["--db", db, "token", "create", "ci", "--read-only"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith(TOKEN_PREFIX) and "\n" not in token
    listed = runner.invoke(cli, ["--db", db, "token", "list"])
    assert "ci" in listed.output and "read-only" in listed.output and token not in listed.output
    again = runner.invoke(cli, ["--db", db, "token", "create", "ci"])
    assert again.exit_code == 1 and "exists" in again.output
    assert runner.invoke(cli, ["--db", db, "token", "revoke", "ci"]).exit_code == 0
    empty = runner.invoke(cli, ["--db", db, "token", "list"])
    assert "No tokens" in empty.output


def test_cli_token_commands_take_the_database_from_memento_path(
    db_location: str | Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a server's operator runs: MEMENTO_PATH set once (a URL with its password, for a
    team's PostgreSQL), then `memento token ...` with no --db; the password is never shown."""
    location = with_password(db_location) if is_postgres(db_location) else str(db_location)
    monkeypatch.setenv("MEMENTO_PATH", location)
    runner = CliRunner()

    made = runner.invoke(cli, ["token", "create", "laptop", "--project", "github.com/acme/shop"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    listed = runner.invoke(cli, ["token", "list", "--json"])
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["project"], entry["last_used_at"]) == (
        "laptop", "github.com/acme/shop", None
    )
    with Memory(location, embedder=HashEmbedder()) as memory:
        assert memory.check_token(token).name == "laptop"
    assert runner.invoke(cli, ["token", "revoke", "laptop"]).exit_code == 0
    with Memory(location, embedder=HashEmbedder()) as memory:
        assert memory.check_token(token) is None
    password = urlsplit(location).password if is_postgres(location) else None
    for result in (made, listed):
        assert token not in result.stderr
        assert not password or password not in result.output + result.stderr


def test_a_postgres_store_made_before_tokens_gets_them_on_first_use(postgres_url: str) -> None:
    """A database at PostgreSQL schema 1 (before migration 2 added tokens): `memento token
    create` upgrades it in place and its memories stay."""
    import psycopg

    with Memory(postgres_url, embedder=HashEmbedder()) as memory:
        kept = memory.store("A memory from before tokens existed").id
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("DROP TABLE memento.tokens")
        admin.execute("DELETE FROM memento.schema_version WHERE version = 2")

    made = CliRunner().invoke(cli, ["--db", postgres_url, "token", "create", "ci"])
    assert made.exit_code == 0, made.output
    with Memory(postgres_url, embedder=HashEmbedder()) as memory:
        assert memory.check_token(made.stdout.strip()).name == "ci"
        assert memory.get(kept).content == "A memory from before tokens existed"
        assert [v for (v,) in query(memory, "SELECT version FROM schema_version")] == [1, 2]
