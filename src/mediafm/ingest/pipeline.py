"""One title through the pipeline: decode, detect shots, encode three modalities, embed metadata.

``process_title`` is the unit of work every engine runs (in this process, a worker process or
a Ray actor): it never raises for bad input, it returns a failure record instead, so one bad
title never takes the others down.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.media import MediaError, audio_mono, probe
from mediafm.ingest.scan import scan
from mediafm.ingest.shots import audio_segments
from mediafm.ingest.staging import Staging
from mediafm.ingest.subtitles import SubtitleError, assign, load_cues

RATE = 16_000  # audio sample rate for encoders that do not name their own


@dataclass(frozen=True)
class IngestConfig:
    frames_per_shot: int = 4
    detector: str = "content"  # PySceneDetect content | adaptive, or transnetv2
    threshold: float | None = None
    min_shot_s: float = 0.5
    min_segment_s: float = 2.0  # audio-only titles: segments cut at pauses of >= pause_s,
    max_segment_s: float = 30.0  # merged up to min_segment_s, split down to max_segment_s
    pause_s: float = 0.3
    audio_track: int | None = None  # 0-based among the audio streams; None: the default one
    device: str | None = None  # the encoders' (and TransNetV2's) device; None: cuda if any
    decoder: str = "pyav"  # pyav | torchcodec (decodes on ``device``: NVDEC on a GPU)
    deblock: str = "auto"  # pyav: auto (skip the deblocking filter for frames >= 512 px on
    # the short side, ``ingest.scan``) | on | off
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

    def __post_init__(self) -> None:
        if self.deblock not in DEBLOCK:
            raise ValueError(f"deblock must be one of {tuple(DEBLOCK)}, got {self.deblock!r}")


RUN_ONLY = ("device", "require_audio", "allow_no_audio", "workers", "engine", "ray_address")


def output_settings(cfg: IngestConfig) -> dict:
    """The settings a staged title depends on: all of ``cfg`` but where and how the run runs
    (``RUN_ONLY``), with the default audio encoder resolved to the one that is installed."""
    from dataclasses import asdict

    from mediafm.ingest.encoders import default_name

    out = {k: v for k, v in asdict(cfg).items() if k not in RUN_ONLY}
    out["audio_encoder"] = cfg.audio_encoder or default_name("audio")
    return out


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
        self.device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.video = build("video", cfg.video_encoder, self.device, **args.get("video", {}))
        self.audio = build("audio", cfg.audio_encoder, self.device, **args.get("audio", {}))
        self.text = build("text", cfg.text_encoder, self.device, **args.get("text", {}))
        if cfg.detector == "transnetv2":
            self.detector = TransNetV2Shots(cfg.threshold or 0.5, cfg.min_shot_s, self.device)
        else:
            self.detector = SceneDetectShots(cfg.detector, cfg.threshold, cfg.min_shot_s)

    def describe(self, cfg: IngestConfig) -> dict:
        """What the store records about the encoders and the shot detector."""
        from mediafm.ingest.encoders import describe

        return {m: describe(getattr(self, m)) for m in ("video", "audio", "text")} | {
            "shots": {"name": self.detector.name, "detector": cfg.detector,
                      "threshold": cfg.threshold, "min_shot_s": cfg.min_shot_s,
                      "frames_per_shot": cfg.frames_per_shot},
            "decoder": {"name": cfg.decoder, "deblock": cfg.deblock},
            "audio_track": cfg.audio_track,
            "audio_segments": {"min_segment_s": cfg.min_segment_s,
                               "max_segment_s": cfg.max_segment_s, "pause_s": cfg.pause_s}}


DEBLOCK = {"auto": None, "on": True, "off": False}  # IngestConfig.deblock -> scan(deblock=)
STAGES = 5  # the lap() calls of ingest_title, for a per-title progress bar


def shot_audio(wave: np.ndarray, rate: int, start: float, end: float) -> np.ndarray:
    """The shot's samples (at least one index wide: past the audio's end it is empty, and the
    encoders pad it as silence)."""
    return wave[int(start * rate):max(int(end * rate), int(start * rate) + 1)]


class EncodeBehind:
    """The video and audio encoders in a thread, on the shots the decoding pass has finished,
    in batches: on two cores, encoding the previous shots overlaps decoding the next ones.

    ``put`` blocks when ``max_queued`` shots wait (memory stays bounded); an encoder error
    stops the thread and is raised by the next ``put`` or by ``finish``.
    """

    def __init__(self, enc: Encoders, wave: np.ndarray | None, rate: int, batch: int = 8,
                 max_queued: int = 64):
        self.enc, self.wave, self.rate, self.batch = enc, wave, rate, batch
        self.queue: queue.Queue = queue.Queue(max_queued)
        self.video: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.seconds = {"video encoder": 0.0, "audio encoder": 0.0}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mediafm-encode", daemon=True)
        self.thread.start()

    def put(self, shot) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(shot, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(video, audio) vectors of every shot put, in order."""
        if self.error is None:
            self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        video = np.concatenate(self.video) if self.video else np.zeros((0, self.enc.video.dim))
        audio = np.concatenate(self.audio) if self.audio else np.zeros((0, self.enc.audio.dim))
        return video.astype(np.float32), audio.astype(np.float32)

    def _encode(self, shots: list) -> None:
        t = time.perf_counter()
        self.video.append(self.enc.video.encode([s.frames for s in shots]))
        t2 = time.perf_counter()
        if self.wave is None:
            self.audio.append(np.zeros((len(shots), self.enc.audio.dim), np.float32))
        else:
            r = self.rate
            self.audio.append(self.enc.audio.encode(
                [shot_audio(self.wave, r, s.start, s.end) for s in shots]))
        self.seconds["video encoder"] += t2 - t
        self.seconds["audio encoder"] += time.perf_counter() - t2

    def _run(self) -> None:
        pending: list = []
        try:
            while True:
                shot = self.queue.get()
                if shot is not None:
                    pending.append(shot)
                if pending and (shot is None or len(pending) >= self.batch):
                    self._encode(pending)
                    pending = []
                if shot is None:
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the decoding thread
            self.error = e
            while True:  # unblock a put() waiting on a full queue
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    return


