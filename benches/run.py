"""CPU benchmark of memento: speed, memory and recall quality, against the torch stack.

    python benches/run.py                      # everything (quality included): ~15-25 min
    python benches/run.py --quick              # < 3 min on a quiet 2-core machine
    python benches/run.py --quick --skip startup memory
    python benches/run.py --fp32-model /path/model_fp32.onnx \\
        --st-python /path/to/venv/bin/python --st-model /path/to/all-MiniLM-L6-v2

Groups (``--skip`` takes their names):

- ``embedding``: sentences/s (batch 32) on a fixed set of real sentences split from
  ``../shared/eval/scifact/corpus.jsonl``, and single-query latency, for memento's shipped
  int8 model, the fp32 ONNX export of the same model (``--fp32-model``), and
  sentence-transformers + torch (``--st-python``/``--st-model``, run as a subprocess so
  torch never enters this process). Also the cosine fidelity of int8 to fp32 and to torch.
- ``startup``: wall time of ``memento --help``, of a cold ``memento search`` process, of MCP
  spawn -> ``initialize`` (``benches/mcp_probe.py``), and of the same cold search done by a
  minimal sentence-transformers script.
- ``memory``: peak resident memory (VmHWM / ru_maxrss) of ``memento start`` after 100
  recalls, of a cold ``memento search``, and of sentence-transformers scripts doing the same.
- ``scale``: ``Memory.store_many`` throughput and ``recall`` p50/p95 (with and without the
  query embedding) as one store grows through the sizes of ``--scale``.
- ``quality``: ``benches/recall_quality.py`` (LoCoMo dev R@k, SciFact nDCG@10) for dense,
  keyword and hybrid. It takes minutes, so ``--quick`` leaves it out unless ``--quality``.

Every figure is a median of repeated runs, and every comparison is a ratio of two figures
measured side by side in the same run: absolute times on a shared machine are noisy. The
load average before and after is recorded with the results.

Output: progress on stderr, a markdown table per group on stdout, and in ``--out``
(default ``benches/results``) ``<date>-<host>.json`` (raw results), ``.md`` (the tables)
and ``.png`` (a chart; needs matplotlib, ``pip install -e '.[bench]'``).

This module imports only the standard library at the top: memento, numpy and the
benchmark helpers are imported where they are used, so a missing optional piece is
reported in one line, and the same file serves as the sentence-transformers worker in an
environment that has torch but not memento (``python run.py _st-worker ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
GROUPS = ("embedding", "startup", "memory", "scale", "quality")
RESULTS_SCHEMA = 1

# Store sizes for the scale group. Each size grows the same store, so a larger preset only
# adds steps. "1m" (issue 8) also takes 40,000 real sentences as the synthetic pool (their
# vectors cached in --workdir) and measures the large-store index against the exact scan.
SCALES: dict[str, tuple[int, ...]] = {
    "quick": (1_000, 10_000),
    "standard": (1_000, 10_000, 100_000),
    "1m": (10_000, 100_000, 1_000_000),
}
SCALE_1M_SENTENCES = 40_000
# Candidate pools whose recall@10 against the exact scan is measured at each size.
POOL_SIZES = (250, 500, 1_000, 2_000)
# Synthetic rows with a subject key (bench.rare.<n>): one in this many, for a prefix filter
# that matches few memories.
RARE_KEY_EVERY = 10_000
# Queries whose exact top 10 (the vec0 brute-force scan, seconds each at 1M) is computed.
EXACT_QUERIES = 50
# Synthetic rows: a real sentence's vector plus Gaussian noise of this total norm, then
# re-normalised; cosine to the original is about 1/sqrt(1 + SIGMA^2) = 0.96.
PERTURB_SIGMA = 0.3
# Memories stored one at a time at each size, facts and events in turn (as an MCP server
# stores what an agent sends it, one per call): half by the connection that has been
# recalling, half as a first search (see time_single_stores).
SINGLE_STORES = 80
SYNTHETIC_KINDS = ("fact", "fact", "fact", "event", "event", "lesson")
WORKER = "_st-worker"


class BenchError(Exception):
    """A problem the user can fix (bad flag, missing data); printed as one line."""


class Skip(Exception):
    """A measurement that cannot run here (optional backend absent); recorded with the reason."""


# ---- settings -----------------------------------------------------------------------


@dataclass
class Settings:
    """How much to measure. ``--quick`` picks the small column."""

    quick: bool
    sentences: int  # embedding set
    latency_queries: int  # single-query latency samples per backend
    embed_repeats: int
    sizes: tuple[int, ...]
    store_batch: int  # real texts stored with store_many at each size
    recall_queries: int
    help_runs: int
    search_runs: int
    st_search_runs: int
    quality: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = args.quick
        scale = args.scale or ("quick" if quick else "standard")
        sizes = args.sizes or SCALES[scale]
        return cls(
            quick=quick,
            sentences=args.sentences
            or (SCALE_1M_SENTENCES if scale == "1m" else 500 if quick else 2_000),
            latency_queries=args.queries or (50 if quick else 200),
            embed_repeats=3,
            sizes=tuple(sorted(sizes)),
            store_batch=args.store_batch or (500 if quick or scale == "1m" else 1_000),
            recall_queries=args.queries or (50 if quick else 100),
            help_runs=5 if quick else 10,
            search_runs=3 if quick else 7,
            st_search_runs=3 if quick else 5,
            quality=args.quality or not quick,
        )


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "").replace("k", "000")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes takes numbers like 1000,10000: {text!r}"
        ) from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("--sizes must be at least 2 each")
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, not the usage block: ``run.py: error: ... (see --help)``."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="run.py",
        description="CPU benchmark of memento against sentence-transformers + torch.",
        epilog=f"Groups: {', '.join(GROUPS)}. Results go to --out as JSON, markdown and PNG.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sets, sizes 1k and 10k, no quality (< 3 min)"
    )
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=GROUPS, metavar="GROUP", help="groups to leave out"
    )
    parser.add_argument(
        "--quality", action="store_true", help="run the quality group even with --quick"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="results directory [benches/results]"
    )
    parser.add_argument(
        "--fp32-model",
        type=Path,
        default=os.environ.get("MEMENTO_BENCH_FP32_MODEL"),
        help="the fp32 ONNX export of the bundled model [env MEMENTO_BENCH_FP32_MODEL]",
    )
    parser.add_argument(
        "--st-python",
        default=os.environ.get("MEMENTO_BENCH_ST_PYTHON", sys.executable),
        help="a python with sentence-transformers and torch [env MEMENTO_BENCH_ST_PYTHON; "
        "default: this python]",
    )
    parser.add_argument(
        "--st-model",
        type=Path,
        default=os.environ.get("MEMENTO_BENCH_ST_MODEL"),
        help="local sentence-transformers directory of all-MiniLM-L6-v2 "
        "[env MEMENTO_BENCH_ST_MODEL]",
    )
    parser.add_argument(
        "--scale", choices=sorted(SCALES), help="store sizes preset [quick with --quick]"
    )
    parser.add_argument("--sizes", type=_sizes, help="explicit store sizes, e.g. 1000,10000")
    parser.add_argument("--sentences", type=_positive, help="embedding set size [2000; quick 500]")
    parser.add_argument(
        "--queries", type=_positive, help="latency samples per measurement [200/100; quick 50]"
    )
    parser.add_argument(
        "--store-batch", type=_positive, help="real texts added by store_many per size [1000/500]"
    )
    parser.add_argument("--workdir", type=Path, help="keep the built stores here (reused)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    return parser


# ---- small helpers ------------------------------------------------------------------


class Log:
    """Progress on stderr with the elapsed time."""

    def __init__(self, stream: Any = None) -> None:
        self.start = time.perf_counter()
        self.stream = stream

    def __call__(self, message: str) -> None:
        stream = self.stream or sys.stderr
        print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=stream, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def time_each(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[float]:
    """Seconds taken by ``fn(item)`` for each item."""
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    for name in ("numpy", "onnxruntime", "tokenizers", "apsw", "sqlite_vec"):
        with contextlib.suppress(Exception):
            module = __import__(name)
            info[name] = getattr(module, "__version__", None) or getattr(
                module, "apsw_version", lambda: None
            )()
    with contextlib.suppress(Exception):
        import apsw

        info["sqlite"] = apsw.sqlite_lib_version()
    return info


# Runs the command as its child and writes [wall s, exit code, ru_maxrss KiB] to argv[1].
# The peak RSS must come from a small parent: a child forked from this (large) process
# starts with our resident set counted in its ru_maxrss, which exec does not reset.
_TRAMPOLINE = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    json.dump([wall, os.waitstatus_to_exitcode(status), usage.ru_maxrss], out)
"""


