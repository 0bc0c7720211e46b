"""store_many throughput: facts (embedding + the near-duplicate check) against events (the
embedding alone, no check) of the same texts, side by side, as one store grows (issue 18).

    python benches/store_rate.py                          # 1k, 10k, 100k memories
    python benches/store_rate.py --sizes 1k,10k,100k,1m --workdir /tmp/memento-rate

At each size the store is first grown with synthetic rows (``run.fill_synthetic``: real
SciFact sentences with their shipped-model vectors, then perturbed copies; 3 fact : 2 event
: 1 lesson), then ``--texts`` new SciFact sentences (after the synthetic pool, so none is a
duplicate of a synthetic row) are stored with ``Memory.store_many`` in calls of ``--chunk``
items, the ways interleaved call by call (the order rotating), so load hits them alike, after
``WARM`` further facts stored untimed (what a process pays once, as the recall before them
loads the index):

- ``events``: the texts as events (embedding and insert, no near-duplicate check);
- ``facts``: the same texts as facts (embedding, the batch's near-duplicate check, insert);
- ``facts, whole store``: other texts as facts with the batched check searching the whole
  store, as before the partition (``sqlite_parts``) existed: the same code with the
  partition switched off, unless ``--no-before``;
- ``facts, per item``: other texts (as many) as facts with the check as before issue 18, one
  ``knn`` per item (the base ``Store.knn_many``), unless ``--no-before``.

``embed only`` is the embedder alone on the events' texts: the ceiling for all three. On a
shared machine these rates swing by a third between runs, so the writes are also timed
without the embedding (``--texts`` / 2 further texts, their vectors made beforehand, each
way on its own texts: as events, as facts, as facts with the per-item check): ms per item
beyond the embedding, which is what the near-duplicate check adds.
In a store with a partition, ``--agreement N`` also compares the check's answers for N
fresh texts (up to four neighbours at cosine >= 0.65 among the facts) and for N stored facts
restated (their vector moved to cosine ~0.98, a near duplicate) with an exact scan of every
fact, and with the whole-store index path and the partition's pool as it was before
2026-11-27 (``HAMMING_POOL``).
``--reuse`` grows the store an earlier run left in ``--workdir`` (a 1M store takes ~10
minutes to build); ``--retrain`` first drops its partition and times the write that trains
it again and places every stored row, with another writer's longest wait beside it.
``--one-session`` adds a way: further texts as events with every text embedded on the
embedder's first session (as before ``memento.embedder.BULK_MIN`` sent calls of many texts
to a session of their own).
``--in-write`` adds a way: further texts as facts with the whole check inside the write
transaction, after the embedding (as before ``Memory`` checked the parts of a batch while
the next part embeds, ``memory.facade.EMBED_AHEAD``).
Each way's time inside its write transactions (what another writer waits for) is listed
too, per item, and its processor time per item (``time.process_time``, both cores) with
the cores it kept busy: facts minus events is what the check costs the machine, wherever
it runs. ``--agreement`` also lists how many facts each check reached in its partitions
(median, 90th percentile, largest).
Texts already in the store would be deduplicated instead of inserted, which is cheaper, so
every way whose texts were not all created is listed under the table.
Prints a markdown table; ``--out`` also writes it (with the run's settings) to a file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # benches/run.py: the data and the synthetic rows

# Fresh facts stored before the timed ways, so that none of them pays what a process pays
# once (as the recall before them loads the index): the first check at a partitioned size
# lays the sign bits out by partition (sqlite_parts.Layout, ~0.2 s at a million memories).
WARM = 8
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


class WholeStore:
    """The check as it was before the partition: every search over the whole store."""

    def __init__(self, store: Any) -> None:
        from memento.store import sqlite

        self.sqlite = sqlite
        self.store = store

    def __enter__(self) -> None:
        self.saved = self.sqlite.partition_reach, self.store.regions
        self.sqlite.partition_reach = lambda conn, vectors: None
        self.store.regions = lambda vectors: None

    def __exit__(self, *exc: object) -> None:
        self.sqlite.partition_reach, self.store.regions = self.saved
        del self.store.regions  # the instance attribute: the class's method again


def measure(
    memory: Any,
    texts: list[str],
    others: list[list[str]] | None,
    chunk: int,
    extra: list[str],
    single: list[str] | None = None,
    late: list[str] | None = None,
) -> dict:
    """The four ways (see the module docstring), interleaved call by call; with ``single``,
    also those texts as events with every text embedded on the first session; with
    ``late``, those texts as facts checked inside the write transaction."""
    from memento.memory import facade
    from memento.store.base import Store

    store = memory._store
    batched = store.knn_many
    per_item = types.MethodType(Store.knn_many, store)
    ways: dict[str, dict[str, float]] = {}
    held = [0.0]  # seconds inside write transactions: what another writer may wait for
    opened = store.transaction

    @contextmanager
    def timed_transaction(write: bool = True) -> Iterator[None]:
        start = time.perf_counter()
        with opened(write):
            yield
        if write:
            held[0] += time.perf_counter() - start

    def timed(name: str, items: list[dict[str, Any]], check: Any) -> None:
        store.knn_many = check
        whole = WholeStore(store) if name.endswith("whole store") else nullcontext()
        alone = run.one_session() if name.endswith("one session") else nullcontext()
        inside = (
            mock.patch.object(facade, "EMBED_AHEAD", sys.maxsize)
            if name.endswith("in the write")
            else nullcontext()
        )
        locked = held[0]
        try:
            with whole, alone, inside, mock.patch.object(store, "transaction", timed_transaction):
                start, cpu = time.perf_counter(), time.process_time()
                records = memory.store_many(items)
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            store.knn_many = batched
        way = ways.setdefault(
            name, {"items": 0, "seconds": 0.0, "cpu": 0.0, "created": 0, "held": 0.0}
        )
        way["items"] += len(items)
        way["seconds"] += elapsed
        way["cpu"] += cpu
        way["held"] += held[0] - locked
        way["created"] += sum(r.action == "created" for r in records)

    for n, start in enumerate(range(0, len(texts), chunk)):
        part = texts[start : start + chunk]
        runs = [
            lambda p=part: timed("events", [{"content": t, "kind": "event"} for t in p], batched),
            lambda p=part: timed("facts", [{"content": t, "kind": "fact"} for t in p], batched),
        ]
        if others is not None:
            whole = others[0][start : start + chunk]
            runs.append(
                lambda p=whole: timed(
                    "facts, whole store", [{"content": t, "kind": "fact"} for t in p], batched
                )
            )
            other = others[1][start : start + chunk]
            runs.append(
                lambda p=other: timed(
                    "facts, per item", [{"content": t, "kind": "fact"} for t in p], per_item
                )
            )
        if single is not None:
            alone = single[start : start + chunk]
            runs.append(
                lambda p=alone: timed(
                    "events, one session", [{"content": t, "kind": "event"} for t in p], batched
                )
            )
        if late is not None:
            checked = late[start : start + chunk]
            runs.append(
                lambda p=checked: timed(
                    "facts, checked in the write", [{"content": t, "kind": "fact"} for t in p],
                    batched,
                )
            )  # fmt: skip
        for i in range(len(runs)):
            runs[(n + i) % len(runs)]()
    if extra:
        vectors = dict(zip(extra, memory._embed(extra)))
        embed = memory._embed
        memory._embed = lambda batch: [vectors[t] for t in batch]
        try:
            third = len(extra) // 4
            sets = {"events": extra[:third], "facts": extra[third : 2 * third]}
            sets["facts, whole store"] = extra[2 * third : 3 * third]
            sets["facts, per item"] = extra[3 * third :]
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
                        "facts, whole store", [{"content": t, "kind": "fact"}
                                               for t in sets["facts, whole store"][s : s + chunk]],
                        batched),
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
    start, cpu = time.perf_counter(), time.process_time()
    memory.embedder.embed(texts)
    ways["embed only"] = {
        "items": len(texts), "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu, "created": 0,
    }  # fmt: skip
    for way in ways.values():
        way["per_s"] = way["items"] / way["seconds"]
    return ways


def retrain(path: Path, memory: Any) -> str:
    """Drop the partition, then time the write that trains it again and places every stored
    row, while another connection writes a setting every 50 ms and records its longest wait
    for the write lock."""
    import threading

    from memento import Memory
    from memento.store import sqlite_parts

    with memory._store.transaction():
        sqlite_parts.drop(memory.conn)
    waits: list[float] = []
    done = threading.Event()

    def writer() -> None:
        with Memory(path=path, embedder=memory.embedder) as other:
            while not done.is_set():
                start = time.perf_counter()
                with other._store.transaction():
                    other._store.set_setting("bench_probe", str(start))
                waits.append(time.perf_counter() - start)
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    start = time.perf_counter()
    memory._store.prepare_writes()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    with memory._store.transaction():
        memory.conn.execute("DELETE FROM settings WHERE key = 'bench_probe'")
    return (
        f"partition trained and every row placed in {seconds:.1f} s; another writer's "
        f"longest wait {max(waits, default=0.0):.2f} s over {len(waits)} writes"
    )


# The partitioned check's pool before 2026-11-27: the nearest in Hamming distance alone.
HAMMING_POOL = {"POOL": 100, "MIN_POOL": 50, "WIDEN": 1}


@contextmanager
def counting_reach(layout: Any, counted: list[int]) -> Iterator[None]:
    """Record in ``counted`` how many rows of its kind each check reaches in its partitions
    (``sqlite_parts.Layout.reached``), the work of its Hamming pass."""
    original = layout.reached

    def reached(self: Any, *args: Any, **kwargs: Any) -> Any:
        seqs, words, keep = original(self, *args, **kwargs)
        counted.append(len(keep))
        return seqs, words, keep

    with mock.patch.object(layout, "reached", reached):
        yield


def agreement(memory: Any, texts: list[str], log: Any) -> dict[str, Any]:
    """The partitioned check's answers against an exact scan of every fact, and against the
    whole-store index path (Hamming pass over every memory, 1,000 re-ranked), on ``texts``
    (fresh sentences) and on as many stored facts restated (cosine ~0.98: a near duplicate
    the check must find). Empty when the store has no partition."""
    import numpy as np

    from memento.memory import DEDUP_SIMILARITY, MAX_RELATED, RELATED_SIMILARITY
    from memento.projects import GLOBAL
    from memento.store import Filters, sqlite, sqlite_index, sqlite_parts

    conn = memory.conn
    if sqlite_parts.generation(conn) is None:
        return {}
    k = 1 + MAX_RELATED
    where = Filters(kinds=("fact",), scopes=(GLOBAL,))
    rng = np.random.default_rng(7)
    fresh = memory._embed(texts)
    rows = conn.execute(
        "SELECT embedding FROM memory_bits WHERE kind = 0 AND archived = 0 AND scope = 0 "
        "AND embedding IS NOT NULL ORDER BY (seq * 7919) % 1000003 LIMIT ?",
        (len(texts),),
    ).fetchall()
    stored = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1)
    noise = rng.normal(0.0, 0.2 / np.sqrt(stored.shape[1]), stored.shape).astype(np.float32)
    moved = stored + noise
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    restated = [v.astype("<f4").tobytes() for v in moved]
    out: dict[str, Any] = {}
    for name, vectors in (("fresh texts", fresh), ("restated facts", restated)):
        with memory._store.transaction(write=False):
            codes = sqlite.scope_codes(conn, where)
            start = time.perf_counter()
            exact = sqlite._exact_many(conn, vectors, k, where, codes, RELATED_SIMILARITY)
            t_exact = time.perf_counter() - start
            start = time.perf_counter()
            whole = sqlite_index.knn_many(conn, vectors, k, where, codes, RELATED_SIMILARITY)
            t_whole = time.perf_counter() - start
            timed: dict[str, tuple[Any, float]] = {}  # way: (answers, fastest seconds)
            reached: dict[str, list[int]] = {}  # way: the facts each query's check reached
            # the partition with the pool as it was before 2026-11-27 (the nearest in
            # Hamming distance alone), then as it is, twice, interleaved
            for way, settings in (
                ("partition, Hamming pool", HAMMING_POOL), ("partition", None),
                ("partition, Hamming pool", HAMMING_POOL), ("partition", None),
            ):  # fmt: skip
                counted = reached[way] = []
                with (
                    mock.patch.multiple(sqlite_parts, **settings) if settings else nullcontext(),
                    counting_reach(sqlite_parts.Layout, counted),
                ):
                    start = time.perf_counter()
                    found = memory._store.knn_many(
                        vectors, k, [where] * len(vectors), min_similarity=RELATED_SIMILARITY
                    )
                    seconds = time.perf_counter() - start
                fastest = min(seconds, timed[way][1]) if way in timed else seconds
                timed[way] = (found, fastest)
        result: dict[str, Any] = {"queries": len(vectors), "exact hits": sum(map(len, exact))}
        answers = [("whole store", whole, t_whole)]
        answers += [(name, found, seconds) for name, (found, seconds) in timed.items()]
        for way, found, seconds in answers:
            hits = sum(len({s for s, _ in e} & {s for s, _ in f}) for e, f in zip(exact, found))
            same = sum([s for s, _ in e] == [s for s, _ in f] for e, f in zip(exact, found))
            dup = sum(
                (bool(e) and 1 - e[0][1] >= DEDUP_SIMILARITY and e[0][0])
                == (bool(f) and 1 - f[0][1] >= DEDUP_SIMILARITY and f[0][0])
                for e, f in zip(exact, found)
            )
            # as many hits at >= 0.65 (up to four), the best as similar (within 0.01): on
            # the synthetic rows, near-identical copies can stand in for one another
            alike = sum(
                len(e) == len(f) and (not e or abs(e[0][1] - f[0][1]) <= 0.01)
                for e, f in zip(exact, found)
            )
            result[way] = {
                "as many, best alike": alike / len(vectors),
                "hits found": hits / max(1, result["exact hits"]),
                "same list": same / len(vectors),
                "same decision": dup / len(vectors),
                "ms per query": 1000 * seconds / len(vectors),
                "reached": spread(reached.get(way, [])),
            }
        result["exact ms per query"] = 1000 * t_exact / len(vectors)
        result["duplicates"] = sum(bool(e) and 1 - e[0][1] >= DEDUP_SIMILARITY for e in exact)
        out[name] = result
        log(f"agreement, {name}: {result}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1k,10k,100k", help="of 1k, 10k, 100k, 1m")
    parser.add_argument("--texts", type=int, default=300, help="texts per way and size")
    parser.add_argument("--chunk", type=int, default=100, help="items per store_many call")
    parser.add_argument("--pool", type=int, default=10_000, help="synthetic pool sentences")
    parser.add_argument("--workdir", type=Path, help="keep the store and vectors here")
    parser.add_argument(
        "--no-before", action="store_true", help="skip the whole-store and per-item checks"
    )
    parser.add_argument(
        "--agreement", type=int, default=0, metavar="N",
        help="compare the partitioned check with an exact scan on N queries of each kind",
    )  # fmt: skip
    parser.add_argument(
        "--one-session", action="store_true",
        help="also store texts as events with every text embedded on the embedder's first "
        "session (before memento.embedder.BULK_MIN)",
    )  # fmt: skip
    parser.add_argument(
        "--in-write", action="store_true",
        help="also store texts as facts with the whole check inside the write transaction "
        "(memory.facade.EMBED_AHEAD off)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument(
        "--retrain", action="store_true",
        help="drop the store's partition first and time training it again (another writer "
        "beside it records its longest wait for the write lock)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", action="store_true",
        help="grow the store left in --workdir by an earlier run instead of a new one",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from memento.embedder import BULK_MIN

    if args.one_session and args.chunk < BULK_MIN:
        parser.error(
            f"--one-session needs --chunk >= {BULK_MIN}: smaller calls take the first session "
            "either way"
        )
    sizes = [SIZES[s.strip().lower()] for s in args.sizes.split(",")]

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    import tempfile

    from memento import Memory

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="memento-rate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    before = not args.no_before
    ways_per_size = (4 if before else 2) + args.one_session + args.in_write
    per_size = args.texts * ways_per_size + 4 * (args.texts // 2) + args.agreement + WARM
    mark = workdir / "rate-used.txt"
    need = args.pool + per_size * len(sizes)
    if args.reuse and mark.exists():
        need += int(mark.read_text())
    sentences = run.scifact_sentences(need)
    if len(sentences) < need:
        raise SystemExit(f"only {len(sentences)} SciFact sentences, {need} needed")
    ctx = Shim(workdir, sentences[: args.pool], log)
    fresh = sentences[args.pool :]
    path = workdir / "rate.db"
    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    load_before = os.getloadavg()
    rows = []
    with Memory(path=path, embedder=ctx.embedder) as memory:
        count = memory.stats()["total"]
        # the fresh sentences an earlier run stored in this store: not again
        mark = workdir / "rate-used.txt"
        used = int(mark.read_text()) if args.reuse and mark.exists() else 0
        for size in sizes:
            added = args.texts * ways_per_size + 4 * (args.texts // 2) + WARM
            fill = max(0, size - count - added)
            if fill:
                log(f"{size:,}: {fill:,} synthetic rows")
                run.fill_synthetic(ctx, memory, fill, count)  # type: ignore[arg-type]
            texts = fresh[used : used + args.texts]
            used += args.texts
            others = None
            if before:
                others = [
                    fresh[used : used + args.texts],
                    fresh[used + args.texts : used + 2 * args.texts],
                ]
                used += 2 * args.texts
            single = None
            if args.one_session:
                single = fresh[used : used + args.texts]
                used += args.texts
            late = None
            if args.in_write:
                late = fresh[used : used + args.texts]
                used += args.texts
            extra = fresh[used : used + 4 * (args.texts // 2)]
            used += len(extra)
            probes = fresh[used : used + args.agreement]
            used += len(probes)
            total = memory.stats()["total"]
            memory.recall("warm the index and the model", limit=1)
            if args.retrain:
                log(f"{total:,}: {retrain(path, memory)}")
            start = time.perf_counter()
            memory._store.prepare_writes()  # a partition, when the store has grown to one
            log(f"{total:,}: writes prepared in {time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
            memory.store_many([{"content": t, "kind": "fact"} for t in fresh[used : used + WARM]])
            used += WARM
            took = time.perf_counter() - start
            log(f"{total:,}: first check (warm-up, {WARM} facts) in {took:.2f} s")
            log(f"{total:,} memories: storing {args.texts} texts {ways_per_size} ways")
            ways = measure(memory, texts, others, args.chunk, extra, single, late)
            count = memory.stats()["total"]
            rows.append({"memories": count, "ways": ways})
            mark.write_text(str(used))
            if probes:
                rows[-1]["agreement"] = agreement(memory, probes, log)
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
        head += " facts, whole store /s | whole vs events |"
        head += " facts, per-item check /s | per item vs events |"
        rule += "---:|---:|---:|---:|"
    if args.one_session:
        head += " events, one session /s | events vs one session |"
        rule += "---:|---:|"
    if args.in_write:
        head += " facts, checked in the write /s | facts vs checked in the write |"
        rule += "---:|---:|"
    lines = [
        f"`python benches/store_rate.py --sizes {args.sizes} --texts {args.texts} "
        f"--chunk {args.chunk} --pool {args.pool}"
        + (" --no-before" if not before else "")
        + (" --one-session" if args.one_session else "")
        + (" --in-write" if args.in_write else "")
        + (" --reuse" if args.reuse else "")
        + f"`; load average {load0[0]:.1f} before, "
        f"{load1[0]:.1f} after. {args.texts} texts per way and size, store_many calls of "
        f"{args.chunk}, the ways interleaved call by call.",
        "",
        head,
        rule,
    ]
    extra: list[str] = []
    deduplicated: list[str] = []
    for row in rows:
        w = row["ways"]
        if "write only: events" in w:
            ms = {k: 1000 / w[f"write only: {k}"]["per_s"] for k in ("events", "facts")}
            whole = w.get("write only: facts, whole store")
            old = w.get("write only: facts, per item")
            extra.append(
                f"| {row['memories']:,} | {ms['events']:.2f} | {ms['facts']:.2f} "
                f"| {ms['facts'] - ms['events']:.2f} "
                + (f"| {1000 / whole['per_s'] - ms['events']:.2f} " if whole else "| - ")
                + (f"| {1000 / old['per_s'] - ms['events']:.2f} |" if old else "| - |")
            )
        ev = w["events"]["per_s"]
        line = (
            f"| {row['memories']:,} | {w['embed only']['per_s']:.1f} | {ev:.1f} "
            f"| {w['facts']['per_s']:.1f} | {_pct(w['facts']['per_s'], ev)} |"
        )
        if before:
            whole = w["facts, whole store"]["per_s"]
            old = w["facts, per item"]["per_s"]
            line += f" {whole:.1f} | {_pct(whole, ev)} | {old:.1f} | {_pct(old, ev)} |"
        if "events, one session" in w:
            alone = w["events, one session"]["per_s"]
            line += f" {alone:.1f} | {_pct(ev, alone)} |"
        if "facts, checked in the write" in w:
            inside = w["facts, checked in the write"]["per_s"]
            line += f" {inside:.1f} | {_pct(w['facts']['per_s'], inside)} |"
        lines.append(line)
        # texts already in the store would be deduplicated (no insert): a fact timed so is
        # cheaper than a fresh one, so say how many were
        for name, way in w.items():
            if name.startswith(("facts", "write only: facts")) and way["created"] < way["items"]:
                deduplicated.append(
                    f"- {row['memories']:,}, {name}: {way['created']} of {way['items']} "
                    "created, the others near duplicates of stored memories"
                )
    if deduplicated:
        lines += ["", *deduplicated]
    agreed = [(row["memories"], row["agreement"]) for row in rows if row.get("agreement")]
    if agreed:
        lines += [
            "",
            "The partitioned check against an exact scan of every fact (up to four neighbours "
            "at cosine >= 0.65; a near duplicate at >= 0.97), with the whole-store index path "
            "and the partition's pool as it was before 2026-11-27 (the nearest in Hamming "
            "distance alone) beside it; ms per query in one call for all queries, inside a "
            "read transaction (the partition's two ways interleaved, the faster of two runs):",
            "",
            "| memories | queries | exact hits | near duplicates | way | hits found "
            "| same list | as many, best alike | same decision | ms per query "
            "| reached: median, p90, max |",
            "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for memories, found in agreed:
            for name, result in found.items():
                for way in ("whole store", "partition, Hamming pool", "partition"):
                    r = result[way]
                    lines.append(
                        f"| {memories:,} | {result['queries']} {name} | {result['exact hits']} "
                        f"| {result['duplicates']} | {way} | {r['hits found']:.3f} "
                        f"| {r['same list']:.3f} | {r['as many, best alike']:.3f} "
                        f"| {r['same decision']:.3f} "
                        f"| {r['ms per query']:.2f} | {r.get('reached', '-')} |"
                    )
                lines.append(
                    f"| {memories:,} | {result['queries']} {name} | | | exact scan | 1 | 1 | 1 | 1 "
                    f"| {result['exact ms per query']:.2f} | all |"
                )
    locks = [
        (row["memories"], {name: w for name, w in row["ways"].items() if w.get("held")})
        for row in rows
    ]
    timed_ways = ("events", "facts", "facts, checked in the write")
    names = [n for n in timed_ways if locks and n in locks[0][1]]
    if names:
        lines += [
            "",
            "Inside the write transaction (another writer waits for it), ms per item:",
            "",
            "| memories | " + " | ".join(names) + " |",
            "|---:|" + "---:|" * len(names),
            *(
                f"| {memories:,} | "
                + " | ".join(f"{1000 * w[n]['held'] / w[n]['items']:.2f}" for n in names)
                + " |"
                for memories, w in locks
            ),
        ]
    busy = ("embed only", "events", "facts")
    lines += [
        "",
        "Processor time per item, ms (both cores, `time.process_time`), and the cores kept "
        "busy (processor time over wall time). Where the embedding alone keeps both cores "
        "busy, the check's processor time adds to the facts' wall time however it is "
        "scheduled:",
        "",
        "| memories | " + " | ".join(f"{n} ms | {n} cores" for n in busy)
        + " | facts minus events ms |",
        "|---:|" + "---:|---:|" * len(busy) + "---:|",
        *(_processor_row(row["memories"], row["ways"], busy) for row in rows),
    ]
    if extra:
        lines += [
            "",
            "Writes without the embedding (vectors made beforehand), ms per item; the check "
            "is facts minus events:",
            "",
            "| memories | events | facts | check, batched | check, whole store | check, per item |",
            "|---:|---:|---:|---:|---:|---:|",
            *extra,
        ]
    return "\n".join(lines) + "\n"


def _processor_row(memories: int, ways: dict, names: tuple[str, ...]) -> str:
    ms = {n: 1000 * ways[n]["cpu"] / ways[n]["items"] for n in names}
    cells = [f"{ms[n]:.2f} | {ways[n]['cpu'] / ways[n]['seconds']:.2f}" for n in names]
    return f"| {memories:,} | " + " | ".join(cells) + f" | {ms['facts'] - ms['events']:.2f} |"


def spread(counts: list[int]) -> str:
    """Median, 90th percentile and largest of ``counts``; "-" when there are none."""
    if not counts:
        return "-"
    ordered = sorted(counts)
    return (
        f"{ordered[len(ordered) // 2]:,}, {ordered[int(0.9 * (len(ordered) - 1))]:,}, "
        f"{ordered[-1]:,}"
    )


def _pct(value: float, base: float) -> str:
    if not base or math.isnan(value):
        return "-"
    return f"{value / base:.2f}x"


if __name__ == "__main__":
    raise SystemExit(main())
