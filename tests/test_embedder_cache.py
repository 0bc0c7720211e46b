"""What the embedder keeps in ``$XDG_CACHE_HOME/memento`` to make a cold load fast: the
sha256 of verified model files and the optimised onnxruntime session. Neither may let a
changed model through, and neither may change a vector (stored vectors must stay comparable).
Real model, real files, new processes where a new process is the point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from memento import embedder as embedder_module
from memento.config import bundled_model_dir
from memento.embedder import RACY_NS, Embedder, check_files, read_manifest

TEXTS = [
    "I prefer dark mode in editors",
    "The deploy script needs AWS_PROFILE set to staging",
    " ".join(f"word{i}" for i in range(600)),  # past the 256-token limit
    "日本語のテキスト",
    "ok",
]

# Loads the model in ``argv[1]`` in a new process and prints, as JSON, the paths of the
# files it hashed and the error it met, if any.
LOAD = """
import json, sys
import memento.embedder as e
hashed = []
real = e.sha256_file
e.sha256_file = lambda path: hashed.append(str(path)) or real(path)
try:
    e.Embedder(sys.argv[1]).load()
    error = None
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
print(json.dumps({"hashed": hashed, "error": error}))
"""


def _load_in_new_process(model: Path, cache: Path) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("MEMENTO_MODEL_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(model)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """TEXTS embedded with no cache at all, as before the caches existed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMENTO_MODEL_CACHE", "off")
        return Embedder().embed(TEXTS)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MEMENTO_MODEL_CACHE", raising=False)
    yield tmp_path / "cache" / "memento"


def _slot(cache: Path) -> Path:
    (slot,) = [p for p in (cache / "sessions").iterdir() if not p.name.startswith(".")]
    return slot


def test_a_model_changed_after_a_cached_load_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    cache = tmp_path / "cache"
    # Files changed in the last RACY_NS are never remembered: let the copy age past that.
    newest = max((model / name).stat().st_ctime_ns for name in ("model.onnx", "tokenizer.json"))
    time.sleep(max(0.0, (newest + RACY_NS - time.time_ns()) / 1e9 + 0.1))

    files = {str(model / "model.onnx"), str(model / "tokenizer.json")}
    first = _load_in_new_process(model, cache)
    assert first["error"] is None and files <= set(first["hashed"])
    second = _load_in_new_process(model, cache)
    assert second["error"] is None and not files & set(second["hashed"])

    # Flip one byte of the weights, keeping the size and the mtime: only the ctime tells.
    path = model / "model.onnx"
    before = path.stat()
    with path.open("r+b") as handle:
        handle.seek(before.st_size // 2)
        byte = handle.read(1)
        handle.seek(before.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns

    third = _load_in_new_process(model, cache)
    assert third["error"] is not None and third["error"].startswith("ModelError")
    assert "does not match its sha256" in third["error"]


def test_check_files_without_a_cache_always_hashes(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`memento verify` (health.py) calls check_files without a cache: every file is read
    in full however recently it was verified."""
    directory = bundled_model_dir()
    manifest = read_manifest(directory)
    hashes = embedder_module.HashCache(cache)
    assert check_files(directory, manifest, hashes) == []
    hashed: list[str] = []
    real = embedder_module.sha256_file
    monkeypatch.setattr(
        embedder_module, "sha256_file", lambda path: hashed.append(path.name) or real(path)
    )
    assert check_files(directory, manifest) == []
    assert sorted(hashed) == ["model.onnx", "tokenizer.json"]


def test_cached_session_gives_the_same_vectors(cache: Path, reference: np.ndarray) -> None:
    built = Embedder().embed(TEXTS)  # builds the session and saves its optimised graph
    slot = _slot(cache)
    assert sorted(p.name for p in slot.iterdir()) == ["model.data", "model.onnx", "sha256.json"]
    assert (cache.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in slot.iterdir())
    loaded = Embedder().embed(TEXTS)  # loads the saved graph
    assert np.array_equal(built, reference)
    assert np.array_equal(loaded, reference)


def _flip_weights(slot: Path) -> None:
    path = slot / "model.data"
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


DAMAGE = {
    "a byte of the weights flipped": _flip_weights,
    "graph truncated": lambda slot: os.truncate(slot / "model.onnx", 1000),
    "weights missing": lambda slot: (slot / "model.data").unlink(),
    "sums not JSON": lambda slot: (slot / "sha256.json").write_text("{"),
    "verified-hash file not JSON": lambda slot: (slot.parents[1] / "verified.json").write_text("["),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_session_cache_is_rebuilt(
    cache: Path, reference: np.ndarray, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Embedder().load()
    slot = _slot(cache)
    DAMAGE[damage](slot)
    vectors = Embedder().embed(TEXTS)
    assert np.array_equal(vectors, reference)
    # Whatever was damaged has been replaced by a good copy, which the next load uses.
    sums = json.loads((_slot(cache) / "sha256.json").read_text())
    for name, digest in sums.items():
        assert embedder_module.sha256_file(_slot(cache) / name) == digest

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the rebuilt cache was not used")

    monkeypatch.setattr(embedder_module, "_build_cached_session", no_rebuild)
    assert np.array_equal(Embedder().embed(TEXTS), reference)


def test_unwritable_cache_still_embeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: np.ndarray
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert np.array_equal(Embedder().embed(TEXTS), reference)


def test_truncation_matches_the_tokenizers_own(embedder: Embedder) -> None:
    """embed() cuts texts itself so that its tokenizer can be shared: the ids must be the
    ones enable_truncation gives."""
    own = Tokenizer.from_file(str(embedder.model_dir / "tokenizer.json"))
    own.enable_truncation(max_length=embedder.max_seq_length)  # as embed() did before
    own.no_padding()
    texts = [*TEXTS, "word " * 254, "word " * 255, "word " * 300, "🙂" * 400, ""]
    ours = embedder._encode(texts)
    theirs = own.encode_batch(texts, add_special_tokens=True)
    assert [e.ids for e in ours] == [e.ids for e in theirs]
    assert [e.attention_mask for e in ours] == [e.attention_mask for e in theirs]
    assert max(len(e.ids) for e in ours) == embedder.max_seq_length


def test_token_counts_reuse_the_embedders_tokenizer(tmp_path: Path) -> None:
    code = (
        "import tokenizers, memento.context as c, memento.embedder as e\n"
        "loads = []\n"
        "real = tokenizers.Tokenizer.from_file\n"
        "class T: from_file = staticmethod(lambda p: loads.append(p) or real(p))\n"
        "tokenizers.Tokenizer = T\n"
        "e.Embedder().embed(['hello'])\n"
        "n = c.count_tokens('hello world')\n"
        "print(len(loads), n)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "3"]  # one load; "hello world" is 2 pieces, 11 bytes
