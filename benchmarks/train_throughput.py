"""Training throughput of MediaFM against a Hugging Face BertModel of the same shape.

Both models get the same work: fused shot vectors (B, L, fused_dim) -> linear input projection
-> encoder (same hidden, layers, heads, MLP width, sequence length, batch) -> linear output
projection -> masked cosine loss -> backward -> optimiser step. The peer is
``transformers.BertModel`` fed ``inputs_embeds`` (SDPA attention, post-norm as in BERT).
Optimiser for the side-by-side comparison: AdamW for both; MediaFM is also timed with its real
Muon + AdamW split. MFU = model matmul FLOPs per second / this machine's measured matmul peak
(a large matmul in the same dtype), so the ratio is against what the machine actually reaches.

    python benchmarks/train_throughput.py                 # CPU-sized default
    python benchmarks/train_throughput.py --config base --batch 32 --device cuda --bf16

Variants run interleaved (``harness.interleaved``) with the matmul peak measured in every
round; results go to ``benchmarks/results/train_throughput[_cuda].json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from mediafm.config import load_toml
from mediafm.model import MediaFM, MediaFMConfig
from mediafm.objective import masked_cosine_loss
from mediafm.optim import build_optimizers
from mediafm.sequences import sample_mask

import harness  # benchmarks/harness.py, beside this script
from harness import timed


class BertPeer(nn.Module):
    """Linear in -> transformers.BertModel(inputs_embeds) -> linear out."""

    def __init__(self, cfg: MediaFMConfig):
        super().__init__()
        from transformers import BertConfig, BertModel

        bert_cfg = BertConfig(hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                              num_attention_heads=cfg.heads,
                              intermediate_size=int(cfg.hidden * cfg.mlp_ratio),
                              max_position_embeddings=cfg.max_shots + 2, vocab_size=8,
                              hidden_dropout_prob=cfg.dropout,
                              attention_probs_dropout_prob=cfg.dropout)
        bert_cfg._attn_implementation = "sdpa"
        self.input_proj = nn.Linear(cfg.fused_dim, cfg.hidden)
        self.bert = BertModel(bert_cfg, add_pooling_layer=False)
        self.output_proj = nn.Linear(cfg.hidden, cfg.fused_dim)

    def forward(self, shots, lengths, title=None, mask=None):
        attn = (torch.arange(shots.shape[1], device=shots.device)[None] < lengths[:, None]).long()
        h = self.bert(inputs_embeds=self.input_proj(shots), attention_mask=attn).last_hidden_state
        return h, self.output_proj(h)


def train_flops(cfg: MediaFMConfig, batch: int, seq: int) -> float:
    """Matmul FLOPs of one training step (forward x 3), per the usual 2*m*n*k count."""
    H, S, F = cfg.hidden, seq + 2, cfg.fused_dim
    per_layer = 2 * S * (3 * H * H + H * H + 2 * int(cfg.mlp_ratio * H) * H) + 4 * S * S * H
    fwd = batch * (cfg.layers * per_layer + 2 * 2 * seq * F * H)
    return 3.0 * fwd


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_steps(model, optimizers, batch, bf16: bool, steps: int) -> None:
    shots, lengths, title, mask = batch
    model.train()
    for _ in range(steps):
        with torch.autocast(shots.device.type, dtype=torch.bfloat16, enabled=bf16):
            _, pred = model(shots, lengths, title, mask)
        loss = masked_cosine_loss(pred.float(), shots, mask)
        loss.backward()
        for o in optimizers:
            o.step()
            o.zero_grad(set_to_none=True)


VARIANTS = (("MediaFM, AdamW", MediaFM, "adamw"), ("BertModel (HF), AdamW", BertPeer, "adamw"),
            ("MediaFM, Muon + AdamW", MediaFM, "muon+adamw"))
RATIO = ("MediaFM, AdamW", "BertModel (HF), AdamW")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="tiny | base | file.toml (default: CPU-sized)")
    p.add_argument("--fused-dim", type=int, default=768)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="training steps per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds measured")
    p.add_argument("--warmup", type=int, default=1, help="rounds run first and not kept")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPUs)")
    p.add_argument("--json", help="results file (default: benchmarks/results/"
                   "train_throughput[_DEVICE].json)")
    args = p.parse_args()

    model_cfg = ({"hidden": 256, "layers": 4, "heads": 4} if args.config is None
                 else load_toml(args.config)["model"])
    cfg = MediaFMConfig.from_dict({**model_cfg, "fused_dim": args.fused_dim, "title_dim": 0,
                                   "dropout": 0.0, "max_shots": max(args.seq, 1)})
    device = torch.device(args.device)
    torch.manual_seed(0)
    shots = nn.functional.normalize(torch.randn(args.batch, args.seq, cfg.fused_dim), dim=-1)
    lengths = torch.full((args.batch,), args.seq)
    mask = sample_mask(lengths, args.seq, cfg.mask_ratio, torch.Generator().manual_seed(0))
    batch = (shots.to(device), lengths.to(device), None, mask.to(device))
    flops = train_flops(cfg, args.batch, args.seq)
    dtype = torch.bfloat16 if args.bf16 else torch.float32

    fns = {"matmul peak": lambda: matmul_peak(device, dtype)}
    for name, build, optim in VARIANTS:
        torch.manual_seed(0)
        model = build(cfg).to(device)
        if optim == "adamw":
            opts = [torch.optim.AdamW(model.parameters(), lr=1e-4,
                                      **({"fused": True} if device.type == "cuda" else {}))]
        else:
            opts = build_optimizers(model, 1e-4, 0.02, 0.01)
        fns[name] = (lambda m=model, o=opts: timed(
            lambda: run_steps(m, o, batch, args.bf16, args.steps),
            lambda: sync(device)) / args.steps)
    runs = harness.interleaved(fns, args.repeats, args.warmup)
    peak = runs.pop("matmul peak")
    result = {"benchmark": "train_throughput", "machine": harness.machine(str(device)),
              "shape": {"hidden": cfg.hidden, "layers": cfg.layers, "heads": cfg.heads,
                        "mlp": int(cfg.hidden * cfg.mlp_ratio), "fused": cfg.fused_dim,
                        "batch": args.batch, "seq": args.seq,
                        "precision": "bf16 autocast" if args.bf16 else "fp32"},
              "repeats": args.repeats, "steps_per_measurement": args.steps,
              "matmul_peak_gflops": harness.summary([x / 1e9 for x in peak]),
              "variants": {}, "ratios": {}}
    for name, sec in runs.items():
        result["variants"][name] = {
            "s_per_step": harness.summary(sec),
            "shots_per_s": harness.summary([args.batch * args.seq / t for t in sec]),
            "mfu": harness.summary([flops / t / pk for t, pk in zip(sec, peak, strict=True)])}
    a, b = RATIO
    result["ratios"][f"{a.split(',')[0]} / {b.split(',')[0]} (shots/s, same optimiser)"] = \
        harness.ratio([1 / t for t in runs[a]], [1 / t for t in runs[b]])
    print(render(result))
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    harness.write(f"train_throughput{suffix}", result, args.json)


def render(r: dict) -> str:
    """The README table of one results file."""
    sh = r["shape"]
    rows = [[name, harness.fmt(v["shots_per_s"], ".0f"), harness.fmt(v["s_per_step"], ".3f"),
             harness.fmt({k: 100 * x for k, x in v["mfu"].items() if k != "values"}, ".1f")
             + " %"] for name, v in r["variants"].items()]
    lines = [f"Shape: hidden {sh['hidden']}, {sh['layers']} layers, {sh['heads']} heads, MLP "
             f"{sh['mlp']}, fused {sh['fused']}, batch {sh['batch']} × {sh['seq']} shots, "
             f"{sh['precision']}; {r['repeats']} interleaved rounds of "
             f"{r['steps_per_measurement']} steps after a warm-up round. Measured matmul peak "
             f"(same dtype and threads, each round): "
             f"{harness.fmt(r['matmul_peak_gflops'], '.1f')} GFLOP/s.", "",
             harness.markdown_table(["model, optimiser", "shots/s median (range)",
                                     "s/step", "MFU"], rows), ""]
    lines += [f"**{name}: {harness.fmt_ratio(x)}** (median of per-round ratios, range)."
              for name, x in r["ratios"].items()]
    return "\n".join([*lines, "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
