"""Fitting task heads: the time for the six built-in tasks at ~1k labelled clips (``--clips``
for other sizes; issue #31 asks for 1k and 10k), and the cross-validated scores it gives.

For each size: a clean synthetic catalog with enough titles (~80 labelled clips a title over
the six tasks), a tiny model (the demo's config) trained briefly on it, and the in-context
clip features embedded once (``heads.clip_features``; its time is reported apart). Then the
six heads are fitted ``--repeats`` times, each in a fresh process: the time (median and
range) and each task's cross-validated score (deterministic). With ``--baseline SRC`` (the
``src`` of another checkout, e.g. a ``git worktree`` of mediafm 0.2) the same features are
fitted by that checkout's code in turns with this one, and the per-round ratio and the
largest score difference are reported. Goal (issue #31): 10k clips x 6 tasks in under
2 minutes, scores within 0.01 of today's.

    python benchmarks/heads_fit.py [--clips 1000 10000] [--repeats 2] [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script

CLIPS_PER_TITLE = 80  # labelled clips a title of the synthetic catalogs (all tasks)
SRC = Path(__file__).parents[1] / "src"


def features(work: Path, clips: int, steps: int, readout: str):
    """(features, labels, tasks, seconds to embed, the catalog's folder) for a catalog of
    ~``clips`` labelled clips, through ``readout`` with the title part."""
    from mediafm.heads import clip_features
    from mediafm.model import MediaFM
    from mediafm.probes import read_labels
    from mediafm.probes.catalog_labels import write_catalog_labels
    from mediafm.store import ShotStore, import_shots
    from mediafm.synthetic import preset, write_catalog
    from mediafm.train import load_run_config, train

    titles = max(8, round(clips / CLIPS_PER_TITLE))
    root = work / f"heads-{titles}"
    if not (root / "run").exists():
        cat = write_catalog(root / "catalog", preset("clean", n_titles=titles, seed=0))
        write_catalog_labels(cat, root / "labels.parquet")
        import_shots(cat["shots"], root / "store", cat["titles"], progress=False)
        model_cfg, train_cfg = load_run_config("tiny", [f"steps={steps}"])
        train(root / "store", root / "run", model_cfg, train_cfg, progress=False, device="cpu")
    labels, tasks = read_labels(root / "labels.parquet", {})
    t = time.perf_counter()
    feats = clip_features(ShotStore(root / "store"), MediaFM.from_pretrained(root / "run"),
                          labels, readout, progress=False)
    return feats, labels, tasks, time.perf_counter() - t, root


def fit_once(features_path: Path, labels_path: Path) -> dict:
    """Fit the six heads once on saved features with the ``mediafm`` on the path: this
    tree's ``heads.fit_heads``, or, where a checkout has none (mediafm 0.2), what its
    ``Heads.fit`` ran per task (the out-of-fold search, then the choice on all clips)."""
    import numpy as np

    from mediafm.probes import read_labels
    from mediafm.probes.linear import Features, choose, out_of_fold, score
    from mediafm.probes.tasks import targets

    data = np.load(features_path)
    feats = Features.of(data["X"], tuple(int(b) for b in data["blocks"]))
    labels, tasks = read_labels(labels_path, {})
    t = time.perf_counter()
    choices = {}  # task -> [alpha, block weights] of the head (checkouts with fit_heads)
    try:
        from mediafm.heads import fit_heads
    except ImportError:
        groups, scores = labels["title_id"].to_numpy(), {}
        for task in tasks:
            idx, y, _ = targets(labels, task)
            sub = feats.subset(idx)
            oof, _ = out_of_fold(sub, y, groups[idx], task.metric,
                                 10 if task.kind == "ranking" else 5)
            choose(sub, y, groups[idx], task.metric)
            scores[task.name] = score(task.metric, y, oof, groups[idx])
    else:
        heads = fit_heads(feats, labels, tasks)
        scores = {n: h.info["cv"]["score"] for n, h in heads.items()}
        choices = {n: [h.info["alpha"], h.info["block_weights"]] for n, h in heads.items()}
    return {"seconds": time.perf_counter() - t, "scores": scores, "choices": choices}


def fit_in(src: Path, features_path: Path, labels_path: Path) -> dict:
    """``fit_once`` in a fresh process running the package at ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, __file__, "--fit", str(features_path),
                          str(labels_path)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"fitting with {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, nargs="+", default=[1000])
    p.add_argument("--steps", type=int, default=60, help="training steps of the tiny model")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--baseline", type=Path, help="the src folder of another checkout to "
                   "fit with beside this one, in turns")
    p.add_argument("--fit", nargs=2, type=Path, help=argparse.SUPPRESS)
    p.add_argument("--readout", help="the features' readout (default: the heads' default)")
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--json")
    args = p.parse_args()
    if args.fit:
        print(json.dumps(fit_once(*args.fit)))
        return
    # here, not at the top: ``--fit`` runs under a baseline checkout that may have no readouts
    from mediafm.readouts import DEFAULT_READOUT, READOUTS

    args.readout = args.readout or DEFAULT_READOUT
    if args.readout not in READOUTS:
        p.error(f"--readout {args.readout!r}: not one of {', '.join(READOUTS)}")
    trees = {"this tree": SRC} | ({"baseline": args.baseline} if args.baseline else {})
    sizes = []
    for clips in args.clips:
        feats, labels, tasks, embed_s, root = features(Path(args.workdir), clips, args.steps,
                                                       args.readout)
        np.savez(root / "features.npz", X=feats.options[""], blocks=np.array(feats.blocks))
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for r in range(args.repeats):
            for name, src in trees.items():
                runs[name].append(fit_in(src, root / "features.npz", root / "labels.parquet"))
                print(f"  {len(labels):,} clips, round {r + 1}, {name}: "
                      f"{runs[name][-1]['seconds']:.1f} s", flush=True)
        size = {"clips": len(labels), "titles": int(labels["title_id"].nunique()),
                "tasks": {t.name: t.metric for t in tasks},
                "dim": int(feats.options[""].shape[1]), "embed_s": embed_s,
                "fit_s": {n: harness.summary([x["seconds"] for x in v])
                          for n, v in runs.items()},
                "scores": {n: v[-1]["scores"] for n, v in runs.items()},
                "choices": {n: v[-1].get("choices", {}) for n, v in runs.items()}}
        if args.baseline:
            size["speedup"] = harness.ratio([x["seconds"] for x in runs["baseline"]],
                                            [x["seconds"] for x in runs["this tree"]])
            size["max_score_diff"] = max(abs(size["scores"]["this tree"][t]
                                             - size["scores"]["baseline"][t])
                                         for t in size["scores"]["baseline"])
            ours, theirs = size["choices"]["this tree"], size["choices"]["baseline"]
            if theirs:  # the final (alpha, block weights) of each head
                size["same_choices"] = sum(ours[t] == theirs[t] for t in theirs)
        sizes.append(size)
    result = {"benchmark": "heads_fit", "machine": harness.machine(), "repeats": args.repeats,
              "readout": args.readout,
              "baseline": str(args.baseline) if args.baseline else None, "sizes": sizes}
    print(render(result))
    harness.write("heads_fit", result, args.json)


