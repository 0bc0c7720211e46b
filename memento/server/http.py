"""The HTTP transport: the same tools, resource and prompt over MCP Streamable HTTP at
``/mcp`` (the SDK's transport), for many clients at once, each with a bearer token.

``memento start --http [--host 127.0.0.1] [--port 8765]``. What it guarantees:

- **Nothing open by accident.** Every request needs ``Authorization: Bearer <token>``
  (``memento token create``); without a valid one it gets 401 before anything reads its
  body or touches memory. The server will not start while no token exists (no client could
  connect, and a server that starts "open for now" is how memory ends up exposed), whether
  it listens on loopback or not. It binds to 127.0.0.1 unless told otherwise.
- **Host and Origin checked** (the SDK's transport security): a request whose ``Host`` is
  not the address it listens on (or an ``--allow-host`` name), or whose ``Origin`` is a web
  page elsewhere, is refused (421, 403), so a web page cannot reach it by DNS rebinding.
- **Bodies capped** at :data:`MAX_BODY_BYTES` (413 beyond it).
- **A token is never logged or stored**: the store keeps its SHA-256; logs name the token.
- **One memory, one model, many clients**: one open :class:`Memory` and one loaded model per
  process; each tool call runs in a worker thread on a view of that memory with the
  client's project and token (:meth:`Memory.granted`), so a slow call does not hold up the
  others' network traffic (their store and recall steps still take turns on the one
  database connection).
- **A clean stop** on SIGINT or SIGTERM: open requests get :data:`STOP_GRACE_S` to finish,
  the memory is closed (a write in progress commits first), and the process exits.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AccessError, InvalidInputError, MementoError
from ..memory import Memory
from . import create_server
from .tools import GRANT_KEY, log

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
PATH = "/mcp"
# The largest request body taken. The largest valid single memory is 100,000 characters
# (validate.MAX_CONTENT_CHARS): 400 KB as UTF-8 JSON, 1.2 MB if a client escapes every
# character as a \\u surrogate pair; 2 MiB fits that with its metadata and envelope. The
# SDK's default is 4 MiB; a body is held whole while it is parsed (several times its size),
# so with 20 clients at once the cap bounds what they can make the server hold.
MAX_BODY_BYTES = 2 * 1024 * 1024
# Seconds open requests get to finish after SIGINT/SIGTERM before they are cut off (a
# recall takes tens of milliseconds; an open event stream would otherwise hold the stop).
STOP_GRACE_S = 5.0
# Names a request's Host header may carry when the server listens on loopback.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
HANDLED = (signal.SIGINT, signal.SIGTERM)


def serve(
    db_path: str | None,
    project: str | os.PathLike[str] | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allow_hosts: tuple[str, ...] = (),
) -> None:
    """Serve memento over HTTP until SIGINT or SIGTERM. Raises a MementoError (before
    listening) when the database cannot be opened, no token exists, or the address cannot
    be listened on."""
    memory = Memory(path=db_path, project=project)
    try:
        if not memory.has_tokens():
            raise AccessError(
                "no token exists, so no client could connect: create one with `memento "
                "token create NAME` (it prints the token once) and start the server again"
            )
        sock, loopback = listen(host, port)
    except BaseException:
        memory.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}{PATH}"
    where = memory.backend.location  # a file path, or a URL without its password
    count = len(memory.tokens())
    banner = (
        f"memento MCP server on {url} serving {where} ({count} token"
        f"{'' if count == 1 else 's'}); Ctrl-C to stop"
    )
    if not loopback:
        banner += "; plain HTTP: put TLS in front (a reverse proxy) for other machines"
    server = create_server(db_path, project, memory=memory)
    app = server.streamable_http_app(
        streamable_http_path=PATH,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=security(host, bound_host, allow_hosts),
        host=host,
    )
    config = uvicorn.Config(
        BearerAuth(app, server.memento_memory),  # type: ignore[attr-defined]
        lifespan="on",
        log_level="warning",
        access_log=False,  # paths only, never headers; off anyway: one line per call is noise
        server_header=False,
        timeout_graceful_shutdown=int(STOP_GRACE_S),
    )
    runner = _Uvicorn(config, banner)
    runner.run(sockets=[sock])
    if runner.stopped_by:  # as `memento start` on stdio: 130 for Ctrl-C, 143 for SIGTERM
        raise SystemExit(128 + runner.stopped_by)


def listen(host: str, port: int) -> tuple[socket.socket, bool]:
    """A listening socket on ``host``:``port`` (0: any free port) and whether the address
    is loopback."""
    if not 0 <= port <= 65535:
        raise InvalidInputError(f"port {port} is out of range: give 0 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInputError(
            f"cannot listen on {host[:100]!r}: {exc}: give an address such as 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InvalidInputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}: choose another --port "
            "(or stop what uses it)"
        ) from None
    sock.set_inheritable(True)
    return sock, _is_loopback(str(address[0]))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def security(host: str, bound: str, allow_hosts: tuple[str, ...]) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host names a request may carry (loopback names, the
    address listened on, or for a wildcard address this machine's names and addresses, and
    ``allow_hosts``: the names a reverse proxy passes on), and the web origins of those
    names. A request without Origin (every
    non-browser client) passes the origin check."""
    names = list(LOOPBACK_NAMES)
    here: list[str] = []
    if host in ("0.0.0.0", "::", ""):  # every interface: this machine's names and addresses
        here = _this_machine()
    for name in (host, bound, *here, *allow_hosts):
        if not name or name in ("0.0.0.0", "::"):
            continue
        names.append(f"[{name}]" if ":" in name and not name.startswith("[") else name)
    names = list(dict.fromkeys(names))
    hosts = [n for name in names for n in (name, f"{name}:*")]
    origins = [
        o for name in names for scheme in ("http", "https") for o in (
            f"{scheme}://{name}", f"{scheme}://{name}:*"
        )
    ]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def _this_machine() -> list[str]:
    names = [socket.gethostname(), socket.getfqdn()]
    with contextlib.suppress(OSError):
        names += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)]
    return list(dict.fromkeys(n.split("%", 1)[0] for n in names if n))


