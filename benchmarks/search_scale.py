"""Search at catalog scale: 10M shots in the compressed index ``mediafm index`` builds.

The vectors have the structure of a trained model's: a ``tiny`` model is trained on a noisy
synthetic catalog (60 titles, 300 steps, as the scenes benchmark does) and embeds it in
context; generated titles are then made of its real scenes, kept whole and in order (the
in-title deviation of each shot from its title's mean), under a new title mean drawn from a
Gaussian with the covariance of the real title means, plus fresh shot noise at 0.2 of the
real shot residuals' covariance. Titles are ten times the catalog's (~2,000 shots), so 10M
shots are ~5,000 titles. The nearest-neighbour cosines of the real vectors and of as many
generated ones are printed side by side as a check of that likeness.

Then, each step in its own process so its memory is its own: ``mediafm index`` builds the
index (``--kind ivfpq``, what auto chooses over 2 GiB of vectors: OPQ + IVF-PQ with exact
re-ranking from a memory-mapped ``vectors.npy``); a fresh process loads it and answers
``--rounds`` rounds of ``--queries`` single "shots like this shot" queries by key
(``Index.search``, the path the CLI and the explorer take), the same shots again for their
nearest shots in other titles only (``other_titles``: FAISS leaves the title's ids out as it
scans, at the depth the build tuned for it), and reports its memory (peak, anonymous, and
file pages mapped); recall@10 is against exact search over the same vectors.
Goal: 10M shots in < 6 GB of RAM at p99 < 20 ms and recall@10 >= 0.95.

    python benchmarks/search_scale.py                  # 10M x 256 (~20 GB of disk, ~25 min)
    python benchmarks/search_scale.py --n 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import harness  # benchmarks/harness.py, beside this script

HERE = Path(__file__).parent


def trained_vectors(work: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(unit-normed in-context shot embeddings of a trained tiny model, keys with scene)."""
    from scenes import catalog  # benchmarks/scenes.py: a trained model on a labelled catalog

    from mediafm.artifacts import read
    from mediafm.embed import embed_store

    store, model, _, _ = catalog("noisy", 0, work)
    out = work / "noisy-0" / "shot_embeddings.parquet"
    if not out.exists():
        embed_store(model, store, out, progress=False)
    emb = read(out)
    x = emb.vectors().astype(np.float32)
    latent = pd.read_parquet(work / "noisy-0" / "catalog" / "latent.parquet")
    keys = emb.frame().merge(latent[["title_id", "shot_index", "scene"]],
                             on=["title_id", "shot_index"])
    return x / np.linalg.norm(x, axis=1, keepdims=True), keys


class Generator:
    """Titles made of the trained model's scenes (see the module docstring)."""

    def __init__(self, x: np.ndarray, keys: pd.DataFrame, scale: int = 10, noise: float = 0.2):
        title = keys.groupby("title_id", sort=False).ngroup().to_numpy()
        means = np.zeros((title.max() + 1, x.shape[1]))
        np.add.at(means, title, x)
        means /= np.bincount(title)[:, None]
        self.dev = (x - means[title]).astype(np.float32)
        self.grand = means.mean(0).astype(np.float32)
        self.title_factor = _factor(means - self.grand)
        scene = keys.groupby(["title_id", "scene"], sort=False).ngroup().to_numpy()
        self.starts = np.flatnonzero(np.r_[True, scene[1:] != scene[:-1]])
        self.ends = np.r_[self.starts[1:], len(scene)]
        self.shot_factor = noise * _factor(self.dev - _scene_means(self.dev, scene))
        self.lengths = np.bincount(title) * scale

    def title(self, rng: np.random.Generator) -> np.ndarray:
        n = int(rng.choice(self.lengths))
        rows = []
        while len(rows) < n:
            s = rng.integers(len(self.starts))
            rows.extend(range(self.starts[s], self.ends[s]))
        dim = self.dev.shape[1]
        x = (self.grand + rng.standard_normal(dim, dtype=np.float32) @ self.title_factor
             + self.dev[rows[:n]] + rng.standard_normal((n, dim), dtype=np.float32)
             @ self.shot_factor)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def _factor(z: np.ndarray) -> np.ndarray:
    """F with (N(0, I) @ F) of the covariance of the rows of z."""
    w, v = np.linalg.eigh(z.T @ z / len(z))
    return (v * np.sqrt(np.clip(w, 0, None))).T.astype(np.float32)


