"""Typed shot boundaries: a hard cut, a dissolve, or a fade through black (or white), with its
length in frames, from two numbers per frame the decoding pass measures anyway.

- ``luma``: the frame's mean brightness (0-255) and ``spread``, its standard deviation: a
  frame that is nearly uniform and dark (or bright) is the middle of a fade;
- ``change``: ContentDetector's score between a frame and the one before it (mean absolute
  difference of hue, saturation and value).

A hard cut is one frame of large change between two still-ish stretches. A dissolve spreads
its change over several frames: the frames around the boundary whose change stays above a
share of the peak are its extent. A fade through black is a run of dark, uniform frames,
with the picture falling into it and rising out of it; the detectors cut it at most once, or
not at all, so fades are also found here: a black run with no boundary near it becomes one.
Every boundary is placed at the middle of its transition (where an editor's cut point sits)
and a dissolve is one boundary, however many frames of it crossed a detector's threshold.

Pure functions of the per-frame series: tested on them, and on real footage spliced with
known transitions (``benchmarks/shot_boundaries.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CUT, DISSOLVE, FADE, FADE_WHITE = "cut", "dissolve", "fade", "fade-white"
KINDS = (CUT, DISSOLVE, FADE, FADE_WHITE)
DARK, BRIGHT, FLAT = 24.0, 232.0, 12.0  # a fade's middle: mean luma beyond these, spread under


@dataclass(frozen=True)
class Boundary:
    frame: int  # the first frame of the new shot
    kind: str  # cut | dissolve | fade | fade-white
    frames: int  # the transition's length in frames (1 for a cut)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2], strict=True))


def fades(luma: np.ndarray, spread: np.ndarray, min_frames: int = 2
          ) -> list[tuple[int, int, str]]:
    """[start, end) and kind of every run of near-uniform black (or white) frames."""
    out = []
    for kind, level in ((FADE, luma <= DARK), (FADE_WHITE, luma >= BRIGHT)):
        for a, b in _runs(level & (spread <= FLAT)):
            if b - a >= min_frames:
                out.append((int(a), int(b), kind))
    return sorted(out)


def _fade_span(luma: np.ndarray, a: int, b: int, most: int) -> tuple[int, int]:
    """The frames a fade spans around its black run [a, b): while the picture falls into it
    (luma decreasing towards the run) and rises out of it, ``most`` frames each side."""
    lo = a
    while lo > max(0, a - most) and abs(luma[lo - 1] - luma[a]) > abs(luma[lo] - luma[a]) + 0.5:
        lo -= 1
    hi = b
    while hi < min(len(luma), b + most) and abs(luma[hi] - luma[b - 1]) > abs(
            luma[hi - 1] - luma[b - 1]) + 0.5:
        hi += 1
    return lo, hi


def _dissolve_span(change: np.ndarray, frame: int, share: float, floor: float, most: int
                   ) -> tuple[int, int]:
    """[lo, hi): the frames around ``frame`` whose change stays above ``share`` of the peak
    near it (and above ``floor``), at most ``most`` each side."""
    near = change[max(0, frame - 2):frame + 3]
    peak = float(near.max()) if len(near) else 0.0
    bar = max(share * peak, floor)
    lo = hi = int(max(0, frame - 2) + np.argmax(near)) if len(near) else frame
    while lo > max(0, frame - most) and change[lo - 1] >= bar:
        lo -= 1
    hi += 1
    while hi < min(len(change), frame + most) and change[hi] >= bar:
        hi += 1
    return lo, hi


def gradual(change: np.ndarray, fps: float, total: float = 27.0, rise: float = 3.0
            ) -> list[tuple[int, int]]:
    """[start, end) of stretches of a few frames up to ~2 s whose change stands ``rise``
    times above the stretch of picture around them and adds up to a cut's worth (``total``,
    ContentDetector's threshold): a dissolve, whose change no single frame shows. A camera
    move changes the picture for longer than ~2 s, and is not taken."""
    n, most = len(change), max(4, int(round(2.0 * fps)))
    if n < 8:
        return []
    around = np.array([np.median(change[max(0, i - 2 * most):i + 2 * most + 1])
                       for i in range(0, n, max(1, most // 4))])
    base = np.repeat(around, max(1, most // 4))[:n]
    out = []
    for a, b in _runs(change > np.maximum(rise * base, 2.0)):
        if 3 <= b - a <= most and b < n and change[a:b].sum() >= total:
            out.append((int(a), int(b)))  # (a run reaching the end may go on: not yet)
    return out


def classify(cuts: list[int], luma: np.ndarray, spread: np.ndarray, change: np.ndarray,
             fps: float, min_shot_frames: int = 1, dissolve_share: float = 0.35,
             floor: float = 4.0) -> list[Boundary]:
    """The typed boundaries of a title from the detector's ``cuts`` (first frames of new
    shots) and the per-frame series; fades and dissolves the detector missed are added, cuts
    inside one transition are one boundary, and each sits at its transition's middle."""
    n, most = len(luma), max(2, int(round(2.0 * fps)))  # a transition lasts at most ~2 s
    spans: list[tuple[int, int, str]] = [(a, b, DISSOLVE) for a, b in gradual(change, fps)]
    for a, b, kind in fades(luma, spread):
        if a > 0 and b < n:  # black at the very start or end is no boundary
            lo, hi = _fade_span(luma, a, b, most)
            spans.append((lo, hi, kind))
    for c in cuts:
        if any(lo - 2 <= c <= hi + 2 for lo, hi, _ in spans):
            continue  # inside a fade: the fade is the boundary
        lo, hi = _dissolve_span(change, c, dissolve_share, floor, most)
        spans.append((lo, hi, DISSOLVE if hi - lo >= 3 else CUT))
    spans.sort()
    merged: list[list] = []
    for lo, hi, kind in spans:  # overlapping spans (several cuts in one dissolve): one
        if merged and lo <= merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], hi)
            if kind in (FADE, FADE_WHITE) or last[2] == CUT:
                last[2] = kind if kind != CUT else last[2]
            continue
        merged.append([lo, hi, kind])
    out = []
    for lo, hi, kind in merged:
        frame = (lo + hi) // 2 if kind != CUT else _peak(change, lo, hi)
        if kind == DISSOLVE and hi - lo < 3:
            kind = CUT
        frames = 1 if kind == CUT else hi - lo
        if 0 < frame < n and (not out or frame - out[-1].frame >= min_shot_frames):
            out.append(Boundary(int(frame), kind, int(frames)))
    return out


