"""What every benchmark shares: interleaved repeats, medians with ranges, ratios per round, the
machine, and JSON results that benchmarks/README.md is regenerated from.

A headline number has to survive a rerun on a shared machine, so compared variants run
interleaved (A, B, A, B, ...) after a warm-up round, each variant's measurements are reported as
the median and the min-max range, and a ratio is the median of the per-round ratios (each round
measures both variants under the same background load), with its range. A ratio whose range
straddles 1 is reported as parity.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _commit() -> str:
    """HEAD's short hash, with a ``+`` when tracked files differ from it: the code that ran
    is then that commit plus changes not yet committed."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=here, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=here, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty.strip() else "")


# The widest vector unit a CPU has, first match: cloud hosts of one model name differ here, and
# it decides the encoders' precision and speed (2026-12-05: two "AMD EPYC" hosts, one with
# AVX512-BF16 and one with AVX2 only, fitted the same heads in 118 s and 261 s)
ISA_LEVELS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def machine(device: str = "cpu") -> dict:
    """CPU model and its widest vector unit, cores, torch and its threads, the device, the git
    commit and the time."""
    import torch

    cpu, isa = platform.processor() or platform.machine(), None
    info = Path("/proc/cpuinfo")
    if info.exists():
        lines = info.read_text().splitlines()
        names = [x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")]
        cpu = names[0] if names else cpu
        flags = next((set(x.split(":", 1)[1].split()) for x in lines
                      if x.startswith("flags")), set())
        isa = next((f for f in ISA_LEVELS if f in flags), None)
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else None
    commit = _commit()
    return {"cpu": cpu, "isa": isa, "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": gpu or device, "commit": commit,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def interleaved(variants: dict[str, Callable[[], float]], repeats: int = 3, warmup: int = 1,
                progress: bool = True) -> dict[str, list[float]]:
    """Call every variant once per round, in order, for ``warmup`` + ``repeats`` rounds; keep
    the measurements (whatever each call returns: seconds, a rate) of the last ``repeats``."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(warmup + repeats):
        for name, fn in variants.items():
            value = fn()
            if r >= warmup:
                out[name].append(float(value))
        if progress:
            label = "warm-up" if r < warmup else f"round {r - warmup + 1}/{repeats}"
            print(f"  {label} done", flush=True)
    return out


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def ratio(a: list[float], b: list[float]) -> dict:
    """Per-round ratios a / b: their median and range, and whether the range straddles 1."""
    per_round = [x / y for x, y in zip(a, b, strict=True)]
    s = summary(per_round)
    return {**s, "parity": s["min"] <= 1.0 <= s["max"]}


def fmt(s: dict, spec: str = ".1f") -> str:
    """'median (min–max)'."""
    return f"{s['median']:{spec}} ({s['min']:{spec}}–{s['max']:{spec}})"


def fmt_ratio(r: dict) -> str:
    text = fmt(r, ".2f")
    return text + (" — parity" if r["parity"] else "")


def write(name: str, payload: dict, path: str | os.PathLike | None = None) -> Path:
    """results/NAME.json (or ``path``): the payload with the machine, written atomically."""
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, out)
    print(f"results: {out}")
    return out


def timed(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    """Seconds one call of ``fn`` takes (``sync`` waits for an accelerator)."""
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def packaged(dist: str, name: str) -> Path:
    """The file ``name`` that the installed distribution ``dist`` ships (real media in wheels)."""
    import importlib.metadata

    found = [f for f in importlib.metadata.files(dist) or [] if f.name == name]
    if not found:
        raise SystemExit(f"{dist} ships no {name}: pip install it (the dev extra does)")
    return Path(found[0].locate())


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(m: dict) -> str:
    cpu = f"{m['cpu']} ({m['isa']})" if m.get("isa") else m["cpu"]
    return (f"Machine: {cpu}, {m['cores']} cores, torch {m['torch']} ({m['threads']} "
            f"threads), device {m['device']}; commit {m['commit']}, {m['date']}.")
