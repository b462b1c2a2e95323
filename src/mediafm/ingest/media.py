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
    start_s: float = 0.0  # the container's start time: where the title's time 0 lies (an
    # MPEG-TS broadcast starts at ~1.4 s); every time mediafm reports is relative to it
    rate: str = ""  # the video's frame rate as a ratio ("30000/1001", "25"): its timecode


def _origin(container) -> float:
    return container.start_time / 1_000_000 if container.start_time else 0.0


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
    """Stream facts; raises MediaError for files with neither a video nor an audio stream, or
    with no duration. A file with audio only (a podcast, a radio show) is an audio-only title:
    ``has_video`` false, fps/width/height 0."""
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        if v is None and a is None:
            raise MediaError(f"{path}: no video or audio stream")
        main = v if v is not None else a
        duration = 0.0
        if c.duration:
            duration = c.duration / 1_000_000
        elif main.duration and main.time_base:
            duration = float(main.duration * main.time_base)
        if duration <= 0:
            raise MediaError(f"{path}: zero-length {'video' if v is not None else 'audio'}")
        if v is None:
            return MediaInfo(duration, False, True, 0.0, 0, 0, _origin(c))
        rate = v.average_rate or v.guessed_rate or 25
        # timecode counts on the grid the timestamps sit on: FFmpeg's guess (the base rate, 25
        # for a 25 fps recording that dropped frames, whose average is lower)
        return MediaInfo(duration, True, a is not None, float(rate), v.codec_context.width,
                         v.codec_context.height, _origin(c), str(v.guessed_rate or rate))


def video_frames(path: str | Path, deblock: bool = True):
    """Decoded video frames with a presentation time, in order. A file that breaks off after
    some frames (truncated) ends the stream there; one that yields none raises MediaError.

    ``deblock=False`` skips the in-loop deblocking filter of H.264 / HEVC / VP9 (FFmpeg's
    ``skip_loop_filter=all``, what fast thumbnailers use): decoding costs ~20% less and a frame
    moves ~1/255 on average, below what the downscaled detector and encoder frames resolve;
    codecs without the option ignore it.
    """
    import av

    n = 0
    with _open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        if not deblock:
            stream.codec_context.options = {"skip_loop_filter": "all"}
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


class Converter:
    """Frame -> RGB/BGR arrays at a chosen size, each target size through one reused swscale
    context: ``frame.to_ndarray(width=..., height=...)`` builds a new context for every frame,
    which costs more than decoding it (~3.7 ms against ~0.3 ms for a 720p frame to 256x144)."""

    lazy = True  # a decoded frame may be held and converted later (``scan`` does)

    def __init__(self):
        self._reformatters: dict[tuple[int, int, str], object] = {}

    def array(self, frame, width: int, height: int, fmt: str = "rgb24",
              interpolation: str | None = None) -> np.ndarray:
        """``interpolation``: an swscale method (PyAV's ``Interpolation`` name); None is its
        default, bilinear."""
        from av.video.reformatter import VideoReformatter

        key = (width, height, fmt)
        r = self._reformatters.get(key)
        if r is None:
            r = self._reformatters[key] = VideoReformatter()
        return r.reformat(frame, width, height, fmt, threads=1,
                          interpolation=interpolation).to_ndarray()

    def crop(self, frame, short_side: int = 256, crop: int = 224) -> np.ndarray:
        """Resized so the short side is ``short_side``, then centre-cropped to crop x crop, then
        turned upright (a phone's rotation metadata, as FFmpeg's player applies it). A copy: a
        view would keep the whole converted frame alive."""
        w, h = frame.width, frame.height
        scale = short_side / min(w, h)
        nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
        img = self.array(frame, nw, nh)
        top, left = (nh - crop) // 2, (nw - crop) // 2
        return upright(img[top:top + crop, left:left + crop], frame).copy()

    def thumb(self, frame, width: int = 192) -> np.ndarray:
        """Upright, at most ``width`` pixels wide as displayed, aspect ratio kept (never
        enlarged)."""
        w, h = frame.width, frame.height
        shown_w = h if _quarter_turns(frame) % 2 else w
        if shown_w > width:
            w, h = round(w * width / shown_w), round(h * width / shown_w)
        return upright(self.array(frame, max(1, w), max(1, h)), frame).copy()


