"""One decoding pass per title: the shot cuts, each shot's frames for the video encoder, and
its thumbnail.

Every frame is decoded once (PyAV, threaded) and downscaled once to the size the shot detector
wants. Every ``sample_s`` seconds (more often when the shortest shot needs it) a frame is also
kept, as decoded, in a buffer that holds only shots not yet final: when it grows past
``max_samples`` frames or ``max_sample_bytes`` (a very long shot) every other sample is dropped
and the stride doubles, so memory is bounded per shot whatever the title's or the shot's
length. Only the frames a final shot picks are converted (to the video encoder's size, and one
to a thumbnail): ``frames_per_shot`` + 1 conversions a shot, not two for every sample (8 a
second).

A shot is final once the detector has cut after it and ``min_shot_s`` more has been decoded
(a shorter last piece would join it, as ``shots.merge_short`` does for a list of cuts). Its
``frames_per_shot`` frames are then picked from the buffer at evenly spread times (the last
sample at or before each) and handed to ``on_shot`` while decoding goes on: the encoders can
work in another thread on the previous shots.

The detector's downscale and scoring run on a thread of their own (``_Detection``), a few
frames behind the decoder (libav, swscale, OpenCV and NumPy release the GIL): on two cores the
decoding and the detection overlap instead of adding up. Shots are finalised on the detector's
clock, so the cuts are exactly those of feeding it in line.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mediafm.ingest.media import Converter, MediaInfo, jpeg, probe, video_frames


class DetectorStream(Protocol):
    """One title's shot detection, fed frame by frame (``ShotDetector.stream``)."""

    size: tuple[int, int]  # (width, height) of the frames it takes
    format: str  # their pixel format: "bgr24" (OpenCV's order) or "rgb24"
    # optional ``interpolation``: the swscale method that downscales them (default bilinear)

    def push(self, index: int, image: np.ndarray) -> list[int]:
        """Frame ``index`` (0, 1, 2, ...); returns the indices of the first frames of new shots
        found so far (possibly earlier frames: detectors may look ahead)."""
        ...

    def finish(self, n_frames: int) -> list[int]:
        """No more frames: the cuts still held back."""
        ...


@dataclass(frozen=True)
class ScannedShot:
    start: float
    end: float
    first_frame: int  # the shot's frames, by their order in the stream (0-based, inclusive)
    last_frame: int
    transition: str | None  # the boundary that begins it (``transitions``); None: the first
    transition_frames: int | None
    frames: np.ndarray  # (frames_per_shot, crop, crop, 3) uint8 RGB; (0, ...) when not sampled
    times: np.ndarray  # the presentation time of each of those frames
    thumb: bytes | None  # JPEG of the middle frame


@dataclass
class _Sample:
    time: float
    frame: object  # as decoded (an av.VideoFrame), or already converted: (crop, thumb)


