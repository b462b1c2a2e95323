"""The probes at the demo's size: every method x the six tasks on an 8-title catalog (the
demo's, ~640 labelled clips), where the inner folds have fewer rows than columns and the
search solves every alpha in the kernel form, thousands of small solves and scores.

A clean synthetic catalog of ``--titles`` titles, a tiny model trained ``--steps`` steps,
and every method's clip features computed once (``probes.features.method_features``). Then
the probes (one seed, five folds, ten for ranking: ``mediafm demo``'s) run ``--repeats``
times, each in a fresh process on one math thread. With ``--baseline SRC`` (the ``src`` of
another checkout) the same features are probed by that checkout's code in turns with this
one: the per-round ratio, how many of the probes made the same choices in every fold, and
the largest score difference.

    python benchmarks/probe_speed.py [--titles 8] [--repeats 2] [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script

SRC = Path(__file__).parents[1] / "src"


def features(root: Path, titles: int, steps: int) -> Path:
    """The pickled (features, labels, tasks) of every method on a ``titles``-title catalog."""
    from mediafm.model import MediaFM
    from mediafm.probes import read_labels
    from mediafm.probes.catalog_labels import write_labelled_catalog
    from mediafm.probes.features import method_features
    from mediafm.store import import_shots
    from mediafm.synthetic import preset
    from mediafm.train import load_run_config, train

    out = root / "features.pkl"
    if out.exists():
        return out
    paths = write_labelled_catalog(root / "catalog", preset("clean", n_titles=titles, seed=0))
    store = import_shots(paths["shots"], root / "store", paths["titles"], progress=False)
    model_cfg, train_cfg = load_run_config("tiny", [f"steps={steps}"])
    train(store.path, root / "run", model_cfg, train_cfg, progress=False, device="cpu")
    labels, tasks = read_labels(paths["labels"])
    feats = method_features(store, labels, MediaFM.from_pretrained(root / "run"))
    with open(out.with_suffix(".tmp"), "wb") as f:
        pickle.dump((feats, labels, tasks), f)
    os.replace(out.with_suffix(".tmp"), out)
    return out


def probe_once(path: Path) -> dict:
    """Every (task, method) probe once, one thread, with the ``mediafm`` on the path."""
    from threadpoolctl import threadpool_limits

    from mediafm.probes.linear import probe
    from mediafm.probes.tasks import targets

    with open(path, "rb") as f:
        feats, labels, tasks = pickle.load(f)
    groups = labels["title_id"].to_numpy()
    results = {}
    with threadpool_limits(1):
        t = time.perf_counter()
        for task in tasks:
            idx, y, _ = targets(labels, task)
            folds = 10 if task.kind == "ranking" else 5
            for method, X in feats.items():
                r = probe(X.subset(idx), y, groups[idx], task.metric, folds, (0,))
                results[f"{task.name} / {method}"] = [r.mean, [str(c) for c in r.choices]]
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "results": results}


def probe_in(src: Path, path: Path) -> dict:
    """``probe_once`` in a fresh process running the package at ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--probe", str(path)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"probing with {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--titles", type=int, default=8)
    p.add_argument("--steps", type=int, default=100, help="training steps of the tiny model")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--baseline", type=Path, help="the src folder of another checkout to "
                   "probe with beside this one, in turns")
    p.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--json")
    args = p.parse_args()
    if args.probe:
        print(json.dumps(probe_once(args.probe)))
        return
    path = features(Path(args.workdir) / f"probes-{args.titles}", args.titles, args.steps)
    trees = {"this tree": SRC} | ({"baseline": args.baseline} if args.baseline else {})
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for r in range(args.repeats):
        for name, src in trees.items():
            runs[name].append(probe_in(src, path))
            print(f"  round {r + 1}, {name}: {runs[name][-1]['seconds']:.1f} s", flush=True)
    ours = runs["this tree"][-1]["results"]
    result = {"benchmark": "probe_speed", "machine": harness.machine(),
              "repeats": args.repeats, "titles": args.titles, "probes": len(ours),
              "baseline": str(args.baseline) if args.baseline else None,
              "probe_s": {n: harness.summary([x["seconds"] for x in v])
                          for n, v in runs.items()}}
    if args.baseline:
        theirs = runs["baseline"][-1]["results"]
        result["speedup"] = harness.ratio([x["seconds"] for x in runs["baseline"]],
                                          [x["seconds"] for x in runs["this tree"]])
        result["same_choices"] = sum(ours[k][1] == theirs[k][1] for k in theirs)
        result["max_score_diff"] = max(abs(ours[k][0] - theirs[k][0]) for k in theirs)
    print(render(result))
    harness.write("probe_speed", result, args.json)


def render(r: dict) -> str:
    rows = [[name, harness.fmt(s, ".1f")] for name, s in r["probe_s"].items()]
    notes = []
    if "speedup" in r:
        notes.append(f"baseline / this tree {harness.fmt_ratio(r['speedup'])}; the same choices "
                     f"in every fold on {r['same_choices']} of {r['probes']} probes; largest "
                     f"score difference {r['max_score_diff']:.1e}.")
    return "\n".join([f"{r['probes']} probes (every method x six tasks, one seed) on a clean "
                      f"catalog of {r['titles']} titles, one thread; {r['repeats']} rounds, "
                      "each in a fresh process, the trees in turns.", "",
                      harness.markdown_table(["tree", "probes (s)"], rows), "", *notes, "",
                      harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
