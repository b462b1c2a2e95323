"""One title through the pipeline: decode, detect shots, encode three modalities, embed metadata.

``ingest_title`` is the unit of work the ingest stage runs (``ingest.run``), in this process,
a worker process or a Ray actor, with the ``Encoders`` that worker built once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd

from mediafm.ingest.config import DEBLOCK, IngestConfig
from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.media import MediaError, audio_mono, probe
from mediafm.ingest.scan import scan
from mediafm.ingest.shots import audio_segments
from mediafm.ingest.speech import transcript_row, words_of_shots
from mediafm.ingest.subtitles import assign, load_cues

RATE = 16_000  # audio sample rate for encoders that do not name their own


class Encoders:
    """The three encoders and the shot detector, built once per process."""

    def __init__(self, cfg: IngestConfig, threads: int | None = None):
        """``threads``: torch threads for this process (1 in a pool of workers)."""
        import torch

        from mediafm.ingest.encoders import build
        from mediafm.ingest.shots import SceneDetectShots, TransNetV2Shots

        if threads is not None:
            torch.set_num_threads(threads)
        enc, det, args = cfg.encode, cfg.detect, cfg.encode.encoder_args()
        self.device = cfg.run.device or ("cuda" if torch.cuda.is_available() else "cpu")
        p = enc.precision
        self.video = build("video", enc.video_encoder, self.device, p, **args.get("video", {}))
        self.audio = build("audio", enc.audio_encoder, self.device, p, **args.get("audio", {}))
        self.text = build("text", enc.text_encoder, self.device, **args.get("text", {}))
        if det.detector == "transnetv2":
            self.detector = TransNetV2Shots(det.threshold or 0.5, det.min_shot_s, self.device)
        else:
            self.detector = SceneDetectShots(det.detector, det.threshold, det.min_shot_s,
                                             width=det.detect_width)
        self.asr = cfg.asr.effective()
        self.speech = None
        if self.asr != "off":
            from mediafm.ingest.speech import SpeechToText

            self.speech = SpeechToText(cfg.asr.model, self.device, cfg.asr.beam_size,
                                       threads or 0, cfg.asr.vad)

    def describe(self, cfg: IngestConfig) -> dict:
        """What the store records about the encoders and the shot detector."""
        from mediafm.ingest.encoders import describe

        det, dec = cfg.detect, cfg.decode
        return {m: describe(getattr(self, m)) for m in ("video", "audio", "text")} | {
            "shots": {"name": self.detector.name, "detector": det.detector,
                      "threshold": det.threshold, "min_shot_s": det.min_shot_s,
                      **({} if det.detector == "transnetv2" else {"width": det.detect_width}),
                      "frames_per_shot": cfg.encode.frames_per_shot},
            "decoder": {"name": dec.decoder, "deblock": dec.deblock},
            "asr": {"mode": self.asr, **(self.speech.describe() if self.speech else {})},
            "audio_track": dec.audio_track,
            "audio_segments": {"min_segment_s": det.min_segment_s,
                               "max_segment_s": det.max_segment_s, "pause_s": det.pause_s}}


STAGES = 6  # the lap() calls of ingest_title, for a per-title progress bar


def shot_audio(wave: np.ndarray, rate: int, start: float, end: float) -> np.ndarray:
    """The shot's samples (at least one index wide: past the audio's end it is empty, and the
    encoders pad it as silence)."""
    return wave[int(start * rate):max(int(end * rate), int(start * rate) + 1)]


class EncodeBehind:
    """The video and audio encoders in a thread, on the shots the decoding pass has finished,
    in batches: on two cores, encoding the previous shots overlaps decoding the next ones.

    Batches of 4 shots, in order (so the same title always gives the same vectors): the shots
    still waiting when decoding ends are encoded after it, which no overlap hides; at 8 that
    tail was 0.44 s of a 2-minute 720p title's ~5.5 s, at 4 it is 0.2 s
    (``benchmarks/ingest_throughput.py``). End to end that is parity with 8 by every range
    (medians 1.00-1.03x in four runs): on two cores the decoding waits on the encoders' work
    a shot either way (at 2 a batch, the tail 0.14 s and the whole at parity too).

    ``put`` blocks when ``max_queued`` shots wait (memory stays bounded); an encoder error
    stops the thread and is raised by the next ``put`` or by ``finish``.
    """

    def __init__(self, enc: Encoders, wave: np.ndarray | Future | None, rate: int,
                 batch: int = 4, max_queued: int = 64):
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
        if isinstance(self.wave, Future):  # the audio decoding beside the video's: wait for it
            self.wave = self.wave.result()
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


def _shots(job: TitleJob, info, cfg: IngestConfig, enc: Encoders,
           wave: np.ndarray | Future | None, rate: int, lap, t: dict
           ) -> tuple[list, np.ndarray, np.ndarray, dict]:
    """(shots, video vectors, audio vectors, per-shot columns: thumbnails, frames,
    transitions) of one title: a video's from one decoding pass with the encoders behind
    it; an audio-only title's from its pauses."""
    if info.has_video:
        behind = EncodeBehind(enc, wave, rate)
        try:
            scanned = scan(job.video, enc.detector, cfg.encode.frames_per_shot,
                           enc.detector.min_shot_s, behind.put, info=info,
                           decoder=cfg.decode.decoder, device=enc.device,
                           deblock=DEBLOCK[cfg.decode.deblock])
        except BaseException:
            with contextlib.suppress(Exception):  # the decoding error is the one to report
                behind.finish()
            raise
        lap("decode+shots")
        video, audio = behind.finish()
        t |= {k: t.get(k, 0.0) + v for k, v in behind.seconds.items()}
        extras = {"thumb": [s.thumb for s in scanned],
                  **{c: [getattr(s, c) for s in scanned] for c in (
                      "first_frame", "last_frame", "transition", "transition_frames")}}
        return [(s.start, s.end) for s in scanned], video, audio, extras
    det = cfg.detect  # audio only (a podcast): the shots are audio segments, video is zeros
    wave = wave.result() if isinstance(wave, Future) else wave
    shots = audio_segments(wave, rate, info.duration_s, det.min_segment_s, det.max_segment_s,
                           det.pause_s)
    lap("decode+shots")
    video = np.zeros((len(shots), enc.video.dim), np.float32)
    audio = enc.audio.encode([shot_audio(wave, rate, s, e) for s, e in shots])
    return shots, video, audio, {"thumb": [None] * len(shots)}


