"""`memento start --http` as clients meet it: a real server process, the SDK's Streamable HTTP
client, real tokens made with the CLI, and raw HTTP for what a well-behaved client never
sends. One server serves the module (it loads the model once); each test works on its own
subjects."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest

from memento import Memory
from memento.embedder import Embedder
from memento.projects import find_project
from tests.conftest import call, call_error, shown, with_password
from tests.http_server import (
    Server,
    connect,
    create_token,
    environment,
    memento,
)

pytestmark = pytest.mark.anyio
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class Setup:
    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.db = root / "memory.db"
        self.home = root / "home"  # the server's working directory: unbound clients' project
        self.shop = root / "shop"
        self.other = root / "other"
        for directory in (self.home, self.shop, self.other):
            directory.mkdir()
        self.env = environment(self.db, cache)
        self.full = create_token(self.env, "alice")
        self.reader = create_token(self.env, "reader", "--read-only")
        self.shop_token = create_token(self.env, "shop-ci", "--project", str(self.shop))
        self.server = Server(self.env, self.home)

    def post(self, body: bytes | str, token: str | None = None, **headers: str) -> Any:
        sent = dict(ACCEPT)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers)
        return httpx2.post(self.server.url, content=body, headers=sent, timeout=60)

    def count(self) -> int:
        with Memory(self.db) as memory:
            return memory.stats(all_projects=True)["total"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, _model_cache: Path) -> Iterator[Setup]:
    made = Setup(tmp_path_factory.mktemp("http"), _model_cache)
    yield made
    status, out, err = made.server.stop(signal.SIGTERM)
    assert status == 143, err
    assert out == ""  # nothing on stdout: logs go to stderr
    assert "memento_" not in err  # never a token in a log


# ---- start-up ----------------------------------------------------------------------


def test_the_start_up_line_says_where_it_listens_and_which_database(setup: Setup) -> None:
    assert setup.server.url.startswith("http://127.0.0.1:")
    assert str(setup.db) in setup.server.banner
    assert "3 tokens" in setup.server.banner


def test_refuses_to_start_while_no_token_exists(tmp_path: Path, _model_cache: Path) -> None:
    env = environment(tmp_path / "fresh.db", _model_cache)
    for host in ("127.0.0.1", "0.0.0.0"):
        done = memento(env, "start", "--http", "--port", "0", "--host", host)

        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "memento token create NAME" in lines[0], done.stderr


def test_a_port_in_use_is_one_line_and_a_non_zero_exit(setup: Setup) -> None:
    port = setup.server.url.rsplit(":", 1)[1].split("/")[0]
    done = memento(setup.env, "start", "--http", "--port", port)

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "choose another --port" in done.stderr


def test_on_every_interface_it_says_to_put_tls_in_front(setup: Setup) -> None:
    server = Server(setup.env, setup.home, "--host", "0.0.0.0", "--allow-host", "mem.example")
    port = server.url.rsplit(":", 1)[1].split("/")[0]
    try:
        assert "http://0.0.0.0:" in server.banner and "TLS" in server.banner
        for host, status in (
            (f"{socket.gethostname()}:{port}", 200),  # this machine's name
            ("mem.example", 200),  # a reverse proxy's public name, allowed
            ("elsewhere.example", 421),
        ):
            answer = httpx2.post(
                f"http://127.0.0.1:{port}/mcp", content=json.dumps(INIT), timeout=60,
                headers={**ACCEPT, "Authorization": f"Bearer {setup.full}", "Host": host},
            )
            assert answer.status_code == status, host
    finally:
        assert server.stop(signal.SIGINT)[0] == 130


# ---- the tools over HTTP -------------------------------------------------------------


async def test_every_tool_the_resource_and_the_prompt_over_http(setup: Setup) -> None:
    async with connect(setup.server.url, setup.full) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert len(tools) == 11
        stored = await call(
            session, "memento_store", content="The http shop deploys with make ship",
            subject_key="project.httpshop.deploy",
        )
        assert stored["action"] == "created" and stored["project"] == "home"
        many = await call(
            session, "memento_store_many",
            items=[
                {"content": "2026-11-20: the http shop outage lasted an hour", "kind": "event"},
                {"content": "Always run the http shop migrations first", "kind": "lesson"},
            ],
        )
        assert many["created"] == 2
        found = await call(session, "memento_recall", query="how does the http shop deploy")
        assert found["memories"][0]["id"] == stored["id"]
        both = await call(
            session, "memento_recall_many", queries=["http shop outage", "migrations"]
        )
        assert [r["count"] > 0 for r in both["results"]] == [True, True]
        updated = await call(
            session, "memento_update", id=stored["id"],
            content="The http shop deploys with make ship-it",
        )
        assert updated["id"] == stored["id"]
        history = await call(session, "memento_history", id=stored["id"])
        assert history["count"] == 2
        browse = await call(session, "memento_browse", subject_key_prefix="project.httpshop.")
        assert [m["id"] for m in browse["memories"]] == [stored["id"]]
        recent = await call(session, "memento_recent", limit=3)
        assert recent["count"] == 3
        stats = await call(session, "memento_stats")
        assert stats["live"] >= 3
        forgotten = await call(session, "memento_forget", id=stored["id"])
        assert forgotten["status"] == "archived"
        prefix = await call(session, "memento_forget_prefix", prefix="project.httpshop.")
        assert prefix["count"] == 0  # already archived
        block = await session.read_resource("memento://context")
        assert "http shop migrations" in block.contents[0].text
        prompt = await session.get_prompt("memento_context", {"topic": "http shop outage"})
        assert "outage" in prompt.messages[0].content.text


async def test_a_store_through_http_is_in_the_database(setup: Setup) -> None:
    async with connect(setup.server.url, setup.full) as session:
        stored = await call(
            session, "memento_store", content="Round trip marker 7f3a", kind="event"
        )

    with Memory(setup.db) as memory:
        assert memory.get(stored["id"]).content == "Round trip marker 7f3a"


# ---- tokens ---------------------------------------------------------------------------


async def test_a_read_only_token_recalls_but_cannot_write(setup: Setup) -> None:
    before = setup.count()
    async with connect(setup.server.url, setup.reader) as session:
        await call(session, "memento_recall", query="anything")
        message = await call_error(session, "memento_store", content="should not be stored")
        assert "read-only" in message and "memento token create" in message
        other = await call_error(session, "memento_forget_prefix", prefix="project.")
        assert "read-only" in other

    assert setup.count() == before


async def test_a_project_token_sees_and_writes_only_its_project_and_global(setup: Setup) -> None:
    with Memory(setup.db, project=setup.other) as memory:
        secret = memory.store("The other project's launch code is blue falcon").id
    shop = find_project(setup.shop)
    async with connect(setup.server.url, setup.shop_token) as session:
        stored = await call(session, "memento_store", content="The shop token fact: port 7001")
        assert stored["project"] == "shop"
        glob = await call(session, "memento_store", content="I like tea", scope="global")
        assert glob["project"] == "global"
        found = await call(session, "memento_recall", query="launch code blue falcon")
        assert secret not in [m["id"] for m in found["memories"]]
        refused = await call_error(session, "memento_recall", query="x", all_projects=True)
        assert "bound to project shop" in refused
        escape = await call_error(
            session, "memento_store", content="escape", scope=str(setup.other)
        )
        assert "bound to project shop" in escape
        for tool, args in (
            ("memento_forget", {"id": secret}),
            ("memento_update", {"id": secret, "content": "hijacked"}),
            ("memento_history", {"id": secret}),
        ):
            assert "no memory with id" in await call_error(session, tool, **args)
        stats = await call(session, "memento_stats")
        assert {p["id"] for p in stats["projects"]} <= {"global", shop.id}

    with Memory(setup.db) as memory:
        assert memory.get(secret).content == "The other project's launch code is blue falcon"
        assert memory.get(stored["id"]).scope == shop.id


async def test_a_revoked_token_is_refused_from_its_next_request(setup: Setup) -> None:
    token = create_token(setup.env, "short-lived")
    async with connect(setup.server.url, token) as session:
        await call(session, "memento_stats")
        revoked = memento(setup.env, "token", "revoke", "short-lived")
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(Exception):  # noqa: B017 - the SDK reports a 401 its own way
            with anyio.fail_after(30):
                await session.call_tool("memento_stats", {})

    assert setup.post(json.dumps(INIT), token).status_code == 401
    listed = memento(setup.env, "token", "list")
    assert "short-lived" not in listed.stdout and "alice" in listed.stdout


def test_token_list_shows_last_use_and_never_the_token(setup: Setup) -> None:
    assert setup.post(json.dumps(INIT), setup.full).status_code == 200
    listed = memento(setup.env, "token", "list", "--json")
    tokens = {t["name"]: t for t in json.loads(listed.stdout)}

    assert tokens["alice"]["last_used_at"] is not None
    assert tokens["reader"]["read_only"] is True
    assert tokens["shop-ci"]["project"] == find_project(setup.shop).id
    assert "memento_" not in listed.stdout
    with Memory(setup.db) as memory:
        stored = memory.conn.execute("SELECT group_concat(hash) FROM tokens").fetchone()[0]
    assert setup.full not in stored and setup.full[8:] not in stored


# ---- abuse ------------------------------------------------------------------------------


STORE_CALL = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "memento_store", "arguments": {"content": "unauthorised write"}},
    }
)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer memento_not-a-real-token",
        "Bearer not-even-the-prefix",
        pytest.param("Bearer memento_" + "x" * 5000, id="a-5000-character-token"),
        "bearer memento_wrong-case-of-the-scheme-and-a-wrong-token",
        "Bearer memento_" + "A" * 43,  # the right shape, no such token
    ],
)
def test_a_missing_or_malformed_token_gets_401_and_touches_nothing(
    setup: Setup, authorization: str | None
) -> None:
    before = setup.count()
    headers = {} if authorization is None else {"Authorization": authorization}
    for body in (json.dumps(INIT), STORE_CALL):
        answer = httpx2.post(
            setup.server.url, content=body, headers={**ACCEPT, **headers}, timeout=60
        )
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "memento_" not in answer.text

    assert setup.count() == before


def test_a_foreign_origin_and_a_foreign_host_are_refused(setup: Setup) -> None:
    init = json.dumps(INIT)
    assert setup.post(init, setup.full, Origin="https://evil.example").status_code == 403
    assert setup.post(init, setup.full, Host="evil.example").status_code == 421
    assert setup.post(init, setup.full, Origin="http://localhost:3000").status_code == 200


def test_a_10_mb_body_gets_413(setup: Setup) -> None:
    before = setup.count()
    huge = json.dumps(
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "memento_store", "arguments": {"content": "x" * 10_000_000}}}
    )
    assert setup.post(huge, setup.full).status_code == 413
    assert setup.count() == before


@pytest.mark.parametrize(
    "body",
    ["{not json", "[]", '{"jsonrpc": "2.0"}', '{"jsonrpc": "2.0", "id": 1, "method": 5}', ""],
)
def test_malformed_json_rpc_gets_a_clean_error(setup: Setup, body: str) -> None:
    answer = setup.post(body, setup.full)

    assert 400 <= answer.status_code < 500
    assert setup.post(json.dumps(INIT), setup.full).status_code == 200  # still serving


def test_a_session_cannot_be_used_with_another_token(setup: Setup) -> None:
    opened = setup.post(json.dumps(INIT), setup.full)
    session_id = opened.headers["mcp-session-id"]
    listing = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    answer = setup.post(
        listing,
        setup.reader,
        **{"mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"},
    )

    assert answer.status_code == 404


async def test_clients_that_disconnect_mid_call_leave_it_serving(setup: Setup) -> None:
    # 1. a body cut short: headers promise 100 KB, 1 KB arrives, the socket closes
    host, port = setup.server.url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            (
                f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {setup.full}\r\nContent-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n"
            ).encode()
            + b"{" * 1000
        )
    # 2. a client cancelled while its calls run
    async with connect(setup.server.url, setup.full) as session:
        with anyio.move_on_after(0.05):
            await session.call_tool(
                "memento_recall_many", {"queries": [f"question {n}" for n in range(20)]}
            )
    # 3. a client gone without closing its session
    async with anyio.create_task_group() as group:
        async def abandon() -> None:
            async with connect(setup.server.url, setup.full) as session:
                await session.call_tool("memento_recall", {"query": "abandoned"})

        group.start_soon(abandon)
        await anyio.sleep(0.1)
        group.cancel_scope.cancel()

    assert setup.server.alive()
    async with connect(setup.server.url, setup.full) as session:
        assert (await call(session, "memento_stats"))["live"] >= 1


def test_sigint_stops_it_promptly_and_frees_the_port(setup: Setup) -> None:
    server = Server(setup.env, setup.home)
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])

    status, _, err = server.stop(signal.SIGINT)

    assert status == 130, err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nothing left holding it


async def test_a_client_stuck_mid_request_does_not_hold_up_the_others(setup: Setup) -> None:
    host, port = setup.server.url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as stuck:
        stuck.sendall(  # headers and half a body, then nothing while the others work
            (
                f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {setup.full}\r\nContent-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\nContent-Length: 200\r\n\r\n"
            ).encode()
            + b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", '
        )
        async with connect(setup.server.url, setup.reader) as session:
            for n in range(5):
                await call(session, "memento_recall", query=f"while one client is stuck {n}")


# ---- a PostgreSQL store ----------------------------------------------------------------


@pytest.mark.slow
async def test_a_postgres_store_served_over_http(
    tmp_path: Path, _model_cache: Path, postgres_url: str, embedder: Embedder
) -> None:
    """`MEMENTO_PATH=postgresql://...` (with a password): tokens made with the CLI, a server
    process, an SDK client's round trip, a project token's isolation, and the password
    nowhere in what it prints."""
    url = with_password(postgres_url)
    password = urlsplit(url).password
    assert password
    home, shop, other = tmp_path / "home", tmp_path / "shop", tmp_path / "other"
    for directory in (home, shop, other):
        directory.mkdir()
    env = environment(url, _model_cache)
    full = create_token(env, "alice")
    shop_token = create_token(env, "shop-ci", "--project", str(shop))
    with Memory(url, embedder=embedder, project=other) as memory:
        secret = memory.store("The other project's launch code is green heron").id
    server = Server(env, home)
    try:
        assert f"serving {shown(url)} (2 tokens)" in server.banner
        async with connect(server.url, full) as session:
            stored = await call(
                session, "memento_store", content="The postgres shop deploys with make ship",
                subject_key="project.pgshop.deploy",
            )
            assert stored["action"] == "created" and stored["project"] == "home"
            found = await call(session, "memento_recall", query="how does the postgres shop deploy")
            assert found["memories"][0]["id"] == stored["id"]
            again = await call(
                session, "memento_store", content="The postgres shop deploys with make release",
                subject_key="project.pgshop.deploy",
            )
            assert (again["action"], again["id"]) == ("updated", stored["id"])
            assert (await call(session, "memento_history", id=stored["id"]))["count"] == 2
            everywhere = await call(
                session, "memento_recall", query="launch code green heron", all_projects=True
            )
            assert everywhere["memories"][0]["id"] == secret
        async with connect(server.url, shop_token) as session:
            mine = await call(session, "memento_store", content="The shop token fact: port 7002")
            assert mine["project"] == "shop"
            seen = await call(session, "memento_recall", query="launch code green heron")
            assert secret not in [m["id"] for m in seen["memories"]]
            refused = await call_error(session, "memento_recall", query="x", all_projects=True)
            assert "bound to project shop" in refused
            assert "no memory with id" in await call_error(
                session, "memento_update", id=secret, content="hijacked"
            )
        listed = memento(env, "token", "list", "--json")
        used = {t["name"]: t["last_used_at"] for t in json.loads(listed.stdout)}
        assert used["alice"] is not None and used["shop-ci"] is not None
    finally:
        status, out, err = server.stop(signal.SIGTERM)
    assert status == 143, err
    assert "memento_" not in err and password not in server.banner + out + err
    with Memory(url, embedder=embedder) as memory:
        assert memory.get(secret).content == "The other project's launch code is green heron"
        assert memory.get(mine["id"]).scope == find_project(shop).id
        assert memory.get(stored["id"]).content == "The postgres shop deploys with make release"
