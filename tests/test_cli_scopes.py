"""Project scopes through the real CLI: the working directory is the project, --project
DIR names another, --global and user.* keys store for every project, --all-projects reads
everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MEMENTO = [sys.executable, "-m", "memento.cli"]


def run(db: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*MEMENTO, "--db", str(db), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=120,
    )
    return out


@pytest.fixture
def dirs(tmp_path: Path, db_location: Path | str) -> tuple[Path, Path, Path]:
    shop, blog = tmp_path / "shop", tmp_path / "blog"
    shop.mkdir()
    blog.mkdir()
    db = db_location
    assert run(db, tmp_path, "init").returncode == 0
    return db, shop, blog


def contents(out: subprocess.CompletedProcess[str]) -> set[str]:
    assert out.returncode == 0, out.stderr
    return {r["content"] for r in json.loads(out.stdout)}


def test_the_working_directory_is_the_project(dirs):
    db, shop, blog = dirs
    stored = run(db, shop, "store", "The shop uses Stripe for payments")
    assert stored.returncode == 0 and "(project shop)" in stored.stdout
    assert "(global)" in run(db, shop, "store", "I like tabs", "-s", "user.indent").stdout
    assert "(global)" in run(db, blog, "store", "Answer in English", "--global").stdout
    run(db, blog, "store", "The blog runs on Hugo")
    assert contents(run(db, shop, "list", "--json")) == {
        "The shop uses Stripe for payments",
        "I like tabs",
        "Answer in English",
    }
    assert contents(run(db, blog, "list", "--json")) == {
        "The blog runs on Hugo",
        "I like tabs",
        "Answer in English",
    }
    assert len(contents(run(db, blog, "list", "--json", "--all-projects"))) == 4
    assert contents(run(db, blog, "list", "--json", "--project", str(shop))) == contents(
        run(db, shop, "list", "--json")
    )
    # the project is shown in listings
    listing = run(db, blog, "list", "--all-projects").stdout
    assert "@shop" in listing and "@blog" in listing
    stats = run(db, shop, "stats").stdout
    assert "project:         shop (and global)" in stats


def test_search_stays_in_the_project(dirs):
    db, shop, blog = dirs
    run(db, shop, "store", "Deploy the shop with fly deploy --remote-only")
    run(db, blog, "store", "Deploy the blog with netlify deploy --prod")
    found = contents(run(db, blog, "search", "how do I deploy", "--json"))
    assert found == {"Deploy the blog with netlify deploy --prod"}
    both = contents(run(db, blog, "search", "how do I deploy", "--json", "-A"))
    assert len(both) == 2


def test_store_into_another_project_and_import_default_global(dirs, tmp_path):
    db, shop, blog = dirs
    assert (
        "(project shop)"
        in run(db, blog, "store", "x marks the spot", "--project", str(shop)).stdout
    )
    source = tmp_path / "memory.json"
    source.write_text(
        json.dumps(
            {
                "type": "entity",
                "name": "Alice",
                "entityType": "person",
                "observations": ["Alice maintains the billing service"],
            }
        )
        + "\n"
    )
    assert run(db, shop, "import", str(source)).returncode == 0
    everything = json.loads(run(db, shop, "list", "--json", "-A").stdout)
    imported = [r for r in everything if "Alice" in r["content"]]
    assert imported and all(r["scope"] == "global" for r in imported)
    assert run(db, blog, "import", str(source), "--project", str(blog)).returncode == 0


def test_a_missing_project_directory_is_a_usage_error(dirs, tmp_path):
    db, shop, _ = dirs
    out = run(db, shop, "list", "--project", str(tmp_path / "nope"))
    assert out.returncode == 2 and "does not exist" in out.stderr
