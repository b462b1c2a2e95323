"""torchrun (DDP, gloo on CPU): two processes — on one node or on two — train exactly what one
process trains."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

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


def run(cwd, out, *extra, nproc=1, nnodes=1):
    """One process, or torchrun with ``nproc`` processes on each of ``nnodes`` "nodes" (one
    launcher per node, as on a cluster, rendezvousing at a master address)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = ["-q", "train", "--store", "store", "--out", out, *ARGS, *extra]
    if nproc * nnodes == 1:
        commands = [[sys.executable, "-m", "mediafm", *train]]
    else:
        port = free_port()
        commands = [[sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}",
                     f"--node_rank={node}", f"--nproc_per_node={nproc}",
                     "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "mediafm", *train]
                    for node in range(nnodes)]
    logs = [cwd / f"{out}.node{i}.log" for i in range(len(commands))]
    procs = [subprocess.Popen(c, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                              env=env) for c, log in zip(commands, logs, strict=True)]
    deadline = time.monotonic() + 600
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.poll() for p in procs):  # one node failed: don't leave the others waiting
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log.read_text()[-3000:]
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

    # two "nodes" of one process each (multi-node rendezvous) train the same steps; a run
    # stopped there resumes under a one-node torchrun and ends where the others did
    run(tmp_path, "cut", "--stop-after", "3", nnodes=2)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 3
    resumed = run(tmp_path, "cut", "--resume", nproc=2)
    for k, v in two["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
