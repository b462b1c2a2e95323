"""Training-loader throughput and peak memory on large synthetic stores (100k and 1M shots).

For each size, a fresh process opens the store and pulls batches of 512-shot windows through
``WindowLoader.iterate`` (the training path: plan, part cache, collate, read-ahead thread),
reporting shots/s and peak RSS (the process plus its largest worker). Memory must not grow
with the corpus. ``--workers`` compares the read-ahead thread (0) with DataLoader processes;
each is run reading Parquet and reading the fused cache (``mediafm cache``), side by side,
and the cache is also read into one recycled buffer on the calling thread: that is what the
CUDA path gets (torch recycles its pinned batches), measured without a GPU.

    python benchmarks/loader_throughput.py                       # 100k and 1M, fused 2304
    python benchmarks/loader_throughput.py --sizes 100000 --steps 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def measure(store: str, steps: int, batch: int, workers: int, source: str, threads: int
            ) -> dict:
    import resource

    import torch

    from mediafm.sequences import WindowLoader
    from mediafm.store import ShotStore

    s = ShotStore(store, fused_cache=source != "parquet")
    if source != "parquet" and not s.has_fused_cache:
        raise SystemExit(f"{store}: no fused cache")
    loader = WindowLoader(s, list(range(len(s.titles))), 512, batch, seed=0,
                          read_threads=threads)
    t = time.perf_counter()
    shots = 0
    if source == "recycled":  # what a GPU host's recycled pinned batches see, minus the H2D copy
        buf = torch.empty(batch, 512, s.dims["fused"])
        for step in range(steps):
            shots += int(loader.load(loader.batch_windows(step), out=buf)["lengths"].sum())
    else:
        for _, b in loader.iterate(0, steps, workers=workers):
            shots += int(b["lengths"].sum())
    dt = time.perf_counter() - t
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"shots": s.info.n_shots, "source": source, "workers": workers, "threads": threads,
            "shots_per_s": shots / dt,
            "s_per_batch": dt / steps, "peak_rss_mib": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--fused-dim", type=int, default=2304)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                   help="DataLoader worker processes (0: one read-ahead thread)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="threads reading one batch's windows (fused cache rows only)")
    p.add_argument("--sources", nargs="+", default=["parquet", "cache", "recycled"],
                   choices=["parquet", "cache", "recycled"],
                   help="recycled: the cache read into one reused batch buffer, on the "
                        "calling thread")
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.steps, args.batch, args.workers[0],
                                 args.sources[0], args.threads[0])))
        return
    from mediafm.store import ShotStore, write_fused_cache
    from mediafm.synthetic import write_large_store

    rows = []
    for n in args.sizes:
        store = Path(args.workdir) / f"large-{n}-{args.fused_dim}"
        if not (store / "store.json").exists():
            t = time.perf_counter()
            write_large_store(store, n, args.fused_dim, progress=False)
            print(f"generated {store} in {time.perf_counter() - t:.0f} s")
        if set(args.sources) - {"parquet"} and not ShotStore(store).has_fused_cache:
            t = time.perf_counter()
            write_fused_cache(store, progress=False)
            print(f"cached {store} in {time.perf_counter() - t:.0f} s")
        runs = []  # (source, workers, threads)
        for src in args.sources:
            if src != "recycled":
                runs += [(src, w, 1) for w in args.workers]
            if src != "parquet":  # threads split a batch's cache reads
                runs += [(src, 0, t) for t in args.threads if t > 1 or src == "recycled"]
        for source, w, threads in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(store), "--steps", str(args.steps),
                 "--batch", str(args.batch), "--workers", str(w), "--sources", source,
                 "--threads", str(threads)], check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    import platform

    print(f"machine: {platform.machine()}, fused dim {args.fused_dim}, batch {args.batch} x "
          "512-shot windows")
    print(f"{'shots':>10} {'source':>8} {'workers':>7} {'threads':>7} {'shots/s':>10} "
          f"{'GB/s':>6} {'s/batch':>8} {'peak RSS MiB':>13}")
    for r in rows:
        gbs = r["shots_per_s"] * args.fused_dim * 4 / 1e9
        print(f"{r['shots']:>10} {r['source']:>8} {r['workers']:>7} {r['threads']:>7} "
              f"{r['shots_per_s']:>10.0f} "
              f"{gbs:>6.2f} {r['s_per_batch']:>8.3f} {r['peak_rss_mib']:>13.0f}")


if __name__ == "__main__":
    main()
