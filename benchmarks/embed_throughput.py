"""Contextual embedding of one feature-length title (2,000 shots: overlapping 512-shot windows)
with the tiny and base configs: shots/s and seconds per title.

    python benchmarks/embed_throughput.py
    python benchmarks/embed_throughput.py --device cuda --bf16
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from mediafm.config import load_toml
from mediafm.embed import embed_sequences
from mediafm.model import MediaFM, MediaFMConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shots", type=int, default=2000)
    p.add_argument("--fused-dim", type=int, default=2304)
    p.add_argument("--configs", nargs="+", default=["tiny", "base"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.shots, args.fused_dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    title = np.zeros((1, 0), np.float32)
    rows = []
    for name in args.configs:
        cfg = MediaFMConfig.from_dict({**load_toml(name)["model"], "fused_dim": args.fused_dim,
                                       "title_dim": 0})
        model = MediaFM(cfg).to(args.device).eval()
        with torch.autocast(torch.device(args.device).type, torch.bfloat16, enabled=args.bf16):
            embed_sequences(model, [x[:600]], title, batch_size=args.batch_size)  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                (out,) = embed_sequences(model, [x], title, batch_size=args.batch_size)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
        assert out.shape == (args.shots, cfg.hidden)
        best = min(times)
        rows.append((name, cfg.layers, cfg.hidden, best, args.shots / best))
    print(f"machine: {platform.machine()}, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; one title of {args.shots} shots, fused "
          f"{args.fused_dim}, windows of 512 overlapping by half, batch {args.batch_size}")
    print(f"{'config':<8} {'layers':>6} {'hidden':>6} {'s/title':>8} {'shots/s':>9}")
    for name, layers, hidden, sec, sps in rows:
        print(f"{name:<8} {layers:>6} {hidden:>6} {sec:>8.2f} {sps:>9.0f}")


if __name__ == "__main__":
    main()
