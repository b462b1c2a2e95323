"""Decoding with PyAV (FFmpeg): stream facts, frames at chosen times, mono audio at any rate.

Frames are decoded in one sequential pass per title and converted (scaled) only at the times
an encoder asked for, at the size it needs: decoding dominates ingest, so nothing is decoded
twice and nothing is converted that is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MediaError(ValueError):
    """A file that cannot be used as a title's media; the message names the file."""


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_video: bool
    has_audio: bool
    fps: float
    width: int
    height: int


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise MediaError(f"{path}: not a readable media file ({e})") from e


def probe(path: str | Path) -> MediaInfo:
    """Stream facts; raises MediaError for files without a video stream or with no duration."""
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        if v is None:
            raise MediaError(f"{path}: no video stream")
        duration = 0.0
        if c.duration:
            duration = c.duration / 1_000_000
        elif v.duration and v.time_base:
            duration = float(v.duration * v.time_base)
        if duration <= 0:
            raise MediaError(f"{path}: zero-length video")
        fps = float(v.average_rate or v.guessed_rate or 25)
        return MediaInfo(duration, True, a is not None, fps, v.codec_context.width,
                         v.codec_context.height)


def _video_frames(path: str | Path):
    """Decoded video frames with a presentation time, in order. A file that breaks off after
    some frames (truncated) ends the stream there; one that yields none raises MediaError."""
    import av

    n = 0
    with _open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in c.decode(stream):
                if frame.time is not None:
                    n += 1
                    yield frame
        except av.FFmpegError as e:
            if n == 0:
                raise MediaError(f"{path}: cannot decode video ({e})") from e
    if n == 0:
        raise MediaError(f"{path}: no decodable video frames")


def frames_at(path: str | Path, times: np.ndarray, short_side: int = 256, crop: int = 224,
              thumbs: np.ndarray | None = None, thumb_width: int = 192
              ) -> np.ndarray | tuple[np.ndarray, list[bytes | None]]:
    """(len(times), crop, crop, 3) uint8 RGB: for each time, the last frame shown at or before it,
    resized so its short side is ``short_side``, then centre-cropped. Variable frame rates are
    fine: frames are matched by presentation time, not by index. Times past the last decodable
    frame (a truncated file) get the last frame.

    ``thumbs``: a bool mask over ``times``; those frames are also returned as JPEG thumbnails
    at most ``thumb_width`` wide (aspect kept), from the same decoding pass: returns
    (frames, [jpeg bytes or None per time]).
    """
    order = np.argsort(times)
    out = np.zeros((len(times), crop, crop, 3), dtype=np.uint8)
    jpegs: list[bytes | None] = [None] * len(times)

    def take(i: int, frame) -> None:
        out[i] = _resize_crop(frame, short_side, crop)
        if thumbs is not None and thumbs[i]:
            jpegs[i] = thumbnail(frame, thumb_width)

    k, last = 0, None
    for frame in _video_frames(path):
        while k < len(order) and last is not None and times[order[k]] < frame.time:
            take(order[k], last)
            k += 1
        last = frame
        if k >= len(order):
            break
    for i in order[k:]:
        take(i, last)
    return out if thumbs is None else (out, jpegs)


def thumbnail(frame, width: int = 192, quality: int = 80) -> bytes:
    """A decoded frame as a JPEG at most ``width`` pixels wide (aspect ratio kept)."""
    import io

    w, h = frame.width, frame.height
    if w > width:
        w, h = width, max(1, round(frame.height * width / frame.width))
    buf = io.BytesIO()
    frame.to_image(width=w, height=h).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def small_frames(path: str | Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Every frame as (n, height, width, 3) uint8 RGB (squashed, not cropped) and its time."""
    frames, times = [], []
    for frame in _video_frames(path):
        frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
        times.append(frame.time)
    return np.stack(frames), np.asarray(times, dtype=np.float64)


def _resize_crop(frame, short_side: int, crop: int) -> np.ndarray:
    w, h = frame.width, frame.height
    scale = short_side / min(w, h)
    nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
    img = frame.to_ndarray(format="rgb24", width=nw, height=nh)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return img[top:top + crop, left:left + crop]


def audio_mono(path: str | Path, rate: int = 16_000) -> np.ndarray:
    """The first audio stream as float32 mono at ``rate`` Hz; empty when there is none."""
    import av

    with _open(path) as c:
        if not c.streams.audio:
            return np.zeros(0, dtype=np.float32)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in c.decode(c.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError:
            pass  # truncated audio: keep what decoded
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
