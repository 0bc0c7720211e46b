"""The MCP server under abuse, over raw stdio: malformed JSON lines, unknown methods and
tools, wrong argument types, then 1,000 rapid calls. The process stays up, answers what has
an id, and its memory stays bounded.

One server process for the module; the client here is a plain asyncio subprocess writing
JSON lines, so nothing in an SDK client can tidy up what the server receives.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import server_env

pytestmark = pytest.mark.anyio

TIMEOUT = 60  # seconds for any one answer, model load included
RAPID_CALLS = 1000
RSS_GROWTH_MB = 50


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class RawServer:
    """`python -m memento.server` driven line by line; answers are matched by id."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.answers: dict[Any, dict[str, Any]] = {}
        self.sizes: dict[Any, int] = {}  # bytes of each answer's line, by id
        self.next_id = 1000

    async def send(self, line: str | dict[str, Any]) -> None:
        text = line if isinstance(line, str) else json.dumps(line)
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode("utf-8", "surrogatepass") + b"\n")
        await self.process.stdin.drain()

    async def answer(self, request_id: Any) -> dict[str, Any]:
        """The answer to one request id (answers may come in any order)."""
        assert self.process.stdout is not None
        while request_id not in self.answers:
            line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
            assert line, f"server closed stdout (exit code {self.process.returncode})"
            message = json.loads(line)
            self.answers[message.get("id")] = message
            self.sizes[message.get("id")] = len(line)
        return self.answers.pop(request_id)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        await self.send(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        )
        return await self.answer(self.next_id)

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """The result of a tools/call (which may be an error result)."""
        message = await self.request("tools/call", {"name": tool, "arguments": arguments})
        assert "result" in message, message
        return message["result"]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kb = next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]
        return int(kb) / 1024


def error_text(result: dict[str, Any]) -> str:
    assert result.get("isError") is True, result
    return " ".join(block["text"] for block in result["content"] if block["type"] == "text")


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RawServer]:
    db = tmp_path_factory.mktemp("abuse") / "memory.db"
    with db.with_name("server.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "memento.server",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=server_env(db),
            limit=2**24,
        )
        raw = RawServer(process)
        try:
            hello = await raw.request(
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "abuse", "version": "0"},
                },
            )
            assert hello["result"]["serverInfo"]["name"] == "memento"
            await raw.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            yield raw
        finally:
            if process.returncode is None:
                assert process.stdin is not None
                process.stdin.close()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()


async def still_serving(server: RawServer) -> None:
    assert server.process.returncode is None
    assert (await server.request("ping"))["result"] == {}
    stats = await server.call("memento_stats")
    assert stats.get("isError") is not True, stats
    assert stats["structuredContent"]["schema_version"] >= 1


MALFORMED_LINES = [
    "{not json",
    "",
    "   ",
    "[]",
    "[1, 2",
    "42",
    '"a string"',
    "null",
    "\x00\x01\x02",
    '{"jsonrpc": "2.0"}',
    '{"jsonrpc": "2.0", "id": 7}',
    '{"jsonrpc": "1.0", "id": 8, "method": "ping"}',
    '{"id": 9, "method": "ping"}',
    '{"jsonrpc": "2.0", "method": "notifications/nonsense"}',
    "x" * 1_000_000,
]

# JSON that pydantic refuses though Python reads it: lone surrogates anywhere, and nesting
# past pydantic's depth limit (300) or Python's (3,000). The SDK dropped these without an
# answer, and the client waited forever (issue 16, item 11): each gets an error naming the
# field.
UNREADABLE_REQUESTS = {
    90: (
        '{"jsonrpc": "2.0", "id": 90, "method": "tools/call", "params": {"name": '
        '"memento_store", "arguments": {"content": "half \\ud800"}}}',
        -32602, "params.arguments.content is not valid Unicode",
    ),
    91: (
        '{"jsonrpc": "2.0", "id": 91, "method": "tools/call", "params": {"name": '
        '"memento_store", "arguments": {"content": "deep", "metadata": '
        + '{"a": ' * 300 + "{}" + "}" * 300 + "}}}",
        -32602, "params.arguments.metadata ... is nested too deeply",
    ),
    92: (
        '{"jsonrpc": "2.0", "id": 92, "method": "tools/call", "params": {"name": '
        '"memento_store", "arguments": {"content": "deep", "metadata": '
        + '{"a": ' * 3000 + "{}" + "}" * 3000 + "}}}",
        -32600, "the request is nested too deeply",
    ),
    93: (
        '{"jsonrpc": "2.0", "id": 93, "method": "tools/call", "params": {"name": '
        '"memento_recent", "arguments": {}, "_meta": {"progressToken": "\\udfff"}}}',
        -32602, "params._meta.progressToken is not valid Unicode",
    ),
    94: (
        '{"jsonrpc": "2.0", "id": 94, "method": "tools/call", "params": {"name": '
        '"memento_\\ud800store", "arguments": {"content": "x"}}}',
        -32602, "params.name is not valid Unicode",
    ),
    95: (
        '{"jsonrpc": "2.0", "id": 95, "method": "tools/call", "params": {"name": '
        '"memento_store", "arguments": {"content": "x", "metadata": {"\\ud800": 1}}}}',
        -32602, "a key in params.arguments.metadata is not valid Unicode",
    ),
}