def ingest_title(job: TitleJob, cfg: IngestConfig, enc: Encoders, on_stage=None
                 ) -> tuple[pd.DataFrame, dict, dict[str, float]]:
    """(SHOTS rows, title record, seconds per stage) for one title; raises on bad input.

    One decoding pass finds the cuts and samples each shot's frames (``scan``) while a thread
    decodes the audio and another runs the video and audio encoders on the shots already
    finished (``EncodeBehind``, which waits for the audio when it first needs it); the audio
    decoding's and the encoders' own seconds are reported beside the stages, overlapping
    them. ``on_stage(name)`` is called as each stage ends (progress display)."""
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
    if not info.has_audio and cfg.run.require_audio:
        raise MediaError(f"{job.video}: no audio stream (--require-audio; without it a title "
                         "without audio is embedded with zero audio vectors)")
    cues = [c for s in job.subtitles for c in load_cues(s)]
    lap("probe+subtitles")
    rate = getattr(enc.audio, "rate", RATE)
    wave = None
    if info.has_audio:  # decoded on a thread beside the video's pass, not before it; its own
        def decode() -> np.ndarray:  # seconds are reported, overlapping, as the encoders' are
            start = time.perf_counter()
            out = audio_mono(job.video, rate, cfg.decode.audio_track)
            t["decode audio"] = time.perf_counter() - start
            return out

        with ThreadPoolExecutor(1, thread_name_prefix="mediafm-audio") as pool:
            wave = pool.submit(decode)
            lap("decode audio")
            shots, video, audio, extras = _shots(job, info, cfg, enc, wave, rate, lap, t)
        wave = wave.result()
    else:
        lap("decode audio")
        shots, video, audio, extras = _shots(job, info, cfg, enc, wave, rate, lap, t)
    lap("encoders (after decoding)")
    segments = []
    if enc.speech is not None and wave is not None and (enc.asr == "on" or not cues):
        from mediafm.ingest.speech import to_rate

        segments = enc.speech.transcribe(to_rate(wave, rate))
    lap("speech to text")
    texts = assign(cues, shots) if cues else words_of_shots(segments, shots)
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
                          "timed_text": [x or None for x in texts], **extras})
    record = {"title_id": job.title_id, "video_path": job.video, "duration_s": info.duration_s,
              "dims": {"video": enc.video.dim, "audio": enc.audio.dim, "text": enc.text.dim},
              "n_shots": len(shots), "has_audio": info.has_audio,
              "has_video": info.has_video,
              "metadata": None if title_emb is None else title_emb.tolist(),
              "synopsis": job.synopsis, "tags": list(job.tags), "frame_rate": info.rate,
              "transcript": [transcript_row(s) for s in segments]}
    return frame, record, t
