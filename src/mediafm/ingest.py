"""Real media -> shot store: decode, detect shots, encode three modalities, embed title metadata.

Each title is processed whole and staged atomically (``.STORE.ingest/titles/<key>.parquet`` +
``.json``, written to a temp name and renamed), so an interrupted run loses nothing finished
and a rerun skips finished titles. When every title has been tried, the staged titles go through
``import_shots``: the result is exactly the store ``mediafm import`` builds, with the same
validation. A title that fails (bad media, bad subtitles, a bad manifest row) is written to
``STORE.failures.jsonl`` with its error and never stops the others.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.media import MediaError, audio_mono, frames_at, probe
from mediafm.subtitles import SubtitleError, assign, load_cues

RATE = 16_000


@dataclass(frozen=True)
class TitleJob:
    title_id: str
    video: str
    subtitles: tuple[str, ...] = ()
    synopsis: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestConfig:
    frames_per_shot: int = 4
    detector: str = "content"  # PySceneDetect content | adaptive, or transnetv2
    threshold: float | None = None
    min_shot_s: float = 0.5
    video_encoder: str = "efficientnet-lite0"
    audio_encoder: str | None = None  # None: aisfx, or log-mel where aisfx is not installed
    text_encoder: str = "minilm"
    encoder_args: dict = field(default_factory=dict)  # {"video": {"path": ...}, ...}
    allow_no_audio: bool = False  # True: a title without audio gets zero audio vectors
    workers: int = 1  # local: processes; ray: actors (default: the cluster's CPUs)
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None:
    # start a local Ray instance for this run


# ----------------------------------------------------------------------------- manifest


def _split_list(value) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return tuple(s.strip() for s in str(value).replace("|", ";").split(";") if s.strip())


def read_manifest(path: str | Path) -> tuple[list[TitleJob], list[dict]]:
    """(jobs, failures) from a CSV or JSONL manifest; a bad row is a failure, not an abort.

    Columns: title_id, video, optional subtitles (one path, or several separated by ';' in CSV,
    a list in JSONL), synopsis, tags (';'-separated in CSV, a list in JSONL). Relative paths
    are relative to the manifest's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                rows.append((i + 1, json.loads(line)))
            except json.JSONDecodeError as e:
                rows.append((i + 1, {"_error": f"invalid JSON ({e})"}))
    else:
        with path.open(newline="") as f:
            rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(f))]
    jobs, failures, seen = [], [], set()
    for line, row in rows:
        where = f"{path} line {line}"
        tid, video = (row.get("title_id") or "").strip(), (row.get("video") or "").strip()
        error = row.get("_error") or (None if tid else "missing title_id") or (
            None if video else "missing video")
        if not error and tid in seen:
            error = f"title {tid!r} listed twice"
        if error:
            failures.append({"title_id": tid or None, "source": where, "stage": "manifest",
                             "error": f"{where}: {error}"})
            continue
        seen.add(tid)
        resolve = lambda p: str(p if Path(p).is_absolute() else path.parent / p)  # noqa: E731
        jobs.append(TitleJob(tid, resolve(video),
                             tuple(resolve(s) for s in _split_list(row.get("subtitles"))),
                             row.get("synopsis") or None, _split_list(row.get("tags"))))
    return jobs, failures


# ----------------------------------------------------------------------------- one title


class Encoders:
    """The three encoders and the shot detector, built once per process."""

    def __init__(self, cfg: IngestConfig):
        import torch

        from mediafm.encoders import build
        from mediafm.shots import SceneDetectShots, TransNetV2Shots

        if cfg.workers > 1 or cfg.engine == "ray":
            torch.set_num_threads(1)  # one thread per worker process: no oversubscription
        args = cfg.encoder_args
        self.video = build("video", cfg.video_encoder, **args.get("video", {}))
        self.audio = build("audio", cfg.audio_encoder, **args.get("audio", {}))
        self.text = build("text", cfg.text_encoder, **args.get("text", {}))
        if cfg.detector == "transnetv2":
            self.detector = TransNetV2Shots(cfg.threshold or 0.5, cfg.min_shot_s)
        else:
            self.detector = SceneDetectShots(cfg.detector, cfg.threshold, cfg.min_shot_s)


