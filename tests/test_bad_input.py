"""Every subcommand through its bad-input cases, as a user meets them: exit status 2, one line
naming the culprit, no traceback, and no output left behind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import random_shots, write_shots

from mediafm.cli import main
from mediafm.config import TrainConfig
from mediafm.train import train


@pytest.fixture(scope="module")
def world(store, tmp_path_factory):
    """A store, a model trained on it, and a store of other dims."""
    root = tmp_path_factory.mktemp("bad")
    train(store.path, root / "run", {"hidden": 16, "heads": 2, "layers": 1, "max_shots": 64},
          TrainConfig.of(steps=2, batch_size=4, eval_every=2), progress=False, device="cpu")
    other = write_shots(random_shots(n_titles=2, dims=(5, 4, 3)), root / "other.parquet")
    assert main(["-q", "import", "--shots", other, "--out", str(root / "other")]) == 0
    strings = pd.DataFrame({"title_id": ["a"], "shot_index": [0], "start_s": [0.0],
                            "end_s": [1.0], "fused": [["x", "y"]]})
    pq.write_table(pa.Table.from_pandas(strings), root / "strings.parquet")
    pd.DataFrame({"clip_id": ["c"], "title_id": ["nope"], "first_shot": [0],
                  "last_shot": [1]}).to_parquet(root / "clips.parquet")
    pd.DataFrame({"clip_id": ["c"]}).to_parquet(root / "badclips.parquet")
    broken = root / "broken"
    broken.mkdir()
    for f in ("config.json", "model.safetensors"):
        (broken / f).write_bytes((root / "run" / "model" / f).read_bytes())
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    return {"store": str(store.path), "run": str(root / "run"), "other": str(root / "other"),
            "root": root}


CASES = [
    # (argv with {placeholders}, message fragment, output that must not appear)
    (["import", "--shots", "{root}/strings.parquet", "--out", "{root}/o1"],
     "column 'fused' must be a list of floats", "{root}/o1"),
    (["import", "--shots", "{root}/missing.parquet", "--out", "{root}/o2"],
     "missing.parquet: cannot read as Parquet", "{root}/o2"),
    (["info", "{root}"], "not a mediafm store", None),
    (["cache", "--store", "{root}/nowhere"], "not a mediafm store", None),
    (["train", "--store", "{store}", "--out", "{root}/r1", "--set", "hiden=3"],
     "unknown key 'hiden'", "{root}/r1"),
    (["train", "--store", "{store}", "--out", "{run}"], "already holds a run", None),
    (["train", "--store", "{store}", "--out", "{root}/r2", "--resume"],
     "nothing to resume", "{root}/r2"),
    (["embed", "--model", "{run}", "--store", "{other}", "--out", "{root}/e1.parquet"],
     "the model has fused_dim", "{root}/e1.parquet"),
    (["embed", "--model", "{root}/nomodel", "--store", "{store}", "--out", "{root}/e2.parquet"],
     "no config.json", "{root}/e2.parquet"),
    (["embed", "--model", "{root}/broken", "--store", "{store}", "--out", "{root}/e3.parquet"],
     "model.safetensors: cannot load the weights", "{root}/e3.parquet"),
    (["embed", "--model", "{run}", "--store", "{store}", "--clips", "{root}/clips.parquet",
      "--out", "{root}/e4.parquet"], "title 'nope' is not in the store", "{root}/e4.parquet"),
    (["embed", "--model", "{run}", "--store", "{store}", "--clips", "{root}/badclips.parquet",
      "--out", "{root}/e5.parquet"], "clips need column(s) ['title_id', 'first_shot', "
     "'last_shot']", "{root}/e5.parquet"),
    (["probe", "--store", "{store}", "--labels", "{root}/clips.parquet", "--out",
      "{root}/p1"], "give --model RUN and/or --embeddings", "{root}/p1"),
    (["probe", "--store", "{store}", "--labels", "{root}/clips.parquet", "--model", "{run}",
      "--out", "{root}/p2"], "title 'nope' is not in the store", "{root}/p2"),
    (["ingest", "{root}/none.csv", "--out", "{root}/i1"], "no such manifest", "{root}/i1"),
    (["synth-store", "--out", "{root}/s1", "--shots", "0"],
     "argument --shots: must be >= 1, got 0", "{root}/s1"),
    (["demo", "--out", "{root}/d1", "--set", "bogus=1"], "unknown key 'bogus'", None),
]


@pytest.mark.parametrize("argv,message,output", CASES,
                         ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_clear_line(world, argv, message, output, capsys):
    fill = {k: str(v) for k, v in world.items()}
    try:
        code = main(["-q", *[a.format(**fill) for a in argv]])
    except SystemExit as e:  # the parser's own checks (an option out of its range) exit
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.startswith(f"mediafm {argv[0]}: error: ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    if output:
        assert not list(world["root"].glob(output.format(**fill).split("/")[-1] + "*"))


def test_internal_error_is_one_line_and_a_log(monkeypatch, capsys, tmp_path):
    import mediafm.cli.data as data

    def boom(args):
        raise RuntimeError("something we did not foresee")

    monkeypatch.setattr(data, "_info", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    code = main(["info", "x"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "internal error (RuntimeError" in err
    (log,) = tmp_path.glob("mediafm-info-*.log")
    assert "something we did not foresee" in log.read_text()
    assert "Traceback" in log.read_text()
    np.testing.assert_equal(len(err.strip().splitlines()), 1)
