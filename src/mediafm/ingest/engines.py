"""Engines: where titles run. One protocol; this process, a process pool, or a Ray cluster.

Every engine runs ``process_title`` for each job with encoders it built once per process (or
actor), stages the result beside the store, and hands each ``TitleResult`` back to the driver
through ``collect``, so progress, failures and the report are the same whatever ran the work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.pipeline import STAGES, Encoders, IngestConfig, TitleResult, process_title
from mediafm.ingest.staging import Staging

Collect = Callable[[TitleResult], None]


class Engine(Protocol):
    def run(self, jobs: list[TitleJob], cfg: IngestConfig, staging: Staging,
            collect: Collect) -> None: ...


class LocalEngine:
    """Titles one after another in this process, with a per-title progress bar by stage."""

    def __init__(self, progress: bool = True):
        self.progress = progress
        self.encoders: Encoders | None = None  # kept: assembly describes them

    def run(self, jobs, cfg, staging, collect) -> None:
        from mediafm.progress import progress_bar

        self.encoders = self.encoders or Encoders(cfg)
        for job in jobs:
            with progress_bar(total=STAGES, desc=job.title_id[:24], unit="stage", leave=False,
                      position=1, disable=not self.progress) as bar:
                def on_stage(stage: str, bar=bar) -> None:
                    bar.set_postfix_str(stage)
                    bar.update(1)

                collect(process_title(job, cfg, self.encoders, staging, on_stage))


_WORKER: Encoders | None = None  # a pool process's encoders, built once by its initializer


def _pool_init(cfg: IngestConfig) -> None:
    global _WORKER
    _WORKER = Encoders(cfg, threads=1)  # one torch thread per process: no oversubscription


def _pool_run(job: TitleJob, cfg: IngestConfig, root: Path) -> TitleResult:
    return process_title(job, cfg, _WORKER, Staging(root))


class ProcessPoolEngine:
    """Titles over ``workers`` local processes, each holding its own encoders."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, jobs, cfg, staging, collect) -> None:
        with ProcessPoolExecutor(self.workers, initializer=_pool_init, initargs=(cfg,)) as pool:
            futures = [pool.submit(_pool_run, j, cfg, staging.root) for j in jobs]
            for fut in as_completed(futures):
                collect(fut.result())


class _RayWorker:
    """A Ray actor holding the encoders, so models load once per actor, not once per title."""

    def __init__(self, cfg: IngestConfig, root: str):
        self.cfg, self.staging, self.enc = cfg, Staging(Path(root)), Encoders(cfg, threads=1)

    def run(self, job: TitleJob) -> TitleResult:
        return process_title(job, self.cfg, self.enc, self.staging)


def absolute(job: TitleJob) -> TitleJob:
    """The job with absolute paths: a Ray worker's directory is not the driver's."""
    return replace(job, video=os.path.abspath(job.video),
                   subtitles=tuple(os.path.abspath(s) for s in job.subtitles))


class RayEngine:
    """Titles over a Ray cluster (an ActorPool of one-CPU actors). On a multi-node cluster the
    store's folder and the media must be on a filesystem every node sees."""

    def __init__(self, address: str | None = None, workers: int = 0):
        self.address, self.workers = address, workers

    def run(self, jobs, cfg, staging, collect) -> None:
        import ray
        from ray.util import ActorPool

        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            n = self.workers if self.workers > 1 else max(1, int(ray.cluster_resources()["CPU"]))
            actor = ray.remote(num_cpus=1)(_RayWorker)
            root = str(staging.root.absolute())
            pool = ActorPool([actor.remote(cfg, root) for _ in range(min(n, len(jobs)))])
            for result in pool.map_unordered(lambda a, job: a.run.remote(job),
                                             [absolute(j) for j in jobs]):
                collect(result)
        finally:
            if started:
                ray.shutdown()


def make_engine(cfg: IngestConfig, progress: bool = True) -> Engine:
    """The engine ``cfg`` asks for: ``engine`` local (``workers`` > 1: a process pool) or ray."""
    if cfg.engine == "ray":
        return RayEngine(cfg.ray_address, cfg.workers)
    if cfg.engine != "local":
        raise ValueError(f"unknown engine {cfg.engine!r}: local | ray")
    return ProcessPoolEngine(cfg.workers) if cfg.workers > 1 else LocalEngine(progress)
