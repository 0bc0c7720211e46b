"""What a new user stumbled on (issue 15), through the real CLI in a subprocess (no
terminal, as for an agent's shell) and the Python API, on real SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memento import Memory
from tests.conftest import latest_schema

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
def three(db_location: Path, embedder) -> list[str]:
    with Memory(db_location, embedder=embedder) as m:
        return [
            m.store("The shop uses Stripe", subject_key="project.shop.payments").id,
            m.store("The Shopify app syncs stock", subject_key="project.shopify.integration").id,
            m.store("The shop is deployed with fly", subject_key="project.shop").id,
        ]


def count(db: Path, embedder, archived: bool = True) -> int:
    with Memory(db, embedder=embedder) as m:
        return m.stats()["total" if archived else "live"]


# 1. destructive commands refuse without a terminal unless --yes
def test_destructive_commands_refuse_without_a_terminal(db_location, three, embedder):
    forget = run(db_location, "forget", three[0], "--hard", stdin="n\n")
    assert forget.returncode == 1
    assert "add --yes" in forget.stderr and "Delete 1 memory" in forget.stderr
    assert len(forget.stderr.strip().splitlines()) == 1
    init = run(db_location, "init", "--force")
    assert init.returncode == 1 and "all 3 memories" in init.stderr and "--yes" in init.stderr
    prefix = run(db_location, "forget-prefix", "project", "--hard")
    assert prefix.returncode == 1 and "Delete 3 memories" in prefix.stderr
    assert count(db_location, embedder) == 3  # nothing changed
    assert run(db_location, "forget", three[0], "--hard", "--yes").returncode == 0
    assert count(db_location, embedder) == 2
    assert run(db_location, "init", "--force", "--yes").returncode == 0
    assert count(db_location, embedder) == 0


# 2. prefixes match whole key segments
def test_forget_prefix_and_browse_match_whole_segments(db_location, three, embedder):
    out = run(db_location, "forget-prefix", "project.shop")
    assert out.returncode == 0 and "Archived 2 memories" in out.stdout
    with Memory(db_location, embedder=embedder) as m:
        live = {r.subject_key for r in m.browse("project")}
        assert live == {"project.shopify.integration"}
        assert m.forget_prefix("project.shop", dry_run=True) == 0
        assert [r.subject_key for r in m.browse("project.shopify.")] == [
            "project.shopify.integration"
        ]
        hits = m.recall("stock sync", subject_key_prefix="project.shop", include_archived=True)
        assert {r.subject_key for r in hits} == {"project.shop", "project.shop.payments"}


# 3. short ids are unique in practice
def test_a_batch_of_1000_gets_1000_distinct_short_ids(db_location, hash_embedder):
    with Memory(db_location, embedder=hash_embedder) as m:
        stored = m.store_many(
            [{"content": f"event number {n}", "kind": "event"} for n in range(1000)]
        )
        shorts = {r.short_id for r in stored}
        assert len(shorts) == 1000
        for record in stored[::50]:
            assert m.get(record.short_id).id == record.id
        assert sorted(r.id for r in stored) == [r.id for r in stored]  # still time-ordered


# 9. init says what it found
def test_init_on_an_existing_file_says_so(db_location, three):
    out = run(db_location, "init")
    assert out.returncode == 0
    assert f"already exists: 3 memories, schema version {latest_schema(db_location)}" in out.stdout


# 12. storing the same thing again changes nothing
def test_restoring_identical_content_is_unchanged(db_location, embedder):
    first = run(db_location, "store", "Use pnpm, not npm", "-s", "project.web.pm")
    assert first.returncode == 0 and first.stdout.startswith("Stored ")
    with Memory(db_location, embedder=embedder) as m:
        before = m.get(m.browse("project.web.pm")[0].id)
    again = run(db_location, "store", "Use pnpm, not npm", "-s", "project.web.pm")
    assert again.stdout.startswith("Unchanged: ")
    with Memory(db_location, embedder=embedder) as m:
        after = m.get(before.id)
    assert after.updated_at == before.updated_at
    changed = run(db_location, "store", "Use pnpm 9, not npm", "-s", "project.web.pm")
    assert changed.stdout.startswith("Updated ")


# 7. a database path that cannot be used is one line and exit 1, not a usage banner
def test_an_unusable_database_path_is_one_line(tmp_path):
    for target in (tmp_path, tmp_path / "file.txt" / "x.db"):
        (tmp_path / "file.txt").write_text("not a directory")
        out = run(target, "list")
        assert out.returncode == 1 and "Usage:" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("Error: ")


# 8. a new database is never created quietly, and hints carry the path
def test_a_new_database_is_announced_and_hints_carry_the_path(tmp_path):
    typo = tmp_path / "memroy.db"
    listed = run(typo, "list")
    assert listed.returncode == 1 and f"memento init --db {typo}" in listed.stderr
    stored = run(typo, "store", "hello")
    assert stored.returncode == 0 and f"Created a new memento database at {typo}" in stored.stderr
    again = run(typo, "store", "hello again")
    assert "Created" not in again.stderr
    verify = run(tmp_path / "none.db", "verify")
    assert verify.returncode == 1 and len(verify.stderr.strip().splitlines()) == 1
    assert "memento init --db" in verify.stderr


# 10. import_data explains what it expected
def test_import_data_errors_point_at_the_right_command(db_location, three, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "abc", "content": "x"}\n')
    out = run(db_location, "import_data", str(bad))
    assert out.returncode == 1 and "not a memento id" in out.stderr
    foreign = tmp_path / "memory.json"
    foreign.write_text('{"type": "entity", "name": "A", "entityType": "p", "observations": []}\n')
    out = run(db_location, "import_data", str(foreign))
    assert out.returncode == 1 and "memento import" in out.stderr


# 11. positional paths read the obvious way, or say how
def test_export_to_a_file_and_positional_hints(db_location, three, tmp_path):
    backup = tmp_path / "backup.jsonl"
    out = run(db_location, "export", str(backup))
    assert out.returncode == 0 and "Exported 3 memories" in out.stderr
    assert len(backup.read_text().splitlines()) == 3
    assert run(db_location, "export", "-o", str(tmp_path / "b2.jsonl")).returncode == 0
    old_form = subprocess.run(  # `memento export DB` still reads DB
        [*MEMENTO, "export", str(db_location)], capture_output=True, text=True, timeout=120
    )
    assert len(old_form.stdout.splitlines()) == 3
    swapped = run(db_location, "import_data", str(backup), str(db_location))
    assert swapped.returncode == 2 and "the database comes first" in swapped.stderr
    sqlite = run(db_location, "import_data", str(db_location))
    assert sqlite.returncode == 2 and "not a `memento export` file" in sqlite.stderr


# frictions: update, restore-prefix, list filters, store --created-at, empty search
def test_the_commands_users_reached_for(db_location, three, embedder):
    out = run(db_location, "update", three[0][:12], "--content", "The shop uses Adyen", "-i", "0.9")
    assert out.returncode == 0 and out.stdout.startswith("Updated ")
    with Memory(db_location, embedder=embedder) as m:
        assert m.get(three[0]).content == "The shop uses Adyen"
        assert m.get(three[0]).importance == 0.9
    assert "Archived 2" in run(db_location, "forget-prefix", "project.shop").stdout
    assert "Restored 2 memories" in run(db_location, "restore-prefix", "project.shop").stdout
    listed = run(db_location, "list", "--prefix", "project.shop").stdout.splitlines()
    assert len(listed) == 2 and all("shopify" not in line for line in listed)
    old = run(
        db_location, "store", "Launched the shop", "-k", "event", "--created-at", "2026-01-05"
    )
    assert old.returncode == 0
    recent = run(db_location, "list", "--since", "2026-02-01").stdout
    assert "Launched the shop" not in recent and "Adyen" in recent
    january = run(db_location, "list", "--until", "2026-01-31").stdout
    assert "2026-01-05" in january and "Launched the shop" in january
    empty = run(db_location, "search", "")
    assert empty.returncode == 1 and "memento list" in empty.stderr


def test_subject_keys_have_one_rule(db_location, embedder):
    from memento import InvalidInputError

    with Memory(db_location, embedder=embedder) as m:
        assert m.store("dark", subject_key="User.Theme").subject_key == "user.theme"
        assert m.store("light", subject_key="user.theme").action == "updated"
        for bad in ("user theme", "user..theme", ".user", "user."):
            with pytest.raises(InvalidInputError):
                m.store("x", subject_key=bad)
        assert [r.subject_key for r in m.browse("USER")] == ["user.theme"]


def test_importers_turn_foreign_keys_into_valid_ones(db_location, hash_embedder, tmp_path):
    import sqlite3

    from memento.importers import import_source

    source = tmp_path / "pmb.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE memories (content TEXT, subject_key TEXT)")
        conn.execute("INSERT INTO memories VALUES ('Deploys on Fridays', ' Project Shop..Deploy ')")
    with Memory(db_location, embedder=hash_embedder) as m:
        import_source(m, source)
        (imported,) = m.browse("project_shop")
        assert imported.subject_key == "project_shop.deploy"
        assert imported.source == "pmb:pmb.db"  # where it came from: importer and file


def test_search_min_score_says_nothing_is_relevant(db_location, three):
    none = run(db_location, "search", "a recipe for banana bread", "--min-score", "0.5")
    assert none.returncode == 0 and none.stdout.strip() == "Nothing relevant."
    some = run(
        db_location, "search", "which payment provider does the shop use", "--min-score", "0.5"
    )
    assert "Stripe" in some.stdout


def test_a_manifest_for_another_model_dir_is_one_command(tmp_path):
    """scripts/make_manifest.py makes the manifest a model directory needs for
    MEMENTO_EMBEDDING_MODEL (here a copy of the bundled model's files)."""
    import shutil

    from memento.config import bundled_model_dir

    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(bundled_model_dir() / name, model / name)
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_manifest.py"
    made = subprocess.run(
        [sys.executable, str(script), str(model), "--name", "my/minilm-copy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["dimension"] == 384 and set(manifest["files"]) == {
        "model.onnx",
        "tokenizer.json",
    }
    env = {**os.environ, "MEMENTO_EMBEDDING_MODEL": str(model)}
    db = tmp_path / "m.db"
    for args in (["store", "The shop deploys on Fridays"], ["search", "when do we deploy"]):
        out = subprocess.run(
            [*MEMENTO, "--db", str(db), *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr
    assert "Fridays" in out.stdout


def test_embedding_leaves_no_telemetry_behind(tmp_path: Path) -> None:
    """onnxruntime 1.32 records a device id and a "ProcessInfo" event for Microsoft under
    the cache directory unless told not to; a store and a search (which load the model
    in a fresh cache) leave nothing of it, in XDG_CACHE_HOME or in HOME."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEMENTO_", "ORT_"))}  # fmt: skip
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), HF_HUB_OFFLINE="1")
    db = tmp_path / "m.db"
    for args in (["init"], ["store", "The API listens on port 8000"], ["search", "api port"]):
        done = subprocess.run([*MEMENTO, "--db", str(db), *args], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "8000" in done.stdout
    assert list((cache / "memento").glob("sessions/*"))  # the model did load here
    left = [p for p in (*home.rglob("*"), *cache.rglob("*")) if "onnxruntime" in p.name.lower()
            or p.name in ("Microsoft", "deviceid")]  # fmt: skip
    assert left == []