class BearerAuth:
    """Refuse every HTTP request without a valid bearer token (401, its body unread, memory
    untouched); hand the others on with the token's :class:`Grant` in the ASGI scope and as
    the SDK's authenticated user (the SDK then lets a session be used only with the token
    that opened it)."""

    def __init__(self, app: ASGIApp, memory: Any) -> None:
        self.app = app
        self.memory = memory  # () -> the server's open Memory, or None before the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        memory: Memory | None = self.memory()
        grant = None
        problem = "send the header Authorization: Bearer <token> (`memento token create NAME`)"
        if scheme.lower() == "bearer" and token:
            problem = "the bearer token is not valid (unknown, revoked or malformed)"
            if memory is not None:
                try:
                    grant = await anyio.to_thread.run_sync(memory.check_token, token)
                except MementoError as exc:
                    log.error("cannot check a token: %s", exc)
                    await _refuse(scope, receive, send, 503, "temporarily_unavailable", str(exc))
                    return
        if grant is None:
            client = scope.get("client") or ("?", 0)
            log.info("refused a request from %s: %s", client[0], problem)
            await _refuse(scope, receive, send, 401, "invalid_token", problem)
            return
        scope[GRANT_KEY] = grant
        scope["user"] = AuthenticatedUser(
            # the SDK's record of who opened a session: the token's name, never the token
            AccessToken(token=f"memento-token:{grant.name}", client_id=grant.name, scopes=[])
        )
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, error: str, description: str
) -> None:
    response = JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": f'Bearer realm="memento", error="{error}"'}
        if status == 401 else None,
    )
    await response(scope, receive, send)


class _Uvicorn(uvicorn.Server):
    """uvicorn, saying where it listens once it does, with a backstop on stopping: a stop
    signal that has not ended the process in twice the grace period (a call stuck in a
    worker thread) ends it."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self.banner = banner
        self.stopped_by = 0  # the signal that stopped it

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without raising the signal again once stopped (which made SIGTERM
        kill the process and Ctrl-C a KeyboardInterrupt): ``serve`` exits 128 + signal."""
        handlers = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED}
        try:
            yield
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(self.banner, file=sys.stderr, flush=True)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopped_by = self.stopped_by or sig
        if not self.should_exit:
            backstop = threading.Timer(2 * STOP_GRACE_S, os._exit, (128 + sig,))
            backstop.daemon = True
            backstop.start()
        super().handle_exit(sig, frame)


logging.getLogger("mcp.server.streamable_http_manager").setLevel(logging.WARNING)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MAX_BODY_BYTES", "BearerAuth", "serve"]
