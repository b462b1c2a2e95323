"""Does context win on catalogs nobody tuned for? Draws from the catalog family -> the share won.

Each draw is a synthetic catalog whose structure is drawn at random (``synthetic.draw_spec``:
scene lengths and their regularity, per-shot noise against the scene signal, share of long
titles, shot / reverse-shot alternation, share of shots with text, how tone moves across
scenes, drift, clip lengths). On each: a ``tiny`` model trained with the default recipe
(``--set`` overrides it), then the clip probes of every task for MediaFM's plain mean-pooled
in-context embedding (the default readout) and for every naive baseline (single modalities,
fused, moving average ±k with k chosen by cross-validation, title mean, both). Reported per
task: the share of draws where MediaFM beats the best naive baseline, and the median margin
with its range.

Draws 0-99 are for choosing defaults; report on fresh ones (``--first 100``, the default).
Results are appended to the JSON as each draw finishes, so a rerun resumes. A variant is the
training overrides (``--set``) and the readout (``--readout``); another readout of a recipe
already trained reuses its models, and a draw's baselines, once probed, are reused by every
variant (same catalog, same probe): a readout costs seconds a draw, not a training run.
Variants that change only steps, width (``hidden``) or catalog size (``--titles``) make the
scaling curve (``scaling``). ``--position`` adds, beside the table, the naive baseline that
also knows the clip's place in its title on the two tasks that follow the story arc
(``POSITION_AWARE``, ``ARC_TASKS``), which MediaFM's plain embedding is not given, and
MediaFM given the same place and its title part (``PAIRED``, as the presets' suite pairs them).

    python benchmarks/context_families.py                       # 8 held-out draws
    python benchmarks/context_families.py --position --titles 240
    python benchmarks/context_families.py --draws 4 --first 0   # the tuning set
    python benchmarks/context_families.py --draws 4 --first 0 --set mask_span=3
    python benchmarks/context_families.py --draws 4 --first 0 --readout input+context+hidden
    python benchmarks/context_families.py --draws 4 --first 0 --titles 240 --set steps=1200
    python benchmarks/context_families.py --table               # the table of the JSON
    python benchmarks/context_families.py --table --chance      # ... with chance where missing
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mediafm.changepoints import LEGACY_CUT
from mediafm.probes.features import (
    AVERAGE_AND_TITLE,
    AVERAGE_TITLE_POSITION,
    CHANGE,
    FUSED,
    IN_CONTEXT,
    MODALITY_BASELINES,
    MOVING_AVERAGE,
    TITLE_MEAN,
    WITH_TITLE_POSITION,
)
from mediafm.readouts import DEFAULT_READOUT, READOUTS, readout_stamp, recorded_cut

import harness  # benchmarks/harness.py, beside this script

LEGACY_READOUT = "input+context"  # what records from before --readout used (the default then)
SCALING_READOUT = LEGACY_READOUT  # the readout every point of the scaling curve was measured with
# The draws the variants' tables compare on: those this readout (the default of 2026-12-05/06)
# was measured on at 60 titles with its scenes cut as then, every tuning and held-out one.
ANCHOR_READOUT = "input+context+visible+ahead+scene-input+scene"
# Records of models trained before the title clock became tiny's default (2026-12-07) name
# title_clock=false among their overrides (the anchor's and the scaling curve's among them).
NO_CLOCK = "title_clock=false"
NAIVE = (*MODALITY_BASELINES, FUSED, MOVING_AVERAGE, TITLE_MEAN, AVERAGE_AND_TITLE, CHANGE)
# Not a baseline (never the best naive one): each task's score of a prediction that says
# nothing, the floor every margin stands on (``chance_records``).
CHANCE = "chance (the same score for every clip)"
SCENE_TASKS = ("tone", "clip_worthy", "popularity", "ad_relevancy", "boundary")
# Clip-worthiness and popularity follow the story arc: the naive baseline that also knows the
# clip's place in its title sets their bar (as in the presets' suite). MediaFM's plain
# embedding is not given that place, so it is reported beside the table, not in NAIVE, and
# so is its pair: MediaFM in context with the title part and the same position beside it.
POSITION_AWARE = AVERAGE_TITLE_POSITION
PAIRED = WITH_TITLE_POSITION
ARC_TASKS = ("clip_worthy", "popularity")
SCORE_KEYS = ("task", "metric", "method", "score", "std")  # what a probe record scores


def run_draw(work: Path, draw: int, titles: int, overrides: list[str],
             probe_seeds: tuple[int, ...], readout: str, known: list[dict]) -> list[dict]:
    """Probe rows of one draw: MediaFM in context (through ``readout``) and every naive
    baseline, per task. ``known``: the draw's baseline rows from an earlier variant (the same
    catalog and probe), reused instead of probed again; the baselines they lack are probed."""
    from mediafm.embed import embed_clips, readout_blocks
    from mediafm.model import MediaFM
    from mediafm.probes.features import Features, fused_blocks
    from mediafm.probes.linear import ProbeJob, default_workers, probe_jobs
    from mediafm.probes.tasks import targets
    from mediafm.synthetic import draw_spec
    from mediafm.train import load_run_config, train

    spec = draw_spec(draw, titles)
    d = work / f"draw-{draw}"
    store, labels, tasks = draw_store(d, spec)
    model_cfg, train_cfg = load_run_config("tiny", [f"seed={draw}", *overrides])
    done = d / "run" / "trained.json"  # a rerun after a failure later on reuses the model
    if done.exists():
        val, train_s = json.loads(done.read_text()).values()
    else:
        shutil.rmtree(d / "run", ignore_errors=True)  # a training killed part way
        t = time.perf_counter()
        val = train(store.path, d / "run", model_cfg, train_cfg, progress=False, device="cpu")
        train_s = time.perf_counter() - t
        done.write_text(json.dumps({"val": val, "train_s": train_s}))
    # the model written is the run's best by validation loss; ``val`` is its last evaluation
    best = json.loads((d / "run" / "run.json").read_text()).get("best") or {}
    model = MediaFM.from_pretrained(d / "run").eval()
    frame = embed_clips(model, store, labels, "in-context", readout, progress=False)
    feats = naive_features(store, labels, {r["method"] for r in known})
    feats[IN_CONTEXT] = Features.of(np.stack(frame["embedding"].to_list()), readout_blocks(
        model, readout, fused_blocks(store)))
    groups = labels["title_id"].to_numpy()
    jobs, keys = [], []
    for task in tasks:
        idx, y, _ = targets(labels, task)
        for method, x in feats.items():
            jobs.append(ProbeJob(x, idx, y, groups[idx], task.metric,
                                 10 if task.kind == "ranking" else 5, probe_seeds))
            keys.append({"task": task.name, "metric": task.metric, "method": method})
    common = {"draw": draw, "spec": asdict(spec), "n_shots": store.info.n_shots,
              "scene_cut": scene_cut(readout),
              "train_s": train_s, "val_loss": val.get("model/loss"),
              "neighbour_mean_loss": val.get("neighbour_mean/loss"),
              "window_mean_loss": val.get("window_mean/loss"),
              "best_val_loss": best.get("model/loss"), "best_step": best.get("step"),
              "overrides": overrides,
              "readout": readout, "probe_seeds": list(probe_seeds)}
    reused = [{**common, **{k: r[k] for k in SCORE_KEYS}}
              for r in known]
    return reused + [{**common, **r} for r in chance_records(labels, tasks)] + [
        {**common, **key, "score": r.mean, "std": r.std}
        for key, r in zip(keys, probe_jobs(jobs, default_workers()), strict=True)]


def draw_store(d: Path, spec) -> tuple:
    """(store, labels, tasks) of a draw's catalog in ``d``, written there first if missing."""
    from mediafm.probes import read_labels
    from mediafm.probes.catalog_labels import write_labelled_catalog
    from mediafm.store import ShotStore, import_shots

    if not (d / "store" / "store.json").exists():
        paths = write_labelled_catalog(d / "catalog", spec)
        import_shots(paths["shots"], d / "store", paths["titles"], progress=False)
    return (ShotStore(d / "store"), *read_labels(d / "catalog" / "labels.parquet"))


