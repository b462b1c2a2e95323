"""Faults at any point lose nothing: kill -9 mid-write, a full disk, two writers at once."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from mediafm.store import ShotStore

# when embedding is killed: as its staging appears; once its first part is staged, eleven to go
KILL_EMBED_AT = (".emb.parquet.parts", ".emb.parquet.parts/*.json")
PART_ROWS = 300  # the reference store has twelve parts, so embedding has twelve units


def mediafm(*args, cwd, preexec=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, preexec_fn=preexec)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def killed_mid_write(args, cwd, temporary: str) -> None:
    """Start ``mediafm ARGS``; once the temporary output ``temporary`` (a glob under ``cwd``)
    exists, SIGKILL it. Fails unless the kill lands while the process is still writing: the
    test must test a kill mid-write, not a finished run."""
    proc = subprocess.Popen([sys.executable, "-m", "mediafm", "-q", *map(str, args)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(cwd.glob(temporary)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    alive = proc.poll() is None and bool(list(cwd.glob(temporary)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive, f"mediafm {args[0]} was not writing {temporary} when killed"


@pytest.fixture(scope="module")
def reference(catalog, tmp_path_factory):
    """Uninterrupted outputs of import, cache, train (tiny), embed and probe."""
    from mediafm.probes.catalog_labels import write_catalog_labels

    d = tmp_path_factory.mktemp("reference")
    for k, v in catalog.items():
        (d / f"{k}.parquet").symlink_to(v)
    write_catalog_labels(catalog, d / "labels.parquet")
    mediafm("import", "--shots", "shots.parquet", "--titles", "titles.parquet", "--out", "store",
            "--part-rows", PART_ROWS, cwd=d)
    mediafm("train", "--store", "store", "--out", "run", "--set", "steps=4", "--set",
            "hidden=16", "--set", "heads=2", "--set", "layers=1", "--set", "eval_every=2",
            cwd=d)
    mediafm("embed", "--model", "run", "--store", "store", "--out", "emb.parquet", cwd=d)
    return d


def hidden_leftovers(d) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize("embed_at", KILL_EMBED_AT)
def test_kill_import_cache_embed_mid_write(reference, tmp_path, embed_at):
    """A kill while the output is being written leaves no output (and nothing half-written);
    a rerun writes it whole, equal to an uninterrupted run's."""
    d = tmp_path
    for name in ("shots", "titles", "labels"):
        (d / f"{name}.parquet").symlink_to(reference / f"{name}.parquet")
    ref = ShotStore(reference / "store")
    imp = ["import", "--shots", "shots.parquet", "--titles", "titles.parquet", "--out", "store",
           "--part-rows", PART_ROWS]
    killed_mid_write(imp, d, ".store.tmp-*")  # an import of this size takes ~0.1 s
    assert not (d / "store").exists()
    mediafm(*imp, cwd=d)
    killed_mid_write(["cache", "--store", "store"], d, "store/cache/.fused.tmp-*")
    assert not ShotStore(d / "store").has_fused_cache
    mediafm("cache", "--store", "store", cwd=d)
    store = ShotStore(d / "store")
    assert store.has_fused_cache
    for part in store.parts():
        np.testing.assert_array_equal(store.part_vectors(part), ref.part_vectors(part))
    emb = ["embed", "--model", reference / "run", "--store", "store", "--out", "emb.parquet"]
    killed_mid_write(emb, d, embed_at)
    assert not (d / "emb.parquet").exists()
    mediafm(*emb, cwd=d)
    a, b = pd.read_parquet(d / "emb.parquet"), pd.read_parquet(reference / "emb.parquet")
    np.testing.assert_allclose(np.stack(a.embedding), np.stack(b.embedding), atol=1e-6)
    for t in ref.titles.title_id:
        np.testing.assert_array_equal(ShotStore(d / "store").title_vectors(t),
                                      ref.title_vectors(t))
    assert hidden_leftovers(d) == [] and hidden_leftovers(d / "store") == []
    assert not list(d.glob("*.lock"))


@pytest.mark.slow
def test_kill_probe_leaves_the_previous_report(reference, tmp_path):
    args = ["probe", "--store", reference / "store", "--labels", reference / "labels.parquet",
            "--embeddings", f"e={reference / 'emb.parquet'}", "--seeds", "1", "--folds", "3",
            "--no-baselines", "--out", "report"]
    mediafm(*args, cwd=tmp_path)
    before = (tmp_path / "report" / "results.csv").read_text()
    killed_mid_write(args, tmp_path, ".report.tmp-*")
    assert (tmp_path / "report" / "results.csv").read_text() == before  # the old one, whole
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {"REPORT.md", "report.html"}
    mediafm(*args, cwd=tmp_path)
    assert (tmp_path / "report" / "results.csv").read_text() == before


def _tiny_file_limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))


