"""Contextual embedding of one feature-length title (2,000 shots: overlapping 512-shot windows)
with the tiny and base configs, through the spec's readout (one pass, the hidden state), the
context readout (input+context: max(2, round(1 / mask_ratio)) masked passes, 2 for tiny) and
the default readout (input+context+visible: the same masked passes).

    python benchmarks/embed_throughput.py
    python benchmarks/embed_throughput.py --device cuda --bf16

Variants run interleaved (``harness.interleaved``); results go to
``benchmarks/results/embed_throughput[_cuda].json``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mediafm.config import load_toml
from mediafm.embed import embed_sequences
from mediafm.model import MediaFM, MediaFMConfig
from mediafm.readouts import DEFAULT_READOUT

import harness  # benchmarks/harness.py, beside this script

READOUTS = tuple(dict.fromkeys(("hidden", "input+context", DEFAULT_READOUT)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shots", type=int, default=2000)
    p.add_argument("--fused-dim", type=int, default=2304)
    p.add_argument("--configs", nargs="+", default=["tiny", "base"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.shots, args.fused_dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    title = np.zeros((1, 0), np.float32)
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    fns, shapes = {}, {}
    for name in args.configs:
        cfg = MediaFMConfig.from_dict({**load_toml(name)["model"], "fused_dim": args.fused_dim,
                                       "title_dim": 0})
        model = MediaFM(cfg).to(device).eval()
        shapes[name] = {"layers": cfg.layers, "hidden": cfg.hidden, "positions": cfg.positions,
                        "mask_ratio": cfg.mask_ratio}
        for readout in READOUTS:
            def run(model=model, readout=readout) -> None:
                with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
                    embed_sequences(model, [x], title, readout, batch_size=args.batch_size)
            fns[f"{name}, {readout}"] = lambda run=run: harness.timed(run, sync)
    runs = harness.interleaved(fns, args.repeats, args.warmup)
    result = {"benchmark": "embed_throughput", "machine": harness.machine(str(device)),
              "shots": args.shots, "fused_dim": args.fused_dim, "batch_size": args.batch_size,
              "precision": "bf16 autocast" if args.bf16 else "fp32", "repeats": args.repeats,
              "configs": shapes, "variants": {}, "ratios": {}}
    for name, sec in runs.items():
        result["variants"][name] = {"s_per_title": harness.summary(sec),
                                    "shots_per_s": harness.summary([args.shots / t
                                                                    for t in sec])}
    for name in args.configs:
        for readout in READOUTS[1:]:
            result["ratios"][f"{name}: {readout} / hidden (time)"] = harness.ratio(
                runs[f"{name}, {readout}"], runs[f"{name}, hidden"])
    print(render(result))
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    harness.write(f"embed_throughput{suffix}", result, args.json)


def render(r: dict) -> str:
    rows = []
    for name, v in r["variants"].items():
        config, readout = name.split(", ")
        c = r["configs"][config]
        rows.append([config, f"{c['layers']} × {c['hidden']}", readout,
                     harness.fmt(v["s_per_title"], ".2f"), harness.fmt(v["shots_per_s"], ".0f")])
    lines = [f"One title of {r['shots']:,} shots, fused {r['fused_dim']}, windows of 512 "
             f"overlapping by half, batch {r['batch_size']}, {r['precision']}; "
             f"{r['repeats']} interleaved rounds after a warm-up.", "",
             harness.markdown_table(["config", "layers × hidden", "readout",
                                     "s / title median (range)", "shots/s"], rows), ""]
    lines += [f"{name}: {harness.fmt_ratio(x)}." for name, x in r["ratios"].items()]
    return "\n".join([*lines, "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
