"""Loss, retrieval ranks and baselines against brute-force restatements."""

from __future__ import annotations

import torch

from mediafm.objective import (
    masked_cosine_loss,
    neighbour_mean,
    retrieval_ranks,
    window_mean,
)


def test_loss_is_cosine_distance_on_masked_only():
    x = torch.randn(2, 5, 8)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = True
    pred = x.clone()
    pred[0, 0] = -x[0, 0]  # unmasked errors are ignored
    assert masked_cosine_loss(pred, x, mask).item() < 1e-6
    pred[1, 3] = -x[1, 3]
    assert abs(masked_cosine_loss(pred, x, mask).item() - 1.0) < 1e-5  # (0 + 2) / 2


def test_neighbour_mean_brute_force():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3)
    lengths = torch.tensor([7, 5])
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 1], [1, 0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    got = neighbour_mean(x, lengths, mask)
    for b in range(2):
        n = int(lengths[b])
        for i in range(n):
            left = [j for j in range(i - 1, -1, -1) if not mask[b, j]][:1]
            right = [j for j in range(i + 1, n) if not mask[b, j]][:1]
            want = x[b, left + right].mean(0)
            torch.testing.assert_close(got[b, i], want)
    wm = window_mean(x, lengths, mask)
    torch.testing.assert_close(wm[1, 0], x[1, [1, 4]].mean(0))


def test_retrieval_ranks():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 16)
    lengths = torch.tensor([4])
    mask = torch.tensor([[1, 0, 1, 0, 0, 0]], dtype=torch.bool)
    assert retrieval_ranks(x, x, lengths, mask).tolist() == [0, 0]
    pred = x.clone()
    pred[0, 0] = x[0, 3]  # predicts another real shot exactly: true one ranks behind it
    pred[0, 2] = x[0, 5]  # most similar to a padded shot, which is not a candidate
    cos = torch.nn.functional.cosine_similarity
    want = [int(sum(cos(pred[0, i], x[0, j], dim=0) > cos(pred[0, i], x[0, i], dim=0)
                    for j in range(4))) for i in (0, 2)]  # real shots only: 0..3
    ranks = retrieval_ranks(pred, x, lengths, mask)
    assert ranks.tolist() == want
    assert ranks[0] >= 1  # shot 3 is an exact match, so it ranks ahead of the truth
