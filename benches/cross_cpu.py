"""Vectors written by one CPU, searched from another: how much recall quality moves.

A store's vectors are computed once, on the machine that wrote each memory; a query is
embedded on whatever machine searches it. onnxruntime picks its int8 and fp32 kernels by
the CPU's features (AVX2, AVX512-VNNI, AMX, NEON), and dynamic int8 quantisation rounds
differently on each path, so a file moved between machines is searched with query vectors
that are not bit-for-bit those the same text got when it was stored. This measures the
effect on SciFact (train claims, 5,183 abstracts; dense search, exact cosine) with the
paths this machine can produce:

- ``int8``: the shipped model as memento runs it here (the cached optimised graph);
- ``int8-unfused``: the same model file with onnxruntime's graph optimisations off (other
  kernels: no fused attention, layer norm or GELU);
- ``fp32``: the fp32 export (``--fp32-model``): the furthest another path can be, the same
  weights without quantisation;
- any ``--queries NAME=FILE.npy`` embedded elsewhere with ``embed-queries`` (for instance
  under ``qemu-x86_64 -cpu Haswell``, which hides AVX512 so onnxruntime takes its AVX2
  kernels).

For every pair (documents by one path, queries by another): nDCG@10 and R@100, and the
cosine between the two paths' vectors of the same query. Vectors are cached in --workdir.

    python benches/cross_cpu.py --fp32-model /tmp/model_fp32.onnx --workdir /tmp/xcpu
    MEMENTO_MODEL_CACHE=off qemu-x86_64 -cpu Haswell \\
        python benches/cross_cpu.py embed-queries /tmp/xcpu/q-avx2.npy 30   # first 30 claims
    python benches/cross_cpu.py --workdir /tmp/xcpu --queries avx2=/tmp/xcpu/q-avx2.npy
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "scifact"


def load_scifact() -> tuple[list[str], list[str], list[str], list[str], dict[str, set[str]]]:
    """Document ids and texts, query ids and texts (train claims with judgements), qrels."""
    qrels: dict[str, set[str]] = defaultdict(set)
    for line in (EVAL / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, cid, score = line.split("\t")
        if int(score) > 0:
            qrels[qid].add(cid)
    docs = [json.loads(line) for line in (EVAL / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (EVAL / "queries_train.jsonl").read_text().splitlines()]
    queries = [q for q in queries if q["_id"] in qrels]
    return (
        [d["_id"] for d in docs],
        [f"{d['title']} {d['text']}".strip() for d in docs],  # as recall_quality stores them
        [q["_id"] for q in queries],
        [q["text"] for q in queries],
        qrels,
    )


def embedders(fp32_model: Path | None, workdir: Path) -> dict[str, Any]:
    """The paths this machine can run: name -> Embedder."""
    from memento.embedder import Embedder, resolve_model_dir

    shipped = Embedder()
    found: dict[str, Any] = {"int8": shipped}
    found["int8-unfused"] = _unfused(resolve_model_dir(), shipped.threads)
    if fp32_model is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import run  # the benchmark's fp32 wrapper: same tokenizer and code path

        class Ctx:  # the two attributes fp32_embedder reads
            args = argparse.Namespace(fp32_model=fp32_model)

        Ctx.embedder = shipped  # type: ignore[attr-defined]
        Ctx.workdir = workdir  # type: ignore[attr-defined]
        found["fp32"] = run.fp32_embedder(Ctx)  # type: ignore[arg-type]
    return found


def _unfused(model_dir: Path, threads: int) -> Any:
    """The shipped model with graph optimisations off (and no session cache)."""
    from memento import embedder as emb

    ort = emb.import_onnxruntime()

    class Unfused(emb.Embedder):
        def load(self) -> None:
            if self._session is not None:
                return
            super().load()
            options = emb._session_options(
                ort, self.threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            )
            self._session = ort.InferenceSession(
                str(self.model_dir / "model.onnx"), sess_options=options, providers=emb.PROVIDERS
            )

    return Unfused(model_dir, threads=threads)


def cached(path: Path, make: Any) -> Any:
    import numpy as np

    if path.exists():
        return np.load(path)
    vectors = make()
    np.save(path, vectors)
    return vectors


def scores(
    docs: Any, queries: Any, doc_ids: list[str], query_ids: list[str], qrels: dict[str, set[str]]
) -> dict[str, float]:
    import numpy as np

    sims = queries @ docs.T
    top = np.argsort(-sims, axis=1)[:, :100]
    ndcg, recall = [], []
    for row, qid in enumerate(query_ids):
        gold = qrels[qid]
        ids = [doc_ids[i] for i in top[row]]
        dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ids[:10]) if d in gold)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), 10)))
        ndcg.append(dcg / ideal)
        recall.append(len(gold & set(ids)) / len(gold))
    return {"nDCG@10": round(float(np.mean(ndcg)), 4), "R@100": round(float(np.mean(recall)), 4)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    doc_ids, doc_texts, query_ids, query_texts, qrels = load_scifact()
    paths = embedders(args.fp32_model, workdir)
    doc_vectors, query_vectors = {}, {}
    for name, model in paths.items():
        started = time.perf_counter()
        doc_vectors[name] = cached(workdir / f"docs-{name}.npy", lambda m=model: m.embed(doc_texts))
        query_vectors[name] = cached(
            workdir / f"queries-{name}.npy", lambda m=model: m.embed(query_texts)
        )
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for spec in args.queries:
        name, _, file = spec.partition("=")
        query_vectors[name] = np.load(file)
    results: dict[str, Any] = {"queries": len(query_ids), "documents": len(doc_ids), "pairs": []}
    for doc_path in doc_vectors:
        for query_path in query_vectors:
            # Queries embedded elsewhere may cover only the first n claims (an emulated CPU
            # takes seconds a claim): both sides are then scored on those n.
            n = len(query_vectors[query_path])
            ours, theirs = query_vectors[doc_path][:n], query_vectors[query_path]
            measured = scores(doc_vectors[doc_path], theirs, doc_ids, query_ids[:n], qrels)
            if n < len(query_ids):
                own = scores(doc_vectors[doc_path], ours, doc_ids, query_ids[:n], qrels)
                measured["claims"] = n
                measured["same_claims_documents_path_queries"] = own
            cos = np.sum(ours * theirs, axis=1)
            results["pairs"].append(
                {
                    "documents": doc_path,
                    "queries": query_path,
                    **measured,
                    "query_cosine_mean": round(float(cos.mean()), 5),
                    "query_cosine_min": round(float(cos.min()), 5),
                    "identical_queries": int((ours == theirs).all(axis=1).sum()),
                }
            )
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"SciFact train, {results['queries']} claims over {results['documents']} abstracts, "
        "dense (exact cosine). Query cosine: the query path's vector against the document "
        "path's vector of the same claim.",
        "",
        "| documents by | queries by | nDCG@10 | R@100 | query cosine mean | min | "
        "bit-identical queries |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    partial = []
    for p in results["pairs"]:
        claims = p.get("claims", results["queries"])
        lines.append(
            f"| {p['documents']} | {p['queries']} | {p['nDCG@10']:.4f} | {p['R@100']:.4f} | "
            f"{p['query_cosine_mean']:.5f} | {p['query_cosine_min']:.5f} | "
            f"{p['identical_queries']}/{claims} |"
        )
        if "claims" in p:
            own = p["same_claims_documents_path_queries"]
            partial.append(
                f"- {p['queries']} queries cover the first {claims} claims only; on those, "
                f"{p['documents']} queries against {p['documents']} documents give nDCG@10 "
                f"{own['nDCG@10']:.4f}, R@100 {own['R@100']:.4f}."
            )
    return "\n".join([*lines, *(["", *partial] if partial else [])])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["embed-queries"]:
        import numpy as np

        from memento.embedder import Embedder

        *_, query_texts, _ = load_scifact()
        count = int(argv[2]) if len(argv) > 2 else len(query_texts)  # the first N claims
        np.save(argv[1], Embedder(threads=1).embed(query_texts[:count]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memento-cross-cpu"))
    parser.add_argument("--fp32-model", type=Path, help="the fp32 ONNX export")
    parser.add_argument("--queries", nargs="*", default=[], metavar="NAME=FILE.npy")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = measure(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
