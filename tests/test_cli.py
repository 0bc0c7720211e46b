"""The `memento` command line, driven through click's runner (and a subprocess where the
point is a fresh interpreter), over real SQLite files and the real bundled model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memento import Memory, cli
from memento.embedder import Embedder
from tests.conftest import latest_schema
from tests.conftest import shown as shown_location

LIST_LINE = re.compile(r"^  [0-9A-Z]{12}  \d{4}-\d\d-\d\d  (fact  |event |lesson)  imp=\d\.\d\d  ")


@pytest.fixture(autouse=True)
def _one_model(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command in this process shares the session's loaded model."""
    monkeypatch.setitem(cli._embedders, None, embedder)


@pytest.fixture
def run(db_location: Path):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli.cli, ["--db", str(db_location), *args], input=input)

    return invoke


@pytest.fixture
def filled(db_location: Path, embedder: Embedder) -> dict[str, str]:
    """A store with a fact, an archived fact, an event and a lesson; their ids by name."""
    with Memory(db_location, embedder=embedder) as m:
        theme = m.store("I prefer dark mode in editors", importance=0.8, subject_key="user.theme")
        old = m.store("The staging server is called apollo", subject_key="infra.staging")
        m.forget(old.id)
        event = m.store(
            "Deployed release 2.3 to production",
            kind="event",
            metadata={"ticket": "OPS-12"},
            created_at="2026-11-20T09:30:00Z",
        )
        lesson = m.store("Run the migrations before deploying the API", kind="lesson")
    return {"theme": theme.id, "old": old.id, "event": event.id, "lesson": lesson.id}


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def fails(result: Result, code: int = 1) -> str:
    """The one error line of a failed command."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines, result.output
    return lines[-1]


def test_first_day_walkthrough(run, db_location: Path, embedder: Embedder) -> None:
    assert ok(run("init")).strip() == f"Initialized memento at {shown_location(db_location)}"
    assert ok(run("list")).strip() == 'No memories yet. Store one: memento store "..."'
    with Memory(db_location, embedder=embedder) as m:
        m.store("I prefer dark mode in editors", kind="fact", importance=0.8,
                subject_key="user.theme")
    lines = ok(run("list")).splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"  [0-9A-Z]{12}  \d{4}-\d\d-\d\d  fact    imp=0\.80  \[user\.theme\] I prefer dark mode "
        r"in editors",
        lines[0],
    )
    short_id = lines[0].split()[0]
    hits = ok(run("search", "what theme does the user like")).splitlines()
    assert re.fullmatch(
        rf"   1\. {short_id}  \d{{4}}-\d\d-\d\d  fact    imp=0\.80  \[user\.theme\] I prefer dark "
        r"mode in editors  \d\.\d\d",
        hits[0],
    )
    shown = ok(run("show", short_id[:8].lower()))
    assert "subject_key: user.theme" in shown
    assert "importance:  0.80" in shown
    assert shown.rstrip().endswith("\n    I prefer dark mode in editors")


def test_missing_database_says_to_run_init(run) -> None:
    for command in (["list"], ["stats"], ["search", "x"], ["show", "01ABCDEFGH"], ["about"]):
        line = fails(run(*command))
        assert line.startswith("Error: no memento database at ")
        assert "`memento init --db " in line


def test_list_shows_kinds_limit_and_archived(run, filled: dict[str, str]) -> None:
    lines = ok(run("list")).splitlines()
    assert len(lines) == 3 and all(LIST_LINE.match(line) for line in lines)
    assert lines[0].startswith(f"  {filled['lesson'][:12]}  ")
    assert "  lesson  imp=0.50  Run the" in lines[0]
    assert ok(run("list", "--kind", "event")).count("\n") == 1
    assert ok(run("list", "--limit", "1")).count("\n") == 1
    everything = ok(run("list", "--all"))
    assert "(archived) The staging server is called apollo" in everything
    data = json.loads(ok(run("list", "--json", "--all")))
    assert {d["id"] for d in data} == set(filled.values())
    assert set(data[0]) >= {"id", "content", "kind", "importance", "subject_key", "metadata",
                            "source", "created_at", "updated_at", "archived_at"}


def test_long_content_is_one_whole_line_in_a_pipe_and_fits_a_terminal(
    run, db_location: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Memory(db_location, embedder=embedder) as m:
        for n in range(11):
            m.store(f"line one\nline two {n} " + "word " * 100 + "the end", kind="event")
    lines = ok(run("list")).splitlines()
    assert len(lines) == 11 and all(line.endswith("word the end") for line in lines)
    from memento.cli import base

    monkeypatch.setattr(base, "_width", lambda: 80)  # an 80-column terminal
    (line, *_) = ok(run("list")).splitlines()
    assert "line one line two" in line and line.endswith("…") and len(line) <= 80
    hits = ok(run("search", "line two word", "--limit", "11")).splitlines()
    assert len(hits) == 11 and all(len(h) <= 80 for h in hits)
    assert hits[9].startswith("  10. ") and hits[8].startswith("   9. ")
    assert len({h.index(" event ") for h in hits}) == 1  # columns line up


def test_search_filters_and_json(run, filled: dict[str, str]) -> None:
    events = ok(run("search", "release deployed", "--kind", "event")).splitlines()
    assert len(events) == 1 and filled["event"][:12] in events[0]
    assert ok(run("search", "dark mode", "--prefix", "infra.")).strip() == "No matching memories."
    assert ok(run("search", "staging server", "--prefix", "infra.", "--all")).count("\n") == 1
    recent = ok(run("search", "deployed", "--since", "2026-11-21", "--kind", "event"))
    assert recent.strip() == "No matching memories."
    data = json.loads(ok(run("search", "editor theme", "--json", "--limit", "2")))
    assert len(data) == 2 and data[0]["id"] == filled["theme"]
    assert data[0]["score"] >= data[1]["score"] > 0


def test_store_command(run, db_location: Path) -> None:
    first = ok(run("store", "I use vim keybindings", "-s", "user.editor", "-i", "0.9",
                   "--meta", "via=test", "--meta", "n=1"))
    assert re.fullmatch(r"Stored [0-9A-Z]{12} \(global\)\n", first)  # user.* keys are global
    short = first.split()[1]
    again = ok(run("store", "I use emacs keybindings now", "-s", "user.editor"))
    assert again.strip() == f"Updated {short} (global)"
    shown = json.loads(ok(run("show", short, "--json")))
    assert shown["content"] == "I use emacs keybindings now"
    assert shown["source"] == "cli"
    event = json.loads(ok(run("store", "-", "--kind", "event", "--json",
                              input="Rebooted the build box\n")))
    assert event["kind"] == "event" and event["content"] == "Rebooted the build box"
    assert event["action"] == "created"
    with Memory(db_location, create=False) as m:
        assert m.get(short).metadata == {"via": "test", "n": "1"}


def test_export_then_import_data_is_lossless_and_idempotent(
    run, tmp_path: Path, filled: dict[str, str]
) -> None:
    exported = ok(run("export"))
    lines = exported.splitlines()
    assert len(lines) == 4
    backup = tmp_path / "backup.jsonl"
    backup.write_text(exported, encoding="utf-8")
    new_db = tmp_path / "restored.db"
    runner = CliRunner()
    first = ok(runner.invoke(cli.cli, ["import_data", str(new_db), str(backup)]))
    assert first.strip() == f"Imported 4 memories from {backup} (0 already present)"
    again = ok(runner.invoke(cli.cli, ["import-data", str(new_db), str(backup)]))
    assert again.strip() == f"Imported 0 memories from {backup} (4 already present)"
    restored = ok(runner.invoke(cli.cli, ["--db", str(new_db), "export"]))
    original = [json.loads(line) for line in lines]
    assert [json.loads(line) for line in restored.splitlines()] == original
    by_id = {r["id"]: r for r in original}
    assert by_id[filled["old"]]["archived_at"] is not None
    assert by_id[filled["event"]]["created_at"].startswith("2026-11-20T09:30:00")


def test_import_data_bad_line_writes_nothing(run, tmp_path: Path, db_location: Path) -> None:
    good = {"id": "01KVF2CKW772ABCDEFGHJKMNPQ", "content": "a good memory", "kind": "fact"}
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    assert fails(run("import_data", str(bad_json))).startswith("Error: line 2: not valid JSON")
    bad_kind = tmp_path / "kind.jsonl"
    bad_kind.write_text(
        json.dumps(good) + "\n\n" + json.dumps({"content": "x", "kind": "opinion"}) + "\n",
        encoding="utf-8",
    )
    line = fails(run("import_data", str(bad_kind)))
    assert line.startswith("Error: line 3: kind 'opinion' is not valid")
    with Memory(db_location, create=False) as m:
        assert m.stats()["total"] == 0


def test_forget_and_restore(run, filled: dict[str, str]) -> None:
    short = filled["theme"][:12]
    assert ok(run("forget", short)).strip() == f"Archived {short}"
    assert short not in ok(run("list"))
    assert ok(run("restore", short)).strip() == f"Restored {short}"
    assert short in ok(run("list"))
    assert ok(run("forget", short, "--hard", "--yes")).strip() == f"Deleted {short}"
    assert "no memory with id" in fails(run("show", short))


def test_forget_prefix_takes_percent_and_underscore_literally(
    run, db_location: Path, embedder: Embedder
) -> None:
    with Memory(db_location, embedder=embedder) as m:
        m.store("Discount code rules for the shop", subject_key="sale%.rules", kind="event")
        m.store("Sales team meets on Mondays", subject_key="sales.meeting", kind="event")
        m.store("Project x_y uses poetry", subject_key="proj_.tooling", kind="event")
        m.store("Project axy uses uv", subject_key="proja.tooling", kind="event")
    assert ok(run("forget-prefix", "sale%")).strip() == "Archived 1 memory under 'sale%'"
    assert ok(run("forget-prefix", "proj_", "--hard", "-y")).strip() == (
        "Deleted 1 memory under 'proj_'"
    )
    remaining = ok(run("list"))
    assert "Sales team" in remaining and "Project axy" in remaining
    assert "Discount" not in remaining and "x_y" not in remaining


def test_init_force_recreates_and_init_upgrades(
    run, filled: dict[str, str], db_location: Path
) -> None:
    said = ok(run("init")).strip()  # keeps memories, and says so
    assert said == (
        f"{shown_location(db_location)} already exists: 4 memories, schema version "
        f"{latest_schema(db_location)} (nothing to do; --force starts empty)"
    )
    assert filled["theme"][:12] in ok(run("list"))
    ok(run("init", "--force", "--yes"))
    assert ok(run("list")).startswith("No memories yet.")


def test_init_positional_path(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "other.db"
    result = CliRunner().invoke(cli.cli, ["init", str(target)])
    assert ok(result).strip() == f"Initialized memento at {target}"
    assert target.exists()


def test_stats_and_about(run, filled: dict[str, str], db_location: Path) -> None:
    text = ok(run("stats"))
    assert "memories:        3 live (fact 1, event 1, lesson 1), 1 archived" in text
    assert f"schema version:  {latest_schema(db_location)}" in text
    data = json.loads(ok(run("stats", "--json")))
    assert data["by_kind"] == {"fact": 1, "event": 1, "lesson": 1}
    assert data["dimension"] == 384 and data["path"] == shown_location(db_location)
    about = ok(run("about"))
    assert about.index("About you:") < about.index("user.theme") < about.index("Recent events:")
    # the lessons learned have their own part, between the user's facts and the events
    lessons = about[about.index("Lessons learned:") : about.index("Recent events:")]
    assert filled["lesson"][:12] in lessons
    assert "Deployed release 2.3" in about
    about_json = json.loads(ok(run("about", "--json")))
    assert [r["id"] for r in about_json["user"]] == [filled["theme"]]
    assert [r["id"] for r in about_json["events"]] == [filled["event"]]
    assert [r["id"] for r in about_json["lessons"]] == [filled["lesson"]]


def test_reembed(run, filled: dict[str, str]) -> None:
    assert ok(run("reembed")).startswith("Re-embedded 0 memories with ")
    assert ok(run("reembed", "--all")).startswith("Re-embedded 4 memories with ")
    assert json.loads(ok(run("search", "editor colours", "--json")))[0]["id"] == filled["theme"]


@pytest.mark.sqlite_only
def test_start_hands_over_to_the_server(
    run, db_location: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    fake = types.ModuleType("memento.server")
    fake.run = lambda db, project=None: calls.append((db, project))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "memento.server", fake)
    ok(run("start"))
    assert calls == [(str(db_location), None)]
    ok(run("start", "--project", str(db_location.parent)))
    assert calls[-1] == (str(db_location), db_location.parent)
    monkeypatch.delenv("MEMENTO_PATH")
    ok(CliRunner().invoke(cli.cli, ["start"]))
    assert calls[-1] == (None, None)


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    for name, command in cli.cli.commands.items():
        assert command.help and "Example" in command.help, name
        result = runner.invoke(cli.cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "01AB"], "too short"),
        (["show", "01ZZZZZZZZZZ"], "no memory with id"),
        (["search", "  "], "query is empty"),
        (["search", "x", "--since", "next tuesday"], "is not a date"),
        (["search", "x", "--since", "2026-11-24", "--until", "2026-11-01"], "since is after"),
        (["store", "   "], "content is empty"),
        (["store", "x", "--importance", "2"], "importance must be between 0 and 1"),
        (["forget", "nothex!!"], "is not a memento id"),
        (["forget-prefix", " "], "prefix is empty"),
        (["import", "{tmp}/nothing.txt"], "is not a file"),
        (["import_data", "{tmp}/missing.jsonl"], "No such file"),
    ],
)
def test_bad_input_gives_one_clear_line(
    run, filled: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    line = fails(run(*[a.replace("{tmp}", str(tmp_path)) for a in args]))
    assert line.startswith("Error: ") and message in line


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--limit", "0"],
        ["list", "--kind", "opinion"],
        ["store", "x", "--meta", "novalue"],
        ["import", "--from", "csv", "x"],
        ["import_data"],
        ["nosuchcommand"],
    ],
)
def test_usage_errors_exit_2(run, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "Error" in result.stderr


def test_not_a_memento_file(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    result = CliRunner().invoke(cli.cli, ["--db", str(other), "list"])
    assert "not a memento database" in fails(result)


def _fresh(*args: str, env_db: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys, json\n"
        "from memento.cli import main\n"
        f"sys.argv = ['memento', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "heavy = [m for m in ('onnxruntime', 'mcp') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**_env(), "MEMENTO_PATH": str(env_db)},
        timeout=60,
    )


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "MEMENTO_EMBEDDING_MODEL"}


@pytest.mark.parametrize("args", [("--help",), ("list",), ("stats",)])
def test_fast_commands_do_not_import_onnxruntime_or_mcp(
    args: tuple[str, ...], filled: dict[str, str], db_location: Path
) -> None:
    done = _fresh(*args, env_db=db_location)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, done.stderr
    assert done.stdout.strip()


def test_installed_entry_point_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    done = subprocess.run(
        ["memento", "--db", str(missing), "list"], capture_output=True, text=True, timeout=60,
        env=_env(),
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: no memento database at {missing}: create it with `memento init --db "
        f"{missing}`, or check --db and MEMENTO_PATH\n"
    )
    usage = subprocess.run(["memento", "list", "--limit", "x"], capture_output=True, text=True,
                           timeout=60, env=_env())
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
