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
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from mediafm.config import load_toml
from mediafm.model import MediaFM, MediaFMConfig
from mediafm.objective import masked_cosine_loss
from mediafm.optim import build_optimizers
from mediafm.sequences import sample_mask


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


def time_steps(model, optimizers, batch, device, bf16: bool, steps: int, warmup: int) -> float:
    shots, lengths, title, mask = batch
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            _, pred = model(shots, lengths, title, mask)
        loss = masked_cosine_loss(pred.float(), shots, mask)
        loss.backward()
        for o in optimizers:
            o.step()
            o.zero_grad(set_to_none=True)
    sync(device)
    return (time.perf_counter() - t) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="tiny | base | file.toml (default: CPU-sized)")
    p.add_argument("--fused-dim", type=int, default=768)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPUs)")
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
    peak = matmul_peak(device, torch.bfloat16 if args.bf16 else torch.float32)

    rows = []
    for name, build, optim in (("MediaFM", MediaFM, "adamw"), ("BertModel (HF)", BertPeer,
                                                                "adamw"),
                               ("MediaFM", MediaFM, "muon+adamw")):
        torch.manual_seed(0)
        model = build(cfg).to(device)
        if optim == "adamw":
            opts = [torch.optim.AdamW(model.parameters(), lr=1e-4,
                                      **({"fused": True} if device.type == "cuda" else {}))]
        else:
            opts = build_optimizers(model, 1e-4, 0.02, 0.01)
        dt = time_steps(model, opts, batch, device, args.bf16, args.steps, args.warmup)
        rows.append((name, optim, args.batch * args.seq / dt, dt, flops / dt / peak))
        del model, opts

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda"
                                else f", {torch.get_num_threads()} threads"))
    print(f"shape: hidden {cfg.hidden}, layers {cfg.layers}, heads {cfg.heads}, "
          f"fused {cfg.fused_dim}, batch {args.batch} x {args.seq} shots, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}; measured matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s")
    print(f"{'model':<16} {'optimiser':<11} {'shots/s':>10} {'s/step':>8} {'MFU':>6}")
    for name, optim, sps, dt, mfu in rows:
        print(f"{name:<16} {optim:<11} {sps:>10.0f} {dt:>8.3f} {mfu:>6.1%}")
    print(f"ratio MediaFM / BertModel (same optimiser): {rows[0][2] / rows[1][2]:.2f}")


if __name__ == "__main__":
    main()
