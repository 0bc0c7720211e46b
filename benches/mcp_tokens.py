"""How many characters an MCP recall costs the agent: the size of one 10-result
``memento_recall`` as the client receives it.

A real server over stdio with the real model, seeded through ``memento_store_many`` with a
fixed set of 30 memories (facts, events and lessons; user and project keys), run from a
directory named ``shop`` so project memories show one fixed project name. Then one recall
with ``limit=10`` and a fixed query. Measured:

- ``text_chars``: the characters of the text content blocks (what clients that read
  ``content`` give the model);
- ``structured_chars``: ``structuredContent`` as compact JSON (what Claude Code and VS Code
  give the model instead, when it is present);
- ``total_chars``: the two added, the same data as sent twice;
- ``wire_bytes``: the whole ``CallToolResult`` as the JSON-RPC result, UTF-8;
- ``content_chars``: the memory text itself in the 10 results (what cannot be saved);
- ``text_tokens``, ``structured_tokens``: the two forms in tokens as memento's context
  budget counts them (``memento.context.count_tokens``: WordPiece, at least a quarter of
  the bytes), a stand-in for the agent's own tokenizer.

Prints JSON (``--show`` also prints both forms as received). ``--source DIR`` serves from
another tree's ``memento`` package, e.g. the last commit's, for a before/after comparison:

    python benches/mcp_tokens.py
    python benches/mcp_tokens.py --show
    mkdir -p /tmp/before && git archive HEAD memento | tar -x -C /tmp/before
    python benches/mcp_tokens.py --source /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from memento.context import count_tokens

QUERY = "how do we deploy and test the shop project"
LIMIT = 10
MEMORIES: list[dict[str, Any]] = [
    {
        "content": "The user prefers dark mode in every editor and terminal",
        "subject_key": "user.editor.theme",
        "importance": 0.8,
    },
    {
        "content": "The user's shell is fish, with starship for the prompt",
        "subject_key": "user.shell",
    },
    {
        "content": "The user writes Python 3.11 with type hints everywhere and ruff for linting",
        "subject_key": "user.python.style",
        "importance": 0.7,
    },
    {
        "content": "The user's timezone is Europe/Lisbon; schedule nothing before 9:00 local time",
        "subject_key": "user.timezone",
    },
    {
        "content": (
            "The user likes short commit messages in the imperative mood, under 60 characters"
        ),
        "subject_key": "user.git.commit_style",
    },
    {
        "content": (
            "The shop project deploys with `make deploy ENV=staging` from the main branch only, "
            "after CI is green"
        ),
        "subject_key": "project.shop.deploy",
        "importance": 0.9,
    },
    {
        "content": (
            "The shop project's tests run with `pytest -x -n 4`; the database tests need `docker "
            "compose up db` first"
        ),
        "subject_key": "project.shop.test_command",
        "importance": 0.8,
    },
    {
        "content": (
            "The shop project uses PostgreSQL 16 on port 5433 in development, 5432 in staging and "
            "production"
        ),
        "subject_key": "project.shop.database",
    },
    {
        "content": (
            "The shop project's CI is GitHub Actions; the slow end-to-end suite runs nightly, not "
            "on pull requests"
        ),
        "subject_key": "project.shop.ci",
    },
    {
        "content": (
            "The shop project's frontend is a Vite + React app under web/, built with `npm run "
            "build`"
        ),
        "subject_key": "project.shop.frontend",
    },
    {
        "content": (
            "Staging for the shop project lives at staging.shop.example.com behind the company VPN"
        ),
        "subject_key": "project.shop.staging_url",
    },
    {
        "content": (
            "Always run `make migrate` before the shop tests after pulling, or the ORM tests fail "
            "with a missing column error"
        ),
        "kind": "lesson",
        "importance": 0.8,
    },
    {
        "content": (
            "Never deploy the shop project on a Friday afternoon: the on-call rota is thin and "
            "rollbacks need two people"
        ),
        "kind": "lesson",
        "importance": 0.7,
    },
    {
        "content": (
            "When the shop deploy hangs at 'waiting for health check', restart the worker pool "
            "before retrying the deploy"
        ),
        "kind": "lesson",
    },
    {
        "content": (
            "Pin the Node version with .nvmrc in the shop frontend; a Node upgrade broke the "
            "build silently once"
        ),
        "kind": "lesson",
    },
    {
        "content": (
            "2026-11-20: deployed shop v2.3 to production; the payment webhook needed a manual "
            "retry afterwards"
        ),
        "kind": "event",
        "created_at": "2026-11-20T16:00:00Z",
    },
    {
        "content": (
            "2026-11-18: the shop staging database ran out of disk; grew the volume from 20 to 50 "
            "GB"
        ),
        "kind": "event",
        "created_at": "2026-11-18T10:30:00Z",
    },
    {
        "content": (
            "2026-11-12: moved the shop project from Travis CI to GitHub Actions; build time went "
            "from 14 to 6 minutes"
        ),
        "kind": "event",
        "created_at": "2026-11-12T14:00:00Z",
    },
    {
        "content": (
            "2026-11-05: the shop test suite became flaky on the checkout tests; traced to a "
            "shared Redis between workers"
        ),
        "kind": "event",
        "created_at": "2026-11-05T09:00:00Z",
    },
    {
        "content": (
            "2026-10-28: released shop v2.2 with the new search page; feedback from the team was "
            "good"
        ),
        "kind": "event",
        "created_at": "2026-10-28T17:00:00Z",
    },
    {
        "content": (
            "The billing service is written in Go and deploys through Argo CD from the infra "
            "repository"
        ),
        "subject_key": "project.billing.deploy",
    },
    {
        "content": (
            "The billing service's tests need the STRIPE_TEST_KEY variable set; ask the user "
            "where it is stored"
        ),
        "subject_key": "project.billing.tests",
    },
    {
        "content": "The design team meets on Thursdays at 14:00 to review the shop's UI changes",
        "kind": "event",
        "created_at": "2026-11-19T14:00:00Z",
    },
    {
        "content": "Lunch with the platform team on Friday to talk about the Kubernetes upgrade",
        "kind": "event",
        "created_at": "2026-11-21T12:00:00Z",
    },
    {
        "content": "The user's laptop is a ThinkPad X1 Carbon running Fedora 41",
        "subject_key": "user.machine",
    },
    {
        "content": (
            "The user reviews pull requests in the morning and prefers small, focused changes"
        ),
        "subject_key": "user.review_habits",
    },
    {
        "content": (
            "Use `uv pip install -e .[dev]` rather than plain pip in the shop backend; the lock "
            "file assumes uv"
        ),
        "kind": "lesson",
    },
    {
        "content": (
            "The shop project's feature flags live in config/flags.yaml and are reloaded without "
            "a restart"
        ),
        "subject_key": "project.shop.feature_flags",
    },
    {
        "content": (
            "The shop project's error tracking is Sentry; the DSN is in the deploy secrets, never "
            "in the repository"
        ),
        "subject_key": "project.shop.errors",
    },
    {
        "content": (
            "The shop backend is Django 5.1 with Celery workers for e-mail and payment webhooks"
        ),
        "subject_key": "project.shop.backend",
    },
]


def _env(db: Path, source: str | None = None) -> dict[str, str]:
    env = {"MEMENTO_PATH": str(db), "HF_HUB_OFFLINE": "1", "PATH": os.environ.get("PATH", "")}
    if source:
        env["PYTHONPATH"] = source
    if os.environ.get("MEMENTO_EMBEDDING_MODEL"):
        env["MEMENTO_EMBEDDING_MODEL"] = os.environ["MEMENTO_EMBEDDING_MODEL"]
    return env


def sizes(result: Any) -> dict[str, int]:
    """The sizes of one ``CallToolResult`` as the client received it."""
    text = "".join(block.text for block in result.content if block.type == "text")
    structured = result.structured_content
    structured_chars = (
        len(json.dumps(structured, ensure_ascii=False, separators=(",", ":")))
        if structured is not None
        else 0
    )
    memories = (structured or {}).get("memories", [])
    wire = result.model_dump_json(by_alias=True, exclude_none=True)
    compact = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    return {
        "results": len(memories),
        "content_chars": sum(len(m["content"]) for m in memories),
        "text_chars": len(text),
        "structured_chars": structured_chars,
        "total_chars": len(text) + structured_chars,
        "wire_bytes": len(wire.encode()),
        "text_tokens": count_tokens(text),
        "structured_tokens": count_tokens(compact) if structured is not None else 0,
    }


async def seed(session: ClientSession) -> None:
    """Store the fixed memories (the same calls before and after a format change)."""
    result = await session.call_tool("memento_store_many", {"items": MEMORIES})
    if result.is_error:
        raise RuntimeError(f"seeding failed: {result.content}")


async def _measure(show: bool, source: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="memento-tokens-") as tmp:
        project = Path(tmp) / "shop"
        project.mkdir()
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "memento.server"],
            env=_env(Path(tmp) / "memory.db", source),
            cwd=project,
        )
        with (Path(tmp) / "server.log").open("w") as log:
            async with (
                stdio_client(params, errlog=log) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                await seed(session)
                result = await session.call_tool("memento_recall", {"query": QUERY, "limit": LIMIT})
        if result.is_error:
            raise RuntimeError(f"recall failed: {result.content}")
        if show:
            for block in result.content:
                if block.type == "text":
                    print(block.text, file=sys.stderr)
            print(json.dumps(result.structured_content, ensure_ascii=False), file=sys.stderr)
        return {"query": QUERY, "limit": LIMIT, **sizes(result)}


def measure(show: bool = False, source: str | None = None) -> dict[str, Any]:
    return anyio.run(_measure, show, source)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print both forms (to stderr)")
    parser.add_argument("--source", help="a directory holding the memento package to serve")
    args = parser.parse_args()
    print(json.dumps(measure(args.show, args.source), indent=2))
