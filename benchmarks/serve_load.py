"""The explorer under load, as a team sees it: `mediafm serve` in its own process on the
loopback address, clients in another.

A store of 2,000-shot titles (fused 256) with thumbnails and precomputed predictions for six
tasks (as ``mediafm serve --pred`` gets them). Each round starts a fresh server and measures:
the title page of every title on first request (cold: read, predictions pivoted, moments
found, encoded) and again (cached); then a bounded mixed load: ``--requests`` requests (title
pages, thumbnails, searches, catalog pages, as a person browsing asks for them) from each of
``--clients`` concurrent-client counts, p50 / p99. With ``--baseline SRC`` (the ``src`` of
another checkout, e.g. a ``git worktree`` of an older commit) the two servers run in turns,
round by round, and the per-round ratios are reported. Goal (issue #31): p99 < 250 ms at 50
clients on 2 cores; no errors.

    python benchmarks/serve_load.py [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

import harness  # benchmarks/harness.py, beside this script

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
SRC = Path(__file__).parents[1] / "src"


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


class ServerProcess:
    """``mediafm serve`` from the package at ``src``, on a free loopback port, in its own
    process (the clients' work does not share its interpreter); stopped on exit."""

    def __init__(self, src: Path, store: Path, pred: Path, workers: int = 1):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.args = [sys.executable, "-m", "mediafm", "-q", "serve", "--store", str(store),
                     "--pred", str(pred), "--port", str(self.port)] + (
                         ["--workers", str(workers)] if workers > 1 else [])
        self.env = {**os.environ, "PYTHONPATH": str(src)}

    def __enter__(self) -> str:
        import httpx

        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/healthz").raise_for_status()
                return url
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise SystemExit(f"the server {' '.join(self.args)} did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def one_round(src: Path, store: Path, pred: Path, titles: pd.DataFrame, args, seed: int,
              workers: int = 1) -> dict:
    """A fresh server: every title page cold, then cached, the first search (which loads the
    vectors it searches), then the mixed load per client count; latencies in ms. With more
    than one worker, every worker is warmed (pages made, vectors loaded) before the load:
    the load measures them serving, not starting."""
    import httpx
    from test_serve import load, mixed_paths

    out: dict = {}
    with ServerProcess(src, store, pred, workers) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        ids = titles["title_id"].tolist()
        for key in ("cold", "cached"):
            out[key] = [1000 * harness.timed(
                lambda t=t: http.get(f"/api/titles/{t}").raise_for_status()) for t in ids]
        first = f"/api/search?title={ids[0]}&shot=0&k=10&other_titles=true"
        out["first_search"] = 1000 * harness.timed(lambda: http.get(first).raise_for_status())
        r = http.get(f"/api/titles/{ids[0]}", headers={"accept-encoding": "identity"})
        sent = http.get(f"/api/titles/{ids[0]}", headers={"accept-encoding": "gzip"})
        out["bytes"] = len(r.content)
        out["bytes_sent"] = int(sent.headers.get("content-length", len(r.content)))
        # the requests above went over one connection to one worker: warm the others too,
        # over a few connections each (the kernel hands each connection to one worker)
        if workers > 1:
            for _ in range(4 * workers):
                with httpx.Client(base_url=url, timeout=60) as other:
                    for t in ids:
                        other.get(f"/api/titles/{t}").raise_for_status()
                    other.get(first).raise_for_status()
        for clients in args.clients:
            paths = mixed_paths(SimpleNamespace(titles=titles), args.requests, seed)
            t = time.perf_counter()
            lat, codes = asyncio.run(load(url, paths, clients, timeout_s=600))
            wall = time.perf_counter() - t
            out[str(clients)] = {"p50_ms": float(np.percentile(lat, 50)) * 1000,
                            "p99_ms": float(np.percentile(lat, 99)) * 1000,
                            "requests_per_s": len(codes) / wall,
                            "errors": sum(c != 200 for c in codes)}
    return out


def main() -> None:
    from mediafm.store import ShotStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--titles", type=int, default=10)
    p.add_argument("--shots", type=int, default=2000)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, nargs="+", default=[50, 200])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--baseline", type=Path, help="the src folder of another checkout to "
                   "measure beside this one")
    p.add_argument("--workers", type=int, default=1, help="this tree's server processes")
    p.add_argument("--baseline-workers", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--json")
    args = p.parse_args()
    store, pred = build(Path(args.workdir), args.titles, args.shots)
    titles = ShotStore(store).titles[["title_id", "n_shots"]]
    trees = {"this tree": (SRC, args.workers)} | (
        {"baseline": (args.baseline, args.baseline_workers)} if args.baseline else {})
    rounds: dict[str, list[dict]] = {name: [] for name in trees}
    for r in range(args.warmup + args.repeats):
        for name, (src, workers) in trees.items():
            got = one_round(src, store, pred, titles, args, seed=r, workers=workers)
            if r >= args.warmup:
                rounds[name].append(got)
            print(f"round {r + 1}: {name}: " + ", ".join(
                f"{c} clients p99 {got[str(c)]['p99_ms']:.0f} ms" for c in args.clients),
                flush=True)
    result = {"benchmark": "serve_load", "machine": harness.machine(), "titles": args.titles,
              "shots_per_title": args.shots, "requests": args.requests,
              "clients": args.clients, "repeats": args.repeats,
              "baseline": str(args.baseline) if args.baseline else None,
              "workers": {"this tree": args.workers, "baseline": args.baseline_workers},
              "trees": {name: summarise(rs, args.clients) for name, rs in rounds.items()}}
    if args.baseline:
        result["p99_ratio"] = {str(c): harness.ratio(
            [x[str(c)]["p99_ms"] for x in rounds["baseline"]],
            [x[str(c)]["p99_ms"] for x in rounds["this tree"]]) for c in args.clients}
    print(render(result))
    harness.write("serve_load", result, args.json)


def summarise(rounds: list[dict], clients: list[int]) -> dict:
    """Medians with ranges over rounds (page times: each round's median over the titles)."""
    return {"cold_ms": harness.summary([float(np.median(x["cold"])) for x in rounds]),
            "cached_ms": harness.summary([float(np.median(x["cached"])) for x in rounds]),
            "first_search_ms": harness.summary([x["first_search"] for x in rounds]),
            "bytes": rounds[-1]["bytes"], "bytes_sent": rounds[-1]["bytes_sent"],
            "load": {str(c): {k: harness.summary([x[str(c)][k] for x in rounds])
                              for k in ("p50_ms", "p99_ms", "requests_per_s")} for c in clients},
            "errors": sum(x[str(c)]["errors"] for x in rounds for c in clients)}


def render(r: dict) -> str:
    rows = []
    workers = r.get("workers") or {}
    for tree, t in r["trees"].items():
        name = tree + (f", {workers[tree]} workers" if workers.get(tree, 1) > 1 else "")
        rows.append([name, "title page of 2,000 shots, cold (ms)", harness.fmt(t["cold_ms"],
                                                                             ".0f")])
        rows.append([name, "the same, cached (ms)", harness.fmt(t["cached_ms"], ".1f")])
        rows.append([name, "first search after start (ms)",
                     harness.fmt(t["first_search_ms"], ".0f")])
        rows.append([name, "title page: JSON / sent (KiB)",
                     f"{t['bytes'] / 1024:,.0f} / {t['bytes_sent'] / 1024:,.0f}"])
        for c in r["clients"]:
            lo = t["load"][str(c)]
            rows.append([name, f"{r['requests']:,} mixed requests, {c} clients: p50 / p99 (ms)",
                         f"{harness.fmt(lo['p50_ms'], '.0f')} / "
                         f"{harness.fmt(lo['p99_ms'], '.0f')}"])
            rows.append([name, f"… {c} clients: requests/s",
                         harness.fmt(lo["requests_per_s"], ".0f")])
        rows.append([name, "errors under load", str(t["errors"])])
    lines = [f"{r['titles']} titles of {r['shots_per_title']:,} shots with thumbnails and six "
             f"tasks' predictions; `mediafm serve` in its own process, a fresh one per round; "
             f"{r['repeats']} rounds after a warm-up" + (", the two trees in turns" if
                                                          r.get("baseline") else "") + ".", "",
             harness.markdown_table(["server", "measurement", "median (range)"], rows)]
    if r.get("p99_ratio"):
        lines += ["", "p99, baseline / this tree (per round): " + "; ".join(
            f"{c} clients {harness.fmt_ratio(x)}" for c, x in r["p99_ratio"].items())]
    return "\n".join([*lines, "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