def ingest_title(job: TitleJob, cfg: IngestConfig, enc: Encoders, on_stage=None
                 ) -> tuple[pd.DataFrame, dict, dict[str, float]]:
    """(SHOTS rows, title record, seconds per stage) for one title; raises on bad input.

    One decoding pass finds the cuts and samples each shot's frames (``scan``) while a thread
    runs the video and audio encoders on the shots already finished (``EncodeBehind``); the
    encoders' own seconds are reported beside the stages, overlapping them. ``on_stage(name)``
    is called as each stage ends (progress display)."""
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
    rate = getattr(enc.audio, "rate", RATE)
    wave = audio_mono(job.video, rate, cfg.audio_track) if info.has_audio else None
    lap("decode audio")
    if info.has_video:
        behind = EncodeBehind(enc, wave, rate)
        try:
            scanned = scan(job.video, enc.detector, cfg.frames_per_shot,
                           enc.detector.min_shot_s, behind.put, info=info,
                           decoder=cfg.decoder, device=enc.device,
                           deblock=DEBLOCK[cfg.deblock])
        except BaseException:
            with contextlib.suppress(Exception):  # the decoding error is the one to report
                behind.finish()
            raise
        lap("decode+shots")
        video, audio = behind.finish()
        t |= {k: t.get(k, 0.0) + v for k, v in behind.seconds.items()}
        shots = [(s.start, s.end) for s in scanned]
        thumbs = [s.thumb for s in scanned]
    else:  # audio only (a podcast): the shots are audio segments, video is zeros
        shots = audio_segments(wave, rate, info.duration_s, cfg.min_segment_s,
                               cfg.max_segment_s, cfg.pause_s)
        lap("decode+shots")
        video, thumbs = np.zeros((len(shots), enc.video.dim), np.float32), [None] * len(shots)
        audio = enc.audio.encode([shot_audio(wave, rate, s, e) for s, e in shots])
    lap("encoders (after decoding)")
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
                          "subtitle_text": texts, "thumb": thumbs})
    record = {"title_id": job.title_id, "video_path": job.video, "duration_s": info.duration_s,
              "dims": {"video": enc.video.dim, "audio": enc.audio.dim, "text": enc.text.dim},
              "n_shots": len(shots), "has_audio": info.has_audio,
              "has_video": info.has_video,
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
