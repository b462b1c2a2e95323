"""Does context win? Catalog presets x seeds x training recipes -> the probe table.

For every (preset, seed): a synthetic catalog (``mediafm.synthetic.PRESETS``), its store and
labels, and the probe scores of every baseline (single modalities, fused, the moving average
over +-k shots with k chosen by inner CV, the title mean). For every recipe: ``mediafm train
--config tiny`` with the recipe's overrides, then the probe scores of MediaFM clip-only and in
context (each readout). Results go to a JSON file (one record per preset, seed, method, task),
appended as runs finish, so an interrupted benchmark resumes, and a method added to the suite
since a run is probed alone (the trained models stay in the workdir); the table is printed from
it.

    python benchmarks/context_quality.py                      # every preset, seed, recipe
    python benchmarks/context_quality.py --presets noisy --seeds 0 --recipes default,rope
    python benchmarks/context_quality.py --table              # print the table of the JSON
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from mediafm.probes.features import (
    BASELINES,
    CLIP_ONLY,
    HIDDEN,
    IN_CONTEXT,
    WITH_TITLE,
    WITH_TITLE_METADATA,
    WITH_TITLE_POSITION,
)
from mediafm.readouts import DEFAULT_READOUT, readout_stamp, recorded_cut

import harness  # benchmarks/harness.py, beside this script

# name -> --set overrides on top of the tiny config; the levers of the context issue
# (every recipe measured before dropout 0.1 became tiny's default names dropout=0, every one
# measured before tiny's attn_dropout=0 names attn_dropout=0.1, and every one measured before
# the title clock became tiny's default, 2026-12-07, is given title_clock=false below)
_BEFORE_CLOCK: dict[str, list[str]] = {
    "spec (learned positions)": ["positions=learned", "crop=0", "mask_ratio=0.2", "dropout=0"],
    "max_shots 128": ["positions=learned", "crop=0", "mask_ratio=0.2", "max_shots=128",
                      "dropout=0"],
    "warm-up 75% at 128": ["positions=learned", "crop=0", "mask_ratio=0.2", "short_steps=0.75",
                           "dropout=0"],
    "rope": ["positions=rope", "crop=0", "mask_ratio=0.2", "dropout=0"],
    "alibi": ["positions=alibi", "crop=0", "mask_ratio=0.2", "dropout=0"],
    "rope + crop": ["positions=rope", "crop=0.5", "mask_ratio=0.2", "dropout=0"],
    "alibi + crop": ["positions=alibi", "crop=0.5", "mask_ratio=0.2", "dropout=0"],
    "rope + crop + span 3": ["positions=rope", "crop=0.5", "mask_ratio=0.2", "mask_span=3",
                             "dropout=0"],
    "rope + crop + keep 10%": ["positions=rope", "crop=0.5", "mask_ratio=0.2", "mask_keep=0.1",
                               "dropout=0"],
    "rope + crop + unmasked x0.2": ["positions=rope", "crop=0.5", "mask_ratio=0.2",
                                    "unmasked_loss=0.2", "dropout=0"],
    "rope + crop + dropout 0.1": ["positions=rope", "crop=0.5", "mask_ratio=0.2",
                                  "dropout=0.1"],
    "rope + crop + hidden 256": ["positions=rope", "crop=0.5", "mask_ratio=0.2", "hidden=256",
                                 "dropout=0"],
    "alibi + crop + mask 0.4": ["positions=alibi", "crop=0.5", "mask_ratio=0.4", "dropout=0"],
    "rope + crop + mask 0.4 (no dropout)": ["dropout=0"],
    "no dropout + fused readout": ["dropout=0", "readout=fused+context"],
    "no dropout + 1200 steps": ["dropout=0", "steps=1200"],
    "tiny default (rope + crop + mask 0.4 + dropout 0.1)": ["attn_dropout=0.1"],
    "tiny default + 1200 steps": ["attn_dropout=0.1", "steps=1200"],
    # from here on, tiny has no attention dropout (attn_dropout=0: same loss, 1.8x faster)
    "no title clock": [],  # tiny's default until 2026-12-07 (its records: "tiny default")
    "title clock + jitter 0.05": ["title_clock=true", "clock_jitter=0.05"],
    "keep noise 1 (mask 0.5 + keep 0.2)": ["mask_ratio=0.5", "mask_keep=0.2", "keep_noise=1.0"],
    "keep noise 1 (mask 0.5 + keep 0.2) + hidden readout": [
        "mask_ratio=0.5", "mask_keep=0.2", "keep_noise=1.0", "readout=input+context+hidden"],
    "tiny default + hidden readout": ["readout=input+context+hidden"],
    "tiny default + fused readout": ["readout=fused+context"],
}
RECIPES: dict[str, list[str]] = {
    **{name: o if any(x.startswith("title_clock=") for x in o) else [*o, "title_clock=false"]
       for name, o in _BEFORE_CLOCK.items()},
    # from here on, tiny has the title clock (its records until then: "title clock")
    "tiny default": [],  # its readout with the change block since 2026-12-08
    # the default readout until then (its records were "tiny default"; the change block's,
    # measured on 2026-12-08 as "tiny default + change readout", are "tiny default" since)
    "tiny default before the change block": [
        "readout=input+context+visible+ahead+scene-fused+scene+title"],
}
assert not any("," in name for name in RECIPES), "--recipes is comma-separated"

# The probe that scored a record (``probe`` in the JSON). Scores of different probes are not
# compared: a run resumes, and the tables are printed, from the current probe's records only.
# (none): the first sweep (one eigendecomposition per candidate); "cholesky, early stop"
# (``probe_sweep``, 2026-12-01); "coordinate search": block weights moved both ways and
# revisited until a pass changes nothing (2026-12-02); "coordinate search, weight 0": the same
# with a weight of 0 (a block dropped) in the grid, and MediaFM's title part holding the fused
# mean (``embed.title_part``) (2026-12-02). Kept since: the faster solves of 2026-12-05 (the
# same predictions but for round-off) and the walk over alphas (``linear.walk``: the sweep's
# choice wherever the score is unimodal in alpha; the same choices on the heads benchmark).
PROBE = "coordinate search, weight 0"
# The probe seeds of a record (``probe_seeds``): records of other seeds are not compared either.
# Records before 2026-12-05 name none and were probed with `make bench-quality`'s 0, 1; three
# hand runs of that day took the option's default then, 0, 1, 2, and are marked so.
PROBE_SEEDS = (0, 1)


# The readout of a record that names none: its recipe's, or the default before the records
# named it (2026-12-04), when the default became input+context+visible.
LEGACY_READOUT = "input+context"


def current(records: list[dict], probe_seeds: tuple[int, ...] = PROBE_SEEDS) -> list[dict]:
    """The records scored by the current probe over ``probe_seeds``, MediaFM's through the
    readout its recipe reads out now, its scenes cut as now (so the scores of an older default
    readout are not shown as the new one's)."""
    def readout_now(recipe: str) -> str:
        return split_recipe(RECIPES[recipe])[1] or DEFAULT_READOUT

    def readout_then(r: dict) -> str:
        return r.get("readout") or split_recipe(RECIPES[r["recipe"]])[1] or LEGACY_READOUT

    def now(r: dict) -> bool:
        readout = readout_now(r["recipe"])
        return readout_then(r) == readout and recorded_cut(
            {**r, "readout": readout}) == recorded_cut(readout_stamp(readout))

    return [r for r in records if r.get("probe") == PROBE
            and tuple(r.get("probe_seeds", PROBE_SEEDS)) == tuple(probe_seeds)
            and (r["recipe"] not in RECIPES or now(r))]


def split_recipe(overrides: list[str]) -> tuple[list[str], str]:
    """(training overrides, readout): ``readout=NAME`` picks the embedding readout the probes
    use; recipes with the same training overrides share one trained model."""
    readout = [o.split("=", 1)[1] for o in overrides if o.startswith("readout=")]
    return [o for o in overrides if not o.startswith("readout=")], (readout or [""])[-1]


def prepare(work: Path, preset: str, seed: int, titles: int):
    """The catalog, store and labels of (preset, seed), built once."""
    from mediafm.probes import read_labels
    from mediafm.probes.catalog_labels import write_catalog_labels
    from mediafm.store import ShotStore, import_shots
    from mediafm.synthetic import preset as catalog_preset
    from mediafm.synthetic import write_catalog

    d = work / f"{preset}-{seed}"
    if not (d / "store" / "store.json").exists():
        spec = catalog_preset(preset, seed=seed, n_titles=titles)
        paths = write_catalog(d / "catalog", spec)
        import_shots(paths["shots"], d / "store", paths["titles"], progress=False)
        write_catalog_labels(paths, d / "catalog" / "labels.parquet", spec.clip_shots)
    labels, tasks = read_labels(d / "catalog" / "labels.parquet")
    return d, ShotStore(d / "store"), labels, tasks


def probe_rows(store, labels, tasks, model, baselines: bool, probe_seeds, readout: str = "",
               done: frozenset[str] = frozenset()) -> list[dict]:
    """Probe rows of every method the suite has for this model (or the baselines), except the
    methods in ``done``; the probes run side by side, one process per core."""
    from mediafm.probes.features import method_features
    from mediafm.probes.linear import ProbeJob, default_workers, probe_jobs
    from mediafm.probes.tasks import targets

    feats = method_features(store, labels, model, baselines, readout=readout)
    groups = labels["title_id"].to_numpy()
    jobs, keys = [], []
    for task in tasks:
        idx, y, _ = targets(labels, task)
        folds = 10 if task.kind == "ranking" else 5
        for method, X in feats.items():
            if method not in done:
                jobs.append(ProbeJob(X, idx, y, groups[idx], task.metric, folds, probe_seeds))
                keys.append({"task": task.name, "metric": task.metric, "method": method})
    return [{**key, "score": r.mean, "std": r.std, "choice": r.chosen_option()}
            for key, r in zip(keys, probe_jobs(jobs, default_workers()), strict=True)]


def run(args) -> None:
    from mediafm.model import MediaFM

    out = Path(args.json)
    records = json.loads(out.read_text()) if out.exists() else []
    done: dict[tuple, set[str]] = {}
    for r in current(records, args.probe_seeds):
        done.setdefault((r["preset"], r["seed"], r["recipe"]), set()).add(r["method"])
    work = Path(args.workdir)
    info = {**harness.machine(), "probe": PROBE, "probe_seeds": list(args.probe_seeds)}

    def save(new: list[dict]) -> None:
        records.extend(new)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, out)

    for preset in args.presets:
        for seed in args.seeds:
            d, store, labels, tasks = prepare(work, preset, seed, args.titles)
            common = {"preset": preset, "seed": seed, "n_shots": store.info.n_shots, **info}
            have = frozenset(done.get((preset, seed, "baselines"), ()))
            if not set(BASELINES) <= have:
                t = time.perf_counter()
                rows = probe_rows(store, labels, tasks, None, True, args.probe_seeds, done=have)
                print(f"{preset} seed {seed}: baselines probed in {time.perf_counter() - t:.0f} s")
                save([{**common, "recipe": "baselines", **r} for r in rows])
            for recipe in args.recipes:
                have = frozenset(done.get((preset, seed, recipe), ()))
                if have and not (set(METHODS) - have):
                    continue
                overrides, readout = split_recipe(RECIPES[recipe])
                run_dir, val, train_s = trained(d, store, [*overrides, f"seed={seed}",
                                                           *args.set])
                run_info = json.loads((run_dir / "run.json").read_text())
                model = MediaFM.from_pretrained(run_dir)
                rows = probe_rows(store, labels, tasks, model, False, args.probe_seeds, readout,
                                  have)
                best = run_info.get("best", {})
                print(f"{preset} seed {seed} {recipe}: trained in {train_s:.0f} s; "
                      f"{run_info.get('summary', '')}")
                save([{**common, "recipe": recipe, **readout_stamp(readout or DEFAULT_READOUT),
                       "train_s": train_s,
                       "best_step": best.get("step"), "val_loss": best.get("model/loss"),
                       "final_val_loss": val.get("model/loss"),
                       "window_mean_loss": val.get("window_mean/loss"),
                       "neighbour_mean_loss": val.get("neighbour_mean/loss"), **r}
                      for r in rows])
    print(table(current(records, args.probe_seeds)))