class _Shots:
    """Cut times -> final shots with their frames, as decoding advances."""

    def __init__(self, k: int, min_shot_s: float, on_shot: Callable[[ScannedShot], None] | None,
                 stride: float, convert: Callable[[object, bool], tuple[np.ndarray, object]],
                 kinds: dict[int, tuple[str, int]] | None = None):
        """``convert(sample.frame, thumb)``: (encoder crop, thumbnail or None) of a picked
        sample, the thumbnail only when ``thumb`` (one a shot); ``kinds``: the typed boundaries
        by frame (``transitions.TypedStream``)."""
        self.k, self.min_shot_s, self.on_shot, self.convert = k, min_shot_s, on_shot, convert
        self.kinds = kinds if kinds is not None else {}
        self.base = self.stride = stride  # seconds between samples; doubled in a long shot
        self.samples: list[_Sample] = []
        self.before: _Sample | None = None  # the last sample of the previous shot
        self.start = 0.0  # start of the first shot not yet final
        self.start_frame = 0  # and its first frame
        self.pending: list[tuple[float, int]] = []  # accepted cuts (time, frame), shots open
        self.shots: list[ScannedShot] = []

    def cut(self, t: float, frame: int) -> None:
        last = self.pending[-1][0] if self.pending else self.start
        if t - last >= self.min_shot_s:  # else the shot before it would be too short: no cut
            self.pending.append((t, frame))

    def advance(self, now: float) -> None:
        """Decoding has reached ``now``: shots whose cut lies ``min_shot_s`` behind are final."""
        while self.pending and now - self.pending[0][0] >= self.min_shot_s:
            self.close(*self.pending.pop(0))

    def end(self, duration: float, n_frames: int) -> None:
        while self.pending and duration - self.pending[-1][0] < self.min_shot_s:
            self.pending.pop()  # the last piece is too short: it joins the shot before
        for c, frame in self.pending:
            self.close(c, frame)
        self.pending = []
        self.close(max(duration, self.start), max(n_frames, self.start_frame + 1))

    def close(self, end: float, end_frame: int) -> None:
        """The open shot ends at ``end``, before frame ``end_frame`` (the next shot's first)."""
        start, k = self.start, self.k
        n = 0
        while n < len(self.samples) and self.samples[n].time < end:
            n += 1
        mine, self.samples = self.samples[:n], self.samples[n:]
        frames, times, thumb = np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0), None
        pool = mine or [s for s in (self.before, *self.samples[:1]) if s is not None]
        if k and pool:
            have = np.array([s.time for s in pool])
            want = start + (np.arange(k) + 0.5) * (end - start) / k
            idx = np.clip(np.searchsorted(have, want, side="right") - 1, 0, len(pool) - 1)
            middle = int(idx[k // 2])
            picked = {i: self.convert(pool[i].frame, i == middle)
                      for i in dict.fromkeys(idx.tolist())}
            frames, times = np.stack([picked[i][0] for i in idx]), have[idx]
            thumb = jpeg(picked[middle][1])
        if mine:
            self.before = mine[-1]
        kind, length = (None, None) if self.start_frame == 0 else self.kinds.get(
            self.start_frame, ("cut", 1))
        shot = ScannedShot(start, end, self.start_frame, end_frame - 1, kind, length, frames,
                           times, thumb)
        self.shots.append(shot)
        self.start, self.start_frame, self.stride = end, end_frame, self.base
        if self.on_shot is not None:
            self.on_shot(shot)


class _Detection:
    """A detector stream fed on its own thread through a bounded queue of decoded frames.

    ``take`` returns, in order, each frame index the detector has been through with the cuts
    that frame revealed, so the caller replays them exactly as if it had called ``push`` itself.
    ``depth`` bounds the decoded frames in flight (4 frames of 4K 10-bit are ~100 MB).
    """

    def __init__(self, stream: DetectorStream, conv, depth: int = 4):
        self.stream, self.conv = stream, conv
        self.queue: queue.Queue = queue.Queue(depth)
        self.done: list[tuple[int, list[int]]] = []
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="shot-detector", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        (w, h), fmt = self.stream.size, self.stream.format
        interpolation = getattr(self.stream, "interpolation", None)
        try:
            while (item := self.queue.get()) is not None:
                i, frame = item
                found = self.stream.push(i, self.conv.array(frame, w, h, fmt, interpolation))
                with self.lock:
                    self.done.append((i, found))
        except BaseException as e:  # handed to the decoding thread; keep draining its queue
            self.error = e
            while self.queue.get() is not None:
                pass

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, index: int, frame) -> None:
        self._check()
        self.queue.put((index, frame))

    def take(self) -> list[tuple[int, list[int]]]:
        with self.lock:
            done, self.done = self.done, []
        return done

    def close(self) -> list[tuple[int, list[int]]]:
        """No more frames: wait for the detector to go through the ones queued."""
        self.queue.put(None)
        self.thread.join()
        self._check()
        return self.take()


def scan(path: str | Path, detector, frames_per_shot: int = 4, min_shot_s: float = 0.5,
         on_shot: Callable[[ScannedShot], None] | None = None, sample_s: float = 0.25,
         max_samples: int = 256, short_side: int = 256, crop: int = 224,
         thumb_width: int = 192, info: MediaInfo | None = None, decoder: str = "pyav",
         device: str = "cpu", max_sample_bytes: int = 256 << 20, deblock: bool | None = None,
         transitions: bool = True) -> list[ScannedShot]:
    """Shots covering the title (start, end, frames, thumbnail), in one decoding pass.

    ``detector``: a ``ShotDetector`` (its ``stream(info)`` is fed every frame).
    ``decoder``: ``pyav`` (``media.video_frames``), or ``torchcodec`` (``ingest.codec``: on
    ``device``, e.g. a GPU's NVDEC, resized there).
    ``frames_per_shot=0``: cuts only, nothing sampled. ``max_samples`` / ``max_sample_bytes``:
    the most decoded frames (and their bytes: 720p is 1.4 MB a frame, 4K 10-bit 25 MB) one
    shot's buffer holds before it is thinned. Frames are matched by presentation
    time (relative to the title's start, ``MediaInfo.start_s``), so variable frame rates keep
    exact cut times. ``deblock``: whether the pyav decoder runs the deblocking filter
    (``media.video_frames``); None: only for frames smaller than ``2 * short_side`` on their
    short side. Downscaled 2x or more, the filter's effect vanishes (measured on 720p: the
    same cuts, video features at cosine 0.99+), while it costs ~20% of decoding; small frames
    are upscaled, blocking and all (cosine 0.97 at 160x90), so they keep it. A file that
    breaks off after some frames (truncated) ends there. Raises MediaError for a file with no
    decodable frame. ``transitions``: the detector's cuts become typed boundaries, and fades
    and dissolves it missed are found (``ingest.transitions``); False: its cuts as they are.
    """
    info = info or probe(path)
    stream: DetectorStream = detector.stream(info)
    if transitions:  # typed boundaries: fades and dissolves found, each at its middle
        from mediafm.ingest.transitions import TypedStream

        stream = TypedStream(stream, info.fps, min_shot_s)
    if deblock is None:
        deblock = min(info.width, info.height) < 2 * short_side
    frames, conv = _decoder(path, decoder, device, deblock)
    # a sample at least every min_shot_s / frames_per_shot: the shortest shot still holds
    # frames_per_shot different frames
    stride = min(sample_s, min_shot_s / max(frames_per_shot, 2))
    lazy = getattr(conv, "lazy", False)  # hold decoded frames, convert the picked ones

    def convert(frame, thumb: bool) -> tuple[np.ndarray, object]:
        if not lazy:  # converted as sampled
            return frame
        return (conv.crop(frame, short_side, crop),
                conv.thumb(frame, thumb_width) if thumb else None)

    shots = _Shots(frames_per_shot, min_shot_s, on_shot, stride, convert,
                   getattr(stream, "kinds", None))
    cap = max_samples
    next_sample = -np.inf
    times: list[float] = []

    def replay(done: list[tuple[int, list[int]]]) -> None:
        for i, found in done:  # as in line: advance to frame i, then the cuts it revealed
            shots.advance(times[i])
            for c in found:
                shots.cut(times[c], c)

    detection = _Detection(stream, conv)
    try:
        for i, frame in enumerate(frames):
            t = float(frame.time) - info.start_s  # the title's time: 0 at its start
            times.append(t)
            replay(detection.take())
            if frames_per_shot and t >= next_sample:
                if lazy and not shots.samples:  # as many frames of this size as fit the budget
                    cap = max(2 * frames_per_shot + 2,
                              min(max_samples, max_sample_bytes // max(frame_bytes(frame), 1)))
                if len(shots.samples) >= cap:  # a very long shot: keep half, sample half
                    shots.samples = shots.samples[::2]
                    shots.stride *= 2
                shots.samples.append(_Sample(t, frame if lazy else (
                    conv.crop(frame, short_side, crop), conv.thumb(frame, thumb_width))))
                next_sample = t + shots.stride
            detection.put(i, frame)
    finally:
        done = detection.close()
    replay(done)
    for c in stream.finish(len(times)):
        shots.cut(times[c], c)
    shots.end(max(info.duration_s, times[-1]), len(times))
    return shots.shots


def frame_bytes(frame) -> int:
    """The bytes a decoded PyAV frame holds (its planes)."""
    return sum(p.buffer_size for p in frame.planes)


DECODERS = ("pyav", "torchcodec")


def _decoder(path: str | Path, name: str, device: str, deblock: bool = True):
    """(frames, converter) of a decoding backend."""
    if name == "pyav":
        return video_frames(path, deblock), Converter()
    if name == "torchcodec":
        from mediafm.ingest.codec import TensorConverter, tensor_frames

        return tensor_frames(path, device), TensorConverter()
    raise ValueError(f"unknown decoder {name!r}: use one of {DECODERS}")
