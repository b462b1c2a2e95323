"""The explorer under load on the loopback address, and a 2,000-shot title page.

A store of 2,000-shot titles (fused 256) with thumbnails and precomputed predictions for six
tasks (as ``mediafm serve --pred`` gets them), served by uvicorn on 127.0.0.1. Measured,
interleaved: the title page of a 2,000-shot title cold (first request) and warm (cached); and
a bounded mixed load: ``--requests`` requests from ``--clients`` concurrent clients (title
pages, thumbnails, searches, catalog pages), p50 / p99 per round. Goal: a 2,000-shot title
answers in under 200 ms; no errors under load.

    python benchmarks/serve_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import harness  # benchmarks/harness.py, beside this script

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def build(work: Path, titles: int, shots: int) -> tuple[Path, Path]:
    from PIL import Image

    from mediafm.store import ShotStore
    from mediafm.store.thumbs import write_thumbs
    from mediafm.synthetic import write_large_store

    store = work / f"serve-{titles}x{shots}"
    pred = work / f"serve-{titles}x{shots}-pred.parquet"
    if not (store / "thumbs").exists():
        write_large_store(store, titles * shots, 256, shots_per_title=shots, progress=False)
        s = ShotStore(store)
        rng = np.random.default_rng(0)

        def jpeg(i: int) -> bytes:
            buf = io.BytesIO()
            Image.new("RGB", (192, 108), tuple(int(x) for x in rng.integers(0, 255, 3))).save(
                buf, format="JPEG", quality=80)
            return buf.getvalue()

        write_thumbs(s, [(t, [jpeg(i) for i in range(n)])
                         for t, n in zip(s.titles.title_id, s.titles.n_shots, strict=True)])
        tasks = {"genre": ("multilabel", 11), "tone": ("multilabel", 12),
                 "clip_worthy": ("binary", 1), "popularity": ("ranking", 1),
                 "ad_relevancy": ("multilabel", 12), "boundary": ("boundary", 1)}
        frames = []
        for t, n in zip(s.titles.title_id, s.titles.n_shots, strict=True):
            for task, (_, k) in tasks.items():
                labels = [task] if k == 1 else [f"{task}-{j}" for j in range(k)]
                frames.append(pd.DataFrame({
                    "title_id": t, "shot_index": np.repeat(np.arange(n), k),
                    "task": task, "label": np.tile(labels, n),
                    "score": rng.random(n * k).astype(np.float32)}))
        from mediafm import artifacts

        artifacts.write("predictions", pd.concat(frames), pred,
                        store=artifacts.store_stamp(s),
                        tasks={t: {"kind": k} for t, (k, _) in tasks.items()})
    return store, pred


def main() -> None:
    import httpx
    from test_serve import Server, load, mixed_paths

    from mediafm.serve.app import create_app
    from mediafm.serve.catalog import Catalog

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--titles", type=int, default=10)
    p.add_argument("--shots", type=int, default=2000)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--json")
    args = p.parse_args()
    store, pred = build(Path(args.workdir), args.titles, args.shots)
    catalog = Catalog(store, pred=str(pred))
    big = catalog.titles["title_id"].iloc[0]
    loads: list[dict] = []
    with Server(create_app(catalog)) as url, httpx.Client(base_url=url, timeout=60) as http:
        def cold() -> float:
            catalog.cache.clear()
            return harness.timed(lambda: http.get(f"/api/titles/{big}").raise_for_status())

        def warm() -> float:
            http.get(f"/api/titles/{big}")
            return harness.timed(lambda: http.get(f"/api/titles/{big}").raise_for_status())

        def mixed() -> float:
            t = time.perf_counter()
            lat, codes = asyncio.run(load(url, mixed_paths(catalog, args.requests, len(loads)),
                                          args.clients))
            wall = time.perf_counter() - t
            loads.append({"p50_ms": float(np.percentile(lat, 50)) * 1000,
                          "p99_ms": float(np.percentile(lat, 99)) * 1000,
                          "errors": sum(c != 200 for c in codes), "n": len(codes),
                          "requests_per_s": len(codes) / wall})
            return loads[-1]["p99_ms"]

        runs = harness.interleaved({"title page, cold": cold, "title page, warm": warm,
                                    "mixed load p99": mixed}, args.repeats, args.warmup)
        size = len(http.get(f"/api/titles/{big}").content)
    kept = loads[-args.repeats:]
    result = {"benchmark": "serve_load", "machine": harness.machine(), "titles": args.titles,
              "shots_per_title": args.shots, "requests": args.requests,
              "clients": args.clients, "repeats": args.repeats, "title_page_bytes": size,
              "title_page_ms": {k: harness.summary([x * 1000 for x in runs[k]])
                                for k in ("title page, cold", "title page, warm")},
              "load": {key: harness.summary([r[key] for r in kept])
                       for key in ("p50_ms", "p99_ms", "requests_per_s")},
              "errors": sum(r["errors"] for r in kept)}
    print(render(result))
    harness.write("serve_load", result, args.json)


def render(r: dict) -> str:
    t, lo = r["title_page_ms"], r["load"]
    return "\n".join([
        f"{r['titles']} titles of {r['shots_per_title']:,} shots with thumbnails and six "
        f"tasks' predictions; {r['repeats']} interleaved rounds after a warm-up.", "",
        harness.markdown_table(["measurement", "median (range)"], [
            [f"title page of {r['shots_per_title']:,} shots, cold (ms)",
             harness.fmt(t["title page, cold"], ".0f")],
            ["the same, cached (ms)", harness.fmt(t["title page, warm"], ".1f")],
            [f"mixed load, {r['requests']:,} requests from {r['clients']} clients: p50 (ms)",
             harness.fmt(lo["p50_ms"], ".1f")],
            ["… p99 (ms)", harness.fmt(lo["p99_ms"], ".1f")],
            ["… requests/s", harness.fmt(lo["requests_per_s"], ".0f")]]), "",
        f"Errors under load: {r['errors']}. Title page: {r['title_page_bytes'] / 1024:,.0f} "
        "KiB of JSON.", "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