def naive_features(store, labels, have: set[str]) -> dict:
    """The features of the ``NAIVE`` baselines not in ``have`` (only the change baseline's
    when that alone is missing: the rest cost a moving average at four widths)."""
    from mediafm.probes.features import baseline_features, change_features

    missing = [m for m in NAIVE if m not in have]
    if missing == [CHANGE]:
        return {CHANGE: change_features(store, labels)}
    return {m: f for m, f in baseline_features(store, labels).items() if m in missing}


def add_baselines(records: list[dict], work: Path, probe_seeds: tuple[int, ...]
                  ) -> Iterator[list[dict]]:
    """Rows of the ``NAIVE`` baselines that a draw of ``records`` lacks (one added to the
    suite later: ``CHANGE``), probed once a draw on its catalog (written again from the
    recorded spec in ``work`` where no run left it there) and copied to every variant of
    the draw, as every variant carries its draw's baselines. Yields each draw's rows."""
    from mediafm.probes.linear import ProbeJob, default_workers, probe_jobs
    from mediafm.probes.tasks import targets
    from mediafm.synthetic import CatalogSpec

    groups: dict[tuple[int, int], list[dict]] = {}
    for r in records:
        groups.setdefault((r["spec"]["n_titles"], r["draw"]), []).append(r)
    for (titles, draw), got in sorted(groups.items()):
        have = {r["method"] for r in got if r["method"] in NAIVE}
        if set(NAIVE) <= have or IN_CONTEXT not in {r["method"] for r in got}:
            continue
        t = time.perf_counter()
        spec = CatalogSpec(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in got[0]["spec"].items()})
        d = work / variant_dir([], titles) / f"draw-{draw}"
        store, labels, tasks = draw_store(d, spec)
        groups_ = labels["title_id"].to_numpy()
        jobs, keys = [], []
        for method, x in naive_features(store, labels, have).items():
            for task in tasks:
                idx, y, _ = targets(labels, task)
                jobs.append(ProbeJob(x, idx, y, groups_[idx], task.metric,
                                     10 if task.kind == "ranking" else 5, probe_seeds))
                keys.append({"task": task.name, "metric": task.metric, "method": method})
        scores = [{**k, "score": r.mean, "std": r.std}
                  for k, r in zip(keys, probe_jobs(jobs, default_workers()), strict=True)]
        variants = {variant(r): r for r in got if r["method"] == IN_CONTEXT}
        yield [{**{k: v for k, v in r.items() if k not in SCORE_KEYS}, **sc}
               for r in variants.values() for sc in scores]
        print(f"{titles} titles, draw {draw}: {', '.join(sorted(set(NAIVE) - have))} probed "
              f"for {len(variants)} variant(s), {time.perf_counter() - t:.0f} s", flush=True)


