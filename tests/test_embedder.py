"""The bundled ONNX model: fidelity to sentence-transformers, checksums, lazy loading and
model selection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memento import Memory, ModelError
from memento.config import bundled_model_dir
from memento.embedder import BULK_MIN, Embedder, read_manifest, resolve_model_dir, sha256_file

FIXTURE = Path(__file__).parent / "fixtures" / "reference_embeddings.json"


def test_fidelity_to_sentence_transformers(embedder: Embedder) -> None:
    """Reference vectors were computed once with sentence-transformers (torch) by
    scripts/export_model.py; the shipped int8 model must stay close to them."""
    reference = json.loads(FIXTURE.read_text())
    expected = np.array(reference["embeddings"], dtype=np.float32)
    got = embedder.embed(reference["sentences"])
    cosines = (got * expected).sum(axis=1)
    assert len(reference["sentences"]) >= 45
    assert cosines.mean() >= 0.99, cosines.mean()
    assert cosines.min() >= 0.95, (cosines.min(), reference["sentences"][cosines.argmin()])
    # Each sentence's nearest neighbour among the others is the reference's.
    ours = got @ got.T
    theirs = expected @ expected.T
    np.fill_diagonal(ours, -1)
    np.fill_diagonal(theirs, -1)
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()


def test_vectors_are_unit_length_and_batching_does_not_change_them(embedder: Embedder) -> None:
    texts = ["ok", "A much longer sentence about configuring the build system " * 3, "日本語"]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed_one(t) for t in texts])
    assert together.shape == (3, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-5)


def test_a_vector_does_not_depend_on_the_texts_embedded_with_it() -> None:
    """Many texts run on several threads at once (store_many, import, reembed); each text's
    vector is bit-for-bit the one it gets alone, whatever shares the call."""
    embedder = Embedder(threads=3)  # the threaded path even on a one-CPU machine
    texts = [f"note {i}: service s{i} deploys to " + "eu-west " * (i % 9) for i in range(24)]
    together = embedder.embed(texts)
    reversed_ = embedder.embed(texts[::-1])[::-1]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.array_equal(together, alone)
    assert np.array_equal(reversed_, alone)


def test_a_large_call_gives_each_text_the_vector_it_gets_alone() -> None:
    """store_many, import and reembed embed many texts in one call, on a second session of
    one intra-op thread per run (BULK_MIN); each text gets the vector a single store or
    query gives it, so a restatement is told apart the same way in a batch or alone."""
    embedder = Embedder(threads=2)
    texts = [f"lesson {i}: retry the {i % 7} flaky job " + "on arm64 " * (i % 5) for i in range(40)]
    assert len(texts) >= BULK_MIN
    embedder.embed(texts[: BULK_MIN - 1])
    assert embedder._bulk is None  # a few texts at a time never pay for the second session
    together = embedder.embed(texts)
    assert embedder._bulk is not None  # the call took the second session
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-6), float(np.abs(together - alone).max())
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_long_input_is_truncated_at_256_tokens(embedder: Embedder) -> None:
    words = " ".join(f"word{i}" for i in range(2000))
    a = embedder.embed_one(words)
    b = embedder.embed_one(words + " and a different ending that is far past the limit")
    assert np.allclose(a, b, atol=1e-6)


def test_golden_sentences_embed_close_to_the_reference_on_this_cpu(embedder: Embedder) -> None:
    """The manifest's golden sentences carry sentence-transformers (fp32) vectors; int8
    kernels differ by CPU, so the bar is closeness, not equality (memento/health.py)."""
    golden = embedder.manifest["golden"]
    texts = [s["text"] for s in golden["sentences"]]
    want = np.array([s["vector"] for s in golden["sentences"]], dtype=np.float32)
    cosines = (embedder.embed(texts) * want).sum(axis=1)
    assert len(texts) >= 8
    assert cosines.min() >= golden["min_cosine"] and cosines.mean() >= golden["mean_cosine"]


def test_manifest_records_every_file_hash() -> None:
    directory = bundled_model_dir()
    manifest = read_manifest(directory)
    assert manifest["dimension"] == 384 and manifest["max_seq_length"] == 256
    assert manifest["pooling"] == "mean" and manifest["normalized"] is True
    for name in ("model.onnx", "tokenizer.json"):
        assert manifest["files"][name] == sha256_file(directory / name)


def _copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "model-copy"
    shutil.copytree(bundled_model_dir(), target)
    return target


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    copy = _copy_model(tmp_path)
    with (copy / "tokenizer.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(ModelError, match="does not match its sha256"):
        Embedder(copy).embed(["hello"])


def test_a_model_changed_under_a_loaded_embedder_still_embeds_large_calls(
    tmp_path: Path,
) -> None:
    """A server keeps the model it loaded from verified files: when those files change
    afterwards (an upgrade, a damaged disk), a large call, which opens a second session,
    runs on the loaded one instead of failing where a single store would not."""
    copy = _copy_model(tmp_path)
    embedder = Embedder(copy, threads=2)
    texts = [f"note {i}: the cache for tenant t{i} lives in redis db {i % 4}" for i in range(40)]
    alone = embedder.embed(texts[:1])
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    together = embedder.embed(texts)
    assert np.allclose(together[0], alone[0], atol=1e-6)
    assert embedder._bulk is embedder._session
    with pytest.raises(ModelError, match="does not match its sha256"):
        Embedder(copy).embed(["a new process checks the files"])


def test_local_model_directory_from_environment(tmp_path: Path, monkeypatch) -> None:
    copy = _copy_model(tmp_path)
    monkeypatch.setenv("MEMENTO_EMBEDDING_MODEL", str(copy))
    assert resolve_model_dir() == copy
    with Memory(path=tmp_path / "m.db") as m:
        assert m.embedder.model_dir == copy
        m.store("Local model directories work", kind="fact")
        assert m.recall("local model")[0].content == "Local model directories work"


def test_hub_model_fails_clearly_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEMENTO_EMBEDDING_MODEL", "someone/some-embedding-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot fetch model 'someone/some-embedding-model'"):
        resolve_model_dir()


def test_nonsense_model_setting_is_explained(monkeypatch) -> None:
    monkeypatch.setenv("MEMENTO_EMBEDDING_MODEL", "/no/such/dir")
    with pytest.raises(ModelError, match="neither a model directory"):
        resolve_model_dir()


def test_importing_and_opening_do_not_load_onnxruntime(tmp_path: Path) -> None:
    code = (
        "import sys; from memento import Memory; m = Memory(path=sys.argv[1]); "
        "m.stats(); m.recent(); "
        "print(sorted(n for n in ('onnxruntime', 'mcp', 'tokenizers') if n in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "lazy.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_installed_package_carries_the_model() -> None:
    """`pip install .` (not only -e) must ship the model inside the package."""
    import memento

    package_dir = Path(memento.__file__).resolve().parent
    if (package_dir.parent / "pyproject.toml").exists():
        pytest.skip("running from a source checkout (editable install): the wheel is not in use")
    assert bundled_model_dir() == package_dir / "models" / "all-MiniLM-L6-v2"
    for name in ("manifest.json", "model.onnx", "tokenizer.json"):
        assert (bundled_model_dir() / name).is_file()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (None, "no model manifest at .*manifest.json: point MEMENTO_EMBEDDING_MODEL at"),
        ("{not json", "cannot read model manifest .*manifest.json"),
        ('{"name": "m", "files": {}}', "model manifest .*manifest.json lacks 'dimension'"),
    ],
)
def test_a_model_directory_without_a_good_manifest_is_one_clear_error(
    tmp_path: Path, manifest: str | None, message: str
) -> None:
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest, encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        Embedder(tmp_path)
