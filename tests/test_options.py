"""Options a user can get wrong: every numeric option of every command, and every numeric
config value, out of its range is exit 2 with one line naming it, and nothing written."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediafm.cli import build_parser, main
from mediafm.cli.options import Number


def numeric_options() -> list[tuple[str, str, Number]]:
    """(command, flag, its type) for every range-checked option of every command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(name, action.option_strings[-1], action.type)
            for name, command in sub.choices.items() for action in command._actions
            if isinstance(action.type, Number) and action.option_strings]


OPTIONS = numeric_options()
REQUIRED = {"--store": "s", "--out": "o", "--model": "m", "--labels": "l.parquet",
            "--shots": "s.parquet", "--heads": "h", "--pred": "p.parquet",
            "--embeddings": "e.parquet", "--index": "i"}


def argv(command: str, flag: str, value: str) -> list[str]:
    """A command line that would run but for ``flag value``."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = [command]
    for action in sub.choices[command]._actions:
        if not action.option_strings and action.dest not in ("help", "command"):
            out.append("input.csv")  # a positional (ingest's manifest)
        elif action.required:
            out += [action.option_strings[-1], REQUIRED[action.option_strings[-1]]]
    return [*out, flag, value]


def test_every_command_has_checked_numbers():
    commands = {c for c, _, _ in OPTIONS}
    assert {"ingest", "embed", "probe", "heads", "moments", "search", "serve", "synth",
            "synth-store", "train", "index", "demo"} <= commands


def bad_value(kind: Number):
    """Values outside ``kind``'s range, not finite, or not a number."""
    outside = []
    if kind.low is not None:
        outside.append(st.floats(max_value=kind.low, exclude_max=True, allow_nan=False,
                                 allow_infinity=False, min_value=kind.low - 1e9))
    if kind.high is not None:
        outside.append(st.floats(min_value=kind.high, exclude_min=True, allow_nan=False,
                                 allow_infinity=False, max_value=kind.high + 1e9))
    numbers = st.one_of(*outside).map(lambda v: str(math.floor(v) if kind.kind is int
                                                    and v < (kind.low or 0) else
                                                    math.ceil(v) if kind.kind is int else v))
    words = st.sampled_from(["nan", "inf", "-inf", "ten", "", "1e999", "0x10"])
    return st.one_of(numbers, words) if outside else words


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_option_out_of_range_is_one_line_exit_2_nothing_written(data, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    command, flag, kind = data.draw(st.sampled_from(OPTIONS))
    value = data.draw(bad_value(kind))
    if kind.kind is float and value not in ("nan", "inf", "-inf", "ten", "", "0x10"):
        try:
            v = float(value)
            if (kind.low is None or v >= kind.low) and (kind.high is None or v <= kind.high):
                return  # rounding brought it back into range
        except ValueError:
            pass
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_:
        main(["-q", *argv(command, flag, value)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, (command, flag, value, err)
    assert len(err.strip().splitlines()) == 1 and flag in err, err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("argv_,message", [
    (["train", "--store", "{store}", "--out", "r", "--set", "steps=0"], "steps must be >= 1"),
    (["train", "--store", "{store}", "--out", "r", "--set", "batch_size=0"],
     "batch_size must be >= 1"),
    (["train", "--store", "{store}", "--out", "r", "--set", "lr=nan"],
     "lr must be a finite number"),
    (["train", "--store", "{store}", "--out", "r", "--set", "optim.warmup_steps=-1"],
     "warmup_steps must be >= 0"),
    (["train", "--store", "{store}", "--out", "r", "--set", "dropout=1.5"],
     "dropout must be in [0, 1)"),
    (["ingest", "x.mp4", "--out", "r", "--set", "detect.min_shot_s=-1"],
     "min_shot_s must be in [0, 3600]"),
    (["ingest", "x.mp4", "--out", "r", "--set", "encode.frames_per_shot=0"],
     "frames_per_shot must be in [1, 64]"),
    (["ingest", "x.mp4", "--out", "r", "--set", "run.workers=-2"], "--workers must be >= 0"),
    (["ingest", "x.mp4", "--out", "r", "--set", "detector=fancy"], "detector must be one of"),
])
def test_a_config_value_out_of_range_is_one_line_exit_2_nothing_written(
        store, tmp_path, monkeypatch, capsys, argv_, message):
    monkeypatch.chdir(tmp_path)
    code = main(["-q", *[a.format(store=store.path) for a in argv_]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