def chance_records(labels, tasks) -> list[dict]:
    """Each task's score of a prediction that says nothing (one score for every clip),
    through the probes' own metric: an AP's is the share of positives (micro: of all labels;
    macro: the mean over labels), a within-title Kendall tau's is 0.

    Why: a margin near the floor is not a margin. At 60 titles the best score on boundary is
    within a few hundredths of this on most draws, and where no method is above it the "best
    naive baseline" is the luckiest of seven guesses (measured: ``lift`` in the tables)."""
    from mediafm.probes.linear import score
    from mediafm.probes.tasks import targets

    groups = labels["title_id"].to_numpy()
    out = []
    for task in tasks:
        idx, y, _ = targets(labels, task)
        s = score(task.metric, y, np.zeros(y.shape), groups[idx])
        out.append({"task": task.name, "metric": task.metric, "method": CHANCE,
                    "score": float(s) if np.isfinite(s) else 0.0, "std": 0.0})
    return out


def add_chance(records: list[dict]) -> list[dict]:
    """``CHANCE`` records for every (variant, draw) of ``records`` that has MediaFM's scores
    but none: each draw's labels made again from its recorded spec (no store, no training,
    no probe: seconds a draw), the rest of each record copied from that variant's."""
    from mediafm.probes.catalog_labels import TASKS, make_labels
    from mediafm.synthetic import CatalogSpec, make_catalog

    have = {(variant(r), r["draw"]) for r in records if r["method"] == CHANCE}
    lacking: dict[tuple, dict] = {}
    for r in records:
        if r["method"] == IN_CONTEXT and (variant(r), r["draw"]) not in have:
            lacking.setdefault((variant(r), r["draw"]), r)
    floors: dict[str, list[dict]] = {}
    rows = []
    for r in lacking.values():
        spec = json.dumps(r["spec"], sort_keys=True)
        if spec not in floors:
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in r["spec"].items()}
            cat = CatalogSpec(**fields)
            _, titles, latent = make_catalog(cat)
            floors[spec] = chance_records(make_labels(latent, titles, clip_shots=cat.clip_shots),
                                          TASKS)
        rows += [{**{k: v for k, v in r.items() if k not in SCORE_KEYS}, **c}
                 for c in floors[spec]]
    return rows


