"""Typed shot boundaries: a hard cut, a dissolve, or a fade through black (or white), with its
length in frames, from what the decoding pass measures of every frame anyway.

Per frame: ``luma``, its mean brightness (0-255), and ``spread``, their standard deviation (a
nearly uniform dark or bright frame is the middle of a fade); ``change``, ContentDetector's
score against the frame before (the mean absolute difference of hue, saturation and value);
and ``distance(i, j)``, the same score between any two recent frames.

- A **hard cut** is one frame of large change.
- A **dissolve** spreads its change over several frames, and its frames are blends of the two
  shots: every pixel moves one way, so the change from its first frame to its last is about
  the sum of the changes in between. Camera motion also changes every frame, but there the
  sum runs far past the distance between the ends. So a stretch of elevated change is a
  dissolve only when ``distance(first, last) >= LINEAR * sum(change)`` and that distance is a
  cut's worth.
- A **fade** is a run of uniform black (or white) frames that the picture falls into and
  rises out of (a ramp of brightness on either side; a flash of white has none).

Detectors cut a fade at most once and a dissolve anywhere in it, or not at all: fades and
dissolves are found here too, cuts inside one transition become one boundary, and each sits
at the middle of its transition (where an editor's cut point is). ``TypedStream`` runs this
on the decoding pass, a few seconds behind it; the functions are pure, tested on their own and
on real footage spliced with known transitions (``benchmarks/shot_boundaries.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CUT, DISSOLVE, FADE, FADE_WHITE = "cut", "dissolve", "fade", "fade-white"
KINDS = (CUT, DISSOLVE, FADE, FADE_WHITE)
DARK, BRIGHT, FLAT = 24.0, 232.0, 12.0  # a fade's middle: mean luma beyond these, spread under
THRESHOLD = 27.0  # ContentDetector's: a cut's worth of change
LINEAR = 0.6  # a dissolve's end-to-end change over the sum of its steps (motion: far less)
# a hard cut a learned detector scored under its bar, confirmed by the picture: its score at
# least WEAK and a one-frame jump of change, STEEP times any within two frames and a cut's
# worth (75% of THRESHOLD: a cut between two shots of one scene changes less)
WEAK, STEEP, JUMP = 0.1, 2.5, 0.75 * THRESHOLD
Distance = Callable[[int, int], float]


@dataclass(frozen=True)
class Boundary:
    frame: int  # the first frame of the new shot
    kind: str  # cut | dissolve | fade | fade-white
    frames: int  # the transition's length in frames (1 for a cut)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2], strict=True))


def _ramp(luma: np.ndarray, edge: int, step: int, level: float, most: int) -> int:
    """How far from ``edge`` (the first frame outside a run) brightness keeps moving away from
    the run's ``level``, going ``step`` (-1 back, +1 on), at most ``most`` frames."""
    k, i = 0, edge
    while 0 <= i + step < len(luma) and k < most and \
            abs(luma[i + step] - level) > abs(luma[i] - level) + 0.5:
        i, k = i + step, k + 1
    return k + (1 if 0 <= edge < len(luma) and abs(luma[edge] - level) > 1.0 else 0)


def fades(luma: np.ndarray, spread: np.ndarray, fps: float) -> list[tuple[int, int, str]]:
    """[start, end) and kind of every fade: a run of uniform black (white) frames with the
    picture falling into it and rising out of it; the span includes the ramps. Black without
    a ramp (a cut to black and back) counts from a quarter of a second; white needs ramps on
    both sides (a flash has none)."""
    n, most = len(luma), max(2, int(round(2.0 * fps)))
    out = []
    for kind, level in ((FADE, luma <= DARK), (FADE_WHITE, luma >= BRIGHT)):
        for a, b in _runs(level & (spread <= FLAT)):
            if a == 0 or b == n:
                continue  # black at the very start or end is no boundary
            before = _ramp(luma, a - 1, -1, luma[a], most)
            after = _ramp(luma, b, +1, luma[b - 1], most)
            ramps = min(before, after) >= 2 if kind == FADE_WHITE else max(before, after) >= 2
            if ramps or (kind == FADE and b - a >= fps / 4):
                out.append((int(a - max(before - 1, 0)), int(b + max(after - 1, 0)), kind))
    return sorted(out)


