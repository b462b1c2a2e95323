"""Using the embeddings: heads and calibrated predictions, moments, title embeddings, search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURE_READOUT

from mediafm.embed import TITLE_PART, embed_sequences, embed_titles
from mediafm.errors import Mismatch, NotFound, StoreError
from mediafm.heads import Heads, platt, predict
from mediafm.model import MediaFM, MediaFMConfig
from mediafm.moments import ad_breaks, highlights
from mediafm.probes.catalog_labels import TASKS
from mediafm.search import Index, build_index, remove_from_index


def test_heads_round_trip_and_cross_validated_scores(fitted):
    root, model, labels, heads = fitted
    assert heads.tasks == [t.name for t in TASKS]
    heads.save(root / "heads")
    again = Heads.load(root / "heads")
    X = np.random.default_rng(0).normal(size=(5, heads.meta["features"]["dim"]))
    for name, h in heads.heads.items():
        np.testing.assert_allclose(again.heads[name].scores(X), h.scores(X), rtol=1e-12)
        cv = again.heads[name].info["cv"]
        assert cv["metric"] == h.task.metric and np.isfinite(cv["score"])
    assert again.heads["tone"].labels == sorted({x for v in labels.tone.dropna() for x in v})
    # heads that learned something: cross-validated scores well above chance, whose level is
    # the positive rate for AP and 0 for Kendall's tau (the 30-step model of this fixture
    # has not learned context, run.json says so: a scene boundary, a change from the previous
    # shot, is beyond it; tests/test_context.py holds a trained model to that)
    from mediafm.probes.tasks import targets

    for task in TASKS:
        _, y, _ = targets(labels, task)
        chance = 0.0 if task.kind == "ranking" else float(np.mean(y))
        score = heads.heads[task.name].info["cv"]["score"]
        if task.kind == "ranking":
            assert score > 0.1, (task.name, score)
        elif task.kind != "boundary":
            assert score > 1.5 * chance, (task.name, score, chance)
    hidden, fused = model.config.hidden, model.config.fused_dim
    assert again.meta["features"] == {"readout": "input+context+visible", "with_title": True,
                                      "title": TITLE_PART, "dim": 3 * hidden + fused + hidden}


def test_heads_are_the_same_from_one_process_or_several(fitted, store):
    """Searches (each task's outer folds and final fit) run side by side in worker processes
    (the fixture's, one per core) give the very heads one process gives, and the very head
    ``fit_head`` fits for one task in order: the fit is one math thread wherever it runs."""
    from mediafm.heads import clip_features, fit_head, fit_heads
    from mediafm.probes.tasks import targets

    _, model, labels, heads = fitted
    feats = clip_features(store, model, labels, FIXTURE_READOUT, progress=False)
    tasks = [heads.heads[n].task for n in ("tone", "clip_worthy")]
    alone = fit_heads(feats, labels, tasks, folds=3, workers=1)
    for name, h in alone.items():
        np.testing.assert_array_equal(h.coef, heads.heads[name].coef)
        assert h.info == heads.heads[name].info
    idx, y, names = targets(labels, tasks[0])
    one = fit_head(tasks[0], names, feats.subset(idx), y, labels["title_id"].to_numpy()[idx], 3)
    np.testing.assert_array_equal(one.coef, alone[tasks[0].name].coef)
    np.testing.assert_array_equal(one.platt, alone[tasks[0].name].platt)
    assert one.info == alone[tasks[0].name].info


def test_feature_width_is_what_every_readout_gives(fitted, store):
    """``feature_width`` (what ``Heads.check`` holds saved heads to) is the width the heads'
    features really have, for every readout; the title part is [fused mean ; context mean],
    the context block alone also beside ``input+context+hidden``."""
    from mediafm.embed import READOUTS, feature_width
    from mediafm.heads import clip_features

    _, model, labels, _ = fitted
    few = labels[labels.title_id == labels.title_id.iloc[0]].head(3)
    for readout in READOUTS:
        feats = clip_features(store, model, few, readout, progress=False)
        assert feats.options[""].shape[1] == feature_width(model, readout, True), readout
        assert sum(feats.blocks) == feature_width(model, readout, True), readout
    hidden, fused = model.config.hidden, model.config.fused_dim
    assert feature_width(model, "input+context+hidden", True) == 3 * hidden + fused + hidden
    assert feature_width(model, "input+context", False) == 2 * hidden


def test_heads_of_an_older_title_feature_are_refused(fitted, store):
    """Heads saved before the title part held the fused mean, or (``input+context+hidden``)
    before it held the context mean alone, have other columns: predicting with them says so,
    instead of scoring shifted columns."""
    _, model, _, heads = fitted
    old = Heads(heads.heads, {**heads.meta, "features": {"readout": "input+context",
                                                         "with_title": True, "dim": 128}})
    with pytest.raises(Mismatch, match="older title feature.*fit them again"):
        predict(old, model, store, progress=False)
    hidden, fused = model.config.hidden, model.config.fused_dim
    wider = {"readout": "input+context+hidden", "with_title": True, "title": TITLE_PART,
             "dim": 3 * hidden + fused + 2 * hidden}  # [fused mean ; context ; hidden means]
    with pytest.raises(Mismatch, match=f"{wider['dim']} columns; now .* {wider['dim'] - hidden}"):
        predict(Heads(heads.heads, {**heads.meta, "features": wider}), model, store,
                progress=False)


def test_predictions_are_long_form_and_calibrated(fitted, store):
    _, model, labels, heads = fitted
    pred = predict(heads, model, store, progress=False)
    assert list(pred.columns) == ["title_id", "shot_index", "task", "label", "score"]
    n_labels = sum(len(h.labels) for h in heads.heads.values())
    assert len(pred) == store.info.n_shots * n_labels
    probs = pred[pred.task != "popularity"].score
    assert probs.between(0, 1).all() and probs.std() > 0.01
    # a one-shot clip is scored exactly as that shot is
    t = store.titles.title_id.iloc[0]
    clips = pd.DataFrame({"clip_id": ["x"], "title_id": [t], "first_shot": [3],
                          "last_shot": [3]})
    by_clip = predict(heads, model, store, clips, progress=False)
    by_shot = pred[(pred.title_id == t) & (pred.shot_index == 3)]
    np.testing.assert_allclose(by_clip.score.to_numpy(), by_shot.score.to_numpy(), atol=1e-5)


def test_heads_refuse_another_model(fitted, store):
    _, model, _, heads = fitted
    other = MediaFM(MediaFMConfig(**{**model.config.to_dict(), "hidden": 16}))
    with pytest.raises(Mismatch, match="hidden=32, but this model has hidden=16"):
        predict(heads, other, store, progress=False)


def test_platt_scaling_recovers_the_true_curve():
    rng = np.random.default_rng(0)
    s = rng.normal(size=20_000)
    y = rng.random(20_000) < 1 / (1 + np.exp(-(2.0 * s - 1.0)))
    a, b = platt(s, y)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-1.0, abs=0.1)


@pytest.mark.parametrize("seed", range(6))
def test_platt_scaling_stays_finite_when_one_title_scores_far_off(seed):
    """Out-of-fold scores where one title's 40 clips sit far from the rest and the label is
    noise (a boundary head on a 6-step model): plain Newton steps ran off to a ~ -1e10 on 5
    of these 6 seeds and every probability came out 0 or 1; the calibration must stay near
    the base rate."""
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(0, 1, 360), rng.normal(5.5, 0.3, 40)]
    y = rng.random(400) < 0.09
    a, b = platt(s, y)
    p = 1 / (1 + np.exp(-(a * s + b)))
    assert abs(a) < 1 and p.min() > 0.01 and p.max() < 0.5
    assert p.mean() == pytest.approx(y.mean(), abs=0.02)


def test_highlights_and_ad_breaks_on_known_scores():
    s = np.zeros(30)
    s[10:14] = 0.9  # the best run
    s[20:23] = 0.6
    got = highlights(s, k=2, min_shots=3, max_shots=4)
    assert [(lo, hi) for lo, hi, _ in got] == [(10, 13), (20, 22)]
    assert got[0][2] == pytest.approx(0.9)
    b = np.full(30, 0.05)
    b[[8, 17, 25]] = [0.9, 0.5, 0.8]  # scenes start at 8, 17, 25
    rel = np.zeros((30, 2))
    rel[17:25, 1] = 0.9  # the scene after the cut at 17 suits an ad of label 1
    rel[8:17, 0] = 0.2
    rel[25:, 0] = 0.3
    breaks = ad_breaks(b, k=3, relevance=rel)
    assert [m[0] for m in breaks] == [17, 25, 8]  # 0.5 * 0.9 > 0.8 * 0.3 > 0.9 * 0.2
    assert breaks[0][1] == 24 and breaks[0][4] == 1  # its scene ends before the next cut


def test_title_embeddings(fitted, store):
    _, model, _, _ = fitted
    mean = embed_titles(model, store, "mean", progress=False)
    both = embed_titles(model, store, "both", progress=False)
    assert mean.title_id.tolist() == both.title_id.tolist() == store.titles.title_id.tolist()
    t = store.titles.iloc[4]
    (per_shot,) = embed_sequences(model, [store.title_vectors(t.title_id)],
                                  store.title_embeddings()[[4]])
    np.testing.assert_allclose(mean.embedding[4], per_shot.mean(0), atol=1e-5)
    assert len(both.embedding[0]) == len(mean.embedding[0]) + model.config.hidden


def _embeddings(tmp_path, n_titles=30, n_shots=40, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_titles, dim))
    rows = [{"title_id": f"t{t}", "shot_index": i,
             "embedding": (centers[t] + 0.3 * rng.normal(size=dim)).astype(np.float32)}
            for t in range(n_titles) for i in range(n_shots)]
    pd.DataFrame(rows).to_parquet(tmp_path / "emb.parquet")
    x = np.stack([r["embedding"] for r in rows])
    return tmp_path / "emb.parquet", x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_search_matches_brute_force(tmp_path):
    path, x = _embeddings(tmp_path)
    index = Index.load(build_index(path, tmp_path / "index"))
    assert index.meta["index"]["exact"]
    hits = index.search("t3", 5, k=10)
    sims = x @ x[3 * 40 + 5]
    order = [i for i in np.argsort(-sims) if i != 3 * 40 + 5][:10]
    assert hits.shot_index.tolist() == [i % 40 for i in order]
    assert hits.title_id.tolist() == [f"t{i // 40}" for i in order]
    np.testing.assert_allclose(hits.score, sims[order], atol=1e-5)
    other = index.search("t3", 5, k=10, other_titles=True)  # t3's rows left out by FAISS
    sims[3 * 40:4 * 40] = -np.inf
    order = np.argsort(-sims)[:10]
    assert other.title_id.tolist() == [f"t{i // 40}" for i in order]
    assert other.shot_index.tolist() == [i % 40 for i in order]
    assert list(other["rank"]) == list(range(1, 11))
    with pytest.raises(NotFound, match="title 't3' shot 99 is not in the index"):
        index.search("t3", 99)


def test_approximate_index_reaches_its_recall(tmp_path):
    path, x = _embeddings(tmp_path, n_titles=100, n_shots=60, dim=32)
    out = build_index(path, tmp_path / "ivf", exact_up_to=1000, target_recall=0.9)
    index = Index.load(out)
    meta = index.meta["index"]
    assert meta["type"] == "IndexIVFFlat" and meta["recall_at_10"] >= 0.9
    rng = np.random.default_rng(1)
    recall = []
    for row in rng.choice(len(x), 50, replace=False):
        got = index.search(f"t{row // 60}", int(row % 60), k=10)
        truth = [i for i in np.argsort(-(x @ x[row])) if i != row][:10]
        want = {(f"t{i // 60}", i % 60) for i in truth}
        recall.append(len(want & set(zip(got.title_id, got.shot_index, strict=True))) / 10)
    assert np.mean(recall) >= 0.85
    # other titles: titles cluster, so the lists nearest a shot hold its own title's shots;
    # the depth for that search is tuned apart (the plain one found 0.2 of these, short lists)
    assert meta["nprobe_other_titles"] > meta["nprobe"]
    assert meta["recall_at_10_other_titles"] >= 0.9
    recall = []
    for row in rng.choice(len(x), 50, replace=False):
        t = row // 60
        got = index.search(f"t{t}", int(row % 60), k=10, other_titles=True)
        assert len(got) == 10 and (got.title_id != f"t{t}").all()
        sims = x @ x[row]
        sims[t * 60:(t + 1) * 60] = -np.inf
        want = {(f"t{i // 60}", i % 60) for i in np.argsort(-sims)[:10]}
        recall.append(len(want & set(zip(got.title_id, got.shot_index, strict=True))) / 10)
    assert np.mean(recall) >= 0.85


def test_compressed_index_reranks_on_exact_vectors(tmp_path):
    """The compressed kind (forced here; chosen above 2 GiB of vectors): vectors streamed to
    a memory-mapped vectors.npy, product-quantized codes, and hits whose scores are the exact
    cosines (re-ranked on the vectors), with recall against brute force at its target."""
    import mediafm.search as search
    from mediafm.search import kind_limits

    path, x = _embeddings(tmp_path, n_titles=100, n_shots=60, dim=32)
    out = build_index(path, tmp_path / "pq", target_recall=0.9, **kind_limits("ivfpq"))
    index = Index.load(out)
    meta = index.meta["index"]
    assert meta["type"] == "OPQ+IndexIVFPQ+rerank" and meta["bytes_per_vector"] == 4
    assert meta["recall_at_10"] >= 0.9 and (out / "vectors.npy").is_file()
    assert isinstance(index.searcher.vectors, np.memmap)
    np.testing.assert_allclose(np.load(out / "vectors.npy"), x, atol=1e-6)
    recall = []
    for row in np.random.default_rng(1).choice(len(x), 50, replace=False):
        got = index.search(f"t{row // 60}", int(row % 60), k=10)
        rows = got.title_id.str[1:].astype(int).to_numpy() * 60 + got.shot_index.to_numpy()
        np.testing.assert_allclose(got.score, x[rows] @ x[row], atol=1e-5)
        truth = set(np.argsort(-(x @ x[row]))[1:11])
        recall.append(len(truth & set(rows)) / 10)
    assert np.mean(recall) >= 0.85
    remove_from_index(out, "t7")  # codes dropped, quantizers kept, recall measured again
    shrunk = Index.load(out)
    assert shrunk.meta["index"]["type"] == "OPQ+IndexIVFPQ+rerank"
    assert len(np.load(out / "vectors.npy")) == 99 * 60 and "t7" not in set(shrunk.keys.title_id)
    assert shrunk.index.ntotal == 99 * 60 and shrunk.meta["index"]["recall_at_10"] >= 0.9
    emb = pd.read_parquet(path)
    emb[emb.title_id.isin(["t7", "t8"])].to_parquet(tmp_path / "again.parquet")
    search.add_to_index(out, tmp_path / "again.parquet")  # t7 back, t8 replaced
    grown = Index.load(out)
    assert grown.index.ntotal == len(grown.keys) == 100 * 60
    got = grown.search("t7", 5, k=10)
    rows = got.title_id.str[1:].astype(int).to_numpy() * 60 + got.shot_index.to_numpy()
    np.testing.assert_allclose(got.score, x[rows] @ x[7 * 60 + 5], atol=1e-5)
    assert len(set(rows) & set(np.argsort(-(x @ x[7 * 60 + 5]))[1:11])) >= 8
    bad = pd.read_parquet(path)
    bad.at[61, "embedding"] = np.full(32, np.nan, np.float32)
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(StoreError, match=r"bad.parquet: embeddings contain NaN or inf \(rows"):
        build_index(tmp_path / "bad.parquet", tmp_path / "bad", **kind_limits("ivfpq"))
    assert not (tmp_path / "bad").exists()


def test_index_from_other_embeddings_than_the_store(tmp_path, store):
    path, _ = _embeddings(tmp_path, n_titles=2)
    with pytest.raises(NotFound, match="which the store .* does not"):
        build_index(path, tmp_path / "index", store=store.path)
    assert not (tmp_path / "index").exists()



def test_an_index_weighs_a_readouts_blocks_alike(tmp_path):
    """An embeddings file that records its blocks is indexed with each block at unit norm
    (``block_norm``), in memory and streamed to disk alike: a quiet block that says which
    shots belong together then finds them, where the raw row's cosine is the loud block's
    (noise here). A query vector from outside is scaled as the rows; titles added to an index
    from before the blocks were recorded keep its scaling (rows whole)."""
    import mediafm.search as search
    from mediafm import artifacts
    from mediafm.fusion import block_norm, unit_norm

    rng = np.random.default_rng(0)
    n_titles, n_shots = 30, 40
    centres = rng.normal(size=(n_titles, 16))
    quiet = 0.1 * (np.repeat(centres, n_shots, 0) + 0.2 * rng.normal(size=(n_titles * n_shots, 16)))
    loud = 10.0 * rng.normal(size=(n_titles * n_shots, 64))
    raw = np.concatenate([quiet, loud], axis=1).astype(np.float32)
    frame = pd.DataFrame({"title_id": [f"t{i // n_shots}" for i in range(len(raw))],
                          "shot_index": np.arange(len(raw)) % n_shots, "embedding": list(raw)})
    artifacts.write("shot_embeddings", frame, tmp_path / "blocks.pq", blocks=[16, 64])
    artifacts.write("shot_embeddings", frame, tmp_path / "rows.pq")
    want = block_norm(raw, [16, 64])
    # each block at norm 1/sqrt(2), the row at 1; scaled again, the same
    np.testing.assert_allclose(np.linalg.norm(want[:, :16], axis=1), 2 ** -0.5, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(want[:, 16:], axis=1), 2 ** -0.5, rtol=1e-5)
    np.testing.assert_allclose(block_norm(want, [16, 64]), want, atol=1e-6)
    for name, limits in (("flat", {}), ("streamed", {"compress_from": 0})):  # vectors.npy
        out = build_index(tmp_path / "blocks.pq", tmp_path / name, **limits)
        index = Index.load(out)
        assert index.meta["embeddings"]["blocks"] == [16, 64]
        np.testing.assert_allclose(index.vector(index.row("t3", 5)), want[3 * n_shots + 5],
                                   atol=1e-6)
    index = Index.load(tmp_path / "flat")
    own = index.search("t3", 5, k=10)
    assert (own.title_id == "t3").mean() >= 0.9  # the quiet block's neighbours
    by_vector = index.search(vector=raw[3 * n_shots + 5], k=11)  # itself first, then the same
    assert by_vector.shot_index.iat[0] == 5
    assert by_vector.iloc[1:][["title_id", "shot_index"]].reset_index(drop=True).equals(
        own[["title_id", "shot_index"]])
    memory = Index.from_vectors("shots", frame[["title_id", "shot_index"]], raw,
                                {"embeddings": {"blocks": [16, 64]}})  # the explorer's
    assert memory.search("t3", 5, k=10)[["title_id", "shot_index"]].equals(
        own[["title_id", "shot_index"]])
    rows = Index.load(build_index(tmp_path / "rows.pq", tmp_path / "whole"))
    assert "blocks" not in rows.meta["embeddings"]
    assert (rows.search("t3", 5, k=10).title_id == "t3").mean() <= 0.3  # the loud block's
    search.add_to_index(tmp_path / "whole", tmp_path / "blocks.pq")  # replaces every title
    grown = Index.load(tmp_path / "whole")
    assert "blocks" not in grown.meta["embeddings"]
    np.testing.assert_allclose(grown.vector(grown.row("t3", 5)),
                               unit_norm(raw[3 * n_shots + 5]), atol=1e-6)
    artifacts.write("shot_embeddings", frame, tmp_path / "bad.pq", blocks=[16, 60])
    with pytest.raises(StoreError, match=r"bad.pq: its blocks \[16, 60\] sum to 76, its "
                                         r"vectors have 80 columns"):
        build_index(tmp_path / "bad.pq", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()

@pytest.mark.slow
def test_ray_embedding_equals_local_and_resumes(fitted, store, tmp_path):
    """Ray actors write the same embeddings as the local engine; a part a killed run already
    staged is kept, not recomputed (marked here by zeroing it), but only for the same model,
    store and readout: a staging made with another readout is made again."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mediafm.embed import DEFAULT_READOUT, EmbedStage, embed_settings, embed_store
    from mediafm.jobs import Staging, Where

    _, model, _, _ = fitted
    local = pd.read_parquet(embed_store(model, store, tmp_path / "local.parquet",
                                        progress=False))
    first = store.parts()[0]

    def killed_run(readout: str) -> None:
        """What a run killed after its first part leaves: that part staged (zeroed here)."""
        stage = EmbedStage(model, str(store.path), readout, 16)
        staging = Staging(tmp_path / ".ray.parquet.parts")
        staging.check_settings(embed_settings(model, store, readout))
        stage.run(stage.setup(None), first, staging, False)
        path = staging.path(stage.key(first), ".parquet")
        done = pq.read_table(path)
        zeros = pc.multiply(done["embedding"].combine_chunks().flatten(), 0.0)
        pq.write_table(done.set_column(2, "embedding", pa.FixedSizeListArray.from_arrays(
            zeros, done["embedding"].type.list_size)), path)

    killed_run(DEFAULT_READOUT)
    out = pd.read_parquet(embed_store(model, store, tmp_path / "ray.parquet", progress=False,
                                      where=Where("ray", 2)))
    assert local[["title_id", "shot_index"]].equals(out[["title_id", "shot_index"]])
    in_first = out.title_id.isin(store.titles_in(first))
    assert in_first.any() and not np.stack(out.embedding[in_first]).any()  # reused
    np.testing.assert_allclose(np.stack(out.embedding[~in_first]),
                               np.stack(local.embedding[~in_first]), atol=1e-5)
    assert not (tmp_path / ".ray.parquet.parts").exists()
    killed_run("hidden")  # another readout's part is not taken for this one's
    again = pd.read_parquet(embed_store(model, store, tmp_path / "ray.parquet",
                                        progress=False))
    np.testing.assert_allclose(np.stack(again.embedding), np.stack(local.embedding), atol=1e-5)


@pytest.mark.slow
def test_ray_embedding_on_a_two_node_cluster_from_the_cli(fitted, store, tmp_path):
    """``mediafm embed --engine ray --address`` on a head and a second node (one CPU each):
    the two actors run on different nodes; the output is the local engine's."""
    import subprocess
    import sys

    from ray.cluster_utils import Cluster

    root, model, _, _ = fitted
    from mediafm.embed import embed_store

    local = pd.read_parquet(embed_store(model, store, tmp_path / "local.parquet",
                                        progress=False))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", "embed", "--model",
                               str(root / "run"), "--store", str(store.path), "--out",
                               "cluster.parquet", "--engine", "ray", "--address",
                               cluster.address, "--workers", "2"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = pd.read_parquet(tmp_path / "cluster.parquet")
    assert local[["title_id", "shot_index"]].equals(out[["title_id", "shot_index"]])
    np.testing.assert_allclose(np.stack(out.embedding), np.stack(local.embedding), atol=1e-5)


def test_outputs_know_the_model_and_store_they_came_from(fitted, store, tmp_path):
    """Heads applied with another model of the same shape stop (their scores would be off);
    applied to another store they run only when its vectors provably come from the same
    encoders (or the user vouches, other_store); predictions of one store are refused by
    moments on another."""
    from mediafm.heads import write_predictions
    from mediafm.moments import check_predictions, read_predictions
    from mediafm.store import import_shots
    from mediafm.synthetic import CatalogSpec, write_catalog

    _, model, _, heads = fitted
    twin = MediaFM(model.config)  # the same shape, other weights
    with pytest.raises(Mismatch, match="the heads: made by .* not by this model"):
        predict(heads, twin, store, progress=False)
    # heads on a readout with scene blocks, fitted before the cut was recorded (so cut at
    # 2@1.5): their features are not this version's, at any column count
    old = Heads(heads.heads, {**heads.meta, "features": {
        **heads.meta["features"], "readout": heads.meta["features"]["readout"] + "+ahead+scene"}})
    with pytest.raises(Mismatch, match=r"scene blocks cut at 2@1.5 .*cuts them at 1,2,4,8@1.0"):
        predict(old, model, store, progress=False)
    spec = CatalogSpec(n_titles=4, mean_shots=30, long_fraction=0.0, video_dim=32,
                       audio_dim=16, text_dim=16, title_dim=8, seed=5)
    cat = write_catalog(tmp_path / "cat", spec)
    other = import_shots(cat["shots"], tmp_path / "other", cat["titles"], progress=False)
    assert other.dims == store.dims and other.fingerprint != store.fingerprint
    with pytest.raises(Mismatch, match="nothing records that its vectors come from the same"):
        predict(heads, model, other, progress=False)
    scored = predict(heads, model, other, progress=False, other_store=True)
    assert set(scored.title_id) == set(other.titles.title_id)
    write_predictions(scored, heads, tmp_path / "pred.parquet", model, other)
    pred, kinds, meta = read_predictions(tmp_path / "pred.parquet")
    assert meta["model"]["fingerprint"] == model.fingerprint() != twin.fingerprint()
    assert kinds["boundary"] == "boundary" and meta["store"]["fingerprint"] == other.fingerprint
    check_predictions(pred, meta, other, "pred.parquet")
    with pytest.raises(Mismatch, match="the predictions pred.parquet: made from the store at"):
        check_predictions(pred, meta, store, "pred.parquet")
    # the same store imported again (rows in another order, other parts) is the same store
    shots = pd.read_parquet(cat["shots"]).sample(frac=1.0, random_state=1)
    shots.to_parquet(tmp_path / "shuffled.parquet")
    again = import_shots(tmp_path / "shuffled.parquet", tmp_path / "again", cat["titles"],
                         part_rows=50, progress=False)
    assert again.fingerprint == other.fingerprint and len(again.parts()) > 1


def test_an_index_grows_and_shrinks_without_rebuilding(tmp_path, monkeypatch):
    """Titles added to an index and removed from it: the same neighbours as an index built
    at once over the same rows; crossing the exact size limit makes it approximate, with its
    recall measured again, and index.json says so. Embeddings of another scene cut than the
    index's are refused."""
    import mediafm.search as search
    from mediafm import artifacts
    from mediafm.readouts import DEFAULT_READOUT, readout_stamp

    path, x = _embeddings(tmp_path, n_titles=30, n_shots=40, dim=16)
    emb = pd.read_parquet(path)
    emb[emb.title_id.isin([f"t{i}" for i in range(20)])].to_parquet(tmp_path / "first.parquet")
    emb[~emb.title_id.isin([f"t{i}" for i in range(20)])].to_parquet(tmp_path / "rest.parquet")
    grown = build_index(tmp_path / "first.parquet", tmp_path / "grown")
    search.add_to_index(grown, tmp_path / "rest.parquet")
    whole = Index.load(build_index(path, tmp_path / "whole"))
    for title, shot in (("t3", 5), ("t25", 0), ("t29", 39)):
        a = Index.load(grown).search(title, shot, k=10)
        b = whole.search(title, shot, k=10)
        assert a[["title_id", "shot_index"]].equals(b[["title_id", "shot_index"]])
    search.remove_from_index(grown, "t25")
    shrunk = Index.load(grown)
    assert "t25" not in set(shrunk.keys.title_id) and len(shrunk.keys) == 29 * 40
    hits = shrunk.search("t24", 1, k=50)
    assert "t25" not in set(hits.title_id)
    with pytest.raises(NotFound, match="title 't25' shot 0 is not in the index"):
        shrunk.search("t25", 0)
    # embeddings whose scene blocks were cut another way are other features: refused
    for name, made in (("new", readout_stamp(DEFAULT_READOUT)), ("old", {
            "readout": DEFAULT_READOUT})):
        artifacts.write("shot_embeddings", emb[emb.title_id == "t25"], tmp_path / f"{name}.pq",
                        **made)
    build_index(tmp_path / "new.pq", tmp_path / "scenes")
    with pytest.raises(Mismatch, match="old.pq cut its scene blocks at 2@1.5; the index .* at "
                                       "1,2,4,8@1.0"):
        search.add_to_index(tmp_path / "scenes", tmp_path / "old.pq")
    monkeypatch.setattr(search, "EXACT_UP_TO", 1000)  # now past the exact limit: IVF
    search.add_to_index(grown, tmp_path / "rest.parquet")
    meta = Index.load(grown).meta
    assert meta["n"] == 1200 and meta["index"]["type"] == "IndexIVFFlat"
    assert meta["index"]["recall_at_10"] >= 0.95
    ivf = Index.load(grown)
    got = ivf.search("t3", 5, k=10)
    truth = whole.search("t3", 5, k=10)
    pairs = [set(zip(h.title_id, h.shot_index, strict=True)) for h in (got, truth)]
    assert len(pairs[0] & pairs[1]) >= 8


@pytest.mark.parametrize("draw", [23, 52])
def test_scene_cuts_at_several_scales_beat_one_window(draw, tmp_path):
    """Two tuning draws of the catalog family, one of long scenes shot from several set-ups
    (23: ~20 shots) and one of short scenes (52: ~3 shots): the default cut (windows 1, 2,
    4 and 8) finds more scene starts on their shot than the single window of two shots it
    replaced, more precisely where scenes are long, with more recall where they are short.
    And one window of the new cut is the old cut to the shot."""
    from mediafm.changepoints import boundaries, change_scores, scene_starts
    from mediafm.scenes import find_scenes
    from mediafm.store import import_shots
    from mediafm.synthetic import draw_spec, write_catalog

    cat = write_catalog(tmp_path / "catalog", draw_spec(draw, 20))
    store = import_shots(cat["shots"], tmp_path / "store", cat["titles"], progress=False)
    latent = pd.read_parquet(cat["latent"]).sort_values(["title_id", "shot_index"])
    truth = {(t, i) for t, g in latent.groupby("title_id")
             for i in np.flatnonzero(np.diff(g.scene.to_numpy())) + 1}

    def quality(frame):
        found = {(r.title_id, r.first_shot) for r in frame.itertuples() if r.scene > 0}
        hit = len(found & truth)
        return hit / len(found), hit / len(truth), 2 * hit / (len(found) + len(truth))

    (p1, r1, f1), (p, r, f) = (quality(find_scenes(store, window=2, bar=1.5, progress=False)),
                               quality(find_scenes(store, progress=False)))
    assert f > f1 + 0.03 and p >= p1 and r >= r1, ((p1, r1, f1), (p, r, f))
    for title_id in store.titles.title_id:
        x = store.title_vectors(title_id)
        assert scene_starts(x, (2,), 1.5) == boundaries(
            change_scores(x, 2), 1.5)


def test_scenes_from_change_points_find_the_catalogs_scenes(store, catalog, tmp_path):
    """Fused change points against the synthetic catalog's latent scenes: most scene starts
    found on their shot, far better than as many starts placed at random."""
    from mediafm import artifacts
    from mediafm.scenes import find_scenes, write_scenes

    latent = pd.read_parquet(catalog["latent"]).sort_values(["title_id", "shot_index"])
    truth = {(t, i) for t, g in latent.groupby("title_id")
             for i in np.flatnonzero(np.diff(g.scene.to_numpy())) + 1}
    frame = find_scenes(store, progress=False)
    found = {(r.title_id, r.first_shot) for r in frame.itertuples() if r.scene > 0}
    hit = len(found & truth)
    f1 = 2 * hit / (len(found) + len(truth))
    rng = np.random.default_rng(0)
    lengths = store.titles.set_index("title_id").n_shots
    chance = [(t, int(rng.integers(1, lengths[t]))) for t, _ in found]
    assert f1 >= 0.8 and len(set(chance) & truth) < hit / 3, (f1, hit, len(truth))
    assert (frame.groupby("title_id").last_shot.max() == lengths[frame.title_id.unique()]
            - 1).all()
    path = write_scenes(frame, tmp_path / "scenes.parquet", store)
    assert artifacts.read(path, "scenes").meta["store"] == artifacts.store_stamp(store)