def scene_cut(readout: str) -> str:
    """How ``readout``'s scene blocks cut a title into scenes now (``windows@bar``; "" for a
    readout without one)."""
    return recorded_cut(readout_stamp(readout))


def variant(record: dict) -> tuple[tuple[str, ...], str, int, str]:
    """(training overrides, readout, titles a catalog, scene cut) of a record; records before
    readouts were varied used ``input+context``, the default then (and probe seeds 0, 1);
    records before the cut was recorded cut at ``LEGACY_CUT``."""
    readout = record.get("readout", LEGACY_READOUT)
    cut = recorded_cut({**record, "readout": readout})
    return tuple(record["overrides"]), readout, record["spec"]["n_titles"], cut


def readout_name(v: tuple) -> str:
    """A variant's readout as the tables name it: with its scene cut where not today's."""
    return v[1] + (f" (scenes cut {v[3]})" if v[3] != scene_cut(v[1]) else "")


def variant_dir(overrides: list[str], titles: int) -> str:
    """The folder of a recipe's catalogs and models (60-title catalogs: the recipe's name)."""
    name = "-".join(overrides) or "default"
    return name if titles == 60 else f"{name}-{titles}-titles"


def margins(records: list[dict]) -> dict[str, list[tuple[int, float, str]]]:
    """task -> [(draw, MediaFM's score less the best naive baseline's, that baseline)]."""
    out: dict[str, list] = {}
    by: dict[tuple, dict[str, float]] = {}
    for r in records:
        by.setdefault((r["draw"], r["task"]), {})[r["method"]] = r["score"]
    for (draw, task), scores in sorted(by.items()):
        best = max((m for m in scores if m in NAIVE), key=scores.get)
        out.setdefault(task, []).append((draw, scores[IN_CONTEXT] - scores[best], best))
    return out


def probe_position(work: Path, draw: int, probe_seeds: tuple[int, ...],
                   readout: str | None = None) -> list[dict]:
    """``POSITION_AWARE``'s scores on ``ARC_TASKS`` for one catalog (``work``/draw-N, whose
    store, labels and model an earlier run left); with a ``readout``, ``PAIRED``'s instead
    (MediaFM's model of that draw read out through it)."""
    from mediafm.probes import read_labels
    from mediafm.probes.features import (
        baseline_features,
        clip_positions,
        in_context_features,
        with_block,
    )
    from mediafm.probes.linear import ProbeJob, default_workers, probe_jobs
    from mediafm.probes.tasks import targets
    from mediafm.store import ShotStore

    d = work / f"draw-{draw}"
    labels, tasks = read_labels(d / "catalog" / "labels.parquet")
    store = ShotStore(d / "store")
    if readout is None:
        method, x = POSITION_AWARE, baseline_features(store, labels)[POSITION_AWARE]
    else:
        from mediafm.model import MediaFM
        from mediafm.probes.features import WITH_TITLE

        model = MediaFM.from_pretrained(d / "run").eval()
        title = in_context_features(store, labels, model, readout)[WITH_TITLE]
        method, x = PAIRED, with_block(title, clip_positions(store, labels))
    groups = labels["title_id"].to_numpy()
    jobs, keys = [], []
    for task in tasks:
        if task.name in ARC_TASKS:
            idx, y, _ = targets(labels, task)
            jobs.append(ProbeJob(x, idx, y, groups[idx], task.metric,
                                 10 if task.kind == "ranking" else 5, probe_seeds))
            keys.append({"task": task.name, "metric": task.metric, "method": method})
    return [{**key, "score": r.mean, "std": r.std}
            for key, r in zip(keys, probe_jobs(jobs, default_workers()), strict=True)]