def run_process(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run a command: its wall time, exit code, output, and its own peak RSS (wait4 in a
    small trampoline process, see above)."""
    if shutil.which(command[0]) is None:
        raise Skip(f"cannot run {command[0]}: not found")
    with tempfile.TemporaryDirectory(prefix="memento-bench-proc-") as tmp:
        figures = Path(tmp) / "figures.json"
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _TRAMPOLINE, str(figures), *command],
                stdout=out, stderr=err, env=env, start_new_session=True,
            )  # fmt: skip
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                raise Skip(f"`{Path(command[0]).name} ...` took over {timeout:.0f} s") from None
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        if not figures.is_file():
            raise Skip(f"cannot run {command[0]}: {stderr.strip()[-200:]}")
        wall, returncode, maxrss_kib = json.loads(figures.read_text())
    return {
        "wall_s": wall,
        "returncode": returncode,
        "stdout": stdout,
        "stderr": stderr,
        "maxrss_mib": round(maxrss_kib / 1024, 1),  # ru_maxrss is in KiB on Linux
    }


def _failure(result: dict[str, Any]) -> str:
    lines = [ln for ln in result["stderr"].strip().splitlines() if ln.strip()]
    return f"exit {result['returncode']}: {lines[-1] if lines else 'no message'}"


# ---- the data -----------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")


def scifact_sentences(limit: int) -> list[str]:
    """The first ``limit`` distinct sentences (30-300 characters) of the SciFact abstracts,
    in corpus order: split on ., ! or ? followed by a space and a capital."""
    path = EVAL / "scifact" / "corpus.jsonl"
    if not path.is_file():
        raise BenchError(f"evaluation data not found at {path}: place ../shared beside the repo")
    seen: set[str] = set()
    out: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            for sentence in _SENTENCE_END.split(json.loads(line)["text"]):
                sentence = sentence.strip()
                if 30 <= len(sentence) <= 300 and sentence not in seen:
                    seen.add(sentence)
                    out.append(sentence)
                    if len(out) == limit:
                        return out
    return out


def scifact_claims(limit: int) -> list[str]:
    path = EVAL / "scifact" / "queries_train.jsonl"
    if not path.is_file():
        raise BenchError(f"evaluation data not found at {path}: place ../shared beside the repo")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(limit), handle)]


# ---- context shared by the groups -----------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    settings: Settings
    workdir: Path
    log: Callable[[str], None]
    sentences: list[str] = field(default_factory=list)
    _embedder: Any = None
    pool_vectors: Any = None  # int8 vectors of ``sentences`` (numpy), shared with scale
    probe: dict[str, Any] | None = None  # mcp_probe.measure(), shared by startup and memory
    probe_error: str | None = None
    search_store: Path | None = None
    search_matrix: Path | None = None
    st_status: tuple[bool, str] | None = None  # can --st-python import the torch stack?
    groups: dict[str, Any] = field(default_factory=dict)  # results of the groups run so far

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from memento.embedder import Embedder

            self._embedder = Embedder()
            self._embedder.load()
        return self._embedder

    def pool(self) -> Any:
        """int8 vectors of the embedding sentences (computed here if embedding was skipped).
        Cached in the workdir as ``scifact-vectors-<n>.npy`` (the first n sentences in corpus
        order, so a cache of more sentences serves too): embedding 40,000 sentences takes
        ~6 minutes here."""
        if self.pool_vectors is None:
            import numpy as np

            n = len(self.sentences)
            cached = sorted(self.workdir.glob("scifact-vectors-*.npy"))
            for path in cached:
                vectors = np.load(path, mmap_mode="r")
                if len(vectors) >= n:
                    self.log(f"synthetic rows: sentence vectors from {path}")
                    self.pool_vectors = np.array(vectors[:n], dtype=np.float32)
                    return self.pool_vectors
            self.log(f"embedding {n} sentences for the synthetic rows")
            self.pool_vectors = self.embedder.embed(self.sentences)
            if n >= 10_000:
                np.save(self.workdir / f"scifact-vectors-{n}.npy", self.pool_vectors)
        return self.pool_vectors

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra})
        return env


# ---- sentence-transformers (as a subprocess with its own python) ---------------------


def st_check(ctx: Context) -> None:
    """Raise Skip unless --st-python can import sentence_transformers and --st-model exists."""
    args = ctx.args
    if args.st_model is None:
        raise Skip("no --st-model given (a local all-MiniLM-L6-v2 sentence-transformers dir)")
    if not Path(args.st_model).is_dir():
        raise Skip(f"--st-model {args.st_model} is not a directory")
    if ctx.st_status is None:
        try:
            probe = subprocess.run(
                [args.st_python, "-c", "import sentence_transformers, torch"],
                capture_output=True,
                timeout=120,
                check=False,
            )
            ok = probe.returncode == 0
            reason = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, reason = False, [one_line(exc)]
        ctx.st_status = (ok, reason[0])
    ok, why = ctx.st_status
    if not ok:
        raise Skip(
            f"sentence-transformers not importable by {args.st_python} ({why}): "
            "pip install sentence-transformers torch, or pass --st-python"
        )


def st_worker_command(ctx: Context, *argv: str) -> list[str]:
    return [ctx.args.st_python, str(Path(__file__).resolve()), WORKER, *argv]


def st_worker(argv: list[str]) -> int:
    """Runs in the sentence-transformers python: ``serve`` (timing requests), ``search``
    or ``recalls``."""
    import numpy as np

    mode, model_dir = argv[0], argv[1]
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    loaded = time.perf_counter() - started

    def encode(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    if mode == "search":  # the minimal cold search: load, embed the query, brute-force cosine
        matrix = np.load(argv[2])
        scores = matrix @ encode([argv[3]])[0]
        print(int(np.argmax(scores)))
        return 0
    if mode == "recalls":  # 100 single-query recalls, then the peak RSS
        matrix = np.load(argv[2])
        queries = json.loads(Path(argv[3]).read_text())
        latencies = time_each(lambda q: np.argsort(-(matrix @ encode([q])[0]))[:10], queries)
        status = Path("/proc/self/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        print(json.dumps({"peak_rss_mib": round(peak / 1024, 1), "recalls": len(queries),
                          "recall_ms_median": ms(statistics.median(latencies))}))
        return 0
    # serve: answer timing requests from run.py over stdin/stdout, one JSON object a line,
    # so the torch passes interleave with memento's in the same minutes of machine load.
    import torch

    sentences = json.loads(Path(argv[2]).read_text())
    encode(sentences[:64])  # warm-up
    print(json.dumps({
        "load_s": round(loaded, 3),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__,
                     "sentence_transformers": __import__("sentence_transformers").__version__},
    }), flush=True)  # fmt: skip
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "pass":
            start = time.perf_counter()
            vectors = encode(sentences)
            seconds = time.perf_counter() - start
            if request.get("save"):
                np.save(request["save"], np.asarray(vectors, dtype=np.float32))
            print(json.dumps({"seconds": seconds}), flush=True)
        elif request["op"] == "one":
            start = time.perf_counter()
            encode([sentences[request["index"]]])
            print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
        else:
            break
    return 0


# ---- group 1: embedding -------------------------------------------------------------


class _StServer:
    """The sentence-transformers worker kept alive, so its passes can be interleaved with
    memento's: each request is timed inside the worker (no pipe overhead counted)."""

    def __init__(self, ctx: Context, sentences_file: Path) -> None:
        command = st_worker_command(ctx, "serve", str(ctx.args.st_model), str(sentences_file))
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=ctx.env(),
        )  # fmt: skip
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise Skip("the sentence-transformers worker exited before answering")
        return json.loads(line)

    def ask(self, **request: Any) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


