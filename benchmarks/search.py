"""Similarity search at catalog scale: exact vs the approximate index ``mediafm index`` builds.

One million synthetic shot embeddings with the structure real ones have (titles, scenes
inside them, shot noise), unit-normed, 256-d (the tiny model's default readout). Both indexes
are built by ``mediafm.search.build_index`` (exact: ``exact_up_to`` above n), then measured
side by side, interleaved: build time, index size and peak memory, single-query latency
(p50 / p99 over ``--queries`` queries a round), batch throughput, and recall@10 of the
approximate index against exact search. Goal: p99 single-query latency under 50 ms on 2 cores
at recall@10 >= 0.9.

    python benchmarks/search.py                      # 1M x 256
    python benchmarks/search.py --n 200000 --dim 1536
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

import harness  # benchmarks/harness.py, beside this script


def synthetic(n: int, dim: int, shots_per_title: int = 500, seed: int = 0) -> pd.DataFrame:
    """(title_id, shot_index, embedding) with title and scene structure."""
    rng = np.random.default_rng(seed)
    n_titles = -(-n // shots_per_title)
    x = np.empty((n, dim), np.float32)
    for t in range(n_titles):
        lo, hi = t * shots_per_title, min(n, (t + 1) * shots_per_title)
        title = rng.standard_normal(dim, dtype=np.float32)
        scene = np.repeat(rng.standard_normal(((hi - lo) // 9 + 1, dim), dtype=np.float32), 9,
                          axis=0)[: hi - lo]
        x[lo:hi] = title + scene + 0.7 * rng.standard_normal((hi - lo, dim), dtype=np.float32)
    return pd.DataFrame({"title_id": [f"t{i // shots_per_title:05d}" for i in range(n)],
                         "shot_index": np.arange(n) % shots_per_title, "embedding": list(x)})


def main() -> None:
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mediafm.search import Index, build_index
    from mediafm.store import vector_array

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=200, help="single queries a round")
    p.add_argument("--batch", type=int, default=1000, help="queries of the batch measurement")
    p.add_argument("--recall", type=float, default=0.95, help="build target (sets nprobe)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--json")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    emb = work / f"search-{args.n}-{args.dim}.parquet"
    if not emb.exists():
        frame = synthetic(args.n, args.dim)
        pq.write_table(pa.table({"title_id": frame.title_id, "shot_index": frame.shot_index,
                                 "embedding": vector_array(np.stack(frame.embedding))}), emb)
        del frame
    builds = {}
    for name, exact_up_to in (("exact", args.n), ("approximate", 0)):
        t = time.perf_counter()
        build_index(emb, work / f"index-{name}", exact_up_to=exact_up_to,
                    target_recall=args.recall)
        builds[name] = time.perf_counter() - t
    indexes = {name: Index.load(work / f"index-{name}") for name in builds}
    x = np.stack([indexes["exact"].vector(i) for i in range(0, args.n, args.n // 2000)])
    rng = np.random.default_rng(1)
    queries = x[rng.choice(len(x), size=args.queries, replace=False)]
    batch = x[rng.choice(len(x), size=min(args.batch, len(x)), replace=True)]
    latencies: dict[str, list[float]] = {n: [] for n in indexes}
    found: dict[str, np.ndarray] = {}

    def single(name: str) -> float:
        index = indexes[name].index
        times = []
        for q in queries:
            t = time.perf_counter()
            _, rows = index.search(q[None], 10)
            times.append(time.perf_counter() - t)
        latencies[name] += times
        found[name] = index.search(queries, 10)[1]
        return float(np.percentile(times, 99))

    def batched(name: str) -> float:
        return len(batch) / harness.timed(lambda: indexes[name].index.search(batch, 10))

    fns = {**{f"{n}: single p99": (lambda n=n: single(n)) for n in indexes},
           **{f"{n}: batch": (lambda n=n: batched(n)) for n in indexes}}
    runs = harness.interleaved(fns, args.repeats, args.warmup)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in
                            zip(found["approximate"], found["exact"], strict=True)]))
    result = {"benchmark": "search", "machine": harness.machine(), "n": args.n,
              "dim": args.dim, "queries": args.queries, "batch": len(batch),
              "repeats": args.repeats, "faiss": faiss.__version__,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "recall_at_10": recall, "variants": {}, "ratios": {}}
    for name, index in indexes.items():
        lat = np.array(latencies[name][-args.repeats * args.queries:]) * 1000
        result["variants"][name] = {
            "index": index.meta["index"], "build_s": builds[name],
            "bytes": (work / f"index-{name}" / "index.faiss").stat().st_size,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "p99_ms_per_round": harness.summary([v * 1000 for v in runs[f"{name}: single p99"]]),
            "batch_queries_per_s": harness.summary(runs[f"{name}: batch"])}
    result["ratios"]["exact / approximate p99 latency"] = harness.ratio(
        runs["exact: single p99"], runs["approximate: single p99"])
    print(render(result))
    harness.write("search", result, args.json)


def render(r: dict) -> str:
    rows = []
    for name, v in r["variants"].items():
        idx = v["index"]
        params = ", ".join(f"{k} {idx[k]}" for k in ("nlist", "nprobe") if k in idx)
        rows.append([f"{name} ({idx['type']}{', ' + params if params else ''})",
                     f"{v['build_s']:.0f}", f"{v['bytes'] / 2**20:,.0f}",
                     f"{v['p50_ms']:.2f}", harness.fmt(v["p99_ms_per_round"], ".2f"),
                     harness.fmt(v["batch_queries_per_s"], ",.0f")])
    return "\n".join([
        f"{r['n']:,} shot embeddings ({r['dim']}-d, unit-normed, title and scene structure), "
        f"FAISS {r['faiss']}; {r['repeats']} interleaved rounds of {r['queries']} single "
        f"queries and one batch of {r['batch']}, after a warm-up.", "",
        harness.markdown_table(["index", "build s", "size MiB", "p50 ms", "p99 ms (range)",
                                "batch queries/s"], rows), "",
        f"Recall@10 of the approximate index against exact search: **{r['recall_at_10']:.3f}**"
        f"; peak memory of the benchmark process {r['peak_rss_mib']:,.0f} MiB. "
        + " ".join(f"{n}: {harness.fmt_ratio(x)}." for n, x in r["ratios"].items()), "",
        harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
