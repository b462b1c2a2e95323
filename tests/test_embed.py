"""Contextual shot and clip embeddings: windows, the most-central rule, clip modes, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from mediafm.embed import (
    embed_clips,
    embed_sequences,
    embed_store,
    readout,
    readout_blocks,
    title_blocks,
)
from mediafm.errors import StoreError
from mediafm.model import MediaFM, MediaFMConfig


@pytest.fixture(scope="module")
def model(store):
    torch.manual_seed(0)
    cfg = MediaFMConfig(fused_dim=store.dims["fused"], title_dim=store.dims["metadata"],
                        hidden=32, layers=2, heads=4, dropout=0.1, max_shots=16)
    return MediaFM(cfg).eval()


def direct(model, seq, title):
    with torch.no_grad():
        h, _ = model(torch.tensor(seq)[None], torch.tensor([len(seq)]),
                     torch.from_numpy(title)[None].float())
    return h[0].numpy()


def test_long_sequence_uses_most_central_window(model):
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(40, model.config.fused_dim)).astype(np.float32)
    title = rng.normal(size=model.config.title_dim).astype(np.float32)
    (got,) = embed_sequences(model, [seq], title[None], "hidden", batch_size=3)
    assert got.shape == (40, 32)
    starts = [0, 8, 16, 24]  # width 16, stride 8, last window flush with the end
    outs = {s: direct(model, seq[s:s + 16], title) for s in starts}
    for p in range(40):
        best = min((s for s in starts if s <= p < s + 16), key=lambda s: abs(p - (s + 7.5)))
        np.testing.assert_allclose(got[p], outs[best][p - best], atol=1e-5)


def test_batched_equals_one_by_one(model):
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(n, model.config.fused_dim)).astype(np.float32)
            for n in (3, 16, 9, 30)]
    titles = rng.normal(size=(4, model.config.title_dim)).astype(np.float32)
    for output in ("hidden", "input+context"):
        together = embed_sequences(model, seqs, titles, output, batch_size=4)
        for s, t, e in zip(seqs, titles, together, strict=True):
            np.testing.assert_allclose(e, embed_sequences(model, [s], t[None], output)[0],
                                       atol=1e-5)


def test_embed_store_writes_every_shot(model, store, tmp_path):
    out = embed_store(model, store, tmp_path / "shots.parquet", output="hidden", progress=False)
    table = pq.read_table(out)
    assert table.num_rows == store.info.n_shots
    frame = table.to_pandas()
    t = store.titles.iloc[0]
    rows = frame[frame.title_id == t.title_id].sort_values("shot_index")
    assert rows.shot_index.tolist() == list(range(t.n_shots))
    emb = np.stack(rows.embedding.to_list())
    want = embed_sequences(model, [store.title_vectors(t.title_id)],
                           store.title_embeddings()[[0]], "hidden")[0]
    np.testing.assert_allclose(emb, want, atol=1e-5)
    out2 = embed_store(model, store, tmp_path / "o.parquet", output="output", progress=False)
    assert pq.read_schema(out2).field("embedding").type.list_size == store.dims["fused"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_clip_modes(model, store):
    t = store.titles.iloc[1]
    clips = pd.DataFrame({"clip_id": ["a", "b"], "title_id": [t.title_id] * 2,
                          "first_shot": [2, 10], "last_shot": [6, 10]})
    fused = store.title_vectors(t.title_id)
    title = store.title_embeddings()[1]
    ctx = embed_clips(model, store, clips, "in-context", "hidden", progress=False)
    only = embed_clips(model, store, clips, "clip-only", "hidden", progress=False)
    full = embed_sequences(model, [fused], title[None], "hidden")[0]
    np.testing.assert_allclose(ctx.embedding[0], full[2:7].mean(0), atol=1e-5)
    np.testing.assert_allclose(only.embedding[0], direct(model, fused[2:7], title).mean(0),
                               atol=1e-5)
    assert not np.allclose(ctx.embedding[0], only.embedding[0], atol=1e-3)  # context matters
    assert ctx.clip_id.tolist() == ["a", "b"]


@pytest.mark.parametrize("change,match", [
    ({"title_id": "nope"}, "title 'nope' is not in the store"),
    ({"last_shot": 10_000}, "outside title"),
    ({"first_shot": 5, "last_shot": 4}, "first > last"),
])
def test_bad_clips(model, store, change, match):
    row = {"clip_id": "c1", "title_id": store.titles.title_id[0], "first_shot": 0,
           "last_shot": 3, **change}
    with pytest.raises(StoreError, match=match):
        embed_clips(model, store, pd.DataFrame([row]), progress=False)


def test_duplicate_and_missing_clip_columns(model, store):
    t = store.titles.title_id[0]
    dup = pd.DataFrame({"clip_id": ["x", "x"], "title_id": [t, t], "first_shot": [0, 1],
                        "last_shot": [1, 2]})
    with pytest.raises(StoreError, match="clip_id 'x' appears twice"):
        embed_clips(model, store, dup, progress=False)
    with pytest.raises(StoreError, match="missing column"):
        embed_clips(model, store, dup.drop(columns=["last_shot"]), progress=False)


def test_context_readout_is_the_hidden_state_of_the_masked_shot(model):
    """``context``: shot i's hidden state when it is masked, in the pass that masks every
    5th shot (mask ratio 0.2) starting at i % 5; ``input+context`` puts the shot's input
    projection before it; ``input+context+visible`` adds its mean hidden state in the 4 passes
    that leave it visible, and ``+ahead`` the next shot's context."""
    rng = np.random.default_rng(2)
    seq = rng.normal(size=(12, model.config.fused_dim)).astype(np.float32)
    title = rng.normal(size=(1, model.config.title_dim)).astype(np.float32)
    (ctx,) = embed_sequences(model, [seq], title, "context")
    (both,) = embed_sequences(model, [seq], title, "input+context")
    (with_visible,) = embed_sequences(model, [seq], title, "input+context+visible")
    x, t = torch.tensor(seq)[None], torch.from_numpy(title)
    with torch.no_grad():
        h = [model(x, torch.tensor([12]), t, (torch.arange(12) % 5 == r)[None])[0][0].numpy()
             for r in range(5)]
        for i in range(12):
            np.testing.assert_allclose(ctx[i], h[i % 5][i], atol=1e-5)
            visible = np.mean([h[r][i] for r in range(5) if r != i % 5], axis=0)
            np.testing.assert_allclose(with_visible[i, -len(visible):], visible, atol=1e-5)
        proj = model.input_proj(x)[0].numpy()
    np.testing.assert_allclose(with_visible[:, :-model.config.hidden], np.hstack([proj, ctx]),
                               atol=1e-5)
    np.testing.assert_allclose(both, np.hstack([proj, ctx]), atol=1e-5)
    (ahead,) = embed_sequences(model, [seq], title, "input+context+visible+ahead")
    np.testing.assert_allclose(ahead[:, :-model.config.hidden], with_visible, atol=1e-5)
    after = np.vstack([ctx[1:], np.zeros_like(ctx[:1])])  # the next shot's; none after the last
    np.testing.assert_allclose(ahead[:, -model.config.hidden:], after, atol=1e-5)
    unmasked = embed_sequences(model, [seq], title, "hidden")[0]
    assert not np.allclose(ctx, unmasked, atol=1e-3)  # masking changes what the shot sees
    (three,) = embed_sequences(model, [seq], title, "input+context+hidden")
    np.testing.assert_allclose(three, np.hstack([proj, ctx, unmasked]), atol=1e-5)
    hidden = model.config.hidden
    assert readout_blocks(model, "input+context+hidden") == (hidden,) * 3
    assert readout_blocks(model, "input+context") == (hidden,) * 2
    passes = []  # what each readout costs: the masked passes, and the plain one if it needs it
    hook = model.norm.register_forward_hook(lambda *_: passes.append(1))
    try:
        for output, want in (("input+context", 5), ("context", 5), ("hidden", 1),
                             ("input+context+hidden", 6), ("input+context+visible", 5),
                             ("input+context+visible+ahead", 5),
                             ("input+context+visible+ahead+scene", 5),
                             ("input+context+visible+ahead+scene-input+scene", 5)):
            passes.clear()
            embed_sequences(model, [seq], title, output)
            assert len(passes) == want, output
    finally:
        hook.remove()


