"""Pretraining: it learns, it beats the baselines, it resumes exactly, it logs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import random_shots, write_shots

from mediafm.config import TrainConfig
from mediafm.model import MediaFM
from mediafm.store import ShotStore, import_shots
from mediafm.synthetic import CatalogSpec, write_catalog
from mediafm.train import load_run_config, train

SMALL = {"hidden": 64, "layers": 2, "heads": 4, "dropout": 0.0, "max_shots": 128}


def records(run, split):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A learnable corpus large enough not to be memorised by a small model: ~20k shots."""
    tmp = tmp_path_factory.mktemp("learn")
    spec = CatalogSpec(n_titles=100, long_fraction=0.0, video_dim=32, audio_dim=16,
                       text_dim=16, title_dim=8, seed=11)
    paths = write_catalog(tmp / "catalog", spec)
    store = import_shots(paths["shots"], tmp / "store", paths["titles"], progress=False)
    tc = TrainConfig.of(steps=600, batch_size=8, lr=3e-3, muon_lr=0.02, warmup_steps=20,
                     eval_every=200, ckpt_every=300, log_every=10, val_fraction=0.1)
    cfg = {**SMALL, "dropout": 0.1, "attn_dropout": 0.0}  # tiny's: CPU attention stays fused
    metrics = train(store.path, tmp / "run", cfg, tc, progress=False, device="cpu")
    return tmp / "run", metrics


@pytest.mark.slow
def test_loss_falls_and_beats_baselines(trained):
    run, metrics = trained
    train_loss = [r["loss"] for r in records(run, "train")]
    assert train_loss[-1] < 0.6 * train_loss[0]
    first_val, last_val = records(run, "val")[0], records(run, "val")[-1]
    assert last_val["model/loss"] < first_val["model/loss"]
    assert metrics["model/loss"] < metrics["neighbour_mean/loss"]
    assert metrics["model/loss"] < metrics["window_mean/loss"]
    assert metrics["model/top5"] > metrics["neighbour_mean/top5"]
    assert metrics["model/top1"] > metrics["neighbour_mean/top1"]


@pytest.mark.slow
def test_the_model_written_is_the_best_by_validation_loss(trained, tmp_path):
    """run.json names the step of the lowest validation loss, and model/ holds those weights:
    evaluating them again gives that loss. The summary says whether context was learned."""
    from mediafm.sequences import split_titles
    from mediafm.train import evaluate, validation_batches

    run, _ = trained
    info = json.loads((run / "run.json").read_text())
    val = records(run, "val")
    best = min((r for r in val if r["step"] > 0), key=lambda r: r["model/loss"])
    assert info["best"]["step"] == best["step"]
    assert info["summary"].startswith("the model has learned context")
    store = ShotStore(info["store"])
    _, rows = split_titles(list(store.titles["title_id"]), 0.1, 64)
    batches = list(validation_batches(store, rows, 128, 8, seed=0))
    again = evaluate(MediaFM.from_pretrained(run), batches, torch.device("cpu"))
    assert again["model/loss"] == pytest.approx(best["model/loss"], abs=1e-5)


def test_summary_says_when_context_was_not_learned(store, tmp_path, capsys):
    tc = TrainConfig.of(steps=2, batch_size=4, warmup_steps=1, eval_every=2, log_every=1)
    train(store.path, tmp_path / "r", SMALL, tc, progress=False, device="cpu")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["summary"].startswith("the model has not learned context")
    assert "positions=rope" in info["summary"]  # with a hint
    assert info["best"]["step"] == 2
    assert "has not learned context" in capsys.readouterr().err