def _peak(change: np.ndarray, lo: int, hi: int) -> int:
    """A hard cut's frame: the largest change in its span."""
    return int(lo + np.argmax(change[lo:hi])) if hi > lo else lo


class TypedStream:
    """A detector stream (``scan.DetectorStream``) whose cuts are typed boundaries: it
    measures every frame (``measure``), holds the inner detector's cuts for ~4 s of frames,
    and hands them on, with the fades and dissolves it finds, at the middle of their
    transitions, in order. ``kinds`` keeps each boundary's (kind, frames)."""

    def __init__(self, inner, fps: float, min_shot_s: float):
        self.inner, self.fps = inner, max(fps, 1.0)
        self.size, self.format = inner.size, inner.format
        if hasattr(inner, "interpolation"):
            self.interpolation = inner.interpolation
        self.most = max(2, int(round(2.0 * self.fps)))
        self.delay = 2 * self.most + 2  # frames held back: a whole transition is seen
        self.min_gap = max(1, int(round(min_shot_s * self.fps)))
        self.luma: list[float] = []
        self.spread: list[float] = []
        self.change: list[float] = []
        self.held: list[int] = []
        self.prev = None
        self.done, self.last = 0, -(1 << 30)
        self.kinds: dict[int, tuple[str, int]] = {}

    def _measure(self, image: np.ndarray) -> None:
        import cv2

        bgr = image if self.format == "bgr24" else image[..., ::-1]
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.int16)
        self.luma.append(float(gray.mean()))
        self.spread.append(float(gray.std()))
        self.change.append(float(np.abs(hsv - self.prev).mean()) if self.prev is not None
                           else 0.0)
        self.prev = hsv

    def push(self, index: int, image: np.ndarray) -> list[int]:
        self._measure(image)
        self.held += self.inner.push(index, image)
        return self._decide(index - self.delay)

    def finish(self, n_frames: int) -> list[int]:
        self.held += self.inner.finish(n_frames)
        return self._decide(n_frames)

    def _decide(self, upto: int) -> list[int]:
        """Boundaries whose frame lies in [done, upto), from everything seen around them; a
        fade still going on holds the decision back (at most ``delay`` frames more)."""
        if 0 < upto < len(self.luma):  # not the end: wait for a black (or white) run to end
            first = max(0, upto - self.delay)
            luma = np.asarray(self.luma[first:], np.float64)
            blank = ((luma <= DARK) | (luma >= BRIGHT)) & (
                np.asarray(self.spread[first:], np.float64) <= FLAT)
            if blank[-1]:
                trailing = len(blank) if blank.all() else int(np.argmin(blank[::-1]))
                start = len(self.luma) - trailing  # where the run began
                upto = min(upto, max(first, start - self.most))
        if upto <= self.done:
            return []
        lo = max(0, self.done - self.most)
        hi = min(len(self.luma), upto + self.most)
        series = [np.asarray(x[lo:hi], np.float64) for x in (self.luma, self.spread,
                                                              self.change)]
        cuts = sorted({c - lo for c in self.held if lo <= c < hi})
        found = []
        for b in classify(cuts, *series, self.fps):
            frame = b.frame + lo
            if self.done <= frame < upto and frame - self.last >= self.min_gap:
                self.kinds[frame] = (b.kind, b.frames)
                self.last = frame
                found.append(frame)
        self.held = [c for c in self.held if c >= upto - self.most]
        self.done = upto
        return found