def test_full_disk_is_a_clear_error_and_keeps_the_previous_store(reference, tmp_path):
    d = tmp_path
    for name in ("shots", "titles"):
        (d / f"{name}.parquet").symlink_to(reference / f"{name}.parquet")
    import shutil

    shutil.copytree(reference / "store", d / "store")
    before = ShotStore(d / "store").title_vectors("title-00000")
    proc = mediafm("import", "--shots", "shots.parquet", "--titles", "titles.parquet", "--out",
                   "store", cwd=d, preexec=_tiny_file_limit, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    np.testing.assert_array_equal(ShotStore(d / "store").title_vectors("title-00000"), before)
    assert hidden_leftovers(d) == [] and not list(d.glob("*.lock"))


def test_second_writer_gets_a_clear_error(reference, tmp_path):
    d = tmp_path
    (d / "shots.parquet").symlink_to(reference / "shots.parquet")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (d / "store.lock").write_text(str(holder.pid))  # another live process writes it
        proc = mediafm("import", "--shots", "shots.parquet", "--out", "store", cwd=d,
                       check=False)
        assert proc.returncode == 2
        assert f"store is being written by process {holder.pid}" in proc.stderr
        assert not (d / "store").exists()
    finally:
        holder.kill()
        holder.wait()
    mediafm("import", "--shots", "shots.parquet", "--out", "store", cwd=d)  # stale: taken over
    assert ShotStore(d / "store").info.n_shots > 0 and not (d / "store.lock").exists()
    assert os.path.exists(d / "shots.parquet")


def test_a_write_removes_what_a_killed_writer_left_but_not_a_live_writers(tmp_path):
    """What ``kill -9`` leaves beside an output goes at the next write of that output; the
    temporary of a writer that still runs stays."""
    import socket

    from mediafm.atomic import atomic_dir, atomic_file

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = socket.gethostname()
    try:
        out = tmp_path / "store"
        left = tmp_path / f".store.tmp-{dead.pid}@{host}-abc"
        (left / "part-0").mkdir(parents=True)
        swapped = tmp_path / f".store.old-{dead.pid}@{host}-def"
        swapped.mkdir()
        running = tmp_path / f".store.tmp-{live.pid}@{host}-ghi"
        running.mkdir()
        elsewhere = tmp_path / f".store.tmp-{dead.pid}@another-node-jkl"  # a shared filesystem
        elsewhere.mkdir()
        with atomic_dir(out) as tmp:
            (tmp / "meta.json").write_text("{}")
        assert not left.exists() and not swapped.exists()
        assert running.exists() and elsewhere.exists()
        assert (out / "meta.json").read_text() == "{}"

        f = tmp_path / "emb.parquet"
        stale = tmp_path / f".emb.parquet.tmp-{dead.pid}@{host}-xyz"
        stale.write_bytes(b"half")
        with atomic_file(f) as tmp:
            tmp.write_bytes(b"whole")
        assert f.read_bytes() == b"whole" and not stale.exists()
        assert sorted(hidden_leftovers(tmp_path)) == sorted([running.name, elsewhere.name])
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755),
                                                     (0o002, 0o664, 0o775)])
def test_outputs_honour_the_umask(reference, tmp_path, mask, file_mode, dir_mode):
    """What mediafm writes can be shared as any file can: modes follow the umask, not the
    private ones of the temporaries it is written under."""
    for name in ("shots", "titles"):
        (tmp_path / f"{name}.parquet").symlink_to(reference / f"{name}.parquet")
    as_user = lambda: os.umask(mask)  # noqa: E731
    mediafm("import", "--shots", "shots.parquet", "--titles", "titles.parquet", "--out",
            "store", cwd=tmp_path, preexec=as_user)
    mediafm("cache", "--store", "store", cwd=tmp_path, preexec=as_user)
    mediafm("embed", "--model", reference / "run", "--store", "store", "--out", "emb.parquet",
            cwd=tmp_path, preexec=as_user)
    outputs = [tmp_path / "store", *(tmp_path / "store").rglob("*"), tmp_path / "emb.parquet"]
    modes = {p.relative_to(tmp_path): p.stat().st_mode & 0o777 for p in outputs}
    want = {p.relative_to(tmp_path): dir_mode if p.is_dir() else file_mode for p in outputs}
    assert modes == want


def test_a_closed_pipe_is_quiet(reference):
    """``mediafm info STORE | head -0``: the reader is gone before anything is printed; no
    "Broken pipe" error, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "mediafm", "info", str(reference / "store")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command (seconds of imports) writes a byte
    err = proc.stderr.read().decode()
    proc.wait()
    assert err == "" and proc.returncode == 141


POOL_PARENT = """
import os, time
from mediafm.probes.linear import in_processes

def work(x):
    time.sleep(0.2)
    return os.getpid()

if __name__ == "__main__":
    for pid in in_processes(work, list(range(10_000)), 2):
        print(pid, flush=True)
"""


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead and waiting to be reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_pool_workers_end_with_a_killed_parent(tmp_path):
    """A probe (or heads) run ended by ``kill`` takes its worker processes with it; without
    ``jobs.exit_with_parent`` they ran the calls queued, then waited forever."""
    script = tmp_path / "parent.py"
    script.write_text(POOL_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            workers.add(int(parent.stdout.readline()))
        assert len(workers) == 2 and parent.pid not in workers
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(map(running, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(running, workers)), f"workers {sorted(workers)} outlived their parent"
    finally:  # a failure leaves no process behind either
        parent.kill()
        for pid in filter(running, workers):  # only a failed run's: a pid gone may be reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