def _is_dissolve(change: np.ndarray, lo: int, hi: int, distance: Distance) -> bool:
    """Frames lo .. hi-1 changed a cut's worth, end to end, nearly as much as step by step."""
    if hi - lo < 3 or lo < 1:
        return False
    across = distance(lo - 1, hi - 1)
    return across >= THRESHOLD and across >= LINEAR * float(change[lo:hi].sum())


def _span(change: np.ndarray, frame: int, share: float, most: int) -> tuple[int, int]:
    """[lo, hi): the frames around ``frame`` whose change stays above ``share`` of the peak
    near it, at most ``most`` each side."""
    near = change[max(0, frame - 2):frame + 3]
    if not len(near):
        return frame, frame + 1
    peak = max(0, frame - 2) + int(np.argmax(near))
    bar = max(share * float(change[peak]), 2.0)
    lo, hi = peak, peak + 1
    while lo > max(1, frame - most) and change[lo - 1] >= bar:
        lo -= 1
    while hi < min(len(change), frame + most) and change[hi] >= bar:
        hi += 1
    return lo, hi


def gradual(change: np.ndarray, fps: float, distance: Distance, rise: float = 2.0,
            calm: int = 3) -> list[tuple[int, int]]:
    """[start, end) of dissolves no single frame shows: stretches of 4 frames up to ~2 s
    whose change stands ``rise`` times above the picture around them, with ``calm`` quieter
    frames on either side (a burst of motion after a cut has the cut before it), that pass
    ``_is_dissolve``. A stretch reaching the last frame may go on: not yet."""
    n, most = len(change), max(4, int(round(2.0 * fps)))
    if n < 8:
        return []
    step = max(1, most // 4)
    base = np.repeat([np.median(change[max(0, i - 2 * most):i + 2 * most + 1])
                      for i in range(0, n, step)], step)[:n]
    out = []
    for a, b in _runs(change > np.maximum(rise * base, 2.0)):
        level = float(change[a:b].mean())
        quiet = (a >= calm and b + calm <= n
                 and change[a - calm:a].max() < 0.5 * level
                 and change[b:b + calm].max() < 0.5 * level)
        if 4 <= b - a <= most and quiet and _is_dissolve(change, a, b, distance):
            out.append((int(a), int(b)))
    return out


def learned(hint: np.ndarray, fps: float) -> list[tuple[int, int]]:
    """[start, end) of the runs of 3 frames or more (up to ~2 s) that a learned detector
    scores as inside a transition (TransNetV2's many-hot head): its dissolves."""
    most = max(4, int(round(2.0 * fps)))
    return [(int(a), int(b)) for a, b in _runs(hint >= 0.5) if 3 <= b - a <= most
            and b < len(hint)]


def confirmed(change: np.ndarray, score: np.ndarray) -> list[int]:
    """Frames where a learned detector's per-frame cut ``score`` (TransNetV2's single-frame
    head, peaking on the last frame of the old shot) is weak but real and the picture jumps
    in one frame. TransNetV2 scores some cuts between two shots of one scene (same light,
    same colours) 0.15-0.25, under its 0.5; camera motion and flashes spread their change
    over frames, so the jump alone is not enough either, and a detector's near-zero score
    vetoes it."""
    n = len(change)
    out = []
    for f in np.flatnonzero(change >= JUMP):
        if f < 2 or f + 2 >= n or max(score[f - 1], score[f]) < WEAK:
            continue
        near = max(change[f - 2], change[f - 1], change[f + 1], change[f + 2])
        if change[f] >= STEEP * near:
            out.append(int(f))
    return out


def classify(cuts: list[int], luma: np.ndarray, spread: np.ndarray, change: np.ndarray,
             fps: float, distance: Distance, share: float = 0.35,
             hint: np.ndarray | None = None) -> list[Boundary]:
    """The typed boundaries of a stretch of frames from the detector's ``cuts`` (first frames
    of new shots) and the per-frame measures: fades and dissolves the detector missed are
    added, cuts inside one transition are one boundary, and each sits at its transition's
    middle (a hard cut at its frame of largest change). ``hint``: a learned detector's
    per-frame probability of being inside a transition; its runs are dissolves."""
    most = max(2, int(round(2.0 * fps)))  # a transition lasts at most ~2 s
    spans = fades(luma, spread, fps)
    found = learned(hint, fps) if hint is not None else gradual(change, fps, distance)
    spans += [(a, b, DISSOLVE) for a, b in found
              if not any(lo <= a < hi or a <= lo < b for lo, hi, _ in spans)]
    for c in cuts:
        if any(lo - 2 <= c <= hi + 1 for lo, hi, _ in spans):
            continue  # inside a fade or a dissolve found above: that is the boundary
        lo, hi = _span(change, c, share, most)
        if hint is None and _is_dissolve(change, lo, hi, distance):
            spans.append((lo, hi, DISSOLVE))
        else:
            peak = lo + int(np.argmax(change[lo:hi]))
            spans.append((peak, peak + 1, CUT))
    merged: list[list] = []
    for lo, hi, kind in sorted(spans):  # overlapping spans (two cuts in one dissolve): one
        if merged and lo < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
            if merged[-1][2] == CUT or kind in (FADE, FADE_WHITE):
                merged[-1][2] = kind
            continue
        merged.append([lo, hi, kind])
    return [Boundary(lo if kind == CUT else (lo + hi) // 2, kind, 1 if kind == CUT else hi - lo)
            for lo, hi, kind in merged]


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two 3-channel uint8 images (OpenCV's: exact, without the
    widened copies numpy would make)."""
    import cv2

    return float(np.mean(cv2.mean(cv2.absdiff(a, b))[:3]))


class TypedStream:
    """A detector stream (``scan.DetectorStream``) whose cuts are typed boundaries: it
    measures every frame, holds the inner detector's cuts for ~4 s of frames, and hands them
    on, with the fades and dissolves it finds, at the middles of their transitions, in
    order. ``kinds`` keeps each boundary's (kind, frames). Memory: three numbers a frame and
    a small picture of the last ~6 s."""

    SMALL = (64, 36)  # the size kept of recent frames, for distances between them

    def __init__(self, inner, fps: float, min_shot_s: float):
        self.inner, self.fps = inner, max(float(fps), 1.0)
        self.size, self.format = inner.size, inner.format
        if hasattr(inner, "interpolation"):
            self.interpolation = inner.interpolation
        self.most = max(2, int(round(2.0 * self.fps)))
        # frames held back: a whole transition is seen, and the inner detector's cuts (which
        # may come ``latency`` frames after their frame: TransNetV2 reads windows) are in
        self.delay = 2 * self.most + 2 + int(getattr(inner, "latency", 0))
        self.min_gap = max(1, int(round(min_shot_s * self.fps)))
        # frames decided at a time: classify reads ~2 s either side of them, so deciding
        # every frame reads each frame ~100 times (measured: 40% of this stream's time)
        self.step = max(1, self.most // 2)
        self.luma: list[float] = []
        self.spread: list[float] = []
        self.change: list[float] = []
        self.recent: deque = deque(maxlen=3 * self.delay + 4)  # (frame, small HSV)
        self.held: list[int] = []
        self.prev = None
        self.done, self.last = 0, -(1 << 30)
        self.kinds: dict[int, tuple[str, int]] = {}

    def _measure(self, image: np.ndarray) -> None:
        """Luma, its spread and the change from the frame before; the change is the inner
        detector's own score where it has one (PySceneDetect's: the same HSV difference)."""
        import cv2

        bgr = np.ascontiguousarray(image if self.format == "bgr24" else image[..., ::-1])
        mean, std = cv2.meanStdDev(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        self.luma.append(float(mean[0, 0]))
        self.spread.append(float(std[0, 0]))
        change = getattr(self.inner, "change", None)
        if change is None:
            hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
            change = _mean_difference(hsv, self.prev) if self.prev is not None else 0.0
            self.prev = hsv
        self.change.append(change)
        small = cv2.resize(bgr, self.SMALL, interpolation=cv2.INTER_AREA)
        self.recent.append((len(self.luma) - 1, cv2.cvtColor(small, cv2.COLOR_BGR2HSV)))

    def distance(self, i: int, j: int) -> float:
        """ContentDetector's score between frames i and j (recent ones; 0 if gone)."""
        first = self.recent[0][0] if self.recent else 0
        if not (first <= i < first + len(self.recent) and first <= j < first + len(self.recent)):
            return 0.0
        return _mean_difference(self.recent[i - first][1], self.recent[j - first][1])

    def push(self, index: int, image: np.ndarray) -> list[int]:
        late = self._take(self.inner.push(index, image))  # first: _measure reads its score
        self._measure(image)
        upto = index - self.delay
        if upto - self.done < self.step:  # a decision reads seconds around its frames: batch
            return late
        return late + self._decide(upto)

    def finish(self, n_frames: int) -> list[int]:
        late = self._take(self.inner.finish(n_frames))
        return late + self._decide(n_frames)

    def _take(self, cuts: list[int]) -> list[int]:
        """Hold the inner detector's new cuts; one that comes after its frame was decided (a
        detector slower than its ``latency`` says) is handed on as it is, a plain cut."""
        late = []
        for c in cuts:
            if c >= self.done:
                self.held.append(c)
            elif c - self.last >= self.min_gap:
                self.kinds[c] = (CUT, 1)
                self.last = c
                late.append(c)
        return late

    def _scores(self, name: str, lo: int, hi: int) -> np.ndarray | None:
        """A learned detector's per-frame scores ``name`` over [lo, hi), zero where not yet
        scored; None for a detector without them."""
        if not hasattr(self.inner, name):
            return None
        out = np.zeros(hi - lo)
        got = np.asarray(getattr(self.inner, name)[lo:hi], np.float64)
        out[:len(got)] = got
        return out

    def _decide(self, upto: int) -> list[int]:
        """Boundaries whose frame lies in [done, upto), from everything seen around them; a
        fade still going on holds the decision back (at most ``delay`` frames more)."""
        if 0 < upto < len(self.luma):
            first = max(0, upto - self.delay)
            luma = np.asarray(self.luma[first:], np.float64)
            blank = ((luma <= DARK) | (luma >= BRIGHT)) & (
                np.asarray(self.spread[first:], np.float64) <= FLAT)
            if blank[-1]:  # in a black (white) run: wait for it to end
                trailing = len(blank) if blank.all() else int(np.argmin(blank[::-1]))
                upto = min(upto, max(first, len(self.luma) - trailing - self.most))
        if upto <= self.done:
            return []
        lo = max(0, self.done - self.most)
        hi = min(len(self.luma), upto + self.most)
        series = [np.asarray(x[lo:hi], np.float64) for x in (self.luma, self.spread,
                                                              self.change)]
        cuts = {c - lo for c in self.held if lo <= c < hi}
        hint = self._scores("transition", lo, hi)  # a learned detector's: its dissolves
        score = self._scores("cut", lo, hi)
        if score is not None:  # its weak cuts that the picture confirms
            cuts |= set(confirmed(series[2], score))
        found = []

        def distance(i: int, j: int) -> float:
            return self.distance(i + lo, j + lo)

        for b in classify(sorted(cuts), *series, self.fps, distance, hint=hint):
            frame = b.frame + lo
            if self.done <= frame < upto and frame - self.last >= self.min_gap:
                self.kinds[frame] = (b.kind, b.frames)
                self.last = frame
                found.append(frame)
        self.held = [c for c in self.held if c >= upto - self.most]
        self.done = upto
        return found
