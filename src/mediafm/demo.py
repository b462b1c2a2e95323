"""``mediafm demo``: the whole flow on the built-in synthetic catalog, ending in a report.

synthetic catalog -> ``import`` -> ``train --config tiny`` -> ``embed`` -> ``probe`` ->
REPORT.md with the training curve, masked-shot retrieval against baselines and the probe
ablation table; the full probe report (HTML, chart, raw numbers) is in ``probes/``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd


def _report(out: Path, run: Path, timings: dict[str, float], store_info: dict,
            probes: pd.DataFrame, preset: str, use: list[str]) -> Path:
    from mediafm.probes.report import (
        ablation_table,
        context_table,
        markdown_table,
        plot_training_curve,
    )

    metrics = pd.read_json(run / "metrics.jsonl", lines=True)
    plot_training_curve(metrics, out / "training_curve.png")
    run_info = json.loads((run / "run.json").read_text())
    va = metrics[metrics["split"] == "val"]
    best_step = run_info.get("best", {}).get("step")
    final = (va[va["step"] == best_step].iloc[-1] if best_step is not None
             else va.iloc[-1] if len(va) else None)
    lines = ["# mediafm demo report", "",
             f"Catalog: {store_info['n_titles']} titles, {store_info['n_shots']} shots, fused "
             f"dim {store_info['dims']['fused']} (synthetic, built in, preset `{preset}`).", "",
             "## Masked-shot prediction on held-out titles", "",
             f"The model written is the best by validation loss (step {best_step}): "
             f"{run_info.get('summary', '')}.", "",
             "| predictor | cosine distance (lower is better) | top-1 | top-5 |",
             "|---|---|---|---|"]
    if final is not None:
        for name, label in (("model", "MediaFM (tiny)"), ("neighbour_mean", "neighbour mean"),
                            ("window_mean", "window mean")):
            lines.append(f"| {label} | {final[f'{name}/loss']:.4f} | {final[f'{name}/top1']:.3f}"
                         f" | {final[f'{name}/top5']:.3f} |")
    lines += ["", "Top-k: the true shot ranked among all shots of its window (the whole title "
              "when it fits) by cosine similarity to the prediction.", "",
              "![training curve](training_curve.png)", "",
              "## Linear probes: one encoder → all modalities → context", "",
              "Mean over seeds of title-grouped probes; relative change of each step. Full "
              "report: [probes/report.html](probes/report.html).", "",
              *markdown_table(ablation_table(probes)), "",
              "## Context against the naive context baselines", "",
              "The best baseline of each task (single modalities, fused, the fused vector "
              "averaged over ±k shots with k chosen by cross-validation, the title mean) "
              "against MediaFM in context, by readout.", "",
              *markdown_table(context_table(probes)), "",
              "![probe results](probes/probe_results.png)", "", *use,
              "## Timings (this machine)", "",
              "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    summary = {"store": store_info, "timings_s": timings,
               "probes": probes.drop(columns=["per_seed"]).to_dict(orient="records"),
               "val": None if final is None else {k: float(final[k]) for k in final.index
                                                  if "/" in k}}
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return path


def run_demo(out: str | Path = "demo_out", n_titles: int = 100,
             overrides: list[str] | None = None, progress: bool = True,
             preset: str = "clean", seed: int = 0, probe_seeds: int = 1) -> Path:
    from mediafm.embed import embed_store
    from mediafm.model import MediaFM
    from mediafm.probes import read_labels, run_probes
    from mediafm.probes.catalog_labels import write_labelled_catalog
    from mediafm.store import import_shots
    from mediafm.synthetic import preset as catalog_preset
    from mediafm.train import load_run_config, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    paths = write_labelled_catalog(out / "catalog",
                                   catalog_preset(preset, n_titles=n_titles, seed=seed))
    timings["generate catalog"] = time.perf_counter() - t
    t = time.perf_counter()
    store = import_shots(paths["shots"], out / "store", paths["titles"], progress=progress)
    timings["import"] = time.perf_counter() - t
    run = out / "run"
    if (run / "run.json").exists():  # a previous demo's run: the demo always trains afresh
        shutil.rmtree(run)
    model_cfg, train_cfg = load_run_config("tiny", overrides)
    t = time.perf_counter()
    train(store.path, run, model_cfg, train_cfg, progress=progress)
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    model = MediaFM.from_pretrained(run)
    embed_store(model, store, out / "shot_embeddings.parquet", progress=progress,
                model_path=run)
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    labels, tasks = read_labels(paths["labels"])
    probes = run_probes(store, labels, tasks, out / "probes", model=model,
                        seeds=tuple(range(probe_seeds)),
                        training_metrics=run / "metrics.jsonl", progress=progress)
    timings["probe"] = time.perf_counter() - t
    t = time.perf_counter()
    use = _use(out, store, model, labels, tasks, run, progress)
    timings["heads, predict, moments, search"] = time.perf_counter() - t
    return _report(out, run, timings, store.info.to_json(), probes, preset, use)


def _use(out: Path, store, model, labels, tasks, run: Path, progress: bool) -> list[str]:
    """Heads -> predictions -> one title's moments; an index -> one shot's neighbours."""
    from mediafm.heads import Heads, predict, write_predictions
    from mediafm.moments import find_moments, write_moments
    from mediafm.probes.report import markdown_table
    from mediafm.search import Index, build_index

    heads = Heads.fit(store, model, labels, tasks, folds=3, model_path=str(run),
                      progress=progress)
    heads.save(out / "heads")
    pred = predict(heads, model, store, progress=progress)
    write_predictions(pred, heads, out / "predictions.parquet", model, store, out / "heads")
    title = store.titles["title_id"].iloc[0]
    moments = find_moments(pred[pred["title_id"] == title], heads.kinds, store,
                           ["clip_worthy", "boundary"], k=3, relevance="ad_relevancy")
    write_moments(moments, out / "moments.parquet", store, out / "predictions.parquet")
    index = Index.load(build_index(out / "shot_embeddings.parquet", out / "index",
                                   store=store))
    shot = int(moments["first_shot"].iloc[0]) if len(moments) else 0
    hits = index.search(title, shot, k=5, other_titles=True)
    cv = {n: f"{h.info['cv']['score']:.3f} ({h.task.metric})" for n, h in heads.heads.items()}
    fmt = moments.assign(start_s=moments.start_s.round(1), end_s=moments.end_s.round(1),
                         score=moments.score.round(3)).set_index("task")
    return ["## Using the embeddings: heads, predictions, moments, search", "",
            "Heads fitted on every labelled clip (`heads/`; cross-validated scores: "
            + ", ".join(f"{n} {v}" for n, v in cv.items()) + "), every shot scored in context "
            f"(`predictions.parquet`, {len(pred):,} rows), and the top moments of `{title}`:",
            "", *markdown_table(fmt.drop(columns=["title_id"])), "",
            f"The shots of other titles nearest to `{title}` shot {shot} (`index/`, "
            f"{index.meta['index']['type']}):", "",
            *markdown_table(hits.set_index("rank").round(3)), ""]
