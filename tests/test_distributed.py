"""torchrun (DDP, gloo on CPU): two processes train exactly what one process trains."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

ARGS = ["--set", "train.steps=6", "--set", "batch_size=4", "--set", "hidden=32",
        "--set", "heads=2", "--set", "layers=2", "--set", "dropout=0.0", "--set", "max_shots=64",
        "--set", "eval_every=3", "--set", "warmup_steps=2", "--set", "log_every=1",
        "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cwd, out, *extra, nproc=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prefix = [sys.executable, "-m", "mediafm"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "mediafm"]
    proc = subprocess.run([*prefix, "-q", "train", "--store", "store", "--out", out, *ARGS,
                           *extra], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(cwd / out / "checkpoint.pt", weights_only=True)


@pytest.mark.slow
def test_two_processes_match_one(store, tmp_path):
    (tmp_path / "store").symlink_to(store.path)
    one = run(tmp_path, "one")
    two = run(tmp_path, "two", nproc=2)
    assert one["step"] == two["step"] == 6
    for k, v in one["model"].items():
        torch.testing.assert_close(two["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    logs = [json.loads(x) for x in lines]
    assert max(r["step"] for r in logs) == 6  # rank 0 logged, once per step
    assert len([r for r in logs if r["split"] == "train"]) == 6

    # resume under torchrun continues the same run
    run(tmp_path, "cut", "--stop-after", "3", nproc=2)
    resumed = run(tmp_path, "cut", "--resume", nproc=2)
    for k, v in two["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
