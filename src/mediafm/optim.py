"""Muon for the hidden weight matrices, AdamW for everything else (MEDIAFM.md §3).

Muon orthogonalises each update of a 2-D weight (Newton-Schulz), which suits the square-ish
matrices inside Transformer blocks. It is the wrong tool for embeddings and heads (their rows
are per-token/per-output vectors), and undefined for 1-D gains and biases, so those go to
AdamW: the standard split of KellerJordan/Muon.

Split used here:
- Muon: every 2-D ``weight`` inside ``blocks`` (attention qkv and output projections, MLP).
- AdamW: input_proj, title_proj, output_proj, [CLS]/[GLOBAL]/[MASK] embeddings, positional
  embeddings, all LayerNorm gains/biases and all biases.

torch.optim.Muon runs its Newton-Schulz iteration in bfloat16, which is fast on GPUs but ~40x
slower than float32 on CPUs without native bf16 (AVX2 machines): there it dominated a tiny
model's step. ``Float32Muon`` is torch.optim.Muon with the same update computed in float32; it
is used on CPU only, keeps torch's state layout, and a test checks it against torch.optim.Muon.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def newton_schulz(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float) -> torch.Tensor:
    """torch.optim.Muon's quintic orthogonalisation of a 2-D update, in the input's dtype."""
    a, b, c = coefficients
    x = g.T if g.size(0) > g.size(1) else g
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if g.size(0) > g.size(1) else x


class Float32Muon(torch.optim.Muon):
    """torch.optim.Muon with a float32 Newton-Schulz step (for CPUs; see module docstring)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                update = newton_schulz(update.float(), group["ns_coefficients"],
                                       group["ns_steps"], group["eps"])
                A, B = p.shape
                fn = group["adjust_lr_fn"]
                ratio = (math.sqrt(max(1, A / B)) if fn in (None, "original")
                         else 0.2 * math.sqrt(max(A, B)) if fn == "match_rms_adamw" else 1.0)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-group["lr"] * ratio)
        return loss


def split_parameters(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the parameters that go to (Muon, AdamW)."""
    muon, adamw = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (muon if name.startswith("blocks.") and p.ndim == 2 else adamw).append(name)
    return muon, adamw


def build_optimizers(model: nn.Module, lr: float, muon_lr: float, weight_decay: float,
                     betas: tuple[float, float] = (0.9, 0.98)) -> list[torch.optim.Optimizer]:
    """[Muon, AdamW] over the split above. Weight decay only on matrices (not gains/biases)."""
    params = dict(model.named_parameters())
    muon_names, adamw_names = split_parameters(model)
    decay = [params[n] for n in adamw_names if params[n].ndim == 2 and "emb" not in n]
    no_decay = [params[n] for n in adamw_names if not (params[n].ndim == 2 and "emb" not in n)]
    on_gpu = next(model.parameters()).is_cuda
    fused = {"fused": True} if on_gpu else {}
    adamw = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=lr, betas=betas, **fused)
    optimizers: list[torch.optim.Optimizer] = [adamw]
    if muon_names:
        muon = torch.optim.Muon if on_gpu else Float32Muon
        optimizers.insert(0, muon([params[n] for n in muon_names], lr=muon_lr,
                                              weight_decay=weight_decay))
    return optimizers


def lr_lambda(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f
