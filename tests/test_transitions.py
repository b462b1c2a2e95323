"""Typed shot boundaries (``ingest.transitions``): the pure functions on frame series made to
order, and the decoding pass on a real programme spliced by ffmpeg with a dissolve, a fade
through black, a hard cut and a fade through white."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ffmpeg

from mediafm.ingest.scan import scan
from mediafm.ingest.shots import SceneDetectShots
from mediafm.ingest.transitions import CUT, DISSOLVE, FADE, FADE_WHITE, classify, confirmed, fades

FPS = 25.0
RNG = np.random.default_rng(0)


def series(frames: np.ndarray):
    """The measures the decoding pass takes of (n, pixels) frames in 0..255: luma, spread,
    change (mean absolute difference to the frame before) and distance between any two."""
    f = frames.astype(np.float64)
    change = np.r_[0.0, np.abs(np.diff(f, axis=0)).mean(axis=1)]
    return (f.mean(axis=1), f.std(axis=1), change,
            lambda i, j: float(np.abs(f[i] - f[j]).mean()))


def shot(n: int, seed: int, drift: float = 0.5) -> np.ndarray:
    """n frames of one take: a fixed picture with a little grain and slow drift."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, 400)
    return np.clip(base + drift * np.arange(n)[:, None] + rng.normal(0, 1, (n, 400)), 0, 255)


def test_a_dissolve_is_one_boundary_at_its_middle_whatever_the_detector_cut():
    a, b = shot(62, 1), shot(60, 2)
    w = np.linspace(0, 1, 14)[1:-1, None]  # 12 blended frames
    frames = np.vstack([a[:50], (1 - w) * a[50:62] + w * b[:12], b[12:]])
    luma, spread, change, distance = series(frames)
    for cuts in ([53], [52, 58], []):  # a detector cuts once, twice, or not at all
        (got,) = classify(cuts, luma, spread, change, FPS, distance)
        assert got.kind == DISSOLVE and abs(got.frame - 56) <= 1 and 10 <= got.frames <= 14


def test_camera_motion_is_not_a_dissolve():
    """A pan changes every frame for a while, as a dissolve does, but end to end the picture
    moved far less than the sum of its steps: the detector's cut stays a cut (at its peak)."""
    texture = np.cumsum(RNG.normal(0, 4, 1200))  # smooth, like a real scene's picture
    texture = 40 + 175 * (texture - texture.min()) / np.ptp(texture)
    pan = np.stack([np.roll(texture, 4 * k)[:400] for k in range(12)])
    frames = np.vstack([shot(40, 3), pan, shot(40, 4)])
    luma, spread, change, distance = series(frames)
    kinds = [b.kind for b in classify([40, 52], luma, spread, change, FPS, distance)]
    assert kinds == [CUT, CUT]


def test_a_weak_learned_score_is_a_cut_only_where_the_picture_jumps_in_one_frame():
    """TransNetV2 scores some real cuts 0.15-0.25 (under its 0.5): such a score on a frame
    whose change jumps alone is a cut; the same score over a pan, a one-frame flash (two
    jumps in a row) or a jump it scores near zero is not."""
    a, b = shot(40, 7), shot(40, 8)
    texture = np.cumsum(np.random.default_rng(9).normal(0, 4, 1600))
    texture = 40 + 175 * (texture - texture.min()) / np.ptp(texture)
    pan = np.stack([np.roll(texture, 60 * k)[:400] for k in range(12)])  # a fast pan
    flash = np.full((1, 400), 255.0)
    frames = np.vstack([a, b, pan, b[:20], flash, b[20:]])  # cut at 40, pan 80-91, flash 112
    change = series(frames)[2]
    weak = np.zeros(len(frames))
    weak[[39, 85, 111, 112]] = 0.2  # on the old shot's last frame, as TransNetV2 peaks
    assert change[86] > 20 and change[112] > 20  # the pan and the flash change a cut's worth
    assert confirmed(change, weak) == [40]
    assert confirmed(change, np.full(len(frames), 0.01)) == []  # the detector says no cut
    everywhere = confirmed(change, np.full(len(frames), 0.2))
    assert 40 in everywhere and not set(everywhere) & {*range(81, 92), 112, 113}