def with_position(work: Path, draw: int, probe_seeds: tuple[int, ...], records: list[dict]
                  ) -> list[dict]:
    """Records of ``POSITION_AWARE`` for every variant measured on the draw (``records``: its
    records) that has none yet, as every variant carries its draw's baselines; probed once."""
    have = [r for r in records if r["method"] == POSITION_AWARE]
    done = {variant(r) for r in have}
    lacking = {variant(r): r for r in records
               if r["method"] == IN_CONTEXT and variant(r) not in done}
    if not lacking:
        return []
    first = next(iter(done), None)
    scores = ([{k: r[k] for k in SCORE_KEYS} for r in have if variant(r) == first] if have
              else probe_position(work, draw, probe_seeds))
    return [{**{k: v for k, v in r.items() if k not in SCORE_KEYS}, **score}
            for r in lacking.values() for score in scores]


def position_line(records: list[dict]) -> str:
    """MediaFM (its plain embedding, and ``PAIRED``) against ``POSITION_AWARE`` on
    ``ARC_TASKS``, where they were measured."""
    by: dict[tuple, dict[str, float]] = {}
    for r in records:
        if r["task"] in ARC_TASKS and r["method"] in (IN_CONTEXT, POSITION_AWARE, PAIRED):
            by.setdefault((r["task"], r["draw"]), {})[r["method"]] = r["score"]

    def cells(mine: str) -> list[str]:
        out = []
        for task in ARC_TASKS:
            m = [v[mine] - v[POSITION_AWARE] for (t, _), v in sorted(by.items())
                 if t == task and mine in v and POSITION_AWARE in v]
            if m:
                out.append(f"{task} {sum(x > 0 for x in m)} of {len(m)}, median "
                           f"{np.median(m):+.3f} ({min(m):+.3f} to {max(m):+.3f})")
        return out

    plain, paired = cells(IN_CONTEXT), cells(PAIRED)
    measured = sorted({d for (_, d), v in by.items() if POSITION_AWARE in v})
    some = (f" (measured on draw{'s' if len(measured) > 1 else ''} "
            f"{', '.join(map(str, measured))} only)"
            if len(measured) < len({r["draw"] for r in records}) else "")
    line = ("Against the naive baseline that also knows the clip's place in its title "
            f"({POSITION_AWARE}; MediaFM's plain embedding is not given it){some}: MediaFM "
            "ahead on " + "; ".join(plain) + ".") if plain else ""
    if paired:
        line += (f" Given the same place and title part ({PAIRED}), MediaFM ahead on "
                 + "; ".join(paired) + ".")
    return line


