"""One title through the pipeline: decode, detect shots, encode three modalities, embed metadata.

``process_title`` is the unit of work every engine runs (in this process, a worker process or
a Ray actor): it never raises for bad input, it returns a failure record instead, so one bad
title never takes the others down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.media import MediaError, audio_mono, frames_at, probe
from mediafm.ingest.staging import Staging
from mediafm.ingest.subtitles import SubtitleError, assign, load_cues

RATE = 16_000  # audio sample rate for encoders that do not name their own


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
    require_audio: bool = False  # True: a title without an audio stream fails; by default
    # it is a normal case (silent footage, B-roll): zero audio vectors, has_audio false
    allow_no_audio: bool = True  # kept for old callers: the default since require_audio
    workers: int = 1  # local: processes; ray: actors (default: the cluster's CPUs)
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None:
    # start a local Ray instance for this run


class Encoders:
    """The three encoders and the shot detector, built once per process."""

    def __init__(self, cfg: IngestConfig, threads: int | None = None):
        """``threads``: torch threads for this process (1 in a pool of workers)."""
        import torch

        from mediafm.ingest.encoders import build
        from mediafm.ingest.shots import SceneDetectShots, TransNetV2Shots

        if threads is not None:
            torch.set_num_threads(threads)
        args = cfg.encoder_args
        self.video = build("video", cfg.video_encoder, **args.get("video", {}))
        self.audio = build("audio", cfg.audio_encoder, **args.get("audio", {}))
        self.text = build("text", cfg.text_encoder, **args.get("text", {}))
        if cfg.detector == "transnetv2":
            self.detector = TransNetV2Shots(cfg.threshold or 0.5, cfg.min_shot_s)
        else:
            self.detector = SceneDetectShots(cfg.detector, cfg.threshold, cfg.min_shot_s)

    def describe(self, cfg: IngestConfig) -> dict:
        """What the store records about the encoders and the shot detector."""
        from mediafm.ingest.encoders import describe

        return {m: describe(getattr(self, m)) for m in ("video", "audio", "text")} | {
            "shots": {"name": self.detector.name, "detector": cfg.detector,
                      "threshold": cfg.threshold, "min_shot_s": cfg.min_shot_s,
                      "frames_per_shot": cfg.frames_per_shot}}


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
    if not info.has_audio and (cfg.require_audio or not cfg.allow_no_audio):
        raise MediaError(f"{job.video}: no audio stream (--require-audio; without it a title "
                         "without audio is embedded with zero audio vectors)")
    cues = [c for s in job.subtitles for c in load_cues(s)]
    lap("probe+subtitles")
    shots = enc.detector.detect(job.video)
    lap("shots")
    k = cfg.frames_per_shot
    times = np.array([s + (j + 0.5) * (e - s) / k for s, e in shots for j in range(k)])
    middle = np.arange(len(times)) % k == k // 2  # one thumbnail a shot, same decoding pass
    frames, jpegs = frames_at(job.video, times, thumbs=middle)
    lap("decode video")
    video = enc.video.encode([frames[i * k:(i + 1) * k] for i in range(len(shots))])
    lap("video encoder")
    rate = getattr(enc.audio, "rate", RATE)
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
    title_emb = enc.text.encode([meta_text])[0] if meta_text else None
    lap("text encoder")
    text_col = [None] * len(shots)
    for i, v in zip(with_text, text_vecs, strict=True):
        text_col[i] = v
    frame = pd.DataFrame({"title_id": job.title_id, "shot_index": np.arange(len(shots)),
                          "start_s": [s for s, _ in shots], "end_s": [e for _, e in shots],
                          "video": list(video), "audio": list(audio), "text": text_col,
                          "subtitle_text": texts, "thumb": [j for j in jpegs if j is not None]})
    record = {"title_id": job.title_id, "video_path": job.video, "duration_s": info.duration_s,
              "dims": {"video": enc.video.dim, "audio": enc.audio.dim, "text": enc.text.dim},
              "n_shots": len(shots), "has_audio": info.has_audio,
              "metadata": None if title_emb is None else title_emb.tolist(),
              "synopsis": job.synopsis, "tags": list(job.tags)}
    return frame, record, t


@dataclass(frozen=True)
class TitleResult:
    """What an engine hands back for one title: timings, or the failure record."""

    title_id: str
    duration_s: float = 0.0
    stage_seconds: dict = field(default_factory=dict)
    failure: dict | None = None


def process_title(job: TitleJob, cfg: IngestConfig, enc: Encoders, staging: Staging,
                  on_stage=None) -> TitleResult:
    """Ingest one title and stage it; bad input becomes a failure record, never an exception."""
    try:
        frame, record, timings = ingest_title(job, cfg, enc, on_stage)
    except (MediaError, SubtitleError, ValueError, OSError) as e:
        return TitleResult(job.title_id, failure={"title_id": job.title_id, "source": job.video,
                                                  "stage": "ingest", "error": str(e)})
    staging.stage(frame, record)
    return TitleResult(job.title_id, record["duration_s"], timings)
