"""store_many throughput: facts (embedding + the near-duplicate check) against events (the
embedding alone, no check) of the same texts, side by side, as one store grows (issue 18).

    python benches/store_rate.py                          # 1k, 10k, 100k memories
    python benches/store_rate.py --sizes 1k,10k,100k,1m --workdir /tmp/memento-rate

At each size the store is first grown with synthetic rows (``run.fill_synthetic``: real
SciFact sentences with their shipped-model vectors, then perturbed copies; 3 fact : 2 event
: 1 lesson), then ``--texts`` new SciFact sentences (after the synthetic pool, so none is a
duplicate of a synthetic row) are stored with ``Memory.store_many`` in calls of ``--chunk``
items, three ways interleaved call by call (the order rotating), so load hits them alike:

- ``events``: the texts as events (embedding and insert, no near-duplicate check);
- ``facts``: the same texts as facts (embedding, the batch's near-duplicate check, insert);
- ``facts, per item``: other texts (as many) as facts with the check as before issue 18, one
  ``knn`` per item (the base ``Store.knn_many``), unless ``--no-before``.

``embed only`` is the embedder alone on the events' texts: the ceiling for all three. On a
shared machine these rates swing by a third between runs, so the writes are also timed
without the embedding (``--texts`` / 2 further texts, their vectors made beforehand, each
way on its own texts: as events, as facts, as facts with the per-item check): ms per item
beyond the embedding, which is what the near-duplicate check adds.
Prints a markdown table; ``--out`` also writes it (with the run's settings) to a file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # benches/run.py: the data and the synthetic rows

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}


class Shim:
    """What ``run.fill_synthetic`` needs of run's Context: the pool sentences, their
    vectors (cached in the workdir) and the embedder."""

    def __init__(self, workdir: Path, sentences: list[str], log: Any) -> None:
        from memento.embedder import Embedder

        self.workdir = workdir
        self.sentences = sentences
        self.log = log
        self.embedder = Embedder()
        self.embedder.load()
        self._pool: Any = None

    def pool(self) -> Any:
        import numpy as np

        if self._pool is None:
            path = self.workdir / f"scifact-vectors-{len(self.sentences)}.npy"
            if path.exists():
                self._pool = np.load(path)
            else:
                self.log(f"embedding {len(self.sentences)} sentences for the synthetic rows")
                self._pool = self.embedder.embed(self.sentences)
                np.save(path, self._pool)
        return self._pool


def measure(
    memory: Any, texts: list[str], others: list[str] | None, chunk: int, extra: list[str]
) -> dict:
    """The three ways (see the module docstring), interleaved call by call."""
    from memento.store.base import Store

    store = memory._store
    batched = store.knn_many
    per_item = types.MethodType(Store.knn_many, store)
    ways: dict[str, dict[str, float]] = {}

    def timed(name: str, items: list[dict[str, Any]], check: Any) -> None:
        store.knn_many = check
        try:
            start = time.perf_counter()
            records = memory.store_many(items)
            elapsed = time.perf_counter() - start
        finally:
            store.knn_many = batched
        way = ways.setdefault(name, {"items": 0, "seconds": 0.0, "created": 0})
        way["items"] += len(items)
        way["seconds"] += elapsed
        way["created"] += sum(r.action == "created" for r in records)

    for n, start in enumerate(range(0, len(texts), chunk)):
        part = texts[start : start + chunk]
        runs = [
            lambda p=part: timed("events", [{"content": t, "kind": "event"} for t in p], batched),
            lambda p=part: timed("facts", [{"content": t, "kind": "fact"} for t in p], batched),
        ]
        if others is not None:
            other = others[start : start + chunk]
            runs.append(
                lambda p=other: timed(
                    "facts, per item", [{"content": t, "kind": "fact"} for t in p], per_item
                )
            )
        for i in range(len(runs)):
            runs[(n + i) % len(runs)]()
    if extra:
        vectors = dict(zip(extra, memory._embed(extra)))
        embed = memory._embed
        memory._embed = lambda batch: [vectors[t] for t in batch]
        try:
            third = len(extra) // 3
            sets = {"events": extra[:third], "facts": extra[third : 2 * third]}
            sets["facts, per item"] = extra[2 * third :]
            before = dict(ways)
            ways.clear()
            for n, start in enumerate(range(0, third, chunk)):
                runs = [
                    lambda s=start: timed(
                        "events", [{"content": t, "kind": "event"}
                                   for t in sets["events"][s : s + chunk]], batched),
                    lambda s=start: timed(
                        "facts", [{"content": t, "kind": "fact"}
                                  for t in sets["facts"][s : s + chunk]], batched),
                    lambda s=start: timed(
                        "facts, per item", [{"content": t, "kind": "fact"}
                                            for t in sets["facts, per item"][s : s + chunk]],
                        per_item),
                ]  # fmt: skip
                for i in range(len(runs)):
                    runs[(n + i) % len(runs)]()
            written = {f"write only: {k}": v for k, v in ways.items()}
            ways.clear()
            ways.update(before)
            ways.update(written)
        finally:
            memory._embed = embed
    start = time.perf_counter()
    memory.embedder.embed(texts)
    ways["embed only"] = {
        "items": len(texts), "seconds": time.perf_counter() - start, "created": 0
    }  # fmt: skip
    for way in ways.values():
        way["per_s"] = way["items"] / way["seconds"]
    return ways


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1k,10k,100k", help="of 1k, 10k, 100k, 1m")
    parser.add_argument("--texts", type=int, default=300, help="texts per way and size")
    parser.add_argument("--chunk", type=int, default=100, help="items per store_many call")
    parser.add_argument("--pool", type=int, default=10_000, help="synthetic pool sentences")
    parser.add_argument("--workdir", type=Path, help="keep the store and vectors here")
    parser.add_argument("--no-before", action="store_true", help="skip the per-item check")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    sizes = [SIZES[s.strip().lower()] for s in args.sizes.split(",")]

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    import tempfile

    from memento import Memory

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="memento-rate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    before = not args.no_before
    ways_per_size = 3 if before else 2
    need = args.pool + (args.texts * ways_per_size + 3 * (args.texts // 2)) * len(sizes)
    sentences = run.scifact_sentences(need)
    if len(sentences) < need:
        raise SystemExit(f"only {len(sentences)} SciFact sentences, {need} needed")
    ctx = Shim(workdir, sentences[: args.pool], log)
    fresh = sentences[args.pool :]
    path = workdir / "rate.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    load_before = os.getloadavg()
    rows = []
    with Memory(path=path, embedder=ctx.embedder) as memory:
        count = used = 0
        for size in sizes:
            added = args.texts * ways_per_size + 3 * (args.texts // 2)
            fill = max(0, size - count - added)
            if fill:
                log(f"{size:,}: {fill:,} synthetic rows")
                run.fill_synthetic(ctx, memory, fill, count)  # type: ignore[arg-type]
            texts = fresh[used : used + args.texts]
            others = fresh[used + args.texts : used + 2 * args.texts] if before else None
            used += args.texts * (2 if before else 1)
            extra = fresh[used : used + 3 * (args.texts // 2)]
            used += len(extra)
            total = memory.stats()["total"]
            memory.recall("warm the index and the model", limit=1)
            log(f"{total:,} memories: storing {args.texts} texts {ways_per_size} ways")
            ways = measure(memory, texts, others, args.chunk, extra)
            count = memory.stats()["total"]
            rows.append({"memories": count, "ways": ways})
            log(
                f"{total:,}: "
                + ", ".join(f"{name} {way['per_s']:.1f}/s" for name, way in ways.items())
            )
    load_after = os.getloadavg()
    table = markdown(rows, args, load_before, load_after)
    print(table)
    if args.out:
        args.out.write_text(table, encoding="utf-8")
    return 0


def markdown(rows: list[dict], args: argparse.Namespace, load0: Any, load1: Any) -> str:
    before = not args.no_before
    head = "| memories | embed only /s | events /s | facts /s | facts vs events |"
    rule = "|---:|---:|---:|---:|---:|"
    if before:
        head += " facts, per-item check /s | per item vs events |"
        rule += "---:|---:|"
    lines = [
        f"`python benches/store_rate.py --sizes {args.sizes} --texts {args.texts} "
        f"--chunk {args.chunk} --pool {args.pool}`; load average {load0[0]:.1f} before, "
        f"{load1[0]:.1f} after. {args.texts} texts per way and size, store_many calls of "
        f"{args.chunk}, the ways interleaved call by call.",
        "",
        head,
        rule,
    ]
    extra = []
    for row in rows:
        w = row["ways"]
        if "write only: events" in w:
            ms = {k: 1000 / w[f"write only: {k}"]["per_s"] for k in ("events", "facts")}
            old = w.get("write only: facts, per item")
            extra.append(
                f"| {row['memories']:,} | {ms['events']:.2f} | {ms['facts']:.2f} "
                f"| {ms['facts'] - ms['events']:.2f} "
                f"| {1000 / old['per_s'] - ms['events']:.2f} |" if old else "- |"
            )
        ev = w["events"]["per_s"]
        line = (
            f"| {row['memories']:,} | {w['embed only']['per_s']:.1f} | {ev:.1f} "
            f"| {w['facts']['per_s']:.1f} | {_pct(w['facts']['per_s'], ev)} |"
        )
        if before:
            old = w["facts, per item"]["per_s"]
            line += f" {old:.1f} | {_pct(old, ev)} |"
        lines.append(line)
    if extra:
        lines += [
            "",
            "Writes without the embedding (vectors made beforehand), ms per item; the check "
            "is facts minus events:",
            "",
            "| memories | events | facts | check, batched | check, per item |",
            "|---:|---:|---:|---:|---:|",
            *extra,
        ]
    return "\n".join(lines) + "\n"


def _pct(value: float, base: float) -> str:
    if not base or math.isnan(value):
        return "-"
    return f"{value / base:.2f}x"


if __name__ == "__main__":
    raise SystemExit(main())
