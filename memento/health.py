"""The nine checks of ``memento verify``.

Each check returns a :class:`Check`: its name, PASS or FAIL, what it found, and for a
failure the command or step that fixes it. Nothing here writes to the database, and no
migration runs: verify looks at the file as it is. The model checks run even when the
database does not open, since they do not need it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import apsw

from .config import resolve_db_path
from .embedder import Embedder, check_files, read_manifest, resolve_model_dir
from .errors import MementoError
from .store import sqlite as store
from .store import sqlite_migrations as migrations

# The golden sentences of the manifest carry reference vectors from sentence-transformers
# (fp32, torch). Dynamically quantised int8 kernels differ between CPU instruction sets
# (AVX2, AVX512-VNNI, AMX, ARM dot-product), so the shipped model's vectors are close to the
# reference on every CPU but equal to nothing recorded on one of them: the same sentence
# embedded on an AVX2 and an AVX512-VNNI machine gave cosine 0.987. Measured over the 56
# fixture sentences, a healthy model scores mean/min 0.9928/0.9696 (AVX2) and 0.9953/0.9834
# (AVX512-VNNI) against the reference, while a broken pipeline scores far lower: CLS instead
# of mean pooling 0.44/0.17, no special tokens 0.87/0.27, token ids off by one 0.15/-0.06.
# The bars below sit between the two; the manifest may set its own.
GOLDEN_MIN_COSINE = 0.95
GOLDEN_MEAN_COSINE = 0.98

# `vector content` re-embeds up to VECTOR_SAMPLE random live memories and compares each to
# its stored vector. The same text embedded again on the same machine gives cosine 1.0000,
# on another CPU 0.987 at worst (see above); the stale vectors a reembed racing with updates
# left behind scored 0.228 against their text. A vector below VECTOR_MIN_COSINE was made
# for other text. 20 texts cost ~0.3 s with the bundled model.
VECTOR_SAMPLE = 20
VECTOR_MIN_COSINE = 0.9


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    @property
    def status(self) -> str:
        return "PASS" if self.ok else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def _pass(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


NAMES = (
    "file opens",
    "integrity",
    "schema version",
    "sqlite-vec",
    "fts index",
    "vectors",
    "model files",
    "golden vector",
    "vector content",
)


@contextlib.contextmanager
def _connection(path: Path) -> Iterator[apsw.Connection | None]:
    try:
        conn = store.connect(path, create=False)
    except MementoError:
        yield None
        return
    try:
        yield conn
    finally:
        conn.close()


def run_checks(path: str | Path | None = None, model_dir: str | Path | None = None) -> list[Check]:
    """All nine checks on the database at ``path`` (default: the configured one) and the
    embedding model (default: the configured one)."""
    db = resolve_db_path(path)
    results = [check_opens(db)]
    opened = results[0].ok
    with _connection(db) if opened else contextlib.nullcontext() as conn:
        for name, check in (
            ("integrity", check_integrity),
            ("schema version", check_schema),
            ("sqlite-vec", check_sqlite_vec),
            ("fts index", check_fts),
        ):
            if conn is None:
                results.append(_not_checked(name))
            else:
                results.append(_guarded(name, check, conn))
        model, model_check = _load_model(model_dir)
        if conn is None:
            results.append(_not_checked("vectors"))
        else:
            results.append(_guarded("vectors", check_vectors, conn, model))
        results.append(model_check)
        golden = check_golden(model) if model_check.ok and model else _skipped_golden()
        results.append(golden)
        if conn is None:
            results.append(_not_checked("vector content"))
        elif not golden.ok or model is None:
            results.append(_fail("vector content", "not checked: the model does not embed "
                                 "as it should", "fix `golden vector` first"))
        else:
            results.append(_guarded("vector content", check_vector_content, conn, model))
    return results


def _not_checked(name: str) -> Check:
    return _fail(name, "not checked: the database did not open", "fix `file opens` first")


def _skipped_golden() -> Check:
    return _fail("golden vector", "not checked: the model files are not usable",
                 "fix `model files` first")


def _guarded(name: str, check: Any, *args: Any) -> Check:
    try:
        result: Check = check(*args)
        return result
    except (apsw.Error, MementoError) as exc:
        return _fail(
            name, f"check could not run: {exc}", "restore the file from a backup (memento export)"
        )


def check_opens(path: Path) -> Check:
    """The file exists, is SQLite, and is a memento database (or an empty one)."""
    name = "file opens"
    if not path.exists():
        return _fail(name, f"no database at {path}", "run `memento init`")
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            migrations.current_version(conn)
        finally:
            conn.close()
    except apsw.Error as exc:
        return _fail(
            name,
            store.describe_sqlite_error(exc, path),
            "restore from a backup (`memento import_data`) or move it away and `memento init`",
        )
    except MementoError as exc:
        return _fail(name, str(exc), "point --db or MEMENTO_PATH at a memento database")
    return _pass(name, str(path))


def check_integrity(conn: apsw.Connection) -> Check:
    name = "integrity"
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    if rows == ["ok"]:
        return _pass(name, "PRAGMA integrity_check: ok")
    return _fail(
        name,
        f"PRAGMA integrity_check: {'; '.join(map(str, rows[:3]))}",
        "export what still reads (`memento export > backup.jsonl`), then `memento init "
        "--force` and `memento import_data backup.jsonl`",
    )


def check_schema(conn: apsw.Connection) -> Check:
    name = "schema version"
    version = migrations.current_version(conn)
    if version == migrations.LATEST:
        return _pass(name, f"version {version} (current)")
    if version > migrations.LATEST:
        return _fail(
            name,
            f"version {version} is newer than this memento ({migrations.LATEST})",
            "upgrade memento (pip install -U memento-agent-memory, or reinstall from a newer "
            "checkout)",
        )
    return _fail(
        name,
        f"version {version}, current is {migrations.LATEST}",
        "run `memento init` to upgrade the file in place",
    )


def check_sqlite_vec(conn: apsw.Connection) -> Check:
    name = "sqlite-vec"
    try:
        version = conn.execute("SELECT vec_version()").fetchone()[0]
    except apsw.Error as exc:
        return _fail(name, f"sqlite-vec is not loaded: {exc}", "pip install -U sqlite-vec")
    return _pass(name, f"sqlite-vec {version} loaded")


def _has_table(conn: apsw.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = ? AND type = 'table'", (table,)
    ).fetchone()
    return row is not None


def check_fts(conn: apsw.Connection, path: Path | None = None) -> Check:
    """Every memory is in the FTS5 index and the index holds nothing else."""
    name = "fts index"
    if not _has_table(conn, "memory_fts"):
        return _fail(name, "the memory_fts table is missing", "run `memento init`")
    rebuild = (
        "rebuild the index: sqlite3 <db> \"INSERT INTO memory_fts(memory_fts) "
        "VALUES('rebuild')\""
    )
    memories = {r[0] for r in conn.execute("SELECT seq FROM memories")}
    indexed = {r[0] for r in conn.execute("SELECT id FROM memory_fts_docsize")}
    missing, extra = memories - indexed, indexed - memories
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} memories missing from the index")
        if extra:
            parts.append(f"{len(extra)} index rows without a memory")
        return _fail(name, ", ".join(parts), rebuild)
    try:
        # Compares the index with the content of `memories`, term by term.
        conn.execute("INSERT INTO memory_fts(memory_fts, rank) VALUES ('integrity-check', 1)")
    except apsw.CorruptError:
        return _fail(name, "the index does not match the memories' text", rebuild)
    except apsw.ReadOnlyError:
        pass  # a read-only file: the row comparison above is all we can do
    return _pass(name, f"{len(memories)} memories indexed")


def check_vectors(conn: apsw.Connection, model: Embedder | None) -> Check:
    """One vector per memory, of the model's dimension, made by the model."""
    name = "vectors"
    dimension = store.vector_dimension(conn)
    if dimension is None:
        return _fail(name, "the memory_vec table is missing", "run `memento reembed`")
    memories = {r[0] for r in conn.execute("SELECT seq FROM memories")}
    vectors = {r[0] for r in conn.execute("SELECT rowid FROM memory_vec")}
    missing, extra = memories - vectors, vectors - memories
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} memories without a vector")
        if extra:
            parts.append(f"{len(extra)} vectors without a memory")
        return _fail(name, ", ".join(parts), "run `memento reembed --all`")
    has_bits = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memory_bits'"
    ).fetchone()
    if has_bits:  # the large-store index: one live row per memory
        bits = {r[0] for r in conn.execute("SELECT seq FROM memory_bits WHERE bits IS NOT NULL")}
        if bits != memories:
            return _fail(
                name,
                f"the large-store index disagrees with the memories ({len(memories - bits)} "
                f"missing, {len(bits - memories)} extra)",
                "run `memento reembed --all`",
            )
    if model is None:
        return _pass(name, f"{len(vectors)} vectors of {dimension} dimensions (model unknown)")
    if dimension != model.dimension:
        return _fail(
            name,
            f"vectors have {dimension} dimensions, the model {model.name} makes "
            f"{model.dimension}",
            "run `memento reembed`",
        )
    stale = conn.execute(
        "SELECT count(*) FROM memories WHERE embedding_model IS NOT ?", (model.name,)
    ).fetchone()[0]
    if stale:
        return _fail(
            name, f"{stale} memories have vectors from another model", "run `memento reembed`"
        )
    return _pass(name, f"{len(vectors)} vectors of {dimension} dimensions from {model.name}")