@pytest.mark.slow
def test_run_directory_contents(trained):
    run, _ = trained
    for name in ("run.json", "checkpoint.pt", "metrics.jsonl", "metrics.csv", "model"):
        assert (run / name).exists(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    csv = pd.read_csv(run / "metrics.csv")
    assert set(csv["split"]) == {"train", "val"} and csv["step"].max() == 600
    model = MediaFM.from_pretrained(run)
    assert model.config.hidden == 64 and model.config.fused_dim == 64
    assert json.loads((run / "run.json").read_text())["train"]["steps"] == 600


def test_resume_equals_uninterrupted_run(store, tmp_path):
    tc = TrainConfig.of(steps=12, batch_size=4, warmup_steps=3, eval_every=6, ckpt_every=100,
                     log_every=1, seed=7)
    cfg = {**SMALL, "dropout": 0.1}  # dropout: the RNG state must be restored too
    train(store.path, tmp_path / "full", cfg, tc, progress=False, device="cpu")
    train(store.path, tmp_path / "cut", cfg, tc, stop_after=5, progress=False, device="cpu")
    assert len(records(tmp_path / "cut", "train")) == 5
    with pytest.raises(FileExistsError, match="--resume"):
        train(store.path, tmp_path / "cut", cfg, tc, progress=False, device="cpu")
    train(store.path, tmp_path / "cut", cfg, tc, resume=True, progress=False, device="cpu")
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 12
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    timed = ("shots_per_s", "data_wait")  # wall-clock measurements differ between runs
    assert records(tmp_path / "full", "train") == [
        {**r, **{k: x[k] for k in timed}} for r, x in
        zip(records(tmp_path / "cut", "train"), records(tmp_path / "full", "train"), strict=True)]
    assert all(0 <= r["data_wait"] < 1 for r in records(tmp_path / "full", "train"))


def test_config_overrides_and_errors(tmp_path):
    model, tc = load_run_config("tiny", ["train.steps=7", "hidden=96", "model.heads=3"])
    assert tc.steps == 7 and model["hidden"] == 96 and model["heads"] == 3
    with pytest.raises(ValueError, match="unknown key 'stepz'"):
        load_run_config("tiny", ["stepz=3"])
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nhidden = 32\nheads = 2\nlayers = 1\n[train]\nsteps = 3\nbogus = 1\n")
    with pytest.raises(ValueError, match=r"\[train\]: unknown key 'bogus'"):
        load_run_config(str(cfg))
    # configs written before the optimiser had its own section still load
    cfg.write_text("[train]\nsteps = 3\nlr = 0.004\n[loader]\ncrop = 0.25\n")
    _, tc = load_run_config(str(cfg), ["masking.mask_span=2"])
    assert (tc.optim.lr, tc.loader.crop, tc.masking.mask_span) == (0.004, 0.25, 2)
    for bad, why in (("steps=0", "steps must be >= 1, got 0"),
                     ("batch_size=0", "batch_size must be >= 1"),
                     ("lr=nan", "lr must be a finite number"), ("crop=2", r"crop must be in")):
        with pytest.raises(ValueError, match=why):
            load_run_config("tiny", [bad])


def test_a_run_in_passes_lasts_that_many_passes_over_its_training_windows(store, tmp_path):
    """``passes`` sets the length by the catalog: the run's steps are passes x the steps one
    pass over the training titles' windows takes (a title over max_shots is several windows);
    ``--set steps=N`` on a config that sets passes means N steps."""
    import math

    from mediafm.sequences import split_titles

    tc = TrainConfig.of(steps=1000, passes=3, batch_size=4, warmup_steps=1, eval_every=100,
                        log_every=1)
    train(store.path, tmp_path / "r", {**SMALL, "max_shots": 16}, tc, progress=False,
          device="cpu")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    rows, _ = split_titles(list(store.titles["title_id"]), tc.val_fraction, tc.max_val_titles)
    windows = sum(math.ceil(n / 16) for n in store.titles["n_shots"].iloc[rows])
    assert windows > len(rows)  # some titles are over max_shots
    assert info["train"]["steps"] == 3 * (windows // 4) == len(records(tmp_path / "r", "train"))
    assert info["passes"] == 3
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nsteps = 600\npasses = 40\n")
    assert load_run_config(str(cfg))[1].passes == 40
    _, tc = load_run_config(str(cfg), ["steps=5"])
    assert (tc.steps, tc.passes) == (5, 0)
    _, tc = load_run_config(str(cfg), ["train.steps=5", "passes=2"])
    assert (tc.steps, tc.passes) == (5, 2)
    with pytest.raises(ValueError, match="passes must be >= 0"):
        load_run_config("tiny", ["passes=-1"])


def test_an_ema_run_saves_the_average_of_its_weights_and_resumes_exactly(store, tmp_path):
    """``[optim] ema``: the weights trained are the plain run's; the model written is their
    moving average (one step of the recurrence checked across a resume), and a run resumed
    part way ends with the uninterrupted run's average."""
    from mediafm.train import ema_decay

    kw = {"steps": 6, "batch_size": 4, "warmup_steps": 2, "ckpt_every": 100, "log_every": 1,
          "seed": 3, "val_fraction": 0.0}  # no validation: the product is the last average
    plain, ema = TrainConfig.of(**kw), TrainConfig.of(**kw, ema=0.9)
    cfg = {**SMALL, "dropout": 0.1}

    def run(name, tc, **how):
        train(store.path, tmp_path / name, cfg, tc, progress=False, device="cpu", **how)
        return torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)

    a, b = run("plain", plain), run("ema", ema)
    assert a["model"].keys() == b["model"].keys() == b["ema"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    saved = MediaFM.from_pretrained(tmp_path / "ema").state_dict()
    assert all(torch.equal(saved[k], b["ema"][k]) for k in saved)
    assert not torch.equal(b["ema"]["input_proj.weight"], b["model"]["input_proj.weight"])
    four, five = run("cut", ema, stop_after=4), run("cut", ema, resume=True, stop_after=1)
    d = ema_decay(0.9, 5)
    for k, v in five["ema"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, d * four["ema"][k] + (1 - d) * five["model"][k])
    last = run("cut", ema, resume=True)
    assert all(torch.equal(last["ema"][k], b["ema"][k]) for k in b["ema"])
    with pytest.raises(ValueError, match="ema must be < 1"):
        TrainConfig.of(ema=1.0)
    with pytest.raises(ValueError, match="trained without ema"):
        run("plain", ema, resume=True)


def test_store_dims_conflict(store, tmp_path):
    with pytest.raises(ValueError, match="fused_dim=99 but the store"):
        train(store.path, tmp_path / "r", {**SMALL, "fused_dim": 99}, TrainConfig.of(steps=1),
              progress=False)


@pytest.fixture(scope="module")
def eager_losses(store, tmp_path_factory):
    """Per-step training losses of the plain fp32 eager loop: the reference for the GPU path."""
    run = tmp_path_factory.mktemp("eager") / "r"
    train(store.path, run, SMALL, TrainConfig.of(steps=3, batch_size=4, eval_every=3, log_every=1),
          progress=False, device="cpu")
    return [r["loss"] for r in records(run, "train")]


@pytest.mark.slow
@pytest.mark.parametrize("options,tol", [({"compile": True}, 1e-4),
                                         ({"activation_checkpointing": True}, 1e-5),
                                         ({"precision": "bf16"}, 0.03)])
def test_gpu_path_options_match_eager(store, tmp_path, eager_losses, options, tol):
    """torch.compile and activation checkpointing compute the same steps as the eager loop;
    bf16 autocast the same up to bf16 rounding."""
    tc = TrainConfig.of(steps=3, batch_size=4, eval_every=3, log_every=1, **options)
    train(store.path, tmp_path / "r", SMALL, tc, progress=False, device="cpu")
    losses = [r["loss"] for r in records(tmp_path / "r", "train")]
    assert losses == pytest.approx(eager_losses, rel=tol)
    assert eager_losses[-1] != eager_losses[0]  # the steps did change the model


def test_precision_is_checked():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig.of(precision="fp8")


def test_kept_shot_noise_is_the_same_for_any_number_of_processes():
    """``keep_noise``: the kept shots' inputs get noise drawn for the global batch, so rank r
    of 2 sees exactly rows r, r + 2, ... of the one-process input; the rest is untouched and
    every noisy input is unit-norm again."""
    from mediafm.train import clock_shift, noisy_inputs

    tc = TrainConfig.of(keep_noise=0.8, mask_keep=0.5, clock_jitter=0.1)
    g = torch.Generator().manual_seed(0)
    shots = torch.nn.functional.normalize(torch.randn(4, 7, 12, generator=g), dim=-1)
    keep = torch.rand(4, 7, generator=g) < 0.4
    one = noisy_inputs(shots, keep, 0, 1, tc, step=3)
    for rank in (0, 1):
        torch.testing.assert_close(noisy_inputs(shots[rank::2], keep, rank, 2, tc, step=3),
                                   one[rank::2])
    assert torch.equal(one[~keep], shots[~keep])
    assert (one[keep] - shots[keep]).norm(dim=-1).min() > 0.1
    torch.testing.assert_close(one.norm(dim=-1), torch.ones(4, 7))
    assert not torch.equal(noisy_inputs(shots, keep, 0, 1, tc, step=4), one)
    shift = clock_shift(4, tc, step=3)
    assert shift.shape == (4, 1) and torch.equal(shift, clock_shift(4, tc, step=3))
    assert torch.equal(clock_shift(4, TrainConfig(), step=3), torch.zeros(4, 1))


def test_honest_messages(tmp_path, capsys):
    """A store too small to hold a title out says it trains without validation; a run of
    many passes over its catalog is told so; the hint of a model that did not learn context
    names only levers this run did not pull."""
    from mediafm.model import MediaFMConfig
    from mediafm.store import import_shots
    from mediafm.train import context_verdict

    import_shots(write_shots(random_shots(n_titles=1, n_shots=12), tmp_path / "s.parquet"),
                 tmp_path / "one", progress=False)
    train(tmp_path / "one", tmp_path / "r", SMALL, TrainConfig.of(steps=2, batch_size=1),
          progress=False, device="cpu")
    err = capsys.readouterr().err
    assert "1 title(s), too few to hold any out: no validation" in err
    assert "passes over" not in err  # 2 steps: 2 passes over the one title's window
    # a run that reads its catalog more than ~100 times is told so before it starts
    train(tmp_path / "one", tmp_path / "long", SMALL, TrainConfig.of(steps=150, batch_size=1),
          stop_after=1, progress=False, device="cpu")
    assert "note: 150 passes over the 1 training titles" in capsys.readouterr().err
    assert json.loads((tmp_path / "long" / "run.json").read_text())["passes"] == 150
    val = {"model/loss": 0.6, "neighbour_mean/loss": 0.5, "window_mean/loss": 0.55}
    model, tc = load_run_config("tiny")
    tiny = context_verdict(val, MediaFMConfig.from_dict(model), tc)
    assert "has not learned context" in tiny and f"this run: {tc.steps}" in tiny
    assert "positions=rope" not in tiny and "crop=0.5" not in tiny  # tiny uses both
    spec = context_verdict(val, MediaFMConfig(positions="learned"), TrainConfig())
    assert "positions=rope" in spec and "crop=0.5" in spec
