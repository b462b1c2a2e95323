"""Training-loader throughput and peak memory on large synthetic stores (100k and 1M shots).

For each size, a fresh process opens the store and pulls batches of 512-shot windows through
``WindowLoader.iterate`` (the training path: plan, part cache, collate, read-ahead thread),
reporting shots/s and peak RSS (the process plus its largest worker). Memory must not grow
with the corpus. ``--workers`` compares the read-ahead thread (0) with DataLoader processes;
each is run reading Parquet and reading the fused cache (``mediafm cache``), side by side,
and the cache is also read into one recycled buffer on the calling thread: that is what the
CUDA path gets (torch recycles its pinned batches), measured without a GPU.

    python benchmarks/loader_throughput.py                       # 100k, fused 2304
    python benchmarks/loader_throughput.py --sizes 100000 1000000  # and 1M (9 GB each source)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script


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
    elif source == "cuda":  # the same into a pinned buffer, then the host-to-device copy
        buf = torch.empty(batch, 512, s.dims["fused"], pin_memory=True)
        for step in range(steps):
            b = loader.load(loader.batch_windows(step), out=buf)
            b["shots"].to("cuda", non_blocking=True)
            torch.cuda.synchronize()
            shots += int(b["lengths"].sum())
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
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    p.add_argument("--fused-dim", type=int, default=2304)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                   help="DataLoader worker processes (0: one read-ahead thread)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="threads reading one batch's windows (fused cache rows only)")
    p.add_argument("--sources", nargs="+", default=["parquet", "cache", "recycled"],
                   choices=["parquet", "cache", "recycled", "cuda"],
                   help="recycled: the cache read into one reused batch buffer, on the "
                        "calling thread; cuda: the same, pinned, plus the copy to the GPU")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--json")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.steps, args.batch, args.workers[0],
                                 args.sources[0], args.threads[0])))
        return
    from mediafm.store import ShotStore, write_fused_cache
    from mediafm.synthetic import write_large_store

    fns, peaks = {}, {}
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
            if src in ("parquet", "cache"):
                runs += [(src, w, 1) for w in args.workers]
            if src != "parquet":  # threads split a batch's cache reads
                runs += [(src, 0, t) for t in args.threads
                         if t > 1 or src in ("recycled", "cuda")]
        for source, w, threads in runs:
            name = f"{n:,} shots, {source}, workers {w}, threads {threads}"

            def one(store=store, source=source, w=w, threads=threads, name=name) -> float:
                out = subprocess.run(
                    [sys.executable, __file__, "--measure", str(store), "--steps",
                     str(args.steps), "--batch", str(args.batch), "--workers", str(w),
                     "--sources", source, "--threads", str(threads)],
                    check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                peaks.setdefault(name, []).append(r["peak_rss_mib"])
                return r["shots_per_s"]
            fns[name] = one
    runs = harness.interleaved(fns, args.repeats, args.warmup)
    result = {"benchmark": "loader_throughput",
              "machine": harness.machine("cuda" if "cuda" in args.sources else "cpu"),
              "fused_dim": args.fused_dim, "batch": args.batch, "steps": args.steps,
              "repeats": args.repeats, "variants": {}, "ratios": {}}
    for name, rates in runs.items():
        result["variants"][name] = {
            "shots_per_s": harness.summary(rates),
            "gb_per_s": harness.summary([r * args.fused_dim * 4 / 1e9 for r in rates]),
            "peak_rss_mib": harness.summary(peaks[name][-args.repeats:])}
    for n in args.sizes:
        base = runs.get(f"{n:,} shots, parquet, workers 0, threads 1")
        for other in ("cache, workers 0, threads 1", "recycled, workers 0, threads 2"):
            if base and f"{n:,} shots, {other}" in runs:
                result["ratios"][f"{n:,} shots: {other} / parquet"] = harness.ratio(
                    runs[f"{n:,} shots, {other}"], base)
    print(render(result))
    suffix = "_cuda" if "cuda" in args.sources else ""
    harness.write(f"loader_throughput{suffix}", result, args.json)


def render(r: dict) -> str:
    rows = [[name, harness.fmt(v["shots_per_s"], ",.0f"), harness.fmt(v["gb_per_s"], ".2f"),
             f"{v['peak_rss_mib']['median']:,.0f}"] for name, v in r["variants"].items()]
    lines = [f"Batches of {r['batch']} × 512-shot windows at fused {r['fused_dim']}, "
             f"{r['steps']} batches a measurement, a fresh process each; {r['repeats']} "
             "interleaved rounds after a warm-up.", "",
             harness.markdown_table(["store, source, workers, threads",
                                     "shots/s median (range)", "GB/s", "peak RSS MiB"], rows),
             ""]
    lines += [f"{name}: {harness.fmt_ratio(x)}." for name, x in r["ratios"].items()]
    return "\n".join([*lines, "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
