"""Project scopes: which project a directory is, and memories that stay in their project."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from memento import Memory
from memento.projects import find_project, normalise_url


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _repo(path: Path, origin: str | None = None) -> Path:
    path.mkdir(parents=True)
    _git("init", "-q", cwd=path)
    if origin:
        _git("remote", "add", "origin", origin, cwd=path)
    return path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/shop.git", "github.com/acme/shop"),
        ("https://user:tok@GitHub.com/acme/shop/", "github.com/acme/shop"),
        ("git@github.com:acme/shop.git", "github.com/acme/shop"),
        ("ssh://git@github.com:22/acme/shop.git", "github.com/acme/shop"),
        ("git@gitlab.example.org:group/sub/shop", "gitlab.example.org/group/sub/shop"),
    ],
)
def test_clones_of_one_origin_share_an_id(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_project_of_a_directory(tmp_path: Path) -> None:
    shop = _repo(tmp_path / "shop", "git@github.com:acme/shop.git")
    (shop / "src" / "deep").mkdir(parents=True)
    other_clone = _repo(tmp_path / "elsewhere" / "shop-copy", "https://github.com/acme/shop")
    found = find_project(shop / "src" / "deep")
    assert (found.id, found.name, found.root) == ("github.com/acme/shop", "shop", str(shop))
    assert find_project(other_clone).id == found.id
    local = _repo(tmp_path / "local-only")
    (local / "pkg").mkdir()
    assert find_project(local / "pkg").id == str(local)
    assert find_project(local / "pkg").name == "local-only"
    plain = tmp_path / "notes"
    plain.mkdir()
    assert find_project(plain).id == str(plain)


def test_linked_worktree_belongs_to_its_repository(tmp_path: Path) -> None:
    main = _repo(tmp_path / "main")
    (main / "f").write_text("x")
    _git("add", "f", cwd=main)
    _git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x", cwd=main)
    _git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=main)
    assert find_project(tmp_path / "wt").id == str(main)


def test_a_lesson_from_one_project_stays_there(
    db_location: Path, embedder, tmp_path: Path
) -> None:
    shop = _repo(tmp_path / "shop", "git@github.com:acme/shop.git")
    blog = _repo(tmp_path / "blog", "git@github.com:acme/blog.git")
    with Memory(db_location, embedder=embedder, project=shop) as m:
        lesson = m.store("Run the migrations before the tests or they fail", kind="lesson")
        pref = m.store("The user prefers tabs over spaces", subject_key="user.indent")
        assert (lesson.scope, lesson.project) == ("github.com/acme/shop", "shop")
        assert (pref.scope, pref.project) == ("global", None)  # user.* travels with the user
    with Memory(db_location, embedder=embedder, project=blog) as m:
        found = m.recall("how do I run the tests")
        assert [r.id for r in found] == [pref.id]  # the shop's lesson never shows up here
        assert m.recent() == [m.get(pref.id)]
        assert m.stats()["live"] == 1
        everywhere = m.recall("how do I run the tests", all_projects=True)
        assert {r.id for r in everywhere} == {lesson.id, pref.id}
        assert m.stats(all_projects=True)["live"] == 2
    with Memory(db_location, embedder=embedder) as m:  # no current project: every scope
        assert {r.id for r in m.recent()} == {lesson.id, pref.id}


def test_explicit_scope_wins_and_keys_are_per_scope(
    db_location: Path, embedder, tmp_path: Path
) -> None:
    shop = _repo(tmp_path / "shop", "git@github.com:acme/shop.git")
    blog = _repo(tmp_path / "blog", "git@github.com:acme/blog.git")
    with Memory(db_location, embedder=embedder, project=shop) as m:
        a = m.store("Tests run with pytest -q", subject_key="project.test_command")
        g = m.store("Always sign commits", kind="lesson", scope="global")
        b = m.store("Tests run with npm test", subject_key="project.test_command", scope=blog)
        assert a.id != b.id and b.project == "blog" and g.scope == "global"
        # an upsert only replaces the key's memory in its own scope
        again = m.store("Tests run with pytest -x", subject_key="project.test_command")
        assert again.id == a.id and again.action == "updated"
        assert m.get(b.id).content == "Tests run with npm test"
        moved = m.update(g.id, scope="project")
        assert moved.scope == "github.com/acme/shop"
    with Memory(db_location, embedder=embedder, project=blog) as m:
        assert [r.id for r in m.browse("project.")] == [b.id]
        assert g.id not in {r.id for r in m.recent(limit=50)}


def test_near_duplicates_are_only_merged_within_a_scope(
    db_location: Path, embedder, tmp_path: Path
) -> None:
    shop, blog = tmp_path / "shop", tmp_path / "blog"
    shop.mkdir()
    blog.mkdir()
    text = "Deploys go out every Tuesday after the standup"
    with Memory(db_location, embedder=embedder, project=shop) as m:
        first = m.store(text)
        assert m.store(text).action == "deduplicated"
        other = m.store(text, scope=str(blog))
        assert other.action == "created" and other.id != first.id


@pytest.mark.parametrize("path", ["exact", "large-store index"])
def test_a_project_with_three_memories_among_many_gets_those_three(
    db_location: Path, hash_embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The scope filter is applied inside the search (exact), not after a top-k: the three
    memories of a small project come back although 3,000 others are nearer the query.
    On PostgreSQL, "large-store index" lowers the exact-scan bound to 100 and bounds the
    keyword terms as large stores do (the HNSW walk under a filter: tests/test_postgres.py)."""
    if path != "exact":
        from memento.store import postgres, postgres_keywords, sqlite, sqlite_index

        monkeypatch.setattr(sqlite_index, "MIN_ROWS", 1)
        monkeypatch.setattr(sqlite, "KEYWORD_MIN_ROWS", 1)
        monkeypatch.setattr(postgres, "EXACT_MAX", 100)
        monkeypatch.setattr(postgres_keywords, "KEYWORD_MIN_ROWS", 1)
    big, small = tmp_path / "big", tmp_path / "small"
    big.mkdir()
    small.mkdir()
    with Memory(db_location, embedder=hash_embedder, project=big) as m:
        m.store_many([{"content": f"common note {i}", "kind": "event"} for i in range(3000)])
    with Memory(db_location, embedder=hash_embedder, project=small) as m:
        mine = m.store_many([{"content": f"rare thing {i}", "kind": "event"} for i in range(3)])
        found = m.recall("common note 7", limit=10)
        assert {r.id for r in found} == {r.id for r in mine}
        assert {r.id for r in m.recent(limit=10)} == {r.id for r in mine}


def test_export_and_import_carry_the_scope(db_location: Path, embedder, tmp_path: Path) -> None:
    shop = _repo(tmp_path / "shop", "git@github.com:acme/shop.git")
    with Memory(db_location, embedder=embedder, project=shop) as m:
        m.store("Shop deploys from the release branch", kind="lesson")
        m.store("The user writes British English", subject_key="user.spelling")
        exported = list(m.export())
    assert {(e["scope"], e["project"]) for e in exported} == {
        ("github.com/acme/shop", "shop"),
        ("global", None),
    }
    with Memory(tmp_path / "copy.db", embedder=embedder) as copy:
        assert copy.import_records(exported) == {"added": 2, "updated": 0, "skipped": 0}
        assert [e for e in copy.export()] == exported
        foreign = copy.import_records([{"content": "From another tool"}], scope=str(shop))
        assert foreign["added"] == 1
        assert copy.recall("another tool", limit=1)[0].project == "shop"