def _quarter_turns(frame) -> int:
    return round(getattr(frame, "rotation", 0) or 0) // 90 % 4


def upright(image: np.ndarray, frame) -> np.ndarray:
    """``image`` (converted from ``frame``) as displayed: rotated by the frame's display matrix
    (PyAV's ``frame.rotation``, degrees counter-clockwise, multiples of 90)."""
    k = _quarter_turns(frame)
    return np.rot90(image, k) if k else image


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """An RGB array as JPEG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def frames_at(path: str | Path, times: np.ndarray, short_side: int = 256, crop: int = 224,
              thumbs: np.ndarray | None = None, thumb_width: int = 192
              ) -> np.ndarray | tuple[np.ndarray, list[bytes | None]]:
    """(len(times), crop, crop, 3) uint8 RGB: for each time, the last frame shown at or before it,
    resized so its short side is ``short_side``, then centre-cropped. Variable frame rates are
    fine: frames are matched by presentation time, not by index. Times are relative to the
    title's start (``MediaInfo.start_s``). Times past the last decodable frame (a truncated
    file) get the last frame.

    ``thumbs``: a bool mask over ``times``; those frames are also returned as JPEG thumbnails
    at most ``thumb_width`` wide (aspect kept), from the same decoding pass: returns
    (frames, [jpeg bytes or None per time]). (Ingest itself samples frames while it detects
    shots, ``ingest.scan``; this serves ``mediafm thumbs`` and callers with their own times.)
    """
    order = np.argsort(times)
    out = np.zeros((len(times), crop, crop, 3), dtype=np.uint8)
    jpegs: list[bytes | None] = [None] * len(times)
    conv = Converter()
    origin = probe(path).start_s

    def take(i: int, frame) -> None:
        out[i] = conv.crop(frame, short_side, crop)
        if thumbs is not None and thumbs[i]:
            jpegs[i] = jpeg(conv.thumb(frame, thumb_width))

    k, last = 0, None
    for frame in video_frames(path):
        while k < len(order) and last is not None and times[order[k]] < frame.time - origin:
            take(order[k], last)
            k += 1
        last = frame
        if k >= len(order):
            break
    for i in order[k:]:
        take(i, last)
    return out if thumbs is None else (out, jpegs)


def audio_stream(container, path: str | Path, track: int | None = None):
    """The audio stream to use: track ``track`` (0-based among the audio streams) when given,
    else the one marked default (a dubbed film's original language, say), else the first."""
    import av

    streams = container.streams.audio
    if track is not None:
        if not 0 <= track < len(streams):
            raise MediaError(f"{path}: no audio track {track} (it has {len(streams)})")
        return streams[track]
    for s in streams:
        if s.disposition & av.stream.Disposition.default:
            return s
    return streams[0] if streams else None


def audio_mono(path: str | Path, rate: int = 16_000, track: int | None = None) -> np.ndarray:
    """An audio stream (``audio_stream``) as float32 mono at ``rate`` Hz, on the title's
    timeline: sample 0 is at the title's start, so audio that starts late (a muxing offset) is
    preceded by silence and audio that starts early is trimmed. Empty when there is none."""
    import av

    with _open(path) as c:
        stream = audio_stream(c, path, track)
        if stream is None:
            return np.zeros(0, dtype=np.float32)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks, first = [], None
        try:
            for frame in c.decode(stream):
                if first is None and frame.time is not None:
                    first = frame.time - _origin(c)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError:
            pass  # truncated audio: keep what decoded
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    shift = round((first or 0.0) * rate)
    if shift > 0:
        return np.concatenate([np.zeros(shift, np.float32), wave])
    return wave[-shift:] if shift < 0 else wave