async def test_malformed_lines_are_dropped_and_the_server_keeps_serving(
    server: RawServer,
) -> None:
    for line in MALFORMED_LINES:
        await server.send(line)
    await still_serving(server)

    # What the SDK does: a line it cannot read as a JSON-RPC message is dropped without an
    # answer, and the next request is answered. Should it ever answer them, the answer
    # must be an error.
    for request_id in (7, 8, 9):
        late = server.answers.pop(request_id, None)
        assert late is None or "error" in late or late["result"].get("isError"), late
    listed = await server.call("memento_recent", limit=5)
    assert listed["structuredContent"]["count"] == 0  # nothing was stored by any of them


async def test_every_request_python_can_read_gets_an_answer(server: RawServer) -> None:
    for line, _, _ in UNREADABLE_REQUESTS.values():
        await server.send(line)

    for request_id, (_, code, message) in UNREADABLE_REQUESTS.items():
        answer = await server.answer(request_id)
        assert answer["error"]["code"] == code, answer
        assert answer["error"]["message"].startswith(message), answer
    await still_serving(server)
    assert (await server.call("memento_recent", limit=5))["structuredContent"]["count"] == 0


async def test_unknown_method_gets_method_not_found(server: RawServer) -> None:
    answer = await server.request("memento/unknown")

    assert answer["error"]["code"] == -32601
    await still_serving(server)


async def test_request_without_a_tool_name_gets_invalid_params(server: RawServer) -> None:
    answer = await server.request("tools/call", {"arguments": {}})

    assert answer["error"]["code"] == -32602
    await still_serving(server)


async def test_unknown_tool_is_an_error_result(server: RawServer) -> None:
    result = await server.call("memento_delete_everything", really=True)

    assert "Unknown tool: memento_delete_everything" in error_text(result)
    await still_serving(server)