def test_fades_through_black_and_white_and_a_flash():
    ramp = np.linspace(1, 0, 8)[:, None]
    a, b = shot(40, 5), shot(40, 6)
    black = np.zeros((6, 400))
    white = np.full((6, 400), 255.0)
    to_black = np.vstack([a, a[-1] * ramp, black, b[0] * ramp[::-1], b])
    spans = fades(*series(to_black)[:2], FPS)
    assert [k for *_, k in spans] == [FADE]
    lo, hi, _ = spans[0]
    assert abs(lo - 40) <= 1 and abs(hi - 62) <= 1  # both ramps and the black between
    to_white = np.vstack([a, a[-1] * ramp + 255 * (1 - ramp), white,
                          b[0] * ramp[::-1] + 255 * ramp, b])
    assert [k for *_, k in fades(*series(to_white)[:2], FPS)] == [FADE_WHITE]
    flash = np.vstack([a, white[:2], a])  # a flash: white with no ramp either side
    assert fades(*series(flash)[:2], FPS) == []
    dip = np.vstack([a, black[:2], b])  # two black frames between cuts: not a fade
    assert fades(*series(dip)[:2], FPS) == []


def test_a_real_programme_gets_typed_boundaries(tmp_path):
    """testsrc -> dissolve (0.5 s) -> mandelbrot -> fade through black (0.8 s) -> bars ->
    hard cut -> testsrc2 -> fade through white (0.8 s) -> cellauto, at 25 fps, found on the
    decoding pass with PySceneDetect's content detector."""
    src = "size=320x240:rate=25"
    ffmpeg("-f", "lavfi", "-i", f"testsrc={src}:duration=3", "-f", "lavfi", "-i",
           f"mandelbrot={src}", "-f", "lavfi", "-i", f"smptebars={src}:duration=3",
           "-f", "lavfi", "-i", f"testsrc2={src}:duration=3", "-f", "lavfi", "-i",
           f"cellauto={src}", "-filter_complex",
           "[1:v]trim=duration=3,setpts=PTS-STARTPTS,format=yuv420p[m];"
           "[4:v]trim=duration=3,setpts=PTS-STARTPTS,format=yuv420p,settb=1/25[c];"
           "[0:v]format=yuv420p[a];[2:v]format=yuv420p[s];[3:v]format=yuv420p[t];"
           "[a][m]xfade=transition=fade:duration=0.5:offset=2.5[x1];"
           "[x1][s]xfade=transition=fadeblack:duration=0.8:offset=5[x2];"
           "[x2][t]concat=n=2:v=1:a=0,settb=1/25[x3];"
           "[x3][c]xfade=transition=fadewhite:duration=0.8:offset=10.2[v]",
           "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "prog.mp4", cwd=tmp_path)
    shots = scan(tmp_path / "prog.mp4", SceneDetectShots("content"), frames_per_shot=0)
    got = [(s.first_frame, s.transition, s.transition_frames) for s in shots[1:]]
    assert [k for _, k, _ in got] == [DISSOLVE, FADE, CUT, FADE_WHITE], got
    # true spans: the dissolve frames 63-75, the fade 125-145 (ffmpeg's picture is black at
    # 129-131 and back at 138), the cut at 200, the white fade 255-275
    assert abs(got[0][0] - 69) <= 2 and abs(got[0][2] - 12) <= 2
    assert 128 <= got[1][0] <= 135
    assert got[2][:2] == (200, CUT) and got[2][2] == 1
    assert abs(got[3][0] - 265) <= 2 and abs(got[3][2] - 20) <= 2
    assert [s.last_frame + 1 for s in shots[:-1]] == [s.first_frame for s in shots[1:]]
    assert shots[2].start == pytest.approx(got[1][0] / 25)


def test_the_change_series_is_the_detectors_own_score_of_the_same_frames():
    """TypedStream reads PySceneDetect's per-frame score instead of converting each frame to
    HSV again: the series must be the HSV difference it would have measured itself."""
    import cv2

    from mediafm.ingest.media import MediaInfo
    from mediafm.ingest.transitions import TypedStream, _mean_difference

    info = MediaInfo(duration_s=2.0, has_video=True, has_audio=False, fps=FPS, width=256,
                     height=144)
    stream = TypedStream(SceneDetectShots("content").stream(info), FPS, 0.5)
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (144, 256, 3), dtype=np.uint8)
    frames = [np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255)
              .astype(np.uint8) for _ in range(30)]
    frames[12:] = [255 - f for f in frames[12:]]  # a cut
    for i, f in enumerate(frames):
        stream.push(i, f)
    hsv = [cv2.cvtColor(f, cv2.COLOR_BGR2HSV) for f in frames]
    own = [0.0] + [_mean_difference(b, a) for a, b in zip(hsv, hsv[1:], strict=False)]
    assert stream.change == pytest.approx(own, abs=1e-9)
    assert stream.change[12] > 4 * max(stream.change[1:12])  # the cut stands out
