"""Sentence embeddings with onnxruntime, the raw ``tokenizers`` tokenizer and numpy.

A model directory holds ``manifest.json``, ``model.onnx`` and ``tokenizer.json``. The
manifest names the model and its dimension and records the sha256 of every file; loading
refuses a file whose hash does not match. Nothing heavy happens until the first
:meth:`Embedder.embed`: onnxruntime is imported and the session built then.

A cold process (the Claude Code prompt hook runs one per prompt) would spend most of its time
loading the model, so two things are kept in ``$XDG_CACHE_HOME/memento`` (default
``~/.cache/memento``; ``MEMENTO_MODEL_CACHE=off`` turns both off): the sha256 of files
already verified, with what the kernel says about each file (:class:`HashCache`), and the
session graph onnxruntime optimised for this CPU, with its weights in a separate file that
onnxruntime maps instead of parsing (:func:`open_session`). Either one found damaged is
ignored and rebuilt; neither changes a vector.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import bundled_model_dir, embedding_model_spec, make_private_dirs
from .errors import ModelError

if TYPE_CHECKING:
    import numpy as np

MODEL_FILES = ("model.onnx", "tokenizer.json")
CACHE_ENV = "MEMENTO_MODEL_CACHE"
# Optimised sessions kept in the cache (one per model, onnxruntime version and CPU, ~70 MB
# each); building one more removes the oldest.
MAX_SESSIONS = 3
# A file changed this recently is not remembered as verified: a file system that keeps
# timestamps in coarse ticks could give a change made in the same tick the same ctime
# (the "racy git" problem). Two seconds covers FAT's mtime and ext3's one-second ctime.
RACY_NS = 2_000_000_000
# Runs (texts, or batches) in one embed() call from which they are shared out among threads:
# fewer cost more in starting threads than they save.
PARALLEL_MIN = 4
# Runs in one embed() call from which they go to a second session whose runs use one
# intra-op thread each, the runs themselves spread over ``threads`` Python threads: with
# several runs in flight the first session's intra-op threads only add hand-offs (they sleep
# between runs, see _session_options). Measured on a 2-core Xeon (benches/run.py, embedding
# group, "one session" beside it): 326.9 against 254.3 sentences/s over 2,000 SciFact
# sentences, 270.6 against 260.4 over 500, the vectors bit-identical. One text alone is
# slower there (6.2 against 5.0 ms), so single queries keep the first session. The second
# session is opened at the first call this large (35 ms from the session cache) and costs
# ~29 MB of resident memory (97 -> 126 MB): the threshold keeps a server whose agent stores a
# few memories at a time, or recalls several queries at once, from paying that.
BULK_MIN = 32


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"no model manifest at {path}: point MEMENTO_EMBEDDING_MODEL at a directory with "
            "manifest.json, model.onnx and tokenizer.json, or reinstall memento"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc}") from None
    for key in ("name", "dimension", "files"):
        if key not in manifest:
            raise ModelError(f"model manifest {path} lacks {key!r}: re-export the model")
    return manifest


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/memento`` (default ``~/.cache/memento``), created private (0700);
    None when ``MEMENTO_MODEL_CACHE`` is ``off`` (or 0/false/no) or it cannot be made."""
    if os.environ.get(CACHE_ENV, "on").strip().lower() in {"off", "0", "false", "no"}:
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    path = base / "memento"
    try:
        make_private_dirs(path)
    except OSError:
        return None
    return path