def lifts(records: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """task -> (MediaFM's, the best naive baseline's) share of the room above chance on each
    draw that has its ``CHANCE`` record: (score - chance) / (1 - chance), 0 at chance, 1 a
    perfect score (a within-title tau: the tau itself)."""
    score = {(r["draw"], r["task"], r["method"]): r["score"] for r in records}
    out: dict[str, tuple[list[float], list[float]]] = {}
    for task, got in margins(records).items():
        for draw, _, best in got:
            floor = score.get((draw, task, CHANCE))
            if floor is not None:
                mine, theirs = out.setdefault(task, ([], []))
                mine.append((score[draw, task, IN_CONTEXT] - floor) / (1 - floor))
                theirs.append((score[draw, task, best] - floor) / (1 - floor))
    return out


def table(records: list[dict]) -> str:
    rows = []
    above = lifts(records)
    for task, got in margins(records).items():
        m = [x for _, x, _ in got]
        won = sum(x > 0 for x in m)
        best = [b for *_, b in got]
        top = max(map(best.count, best))  # every baseline tied for most often, in name order
        usual = " / ".join(sorted({b for b in best if best.count(b) == top}))
        lift = (f"{np.median(above[task][0]):.3f} / {np.median(above[task][1]):.3f}"
                if task in above else "-")
        rows.append([task + (" (scene)" if task in SCENE_TASKS else " (title)"),
                     f"{won} of {len(m)} ({won / len(m):.0%})",
                     f"{np.median(m):+.3f} ({min(m):+.3f} to {max(m):+.3f})", lift, usual])
    draws = sorted({r["draw"] for r in records})
    per = {r["draw"]: r for r in records}
    lines = [harness.markdown_table(["task", "MediaFM ahead", "margin, median (range)",
                                     "above chance, median: MediaFM / best naive",
                                     "best naive baseline, most often"], rows), "",
             *([position_line(records), ""] if position_line(records) else []),
             harness.markdown_table(
                 ["draw", "shots", "noise", "scene len", "regular", "alternation", "tone stay",
                  "clip shots", "val loss / neighbour mean", "train s"],
                 [[str(d), f"{per[d]['n_shots']:,}", f"{per[d]['spec']['shot_noise']:.2f}",
                   f"{per[d]['spec']['scene_shots']:.1f}",
                   f"{per[d]['spec']['scene_regularity']:.2f}",
                   f"{per[d]['spec']['cut_prob']:.2f}", f"{per[d]['spec']['tone_stay']:.2f}",
                   "{}-{}".format(*per[d]["spec"]["clip_shots"]),
                   f"{per[d]['val_loss']:.3f} / {per[d]['neighbour_mean_loss']:.3f}",
                   f"{per[d]['train_s']:.0f}"] for d in draws])]
    return "\n".join(lines)


def ablation(records: list[dict], held_out: bool = False) -> str:
    """Every variant (training overrides, readout, catalog size) measured on the tuning
    draws (0-99; ``held_out``: 100 and on) that ``ANCHOR_READOUT`` was measured on (a variant
    measured on only some of them is left out): per task, how many MediaFM won and the
    median margin."""
    chosen = [r for r in records if (r["draw"] >= 100) == held_out]
    done = {}
    for r in chosen:
        done.setdefault(variant(r), set()).add(r["draw"])
    draws = done.get(((NO_CLOCK,), ANCHOR_READOUT, 60, LEGACY_CUT), set())
    variants = sorted(v for v, got in done.items() if got >= draws)
    tasks = [*SCENE_TASKS, "genre"]
    rows = []
    for v in variants:
        got = margins([r for r in chosen if r["draw"] in draws and variant(r) == v])
        cells = []
        for task in tasks:
            m = [x for _, x, _ in got.get(task, [])]
            cells.append(f"{sum(x > 0 for x in m)}/{len(m)}, {np.median(m):+.3f}" if m else "-")
        rows.append([" ".join(v[0]) or "default", readout_name(v), str(v[2]), *cells])
    return (f"{'Held-out' if held_out else 'Tuning'} draws {', '.join(map(str, sorted(draws)))}: "
            "draws MediaFM won, median margin over the best naive baseline.\n\n"
            + harness.markdown_table(["recipe (overrides)", "readout", "titles", *tasks], rows))


def scaling(records: list[dict]) -> str:
    """Issue #32's scaling curve: the default recipe, read out with ``SCALING_READOUT``, with
    training steps, width (``hidden``) or catalog size changed, on the tuning draws the
    default was measured on. Validation loss is read against the neighbour-mean loss of the
    same held-out titles (catalogs of different sizes hold out different titles)."""
    from mediafm.train import load_run_config

    model_cfg, train_cfg = load_run_config("tiny")
    axes = {"steps": train_cfg.steps, "hidden": model_cfg["hidden"]}
    batch = train_cfg.batch_size
    tuning = [r for r in records if r["draw"] < 100 and variant(r)[1] == SCALING_READOUT]
    groups: dict[tuple[int, int, int], list[dict]] = {}
    for r in tuning:
        sets = dict(o.split("=", 1) for o in r["overrides"] if o != NO_CLOCK)
        if NO_CLOCK in r["overrides"] and set(sets) <= set(axes):
            point = {**axes, **{k: int(v) for k, v in sets.items()}}
            groups.setdefault((r["spec"]["n_titles"], point["steps"], point["hidden"]),
                              []).append(r)
    draws = {r["draw"] for r in groups.get((60, axes["steps"], axes["hidden"]), [])}
    rows = []
    for (titles, steps, hidden), got in sorted(groups.items()):
        got = [r for r in got if r["draw"] in draws]
        per = {r["draw"]: r for r in got}
        if set(per) != draws:
            continue
        m = margins(got)
        scene = [x for task in SCENE_TASKS for _, x, _ in m[task]]
        runs = list(per.values())
        rows.append([str(titles), f"{np.median([r['n_shots'] for r in runs]):,.0f}",
                     str(steps), f"{steps * batch / titles:.0f}", str(hidden),
                     f"{np.median([r['train_s'] for r in runs]):.0f}",
                     f"{np.median([r['val_loss'] / r['neighbour_mean_loss'] for r in runs]):.3f}",
                     f"{sum(x > 0 for x in scene)} of {len(scene)}",
                     *(f"{np.median([x for _, x, _ in m[t]]):+.3f}" for t in SCENE_TASKS)])
    return (f"Scaling, tuning draws {', '.join(map(str, sorted(draws)))} (readout "
            f"{SCALING_READOUT}): "
            "median per draw; val / neighbour: the validation loss over the neighbour mean's "
            "on the same held-out titles (lower: more context learned); the task columns: "
            "median margin over the best naive baseline; windows / title: how often training "
            "saw each title (steps × batch / titles).\n\n" + harness.markdown_table(
                ["titles", "shots", "steps", "windows / title", "hidden", "train s",
                 "val / neighbour", "scene cells won", *SCENE_TASKS], rows))


def render(records: list[dict]) -> str:
    """The README's tables: the held-out draws (100 and on) of the default recipe, one table
    per catalog size, through the default readout (or, at a size not yet measured with it,
    the readout measured last), then the variants tried on the tuning draws."""
    recipe = [r for r in records if r["draw"] >= 100 and not r["overrides"]]
    out, held = "", []
    now = (DEFAULT_READOUT, scene_cut(DEFAULT_READOUT))
    for titles in sorted({variant(r)[2] for r in recipe}):
        # the default readout as it cuts scenes now, else as it cut them, else the last one
        have = [variant(r) for r in recipe if variant(r)[2] == titles]
        v = next((v for v in have if (v[1], v[3]) == now), None) or next(
            (v for v in reversed(have) if v[1] == DEFAULT_READOUT), have[-1])
        mine = [r for r in recipe if variant(r) == v]
        held += mine
        note = ("the default readout" if (v[1], v[3]) == now else
                f"the default readout with its scenes cut as before, {v[3]} (windows@bar)"
                if v[1] == DEFAULT_READOUT else
                f"not yet measured with the default readout ({DEFAULT_READOUT}): the readout")
        out += (f"{len({r['draw'] for r in mine})} held-out draws (100 and on) of {titles} "
                "titles, the tiny default recipe; in-context clip embeddings (mean-pooled, "
                f"{note}, {v[1]}) against the best naive baseline per task; above chance: "
                "the share of the room between a prediction that says nothing and a perfect "
                "score that the score takes, (score - chance) / (1 - chance), median over "
                "the draws.\n\n"
                + table(mine) + "\n\n")
    if len({variant(r) for r in records if r["draw"] >= 100}) > 1:
        out += ablation(records, held_out=True) + "\n\n"
    if any(r["draw"] < 100 for r in records):
        out += ablation(records) + "\n\n" + scaling(records) + "\n\n"
    return out + harness.machine_line(held[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--first", type=int, default=100, help="first draw (0-99: tuning set)")
    p.add_argument("--titles", type=int, default=60)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the tiny recipe (as mediafm train --set)")
    p.add_argument("--readout", default=DEFAULT_READOUT, choices=sorted(READOUTS),
                   help="MediaFM's shot readout (a trained model is reused: no training)")
    p.add_argument("--probe-seeds", default="0,1")
    p.add_argument("--workdir", default="/tmp/mediafm-families")
    p.add_argument("--json", default=str(harness.RESULTS / "context_families.json"))
    p.add_argument("--table", action="store_true", help="print the table of the JSON")
    p.add_argument("--baselines", action="store_true",
                   help="probe the naive baselines a draw of the JSON lacks (one added to the "
                        "suite later), on catalogs written again from the recorded specs in "
                        "--workdir, for every variant of the draw; no training")
    p.add_argument("--chance", action="store_true",
                   help="add each task's chance score to every draw of the JSON that lacks "
                        "it (its labels made again from the recorded spec: no training, no "
                        "probes); new draws record it as they run")
    p.add_argument("--position", action="store_true",
                   help="also probe the position-aware baseline, and MediaFM given the same "
                        "position, on the arc tasks of draws that lack them (their catalogs "
                        "and models stay in --workdir)")
    args = p.parse_args()
    out = Path(args.json)
    records = json.loads(out.read_text()) if out.exists() else []
    seeds = [int(x) for x in args.probe_seeds.split(",")]
    me = (tuple(args.set), args.readout, args.titles, scene_cut(args.readout))
    mine = [r for r in records if variant(r) == me]

    def save(rows: list[dict]) -> None:
        records.extend(rows)
        mine.extend(r for r in rows if variant(r) == me)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, out)

    for rows in add_baselines(records, Path(args.workdir), tuple(seeds)) if args.baselines \
            else ():
        save(rows)
    if args.chance:
        t = time.perf_counter()
        save(rows := add_chance(records))
        print(f"chance: {len(rows)} records added ({time.perf_counter() - t:.0f} s)")
    if not args.table:
        machine = harness.machine()

        work = Path(args.workdir) / variant_dir(args.set, args.titles)
        for draw in range(args.first, args.first + args.draws):
            if any(r["draw"] == draw for r in mine):
                continue
            t = time.perf_counter()
            known = [r for r in records if r["draw"] == draw and r["method"] in NAIVE
                     and r["spec"]["n_titles"] == args.titles
                     and r.get("probe_seeds", [0, 1]) == seeds]
            known = list({(r["task"], r["method"]): r for r in known}.values())
            save([{**r, **machine} for r in run_draw(
                work, draw, args.titles, args.set, tuple(seeds), args.readout, known)])
            print(f"draw {draw}: {time.perf_counter() - t:.0f} s", flush=True)
        for draw in range(args.first, args.first + args.draws) if args.position else ():
            t = time.perf_counter()
            rows = with_position(work, draw, tuple(seeds), [
                r for r in records if r["draw"] == draw and r["spec"]["n_titles"] == args.titles
                and r.get("probe_seeds", [0, 1]) == seeds])
            base = next((r for r in mine if r["draw"] == draw and r["method"] == IN_CONTEXT),
                        None)
            if base and not any(r["draw"] == draw and r["method"] == PAIRED for r in mine):
                rows += [{**{k: v for k, v in base.items() if k not in SCORE_KEYS}, **score}
                         for score in probe_position(work, draw, tuple(seeds), args.readout)]
            if rows:
                save(rows)
                print(f"draw {draw}: position-aware probes, {time.perf_counter() - t:.0f} s",
                      flush=True)
    chosen = [r for r in mine if args.first <= r["draw"] < args.first + args.draws]
    print(table(chosen))
    if args.first < 100:
        print("\n" + ablation(records) + "\n\n" + scaling(records))
    if chosen:
        print("\n" + harness.machine_line(chosen[0]))


if __name__ == "__main__":
    main()
