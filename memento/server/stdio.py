"""The stdio transport, with every request answered.

The SDK's stdio reader parses each line with pydantic's JSON parser and drops a line that
parser refuses, without a word to the client, which then waits forever for its answer.
Python's parser reads two kinds of such lines: a string holding a lone surrogate (JSON
may escape ``\\ud800``; no UTF-8 text holds it), and nesting deeper than pydantic goes
(~200 levels, so metadata nested 200 levels deep dropped the whole ``tools/call``). Each
line is screened before the SDK sees it: a request with either problem gets a JSON-RPC
error naming the field, with its id; every other line goes to the SDK unchanged (a line
that is not JSON, or has no id, has nothing to answer to).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from io import TextIOWrapper
from typing import Any, BinaryIO

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from ..validate import MAX_METADATA_DEPTH

# Deepest a request may nest: metadata's own limit plus the envelope around it
# (message > params > arguments > metadata, or > items > [n] > metadata for store_many),
# with room to spare, and far below the ~200 levels past which pydantic refuses the line.
MAX_MESSAGE_DEPTH = MAX_METADATA_DEPTH + 16

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602

# A \uD800-\uDFFF escape: the only way a lone surrogate reaches a line read as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
# The id of a request too deep for Python's parser, looked for before its params.
_ID = re.compile(r'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')


def screen(line: str) -> dict[str, Any] | None:
    """The JSON-RPC error answering ``line``, or None to hand the line to the SDK."""
    # The common line has neither problem: two counts and a search decide it.
    deep = line.count("{") + line.count("[") > MAX_MESSAGE_DEPTH
    if not deep and not _SURROGATE_ESCAPE.search(line):
        return None
    try:
        message = json.loads(line)
    except RecursionError:
        return _error(
            _id_before_params(line),
            INVALID_REQUEST,
            f"the request is nested too deeply (over {MAX_MESSAGE_DEPTH} levels): metadata "
            f"may nest at most {MAX_METADATA_DEPTH} levels",
        )
    except ValueError:
        return None  # not JSON: the SDK's own handling
    if not isinstance(message, dict) or "id" not in message:
        return None  # a notification, or no request at all: nothing to answer to
    problem = _problem(message)
    if problem is None:
        return None
    code, text = problem
    return _error(message["id"], code, text)


def _problem(message: dict[str, Any]) -> tuple[int, str] | None:
    """The first lone surrogate or excess depth in ``message``, walked without recursion:
    (error code, message naming the field)."""
    stack: list[tuple[Any, int, str]] = [(message, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        code = INVALID_PARAMS if where.startswith("params") else INVALID_REQUEST
        if isinstance(item, str):
            position = _lone_surrogate(item)
            if position is not None:
                return code, (
                    f"{where or 'the request'} is not valid Unicode (lone surrogate at "
                    f"position {position}): send UTF-8 text"
                )
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_MESSAGE_DEPTH:
            return code, (
                f"{_field(where)} is nested too deeply (over {MAX_MESSAGE_DEPTH} levels with "
                f"the request around it): metadata may nest at most {MAX_METADATA_DEPTH} levels"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if where else key
                position = _lone_surrogate(key)
                if position is not None:
                    return code, (
                        f"a key in {where or 'the request'} is not valid Unicode (lone "
                        f"surrogate at position {position}): send UTF-8 text"
                    )
                stack.append((child, depth + 1, name[:200]))
        else:
            stack.extend((child, depth + 1, f"{where}[{n}]"[:200]) for n, child in enumerate(item))
    return None


def _field(where: str) -> str:
    """The first few segments of a path: ``params.arguments.metadata`` rather than 200 levels
    of ``.a``."""
    parts = where.split(".")
    return ".".join(parts[:3]) + (" ..." if len(parts) > 3 else "")


def _lone_surrogate(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _id_before_params(line: str) -> Any:
    head = line.split('"params"', 1)[0]
    found = _ID.search(head)
    return json.loads(found.group(1)) if found else None


def _error(request_id: Any, code: int, text: str) -> dict[str, Any]:
    valid = isinstance(request_id, int | str) and not isinstance(request_id, bool)
    if isinstance(request_id, str) and _lone_surrogate(request_id) is not None:
        valid = False
    return {
        "jsonrpc": "2.0",
        "id": request_id if valid else None,
        "error": {"code": code, "message": text},
    }


class _Screened:
    """The wire (``stdin``) as lines for the SDK's reader, minus the requests answered
    here."""

    def __init__(self, wire: BinaryIO) -> None:
        self.wire = wire
        self.answers: anyio.abc.ObjectSendStream[SessionMessage] | None = None
        self.ready = anyio.Event()

    async def lines(self) -> AsyncIterator[str]:
        # As the SDK reads stdin: UTF-8, undecodable bytes replaced.
        source = anyio.wrap_file(TextIOWrapper(self.wire, encoding="utf-8", errors="replace"))
        async for line in source:
            answer = screen(line)
            if answer is None:
                yield line
                continue
            await self.ready.wait()
            assert self.answers is not None
            error = types.JSONRPCError.model_validate(answer)
            await self.answers.send(SessionMessage(error))


async def serve(server: MCPServer[Any]) -> None:
    """Serve ``server`` over stdin and stdout until the client closes stdin."""
    with _claimed_stdin() as wire:
        screened = _Screened(wire)
        async with stdio_server(stdin=screened.lines()) as (read_stream, write_stream):  # type: ignore[arg-type]
            screened.answers = write_stream
            screened.ready.set()
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


@contextmanager
def _claimed_stdin() -> Iterator[BinaryIO]:
    """The wire on a private descriptor, and fd 0 on the null device while serving, as the
    SDK's transport does for the stdin it reads itself (explicit streams skip that): a
    child process or a stray read then meets EOF rather than eating protocol lines."""
    try:
        private = os.dup(0)
    except OSError:  # no usable fd 0: read what sys.stdin has
        yield sys.stdin.buffer
        return
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    # closefd=False: the reading worker thread may still block on it after serving ends.
    wire = os.fdopen(private, "rb", closefd=False)
    try:
        yield wire
    finally:
        with suppress(OSError):
            os.dup2(private, 0)
