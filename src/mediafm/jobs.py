"""One engine for every catalog-scale stage: units of work -> staged results -> resume ->
assemble, in this process, a pool of local processes, or on a Ray cluster.

A stage (``Stage``) says how to do one unit of work (ingest: a title; embed: a part of the
store) and writes its result into the staging folder beside the output, whole and atomically,
its record last (``Staging.finish``): a killed run loses nothing finished, and a rerun does
only the units not staged. Heavy state (encoders, a model) is built once per worker by
``Stage.setup``. Every outcome comes back to the driver through ``collect``, so progress,
failures and the report are the same whatever ran the work; the caller then assembles the
staged results into the output and clears the staging.

Where it runs (``Where``) means the same for every stage: ``workers`` is how many units run
at once (None: one here, or one per CPU of the Ray cluster; 0: one per CPU), ``address`` an
existing Ray cluster (without it, a local Ray instance for the run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from mediafm.atomic import write_text
from mediafm.errors import MediaFMError, require

ENGINES = ("local", "ray")


class SettingsMismatch(MediaFMError):
    """Units staged under other settings than this run's; the message names the differences."""


@dataclass(frozen=True)
class Where:
    """Where a stage runs: ``engine`` local or ray; ``workers`` units at once (None: one
    locally, one per CPU of the Ray cluster; 0: one per CPU); ``address``: a Ray cluster."""

    engine: str = "local"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}: one of {ENGINES}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"--workers must be >= 0 (0: one per CPU), got {self.workers}")
        if self.address and self.engine != "ray":
            raise ValueError("--address names a Ray cluster: it needs --engine ray")


@dataclass(frozen=True)
class Outcome:
    """What one unit gave: its record (small, JSON), or the error that failed it."""

    unit: str
    record: dict = field(default_factory=dict)
    error: str | None = None


class Stage(Protocol):
    """A catalog-scale stage. It travels to worker processes and Ray actors (pickled), so it
    holds only configuration; ``setup`` builds what a worker needs, once."""

    name: str
    failures: tuple[type[BaseException], ...]  # errors that fail one unit, not the run

    def key(self, unit: Any) -> str:
        """The unit's name in the staging folder (a file name)."""
        ...

    def setup(self, threads: int | None) -> Any:
        """One worker's state (models, encoders); ``threads``: torch threads (1 in a pool)."""
        ...

    def run(self, state: Any, unit: Any, staging: Staging, progress: bool) -> Outcome:
        """Do one unit and stage its result (``staging.finish`` last)."""
        ...


class Staging:
    """The staging folder of one output: each finished unit's files and its record
    (``KEY.json``, written last: it marks the unit complete), and the settings they were made
    with (``settings.json``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def name(text: str) -> str:
        """A file name for any text (ids may hold any character): readable prefix + hash."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40]
        return f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    def path(self, key: str, suffix: str) -> Path:
        return self.root / f"{key}{suffix}"

    def is_done(self, key: str) -> bool:
        return self.path(key, ".json").is_file()

    def record(self, key: str) -> dict:
        return json.loads(self.path(key, ".json").read_text())

    def finish(self, key: str, record: dict) -> None:
        """Mark a unit complete; its other files must be in place (written atomically)."""
        write_text(self.path(key, ".json"), json.dumps(record))

    def staged(self) -> list[str]:
        """Every staged unit."""
        return sorted(p.stem for p in self.root.glob("*.json") if p != self.settings_path)

    def remove(self, key: str) -> None:
        self.path(key, ".json").unlink(missing_ok=True)  # first: the unit is then not staged
        for p in self.root.glob(f"{key}.*"):
            p.unlink(missing_ok=True)

    def clear(self) -> None:
        """The run is assembled: nothing staged is needed any more."""
        shutil.rmtree(self.root, ignore_errors=True)

    def check_settings(self, settings: dict, restage: bool = False, noun: str = "unit") -> None:
        """Record ``settings`` for this staging, or check them against the recorded ones.

        Units staged under other settings raise ``SettingsMismatch`` naming the differences,
        unless ``restage``: then they are removed, to be made again under these."""
        new = json.loads(json.dumps(settings))  # the same JSON types as the recorded ones
        if self.settings_path.is_file():
            old = json.loads(self.settings_path.read_text())
            if old == new:
                return
            staged = self.staged()
            if staged and not restage:
                raise SettingsMismatch(
                    f"{self.root}: {len(staged)} {noun}(s) are staged with other settings "
                    f"({settings_diff(old, new)}). Rerun with the settings they were made with "
                    "to resume, or pass --restage to make them again with these")
            for key in staged:
                self.remove(key)
        write_text(self.settings_path, json.dumps(new, indent=1, sort_keys=True))


