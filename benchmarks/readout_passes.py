"""How many passes the context readout needs: probe quality and embedding time of the context
readout against one-pass ones.

The context readout, ``input+context`` (the default until 2026-12-04; the default since,
``input+context+visible``, adds a block from the same passes), masks every k-th shot in
k = max(2, round(1 / mask_ratio)) passes (k = 2 for ``tiny``) so that every shot has a
context vector: the model's hidden state where that shot is masked. Before 2026-12-04 it also
ran a pass with nothing masked that it did not use (k + 1 = 3 passes). Variants, on the same
trained model:

- ``input+context, k passes``;
- ``input+context, one pass``: one pass masking every other shot; the shots it leaves
  unmasked take their hidden state in that pass as their context vector;
- ``input+hidden``: one pass with nothing masked (the spec's reading beside the projection).

Per preset and seed: a ``tiny`` model trained with the default recipe (as the context-quality
benchmark trains it), the in-context clip probes of every task (mean-pooled, 3 probe seeds),
and the time to embed every labelled clip in context, interleaved over ``--repeats`` rounds.

    python benchmarks/readout_passes.py
    python benchmarks/readout_passes.py --presets noisy --seeds 0
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

import harness  # benchmarks/harness.py, beside this script

VARIANTS = ("input+context, k passes", "input+context, one pass", "input+hidden")


@contextlib.contextmanager
def one_pass_readout():
    """``embed.readout`` computing ``input+context`` in one pass while in this block."""
    from mediafm import embed

    default = embed.readout

    def one_pass(model, shots, lengths, title_emb, output, clock=None):
        if output != "input+context":
            return default(model, shots, lengths, title_emb, output, clock)
        steps = torch.arange(shots.shape[1], device=shots.device)
        mask = (steps[None] < lengths[:, None]) & (steps % 2 == 0)[None]
        h, _ = model(shots, lengths, title_emb, mask, clock)
        return torch.cat([model.input_proj(shots), h], dim=-1)

    embed.readout = one_pass
    try:
        yield
    finally:
        embed.readout = default


def features(variant: str, store, labels, model):
    """(clip features of a variant, seconds to embed them)."""
    from mediafm.embed import embed_clips, readout_blocks
    from mediafm.probes.features import Features, fused_blocks

    output = "input+hidden" if variant == "input+hidden" else "input+context"
    within = one_pass_readout() if variant.endswith("one pass") else contextlib.nullcontext()
    t = time.perf_counter()
    with within, torch.no_grad():
        frame = embed_clips(model, store, labels, "in-context", output, progress=False)
    seconds = time.perf_counter() - t
    x = np.stack(frame["embedding"].to_list())
    return Features.of(x, readout_blocks(model, output, fused_blocks(store))), seconds


def run_catalog(work: Path, preset: str, seed: int, titles: int, repeats: int,
                probe_seeds: tuple[int, ...]) -> dict:
    from mediafm.model import MediaFM
    from mediafm.probes.linear import ProbeJob, default_workers, probe_jobs
    from mediafm.probes.tasks import targets

    from context_quality import prepare, trained  # benchmarks/context_quality.py

    d, store, labels, tasks = prepare(work, preset, seed, titles)
    # the presets' suite's model (keyed by its configs, so a changed tiny default retrains)
    run, _, _ = trained(d, store, [f"seed={seed}"])
    model = MediaFM.from_pretrained(run).eval()
    feats, times = {}, {v: [] for v in VARIANTS}

    def timed(variant: str):
        def go() -> float:
            feats[variant], seconds = features(variant, store, labels, model)
            return seconds
        return go

    runs = harness.interleaved({v: timed(v) for v in VARIANTS}, repeats, warmup=0)
    times = {v: harness.summary(runs[v]) for v in VARIANTS}
    groups = labels["title_id"].to_numpy()
    jobs, keys = [], []
    for task in tasks:
        idx, y, _ = targets(labels, task)
        for v in VARIANTS:
            jobs.append(ProbeJob(feats[v], idx, y, groups[idx], task.metric,
                                 10 if task.kind == "ranking" else 5, probe_seeds))
            keys.append((task.name, task.metric, v))
    scores: dict[str, dict] = {}
    for (task, metric, v), r in zip(keys, probe_jobs(jobs, default_workers()), strict=True):
        scores.setdefault(task, {"metric": metric})[v] = {"mean": r.mean, "std": r.std}
    return {"preset": preset, "seed": seed, "clips": len(labels), "times_s": times,
            "ratio_k_over_one": harness.ratio(runs[VARIANTS[0]], runs[VARIANTS[1]]),
            "scores": scores}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="noisy,clean")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--titles", type=int, default=100, help="as the context-quality benchmark")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--probe-seeds", default="0,1,2")
    p.add_argument("--workdir", default="/tmp/mediafm-context")
    p.add_argument("--json")
    args = p.parse_args()
    seeds = tuple(int(s) for s in args.probe_seeds.split(","))
    runs = [run_catalog(Path(args.workdir), preset, int(seed), args.titles, args.repeats, seeds)
            for preset in args.presets.split(",") for seed in args.seeds.split(",")]
    result = {"benchmark": "readout_passes", "machine": harness.machine(), "runs": runs}
    print(render(result))
    harness.write("readout_passes", result, args.json)


def render(r: dict) -> str:
    out = ["In-context clip probes (mean over probe seeds ± their std) and the time to embed "
           "the labelled clips, per readout variant, on the same trained tiny model.", ""]
    for run in r["runs"]:
        rows = [[f"{task} ({s['metric']})",
                 *[f"{s[v]['mean']:.3f} ±{s[v]['std']:.3f}" for v in VARIANTS]]
                for task, s in run["scores"].items()]
        rows.append(["embed time, s (range)", *[harness.fmt(run["times_s"][v], ".2f")
                                                for v in VARIANTS]])
        out += [f"**{run['preset']} seed {run['seed']}** ({run['clips']:,} clips; k passes / "
                f"one pass, time: {harness.fmt_ratio(run['ratio_k_over_one'])})", "",
                harness.markdown_table(["task", *VARIANTS], rows), ""]
    return "\n".join([*out, harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