def test_scene_block_is_the_mean_context_of_the_shots_scene(model):
    """``+scene``: each shot's context vector averaged over its scene, the scenes found in
    the fused vectors of the whole title (here 40 shots, several windows of 16): three
    scenes of one picture each (and a little noise per shot), so the change points are
    exactly where the scenes change."""
    rng = np.random.default_rng(4)
    starts = [0, 13, 27, 40]
    pictures = rng.normal(size=(3, model.config.fused_dim)).astype(np.float32)
    seq = np.repeat(pictures, np.diff(starts), axis=0)
    seq += 0.05 * rng.normal(size=seq.shape).astype(np.float32)  # shots of a scene differ
    title = rng.normal(size=(1, model.config.title_dim)).astype(np.float32)
    (rest,) = embed_sequences(model, [seq], title, "input+context+visible+ahead")
    (got,) = embed_sequences(model, [seq], title, "input+context+visible+ahead+scene")
    hidden = model.config.hidden
    np.testing.assert_allclose(got[:, :-hidden], rest, atol=1e-6)
    ctx = rest[:, hidden:2 * hidden]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        np.testing.assert_allclose(got[a:b, -hidden:], np.tile(ctx[a:b].mean(0), (b - a, 1)),
                                   atol=1e-5)
    assert not np.allclose(got[0, -hidden:], got[13, -hidden:], atol=1e-3)
    assert readout_blocks(model, "input+context+visible+ahead+scene") == (hidden,) * 5

    # +scene-input+scene: the scene's mean input projection, then the same mean context
    both_name = "input+context+visible+ahead+scene-input+scene"
    (both,) = embed_sequences(model, [seq], title, both_name)
    np.testing.assert_allclose(both[:, :-2 * hidden], rest, atol=1e-6)
    np.testing.assert_allclose(both[:, -hidden:], got[:, -hidden:], atol=1e-6)
    own = rest[:, :hidden]
    assert not np.allclose(own[0], own[1], atol=1e-3)
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        np.testing.assert_allclose(both[a:b, -2 * hidden:-hidden],
                                   np.tile(own[a:b].mean(0), (b - a, 1)), atol=1e-5)
    assert readout_blocks(model, both_name) == (hidden,) * 6

    # +title: the whole title's mean context vector, on every shot
    (titled,) = embed_sequences(model, [seq], title, both_name + "+title")
    np.testing.assert_allclose(titled[:, :-hidden], both, atol=1e-6)
    np.testing.assert_allclose(titled[:, -hidden:], np.tile(ctx.mean(0), (40, 1)), atol=1e-5)
    assert readout_blocks(model, both_name + "+title") == (hidden,) * 7

    # +scene-fused+scene+title: the scene's mean fused vector (fused_dim columns, one probe
    # block per modality) in place of its mean input projection; the rest as before
    fused_name = "input+context+visible+ahead+scene-fused+scene+title"
    (with_fused,) = embed_sequences(model, [seq], title, fused_name)
    fd = model.config.fused_dim
    assert with_fused.shape == (40, 6 * hidden + fd)
    np.testing.assert_allclose(with_fused[:, :4 * hidden], rest, atol=1e-6)
    np.testing.assert_allclose(with_fused[:, -2 * hidden:], titled[:, -2 * hidden:], atol=1e-6)
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        np.testing.assert_allclose(with_fused[a:b, 4 * hidden:4 * hidden + fd],
                                   np.tile(seq[a:b].mean(0), (b - a, 1)), atol=1e-5)
    assert readout_blocks(model, fused_name) == (hidden,) * 4 + (fd,) + (hidden,) * 2
    split = (fd - 2, 2)  # the store's modality widths
    assert readout_blocks(model, fused_name, split) == (hidden,) * 4 + split + (hidden,) * 2
    for name in ("input+context+visible+ahead+scene", both_name, both_name + "+title",
                 fused_name):
        with pytest.raises(ValueError, match="needs the whole title.*read out "
                                             "'input\\+context\\+visible\\+ahead'"):
            readout(model, torch.tensor(seq)[None], torch.tensor([40]),
                    torch.from_numpy(title), name)