SERIAL = "memento int8, one call per text"


class OneCallPerText:
    """The shipped embedder called once per text, in turn: how store_many, import and
    reembed ran texts before embed() shared many texts out among threads (issue 13), so
    the two are timed side by side in one run. Same vectors, bit for bit."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.threads, self.batch_size = embedder.threads, 1
        self.name = embedder.name

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        return np.stack([self.embedder.embed([text])[0] for text in texts])


ONE_SESSION = "memento int8, one session"


def one_session() -> Any:
    """Every embed() call inside runs on the embedder's first session, as before calls of
    many texts went to a session of their own (``memento.embedder.BULK_MIN``)."""
    from unittest import mock

    import memento.embedder as module

    return mock.patch.object(module, "BULK_MIN", sys.maxsize)


class OneSession:
    """The shipped embedder with every call on its first session, as before large calls
    went to a session of one intra-op thread per run (``memento.embedder.BULK_MIN``), so
    the two are timed side by side in one run."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.threads, self.batch_size = embedder.threads, embedder.batch_size
        self.name = embedder.name

    def embed(self, texts: list[str]) -> Any:
        with one_session():
            return self.embedder.embed(texts)


def _pass(embedder: Any, sentences: list[str]) -> tuple[float, Any]:
    start = time.perf_counter()
    vectors = embedder.embed(sentences)  # as memento runs it (the manifest's batch size)
    return time.perf_counter() - start, vectors


def fp32_embedder(ctx: Context) -> Any:
    """An Embedder over the fp32 export: the bundled tokenizer and the same code path, so
    the two ONNX rows differ only in the model file. The manifest is written here."""
    from memento.embedder import Embedder, sha256_file

    path = ctx.args.fp32_model
    if path is None:
        raise Skip("no --fp32-model given (the fp32 ONNX export of the bundled model)")
    path = Path(path)
    if not path.is_file():
        raise Skip(f"fp32 model not found at {path}")
    base = ctx.embedder.model_dir
    target = ctx.workdir / "fp32-model"
    target.mkdir(exist_ok=True)
    for name, source in (("model.onnx", path), ("tokenizer.json", base / "tokenizer.json")):
        link = target / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source.resolve())
    manifest = {
        **ctx.embedder.manifest,
        "name": f"{ctx.embedder.name}-fp32",
        "files": {n: sha256_file(target / n) for n in ("model.onnx", "tokenizer.json")},
    }
    (target / "manifest.json").write_text(json.dumps(manifest))
    return Embedder(target, threads=ctx.embedder.threads)


def fidelity(a: Any, b: Any) -> dict[str, float]:
    import numpy as np

    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "mean": round(float(cos.mean()), 4),
        "p1": round(float(np.percentile(cos, 1)), 4),
        "min": round(float(cos.min()), 4),
        "share_ge_0_99": round(float((cos >= 0.99).mean()), 4),
    }


def group_embedding(ctx: Context) -> dict[str, Any]:
    """Throughput and single-query latency of memento's int8 model, the fp32 export and
    sentence-transformers, measured interleaved: each repeat runs one full pass of every
    backend back to back, and each latency sample times every backend on the same text in
    turn, so a change in machine load hits all of them alike. Medians are reported."""
    s = ctx.settings
    sentences = ctx.sentences
    notes: list[str] = []
    backends: dict[str, Any] = {
        "memento int8": ctx.embedder,
        SERIAL: OneCallPerText(ctx.embedder),
        ONE_SESSION: OneSession(ctx.embedder),
    }
    rows: dict[str, dict[str, Any]] = {}
    try:
        backends["fp32 ONNX"] = fp32_embedder(ctx)
        backends["fp32 ONNX"].load()
    except Skip as why:
        rows["fp32 ONNX"] = {"skipped": str(why)}
        notes.append(f"fp32 ONNX skipped: {why}")
    st: _StServer | None = None
    try:
        st_check(ctx)
        texts = ctx.workdir / "sentences.json"
        texts.write_text(json.dumps(sentences))
        ctx.log("embedding: starting the sentence-transformers worker")
        st = _StServer(ctx, texts)
    except Skip as why:
        rows["sentence-transformers"] = {"skipped": str(why)}
        notes.append(f"sentence-transformers skipped: {why}")

    names = [*backends, *(["sentence-transformers"] if st else [])]
    runs: dict[str, list[float]] = {name: [] for name in names}
    single: dict[str, list[float]] = {name: [] for name in names}
    vectors: dict[str, Any] = {}
    npy = ctx.workdir / "st-vectors.npy"
    try:
        for embedder in backends.values():
            embedder.embed(sentences[:64])  # warm-up
        for repeat in range(s.embed_repeats):
            ctx.log(f"embedding: pass {repeat + 1}/{s.embed_repeats} of {', '.join(names)}")
            for name, embedder in backends.items():
                seconds, vectors[name] = _pass(embedder, sentences)
                runs[name].append(seconds)
            if st:
                runs["sentence-transformers"].append(
                    st.ask(op="pass", save=str(npy) if repeat == 0 else "")
                )
        samples = min(s.latency_queries, len(sentences))
        ctx.log(f"embedding: {samples} single queries per backend, interleaved")
        for i in range(samples):
            for name, embedder in backends.items():
                start = time.perf_counter()
                embedder.embed([sentences[i]])
                single[name].append(time.perf_counter() - start)
            if st:
                single["sentence-transformers"].append(st.ask(op="one", index=i))
        if st:
            import numpy as np

            vectors["sentence-transformers"] = np.load(npy)
    finally:
        if st:
            st.close()
    for name in names:
        rows[name] = {
            "runs_s": [round(r, 3) for r in runs[name]],
            "sentences_per_s": round(len(sentences) / statistics.median(runs[name]), 1),
            "single_query_ms_median": ms(statistics.median(single[name])),
            "single_query_ms_p95": ms(percentile(single[name], 95)),
        }
    for name, embedder in backends.items():
        rows[name].update(threads=embedder.threads, batch_size=embedder.batch_size,
                          model=embedder.name)  # fmt: skip
    if st:
        rows["sentence-transformers"].update(batch_size=32, **st.info)
    ctx.pool_vectors = vectors["memento int8"]
    reference = rows.get("sentence-transformers", {})
    for row in rows.values():
        if "sentences_per_s" in row and "sentences_per_s" in reference:
            ratio = row["sentences_per_s"] / reference["sentences_per_s"]
            row["throughput_vs_st"] = round(ratio, 2)
            row["latency_speedup_vs_st"] = round(
                reference["single_query_ms_median"] / row["single_query_ms_median"], 2
            )
    fid: dict[str, Any] = {}
    for name in (SERIAL, ONE_SESSION):
        if name in vectors:
            rows[name]["identical_vectors_to_memento_int8"] = bool(
                (vectors[name] == vectors["memento int8"]).all()
            )
    if "fp32 ONNX" in vectors:
        fid["int8_vs_fp32"] = fidelity(vectors["memento int8"], vectors["fp32 ONNX"])
    if "sentence-transformers" in vectors:
        fid["int8_vs_st"] = fidelity(vectors["memento int8"], vectors["sentence-transformers"])
        if "fp32 ONNX" in vectors:
            fid["fp32_vs_st"] = fidelity(vectors["fp32 ONNX"], vectors["sentence-transformers"])
    return {
        "status": "ok",
        "sentences": len(sentences),
        "source": "scifact/corpus.jsonl abstracts split into sentences (30-300 chars), "
        "first N distinct in corpus order",
        "method": "interleaved: each repeat is one pass of every backend back to back; each "
        "latency sample times every backend on the same text; medians",
        "repeats": s.embed_repeats,
        "latency_samples": min(s.latency_queries, len(sentences)),
        "rows": rows,
        "headline_memento_vs_st": rows["memento int8"].get("throughput_vs_st"),
        "fidelity": fid,
        "notes": notes,
    }


