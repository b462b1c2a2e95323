"""Training-loader throughput and peak memory on large synthetic stores (100k and 1M shots).

For each size, a fresh process opens the store and pulls batches of 512-shot windows through
``WindowLoader.iterate`` (the training path: plan, part cache, collate, read-ahead thread),
reporting shots/s and the process's peak RSS. Memory must not grow with the corpus.

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


def measure(store: str, steps: int, batch: int) -> dict:
    import resource

    from mediafm.sequences import WindowLoader
    from mediafm.store import ShotStore

    s = ShotStore(store)
    loader = WindowLoader(s, list(range(len(s.titles))), 512, batch, seed=0)
    t = time.perf_counter()
    shots = 0
    for _, b in loader.iterate(0, steps):
        shots += int(b["lengths"].sum())
    dt = time.perf_counter() - t
    return {"shots": s.info.n_shots, "shots_per_s": shots / dt, "s_per_batch": dt / steps,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--fused-dim", type=int, default=2304)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.steps, args.batch)))
        return
    from mediafm.synthetic import write_large_store

    rows = []
    for n in args.sizes:
        store = Path(args.workdir) / f"large-{n}-{args.fused_dim}"
        if not (store / "store.json").exists():
            t = time.perf_counter()
            write_large_store(store, n, args.fused_dim, progress=False)
            print(f"generated {store} in {time.perf_counter() - t:.0f} s")
        out = subprocess.run([sys.executable, __file__, "--measure", str(store), "--steps",
                              str(args.steps), "--batch", str(args.batch)], check=True,
                             capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    import platform

    print(f"machine: {platform.machine()}, fused dim {args.fused_dim}, batch {args.batch} x "
          "512-shot windows, one loader thread")
    print(f"{'shots':>10} {'shots/s':>10} {'s/batch':>8} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['shots']:>10} {r['shots_per_s']:>10.0f} {r['s_per_batch']:>8.3f} "
              f"{r['peak_rss_mib']:>13.0f}")


if __name__ == "__main__":
    main()
