"""Which project a directory belongs to, so memories can be scoped to it.

Inside a git work tree, a project is the repository: every worktree and every clone of the
same ``origin`` share one id, the normalised origin URL (``github.com/acme/shop``); a
repository without an origin is known by its main work tree's path. Outside git, the
directory itself is the project. The git metadata is read from files (``.git``, ``config``,
``commondir``): no ``git`` process, so a hook pays microseconds, not a fork.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInputError

GLOBAL = "global"


@dataclass(frozen=True)
class Project:
    """A project: ``id`` is what memories are scoped by, ``name`` what listings show and
    ``root`` the directory it was found from (the work tree's top, or the directory)."""

    id: str
    name: str
    root: str


def find_project(directory: str | os.PathLike[str]) -> Project:
    """The project of ``directory`` (which must exist)."""
    path = Path(directory).expanduser()
    try:
        path = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInputError(
            f"project directory {str(directory)[:200]!r} does not exist: give an existing "
            "directory"
        ) from None
    if not path.is_dir():
        path = path.parent
    top, git_dir = _work_tree(path)
    if top is None or git_dir is None:
        return Project(id=str(path), name=path.name or str(path), root=str(path))
    common = _common_dir(git_dir)
    url = _origin_url(common / "config")
    if url:
        normalised = normalise_url(url)
        return Project(id=normalised, name=normalised.rsplit("/", 1)[-1], root=str(top))
    main_tree = common.parent if common.name == ".git" else top
    return Project(id=str(main_tree), name=main_tree.name or str(main_tree), root=str(top))


def _work_tree(start: Path) -> tuple[Path | None, Path | None]:
    """The top of the git work tree holding ``start`` and its git directory, if any."""
    for candidate in (start, *start.parents):
        marker = candidate / ".git"
        if marker.is_dir():
            return candidate, marker
        if marker.is_file():  # a linked worktree or a submodule: "gitdir: <path>"
            try:
                text = marker.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None, None
            match = re.match(r"gitdir:\s*(.+)", text.strip())
            if not match:
                return None, None
            git_dir = Path(match.group(1).strip())
            if not git_dir.is_absolute():
                git_dir = (candidate / git_dir).resolve()
            return candidate, git_dir
    return None, None


def _common_dir(git_dir: Path) -> Path:
    """The repository's shared git directory (a linked worktree points at it in
    ``commondir``)."""
    try:
        text = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir
    common = Path(text)
    return (common if common.is_absolute() else (git_dir / common)).resolve()


def _origin_url(config_path: Path) -> str | None:
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(config_path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    section = 'remote "origin"'
    if parser.has_section(section) and parser.has_option(section, "url"):
        return parser.get(section, "url").strip() or None
    return None


_SCP = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")  # git@host:owner/repo.git


def normalise_url(url: str) -> str:
    """``https://user@GitHub.com/acme/shop.git`` and ``git@github.com:acme/shop`` both
    become ``github.com/acme/shop``: host lowercased, no scheme, user, port of ssh, ``.git``
    or trailing slash, so every clone of one repository agrees."""
    text = url.strip()
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://(.*)$", text)
    if match:
        rest = match.group(1)
        rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
        host, _, path = rest.partition("/")
        if text.lower().startswith(("ssh://", "git+ssh://")):
            host = host.split(":", 1)[0]
    else:
        scp = _SCP.match(text)
        if not scp:  # a local path used as a remote
            return str(Path(text).expanduser())
        host, path = scp.group(1), scp.group(2)
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{host.lower()}/{path}".rstrip("/")


__all__ = ["GLOBAL", "Project", "find_project", "normalise_url"]
