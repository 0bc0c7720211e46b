"""How similar are restatements of one fact, distinct facts about one subject, and facts
about different subjects?

    python benches/dedup.py

Prints the cosine similarity (bundled model) of hand-written pairs in two groups: the same
fact said twice (should merge) and different facts about the same subject (must not merge),
with the range of each group. memento's DEDUP_SIMILARITY sits above the highest "distinct"
pair: merging two different facts loses one of them, while keeping a restatement only costs
a near-duplicate row.

Then the band of ``related`` memories (a store without a subject_key lists live memories at
least RELATED_SIMILARITY similar, below the dedup bar, as possibly stale): for each
candidate bar, the share of "same subject, a changed value" pairs (the distinct pairs above
and CHANGED, phrased differently) it surfaces, and the share of pairs of facts about
different subjects (every pair of UNRELATED, the kind of facts one project's memory holds)
it wrongly surfaces.
"""

from __future__ import annotations

from memento.embedder import Embedder
from memento.memory import DEDUP_SIMILARITY, RELATED_SIMILARITY

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

# The same subject with a changed value, the later one phrased differently.
CHANGED = [
    ("Our database is PostgreSQL 15", "We upgraded the database to PostgreSQL 16"),
    ("The API server listens on port 8080", "The API now runs on port 9000"),
    ("The user prefers dark mode in their editor", "The user switched their editor to light mode"),
    ("Deploys go out every Tuesday", "We now deploy on Thursdays"),
    ("The staging server is called apollo", "The staging server was renamed to hermes"),
    ("The user's name is Sam", "Call the user Samantha, not Sam"),
    ("CI runs on Travis", "We moved CI from Travis to GitHub Actions"),
    ("The project uses pytest for testing", "The project's tests now run with unittest"),
    ("Use Node 18 for the frontend", "The frontend needs Node 20"),
    ("The user lives in Lisbon", "The user moved to Berlin"),
    ("Releases are tagged vX.Y.Z", "Release tags no longer have the v prefix: X.Y.Z"),
    ("The main branch is master", "The default branch was renamed to main"),
    ("The user's team lead is Priya", "Tom replaced Priya as the user's team lead"),
    ("Logs are shipped to Datadog", "Logs go to Grafana Loki now"),
    ("Run the tests with make test", "The test command is now just test"),
]
# Facts about different subjects, as one project's memory holds them: every pair is
# unrelated.
UNRELATED = [
    "The user prefers dark mode in their editor",
    "The API server listens on port 8080",
    "Deploys go out every Tuesday",
    "Our database is PostgreSQL 16",
    "The user's name is Sam",
    "CI runs on GitHub Actions",
    "The frontend is written in TypeScript",
    "Use tabs for indentation in Go files",
    "The user works at Acme Corp",
    "The staging server is called apollo",
    "Never force-push to main",
    "The project uses pytest for testing",
    "Secrets live in the team's 1Password vault",
    "The user is based in Lisbon",
    "Code review needs two approvals",
    "The mobile app is built with React Native",
    "Invoices are generated on the first of the month",
    "The user prefers concise answers without bullet points",
    "Docker images are pushed to ghcr.io",
    "The user's manager is Priya",
    "Feature flags are managed in LaunchDarkly",
    "The docs site is built with MkDocs",
    "Error tracking uses Sentry",
    "The user writes commit messages in the imperative mood",
    "The payment provider is Stripe",
    "Backups run nightly at 02:00 UTC",
    "The search service uses Elasticsearch 8",
    "The user dislikes emoji in code comments",
    "Python dependencies are pinned with uv lock",
    "The analytics pipeline runs on Airflow",
]
# The same subject, two facts that are both true: surfacing these is noise, not an error
# (the agent reads them and keeps both), but the less of it the better.
COMPATIBLE = [
    ("CI runs on GitHub Actions", "CI caches the pip downloads between runs"),
    ("The API server listens on port 8080", "The API server logs to stdout in JSON"),
    ("Our database is PostgreSQL 16", "Database migrations are written with Alembic"),
    ("The user prefers dark mode in their editor", "The user's editor font is JetBrains Mono"),
    ("Deploys go out every Tuesday", "A deploy needs a green CI run first"),
    ("The user's name is Sam", "Sam prefers to be addressed informally"),
    ("The staging server is called apollo", "Staging is reset from production every Sunday"),
    ("The project uses pytest for testing", "Slow tests are marked with @pytest.mark.slow"),
    ("The frontend is written in TypeScript", "The frontend is bundled with Vite"),
    ("The user works at Acme Corp", "Acme Corp's fiscal year starts in April"),
]
BARS = (0.60, 0.62, 0.65, 0.70, 0.75, 0.80, 0.85)


def band(model: Embedder) -> None:
    changed = [float(a @ b) for a, b in (model.embed(list(p)) for p in DISTINCT + CHANGED)]
    vectors = model.embed(UNRELATED)
    unrelated = [
        float(vectors[i] @ vectors[j])
        for i in range(len(UNRELATED))
        for j in range(i + 1, len(UNRELATED))
    ]
    print(f"\nrelated band (below the dedup bar {DEDUP_SIMILARITY}):")
    print(f"  changed values: {len(changed)} pairs, {min(changed):.3f} .. {max(changed):.3f}")
    print(f"  unrelated: {len(unrelated)} pairs, {min(unrelated):.3f} .. {max(unrelated):.3f}")
    compatible = [float(a @ b) for a, b in (model.embed(list(p)) for p in COMPATIBLE)]
    print(f"  compatible: {len(compatible)} pairs, {min(compatible):.3f} .. "
          f"{max(compatible):.3f}")
    print("  bar    changed surfaced   unrelated wrongly surfaced   compatible surfaced")
    for bar in sorted({*BARS, RELATED_SIMILARITY}):
        hit, wrong, noise = (
            sum(bar <= s < DEDUP_SIMILARITY for s in group) / len(group)
            for group in (changed, unrelated, compatible)
        )
        mark = "  <- RELATED_SIMILARITY" if bar == RELATED_SIMILARITY else ""
        print(f"  {bar:.2f}   {hit:6.1%}             {wrong:6.1%}                   "
              f"{noise:6.1%}{mark}")
    missed = sorted(
        (s, a, b) for s, (a, b) in zip(changed, DISTINCT + CHANGED) if s < RELATED_SIMILARITY
    )
    for s, a, b in missed:
        print(f"  missed {s:.3f}  {a!r} / {b!r}")


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
    band(model)


if __name__ == "__main__":
    main()
