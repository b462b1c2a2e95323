"""The probe report: grouped bar chart, ablation table with relative steps, training curve,
raw numbers (JSON, CSV), as Markdown and as one self-contained static HTML page."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.atomic import atomic_dir
from mediafm.probes.features import (
    BASELINES,
    IN_CONTEXT,
    MOVING_AVERAGE,
    WITH_TITLE,
    WITH_TITLE_METADATA,
    WITH_TITLE_POSITION,
)

# The ablation ladder of MEDIAFM.md §4: one encoder -> all modalities -> context.
LADDER = ("video only", "fused, no context", "MediaFM clip-only", "MediaFM in context")
METRIC_NAMES = {"ap": "AP", "macro_ap": "macro AP", "micro_ap": "micro AP",
                "kendall_tau": "Kendall tau"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curve(metrics: pd.DataFrame, path: Path) -> None:
    plt = _plt()
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
    ax.set(xlabel="step", ylabel="cosine distance (1 - cos)", title="Masked shot modeling")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_results(results: pd.DataFrame, path: Path) -> None:
    """Grouped bars: tasks on the x axis, one bar per method, error bars = std over seeds."""
    plt = _plt()
    tasks = list(dict.fromkeys(results["task"]))
    methods = list(dict.fromkeys(results["method"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(tasks)), 4.5))
    colors = plt.get_cmap("tab20")
    for m, method in enumerate(methods):
        sub = results[results["method"] == method].set_index("task").reindex(tasks)
        ax.bar(np.arange(len(tasks)) + (m - (len(methods) - 1) / 2) * width, sub["mean"],
               width, yerr=sub["std"], label=method, color=colors(m), capsize=2)
    labels = [f"{t}\n({METRIC_NAMES.get(k, k)})" for t, k in
              results.drop_duplicates("task").set_index("task").loc[tasks, "metric"].items()]
    ax.set_xticks(np.arange(len(tasks)), labels)
    ax.set_ylabel("score (higher is better)")
    ax.set_title("Linear probes on frozen clip embeddings (title-grouped CV)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ablation_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per task, the ladder's scores and the relative change of each step over the previous."""
    wide = results.pivot(index="task", columns="method", values="mean")
    steps = [m for m in LADDER if m in wide.columns]
    out = wide[steps].copy()
    for prev, cur in zip(steps, steps[1:], strict=False):
        out[f"{prev} → {cur}"] = (wide[cur] - wide[prev]) / wide[prev].abs() * 100
    return out.reindex(list(dict.fromkeys(results["task"])))


def context_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per task, MediaFM in context against the best baseline, the naive context ones (moving
    average, title mean) included: the comparison that says whether the model reads context."""
    wide = results.pivot(index="task", columns="method", values="mean")
    base = [m for m in BASELINES if m in wide.columns]
    if not base or IN_CONTEXT not in wide.columns:
        return pd.DataFrame()
    k = results[results["method"] == MOVING_AVERAGE].set_index("task").get("choice")
    out = pd.DataFrame({"best baseline": wide[base].idxmax(axis=1),
                        "best baseline score": wide[base].max(axis=1)})
    if k is not None:
        out[f"{MOVING_AVERAGE}: k"] = k.reindex(out.index).str.replace("k=", "", regex=False)
    for m in [c for c in wide.columns if c.startswith(IN_CONTEXT)]:
        out[m] = wide[m]
    # each beside its naive counterpart among the baselines
    ours = (IN_CONTEXT, WITH_TITLE, WITH_TITLE_POSITION, WITH_TITLE_METADATA)
    best_model = wide[[c for c in wide.columns if c in ours]].max(axis=1)
    out["MediaFM vs best baseline"] = ((best_model - out["best baseline score"])
                                       / out["best baseline score"].abs() * 100)
    return out.reindex(list(dict.fromkeys(results["task"])))


def _cell(column: str, value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return str(value)
    if "→" in column or " vs " in column:
        return f"{value:+.1f}%"
    return f"{value:.3f}"


def markdown_table(frame: pd.DataFrame) -> list[str]:
    cols = list(frame.columns)
    lines = [f"| {frame.index.name or 'task'} | " + " | ".join(map(str, cols)) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for task, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = (_cell(str(c), v) for c, v in zip(cols, row, strict=True))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or not len(frame.columns):
        return frame
    return frame.apply(lambda col: [_cell(col.name, v) for v in col])


def write_report(results: pd.DataFrame, out: Path, title: str = "mediafm probe report",
                 training_metrics: Path | None = None, notes: list[str] | None = None) -> Path:
    """REPORT.md + report.html + probe_results.png (+ training_curve.png) + results.{json,csv},
    written to a temporary directory that replaces ``out`` whole."""
    final = Path(out)
    with atomic_dir(final) as out:
        _write_report(results, out, title, training_metrics, notes)
    return final / "REPORT.md"


def _write_report(results: pd.DataFrame, out: Path, title: str,
                  training_metrics: Path | None, notes: list[str] | None) -> None:
    results.to_csv(out / "results.csv", index=False)
    (out / "results.json").write_text(json.dumps(results.to_dict(orient="records"), indent=2))
    plot_results(results, out / "probe_results.png")
    images = ["probe_results.png"]
    if training_metrics is not None and Path(training_metrics).exists():
        plot_training_curve(pd.read_json(training_metrics, lines=True),
                            out / "training_curve.png")
        images.append("training_curve.png")
    table = results.assign(score=[f"{m:.3f} ± {s:.3f}" for m, s in
                                  zip(results["mean"], results["std"], strict=True)])
    wide = table.pivot(index="task", columns="method", values="score").reindex(
        list(dict.fromkeys(results["task"])))[list(dict.fromkeys(results["method"]))]
    ablation = ablation_table(results)
    context = context_table(results)

    md = [f"# {title}", "", *(notes or []), "", "## Results (mean ± std over seeds)", "",
          "| task | " + " | ".join(wide.columns) + " |", "|---" * (len(wide.columns) + 1) + "|"]
    md += [f"| {t} | " + " | ".join(row) + " |" for t, row in wide.iterrows()]
    md += ["", "## Ablation: one encoder → all modalities → context", "", *markdown_table(ablation)]
    if len(context):
        md += ["", "## Context against the naive context baselines", "",
               *markdown_table(context)]
    md += ["", *[f"![{i}]({i})" for i in images], ""]
    (out / "REPORT.md").write_text("\n".join(md))

    def img(name: str) -> str:
        data = base64.b64encode((out / name).read_bytes()).decode()
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    page = ["<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>",
            "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}",
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}th{background:#f0f0f0}td:first-child,"
            "th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            *[f"<p>{html.escape(n)}</p>" for n in notes or []],
            img("probe_results.png"), "<h2>Results (mean ± std over seeds)</h2>",
            wide.to_html(classes="results", border=0),
            "<h2>Ablation: one encoder → all modalities → context</h2>",
            _formatted(ablation).to_html(classes="ablation", border=0),
            *(["<h2>Context against the naive context baselines</h2>",
               _formatted(context).to_html(classes="context", border=0)] if len(context)
              else []),
            *[img(i) for i in images[1:]], "</body></html>"]
    (out / "report.html").write_text("\n".join(page))
