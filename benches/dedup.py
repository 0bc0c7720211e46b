"""How similar are restatements of one fact, and distinct facts about one subject?

    python benches/dedup.py

Prints the cosine similarity (bundled model) of hand-written pairs in two groups: the same
fact said twice (should merge) and different facts about the same subject (must not merge),
with the range of each group. memento's DEDUP_SIMILARITY sits above the highest "distinct"
pair: merging two different facts loses one of them, while keeping a restatement only costs
a near-duplicate row.
"""

from __future__ import annotations

from memento.embedder import Embedder
from memento.memory import DEDUP_SIMILARITY

SAME = [
    ("The user prefers dark mode in their editor", "The user prefers dark mode in the editor"),
    ("I prefer dark mode in editors", "I like dark mode in my editors"),
    ("The project uses pytest for testing", "This project uses pytest for its tests"),
    ("Deploys go out every Tuesday", "We deploy every Tuesday"),
    ("The API server listens on port 8080", "The API server runs on port 8080"),
    ("Always run ruff before committing", "Run ruff before every commit"),
    ("The user's name is Sam", "The user is called Sam"),
    ("Our database is PostgreSQL 16", "We use PostgreSQL 16 as our database"),
    ("Never force-push to main", "Do not force-push to the main branch"),
    ("The staging server is staging.example.com", "Staging lives at staging.example.com"),
    ("User lives in Lisbon", "The user lives in Lisbon"),
    ("CI runs on GitHub Actions", "Our CI is GitHub Actions"),
    ("The frontend is written in TypeScript", "The frontend code is TypeScript"),
    ("Use tabs for indentation in Go files", "Go files are indented with tabs"),
    ("The user works at Acme Corp", "The user is employed by Acme Corp"),
]
DISTINCT = [
    ("The user prefers dark mode in their editor", "The user prefers light mode in their editor"),
    ("The user prefers tabs for indentation", "The user prefers spaces for indentation"),
    ("The API server listens on port 8080", "The API server listens on port 9090"),
    ("Deploys go out every Tuesday", "Deploys go out every Friday"),
    ("Our database is PostgreSQL 16", "Our database is MySQL 8"),
    ("The user's name is Sam", "The user's name is Alex"),
    ("User lives in Lisbon", "User lives in Porto"),
    ("Always run ruff before committing", "Always run the tests before committing"),
    ("The frontend is written in TypeScript", "The backend is written in TypeScript"),
    ("CI runs on GitHub Actions", "CI runs on GitLab CI"),
    ("The user works at Acme Corp", "The user used to work at Acme Corp"),
    ("Use Python 3.11 for this project", "Use Python 3.12 for this project"),
    ("The user likes coffee", "The user dislikes coffee"),
    ("Staging deploys are automatic", "Production deploys are automatic"),
    ("The user's manager is Priya", "The user's manager is Tom"),
]


def main() -> None:
    model = Embedder()
    for title, pairs in (("same fact", SAME), ("distinct facts", DISTINCT)):
        sims = []
        print(f"\n{title}:")
        for a, b in pairs:
            va, vb = model.embed([a, b])
            sims.append(float(va @ vb))
            print(f"  {sims[-1]:.3f}  {a!r} / {b!r}")
        print(f"  range {min(sims):.3f} .. {max(sims):.3f}, "
              f"{sum(s >= DEDUP_SIMILARITY for s in sims)}/{len(sims)} >= {DEDUP_SIMILARITY}")


if __name__ == "__main__":
    main()