STAGES = 7  # the lap() calls of ingest_title, for a per-title progress bar


def ingest_title(job: TitleJob, cfg: IngestConfig, enc: Encoders, on_stage=None
                 ) -> tuple[pd.DataFrame, dict, dict[str, float]]:
    """(SHOTS rows, title record, seconds per stage) for one title; raises on bad input.

    ``on_stage(name)`` is called as each stage ends (progress display)."""
    t = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        t[stage] = t.get(stage, 0.0) + now - clock
        clock = now
        if on_stage is not None:
            on_stage(stage)

    info = probe(job.video)
    if not info.has_audio and not cfg.allow_no_audio:
        raise MediaError(f"{job.video}: no audio stream (pass --allow-no-audio to embed "
                         "silence as zeros)")
    cues = [c for s in job.subtitles for c in load_cues(s)]
    lap("probe+subtitles")
    shots = enc.detector.detect(job.video)
    lap("shots")
    k = cfg.frames_per_shot
    times = np.array([s + (j + 0.5) * (e - s) / k for s, e in shots for j in range(k)])
    frames = frames_at(job.video, times)
    lap("decode video")
    video = enc.video.encode([frames[i * k:(i + 1) * k] for i in range(len(shots))])
    lap("video encoder")
    rate = getattr(enc.audio, "rate", RATE)  # 16 kHz unless the encoder needs another rate
    wave = audio_mono(job.video, rate) if info.has_audio else np.zeros(0, np.float32)
    lap("decode audio")
    if info.has_audio:
        audio = enc.audio.encode([wave[int(s * rate):max(int(e * rate), int(s * rate) + 1)]
                                  for s, e in shots])
    else:
        audio = np.zeros((len(shots), enc.audio.dim), np.float32)
    lap("audio encoder")
    texts = assign(cues, shots)
    with_text = [i for i, x in enumerate(texts) if x]
    text_vecs = enc.text.encode([texts[i] for i in with_text])
    meta_text = " ".join(filter(None, [job.synopsis, ("Tags: " + ", ".join(job.tags))
                                       if job.tags else None]))
    metadata = enc.text.encode([meta_text])[0] if meta_text else None
    lap("text encoder")
    text_col = [None] * len(shots)
    for i, v in zip(with_text, text_vecs, strict=True):
        text_col[i] = v
    frame = pd.DataFrame({"title_id": job.title_id, "shot_index": np.arange(len(shots)),
                          "start_s": [s for s, _ in shots], "end_s": [e for _, e in shots],
                          "video": list(video), "audio": list(audio), "text": text_col,
                          "subtitle_text": texts})
    record = {"title_id": job.title_id, "video_path": job.video, "duration_s": info.duration_s,
              "dims": {"video": enc.video.dim, "audio": enc.audio.dim, "text": enc.text.dim},
              "n_shots": len(shots), "has_audio": info.has_audio,
              "metadata": None if metadata is None else metadata.tolist(),
              "synopsis": job.synopsis, "tags": list(job.tags)}
    return frame, record, t


# ----------------------------------------------------------------------------- staging


def _key(title_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in title_id)[:40]
    return f"{safe}-{hashlib.sha1(title_id.encode()).hexdigest()[:10]}"