def settings_diff(old: dict, new: dict) -> str:
    """``key: old then, new now; ...`` for every key whose value differs."""
    old, new = json.loads(json.dumps(old)), json.loads(json.dumps(new))
    return "; ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now"
                     for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k))


Collect = Callable[[Outcome], None]


def attempt(stage: Stage, state: Any, unit: Any, staging: Staging, progress: bool) -> Outcome:
    """One unit; the stage's ``failures`` become a failed outcome, anything else is raised."""
    try:
        return stage.run(state, unit, staging, progress)
    except stage.failures as e:
        return Outcome(stage.key(unit), error=str(e))


def run(stage: Stage, units: list, staging: Staging, where: Where, collect: Collect,
        progress: bool = True) -> None:
    """Run the units not staged yet; ``collect`` every outcome in the driver."""
    todo = [u for u in units if not staging.is_done(stage.key(u))]
    if not todo:
        return
    if where.engine == "ray":
        _on_ray(stage, todo, staging, where, collect)
        return
    n = where.workers if where.workers is not None else 1
    n = min(n or os.cpu_count() or 1, len(todo))
    if n > 1:
        _in_pool(stage, todo, staging, n, collect)
        return
    state = stage.setup(None)
    for unit in todo:
        collect(attempt(stage, state, unit, staging, progress))


_WORKER: tuple | None = None  # a pool process's (stage, state, staging), built once


def exit_with_parent(poll_s: float = 1.0) -> None:
    """End this process (a pool's worker) within ``poll_s`` of its parent's end.

    Why: a ``ProcessPoolExecutor``'s workers outlive a parent ended by a signal it does not
    handle (``kill PID``, a scheduler's time limit): they run the calls already queued, then
    wait forever on a queue nobody feeds, each holding its memory (an ingest worker's
    encoders, a head search's features). A daemon thread polls the parent's pid, which
    changes when the parent is gone; polled rather than Linux's parent-death signal, so it
    works wherever Python does. A unit cut short leaves nothing half-written: outputs are
    written whole or not at all (``atomic``)."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="mediafm-exit-with-parent", daemon=True).start()


def _pool_init(stage: Stage, root: Path) -> None:
    global _WORKER
    exit_with_parent()
    _WORKER = (stage, stage.setup(1), Staging(root))  # one torch thread a process


def _pool_run(unit: Any) -> Outcome:
    stage, state, staging = _WORKER
    return attempt(stage, state, unit, staging, False)


def _in_pool(stage: Stage, todo: list, staging: Staging, n: int, collect: Collect) -> None:
    # spawn, not fork: a forked worker of a parent that has run torch (a notebook, a test
    # session) can hang for good in its first torch op (seen: loading the text model's
    # weights in a pool worker under pytest, 2026-12-07), as ``probes.linear.in_processes``
    with ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_pool_init,
                             initargs=(stage, staging.root)) as pool:
        for future in as_completed([pool.submit(_pool_run, u) for u in todo]):
            collect(future.result())


class _Actor:
    """A Ray actor: one worker's state, built once, running units as they come."""

    def __init__(self, stage: Stage, root: str):
        self.stage, self.state, self.staging = stage, stage.setup(1), Staging(Path(root))

    def run(self, unit: Any) -> Outcome:
        return attempt(self.stage, self.state, unit, self.staging, False)


def _on_ray(stage: Stage, todo: list, staging: Staging, where: Where, collect: Collect) -> None:
    """An ActorPool of one-CPU actors. On a multi-node cluster the staging folder (and what
    the units read) must be on a filesystem every node sees."""
    ray = require("ray", "--engine ray")
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        ray.init(address=where.address, include_dashboard=False, log_to_driver=False)
    try:
        n = where.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_Actor)
        shared = ray.put(stage)  # once in the object store, not once per actor
        pool = ActorPool([actor.remote(shared, str(staging.root.absolute()))
                          for _ in range(min(n, len(todo)))])
        for outcome in pool.map_unordered(lambda a, unit: a.run.remote(unit), todo):
            collect(outcome)
    finally:
        if started:
            ray.shutdown()