def check_vector_content(conn: apsw.Connection, model: Embedder) -> Check:
    """A sample of live memories embeds close to its stored vectors: a vector made for
    other text (an old version of the memory) is found even though every count is right."""
    name = "vector content"
    import numpy as np

    if store.vector_dimension(conn) != model.dimension:
        return _fail(name, "not checked: the vectors are of another dimension",
                     "fix `vectors` first")
    seqs = [
        r[0]
        for r in conn.execute(
            "SELECT seq FROM memories WHERE archived_at IS NULL AND embedding_model = ? "
            "ORDER BY random() LIMIT ?",
            (model.name, VECTOR_SAMPLE),
        )
    ]
    sample: list[tuple[str, str, bytes]] = []
    for seq in seqs:
        row = conn.execute(
            "SELECT m.id, m.content, v.embedding FROM memories m, memory_vec v "
            "WHERE m.seq = ? AND v.rowid = m.seq",
            (seq,),
        ).fetchone()
        if row is not None:
            sample.append((row[0], row[1], row[2]))
    if not sample:
        return _pass(name, "no live memories to compare")
    stored = np.stack([np.frombuffer(blob, dtype="<f4") for _, _, blob in sample])
    fresh = model.embed([text for _, text, _ in sample])
    norms = np.maximum(np.linalg.norm(stored, axis=1) * np.linalg.norm(fresh, axis=1), 1e-12)
    cosines = (stored * fresh).sum(axis=1) / norms
    bad = [i for i, c in enumerate(cosines) if c < VECTOR_MIN_COSINE]
    if not bad:
        return _pass(name, f"{len(sample)} sampled memories match their vectors "
                           f"(cosine min {cosines.min():.4f})")
    worst = min(bad, key=lambda i: cosines[i])
    return _fail(
        name,
        f"{len(bad)} of {len(sample)} sampled memories have a vector made for other text "
        f"(memory {sample[worst][0][:12]}: cosine {cosines[worst]:.3f}, needs "
        f">= {VECTOR_MIN_COSINE})",
        "run `memento reembed --all`",
    )


