"""What a new user stumbled on (issue 15), through the real CLI in a subprocess (no
terminal, as for an agent's shell) and the Python API, on real SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memento import Memory

MEMENTO = [sys.executable, "-m", "memento.cli"]


def run(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEMENTO, "--db", str(db), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


@pytest.fixture
def three(db_path: Path, embedder) -> list[str]:
    with Memory(db_path, embedder=embedder) as m:
        return [
            m.store("The shop uses Stripe", subject_key="project.shop.payments").id,
            m.store("The Shopify app syncs stock", subject_key="project.shopify.integration").id,
            m.store("The shop is deployed with fly", subject_key="project.shop").id,
        ]


def count(db: Path, embedder, archived: bool = True) -> int:
    with Memory(db, embedder=embedder) as m:
        return m.stats()["total" if archived else "live"]


# 1. destructive commands refuse without a terminal unless --yes
def test_destructive_commands_refuse_without_a_terminal(db_path, three, embedder):
    forget = run(db_path, "forget", three[0], "--hard", stdin="n\n")
    assert forget.returncode == 1
    assert "add --yes" in forget.stderr and "Delete 1 memory" in forget.stderr
    assert len(forget.stderr.strip().splitlines()) == 1
    init = run(db_path, "init", "--force")
    assert init.returncode == 1 and "all 3 memories" in init.stderr and "--yes" in init.stderr
    prefix = run(db_path, "forget-prefix", "project", "--hard")
    assert prefix.returncode == 1 and "Delete 3 memories" in prefix.stderr
    assert count(db_path, embedder) == 3  # nothing changed
    assert run(db_path, "forget", three[0], "--hard", "--yes").returncode == 0
    assert count(db_path, embedder) == 2
    assert run(db_path, "init", "--force", "--yes").returncode == 0
    assert count(db_path, embedder) == 0


# 2. prefixes match whole key segments
def test_forget_prefix_and_browse_match_whole_segments(db_path, three, embedder):
    out = run(db_path, "forget-prefix", "project.shop")
    assert out.returncode == 0 and "Archived 2 memories" in out.stdout
    with Memory(db_path, embedder=embedder) as m:
        live = {r.subject_key for r in m.browse("project")}
        assert live == {"project.shopify.integration"}
        assert m.forget_prefix("project.shop", dry_run=True) == 0
        assert [r.subject_key for r in m.browse("project.shopify.")] == [
            "project.shopify.integration"
        ]
        hits = m.recall("stock sync", subject_key_prefix="project.shop", include_archived=True)
        assert {r.subject_key for r in hits} == {"project.shop", "project.shop.payments"}


# 3. short ids are unique in practice
def test_a_batch_of_1000_gets_1000_distinct_short_ids(db_path, hash_embedder):
    with Memory(db_path, embedder=hash_embedder) as m:
        stored = m.store_many(
            [{"content": f"event number {n}", "kind": "event"} for n in range(1000)]
        )
        shorts = {r.short_id for r in stored}
        assert len(shorts) == 1000
        for record in stored[::50]:
            assert m.get(record.short_id).id == record.id
        assert sorted(r.id for r in stored) == [r.id for r in stored]  # still time-ordered


# 9. init says what it found
def test_init_on_an_existing_file_says_so(db_path, three):
    out = run(db_path, "init")
    assert out.returncode == 0
    assert "already exists: 3 memories, schema version 5" in out.stdout


# 12. storing the same thing again changes nothing
def test_restoring_identical_content_is_unchanged(db_path, embedder):
    first = run(db_path, "store", "Use pnpm, not npm", "-s", "project.web.pm")
    assert first.returncode == 0 and first.stdout.startswith("Stored ")
    with Memory(db_path, embedder=embedder) as m:
        before = m.get(m.browse("project.web.pm")[0].id)
    again = run(db_path, "store", "Use pnpm, not npm", "-s", "project.web.pm")
    assert again.stdout.startswith("Unchanged: ")
    with Memory(db_path, embedder=embedder) as m:
        after = m.get(before.id)
    assert after.updated_at == before.updated_at
    changed = run(db_path, "store", "Use pnpm 9, not npm", "-s", "project.web.pm")
    assert changed.stdout.startswith("Updated ")
