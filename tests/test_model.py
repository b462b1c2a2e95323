"""MediaFM: config, shapes, padding invariance, save/load."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mediafm.config import load_toml
from mediafm.model import MediaFM, MediaFMConfig, alibi_bias, rope_tables, rotate

CFG = MediaFMConfig(fused_dim=24, title_dim=5, hidden=32, layers=2, heads=4, dropout=0.0,
                    max_shots=16)


def test_config_is_frozen_and_strict():
    with pytest.raises(dataclasses_error()):
        CFG.hidden = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown MediaFMConfig key"):
        MediaFMConfig.from_dict({"hidden": 32, "hiden": 4})
    with pytest.raises(ValueError, match="divisible"):
        MediaFMConfig(hidden=30, heads=4)
    spec = MediaFMConfig()
    assert (spec.fused_dim, spec.max_shots, spec.mask_ratio) == (2304, 512, 0.2)


def dataclasses_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_named_configs_match_the_spec():
    base = load_toml("base")["model"]
    assert (base["layers"], base["hidden"], base["heads"], base["max_shots"]) == (12, 768, 12, 512)
    assert load_toml("tiny")["model"]["hidden"] < 768
    with pytest.raises(ValueError, match="unknown config"):
        load_toml("huge")


def test_forward_shapes_and_token_layout():
    torch.manual_seed(0)
    m = MediaFM(CFG).eval()
    x = torch.randn(3, 10, 24)
    h, pred = m(x, torch.tensor([10, 7, 3]), torch.randn(3, 5))
    assert h.shape == (3, 10, 32) and pred.shape == (3, 10, 24)
    assert m.pos_emb.shape == (16 + 2, 32)  # [CLS], [GLOBAL] + max_shots
    with pytest.raises(ValueError, match="exceeds max_shots"):
        m(torch.randn(1, 17, 24), torch.tensor([17]))


def test_title_embedding_reaches_every_shot():
    torch.manual_seed(0)
    m = MediaFM(CFG).eval()
    x = torch.randn(1, 6, 24)
    h1, _ = m(x, torch.tensor([6]), torch.zeros(1, 5))
    h2, _ = m(x, torch.tensor([6]), torch.ones(1, 5))
    assert (h1 - h2).abs().amax(dim=-1).min() > 1e-4  # [GLOBAL] is attended by all shots


def test_mask_replaces_input():
    torch.manual_seed(0)
    m = MediaFM(CFG).eval()
    x, y = torch.randn(1, 6, 24), torch.randn(1, 6, 24)
    mask = torch.zeros(1, 6, dtype=torch.bool)
    mask[0, 2] = True
    y[0, 2] = x[0, 2] * 0  # differs only at the masked position
    y[0, :2], y[0, 3:] = x[0, :2], x[0, 3:]
    lengths = torch.tensor([6])
    a, _ = m(x, lengths, mask=mask)
    b, _ = m(y, lengths, mask=mask)
    torch.testing.assert_close(a, b)  # the masked shot's own input is invisible


@pytest.mark.parametrize("positions", ["learned", "rope", "alibi"])
def test_padding_does_not_change_real_shots(positions):
    torch.manual_seed(0)
    m = MediaFM(replace(CFG, positions=positions)).eval()
    short = torch.randn(1, 5, 24)
    title = torch.randn(1, 5)
    alone, _ = m(short, torch.tensor([5]), title)
    padded = torch.cat([short, torch.randn(1, 9, 24)], dim=1)  # garbage in the padding
    batch = torch.cat([padded, torch.randn(1, 14, 24)])
    out, _ = m(batch, torch.tensor([5, 14]), torch.cat([title, torch.randn(1, 5)]))
    torch.testing.assert_close(out[0, :5], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "rope", "alibi"])
def test_save_load_round_trip_exact(tmp_path, positions):
    torch.manual_seed(0)
    cfg = replace(CFG, positions=positions)
    m = MediaFM(cfg)
    m.save_pretrained(tmp_path / "model")
    loaded = MediaFM.from_pretrained(tmp_path / "model")
    assert loaded.config == cfg
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    m.eval()
    x = torch.randn(2, 8, 24)
    lengths = torch.tensor([8, 4])
    torch.testing.assert_close(m(x, lengths)[1], loaded(x, lengths)[1], rtol=0, atol=0)
    m.save_pretrained(tmp_path / "model")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_load_is_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    MediaFM(CFG).save_pretrained(tmp_path / "m")
    state = load_file(tmp_path / "m" / "model.safetensors")
    state.pop("mask_emb")
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(RuntimeError, match="mask_emb"):
        MediaFM.from_pretrained(tmp_path / "m")


def test_no_title_metadata():
    """title_dim=0: [GLOBAL] is the learned bias alone, whatever title tensor is passed."""
    torch.manual_seed(0)
    m = MediaFM(MediaFMConfig(fused_dim=8, title_dim=0, hidden=16, layers=1, heads=2,
                              max_shots=8)).eval()
    assert m.title_proj is None
    x, lengths = torch.randn(2, 4, 8), torch.tensor([4, 2])
    h, _ = m(x, lengths, torch.zeros(2, 0))
    torch.testing.assert_close(m(x, lengths)[0], h, rtol=0, atol=0)
    with torch.no_grad():
        m.global_emb.add_(torch.randn(16))  # the learned [GLOBAL] token: seen by every shot
    assert (m(x, lengths)[0][0] - h[0]).abs().amax(dim=-1).min() > 1e-4


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    m = MediaFM(CFG).train()
    x, lengths = torch.randn(2, 7, 24), torch.tensor([7, 4])
    grads = []
    for flag in (False, True):
        m.activation_checkpointing = flag
        m.zero_grad()
        m(x, lengths, torch.randn(2, 5, generator=torch.Generator().manual_seed(1)))[1].sum(
            ).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, msg=name)


def test_rope_scores_depend_only_on_the_offset():
    """q.k after rotation is the same for positions (p, p') and (p + d, p' + d)."""
    torch.manual_seed(0)
    cos, sin = rope_tables(64, 8)
    q, k = torch.randn(8), torch.randn(8)

    def score(p: int, p2: int) -> float:
        return float(rotate(q, cos[p], sin[p]) @ rotate(k, cos[p2], sin[p2]))

    for p, p2, d in ((3, 10, 5), (0, 1, 40), (20, 2, 11)):
        assert score(p, p2) == pytest.approx(score(p + d, p2 + d), abs=1e-5)
    assert score(3, 10) != pytest.approx(score(3, 11), abs=1e-3)


def test_alibi_bias_is_distance_between_shots_only():
    bias = alibi_bias(6, heads=4)  # (4, 8, 8): [CLS], [GLOBAL], 6 shots
    assert bias.shape == (4, 8, 8)
    assert torch.equal(bias[:, :2], torch.zeros(4, 2, 8))  # special tokens: no time
    assert torch.equal(bias[:, :, :2], torch.zeros(4, 8, 2))
    shots = bias[:, 2:, 2:]
    torch.testing.assert_close(shots, shots.transpose(1, 2))  # symmetric
    slopes = -shots[:, 0, 1]
    assert (slopes > 0).all() and (slopes[:-1] > slopes[1:]).all()  # local to global heads
    torch.testing.assert_close(shots[:, 0, 5], 5 * shots[:, 0, 1])


def test_attention_dropout_is_its_own_knob():
    """None follows ``dropout`` (BERT); 0 keeps the fused CPU attention kernel (tiny)."""
    assert MediaFM(replace(CFG, dropout=0.1)).blocks[0].attn_dropout == 0.1
    assert MediaFM(replace(CFG, dropout=0.1, attn_dropout=0.0)).blocks[0].attn_dropout == 0.0
    with pytest.raises(ValueError, match="attn_dropout"):
        replace(CFG, attn_dropout=1.5)
    torch.manual_seed(0)
    m = MediaFM(replace(CFG, dropout=0.0, attn_dropout=0.5)).train()
    x, lengths = torch.randn(1, 6, 24), torch.tensor([6])
    assert not torch.equal(m(x, lengths)[0], m(x, lengths)[0])  # it does drop in training
    m.eval()
    assert torch.equal(m(x, lengths)[0], m(x, lengths)[0])


def test_embedding_dropout_is_its_own_knob():
    """None follows ``dropout`` (the same draws, so the same outputs as naming it); a value
    drops the embeddings alone, the residual branches keep ``dropout``."""
    x, lengths = torch.randn(2, 6, 24), torch.tensor([6, 4])

    def train_out(**change) -> torch.Tensor:
        torch.manual_seed(0)
        m = MediaFM(replace(CFG, **change)).train()
        return m(x, lengths)[0]

    assert torch.equal(train_out(dropout=0.3), train_out(dropout=0.3, embed_dropout=0.3))
    assert not torch.equal(train_out(dropout=0.3), train_out(dropout=0.3, embed_dropout=0.0))
    m = MediaFM(replace(CFG, dropout=0.2, embed_dropout=0.1))
    assert (m.drop.p, m.blocks[0].drop.p) == (0.1, 0.2)
    with pytest.raises(ValueError, match="embed_dropout"):
        replace(CFG, embed_dropout=1.0)


def test_title_clock_tells_each_shot_where_it_sits_in_its_title():
    from mediafm.model import window_clock

    torch.manual_seed(0)
    m = MediaFM(replace(CFG, title_clock=True)).eval()
    x, lengths = torch.randn(2, 6, 24), torch.tensor([6, 4])
    clock = window_clock(lengths, 6)
    assert clock[0].tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert clock[1, :4].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # no clock given: each row is a whole title
    torch.testing.assert_close(m(x, lengths)[0], m(x, lengths, clock=clock)[0])
    # the same six shots as the end of a longer title embed differently
    late = 0.5 + 0.5 * clock
    assert (m(x, lengths, clock=late)[0] - m(x, lengths)[0]).abs().max() > 1e-4
    # a masked shot still knows its place
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, 2] = True
    a, _ = m(x, lengths, mask=mask)
    b, _ = m(x, lengths, mask=mask, clock=late)
    assert (a[:, 2] - b[:, 2]).abs().max() > 1e-4
    assert not hasattr(MediaFM(CFG), "clock_proj") or MediaFM(CFG).clock_proj is None