# ---- group 2 and 3: start-up and memory ---------------------------------------------


def memento_command() -> list[str]:
    found = shutil.which("memento")
    if found is None:
        raise Skip("`memento` is not on PATH: pip install -e .")
    return [found]


def prepare_search_store(ctx: Context) -> tuple[Path, Path]:
    """A small store (200 real sentences) for the cold searches, and its vectors as .npy
    for the sentence-transformers script (brute-force cosine over the same 200 rows)."""
    if ctx.search_store is None:
        import numpy as np

        from memento import Memory

        path = ctx.workdir / "search.db"
        texts = scifact_sentences(200)
        with Memory(path=path, embedder=ctx.embedder) as memory:
            if memory.stats()["total"] == 0:
                memory.store_many({"content": t, "kind": "event"} for t in texts)
        matrix = ctx.workdir / "search-vectors.npy"
        np.save(matrix, ctx.embedder.embed(texts))
        ctx.search_store, ctx.search_matrix = path, matrix
    return ctx.search_store, ctx.search_matrix  # type: ignore[return-value]


def _repeat_process(
    command: list[str], env: dict[str, str], runs: int, warm_up: bool = True
) -> dict[str, Any]:
    """Run a command ``runs`` times: wall-time median and peak RSS. An uncounted first run
    warms the page cache (and shows a broken command) unless ``warm_up`` is false."""
    first = run_process(command, env) if warm_up else None
    if first is not None and first["returncode"] != 0:
        shown = " ".join(Path(c).name for c in command[:2])
        raise Skip(f"`{shown} ...` failed ({_failure(first)})")
    results = [run_process(command, env) for _ in range(runs)]
    failed = [r for r in results if r["returncode"] != 0]
    if failed:
        raise Skip(f"`{Path(command[0]).name} ...` failed ({_failure(failed[0])})")
    walls = [r["wall_s"] for r in results]
    return {
        "median_s": round(statistics.median(walls), 3),
        "all_s": [round(w, 3) for w in walls],
        "peak_rss_mib": max(r["maxrss_mib"] for r in results),
    }