def test_change_block_is_each_blocks_distance_to_the_previous_shot(model):
    """``+change``: after the four windowed blocks, each one's cosine distance to the
    previous shot's (0 for the first), computed on the stitched title (40 shots, windows of
    16); the rest of the readout is the same as without it. At the scene changes of a title
    of three pictures, the input projection moves most."""
    rng = np.random.default_rng(5)
    starts = [0, 13, 27, 40]
    pictures = rng.normal(size=(3, model.config.fused_dim)).astype(np.float32)
    seq = np.repeat(pictures, np.diff(starts), axis=0)
    seq += 0.05 * rng.normal(size=seq.shape).astype(np.float32)
    title = rng.normal(size=(1, model.config.title_dim)).astype(np.float32)
    base = "input+context+visible+ahead+scene-fused+scene+title"
    name = "input+context+visible+ahead+change+scene-fused+scene+title"
    (rest,) = embed_sequences(model, [seq], title, base)
    (got,) = embed_sequences(model, [seq], title, name)
    hidden, fd = model.config.hidden, model.config.fused_dim
    assert got.shape == (40, rest.shape[1] + 4)
    np.testing.assert_allclose(got[:, :4 * hidden], rest[:, :4 * hidden], atol=1e-6)
    np.testing.assert_allclose(got[:, 4 * hidden + 4:], rest[:, 4 * hidden:], atol=1e-6)
    change = got[:, 4 * hidden:4 * hidden + 4]
    for k in range(4):
        a, b = rest[:-1, k * hidden:(k + 1) * hidden], rest[1:, k * hidden:(k + 1) * hidden]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        np.testing.assert_allclose(change[1:-1, k], (1 - cos)[:-1], atol=1e-5)
    assert np.all(change[0] == 0) and change[-1, 3] == 0  # no next shot after the last
    cuts = change[:, 0].argsort()[-2:]
    assert sorted(cuts) == [13, 27], change[:, 0]
    assert readout_blocks(model, name) == (hidden,) * 4 + (4, fd) + (hidden,) * 2
    with pytest.raises(ValueError, match="needs the whole title.*change"):
        readout(model, torch.tensor(seq)[None], torch.tensor([40]), torch.from_numpy(title),
                name)