def trained(d: Path, store, overrides: list[str]) -> tuple[Path, dict, float]:
    """(run folder, validation losses, training seconds) of ``mediafm train --config tiny``
    with ``overrides`` on the store of ``d``: trained once, then reused by every readout and
    benchmark that asks for the same configs."""
    from mediafm.model import MediaFMConfig
    from mediafm.train import load_run_config, train

    model_cfg, train_cfg = load_run_config("tiny", overrides)
    # keyed by the resolved configs, not the overrides: a changed tiny default must not reuse
    # a model trained under the old one
    key = json.dumps([asdict(MediaFMConfig(**model_cfg)), asdict(train_cfg)], sort_keys=True)
    run_dir = d / "runs" / hashlib.sha1(key.encode()).hexdigest()[:12]
    stamp = run_dir / "benchmark_key.json"
    if stamp.exists() and stamp.read_text() == key:
        saved = json.loads((run_dir / "val.json").read_text())
        return run_dir, saved["val"], saved["train_s"]
    shutil.rmtree(run_dir, ignore_errors=True)
    t = time.perf_counter()
    val = train(store.path, run_dir, model_cfg, train_cfg, progress=False, device="cpu")
    train_s = time.perf_counter() - t
    (run_dir / "val.json").write_text(json.dumps({"val": val, "train_s": train_s}))
    stamp.write_text(key)
    return run_dir, val, train_s


