"""Recall quality of memento on the retrieval sets in ``../shared/eval`` (dev split).

    python benches/recall_quality.py                      # all modes, both sets
    python benches/recall_quality.py --mode hybrid --set locomo

Protocol (../shared/eval/README.md): LoCoMo: one fresh store per conversation, one
``event`` per dialog turn (``"<speaker>: <text>"`` plus ``" [shares <caption>]"``), the
session's date as its creation time; R@5/10/20 over category 1-4 questions, overall and by
category. SciFact: one store of ``title + " " + text`` per abstract; nDCG@10 (binary
gains) and R@100 over the training claims. The data is read from ../shared at run time and
never copied. Stores are built once per run in a temporary directory (``--workdir`` keeps
them between runs) and each mode queries the same stores.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memento import Memory
from memento.embedder import Embedder
from memento.recall import DEFAULT_WEIGHTS, Weights

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
MODES = ("dense", "keyword", "hybrid")
_EVIDENCE = re.compile(r"D:?(\d+):0*(\d+)")


def parse_locomo_date(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> an aware datetime (UTC)."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=timezone.utc)


def locomo_turns(sample: dict[str, Any]) -> list[dict[str, Any]]:
    conv = sample["conversation"]
    items = []
    for key in sorted(
        (k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1])
    ):
        when = parse_locomo_date(conv[f"{key}_date_time"])
        for turn in conv[key]:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            items.append(
                {
                    "content": text,
                    "kind": "event",
                    "metadata": {"dia_id": turn["dia_id"]},
                    "created_at": when,
                }
            )
    return items


def locomo_questions(sample: dict[str, Any], known: set[str]) -> list[tuple[str, int, set[str]]]:
    out = []
    for qa in sample["qa"]:
        if qa.get("category") not in (1, 2, 3, 4):
            continue
        gold: set[str] = set()
        for piece in qa.get("evidence", []):
            for part in re.split(r"[;,\s]+", str(piece)):
                match = _EVIDENCE.search(part)
                if match:
                    dia = f"D{int(match.group(1))}:{int(match.group(2))}"
                    if dia in known:
                        gold.add(dia)
        if gold:
            out.append((qa["question"], qa["category"], gold))
    return out


def search_ids(
    memory: Memory, questions: list[str], k: int, mode: str, key: str
) -> list[list[str]]:
    """Top-k metadata[key] per question, using the given recall mode."""
    vectors = memory._embed(questions)
    filters = memory._filters(None, None, None, None, False)
    return [
        [r.metadata[key] for r in memory._search(q, v, k, filters, None, mode)]
        for q, v in zip(questions, vectors)
    ]


def eval_locomo(
    workdir: Path, embedder: Embedder, modes: list[str], weights: Weights, log: Callable
) -> dict[str, Any]:
    data = json.loads((EVAL / "locomo" / "locomo_dev.json").read_text())
    per_mode: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in modes}
    for sample in data:
        path = workdir / f"locomo-{sample['sample_id']}.db"
        turns = locomo_turns(sample)
        fresh = not path.exists()
        with Memory(path=path, embedder=embedder, weights=weights) as memory:
            if fresh:
                started = time.perf_counter()
                memory.store_many(turns)
                log(f"  {sample['sample_id']}: stored {len(turns)} turns "
                    f"in {time.perf_counter() - started:.1f} s")
            known = {t["metadata"]["dia_id"] for t in turns}
            questions = locomo_questions(sample, known)
            for mode in modes:
                found = search_ids(memory, [q for q, _, _ in questions], 20, mode, "dia_id")
                for (_, category, gold), ids in zip(questions, found):
                    for k in (5, 10, 20):
                        value = len(gold & set(ids[:k])) / len(gold)
                        per_mode[mode][f"R@{k}"].append(value)
                        per_mode[mode][f"cat{category} R@{k}"].append(value)
    return {
        mode: {name: round(sum(v) / len(v), 4) for name, v in sorted(values.items())}
        | {"questions": len(values["R@10"])}
        for mode, values in per_mode.items()
    }


def eval_scifact(
    workdir: Path, embedder: Embedder, modes: list[str], weights: Weights, log: Callable
) -> dict[str, Any]:
    base = EVAL / "scifact"
    path = workdir / "scifact.db"
    qrels: dict[str, set[str]] = defaultdict(set)
    for line in (base / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, cid, score = line.split("\t")
        if int(score) > 0:
            qrels[qid].add(cid)
    queries = [
        json.loads(line) for line in (base / "queries_train.jsonl").read_text().splitlines()
    ]
    queries = [q for q in queries if q["_id"] in qrels]
    results: dict[str, Any] = {}
    fresh = not path.exists()
    with Memory(path=path, embedder=embedder, weights=weights) as memory:
        if fresh:
            docs = [json.loads(line) for line in (base / "corpus.jsonl").read_text().splitlines()]
            started = time.perf_counter()
            for start in range(0, len(docs), 500):
                memory.store_many(
                    {
                        "content": f"{d['title']} {d['text']}".strip(),
                        "kind": "event",  # abstracts are distinct documents: never merged
                        "metadata": {"doc_id": d["_id"]},
                    }
                    for d in docs[start : start + 500]
                )
                log(f"  scifact: stored {min(start + 500, len(docs))}/{len(docs)} "
                    f"({time.perf_counter() - started:.0f} s)")
        for mode in modes:
            found = search_ids(memory, [q["text"] for q in queries], 100, mode, "doc_id")
            ndcg, recall100 = [], []
            for query, ids in zip(queries, found):
                gold = qrels[query["_id"]]
                dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ids[:10]) if d in gold)
                ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), 10)))
                ndcg.append(dcg / ideal)
                recall100.append(len(gold & set(ids[:100])) / len(gold))
            results[mode] = {
                "nDCG@10": round(sum(ndcg) / len(ndcg), 4),
                "R@100": round(sum(recall100) / len(recall100), 4),
                "queries": len(queries),
            }
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = []
    if "locomo" in results:
        lines += [
            "| LoCoMo dev | R@5 | R@10 | R@20 | multi-hop R@10 | temporal R@10 "
            "| open-domain R@10 | single-hop R@10 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode, r in results["locomo"].items():
            lines.append(
                f"| {mode} | {r['R@5']:.3f} | {r['R@10']:.3f} | {r['R@20']:.3f} | "
                + " | ".join(f"{r.get(f'cat{c} R@10', 0):.3f}" for c in (1, 2, 3, 4))
                + " |"
            )
        lines.append("")
    if "scifact" in results:
        lines += ["| SciFact train | nDCG@10 | R@100 |", "|---|---|---|"]
        for mode, r in results["scifact"].items():
            lines.append(f"| {mode} | {r['nDCG@10']:.3f} | {r['R@100']:.3f} |")
    return "\n".join(lines)


def run(
    modes: list[str],
    sets: list[str],
    workdir: Path | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, Any]:
    """Evaluate and return {"locomo": {mode: metrics}, "scifact": {mode: metrics}}."""
    if not EVAL.is_dir():
        raise SystemExit(f"evaluation data not found at {EVAL}: place ../shared beside the repo")
    embedder = Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        where = workdir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        results: dict[str, Any] = {}
        if "locomo" in sets:
            results["locomo"] = eval_locomo(where, embedder, modes, weights, log)
        if "scifact" in sets:
            results["scifact"] = eval_scifact(where, embedder, modes, weights, log)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--set", choices=["locomo", "scifact", "all"], default="all")
    parser.add_argument("--workdir", type=Path, help="keep the built stores here for reuse")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    for name in ("rrf_k", "vector", "keyword", "importance", "recency"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name)
    parser.add_argument("--method", choices=["rrf", "relative"])
    args = parser.parse_args()
    weights = replace(
        DEFAULT_WEIGHTS,
        **{
            k: getattr(args, k)
            for k in ("method", "rrf_k", "vector", "keyword", "importance", "recency")
            if getattr(args, k) is not None
        },
    )
    modes = list(MODES) if args.mode == "all" else [args.mode]
    sets = ["locomo", "scifact"] if args.set == "all" else [args.set]
    results = run(modes, sets, args.workdir, weights)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