def test_clip_with_title_context(model, store):
    t = store.titles.iloc[2]
    clips = pd.DataFrame({"clip_id": ["a"], "title_id": [t.title_id], "first_shot": [1],
                          "last_shot": [3]})
    scene = "input+context+visible+ahead+scene-input+scene"  # [input ; context ; ...]
    got = embed_clips(model, store, clips, output=scene, progress=False,
                      with_title=True).embedding[0]
    fused = store.title_vectors(t.title_id)
    (per_shot,) = embed_sequences(model, [fused], store.title_embeddings()[[2]], scene)
    hidden = model.config.hidden
    title = np.hstack([fused.mean(0), per_shot[:, hidden:2 * hidden].mean(0)])
    np.testing.assert_allclose(got, np.hstack([per_shot[1:4].mean(0), title]), atol=1e-5)
    assert title_blocks(model, "input+context") == (model.config.fused_dim, hidden)
    assert title_blocks(model, "input+context+hidden", (3, 5)) == (3, 5, hidden)  # no hidden
    assert title_blocks(model, "input+context+visible", (3, 5)) == (3, 5, hidden)
    assert title_blocks(model, "fused+context", (3, 5)) == (3, 5, hidden)
    assert title_blocks(model, "hidden") == (model.config.fused_dim, hidden)
    # a readout with the title block carries the context mean already: the fused mean alone
    titled = scene + "+title"
    got = embed_clips(model, store, clips, output=titled, progress=False,
                      with_title=True).embedding[0]
    (per_shot,) = embed_sequences(model, [fused], store.title_embeddings()[[2]], titled)
    np.testing.assert_allclose(got, np.hstack([per_shot[1:4].mean(0), fused.mean(0)]),
                               atol=1e-5)
    np.testing.assert_allclose(per_shot[:, -hidden:].mean(0), title[-hidden:], atol=1e-5)
    assert title_blocks(model, titled, (3, 5)) == (3, 5)
    with pytest.raises(ValueError, match="with_title needs"):
        embed_clips(model, store, clips, "clip-only", progress=False, with_title=True)


def test_windows_of_a_long_title_carry_its_clock(model):
    """With the title clock, a shot of a 40-shot title embeds as its window does when told
    where that window sits in the title; clip-only treats the clip as the whole sequence."""
    from dataclasses import replace

    torch.manual_seed(0)
    clocked = MediaFM(replace(model.config, title_clock=True)).eval()
    rng = np.random.default_rng(2)
    seq = rng.normal(size=(40, clocked.config.fused_dim)).astype(np.float32)
    title = rng.normal(size=clocked.config.title_dim).astype(np.float32)
    (got,) = embed_sequences(clocked, [seq], title[None], "hidden")
    with torch.no_grad():
        h, _ = clocked(torch.tensor(seq[24:40])[None], torch.tensor([16]),
                       torch.from_numpy(title)[None],
                       clock=torch.arange(24, 40, dtype=torch.float32)[None] / 39)
    np.testing.assert_allclose(got[35], h[0, 11].numpy(), atol=1e-5)  # window 24..39
    (alone,) = embed_sequences(clocked, [seq[24:40]], title[None], "hidden")
    assert np.abs(alone[11] - got[35]).max() > 1e-4