def _stage(staging: Path, frame: pd.DataFrame, record: dict) -> None:
    """Write one finished title: parquet first, then the json that marks it complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = _key(record["title_id"])
    dims = record["dims"]  # fixed-size lists: dims stay known even when no shot has text
    schema = pa.schema([("title_id", pa.string()), ("shot_index", pa.int32()),
                        ("start_s", pa.float64()), ("end_s", pa.float64()),
                        *[(m, pa.list_(pa.float32(), dims[m])) for m in ("video", "audio",
                                                                          "text")],
                        ("subtitle_text", pa.string())])
    tmp = staging / f".{key}.parquet.tmp-{os.getpid()}"
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)
    os.replace(tmp, staging / f"{key}.parquet")
    tmp = staging / f".{key}.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, staging / f"{key}.json")


def _is_staged(staging: Path, title_id: str) -> bool:
    key = _key(title_id)
    return (staging / f"{key}.json").is_file() and (staging / f"{key}.parquet").is_file()


_WORKER: Encoders | None = None


def _worker_init(cfg: IngestConfig) -> None:
    global _WORKER
    _WORKER = Encoders(cfg)


def _run_one(job: TitleJob, cfg: IngestConfig, staging: Path, enc: Encoders | None = None,
             on_stage=None):
    enc = enc or _WORKER
    try:
        frame, record, timings = ingest_title(job, cfg, enc, on_stage)
    except (MediaError, SubtitleError, ValueError, OSError) as e:
        return job.title_id, None, {"title_id": job.title_id, "source": job.video,
                                    "stage": "ingest", "error": str(e)}
    _stage(staging, frame, record)
    return job.title_id, (record["duration_s"], timings), None


class _RayWorker:
    """A Ray actor holding the encoders, so models load once per actor, not once per title."""

    def __init__(self, cfg: IngestConfig, staging: str):
        self.cfg, self.staging, self.enc = cfg, Path(staging), Encoders(cfg)

    def run(self, job: TitleJob):
        return _run_one(job, self.cfg, self.staging, self.enc)


def _absolute(job: TitleJob) -> TitleJob:
    """The job with absolute paths: a Ray worker's directory is not the driver's."""
    return replace(job, video=os.path.abspath(job.video),
                   subtitles=tuple(os.path.abspath(s) for s in job.subtitles))


def _run_on_ray(todo: list[TitleJob], cfg: IngestConfig, staging: Path, collect) -> None:
    """Titles over a Ray cluster (an ActorPool): the same staging, atomicity and failure
    records as the local engine. On a multi-node cluster the store's folder must be on a
    filesystem every node sees."""
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False)
    try:
        n = cfg.workers if cfg.workers > 1 else max(1, int(ray.cluster_resources()["CPU"]))
        actor = ray.remote(num_cpus=1)(_RayWorker)
        pool = ActorPool([actor.remote(cfg, str(staging)) for _ in range(min(n, len(todo)))])
        for result in pool.map_unordered(lambda a, job: a.run.remote(job), todo):
            collect(result)
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------- the run


@dataclass
class IngestReport:
    store: Path | None
    done: list[str]
    skipped: list[str]
    failures: list[dict]
    stage_seconds: dict[str, float]
    video_seconds: float
    wall_seconds: float

    def summary(self) -> str:
        lines = [f"titles: {len(self.done)} ingested, {len(self.skipped)} already done, "
                 f"{len(self.failures)} failed",
                 f"{self.video_seconds:.0f} s of video in {self.wall_seconds:.1f} s wall "
                 f"({self.video_seconds / max(self.wall_seconds, 1e-9):.1f}x real time)"]
        for stage, sec in self.stage_seconds.items():
            lines.append(f"  {stage:<16} {sec:7.1f} s  "
                         f"({self.video_seconds / max(sec, 1e-9):8.1f} video s / s)")
        return "\n".join(lines)


def ingest(jobs: list[TitleJob], out: str | Path, cfg: IngestConfig = IngestConfig(),
           failures: list[dict] | None = None, progress: bool = True) -> IngestReport:
    """Ingest ``jobs`` into the store ``out`` (resumable; see the module docstring)."""
    from tqdm.auto import tqdm

    from mediafm.encoders import describe
    from mediafm.store import import_shots

    out = Path(out).absolute()  # Ray workers do not run in this process's directory
    staging = out.parent / f".{out.name}.ingest"
    staging.mkdir(parents=True, exist_ok=True)
    failures = list(failures or [])
    todo = [j for j in jobs if not _is_staged(staging, j.title_id)]
    skipped = [j.title_id for j in jobs if _is_staged(staging, j.title_id)]
    stage_s: dict[str, float] = defaultdict(float)
    done, video_s = [], 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="ingest", unit="title", disable=not progress)

    def collect(result) -> None:
        nonlocal video_s
        title_id, ok, failure = result
        if failure:
            failures.append(failure)
            bar.write(f"failed: {failure['error']}")
        else:
            done.append(title_id)
            video_s += ok[0]
            for k, v in ok[1].items():
                stage_s[k] += v
        bar.update(1)
        bar.set_postfix(title=title_id[:24])

    enc = None
    if cfg.engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {cfg.engine!r}: local | ray")
    if todo and cfg.engine == "ray":
        _run_on_ray([_absolute(j) for j in todo], cfg, staging, collect)
    elif todo and cfg.workers <= 1:
        enc = Encoders(cfg)
        for job in todo:  # one bar per title, by stage, under the overall bar
            inner = tqdm(total=STAGES, desc=job.title_id[:24], unit="stage", leave=False,
                         position=1, disable=not progress)
            collect(_run_one(job, cfg, staging, enc,
                             lambda stage, bar=inner: (bar.set_postfix_str(stage),
                                                       bar.update(1))))
            inner.close()
    elif todo:
        with ProcessPoolExecutor(cfg.workers, initializer=_worker_init, initargs=(cfg,)) as pool:
            for fut in as_completed([pool.submit(_run_one, j, cfg, staging) for j in todo]):
                collect(fut.result())
    bar.close()

    failed = {f["title_id"] for f in failures}
    ready = [j for j in jobs if j.title_id not in failed and _is_staged(staging, j.title_id)]
    store = None
    if ready:
        enc = enc or Encoders(cfg)
        store = _assemble(staging, ready, out, {m: describe(getattr(enc, m)) for m in
                                                ("video", "audio", "text")} | {
            "shots": {"name": enc.detector.name, "detector": cfg.detector,
                      "threshold": cfg.threshold, "min_shot_s": cfg.min_shot_s,
                      "frames_per_shot": cfg.frames_per_shot}}, import_shots)
    fail_path = out.with_name(out.name + ".failures.jsonl")
    fail_path.write_text("".join(json.dumps(f) + "\n" for f in failures))
    return IngestReport(store, done, skipped, failures, dict(stage_s), video_s,
                        time.perf_counter() - t0)


def _assemble(staging: Path, jobs: list[TitleJob], out: Path, encoders: dict, import_shots):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = staging / f".assemble-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    try:
        writer, records = None, []
        for job in jobs:
            key = _key(job.title_id)
            table = pq.read_table(staging / f"{key}.parquet")
            if writer is None:
                writer = pq.ParquetWriter(tmp / "shots.parquet", table.schema)
            writer.write_table(table)
            records.append(json.loads((staging / f"{key}.json").read_text()))
        writer.close()
        titles = pd.DataFrame({"title_id": [r["title_id"] for r in records],
                               "metadata": [r["metadata"] for r in records],
                               "synopsis": [r["synopsis"] for r in records],
                               "tags": [r["tags"] for r in records]})
        schema = pa.schema([("title_id", pa.string()), ("metadata", pa.list_(pa.float32())),
                            ("synopsis", pa.string()), ("tags", pa.list_(pa.string()))])
        pq.write_table(pa.Table.from_pandas(titles, schema=schema, preserve_index=False),
                       tmp / "titles.parquet")
        store = import_shots(tmp / "shots.parquet", out, tmp / "titles.parquet",
                             encoders=encoders, progress=False)
        (out / "ingest.json").write_text(json.dumps([asdict(j) for j in jobs], indent=1))
        return store
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
