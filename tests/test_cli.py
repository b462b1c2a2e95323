"""End to end through the command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mediafm import artifacts


def mediafm(*args, cwd, check=True):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"mediafm {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


COMMANDS = ["import", "ingest", "info", "synth", "synth-store", "cache", "thumbs", "train",
            "embed", "probe", "heads", "predict", "moments", "scenes", "export", "index",
            "search", "serve", "demo"]


def test_every_command_has_help_and_docs(tmp_path):
    """The parser's subcommands are exactly the documented ones; each has working --help and a
    line in the README's command table."""
    import re
    from pathlib import Path

    out = mediafm("--help", cwd=tmp_path).stdout
    listed = re.search(r"\{([a-z,-]+)\}", out).group(1).split(",")
    assert listed == COMMANDS
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for cmd in COMMANDS:
        assert re.search(rf"^\s+{cmd}\s+\w", out, re.M), f"{cmd}: no help line"
        proc = mediafm(cmd, "--help", cwd=tmp_path)
        assert proc.stdout.startswith(f"usage: mediafm {cmd} "), cmd
        assert f"`mediafm {cmd} " in readme or f"`mediafm {cmd}`" in readme, cmd


@pytest.mark.slow
def test_synth_import_train_embed(tmp_path):
    mediafm("synth", "--out", "cat", "--titles", "6", cwd=tmp_path)
    mediafm("import", "--shots", "cat/shots.parquet", "--titles", "cat/titles.parquet",
            "--out", "store", cwd=tmp_path)
    info = json.loads(mediafm("info", "store", cwd=tmp_path).stdout)
    assert info["n_titles"] == 6 and info["dims"]["fused"] == 256
    assert not info["fused_cache"]
    mediafm("cache", "--store", "store", cwd=tmp_path)  # training and embedding then read it
    assert json.loads(mediafm("info", "store", cwd=tmp_path).stdout)["fused_cache"]
    mediafm("train", "--store", "store", "--out", "run", "--set", "train.steps=6",
            "--set", "eval_every=3", "--set", "hidden=32", "--set", "heads=2",
            "--set", "layers=1", "--stop-after", "4", cwd=tmp_path)
    mediafm("train", "--store", "store", "--out", "run", "--set", "train.steps=6",
            "--set", "eval_every=3", "--set", "hidden=32", "--set", "heads=2",
            "--set", "layers=1", "--resume", cwd=tmp_path)
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6
    mediafm("embed", "--model", "run", "--store", "store", "--out", "shots.parquet",
            cwd=tmp_path)
    emb = pq.read_table(tmp_path / "shots.parquet")
    assert emb.num_rows == info["n_shots"] and emb.column_names == [
        "title_id", "shot_index", "embedding"]
    pd.DataFrame({"clip_id": [1, 2], "title_id": ["title-00000", "title-00001"],
                  "first_shot": [0, 5], "last_shot": [4, 9]}).to_parquet(tmp_path / "c.pq")
    for mode in ("in-context", "clip-only"):
        mediafm("embed", "--model", "run", "--store", "store", "--clips", "c.pq", "--mode",
                mode, "--out", f"clips-{mode}.parquet", cwd=tmp_path)
    a = pd.read_parquet(tmp_path / "clips-in-context.parquet")
    b = pd.read_parquet(tmp_path / "clips-clip-only.parquet")
    # the default readout: six blocks of the model's width, the four windowed blocks'
    # distances to the previous shot and the scene's mean fused vector
    assert a.clip_id.tolist() == [1, 2] and len(a.embedding[0]) == 6 * 32 + 4 + 256
    # ... recorded block by block, so an index weighs each alike
    blocks = [32] * 4 + [4, 256] + [32] * 2
    assert artifacts.read(tmp_path / "shots.parquet").meta["blocks"] == blocks
    assert artifacts.read(tmp_path / "clips-clip-only.parquet").meta["blocks"] == blocks
    assert not np.allclose(a.embedding[0], b.embedding[0])
    out = mediafm("probe", "--store", "store", "--model", "run", "--labels",
                  "cat/labels.parquet", "--embeddings", "mine=shots.parquet", "--seeds", "1",
                  "--folds", "3", "--out", "probe", cwd=tmp_path).stdout
    assert "report: probe/REPORT.md" in out
    results = pd.read_csv(tmp_path / "probe" / "results.csv")
    assert {"video only", "fused, no context", "fused, moving average ±k", "fused, title mean",
            "MediaFM in context", "MediaFM in context + title", "mine"} <= set(results.method)
    k = results[results.method == "fused, moving average ±k"].choice
    assert k.str.fullmatch(r"k=\d+").all()  # the k chosen by CV is reported
    assert set(results.task) == {"genre", "tone", "clip_worthy", "popularity", "ad_relevancy",
                                 "boundary"}
    assert (tmp_path / "probe" / "report.html").exists()

    # put the embeddings to work: heads -> predictions -> moments; titles; index -> search
    out = mediafm("heads", "--store", "store", "--model", "run", "--labels", "cat/labels.parquet",
                  "--folds", "3", "--out", "heads", cwd=tmp_path).stdout
    assert "clip_worthy" in out and "cross-validated ap" in out
    mediafm("predict", "--heads", "heads", "--model", "run", "--store", "store", "--out",
            "pred.parquet", cwd=tmp_path)
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    assert set(pred.task) == set(results.task) and pred.shot_index.max() > 0
    mediafm("moments", "--pred", "pred.parquet", "--store", "store", "--out", "moments.parquet",
            "-k", "2", "--relevance", "ad_relevancy", cwd=tmp_path)
    moments = pd.read_parquet(tmp_path / "moments.parquet")
    assert set(moments.task) == {"clip_worthy", "popularity", "boundary"}
    assert (moments.groupby(["title_id", "task"]).size() <= 2).all()
    assert (moments.end_s > moments.start_s).all() and moments.reason.str.len().min() > 10
    # scenes (change points; a boundary head); ad breaks between them; a timeline of them
    out = mediafm("scenes", "--store", "store", "--model", "run", "--heads", "heads", "--out",
                  "head_scenes.parquet", cwd=tmp_path).stdout
    assert "the boundary head" in out
    by_head = artifacts.read(tmp_path / "head_scenes.parquet", "scenes")
    assert by_head.meta["model"]["fingerprint"] and (by_head.frame().groupby(
        "title_id").first_shot.min() == 0).all()
    out = mediafm("scenes", "--store", "store", "--out", "scenes.parquet", cwd=tmp_path).stdout
    assert "change points of the fused vectors" in out
    scenes = pd.read_parquet(tmp_path / "scenes.parquet")
    assert (scenes.groupby("title_id").scene.min() == 0).all() and len(scenes) > 10
    starts = set(zip(scenes.title_id, scenes.first_shot, strict=True))
    mediafm("moments", "--pred", "pred.parquet", "--store", "store", "--out", "breaks.parquet",
            "--task", "boundary", "--scenes", "scenes.parquet", cwd=tmp_path)
    breaks = pd.read_parquet(tmp_path / "breaks.parquet")
    assert len(breaks) and set(zip(breaks.title_id, breaks.first_shot, strict=True)) <= starts
    mediafm("export", "--store", "store", "--scenes", "scenes.parquet", "--format", "csv",
            "--out", "scenes.csv", cwd=tmp_path)
    rows = pd.read_csv(tmp_path / "scenes.csv")
    assert len(rows) == len(scenes) and rows.start_tc.str.fullmatch(r"\d\d:\d\d:\d\d:\d\d").all()
    no_media = mediafm("export", "--store", "store", "--format", "otio", "--out", "x.otio",
                       cwd=tmp_path, check=False)
    assert no_media.returncode == 2 and "no recorded media" in no_media.stderr
    assert not (tmp_path / "x.otio").exists()
    mediafm("embed", "--model", "run", "--store", "store", "--titles", "--out", "titles.parquet",
            cwd=tmp_path)
    assert len(pd.read_parquet(tmp_path / "titles.parquet")) == 6
    assert artifacts.read(tmp_path / "titles.parquet").meta["blocks"] == blocks
    mediafm("index", "--embeddings", "shots.parquet", "--store", "store", "--out", "index",
            cwd=tmp_path)
    assert json.loads((tmp_path / "index" / "index.json").read_text())["embeddings"][
        "blocks"] == blocks
    hits = json.loads(mediafm("search", "--index", "index", "--title", "title-00002", "--shot",
                              "3", "-k", "4", "--other-titles", "--json", cwd=tmp_path).stdout)
    assert len(hits) == 4 and all(h["title_id"] != "title-00002" for h in hits)
    assert all(h["end_s"] > h["start_s"] for h in hits)
    bad = mediafm("search", "--index", "index", "--title", "nope", "--shot", "1",
                  cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "title 'nope' shot 1 is not in the index" in bad.stderr


def test_bad_input_exit_code_and_message(tmp_path):
    pd.DataFrame({"title_id": ["a"], "shot_index": [0]}).to_parquet(tmp_path / "s.pq")
    proc = mediafm("import", "--shots", "s.pq", "--out", "store", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "s.pq: missing required column(s) ['start_s', 'end_s']" in proc.stderr
    assert not (tmp_path / "store").exists()
    proc = mediafm("train", "--store", "nowhere", "--out", "r", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not a mediafm store" in proc.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    # the flow, not the quality (the context tests hold that): a small catalog, a few short steps
    mediafm("demo", "--out", "demo", "--titles", "8", "--probe-seeds", "1", "--set", "steps=20",
            "--set", "eval_every=10", "--set", "batch_size=2", cwd=tmp_path)
    demo = tmp_path / "demo"
    report = (demo / "REPORT.md").read_text()
    assert "| MediaFM (tiny) |" in report and "neighbour mean" in report
    assert "MediaFM clip-only → MediaFM in context" in report  # the probe ablation table
    assert (demo / "probes" / "report.html").exists()
    assert (demo / "training_curve.png").stat().st_size > 10_000
    summary = json.loads((demo / "report.json").read_text())
    assert summary["store"]["n_titles"] == 8
    # the report's held-out numbers are the run's best step, as training logged them
    best = json.loads((demo / "run" / "run.json").read_text())["best"]
    logged = [json.loads(line) for line in (demo / "run" / "metrics.jsonl").read_text()
              .splitlines() if '"val"' in line]
    at_best = next(r for r in logged if r["step"] == best["step"])
    for key in ("model/loss", "model/top5", "neighbour_mean/loss", "window_mean/top1"):
        assert summary["val"][key] == pytest.approx(at_best[key], rel=1e-9)  # JSON float parse
        assert at_best[key] == best[key]
    assert f"| MediaFM (tiny) | {best['model/loss']:.4f} | {best['model/top1']:.3f}" in report
    assert pq.read_metadata(demo / "shot_embeddings.parquet").num_rows == summary["store"][
        "n_shots"]


def test_the_cli_reference_is_current():
    """docs/cli.md is what the parser says now: regenerate it with `make docs`."""
    from pathlib import Path

    from mediafm.cli.reference import markdown

    doc = Path(__file__).parents[1] / "docs" / "cli.md"
    assert doc.read_text() == markdown(), "docs/cli.md is stale: run `make docs`"
