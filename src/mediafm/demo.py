"""``mediafm demo``: the whole flow on the built-in synthetic catalog, ending in a report.

synthetic catalog -> ``import`` -> ``train --config tiny`` -> ``embed`` -> REPORT.md with the
training curve and masked-shot retrieval of the model against the baselines.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd


def _plot_curve(metrics: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = metrics[metrics["split"] == "train"]
    va = metrics[metrics["split"] == "val"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(tr["step"], tr["loss"], label="train (masked shots)", color="#4C72B0", alpha=0.8)
    if len(va):
        ax.plot(va["step"], va["model/loss"], "o-", label="val: MediaFM", color="#C44E52")
        ax.plot(va["step"], va["neighbour_mean/loss"], "--", label="val: neighbour mean",
                color="#55A868")
        ax.plot(va["step"], va["window_mean/loss"], ":", label="val: window mean",
                color="#8172B2")
    ax.set_xlabel("step")
    ax.set_ylabel("cosine distance (1 - cos)")
    ax.set_title("Masked shot modeling")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(out: Path, run: Path, timings: dict[str, float], store_info: dict) -> Path:
    metrics = pd.read_json(run / "metrics.jsonl", lines=True)
    _plot_curve(metrics, out / "training_curve.png")
    va = metrics[metrics["split"] == "val"]
    final = va.iloc[-1] if len(va) else None
    lines = ["# mediafm demo report", "",
             f"Catalog: {store_info['n_titles']} titles, {store_info['n_shots']} shots, fused "
             f"dim {store_info['dims']['fused']} (synthetic, built in).", "",
             "## Masked-shot prediction on held-out titles", "",
             "| predictor | cosine distance (lower is better) | top-1 | top-5 |",
             "|---|---|---|---|"]
    if final is not None:
        for name, label in (("model", "MediaFM (tiny)"), ("neighbour_mean", "neighbour mean"),
                            ("window_mean", "window mean")):
            lines.append(f"| {label} | {final[f'{name}/loss']:.4f} | {final[f'{name}/top1']:.3f}"
                         f" | {final[f'{name}/top5']:.3f} |")
    lines += ["", "Top-k: the true shot ranked among all shots of its window (the whole title "
              "when it fits) by cosine similarity to the prediction.", "",
              "![training curve](training_curve.png)", "", "## Timings (this machine)", "",
              "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    summary = {"store": store_info, "timings_s": timings,
               "val": None if final is None else {k: float(final[k]) for k in final.index
                                                  if "/" in k}}
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return path


def run_demo(out: str | Path = "demo_out", n_titles: int = 100,
             overrides: list[str] | None = None, progress: bool = True) -> Path:
    from mediafm.embed import embed_store
    from mediafm.model import MediaFM
    from mediafm.store import import_shots
    from mediafm.synthetic import CatalogSpec, write_catalog
    from mediafm.train import load_run_config, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    paths = write_catalog(out / "catalog", CatalogSpec(n_titles=n_titles))
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
    embed_store(MediaFM.from_pretrained(run), store, out / "shot_embeddings.parquet",
                progress=progress)
    timings["embed"] = time.perf_counter() - t
    return _report(out, run, timings, store.info.to_json())
