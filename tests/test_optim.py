"""Muon / AdamW split, our float32 Muon against torch.optim.Muon, and the schedule."""

from __future__ import annotations

import math

import pytest
import torch

from mediafm.model import MediaFM, MediaFMConfig
from mediafm.optim import Float32Muon, build_optimizers, lr_lambda, split_parameters

CFG = MediaFMConfig(fused_dim=12, title_dim=3, hidden=16, layers=2, heads=2, max_shots=8)


def test_parameter_split():
    model = MediaFM(CFG)
    muon, adamw = split_parameters(model)
    expected_muon = {f"blocks.{i}.{n}.weight" for i in range(2)
                     for n in ("qkv", "proj", "fc1", "fc2")}
    assert set(muon) == expected_muon
    for name in ("input_proj.weight", "output_proj.weight", "title_proj.weight", "pos_emb",
                 "cls_emb", "global_emb", "mask_emb", "blocks.0.norm1.weight",
                 "blocks.0.qkv.bias", "norm.bias"):
        assert name in adamw
    assert len(muon) + len(adamw) == len(list(model.parameters()))
    opts = build_optimizers(model, 1e-3, 0.02, 0.01)
    assert isinstance(opts[0], torch.optim.Muon) and isinstance(opts[1], torch.optim.AdamW)
    n_muon = sum(len(g["params"]) for g in opts[0].param_groups)
    assert n_muon == 8


def test_float32_muon_matches_torch_muon():
    """Same trajectory as torch.optim.Muon, up to torch's bfloat16 Newton-Schulz rounding."""
    torch.manual_seed(0)
    w0 = torch.randn(24, 16)
    targets = [torch.randn(24, 16) for _ in range(5)]
    results = []
    for cls in (torch.optim.Muon, Float32Muon):
        w = torch.nn.Parameter(w0.clone())
        opt = cls([w], lr=0.02, weight_decay=0.1)
        for t in targets:
            ((w - t) ** 2).sum().backward()
            opt.step()
            opt.zero_grad()
        results.append(w.detach())
    change = (results[0] - w0).norm()
    assert change > 0.05
    assert (results[0] - results[1]).norm() / change < 0.02


def test_schedule_warmup_then_cosine():
    f = lr_lambda(warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