def _scene_means(x: np.ndarray, scene: np.ndarray) -> np.ndarray:
    sums = np.zeros((scene.max() + 1, x.shape[1]))
    np.add.at(sums, scene, x)
    return (sums / np.bincount(scene)[:, None])[scene].astype(np.float32)


def neighbour_cosines(x: np.ndarray) -> dict:
    """Median cosine to the 1st and 10th nearest other vector."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    d, _ = index.search(x, 11)
    return {"nn1": float(np.median(d[:, 1])), "nn10": float(np.median(d[:, 10]))}


def write_embeddings(gen: Generator, n: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mediafm.store import vector_array

    rng = np.random.default_rng(0)
    schema = pa.schema([("title_id", pa.string()), ("shot_index", pa.int32()),
                        ("embedding", pa.list_(pa.float32(), gen.dev.shape[1]))])
    tmp = path.with_suffix(".tmp")
    done, t = 0, 0
    with pq.ParquetWriter(tmp, schema) as w:
        while done < n:
            x = gen.title(rng)[: n - done]
            w.write_table(pa.table({"title_id": [f"g{t:06d}"] * len(x),
                                    "shot_index": np.arange(len(x), dtype=np.int32),
                                    "embedding": vector_array(x)}, schema=schema))
            done, t = done + len(x), t + 1
    tmp.rename(path)


def serve_queries(index_dir: str, rounds: int, queries: int, out: str) -> None:
    """In its own process: load the index, answer the queries, report times and memory."""
    from mediafm.search import Index

    t = time.perf_counter()
    index = Index.load(index_dir)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(len(index.keys), size=queries, replace=False))
    asked = index.keys.iloc[rows][["title_id", "shot_index"]].to_numpy()
    t = time.perf_counter()
    index.row(*asked[0])  # the key lookup is made on the first search by key
    lookup_s = time.perf_counter() - t
    times, found, other_times, other_found = [], [], [], []
    for r in range(rounds + 1):  # the first: pages of codes and vectors first mapped
        for other, into in ((False, times), (True, other_times)):
            lat = []
            for title, shot in asked:
                t = time.perf_counter()
                index.search(title, int(shot), k=10, other_titles=other)
                lat.append(time.perf_counter() - t)
            if r or not other:
                into.append(lat)
    for other, into in ((False, found), (True, other_found)):
        for title, shot in asked:
            hits = index.search(title, int(shot), k=10, other_titles=other)
            into.append([index.row(a, int(b)) for a, b in zip(hits.title_id, hits.shot_index,
                                                             strict=True)])
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text()
                  .splitlines() if ":" in line)
    mib = {k: int(status[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")}
    Path(out).write_text(json.dumps({"load_s": load_s, "first_lookup_s": lookup_s,
                                     "cold": times[0], "times": times[1:],
                                     "rows": rows.tolist(), "found": found,
                                     "other_times": other_times, "other_found": other_found,
                                     "memory_mib": mib}))


def run_watched(cmd: list[str]) -> float:
    """Run ``cmd``; the most anonymous memory (MiB) it held, sampled every 0.2 s (its peak
    RSS also counts the pages of the memory-mapped vectors.npy it writes, which the kernel
    can drop)."""
    proc = subprocess.Popen(cmd)
    most = 0.0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            most = max(most, int(status.split("RssAnon:")[1].split()[0]) / 1024)
        except (OSError, IndexError):
            pass
        time.sleep(0.2)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return most


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000_000)
    p.add_argument("--queries", type=int, default=200, help="single queries a round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workdir", default="/tmp/mediafm-bench/search-scale")
    p.add_argument("--keep", action="store_true", help="keep the embeddings and the index")
    p.add_argument("--serve-queries", nargs=3, metavar=("INDEX", "OUT", "QUERIES"),
                   help=argparse.SUPPRESS)
    p.add_argument("--json")
    args = p.parse_args()
    if args.serve_queries:
        index_dir, out, queries = args.serve_queries
        return serve_queries(index_dir, args.rounds, int(queries), out)
    import faiss

    from mediafm.search import exact_top

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    real, keys = trained_vectors(work)
    gen = Generator(real, keys)
    rng = np.random.default_rng(2)
    like = np.concatenate([Generator(real, keys, scale=1).title(rng) for _ in range(60)])
    likeness = {"real": neighbour_cosines(real), "generated": neighbour_cosines(like)}
    emb = work / f"emb-{args.n}.parquet"
    t = time.perf_counter()
    if not emb.exists():
        write_embeddings(gen, args.n, emb)
    generate_s = time.perf_counter() - t
    index_dir = work / f"index-{args.n}"
    t = time.perf_counter()
    build_anon = run_watched([sys.executable, "-m", "mediafm", "index", "--embeddings",
                              str(emb), "--out", str(index_dir), "--kind", "ivfpq"])
    build_s = time.perf_counter() - t
    build_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out = work / "queries.json"
    subprocess.run([sys.executable, __file__, "--rounds", str(args.rounds), "--serve-queries",
                    str(index_dir), str(out), str(args.queries)], check=True, cwd=HERE)
    served = json.loads(out.read_text())
    vectors = np.load(index_dir / "vectors.npy", mmap_mode="r")
    rows = np.array(served["rows"])
    truth = exact_top(vectors, np.ascontiguousarray(vectors[rows]), 11)
    recall = float(np.mean([len(set(f) & (set(t) - {r})) / 10 for f, t, r in
                            zip(served["found"], truth, rows, strict=True)]))
    # other titles: the 10 nearest shots of other titles are among the 10 + title length
    titles = pd.factorize(pd.read_parquet(index_dir / "keys.parquet",
                                          columns=["title_id"]).title_id)[0]
    near = exact_top(vectors, np.ascontiguousarray(vectors[rows]),
                     10 + int(np.bincount(titles).max()))
    other_recall = float(np.mean([len(set(f) & set(n[titles[n] != titles[r]][:10])) / 10
                                  for f, n, r in zip(served["other_found"], near, rows,
                                                     strict=True)]))
    meta = json.loads((index_dir / "index.json").read_text())
    lat = [np.array(r) * 1000 for r in served["times"]]
    other_lat = [np.array(r) * 1000 for r in served["other_times"]]
    sizes = {f.name: f.stat().st_size for f in index_dir.iterdir() if f.is_file()}
    result = {"benchmark": "search_scale", "machine": harness.machine(), "n": args.n,
              "dim": int(vectors.shape[1]), "titles": int(pd.read_parquet(
                  index_dir / "keys.parquet", columns=["title_id"]).title_id.nunique()),
              "faiss": faiss.__version__, "likeness": likeness, "generate_s": generate_s,
              "build_s": build_s, "build_peak_rss_mib": build_peak,
              "build_peak_anon_mib": build_anon,
              "cold_p50_ms": float(np.percentile(served["cold"], 50) * 1000),
              "cold_p99_ms": float(np.percentile(served["cold"], 99) * 1000),
              "index": meta["index"],
              "bytes": sizes, "load_s": served["load_s"],
              "first_lookup_s": served["first_lookup_s"], "memory_mib": served["memory_mib"],
              "queries": args.queries, "rounds": args.rounds,
              "p50_ms": harness.summary([float(np.percentile(r, 50)) for r in lat]),
              "p99_ms": harness.summary([float(np.percentile(r, 99)) for r in lat]),
              "recall_at_10": recall,
              "other_titles": {
                  "p50_ms": harness.summary([float(np.percentile(r, 50)) for r in other_lat]),
                  "p99_ms": harness.summary([float(np.percentile(r, 99)) for r in other_lat]),
                  "recall_at_10": other_recall}}
    print(render(result))
    harness.write("search_scale", result, args.json)
    if not args.keep:
        emb.unlink()
        shutil.rmtree(index_dir)


def _other_rows(r: dict) -> list[list[str]]:
    """The rows of "shots like this one in other titles" (``--other-titles``), when run."""
    o, idx = r.get("other_titles"), r["index"]
    if not o:
        return []
    return [["other titles only (`other_titles`): p50 / p99 ms",
             f"{harness.fmt(o['p50_ms'], '.2f')} / {harness.fmt(o['p99_ms'], '.2f')}"],
            ["other titles only: recall@10 against exact search",
             f"**{o['recall_at_10']:.3f}** (nprobe {idx.get('nprobe_other_titles', '-')}; "
             f"build's own sample: {idx.get('recall_at_10_other_titles', float('nan')):.3f})"]]


def render(r: dict) -> str:
    idx, mem, gib = r["index"], r["memory_mib"], 2**30
    like = r["likeness"]
    return "\n".join([
        f"{r['n']:,} shot embeddings ({r['dim']}-d, {r['titles']:,} titles made of a trained "
        f"tiny model's scenes), FAISS {r['faiss']}; {r['rounds']} rounds of {r['queries']} "
        "single queries by key (`Index.search`) in a fresh process, after a first round "
        "reported apart.", "",
        harness.markdown_table(["what", "measured"], [
            ["index", f"{idx['type']} (nlist {idx['nlist']}, {idx['bytes_per_vector']} B a "
                      f"vector, nprobe {idx['nprobe']}, re-rank {idx['rerank']})"],
            ["build (`mediafm index`, one process)",
             f"{r['build_s'] / 60:.1f} min; peak anonymous memory "
             f"{r['build_peak_anon_mib'] / 1024:.1f} GiB (peak RSS with the pages of the "
             f"vectors it writes {r['build_peak_rss_mib'] / 1024:.1f} GiB)"],
            ["on disk: codes / exact vectors / keys",
             f"{r['bytes']['index.faiss'] / gib:.2f} / {r['bytes']['vectors.npy'] / gib:.1f} / "
             f"{r['bytes']['keys.parquet'] / gib:.2f} GiB"],
            ["load; first search by key (builds the key lookup)",
             f"{r['load_s']:.1f} s; {r['first_lookup_s']:.1f} s"],
            ["query process: peak RSS / anonymous / file pages",
             f"{mem['VmHWM'] / 1024:.2f} / {mem['RssAnon'] / 1024:.2f} / "
             f"{mem['RssFile'] / 1024:.2f} GiB"],
            ["first round after loading (pages first mapped; the page cache still warm "
             "from the build): p50 / p99 ms",
             f"{r['cold_p50_ms']:.2f} / {r['cold_p99_ms']:.2f}"],
            ["p50 ms (range over rounds)", harness.fmt(r["p50_ms"], ".2f")],
            ["p99 ms (range over rounds)", harness.fmt(r["p99_ms"], ".2f")],
            ["recall@10 against exact search", f"**{r['recall_at_10']:.3f}** (build's own "
                                               f"sample: {idx['recall_at_10']:.3f})"],
            *_other_rows(r)]), "",
        f"Likeness of the generated vectors: median cosine to the nearest / 10th nearest other "
        f"shot, real {like['real']['nn1']:.3f} / {like['real']['nn10']:.3f}, generated "
        f"{like['generated']['nn1']:.3f} / {like['generated']['nn10']:.3f} (as many shots).",
        "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