OURS = (IN_CONTEXT, WITH_TITLE, WITH_TITLE_POSITION, WITH_TITLE_METADATA)
METHODS = (*OURS, CLIP_ONLY, HIDDEN)


def _cell(scores: pd.Series, spread: bool) -> str:
    text = f"{scores.mean():.3f}"
    return text + (f" ±{(scores.max() - scores.min()) / 2:.3f}" if spread else "")


def table(records: list[dict]) -> str:
    """Markdown per preset: every baseline, then each recipe's MediaFM methods, per task.

    Scores are means over catalog seeds; "±" is half the range over seeds when there are
    several. The best baseline of each task is marked with *.
    """
    frame = pd.DataFrame(records)
    if frame.empty:
        return "(no results)"
    lines = []
    for preset, p in frame.groupby("preset", sort=False):
        seeds = sorted(p["seed"].unique())
        multi = len(seeds) > 1
        tasks = list(dict.fromkeys(p["task"]))
        lines += [f"### preset `{preset}` (catalog seeds {', '.join(map(str, seeds))}; "
                  f"{int(p.groupby('seed')['n_shots'].first().mean()):,} shots a catalog)",
                  ""]
        base = p[p["recipe"] == "baselines"]
        means = base.groupby(["method", "task"])["score"].mean().unstack()
        best = means.idxmax(axis=0)
        lines += ["| method | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for method in dict.fromkeys(base["method"]):
            cells = [_cell(base[(base.method == method) & (base.task == t)]["score"], multi)
                     + ("*" if best[t] == method else "") for t in tasks]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        for recipe, r in p[p["recipe"] != "baselines"].groupby("recipe", sort=False):
            ran = sorted(r["seed"].unique())
            label = recipe if len(ran) == len(seeds) else (
                f"{recipe} (seed{'s' if len(ran) > 1 else ''} {', '.join(map(str, ran))} only)")
            for method in METHODS:
                sub = r[r["method"] == method]
                if len(sub):
                    cells = [_cell(sub[sub.task == t]["score"], len(ran) > 1) for t in tasks]
                    lines.append(f"| {label}: {method.replace('MediaFM ', '')} | "
                                 + " | ".join(cells) + " |")
            if len(ran) < len(seeds):  # compare it with the baselines of the same catalogs
                same = base[base["seed"].isin(ran)].groupby(["method", "task"])["score"].mean()
                cells = [f"{same.unstack()[t].max():.3f}" for t in tasks]
                lines.append(f"| best baseline on seed{'s' if len(ran) > 1 else ''} "
                             f"{', '.join(map(str, ran))} | " + " | ".join(cells) + " |")
        runs = p[p["recipe"] != "baselines"].drop_duplicates(["recipe", "seed"])
        if len(runs):
            lines += ["", "| recipe | seed | best val loss (step) | window mean | neighbour mean "
                      "| train s |", "|---|---|---|---|---|---|"]
            lines += [f"| {r.recipe} | {r.seed} | {r.val_loss:.4f} ({r.best_step:.0f}) | "
                      f"{r.window_mean_loss:.4f} | {r.neighbour_mean_loss:.4f} | "
                      f"{r.train_s:.0f} |" for r in runs.itertuples()]
        lines.append("")
    machines = frame.drop_duplicates(["cpu", "cores", "torch", "threads"])
    days = sorted({d[:10] for d in frame["date"]})
    lines.append("Machines (each record names its own): " + "; ".join(
        f"{m.cpu}, {m.cores} cores, torch {m.torch} ({m.threads} threads)"
        for m in machines.itertuples()) + f"; {', '.join(days)}.")
    return "\n".join(lines)


def summary(records: list[dict], recipe: str) -> str:
    """The README's table for one recipe: per preset and task, the best baseline (by its mean
    over catalog seeds), MediaFM (the best of in context, + title, + title + position and
    + title + metadata, each beside its naive counterpart among the baselines) and clip-only;
    ± is half the range over catalog seeds, a bold MediaFM score beats the best baseline."""
    frame = pd.DataFrame(records)
    lines = ["| preset | task (metric) | best baseline | its score | MediaFM (best of) | "
             "clip-only |", "|---|---|---|---|---|---|"]
    for preset, p in frame.groupby("preset", sort=False):
        base, mine = p[p["recipe"] == "baselines"], p[p["recipe"] == recipe]
        if mine.empty:
            continue
        base = base[base["seed"].isin(mine["seed"].unique())]
        for task in dict.fromkeys(mine["task"]):
            b = base[base.task == task].groupby("method")["score"]
            m = mine[(mine.task == task) & mine.method.isin(OURS)].groupby("method")["score"]
            best_b, best_m = b.mean().idxmax(), m.mean().idxmax()
            score_b, score_m = b.mean()[best_b], m.mean()[best_m]
            rel = "" if score_m >= score_b else f" (**{(score_m - score_b) / abs(score_b):+.2%}**)"
            cell = _cell(mine[(mine.task == task) & (mine.method == best_m)]["score"], True)
            lines.append(
                f"| {preset} | {task} ({mine[mine.task == task]['metric'].iloc[0]}) | "
                f"{best_b.replace('fused, ', '')} | "
                f"{_cell(base[(base.task == task) & (base.method == best_b)]['score'], True)} | "
                + (f"**{cell}**" if not rel else cell + rel)
                + f" {best_m.replace(IN_CONTEXT, '').strip() or 'in context'} | "
                f"{_cell(mine[(mine.task == task) & (mine.method == CLIP_ONLY)]['score'], False)}"
                " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="clean,noisy", type=lambda s: s.split(","))
    p.add_argument("--seeds", default="0,1", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--recipes", default=",".join(RECIPES),
                   type=lambda s: [r for r in s.split(",") if r])
    p.add_argument("--titles", type=int, default=100)
    p.add_argument("--probe-seeds", default=",".join(map(str, PROBE_SEEDS)),
                   type=lambda s: tuple(int(x) for x in s.split(",")))
    p.add_argument("--set", action="append", default=[], help="extra overrides for every run")
    p.add_argument("--workdir", default="/tmp/mediafm-context")
    p.add_argument("--json", default=str(harness.RESULTS / "context_quality.json"))
    p.add_argument("--table", action="store_true", help="only print the table of --json")
    p.add_argument("--summary", metavar="RECIPE",
                   help="only print the README's table of one recipe of --json")
    args = p.parse_args()
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {unknown}; known: {list(RECIPES)}")
    if args.table or args.summary:
        records = current(json.loads(Path(args.json).read_text()), args.probe_seeds)
        print(summary(records, args.summary) if args.summary else table(records))
        return
    run(args)


if __name__ == "__main__":
    main()