def _load_model(model_dir: str | Path | None) -> tuple[Embedder | None, Check]:
    """The model (not yet loaded) and the `model files` check."""
    name = "model files"
    fix = "reinstall memento, or point MEMENTO_EMBEDDING_MODEL at an intact model directory"
    try:
        directory = Path(model_dir) if model_dir is not None else resolve_model_dir()
        manifest = read_manifest(directory)
    except MementoError as exc:
        return None, _fail(name, str(exc), fix)
    problems = check_files(directory, manifest)
    if problems:
        return None, _fail(name, "; ".join(problems), fix)
    model = Embedder(directory)
    files = ", ".join(sorted(manifest["files"]))
    return model, _pass(name, f"{model.name} in {directory}: sha256 ok ({files})")


def check_golden(model: Embedder) -> Check:
    """The golden sentences of the manifest embed close to their reference vectors."""
    name = "golden vector"
    fix = "reinstall memento from its checkout or wheel (pip install --force-reinstall <wheel>), "
    fix += "or re-export the model (scripts/export_model.py); check the onnxruntime version"
    golden = model.manifest.get("golden")
    sentences = golden.get("sentences") if isinstance(golden, dict) else None
    if not sentences or not all(
        isinstance(s, dict) and "text" in s and "vector" in s for s in sentences
    ):
        return _fail(
            name,
            "the model manifest has no golden sentences with reference vectors",
            "re-export the model (scripts/export_model.py) or reinstall memento",
        )
    import numpy as np

    try:
        got = model.embed([str(s["text"]) for s in sentences])
    except MementoError as exc:
        return _fail(name, str(exc), fix)
    want = np.asarray([s["vector"] for s in sentences], dtype=np.float32)
    if want.shape != got.shape:
        return _fail(
            name,
            f"golden vectors have {want.shape[-1]} values, the model makes {got.shape[-1]}",
            "re-export the model (scripts/export_model.py) or reinstall memento",
        )
    norms = np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1), 1e-12)
    cosines = (got * want).sum(axis=1) / norms
    low = float(golden.get("min_cosine", GOLDEN_MIN_COSINE))
    mean = float(golden.get("mean_cosine", GOLDEN_MEAN_COSINE))
    worst = int(np.argmin(cosines))
    found = (
        f"{len(sentences)} golden sentences: cosine to the reference mean "
        f"{cosines.mean():.4f}, min {cosines[worst]:.4f}"
    )
    if cosines.mean() >= mean and cosines[worst] >= low:
        return _pass(name, found)
    return _fail(
        name,
        f"{found} (needs mean >= {mean}, min >= {low}; worst: "
        f"{str(sentences[worst]['text'])[:30]!r}): the model does not embed as it should",
        fix,
    )