WRONG_TYPES = [
    ("memento_store", {"content": 5}, "content"),
    ("memento_store", {}, "content"),
    ("memento_store", {"content": "x", "importance": "high"}, "importance"),
    ("memento_store", {"content": "x", "importance": None}, "importance"),
    ("memento_store", {"content": "x", "metadata": "not an object"}, "metadata"),
    ("memento_store", {"content": "x", "subject_key": ["a"]}, "subject_key"),
    ("memento_store", {"content": ["x"]}, "content"),
    ("memento_store_many", {"items": "not a list"}, "items"),
    ("memento_store_many", {"items": [{"content": "x", "extra": 1}]}, "extra"),
    ("memento_store_many", {"items": [5]}, "items"),
    ("memento_recall", {"query": None}, "query"),
    ("memento_recall", {"query": "x", "limit": "lots"}, "limit"),
    ("memento_recall", {"query": "x", "limit": 2.5}, "limit"),
    ("memento_recall", {"query": "x", "include_archived": "maybe"}, "include_archived"),
    ("memento_recall", {"query": "x", "kind": 7}, "kind"),
    ("memento_recall_many", {"queries": "one string"}, "queries"),
    ("memento_recall_many", {"queries": [1, 2]}, "queries"),
    ("memento_forget", {"id": 12345678}, "id"),
    ("memento_forget", {"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "hard": "yes please"}, "hard"),
    ("memento_forget_prefix", {"prefix": {"a": 1}}, "prefix"),
    ("memento_update", {"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "importance": "high"}, "importance"),
    ("memento_recent", {"limit": -1}, "between 1 and 1000"),
    ("memento_browse", {"subject_key_prefix": 3}, "subject_key_prefix"),
    # One strict rule for every face (issue 16, item 12): what the API refuses, MCP refuses.
    ("memento_store", {"content": "x", "importance": True}, "importance"),
    ("memento_store_many", {"items": [{"content": "x", "importance": True}]}, "importance"),
    ("memento_update", {"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "importance": False}, "importance"),
    ("memento_recall", {"query": "x", "limit": "5"}, "limit"),
    ("memento_recent", {"limit": True}, "limit"),
    ("memento_forget", {"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "hard": 1}, "hard"),
    ("memento_store", {"content": "x", "importanse": 0.9}, "importanse is not an argument"),
    ("memento_recall", {"query": "x", "top_k": 3}, "top_k is not an argument"),
    ("memento_store", {"content": "x", "metadata": {"note": "a\x00b"}}, "metadata.note"),
    ("memento_store", {"content": "x", "metadata": {"k\x00": 1}}, "NUL"),
]


async def test_wrong_argument_types_are_error_results(server: RawServer) -> None:
    before = (await server.call("memento_stats"))["structuredContent"]

    for tool, arguments, mentioned in WRONG_TYPES:
        message = error_text(await server.call(tool, **arguments))
        assert mentioned in message, (tool, arguments, message)

    assert (await server.call("memento_stats"))["structuredContent"] == before
    await still_serving(server)


async def test_a_whole_number_written_as_a_float_is_a_limit(server: RawServer) -> None:
    # JSON Schema counts 5.0 as an integer; only "5", true and 2.5 are refused.
    result = await server.call("memento_recent", limit=5.0)

    assert result.get("isError") is not True, result


async def test_the_published_schemas_forbid_unknown_arguments(server: RawServer) -> None:
    tools = (await server.request("tools/list"))["result"]["tools"]

    assert tools and all(t["inputSchema"]["additionalProperties"] is False for t in tools)


async def test_a_thousand_rapid_calls_stay_bounded(server: RawServer) -> None:
    stored = await server.call(
        "memento_store_many",
        items=[{"content": f"Rapid-fire memory number {n}", "kind": "event"} for n in range(20)],
    )
    assert stored["structuredContent"]["created"] == 20
    tools = [
        ("memento_stats", {}),
        ("memento_recent", {"limit": 5}),
        ("memento_recall", {"query": "rapid-fire memory", "limit": 3}),
        ("memento_browse", {"subject_key_prefix": "user."}),
        ("memento_store", {"content": "", "kind": "event"}),  # an error result each time
    ]

    async def burst(start: int, count: int) -> None:
        ids = range(start, start + count)
        for n in ids:  # pipelined: every request is written before any answer is read
            tool, arguments = tools[n % len(tools)]
            await server.send(
                {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments},
                }
            )
        for n in ids:
            result = (await server.answer(n))["result"]
            tool, _ = tools[n % len(tools)]
            assert result.get("isError", False) is (tool == "memento_store"), result

    await burst(1, 100)
    after_100 = server.rss_mb()
    await burst(101, RAPID_CALLS - 100)
    after_1000 = server.rss_mb()

    assert after_1000 - after_100 < RSS_GROWTH_MB, (after_100, after_1000)
    assert not server.answers  # every answer was claimed: none extra, none lost
    await still_serving(server)
    recalled = await server.call("memento_recall", query="rapid-fire memory number 7", limit=1)
    assert recalled["structuredContent"]["memories"][0]["content"] == "Rapid-fire memory number 7"


# ---- the cost of one call (issue 16, item 10) --------------------------------------------


async def test_one_call_has_bounded_work_and_a_bounded_answer(server: RawServer) -> None:
    big = "é" * 99_000  # 198 KB of UTF-8, near the content limit
    await server.call(
        "memento_store_many",
        items=[{"content": f"Bulky memory {n} {big}", "kind": "event"} for n in range(4)],
    )

    too_many = await server.call("memento_recall_many", queries=["bulky"] * 21)
    assert "21 queries in one call, over the limit of 20" in error_text(too_many)
    too_deep = await server.call("memento_recall", query="bulky", limit=101)
    assert "between 1 and 100" in error_text(too_deep)

    # 20 queries x 4 bulky memories: 16 MB of memory text, twice, without a cap.
    answer = await server.request(
        "tools/call",
        {"name": "memento_recall_many", "arguments": {"queries": ["bulky memory"] * 20,
                                                      "limit": 100}},
    )
    assert server.sizes[server.next_id] < 1_500_000
    results = answer["result"]["structuredContent"]["results"]
    assert len(results) == 20
    shown = sum(r["count"] for r in results)
    left_out = sum(r.get("omitted", 0) for r in results)
    assert shown >= 1 and left_out >= 1 and shown + left_out >= 20 * 4
    assert "left out" in answer["result"]["content"][0]["text"]
    assert any("more characters left out" in m["content"] for r in results for m in r["memories"])

    listed = await server.request(
        "tools/call", {"name": "memento_recent", "arguments": {"limit": 1000}}
    )
    assert server.sizes[server.next_id] < 1_500_000
    assert listed["result"]["structuredContent"]["omitted"] >= 1
    await still_serving(server)
