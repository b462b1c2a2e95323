"""Context wins: on both catalog presets and more than one seed, a small MediaFM trained with the
default recipe sees past a scene break (ad relevancy: the next scene's tone) where no single shot
can, and on the noisy preset, where one shot is ambiguous, embeds clips in context better than
the shot alone (tone, the scene's property). On the clean preset one shot already carries its
tone (fused ~0.96 micro-AP at benchmark scale) and context measurably adds nothing there (the
README's results); the test holds it to costing at most 3%."""

from __future__ import annotations

import pytest

from mediafm.model import MediaFM
from mediafm.probes import read_labels
from mediafm.probes.catalog_labels import write_labelled_catalog
from mediafm.probes.features import CLIP_ONLY, FUSED, IN_CONTEXT, method_features
from mediafm.probes.linear import probe
from mediafm.probes.tasks import targets
from mediafm.store import import_shots
from mediafm.synthetic import preset
from mediafm.train import load_run_config, train


@pytest.mark.slow
@pytest.mark.parametrize("name,seed", [("noisy", 0), ("noisy", 1), ("clean", 0)])
def test_context_beats_the_shot_alone(name, seed, tmp_path):
    spec = preset(name, n_titles=40, video_dim=32, audio_dim=16, text_dim=16, title_dim=8,
                  seed=seed)
    paths = write_labelled_catalog(tmp_path / "catalog", spec)
    store = import_shots(paths["shots"], tmp_path / "store", paths["titles"], progress=False)
    # 200 steps: the smallest margins measured (AVX2 host) ad relevancy 2.2x, noisy tone +0.059,
    # clean tone 0.99x; 300 steps cost each test 40 s more
    model_cfg, tc = load_run_config("tiny", ["steps=200", "batch_size=4", "eval_every=100",
                                             f"seed={seed}"])
    train(store.path, tmp_path / "run", model_cfg, tc, progress=False, device="cpu")
    labels, tasks = read_labels(paths["labels"])
    feats = method_features(store, labels, MediaFM.from_pretrained(tmp_path / "run"))
    groups = labels["title_id"].to_numpy()
    scores = {}
    for task in (t for t in tasks if t.name in ("tone", "ad_relevancy")):
        idx, y, _ = targets(labels, task)
        for method in (FUSED, CLIP_ONLY, IN_CONTEXT):
            scores[task.name, method] = probe(feats[method].subset(idx), y, groups[idx],
                                              task.metric, 5, (0,)).mean
    shot_alone = max(scores["tone", FUSED], scores["tone", CLIP_ONLY])
    if name == "noisy":
        assert scores["tone", IN_CONTEXT] > shot_alone, scores
    else:
        assert scores["tone", IN_CONTEXT] >= 0.97 * shot_alone, scores
    assert scores["ad_relevancy", IN_CONTEXT] > 1.5 * scores["ad_relevancy", FUSED], scores
    assert scores["ad_relevancy", IN_CONTEXT] > 1.5 * scores["ad_relevancy", CLIP_ONLY], scores


def test_catalog_families_draw_the_structure_they_say():
    """``draw_spec`` draws a catalog's structure at random, reproducibly; each structural
    parameter shows in the catalog made from it (scene lengths, tone carried across scenes,
    set-ups that alternate)."""
    from dataclasses import replace

    from mediafm.synthetic import draw_spec, make_catalog

    assert draw_spec(3) == draw_spec(3) and draw_spec(3) != draw_spec(4)
    specs = [draw_spec(i) for i in range(20)]
    assert len({round(s.shot_noise, 3) for s in specs}) == 20
    assert min(s.shot_noise for s in specs) < 0.5 < 1.5 < max(s.shot_noise for s in specs)
    base = replace(preset("clean"), n_titles=6, seed=1)

    def scenes(spec):
        latent = make_catalog(spec)[2]
        return latent.groupby(["title_id", "scene"], sort=False).agg(
            n=("shot_index", "size"), tone=("tone", "first"), setups=("setup", "nunique"))

    short, long_ = scenes(replace(base, scene_shots=3)), scenes(replace(base, scene_shots=18))
    assert 2.5 * short.n.mean() < long_.n.mean()
    regular = scenes(replace(base, scene_shots=12, scene_regularity=1.0))
    assert regular.n.std() < 0.5 * long_.n.std()

    def same_tone(frame):
        tone = frame.tone.to_numpy()
        return (tone[1:] == tone[:-1]).mean()

    assert same_tone(scenes(replace(base, tone_stay=0.8))) > same_tone(scenes(base)) + 0.3
    assert (scenes(replace(base, setups=(1, 1))).setups == 1).all()
    assert (scenes(replace(base, cut_prob=0.0)).setups == 1).all()