def _measure(rows: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    try:
        rows[name] = fn()
    except Skip as why:
        rows[name] = {"skipped": str(why)}


def mcp_probe(ctx: Context) -> dict[str, Any]:
    """``benches/mcp_probe.measure(quick)``, run once and shared by startup and memory."""
    if ctx.probe is None and ctx.probe_error is None:
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        try:
            import mcp_probe
        except ImportError as exc:
            ctx.probe_error = f"benches/mcp_probe.py cannot be imported ({one_line(exc)})"
        else:
            ctx.log("start-up: MCP spawn -> initialize, then 100 recalls (mcp_probe)")
            try:
                ctx.probe = mcp_probe.measure(ctx.settings.quick)
            except Exception as exc:
                ctx.probe_error = f"mcp_probe failed ({one_line(exc)})"
    if ctx.probe_error:
        raise Skip(ctx.probe_error)
    return ctx.probe  # type: ignore[return-value]


def compile_memento() -> None:
    """Write the bytecode of every memento module, as ``pip install`` does for an installed
    package. A source checkout run with PYTHONDONTWRITEBYTECODE (or edited since its last
    run) otherwise compiles its changed modules again in every new process: 20-30 ms of a
    cold search measured here after editing four modules."""
    import compileall

    import memento

    compileall.compile_dir(str(Path(memento.__file__).parent), quiet=1)


def group_startup(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    rows: dict[str, Any] = {}
    compile_memento()

    def help_() -> dict[str, Any]:
        ctx.log(f"start-up: memento --help x{s.help_runs}")
        return _repeat_process([*memento_command(), "--help"], ctx.env(), s.help_runs)

    def search() -> dict[str, Any]:
        command = memento_command()
        store, _ = prepare_search_store(ctx)
        ctx.log(f"start-up: cold memento search x{s.search_runs}")
        return _repeat_process(
            [*command, "--db", str(store), "search", "x"],
            ctx.env(MEMENTO_PATH=str(store)),
            s.search_runs,
        )

    def mcp() -> dict[str, Any]:
        probe = mcp_probe(ctx)
        return {
            "median_s": probe["initialize_s_median"],
            "all_s": probe["initialize_s_all"],
            "command": probe.get("command"),
        }

    def st_search() -> dict[str, Any]:
        st_check(ctx)
        _, matrix = prepare_search_store(ctx)
        ctx.log(f"start-up: cold sentence-transformers search x{s.st_search_runs}")
        command = st_worker_command(ctx, "search", str(ctx.args.st_model), str(matrix), "x")
        # The embedding group's worker already read torch and the weights into the page
        # cache; without it, one uncounted run does.
        warm = "sentences_per_s" in ctx.groups.get("embedding", {}).get("rows", {}).get(
            "sentence-transformers", {}
        )
        return _repeat_process(command, ctx.env(), s.st_search_runs, warm_up=not warm)

    _measure(rows, "memento --help", help_)
    _measure(rows, "memento search (cold process)", search)
    _measure(rows, "MCP spawn -> initialize", mcp)
    _measure(rows, "sentence-transformers search (cold process)", st_search)
    cold, st = rows["memento search (cold process)"], rows[
        "sentence-transformers search (cold process)"
    ]
    if "median_s" in cold and "median_s" in st:
        cold["speedup_vs_st"] = round(st["median_s"] / cold["median_s"], 2)
    return {
        "status": "ok",
        "method": "wall time of a new process, median of repeated runs after one uncounted "
        "run (warm page cache, memento's bytecode written first); the store holds 200 real "
        "sentences",
        "rows": rows,
        "notes": [f"{k} skipped: {v['skipped']}" for k, v in rows.items() if "skipped" in v],
    }


def group_memory(ctx: Context) -> dict[str, Any]:
    rows: dict[str, Any] = {}

    def server() -> dict[str, Any]:
        probe = mcp_probe(ctx)
        if "peak_rss_mib" not in probe:
            raise Skip(probe.get("rss_error", "mcp_probe gave no peak RSS"))
        return {
            "peak_rss_mib": probe["peak_rss_mib"],
            "rss_mib": probe.get("rss_mib"),
            "recalls": probe.get("recalls"),
            "memories": probe.get("memories"),
            "recall_ms_median": probe.get("recall_ms_median"),
        }

    def st_recalls() -> dict[str, Any]:
        st_check(ctx)
        _, matrix = prepare_search_store(ctx)
        queries = ctx.workdir / "recall-queries.json"
        queries.write_text(json.dumps(scifact_claims(100)))
        ctx.log("memory: sentence-transformers script, 100 recalls")
        command = st_worker_command(
            ctx, "recalls", str(ctx.args.st_model), str(matrix), str(queries)
        )
        result = run_process(command, ctx.env(), timeout=900)
        if result["returncode"] != 0:
            raise Skip(f"the sentence-transformers worker failed ({_failure(result)})")
        return json.loads(result["stdout"].strip().splitlines()[-1])

    _measure(rows, "memento start, after 100 recalls (MCP)", server)
    _measure(rows, "sentence-transformers script, after 100 recalls", st_recalls)
    startup = ctx.groups.get("startup", {}).get("rows", {})
    for name, key in (
        ("memento search (cold process)", "memento search (cold process)"),
        ("sentence-transformers search (cold process)",
         "sentence-transformers search (cold process)"),
    ):  # fmt: skip
        if "peak_rss_mib" in startup.get(key, {}):
            rows[name] = {"peak_rss_mib": startup[key]["peak_rss_mib"]}
    for ours, theirs in (
        ("memento start, after 100 recalls (MCP)",
         "sentence-transformers script, after 100 recalls"),
        ("memento search (cold process)", "sentence-transformers search (cold process)"),
    ):  # fmt: skip
        a, b = rows.get(ours, {}), rows.get(theirs, {})
        if "peak_rss_mib" in a and "peak_rss_mib" in b:
            a["fraction_of_st"] = round(a["peak_rss_mib"] / b["peak_rss_mib"], 2)
    return {
        "status": "ok",
        "method": "peak resident set: VmHWM from /proc for the long-lived processes, "
        "ru_maxrss (wait4, from a small parent) for the one-shot ones",
        "rows": rows,
        "notes": [f"{k} skipped: {v['skipped']}" for k, v in rows.items() if "skipped" in v],
    }


# ---- group 4: store and recall at scale ---------------------------------------------


def synthetic_vectors(pool: Any, index: Any, rng: Any) -> tuple[Any, Any]:
    """The synthetic vectors of rows ``index``: row i is pool row i % len(pool), moved by
    Gaussian noise of total norm PERTURB_SIGMA and re-normalised (the first len(pool) rows
    are the pool's own vectors). Returns (the pool rows, the new vectors)."""
    import numpy as np

    base = pool[index % len(pool)]
    noise = rng.normal(size=base.shape).astype(np.float32) * (
        PERTURB_SIGMA / math.sqrt(base.shape[1])
    )
    noise[index < len(pool)] = 0.0
    vectors = base + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return base, vectors


def fill_synthetic(ctx: Context, memory: Any, count: int, offset: int) -> dict[str, Any]:
    """Insert ``count`` rows whose vectors are real sentence vectors (the embedding set,
    embedded by the shipped model) plus noise, with the matching sentence as text.

    Row i (counting from ``offset`` across calls) takes sentence i mod P; the first P rows
    are the exact vectors, later ones v + N(0, (SIGMA^2 / 384) I), re-normalised, whose text
    is the sentence followed by the first three words of another (sentence i * 7919 mod P),
    so FTS5 does not index P identical copies. Kinds cycle 3 fact : 2 event : 1 lesson;
    creation times spread over the past 365 days; one row in RARE_KEY_EVERY has the subject
    key ``bench.rare.<i>``.
    Written with ``store.insert`` in one transaction per 5,000 rows, as store_many would
    write them, minus the embedding and the near-duplicate check."""
    import numpy as np

    from memento.dates import utcnow
    from memento.ids import new_id
    from memento.store import NewMemory
    from memento.store import sqlite as store

    pool = ctx.pool()
    sentences = ctx.sentences
    rng = np.random.default_rng(offset)
    now = utcnow()
    model = ctx.embedder.name
    cosines = []
    start = time.perf_counter()
    for chunk_start in range(0, count, 5_000):
        n = min(5_000, count - chunk_start)
        index = np.arange(offset + chunk_start, offset + chunk_start + n)
        base, vectors = synthetic_vectors(pool, index, rng)
        cosines.append(np.sum(vectors * base, axis=1)[index >= len(pool)])
        with store.transaction(memory.conn):
            if store.get_setting(memory.conn, "embedding_model") is None:
                store.set_setting(memory.conn, "embedding_model", model)
            for row, i in enumerate(index.tolist()):
                created = now - timedelta(days=i % 365, seconds=i)
                text = sentences[i % len(sentences)]
                if i >= len(sentences):
                    other = sentences[(i * 7919) % len(sentences)].split()[:3]
                    text = f"{text} {' '.join(other)}"
                new = NewMemory(
                    id=new_id(int(created.timestamp() * 1000)),
                    content=text,
                    kind=SYNTHETIC_KINDS[i % len(SYNTHETIC_KINDS)],
                    subject_key=(
                        f"bench.rare.{i:08d}" if i % RARE_KEY_EVERY == RARE_KEY_EVERY - 1 else None
                    ),
                    importance=0.5,
                    metadata={},
                    source="bench",
                    created_at=created,
                    updated_at=created,
                    embedding_model=model,
                )
                store.insert(memory.conn, new, vectors[row].astype("<f4").tobytes())
    elapsed = time.perf_counter() - start
    perturbed = np.concatenate(cosines) if cosines else np.zeros(0)
    return {
        "rows": count,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(count / elapsed, 1) if count else None,
        "perturbed_cosine_mean": round(float(perturbed.mean()), 4) if perturbed.size else None,
    }


def as_first_search(memory: Any) -> Any:
    """``memory``, told that it has not searched yet: its next search in a small store
    scans with vec0, as a one-shot command's does (sqlite_index.BitIndex.exact_knn)."""
    from memento.store import sqlite_index as index

    index.for_connection(memory.conn).searches = 0
    return memory


def time_recall(memory: Any, queries: list[str]) -> dict[str, Any]:
    """recall() with the query embedding, then _search() alone (hybrid, dense, keyword).

    A store of at most sqlite_index.FLOAT_ROWS memories is searched by a connection's
    later searches from its float copy, by its first (a one-shot command's) with vec0's
    scan: "recall_scan" times a second connection to the same file that is told before
    every recall that it has not searched yet, interleaved with the first, query by query,
    so both see the same load."""
    from memento import Memory

    for q in queries[:3]:
        memory.recall(q, limit=10)  # warm-up
    full: list[float] = []
    scan: list[float] = []
    with Memory(memory.path, embedder=memory.embedder) as other:
        other.recall(queries[0], limit=10)
        for q in queries:
            full += time_each(lambda q: memory.recall(q, limit=10), [q])
            as_first_search(other)
            scan += time_each(lambda q: other.recall(q, limit=10), [q])
    vectors = memory._embed(queries)
    filters = memory._filters(None, None, None, None, False)
    out: dict[str, Any] = {
        "recall_ms_p50": ms(percentile(full, 50)),
        "recall_ms_p95": ms(percentile(full, 95)),
        "recall_scan_ms_p50": ms(percentile(scan, 50)),
    }
    for mode, label in (("hybrid", "search"), ("dense", "dense"), ("keyword", "keyword")):
        samples = time_each(
            lambda qv, mode=mode: memory._search(qv[0], qv[1], 10, filters, None, mode),
            list(zip(queries, vectors)),
        )
        out[f"{label}_ms_p50"] = ms(percentile(samples, 50))
        out[f"{label}_ms_p95"] = ms(percentile(samples, 95))
    return out


def time_single_stores(memory: Any, texts: list[str]) -> dict[str, Any]:
    """``store()`` one memory at a time, facts and events in turn (a fact also pays the
    near-duplicate check), p50 in ms of each; every other text goes to a second connection
    to the same file told before each store that it has not searched yet, so its check
    scans with vec0 as a one-shot ``memento store`` does (and every store did before the
    float copy), timed interleaved with the first."""
    from memento import Memory

    times: dict[str, list[float]] = {}
    with Memory(memory.path, embedder=memory.embedder) as other:
        for n, text in enumerate(texts):
            kind = ("fact", "event")[n % 2]
            first = n // 2 % 2 == 1
            who = as_first_search(other) if first else memory
            start = time.perf_counter()
            who.store(text, kind=kind)
            times.setdefault(f"store_{kind}{'_scan' if first else ''}", []).append(
                time.perf_counter() - start
            )
    return {f"{name}_ms_p50": ms(percentile(samples, 50)) for name, samples in times.items()}


def rss_mib() -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def common_word_queries(memory: Any, count: int) -> list[str]:
    """Queries made only of the words most memories contain (after the stopwords): three of
    the 12 most frequent indexed terms each, e.g. "cell patient studi"."""
    import apsw

    from memento.recall import STOPWORDS

    tokenize = memory.conn.fts5_tokenizer("porter", ["unicode61", "remove_diacritics", "2"])
    stems = {t[2] for w in STOPWORDS for t in tokenize(w.encode(), apsw.FTS5_TOKENIZE_QUERY, None)}
    terms = [
        r[0]
        for r in memory.conn.execute(
            "SELECT term FROM memory_fts_vocab WHERE term GLOB '[a-z][a-z][a-z]*' "
            "ORDER BY doc DESC LIMIT 60"
        )
        if r[0] not in stems and r[0] not in STOPWORDS
    ][:12]
    return [" ".join(terms[(n + j * 5) % len(terms)] for j in range(3)) for n in range(count)]


def index_measures(memory: Any, queries: list[str], vectors: list[bytes]) -> dict[str, Any]:
    """The large-store index (forced, whatever the size) against the exact vec0 scan that
    small stores use: latency of each, recall@10 of the index per candidate pool, filtered
    recall (with the query embedding), and keyword latency on common-word queries with and
    without the document-frequency bound."""
    from memento.dates import utcnow
    from memento.store import sqlite as store
    from memento.store import sqlite_index as index

    conn = memory.conn
    none = memory._filters(None, None, None, None, False)
    exact_vectors = vectors[:EXACT_QUERIES]
    exact_times, exact = [], []
    for v in exact_vectors:
        start = time.perf_counter()
        exact.append({s for s, _ in store.knn_exact(conn, v, 10, none)})
        exact_times.append(time.perf_counter() - start)
    out: dict[str, Any] = {
        "dense_exact_ms_p50": ms(percentile(exact_times, 50)),
        "dense_exact_ms_p95": ms(percentile(exact_times, 95)),
    }
    load_start = time.perf_counter()
    index.for_connection(conn).candidates(conn, vectors[0], none, index.POOL, None)
    out["index_load_s"] = round(time.perf_counter() - load_start, 2)
    recall_at_10 = {}
    for pool in POOL_SIZES:
        got = [
            {s for s, _ in index.knn(conn, v, 10, none, None, pool=pool)} for v in exact_vectors
        ]
        recall_at_10[str(pool)] = round(
            sum(len(a & b) for a, b in zip(got, exact)) / max(1, sum(len(b) for b in exact)), 4
        )
        samples = time_each(lambda v, pool=pool: index.knn(conn, v, 10, none, None, pool=pool),
                            vectors)  # fmt: skip
        out[f"dense_index_pool{pool}_ms_p50"] = ms(percentile(samples, 50))
        out[f"dense_index_pool{pool}_ms_p95"] = ms(percentile(samples, 95))
    out["recall_at_10_vs_exact"] = recall_at_10
    now = utcnow()
    filtered = {
        "kind_lesson": {"kind": "lesson"},
        "prefix_rare": {"subject_key_prefix": "bench.rare."},
        "since_until_10d": {"since": now - timedelta(days=40), "until": now - timedelta(days=30)},
    }
    for name, kwargs in filtered.items():
        samples = time_each(lambda q, kw=kwargs: memory.recall(q, limit=10, **kw), queries)
        f = memory._filters(kwargs.get("kind"), kwargs.get("subject_key_prefix"),
                            kwargs.get("since"), kwargs.get("until"), False)  # fmt: skip
        hits = total = 0
        for v in vectors[:10]:
            want = {s for s, _ in store.knn_exact(conn, v, 10, f)}
            got = {s for s, _ in store.knn(conn, v, 10, f)}
            hits += len(want & got)
            total += len(want)
        out[f"recall_{name}_ms_p50"] = ms(percentile(samples, 50))
        out[f"recall_{name}_ms_p95"] = ms(percentile(samples, 95))
        out[f"recall_{name}_matching"] = store.count_matching(conn, f)
        out[f"recall_{name}_at_10_vs_exact"] = round(hits / total, 4) if total else None
    common = common_word_queries(memory, len(queries))
    out["common_word_queries"] = common[:3]
    matches = [m for m in (keyword_match(q) for q in common) if m]
    bound = store.KEYWORD_MIN_ROWS
    try:
        store.KEYWORD_MIN_ROWS = 10**15  # the unbounded query, as before issue 8
        before = time_each(lambda m: store.keyword(conn, m, 50, none), matches)
    finally:
        store.KEYWORD_MIN_ROWS = bound
    after = time_each(lambda m: store.keyword(conn, m, 50, none), matches)
    out["keyword_common_unbounded_ms_p50"] = ms(percentile(before, 50))
    out["keyword_common_unbounded_ms_p95"] = ms(percentile(before, 95))
    out["keyword_common_ms_p50"] = ms(percentile(after, 50))
    out["keyword_common_ms_p95"] = ms(percentile(after, 95))
    full = time_each(lambda q: memory.recall(q, limit=10), common)
    out["recall_common_ms_p50"] = ms(percentile(full, 50))
    out["recall_common_ms_p95"] = ms(percentile(full, 95))
    return out


def keyword_match(text: str) -> str | None:
    from memento.recall import keyword_query

    return keyword_query(text)


def group_scale(ctx: Context) -> dict[str, Any]:
    from memento import Memory
    from memento.store import sqlite as store
    from memento.store import sqlite_index as index

    s = ctx.settings
    queries = scifact_claims(s.recall_queries)
    # Real texts for store_many come after the embedding set, so none is a duplicate of a
    # synthetic row (facts that near-duplicate a live one would be merged, not stored).
    fresh = scifact_sentences(
        len(ctx.sentences) + (s.store_batch + SINGLE_STORES) * len(s.sizes)
    )[
        len(ctx.sentences) :
    ]
    path = ctx.workdir / "scale.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    steps = []
    with Memory(path=path, embedder=ctx.embedder) as memory:
        count = 0
        used = 0
        for size in s.sizes:
            batch = min(s.store_batch, (size - count) // 2, len(fresh) - used)
            fill = size - count - 2 * batch
            ctx.log(f"scale: {size:,} memories (synthetic {fill:,}, store_many {batch:,})")
            filled = fill_synthetic(ctx, memory, fill, count) if fill else {"rows": 0}
            count += fill
            texts = fresh[used : used + batch]
            used += batch
            # the same texts as facts (embedding + near-duplicate check) and as events
            # (embedding alone), in halves ordered facts, events, events, facts (issue 18)
            half = len(texts) // 2
            timed: dict[str, list[float]] = {"fact": [], "event": []}
            records = []
            for kind, part in (
                ("fact", texts[:half]), ("event", texts[:half]),
                ("event", texts[half:]), ("fact", texts[half:]),
            ):  # fmt: skip
                if not part:
                    continue
                start = time.perf_counter()
                done = memory.store_many([{"content": t, "kind": kind} for t in part])
                timed[kind].append(time.perf_counter() - start)
                if kind == "fact":
                    records += done
            elapsed = sum(timed["fact"])
            items = texts
            count = memory.stats()["total"]
            store.checkpoint(memory.conn)
            ctx.log(f"scale: {count:,} memories stored; timing recall")
            step = {
                "memories": count,
                "store_many": {
                    "items": len(items),
                    "created": sum(r.action == "created" for r in records),
                    "seconds": round(elapsed, 2),
                    "per_s": round(len(items) / elapsed, 1) if items else None,
                    "events_per_s": (
                        round(len(items) / sum(timed["event"]), 1) if items else None
                    ),
                },
                "synthetic_fill": filled,
                **time_recall(memory, queries),
                "file_bytes_per_memory": round(memory.stats()["file_size_bytes"] / count),
            }
            singles = min(SINGLE_STORES, s.store_batch // 4)
            step.update(time_single_stores(memory, fresh[used : used + singles]))
            used += singles
            count = memory.stats()["total"]  # the next size's synthetic rows fill up to it
            if s.sizes == SCALES["1m"] or ctx.args.scale == "1m":
                ctx.log(f"scale: {count:,} memories; index vs exact scan, filters, keywords")
                step.update(index_measures(memory, queries, memory._embed(queries)))
            step["rss_mib"] = rss_mib()
            steps.append(step)
    base = steps[0]["recall_ms_p50"] if steps else None
    for step in steps:
        step["recall_p50_vs_smallest"] = round(step["recall_ms_p50"] / base, 2) if base else None
    return {
        "status": "ok",
        "queries": len(queries),
        "float_rows": index.FLOAT_ROWS,
        "single_stores": SINGLE_STORES,
        "query_source": "scifact/queries_train.jsonl claims, first N",
        "limit": 10,
        "how_filled": (
            f"one store grown through the sizes. At each size, store_many adds up to "
            f"{s.store_batch} new real SciFact sentences as facts (embedding and the "
            f"near-duplicate check included) and the same texts as events (no check), in "
            f"halves timed facts, events, events, facts; the rest are synthetic rows: the "
            f"{len(ctx.sentences)} embedding-set sentences with their shipped-model vectors, "
            f"then the same texts with vectors perturbed by Gaussian noise of norm "
            f"{PERTURB_SIGMA} and re-normalised (cosine ~0.96 to the original), written with "
            f"memento.store.insert, 5,000 rows per transaction; kinds 3 fact : 2 event : 1 "
            f"lesson, created over the past 365 days."
        ),
        "steps": steps,
        "notes": [],
    }


# ---- group 5: quality ---------------------------------------------------------------


def group_quality(ctx: Context) -> dict[str, Any]:
    if not ctx.settings.quality:
        raise Skip("left out of --quick (takes minutes); add --quality to run it")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import recall_quality

    ctx.log("quality: benches/recall_quality.py, dense/keyword/hybrid on LoCoMo and SciFact")
    workdir = ctx.workdir / "quality"
    results = recall_quality.run(
        ["dense", "keyword", "hybrid"], ["locomo", "scifact"], workdir, log=ctx.log
    )
    return {
        "status": "ok",
        "results": results,
        "markdown": recall_quality.markdown(results),
        "notes": [],
    }


# ---- output -------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _x(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    groups = results["groups"]
    m = results["machine"]
    lines = [
        f"# memento CPU benchmark, {results['date']}",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cpus')} cores, {m.get('ram_gib', '?')} GiB, "
        f"{m.get('os')}, Python {m.get('python')}, onnxruntime {m.get('onnxruntime')}; "
        f"load average {results['load_average_before']} before, "
        f"{results['load_average_after']} after.  ",
        f"Command: `{results['command']}`",
        "",
    ]

    def skipped(name: str, group: dict[str, Any]) -> bool:
        if group["status"] != "ok":
            lines.extend([f"_{name}: {group['status']}: {group.get('reason', '')}_", ""])
            return True
        return False

    g = groups["embedding"]
    lines += ["## Embedding", ""]
    if not skipped("embedding", g):
        lines += [
            f"{g['sentences']:,} SciFact sentences, median of {g['repeats']} passes, the "
            f"backends interleaved; single query: median of {g['latency_samples']}. "
            "Speed-up columns: sentence-transformers time / this row's time.",
            "",
            "| backend | sentences/s | speed-up | single query ms | speed-up | threads | batch |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in g["rows"].items():
            if "skipped" in row:
                lines.append(f"| {name} | skipped: {row['skipped']} | | | | | |")
                continue
            lines.append(
                f"| {name} | {_fmt(row['sentences_per_s'])} | {_x(row.get('throughput_vs_st'))}"
                f" | {_fmt(row['single_query_ms_median'], 2)} "
                f"| {_x(row.get('latency_speedup_vs_st'))} | {row.get('threads', '-')} "
                f"| {row.get('batch_size', '-')} |"
            )
        for name, what in (
            (SERIAL, "is the same embedder called once per text, as store_many ran before "
                     "texts were shared out among threads"),
            (ONE_SESSION, "runs every call on the first session, as before a call of many "
                          "texts went to a second session of one intra-op thread per run"),
        ):  # fmt: skip
            row = g["rows"].get(name, {})
            if "identical_vectors_to_memento_int8" in row:
                same = "bit-identical to" if row["identical_vectors_to_memento_int8"] else "not"
                lines += ["", f'"{name}" {what}; its vectors are {same} memento int8\'s.']
        if g["fidelity"]:
            lines += ["", "| cosine fidelity | mean | 1st pct | min | share >= 0.99 |",
                      "|---|---:|---:|---:|---:|"]  # fmt: skip
            for name, f in g["fidelity"].items():
                lines.append(
                    f"| {name.replace('_', ' ')} | {f['mean']:.4f} | {f['p1']:.4f} "
                    f"| {f['min']:.4f} | {f['share_ge_0_99']:.1%} |"
                )
        lines.append("")

    for key, title in (("startup", "Start-up"), ("memory", "Memory")):
        g = groups[key]
        lines += [f"## {title}", ""]
        if skipped(key, g):
            continue
        lines.append(g["method"] + ".")
        lines.append("")
        if key == "startup":
            lines += ["| process | median s | speed-up vs sentence-transformers |",
                      "|---|---:|---:|"]  # fmt: skip
            for name, row in g["rows"].items():
                if "skipped" in row:
                    lines.append(f"| {name} | skipped: {row['skipped']} | |")
                else:
                    lines.append(
                        f"| {name} | {row['median_s']:.3f} | {_x(row.get('speedup_vs_st'))} |"
                    )
        else:
            lines += ["| process | peak RSS MiB | fraction of sentence-transformers |",
                      "|---|---:|---:|"]  # fmt: skip
            for name, row in g["rows"].items():
                if "skipped" in row:
                    lines.append(f"| {name} | skipped: {row['skipped']} | |")
                else:
                    lines.append(
                        f"| {name} | {row['peak_rss_mib']:.0f} | {_x(row.get('fraction_of_st'))} |"
                    )
        lines.append("")

    g = groups["scale"]
    lines += ["## Store and recall at scale", ""]
    if not skipped("scale", g):
        lines += [
            f"`recall(limit=10)` over {g['queries']} SciFact claims; p50/p95 in ms. "
            "\"search\" is the same recall without the query embedding; dense and keyword "
            "are its two halves alone. How the store was filled: " + g["how_filled"],
            "",
            "Below "
            f"{g.get('float_rows', 20_000):,} memories a connection's later recalls score "
            "the float copies in numpy; \"first recall p50\" is the same recall as a "
            "connection's first (vec0's scan), timed interleaved with it. "
            f"\"store() fact/event\" is {g.get('single_stores', SINGLE_STORES)} memories "
            "stored one at a time, facts and events in turn, half by the same connection "
            "and half, in brackets for facts, by one whose check is a first search (vec0's "
            "scan), interleaved (ms).",
            "",
            "| memories | store_many facts /s | events /s | facts vs events "
            "| store() fact p50 | store() event p50 "
            "| recall p50 | recall p95 | first recall p50 | p50 vs smallest "
            "| search p50 | search p95 | dense p50 | keyword p50 | insert rows/s "
            "| bytes/memory |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for st in g["steps"]:
            facts, events = st["store_many"]["per_s"], st["store_many"].get("events_per_s")
            lines.append(
                f"| {st['memories']:,} | {_fmt(facts)} | {_fmt(events)} "
                f"| {_x(round(facts / events, 2) if facts and events else None)} "
                f"| {_fmt(st.get('store_fact_ms_p50'))} ({_fmt(st.get('store_fact_scan_ms_p50'))}) "
                f"| {_fmt(st.get('store_event_ms_p50'))} "
                f"| {st['recall_ms_p50']:.1f} | {st['recall_ms_p95']:.1f} "
                f"| {_fmt(st.get('recall_scan_ms_p50'))} "
                f"| {_x(st['recall_p50_vs_smallest'])} "
                f"| {st['search_ms_p50']:.1f} | {st['search_ms_p95']:.1f} "
                f"| {st['dense_ms_p50']:.1f} | {st['keyword_ms_p50']:.1f} "
                f"| {_fmt(st['synthetic_fill'].get('rows_per_s'), 0)} "
                f"| {st['file_bytes_per_memory']:,} |"
            )
        lines.append("")

    if not skipped("scale", g) and any("dense_exact_ms_p50" in st for st in g["steps"]):
        lines += [
            "### Large-store index against the exact scan (`--scale 1m`)",
            "",
            "Dense search alone (k=10, no embedding): the exact vec0 scan against the index "
            "with a pool of 1,000 (memento/index.py; recall uses it from 50,000 memories), "
            "recall@10 of the index against the exact scan per pool size, recall (with the "
            "query embedding) under filters with the number of memories they leave and their "
            "recall@10 against the exact filtered scan, keyword search on common-word "
            "queries with and without the document-frequency bound, and the resident memory "
            "of this process. p50/p95 in ms.",
            "",
            "| memories | exact p50 | index p50 | index p95 | recall@10 by pool "
            f"{'/'.join(str(p) for p in POOL_SIZES)} | kind=lesson p50/p95 (n, r@10) "
            "| prefix p50/p95 (n, r@10) | since/until p50/p95 (n, r@10) "
            "| common-word keyword p50/p95 unbounded | bounded | RSS MiB |",
            "|---:|---:|---:|---:|---|---|---|---|---|---|---:|",
        ]
        for st in g["steps"]:
            if "dense_exact_ms_p50" not in st:
                continue
            pools = "/".join(f"{st['recall_at_10_vs_exact'][str(p)]:.3f}" for p in POOL_SIZES)

            def filt(name: str, st: dict[str, Any] = st) -> str:
                return (
                    f"{st[f'recall_{name}_ms_p50']:.0f}/{st[f'recall_{name}_ms_p95']:.0f} "
                    f"({st[f'recall_{name}_matching']:,}, "
                    f"{_fmt(st[f'recall_{name}_at_10_vs_exact'], 2)})"
                )

            lines.append(
                f"| {st['memories']:,} | {st['dense_exact_ms_p50']:.1f} "
                f"| {st['dense_index_pool1000_ms_p50']:.1f} "
                f"| {st['dense_index_pool1000_ms_p95']:.1f} | {pools} "
                f"| {filt('kind_lesson')} | {filt('prefix_rare')} | {filt('since_until_10d')} "
                f"| {st['keyword_common_unbounded_ms_p50']:.0f}/"
                f"{st['keyword_common_unbounded_ms_p95']:.0f} "
                f"| {st['keyword_common_ms_p50']:.0f}/{st['keyword_common_ms_p95']:.0f} "
                f"| {_fmt(st.get('rss_mib'), 0)} |"
            )
        lines.append("")

    g = groups["quality"]
    lines += ["## Recall quality (dev split)", ""]
    if not skipped("quality", g):
        lines += [g["markdown"], ""]
    if results["notes"]:
        lines += ["Notes:", "", *[f"- {n}" for n in results["notes"]], ""]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Recall latency vs store size, and embedding throughput per backend. Returns a note
    instead when matplotlib is missing or there is nothing to draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    scale, emb = results["groups"]["scale"], results["groups"]["embedding"]
    if scale["status"] != "ok" and emb["status"] != "ok":
        return "chart skipped: neither the scale nor the embedding group ran"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if scale["status"] == "ok":
        sizes = [s["memories"] for s in scale["steps"]]
        for key, label, style in (
            ("recall_ms_p50", "recall p50 (with query embedding)", "o-"),
            ("recall_ms_p95", "recall p95 (with query embedding)", "o--"),
            ("search_ms_p50", "search p50 (without)", "s-"),
            ("dense_ms_p50", "dense only p50", "^:"),
            ("keyword_ms_p50", "keyword only p50", "v:"),
        ):
            left.plot(sizes, [s[key] for s in scale["steps"]], style, label=label)
        left.set_xscale("log")
        left.set_yscale("log")
        left.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        left.set_xlabel("memories in the store")
        left.set_ylabel("ms")
        left.set_title("Recall latency vs store size")
        left.grid(True, which="both", alpha=0.3)
        left.legend(fontsize=8)
    if emb["status"] == "ok":
        rows = {k: v for k, v in emb["rows"].items() if "sentences_per_s" in v}
        bars = right.bar(list(rows), [v["sentences_per_s"] for v in rows.values()],
                         color=["#2a7", "#59c", "#c75"][: len(rows)])  # fmt: skip
        right.bar_label(bars, fmt="%.0f")
        right.set_ylabel("sentences/s (batch 32)")
        right.set_title(f"Embedding throughput, {emb['sentences']:,} sentences")
    fig.suptitle(f"memento on {results['machine'].get('host')}, {results['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ---- main ---------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "embedding": group_embedding,
    "startup": group_startup,
    "memory": group_memory,
    "scale": group_scale,
    "quality": group_quality,
}


def run(args: argparse.Namespace, command: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the groups; return the results (every group key present, with a status)."""
    settings = Settings.from_args(args)
    results: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "date": datetime.now(timezone.utc).date().isoformat(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "quick": settings.quick,
        "settings": settings.__dict__,
        "machine": machine(),
        "load_average_before": load_average(),
        "groups": {},
        "notes": [],
    }
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="memento-bench-")
            workdir = Path(stack.enter_context(tmp))
        ctx = Context(args, settings, workdir, log, groups=results["groups"])
        ctx.sentences = scifact_sentences(settings.sentences)
        wanted = [g for g in GROUPS if g not in args.skip]
        if any(g in wanted for g in ("embedding", "scale", "startup")):
            model = ctx.embedder  # fail early, in one line, if the model cannot load
            results["model"] = {"name": model.name, "dir": str(model.model_dir),
                                "export": model.manifest.get("export")}  # fmt: skip
        for name in GROUPS:
            if name not in wanted:
                results["groups"][name] = {"status": "skipped", "reason": "--skip"}
                continue
            started = time.perf_counter()
            try:
                group = RUNNERS[name](ctx)
            except Skip as why:
                group = {"status": "skipped", "reason": str(why)}
            except BenchError:
                raise
            except Exception as exc:
                if args.debug:
                    raise
                log(f"{name}: failed: {one_line(exc)}")
                group = {"status": "error", "reason": one_line(exc),
                         "traceback": traceback.format_exc()}  # fmt: skip
            group["seconds"] = round(time.perf_counter() - started, 1)
            results["groups"][name] = group
            results["notes"] += [f"{name}: {n}" for n in group.get("notes", [])]
            if group["status"] != "ok":
                results["notes"].append(f"{name}: {group['status']}: {group['reason']}")
            log(f"{name}: {group['status']} in {group['seconds']} s")
    results["load_average_after"] = load_average()
    return results


def write_outputs(results: dict[str, Any], out: Path, log: Callable[[str], None]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", results["machine"]["host"]) or "host"
    stem = out / f"{results['date']}-{host}"
    note = chart(results, stem.with_suffix(".png"))
    if note:
        results["notes"].append(note)
        log(note)
    else:
        results["chart"] = stem.with_suffix(".png").name
    text = markdown(results)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(text + "\n")
    print(text)
    return stem.with_suffix(".json")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [WORKER]:
        return st_worker(argv[1:])
    args = build_parser().parse_args(argv)
    log = Log()
    try:
        results = run(args, " ".join(["python benches/run.py", *argv]), log)
        path = write_outputs(results, args.out, log)
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"run.py: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if args.debug:
            raise
        print(f"run.py: {one_line(exc)}: install memento first (pip install -e .)", file=sys.stderr)
        return 2
    except Exception as exc:  # a MementoError (model missing...) or an unexpected failure
        if args.debug:
            raise
        print(f"run.py: {one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 1
    log(f"wrote {path} (and .md{', .png' if 'chart' in results else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