def _fingerprint(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class HashCache:
    """The sha256 of files hashed before, so an unchanged 70 MB model is not hashed again by
    every new process (65 ms of each cold prompt hook on the 2-core benchmark VM).

    Each entry is a file's absolute path -> its device, inode, size, mtime, ctime and
    sha256, taken before hashing and checked again after. A remembered sha256 is used only
    while all five are unchanged, and that is sound: any write to a file, and any chmod,
    rename or utime of it, sets its ctime to the current time, which user code cannot
    choose (only changing the system clock, as root, could), so a file modified by any
    means, even one that put its size and mtime back, is hashed again. A file replaced by
    another has another inode or ctime. A file changed less than ``RACY_NS`` ago is not
    remembered, for file systems with coarse timestamps. What this cannot see is damage
    that bypasses the file system (a bad disk sector): ``memento verify`` always hashes in
    full, and the cache can be turned off (``MEMENTO_MODEL_CACHE=off``). The cache file is
    the user's own (0600 in a 0700 directory): whoever can write it can write the user's
    shell start-up files too, so it opens no new way in.
    """

    FILE = "verified.json"

    def __init__(self, directory: Path | None) -> None:
        # On Windows st_ctime is the creation time, which a write leaves alone: nothing is
        # remembered there, every file is hashed.
        remember = directory is not None and os.name != "nt"
        self.path = directory / self.FILE if remember else None
        self.entries: dict[str, Any] = {}
        self.changed = False
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                pass  # missing or damaged: start afresh

    def sha256(self, path: Path) -> str:
        """The sha256 of ``path``: remembered if the file is unchanged, else computed."""
        key = str(path.absolute())
        before = _fingerprint(path)
        entry = self.entries.get(key)
        if (
            before is not None
            and isinstance(entry, dict)
            and entry.get("stat") == before
            and isinstance(entry.get("sha256"), str)
        ):
            return str(entry["sha256"])
        digest = sha256_file(path)
        if (
            self.path is not None
            and before is not None
            and _fingerprint(path) == before
            and time.time_ns() - before[4] >= RACY_NS
        ):
            self.entries[key] = {"stat": before, "sha256": digest}
            self.changed = True
        return digest

    def save(self) -> None:
        """Write the entries if any were added (atomically; never raises)."""
        if self.path is None or not self.changed:
            return
        # Forget files that are gone (a rebuilt or pruned session cache), so the file stays
        # a few lines long.
        self.entries = {k: v for k, v in self.entries.items() if os.path.exists(k)}
        try:
            _write_private(self.path, json.dumps(self.entries).encode())
            self.changed = False
        except OSError:
            pass


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, readable by the user alone (0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_files(
    model_dir: Path, manifest: dict[str, Any], hashes: HashCache | None = None
) -> list[str]:
    """Problems with the model files (missing, or sha256 not the manifest's); empty if fine.
    Every file is hashed in full unless ``hashes`` may answer for unchanged ones."""
    problems = []
    for name in MODEL_FILES:
        expected = manifest["files"].get(name)
        path = model_dir / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif expected is None:
            problems.append(f"manifest records no sha256 for {name}")
        elif (hashes.sha256(path) if hashes else sha256_file(path)) != expected:
            problems.append(f"{path} does not match its sha256 in the manifest (damaged?)")
    return problems


def resolve_model_dir(spec: str | None = None) -> Path:
    """The directory of the model to use: bundled, a local directory, or a hub download."""
    spec = spec if spec is not None else embedding_model_spec()
    if spec is None:
        return bundled_model_dir()
    local = Path(spec).expanduser()
    if local.is_dir():
        return local.absolute()
    if local.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1:
        raise ModelError(
            f"MEMENTO_EMBEDDING_MODEL={spec!r} is neither a model directory nor a Hugging Face "
            "repo id (owner/name): fix or unset it"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(repo_id=spec, allow_patterns=["manifest.json", *MODEL_FILES])
        )
    except Exception as exc:  # network errors come in many types
        raise ModelError(
            f"cannot fetch model {spec!r} from the Hugging Face hub ({type(exc).__name__}): "
            "check the network, or set MEMENTO_EMBEDDING_MODEL to a local model directory"
        ) from None


def default_threads() -> int:
    """Up to 4 intra-op threads: enough for one query, leaves a laptop responsive."""
    return max(1, min(4, os.cpu_count() or 1))


# Verified tokenizers by the absolute path of their file (see shared_tokenizer).
_tokenizers: dict[str, Any] = {}


def shared_tokenizer(path: Path) -> Any:
    """The tokenizer an :class:`Embedder` in this process loaded from ``path`` after checking
    its sha256, or None. It truncates and pads nothing and is never changed once loaded, so
    others (the token counts of :mod:`memento.context`) may use it instead of loading it
    again (25 ms)."""
    return _tokenizers.get(str(path.absolute()))


# ---- the onnxruntime session --------------------------------------------------------

PROVIDERS = ["CPUExecutionProvider"]
# The optimised graph of a cached session, and the file of its weights beside it.
SESSION_FILES = ("model.onnx", "model.data")


def _session_options(ort: Any, threads: int, level: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    # An idle MCP server must not burn CPU: worker threads sleep instead of spinning.
    # Measured (2 threads, SciFact sentences): spinning makes one query 5.7 ms instead
    # of 7.1 ms, but 40 queries 50 ms apart then cost 1.9 s of CPU in 2.2 s (0.2 s
    # without spinning).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def _cpu_id() -> str:
    """What a graph optimised with ORT_ENABLE_ALL may depend on (onnxruntime warns it may be
    specific to the hardware): the platform, and the CPU's model and feature flags. Not
    platform.processor(): on Linux and macOS it runs ``uname -p``, 7-50 ms."""
    parts = [sys.platform, platform.machine()]
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(("model name", "flags", "Features", "CPU part")):
                parts.append(line.split(":", 1)[-1].strip())
            elif not line.strip():
                break  # the first CPU's block is enough
    if len(parts) == 2:  # no /proc/cpuinfo: the features numpy detected (onnxruntime needs it)
        with contextlib.suppress(Exception):
            from numpy._core._multiarray_umath import __cpu_features__

            parts.extend(sorted(name for name, present in __cpu_features__.items() if present))
    return "\n".join(parts)


def import_onnxruntime() -> Any:
    """onnxruntime, imported with its telemetry off.

    onnxruntime 1.32 on Linux records a "ProcessInfo" event (a device id, the CPU model, the
    OS, memory size, the program's path) in ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``
    for its 1DS client to upload to Microsoft; memento promises no telemetry. Set before
    onnxruntime loads, ORT_DISABLE_TELEMETRY=1 stops it (nothing is written);
    ``disable_telemetry_events()`` after the import did not (the event was already stored).
    A user's own ORT_DISABLE_TELEMETRY is left as it is."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def session_cache_slot(cache: Path, model_sha256: str, ort_version: str) -> Path:
    """The directory of the optimised session for this model, onnxruntime and CPU."""
    key = json.dumps([model_sha256, ort_version, _cpu_id(), 1])
    return cache / "sessions" / hashlib.sha256(key.encode()).hexdigest()[:32]


def open_session(
    model: Path, model_sha256: str, threads: int, cache: Path | None, hashes: HashCache
) -> Any:
    """An onnxruntime session for ``model``, whose sha256 has been checked.

    Building one from the model takes 0.2-0.3 s of a cold process: parsing 70 MB of protobuf
    and optimising the graph. So the first build also saves the optimised graph in
    ``cache`` (``session_cache_slot``), with its weights in a separate file, and later
    processes load that with optimisation off: onnxruntime then maps the weights instead of
    parsing them. Measured on the bundled model (2-core Xeon VM, CPU time of the build):
    171 ms from the model, 35 ms from the cache; peak RSS 180 -> 156 MB; the vectors of 50
    sentences bit-identical. (The ORT-format alternative saved no time and added 65 MB of
    RSS; ``session.disable_prepacking`` changed the vectors.)

    A cached graph is used only if its files match the sha256 recorded when it was saved;
    if not, or if onnxruntime refuses it, it is removed and built again. Without a cache
    (None, or it cannot be written) the session is built from the model as before."""
    ort = import_onnxruntime()
    full = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if cache is not None:
        slot = session_cache_slot(cache, model_sha256, ort.__version__)
        session = _load_cached_session(ort, slot, threads, hashes)
        if session is not None:
            return session
        session = _build_cached_session(ort, model, slot, threads)
        if session is not None:
            return session
    return ort.InferenceSession(
        str(model), sess_options=_session_options(ort, threads, full), providers=PROVIDERS
    )


def _load_cached_session(ort: Any, slot: Path, threads: int, hashes: HashCache) -> Any:
    sums_path = slot / "sha256.json"
    if not sums_path.is_file():
        return None
    try:
        sums = json.loads(sums_path.read_text(encoding="utf-8"))
        for name in SESSION_FILES:
            if hashes.sha256(slot / name) != sums[name]:
                raise ValueError(f"{slot / name} does not match its sha256")
        options = _session_options(ort, threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        return ort.InferenceSession(
            str(slot / "model.onnx"), sess_options=options, providers=PROVIDERS
        )
    except Exception:  # damaged in any way: build it again
        _remove_tree(slot)
        return None


def _build_cached_session(ort: Any, model: Path, slot: Path, threads: int) -> Any:
    """Build the session from ``model`` and save its optimised graph as ``slot``; None if
    that cannot be done (the caller then builds without saving)."""
    try:
        make_private_dirs(slot.parent)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=slot.parent))  # 0700
    except OSError:
        return None
    try:
        options = _session_options(ort, threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        options.optimized_model_filepath = str(build / "model.onnx")
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", "model.data"
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
        session = ort.InferenceSession(str(model), sess_options=options, providers=PROVIDERS)
        sums = {name: sha256_file(build / name) for name in SESSION_FILES}
        for name in SESSION_FILES:
            os.chmod(build / name, 0o600)
        _write_private(build / "sha256.json", json.dumps(sums).encode())
    except Exception:
        _remove_tree(build)
        return None
    # Atomic: other processes see the whole directory or none. A directory already there
    # (another process was quicker) makes the rename fail, and this copy is dropped.
    with contextlib.suppress(OSError):
        os.rename(build, slot)
    _remove_tree(build)
    _prune_sessions(slot.parent)
    return session


def _remove_tree(path: Path) -> None:
    """Remove a directory, first renamed aside so no process sees it half deleted. Files a
    running process has mapped stay valid until it closes them."""
    if not path.exists():
        return
    aside = path.with_name(f".removed-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        os.rename(path, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _prune_sessions(directory: Path) -> None:
    """Keep the newest ``MAX_SESSIONS`` cached sessions, and drop builds left over by a
    process that died an hour ago or more."""
    with contextlib.suppress(OSError):
        slots, now = [], time.time()
        for entry in directory.iterdir():
            mtime = entry.stat().st_mtime
            if not entry.name.startswith("."):
                slots.append((mtime, entry))
            elif now - mtime > 3600:
                shutil.rmtree(entry, ignore_errors=True)
        for _, entry in sorted(slots, reverse=True)[MAX_SESSIONS:]:
            _remove_tree(entry)


class Embedder:
    """Turns texts into L2-normalised float32 vectors with an ONNX sentence model."""

    def __init__(self, model_dir: Path | str | None = None, threads: int | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else resolve_model_dir()
        self.manifest = read_manifest(self.model_dir)
        self.name: str = str(self.manifest["name"])
        self.dimension: int = int(self.manifest["dimension"])
        self.max_seq_length: int = int(self.manifest.get("max_seq_length", 256))
        self.batch_size: int = int(self.manifest.get("batch_size", 1))
        self.threads = threads or default_threads()
        self._session: Any = None
        self._bulk: Any = None
        self._bulk_lock = threading.Lock()
        self._tokenizer: Any = None
        self._specials = 0
        self._input_names: list[str] = []
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def _open(self, threads: int) -> Any:
        """Check the files' hashes, then open an ONNX session of ``threads`` intra-op
        threads (:func:`open_session`)."""
        cache = cache_dir()
        hashes = HashCache(cache)
        problems = check_files(self.model_dir, self.manifest, hashes)
        if problems:
            raise ModelError(
                f"embedding model refused: {problems[0]}; reinstall memento or re-export "
                "the model (scripts/export_model.py)"
            )
        model = self.model_dir / "model.onnx"
        try:
            return open_session(model, self.manifest["files"]["model.onnx"], threads, cache, hashes)
        except Exception as exc:
            raise ModelError(f"cannot load {model}: {exc}") from None
        finally:
            hashes.save()

    def load(self) -> None:
        """Check the files' hashes, then build the tokenizer and the ONNX session."""
        with self._lock:
            if self._session is not None:
                return
            session = self._open(self.threads)
            from tokenizers import Tokenizer

            tokenizer_path = self.model_dir / "tokenizer.json"
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            # embed() truncates each text itself and pads each batch to its longest text,
            # so the tokenizer stays as it is and can be shared (shared_tokenizer).
            tokenizer.no_truncation()
            tokenizer.no_padding()
            # The manifest's dimension sizes the vector table: a wrong one (hand-edited,
            # another model's manifest) must fail here, before `memento reembed` rebuilds
            # the table for vectors the model never makes.
            width = session.get_outputs()[0].shape[-1]
            if isinstance(width, int) and width != self.dimension:
                raise self._dimension_error(width)
            self._input_names = [item.name for item in session.get_inputs()]
            self._specials = tokenizer.num_special_tokens_to_add(False)
            self._tokenizer = tokenizer
            self._session = session
            _tokenizers[str(tokenizer_path.absolute())] = tokenizer

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Vectors of shape (len(texts), dimension), each of unit length.

        Texts are run one at a time unless the manifest (or ``batch_size``) says otherwise:
        dynamic int8 quantisation scales activations per tensor, so texts sharing a padded
        batch shift each other's vectors (cosine down to 0.954 measured on the fidelity
        fixture), and on a laptop CPU batching bought no speed (600 SciFact sentences:
        89.6/s one at a time, 77.2/s in batches of 32). One text, one vector, always.
        Batches, when used, are sorted by length and padded to their longest text.

        Many texts run one at a time are shared out among ``threads`` Python threads, each
        calling the one session (onnxruntime runs concurrent calls and releases the GIL):
        a short text keeps two cores only half busy, so two texts in flight at once use
        them better (``PARALLEL_MIN`` says when). Each text is still its own run with the
        same inputs, so its vector is bit-identical to the sequential one (checked in
        tests/test_embedder.py)."""
        import numpy as np

        self.load()
        batch_size = batch_size or self.batch_size
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encode(texts)
        # Sorting by length keeps padding small when a big batch is split up.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        workers = min(self.threads, len(chunks))
        if workers > 1 and len(chunks) >= PARALLEL_MIN:
            from concurrent.futures import ThreadPoolExecutor

            session = self._bulk_session() if len(chunks) >= BULK_MIN else self._session
            with ThreadPoolExecutor(workers, thread_name_prefix="memento-embed") as pool:
                for chunk, vectors in zip(
                    chunks,
                    pool.map(lambda c: self._run([encodings[i] for i in c], session), chunks),
                ):
                    out[chunk] = vectors
        else:
            for chunk in chunks:
                out[chunk] = self._run([encodings[i] for i in chunk])
        return out

    def _bulk_session(self) -> Any:
        """The session of one intra-op thread that runs many texts at once (``BULK_MIN``),
        opened on first use from the same (cached) graph. If it cannot be opened (the model
        files changed since :meth:`load`, say by an upgrade under a running server), the
        first session, loaded from verified files, runs them as before, and no later call
        hashes the model again to find out."""
        with self._bulk_lock:  # not _lock: tokenising other texts need not wait for this
            if self._bulk is None:
                try:
                    self._bulk = self._open(1)
                except ModelError:
                    self._bulk = self._session
            return self._bulk

    def _run(self, encodings: Sequence[Any], session: Any = None) -> np.ndarray:
        """The unit vectors of one batch of encodings, padded to the longest, run on
        ``session`` (None: the embedder's own)."""
        import numpy as np

        width = max(len(enc.ids) for enc in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            length = sum(enc.attention_mask)
            ids[row, :length] = enc.ids[:length]
            mask[row, :length] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = (session or self._session).run(None, feeds)[0]
        if hidden.shape[-1] != self.dimension:  # a model whose output width is symbolic
            raise self._dimension_error(int(hidden.shape[-1]))
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _dimension_error(self, width: int) -> ModelError:
        return ModelError(
            f"model manifest {self.model_dir / 'manifest.json'} says dimension "
            f"{self.dimension} but model.onnx makes {width}: fix \"dimension\" in the "
            "manifest or re-export the model (scripts/export_model.py)"
        )

    def _encode(self, texts: Sequence[str]) -> list[Any]:
        """Each text's encoding, special tokens added, cut at ``max_seq_length`` tokens."""
        self.load()
        with self._lock:
            # What enable_truncation(max_seq_length) does (the same ids, checked in
            # tests/test_embedder_cache.py), without changing a tokenizer others may share.
            encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
            for enc in encodings:
                enc.truncate(self.max_seq_length - self._specials)
            return [self._tokenizer.post_process(enc) for enc in encodings]

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


# One embedder per model per process, so a process that opens several databases (the tests,
# a script driving the CLI's ``main``) reads and verifies the model once.
_embedders: dict[str | None, Embedder] = {}


def shared_embedder() -> Embedder | None:
    """The process's embedder for the model ``MEMENTO_EMBEDDING_MODEL`` names (made on the
    first call). None when the model's manifest cannot be read: ``Memory`` then raises the
    model error if it ever needs to embed."""
    spec = embedding_model_spec()
    if spec not in _embedders:
        try:
            _embedders[spec] = Embedder()
        except ModelError:
            return None
    return _embedders[spec]
