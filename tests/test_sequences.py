"""Windows, plans, masking and the loader."""

from __future__ import annotations

import numpy as np
import torch

from mediafm.sequences import (
    WindowLoader,
    epoch_plan,
    sample_mask,
    split_titles,
    window_starts,
)


def test_window_starts_cover_every_shot():
    assert window_starts(100, 512, 256) == [0]
    starts = window_starts(1300, 512, 256)
    assert starts[0] == 0 and starts[-1] == 1300 - 512
    covered = np.zeros(1300, bool)
    for s in starts:
        covered[s:s + 512] = True
    assert covered.all()


def test_mask_is_exactly_the_ratio_of_real_shots():
    lengths = torch.tensor([10, 50, 3, 1])
    mask = sample_mask(lengths, 50, 0.2, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [2, 10, 1, 1]
    pad = torch.arange(50)[None] >= lengths[:, None]
    assert not (mask & pad).any()


def test_split_is_deterministic_and_disjoint():
    ids = [f"t{i}" for i in range(50)]
    train, val = split_titles(ids, 0.1)
    assert (train, val) == split_titles(list(ids), 0.1)
    assert len(val) == 5 and not set(train) & set(val) and len(train) + len(val) == 50


def test_plan_covers_all_titles_and_is_seeded(store):
    rows = list(range(len(store.titles)))
    layout = (store.part_numbers(), store.titles["n_shots"].to_numpy())
    a = epoch_plan(*layout, rows, 64, seed=1, epoch=0, parts_in_memory=2, batch_size=4)
    b = epoch_plan(*layout, rows, 64, seed=1, epoch=0, parts_in_memory=2, batch_size=4)
    c = epoch_plan(*layout, rows, 64, seed=1, epoch=1, parts_in_memory=2, batch_size=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(a[:, 0]) == set(rows)
    n = store.titles["n_shots"].to_numpy()
    assert (a[:, 1] + a[:, 2] <= n[a[:, 0]]).all() and (a[:, 2] <= 64).all()


def test_loader_batches_are_pure_functions_of_step(store):
    rows = list(range(len(store.titles)))
    loader = WindowLoader(store, rows, 64, 4, seed=0, parts_in_memory=1)
    again = WindowLoader(store, rows, 64, 4, seed=0, parts_in_memory=1)
    for step in (0, 3, loader.steps_per_epoch + 1):
        a, b = loader.batch(step), again.batch(step)
        assert torch.equal(a["shots"], b["shots"]) and torch.equal(a["title_emb"], b["title_emb"])
    batch = loader.batch(0)
    assert batch["shots"].shape[0] == 4 and batch["shots"].shape[2] == store.dims["fused"]
    assert len(loader.reader.rows.parts) <= 2  # bounded: parts_in_memory + 1
    # the windows hold real, contiguous shots of their title
    entry = loader.plan(0)[0]
    title = store.titles.iloc[entry[0]].title_id
    want = store.title_vectors(title)[entry[1]:entry[1] + entry[2]]
    np.testing.assert_array_equal(batch["shots"][0, :entry[2]].numpy(), want)


def test_large_store_generator_streams_titles(tmp_path):
    import pyarrow.parquet as pq

    from mediafm.store import ShotStore
    from mediafm.synthetic import write_large_store

    store = ShotStore(write_large_store(tmp_path / "big", 20_000, 32, shots_per_title=3000,
                                        progress=False))
    assert (store.info.n_shots, store.info.n_titles) == (20_000, 7)
    assert store.titles["n_shots"].tolist() == [3000] * 6 + [2000]
    for part in store.parts():  # parts hold whole titles and stay near their row budget
        assert pq.ParquetFile(store.path / "shots" / part).metadata.num_rows <= 8192
    x = store.title_vectors("title-0000003")
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert (x[1:] * x[:-1]).sum(1).mean() > 0.5  # neighbours correlated, like films
    loader = WindowLoader(store, list(range(7)), 512, 4, seed=0, parts_in_memory=1)
    _, batch = next(iter(loader.iterate(0, 1)))
    assert batch["shots"].shape == (4, 512, 32)


def test_worker_processes_yield_the_same_batches(store):
    loader = WindowLoader(store, list(range(len(store.titles))), 64, 4, seed=0)
    threaded = list(loader.iterate(2, 7))
    # read threads, started here before the workers fork: each worker makes its own
    loader = WindowLoader(store, list(range(len(store.titles))), 64, 4, seed=0, read_threads=2)
    assert len(list(loader.iterate(2, 4))) == 2
    multi = list(loader.iterate(2, 7, workers=2))
    assert len(multi) == 5
    for (ea, a), (eb, b) in zip(threaded, multi, strict=True):
        np.testing.assert_array_equal(ea, eb)
        assert torch.equal(a["shots"], b["shots"]) and torch.equal(a["title_emb"], b["title_emb"])
    _, shard = loader.shard(0, rank=1, world=2)  # rank 1 of 2 gets rows 1, 3
    assert torch.equal(shard["shots"][0, : int(shard["lengths"][0])],
                       loader.batch(0)["shots"][1, : int(shard["lengths"][0])])


def test_fused_cache_gives_the_same_batches(store, tmp_path):
    """The memory-mapped cache is only a faster path: every batch is bitwise the same,
    with one or several read threads, and when read into a recycled buffer."""
    import shutil

    from mediafm.store import CachedRows, ShotStore, write_fused_cache

    copy = tmp_path / "store"
    shutil.copytree(store.path, copy)
    write_fused_cache(copy, progress=False)
    cached = ShotStore(copy)
    assert cached.has_fused_cache and isinstance(cached.row_reader().rows, CachedRows)
    rows = list(range(len(store.titles)))
    plain = WindowLoader(store, rows, 64, 4, seed=0)
    fast = WindowLoader(cached, rows, 64, 4, seed=0, read_threads=3)
    buf = torch.full((4, 64, store.dims["fused"]), float("nan"))
    for step in range(plain.steps_per_epoch + 2):
        a, b = plain.batch(step), fast.batch(step)
        assert torch.equal(a["shots"], b["shots"]) and torch.equal(a["lengths"], b["lengths"])
        c = fast.load(fast.batch_windows(step), out=buf)  # padding is re-zeroed in a dirty buffer
        assert torch.equal(a["shots"], c["shots"]) and c["shots"].data_ptr() == buf.data_ptr()
    for part in store.parts():
        np.testing.assert_array_equal(cached.part_vectors(part), store.part_vectors(part))


def test_span_masks_keep_the_count_and_come_in_runs():
    lengths = torch.tensor([100, 37, 5])
    gen = torch.Generator().manual_seed(0)
    indep = sample_mask(lengths, 100, 0.2, gen)
    spans = sample_mask(lengths, 100, 0.2, torch.Generator().manual_seed(0), span=4.0)
    assert spans.sum(1).tolist() == indep.sum(1).tolist() == [20, 7, 1]
    pad = torch.arange(100)[None] >= lengths[:, None]
    assert not (spans & pad).any()

    def runs(m):  # number of maximal runs of masked shots
        return int((m[:, 1:] & ~m[:, :-1]).sum() + m[:, 0].sum())

    assert runs(spans) < 0.6 * runs(indep)


def test_crops_move_short_titles_off_position_zero(store):
    rows = list(range(len(store.titles)))
    layout = (store.part_numbers(), store.titles["n_shots"].to_numpy())
    plain = epoch_plan(*layout, rows, 512, seed=1, epoch=0, parts_in_memory=2)
    crops = epoch_plan(*layout, rows, 512, seed=1, epoch=0, parts_in_memory=2, crop=1.0)
    n = store.titles["n_shots"].to_numpy()
    short = n[plain[:, 0]] <= 512
    assert (plain[short, 1] == 0).all() and (plain[short, 2] == n[plain[short, 0]]).all()
    c_short = n[crops[:, 0]] <= 512
    assert (crops[c_short, 1] > 0).mean() > 0.5  # most crops start later
    assert (crops[:, 1] + crops[:, 2] <= n[crops[:, 0]]).all()
    assert (crops[c_short, 2] >= n[crops[c_short, 0]] // 2).all()


def test_sequence_length_warm_up(store):
    rows = list(range(len(store.titles)))
    loader = WindowLoader(store, rows, 64, 4, seed=0, short_steps=3, short_max_shots=16)
    plain = WindowLoader(store, rows, 64, 4, seed=0)
    for step in range(5):
        w, p = loader.batch_windows(step), plain.batch_windows(step)
        np.testing.assert_array_equal(w[:, 0], p[:, 0])
        if step < 3:  # cut to 16 shots, inside the planned window
            assert (w[:, 2] == np.minimum(p[:, 2], 16)).all()
            assert (w[:, 1] >= p[:, 1]).all() and (w[:, 1] + w[:, 2] <= p[:, 1] + p[:, 2]).all()
        else:
            np.testing.assert_array_equal(w, p)


def test_batches_carry_the_title_clock_of_their_windows(store):
    """Each window's shots at (start + j) / (n_shots - 1) of their whole title, crops and
    windows of long titles included."""
    rows = list(range(len(store.titles)))
    loader = WindowLoader(store, rows, 16, 4, seed=0, parts_in_memory=1, crop=1.0)
    n = store.titles["n_shots"].to_numpy()
    for step in range(3):
        windows = loader.batch_windows(step)
        batch = loader.load(windows)
        assert batch["clock"].shape == batch["shots"].shape[:2]
        for (row, start, length), clock in zip(windows, batch["clock"], strict=True):
            want = (start + np.arange(length)) / (n[row] - 1)
            np.testing.assert_allclose(clock[:length].numpy(), want, rtol=1e-6)