def render(r: dict) -> str:
    rows, notes = [], []
    for s in r["sizes"]:
        for name, fit in s["fit_s"].items():
            sc = s["scores"][name]
            rows.append([f"{s['clips']:,} ({s['titles']} titles)", name,
                         harness.fmt(fit, ".1f"),
                         ", ".join(f"{t} {sc[t]:.3f}" for t in s["tasks"] if t in sc)])
        if "speedup" in s:
            notes.append(f"{s['clips']:,} clips: baseline / this tree "
                         f"{harness.fmt_ratio(s['speedup'])}; largest score difference "
                         f"{s['max_score_diff']:.4f}"
                         + (f"; the same final choice (alpha, block weights) on "
                            f"{s['same_choices']} of {len(s['tasks'])} heads"
                            if "same_choices" in s else "") + ".")
    embed = ", ".join(f"{s['embed_s']:.0f} s" for s in r["sizes"])
    readout = r.get("readout", "the default readout then")
    return "\n".join([f"{r['repeats']} rounds per size, each fit in a fresh process; "
                      f"{r['sizes'][0]['dim']} features ({readout} with the title part; "
                      f"embedding them is apart: {embed}).",
                      "", harness.markdown_table(["labelled clips", "tree",
                                                  "fit, 6 tasks (s)", "cross-validated scores"],
                                                 rows), "", *notes, "",
                      harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
