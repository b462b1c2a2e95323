"""Masked shot modeling: the loss, and the validation metrics with their simple baselines.

Loss (MEDIAFM.md §3): mean cosine distance, 1 - cos(prediction, original fused vector), over
masked real shots only. Retrieval: rank the true shot among all real shots of its window (the
whole title when it fits) by cosine similarity to the prediction; top-1 / top-5 accuracy.

Baselines are predictions a model must beat to show it learnt context, computed on the same
masks: the mean of the nearest unmasked neighbour on each side ("neighbour mean"), and the mean
of all unmasked shots of the window ("window mean").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_cosine_sum(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                      ) -> torch.Tensor:
    """Sum over masked positions of 1 - cos(pred, target): the loss's numerator, for shards."""
    cos = F.cosine_similarity(pred[mask].float(), target[mask].float(), dim=-1)
    return (1.0 - cos).sum()


def masked_cosine_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                       ) -> torch.Tensor:
    """Mean over masked positions of 1 - cos(pred, target). pred/target (B, L, D), mask (B, L)."""
    return masked_cosine_sum(pred, target, mask) / mask.sum()


def neighbour_mean(shots: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
                   ) -> torch.Tensor:
    """(B, L, D): at each position, the mean of the nearest unmasked real shot left and right."""
    B, L, _ = shots.shape
    pos = torch.arange(L)
    visible = ~mask & (pos[None] < lengths[:, None])  # (B, L)
    big = L + 1
    left_idx = torch.where(visible, pos[None], -1).cummax(dim=1).values  # last visible <= i
    left_idx = torch.cat([torch.full((B, 1), -1), left_idx[:, :-1]], dim=1)  # strictly < i
    right_src = torch.where(visible, pos[None], big).flip(1).cummin(dim=1).values.flip(1)
    right_idx = torch.cat([right_src[:, 1:], torch.full((B, 1), big)], dim=1)  # strictly > i
    out = torch.zeros_like(shots)
    count = torch.zeros(B, L, 1)
    for idx, ok in ((left_idx, left_idx >= 0), (right_idx, right_idx < L)):
        gathered = shots.gather(1, idx.clamp(0, L - 1)[..., None].expand_as(shots))
        out += gathered * ok[..., None]
        count += ok[..., None]
    return out / count.clamp(min=1)


def window_mean(shots: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
    """(B, L, D): the mean of the unmasked real shots of each row, at every position."""
    visible = (~mask & (torch.arange(shots.shape[1])[None] < lengths[:, None])).float()
    mean = (shots * visible[..., None]).sum(1) / visible.sum(1, keepdim=True).clamp(min=1)
    return mean[:, None].expand_as(shots)


def retrieval_ranks(pred: torch.Tensor, shots: torch.Tensor, lengths: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """0-based rank of each masked shot's true vector among its row's real shots."""
    p = F.normalize(pred.float(), dim=-1)
    s = F.normalize(shots.float(), dim=-1)
    sims = p @ s.transpose(1, 2)  # (B, L, L): prediction i vs candidate j
    pad = torch.arange(shots.shape[1])[None, None] >= lengths[:, None, None]
    sims = sims.masked_fill(pad, float("-inf"))
    true = sims.diagonal(dim1=1, dim2=2)[..., None]  # (B, L, 1)
    ranks = (sims > true).sum(-1)  # (B, L)
    return ranks[mask]


class MSMMetrics:
    """Accumulates loss and retrieval over batches for one predictor."""

    def __init__(self) -> None:
        self.loss_sum, self.n, self.top1, self.top5 = 0.0, 0, 0, 0

    def update(self, pred: torch.Tensor, shots: torch.Tensor, lengths: torch.Tensor,
               mask: torch.Tensor) -> None:
        n = int(mask.sum())
        self.loss_sum += float(masked_cosine_sum(pred, shots, mask))
        ranks = retrieval_ranks(pred, shots, lengths, mask)
        self.n += n
        self.top1 += int((ranks < 1).sum())
        self.top5 += int((ranks < 5).sum())

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"loss": self.loss_sum / n, "top1": self.top1 / n, "top5": self.top5 / n}
