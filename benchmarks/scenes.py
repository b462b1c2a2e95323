"""Scenes against the built-in catalogs' scene labels: change points of the fused vectors and
of the contextual embeddings, and a boundary head.

For each preset (``clean``, ``noisy``) and seed: a 60-title catalog, the ``tiny`` model trained
on it (300 steps), then ``scenes.find_scenes`` over a grid of windows and bars, on the fused
vectors and on the model's contextual readouts; and with a boundary head (``Heads.fit`` on
the first 30 titles' boundary labels, 40 labelled shots a title). Everything is scored on
the other 30 titles. A boundary is right when it is the first shot of a labelled scene
(exact) or within one shot of it; precision, recall and F1 per setting. The window and bar
are chosen on seed 0 and reported on seed 1 (held out).

``--families``: no model, the fused vectors alone, on many catalogs of the family
(``synthetic.draw_spec``: scene lengths of 3 to 20 shots, set-ups, noise; 40 titles a draw).
Every setting of windows (one or several scales, their robust z-scores averaged:
``changepoints.change_strength``) and bar is scored on the tuning draws (0-59); the best
mean F1 (exact) is the default (``changepoints.WINDOWS``, ``changepoints.BAR``), reported
on the held-out draws (100-112) against the single window of two shots it replaced.

    python benchmarks/scenes.py
    python benchmarks/scenes.py --families
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

import harness  # benchmarks/harness.py, beside this script

WINDOWS = ((1,), (2,), (3,), (4,), (1, 2, 4), (1, 2, 4, 8))  # and the default, always
BARS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
# --families: the scales and bars tried on the tuning draws, and the cut before 2026-12-06
FAMILY_SCALES = ((2,), (3,), (4,), (1, 2), (2, 3), (2, 4), (1, 2, 4), (2, 3, 4), (1, 2, 4, 8))
FAMILY_BARS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5)
TUNING, HELD_OUT = range(60), range(100, 113)
SINGLE = ((2,), 1.5)


def scales(windows: tuple[int, ...]) -> str:
    return ",".join(map(str, windows))


def score(found: dict[str, list[int]], truth: dict[str, list[int]], tol: int) -> dict:
    tp = fp = fn = 0
    for t, want in truth.items():
        got = found.get(t, [])
        used = set()
        for g in got:
            match = next((w for w in want if abs(w - g) <= tol and w not in used), None)
            if match is None:
                fp += 1
            else:
                tp += 1
                used.add(match)
        fn += len(want) - len(used)
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9)}


def catalog(preset: str, seed: int, work: Path):
    from mediafm.model import MediaFM
    from mediafm.probes.catalog_labels import write_labelled_catalog
    from mediafm.store import import_shots
    from mediafm.synthetic import preset as spec_of
    from mediafm.train import load_run_config, train

    root = work / f"{preset}-{seed}"
    paths = write_labelled_catalog(root / "catalog", spec_of(preset, n_titles=60, seed=seed))
    store = import_shots(paths["shots"], root / "store", paths["titles"], progress=False)
    if not (root / "run" / "model").is_dir():
        cfg, tc = load_run_config("tiny", ["steps=300", "batch_size=8", f"seed={seed}"])
        train(store.path, root / "run", cfg, tc, progress=False, device="cpu")
    labels = pd.read_parquet(paths["labels"])
    latent = pd.read_parquet(paths["latent"])
    truth = {t: list(np.flatnonzero(np.r_[False, g.sort_values("shot_index").scene.to_numpy()[1:]
                                          != g.sort_values("shot_index").scene.to_numpy()[:-1]]))
             for t, g in latent.groupby("title_id")}
    return store, MediaFM.from_pretrained(root / "run"), truth, labels


def head_scenes(store, model, labels: pd.DataFrame, held: set[str]) -> dict[str, list[int]]:
    """Scene starts from a boundary head fitted on the labels of the titles not ``held``."""
    from mediafm.heads import Heads
    from mediafm.probes.catalog_labels import TASKS
    from mediafm.scenes import find_scenes

    task = [t for t in TASKS if t.kind == "boundary"]
    fit_on = labels[~labels.title_id.isin(held) & labels.boundary.notna()]
    heads = Heads.fit(store, model, fit_on.reset_index(drop=True), task, progress=False)
    frame = find_scenes(store, model, heads, progress=False)
    return {t: g.first_shot.tolist()[1:] for t, g in frame.groupby("title_id") if t in held}


def grid(store, model, truth, labels) -> list[dict]:
    """Every setting, scored on the second half of the titles (the boundary head is fitted
    on the first half's labels)."""
    from mediafm import scenes
    from mediafm.embed import embed_sequences
    from mediafm.scenes import boundaries, change_strength

    titles = sorted(truth)
    truth = {t: truth[t] for t in titles[len(titles) // 2:]}
    emb = store.title_embeddings()
    sources = {"fused": {t: store.title_vectors(t) for t in truth}}
    for readout in ("context", "input+context"):
        sources[f"MediaFM {readout}"] = {
            t: embed_sequences(model, [store.title_vectors(t)], emb[[store.title_row(t)]],
                               readout)[0] for t in truth}
    rows = []
    windows = [*WINDOWS, *([scenes.WINDOWS] if scenes.WINDOWS not in WINDOWS else [])]
    bars = sorted({*BARS, scenes.BAR})
    for (name, vectors), window in itertools.product(sources.items(), windows):
        strength = {t: change_strength(x, window) for t, x in vectors.items()}  # once a bar
        for bar in bars:
            found = {t: boundaries(s, bar, robust=False) for t, s in strength.items()}
            rows.append({"vectors": name, "window": scales(window), "bar": bar,
                         **{f"{k}@{tol}": v for tol in (0, 1)
                            for k, v in score(found, truth, tol).items()}})
    found = head_scenes(store, model, labels, set(truth))
    rows.append({"vectors": "MediaFM boundary head (p ≥ 0.5)", "window": "", "bar": 0.5,
                 **{f"{k}@{tol}": v for tol in (0, 1)
                    for k, v in score(found, truth, tol).items()}})
    return rows


def family_draw(draw: int, titles: int, work: Path) -> list[dict]:
    """Precision, recall and F1 (exact) of every --families setting on one draw's titles."""
    from mediafm.scenes import boundaries, change_strength
    from mediafm.store import ShotStore, import_shots
    from mediafm.synthetic import draw_spec, write_catalog

    root = work / f"draw-{draw}-{titles}"
    if not (root / "store" / "store.json").exists():
        paths = write_catalog(root / "catalog", draw_spec(draw, titles))
        import_shots(paths["shots"], root / "store", paths["titles"], progress=False)
    store = ShotStore(root / "store")
    latent = pd.read_parquet(root / "catalog" / "latent.parquet")
    truth = {t: list(np.flatnonzero(np.diff(g.sort_values("shot_index").scene.to_numpy())) + 1)
             for t, g in latent.groupby("title_id")}
    vectors = {t: store.title_vectors(t) for t in truth}
    spec = draw_spec(draw, titles)
    rows = []
    for windows in FAMILY_SCALES:
        strength = {t: change_strength(x, windows) for t, x in vectors.items()}
        for bar in FAMILY_BARS:
            found = {t: boundaries(s, bar, robust=False) for t, s in strength.items()}
            rows.append({"draw": draw, "scene_shots": spec.scene_shots,
                         "regularity": spec.scene_regularity, "noise": spec.shot_noise,
                         "window": scales(windows), "bar": bar, **score(found, truth, 0)})
    return rows


def families(titles: int, work: Path) -> dict:
    from mediafm.progress import progress_bar

    draws = [*TUNING, *HELD_OUT]
    rows = [r for d in progress_bar(draws, desc="draws", unit="draw")
            for r in family_draw(d, titles, work)]
    return {"families": rows, "titles": titles, "tuning": [min(TUNING), max(TUNING)],
            "held_out": [min(HELD_OUT), max(HELD_OUT)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="clean,noisy")
    p.add_argument("--families", action="store_true", help="the fused cut's windows and bar "
                   "on draws of the catalog family (no model)")
    p.add_argument("--titles", type=int, default=40, help="titles a draw (--families)")
    p.add_argument("--workdir", default="/tmp/mediafm-bench/scenes")
    p.add_argument("--json")
    args = p.parse_args()
    if args.families:
        payload = {"machine": harness.machine(), **families(args.titles, Path(args.workdir))}
        print(render(payload))
        harness.write("scenes_families", payload, args.json)
        return
    runs = {}
    for preset in args.presets.split(","):
        for seed in (0, 1):
            store, model, truth, labels = catalog(preset, seed, Path(args.workdir))
            runs[f"{preset}-{seed}"] = grid(store, model, truth, labels)
            print(f"{preset} seed {seed}: {sum(len(v) for v in truth.values())} boundaries")
    payload = {"machine": harness.machine(), "runs": runs}
    print(render(payload))
    harness.write("scenes", payload, args.json)


def render(d: dict) -> str:
    """The best setting on seed 0 per preset and vectors, and the same setting on seed 1;
    and the shipped default (``scenes.WINDOWS``, ``scenes.BAR``) on the fused vectors. Or,
    for --families, ``render_families``."""
    from mediafm.scenes import BAR, WINDOWS

    if "families" in d:
        return render_families(d)
    default = scales(WINDOWS)
    out = ["| preset | vectors | window, bar | seed 0 F1 exact / ±1 | "
           "seed 1 (held out) P / R / F1 exact | seed 1 F1 ±1 |", "|---|---|---|---|---|---|"]
    presets = sorted({k.rsplit("-", 1)[0] for k in d["runs"]})
    for preset in presets:
        a, b = pd.DataFrame(d["runs"][f"{preset}-0"]), pd.DataFrame(d["runs"][f"{preset}-1"])
        for vectors, g in a.groupby("vectors"):
            best = g.sort_values("f1@0", ascending=False).iloc[0]
            rows = [(best, "best on seed 0: ")]
            if vectors == "fused":
                rows.append((g[(g.window == default) & (g.bar == BAR)].iloc[0], "default: "))
            for r, how in rows:
                h = b[(b.vectors == vectors) & (b.window == r.window) & (b.bar == r.bar)].iloc[0]
                setting = f"{how}{r.window}, {r.bar}" if r.window else "—"
                out.append(f"| {preset} | {vectors} | {setting} | {r['f1@0']:.3f} / "
                           f"{r['f1@1']:.3f} | {h['precision@0']:.3f} / {h['recall@0']:.3f} / "
                           f"{h['f1@0']:.3f} | {h['f1@1']:.3f} |")
    return "\n".join(out) + "\n\n" + harness.machine_line(d["machine"])


def render_families(d: dict) -> str:
    """The settings best on the tuning draws (mean F1), then the shipped default against the
    single window of two shots on each held-out draw."""
    from mediafm.scenes import BAR, WINDOWS

    f = pd.DataFrame(d["families"])
    f["setting"] = f.window + " @ " + f.bar.map(str)
    tune = f[f.draw.between(*d["tuning"])]
    held = f[f.draw.between(*d["held_out"])]
    wide = tune.pivot_table(index="draw", columns="setting", values="f1")
    single = f"{scales(SINGLE[0])} @ {SINGLE[1]}"
    default = f"{scales(WINDOWS)} @ {BAR}"
    best = wide.mean().sort_values(ascending=False)
    shown = [*best.index[:6], *[s for s in (default, single) if s not in best.index[:6]]]
    out = [f"{wide.shape[0]} tuning draws ({d['tuning'][0]}-{d['tuning'][1]}) and "
           f"{held.draw.nunique()} held-out draws ({d['held_out'][0]}-{d['held_out'][1]}) of "
           f"{d['titles']} titles; scene starts found on their shot (exact), change points of "
           "the fused vectors (no model).", "",
           "| windows @ bar | tuning F1, mean | median | worst | draws better / worse than "
           f"{single} |", "|---|---|---|---|---|"]
    for s in shown:
        diff = wide[s] - wide[single]
        mark = " (default)" if s == default else " (before 2026-12-06)" if s == single else ""
        out.append(f"| {s}{mark} | {wide[s].mean():.3f} | {wide[s].median():.3f} | "
                   f"{wide[s].min():.3f} | {(diff > 0.001).sum()} / {(diff < -0.001).sum()} |")
    out += ["", f"| held-out draw | scene shots | regularity | noise | {single}: P / R / F1 | "
            f"{default}: P / R / F1 |", "|---|---|---|---|---|---|"]
    gains = []
    for draw, g in held.groupby("draw"):
        a = g[g.setting == single].iloc[0]
        b = g[g.setting == default].iloc[0]
        gains.append(b.f1 - a.f1)
        out.append(f"| {draw} | {a.scene_shots:.1f} | {a.regularity:.2f} | {a.noise:.2f} | "
                   f"{a.precision:.3f} / {a.recall:.3f} / {a.f1:.3f} | {b.precision:.3f} / "
                   f"{b.recall:.3f} / **{b.f1:.3f}** |")
    gains = np.asarray(gains)
    out += ["", f"Held out: the default better on {(gains > 0.001).sum()} of {len(gains)} draws, "
            f"worse on {(gains < -0.001).sum()}; F1 {gains.mean():+.3f} on average (median "
            f"{np.median(gains):+.3f}, {gains.min():+.3f} to {gains.max():+.3f}).", "",
            harness.machine_line(d["machine"])]
    return "\n".join(out)


if __name__ == "__main__":
    main()
