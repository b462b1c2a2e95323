"""The one decoding pass of ingest (``ingest.scan``): the detectors fed frame by frame give what
their own libraries give on the whole file, each shot's frames come from inside the shot at
the right times, memory stays bounded in a very long shot, and an encoder failing in the
overlapping thread fails its title cleanly."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import FPS, ffmpeg

from mediafm.ingest import IngestConfig
from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.media import Converter, frames_at, probe, video_frames
from mediafm.ingest.run import IngestStage
from mediafm.ingest.scan import scan
from mediafm.ingest.shots import SceneDetectShots, TransNetV2Shots
from mediafm.ingest.staging import title_key
from mediafm.jobs import Staging, attempt


@pytest.mark.parametrize("kind", ["content", "adaptive"])
def test_pyscenedetect_fed_frame_by_frame_matches_its_own_pipeline(media, kind):
    """scenedetect.detect() (its decoder, its downscaling to 256 wide) against our one pass
    (these files have no flashes, the one thing ours does differently); then our default,
    128 wide."""
    import scenedetect

    for name in ("cuts.mp4", "odd.mkv"):
        path = media / name
        info = probe(path)
        min_len = round(0.5 * info.fps)
        det = (scenedetect.ContentDetector(min_scene_len=min_len) if kind == "content"
               else scenedetect.AdaptiveDetector(min_scene_len=min_len))
        theirs = [s[0].seconds for s in scenedetect.detect(str(path), det)[1:]]
        ours = [s for s, _ in SceneDetectShots(kind, width=256).detect(path)[1:]]
        assert len(ours) == len(theirs) and len(ours) >= 1, (name, ours, theirs)
        np.testing.assert_allclose(ours, theirs, atol=1 / info.fps + 1e-6)
        # our default reads the frames at half that width and finds the same cuts
        width, height = SceneDetectShots(kind).stream(info).size
        assert width == 128 and abs(height - 128 * info.height / info.width) <= 1
        small = [s for s, _ in SceneDetectShots(kind).detect(path)[1:]]
        np.testing.assert_allclose(small, ours, atol=1e-9)


def test_transnetv2_in_streaming_windows_matches_the_whole_file_prediction(media):
    """Our window-at-a-time TransNetV2 against the package's predict_frames on all frames."""
    import torch

    det = TransNetV2Shots()
    path = media / "cuts.mp4"
    conv = Converter()
    frames = np.stack([conv.array(f, 48, 27) for f in video_frames(path)])
    single, _ = det.model.predict_frames(torch.from_numpy(frames), quiet=True)
    theirs = det.model.predictions_to_scenes(single.numpy(), det.threshold)[1:, 0].tolist()
    stream = det.stream(probe(path))
    ours = [c for i, f in enumerate(frames) for c in stream.push(i, f)]
    ours += stream.finish(len(frames))
    assert ours == theirs and len(ours) == 2


def test_each_shot_gets_frames_from_inside_it_at_spread_times(media):
    path = media / "cuts.mp4"
    shots = scan(path, SceneDetectShots(), frames_per_shot=4)
    assert [(round(s.start, 2), round(s.end, 2)) for s in shots] == [(0, 2), (2, 4), (4, 6)]
    for s in shots:
        assert s.frames.shape == (4, 224, 224, 3) and s.thumb[:2] == b"\xff\xd8"
        assert (s.times >= s.start).all() and (s.times < s.end).all()
        assert (np.diff(s.times) > 0).all()  # four different frames
        want = s.start + (np.arange(4) + 0.5) * (s.end - s.start) / 4
        assert (s.times <= want + 1e-6).all() and (want - s.times < 0.25 + 1 / FPS).all()
        # the very pixels the standalone decoder gives for those times
        np.testing.assert_array_equal(s.frames, frames_at(path, s.times + 1e-3))
    colours = [s.frames.reshape(-1, 3).mean(0) for s in shots]
    assert colours[1][0] > 150 and colours[1][1] < 80  # the red shot's frames are red


def test_large_frames_skip_deblocking_with_the_same_cuts(tmp_path):
    """720p at a low bitrate (deblocking has work to do): by default the decoder skips the
    filter (frames as with deblock=False), the cuts stay where they were, and the sampled
    frames move a little, not a lot. Small frames keep it (the test above: the exact pixels)."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=4", "-vf",
           "hue=h='90*floor(t/2)'", "-c:v", "libx264", "-preset", "veryfast", "-crf", "38",
           "big.mp4", cwd=tmp_path)
    runs = {d: scan(tmp_path / "big.mp4", SceneDetectShots(), 4, deblock=d)
            for d in (None, True, False)}
    cuts = {d: [s.start for s in shots] for d, shots in runs.items()}
    assert cuts[None] == cuts[True] == cuts[False] and len(cuts[None]) == 2, cuts
    frames = {d: np.stack([s.frames for s in shots]).astype(np.int16)
              for d, shots in runs.items()}
    np.testing.assert_array_equal(frames[None], frames[False])
    moved = np.abs(frames[True] - frames[False]).mean()
    assert 0 < moved < 2, moved


_PEAK_RSS = """
import sys
import numpy as np
from mediafm.ingest.scan import scan
from mediafm.ingest.shots import SceneDetectShots
(shot,) = scan(sys.argv[1], SceneDetectShots(), frames_per_shot=4,
               max_samples=int(sys.argv[2]), max_sample_bytes=int(sys.argv[3]))
want = (np.arange(4) + 0.5) * 90 / 4
assert (shot.times <= want + 1e-6).all() and (want - shot.times < 90 / 8 * 2).all(), shot.times
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve from the forking parent (a 1.4 GB
# pytest worker), while VmHWM belongs to this process's own address space.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) * 1024)
"""


def test_a_very_long_shot_keeps_memory_bounded(tmp_path):
    """90 s in one shot of 640x480 (0.46 MB a decoded frame, 8 samples a second): the buffer
    of decoded frames is thinned (every other sample dropped, stride doubled) at its frame cap
    or its byte budget instead of growing, and the frames still come from across the shot.
    Peak resident memory of a fresh process each time: the held frames are FFmpeg's."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x480:rate=25:duration=90", "-c:v",
           "libx264", "-preset", "ultrafast", "long.mp4", cwd=tmp_path)

    def peak(cap: int, budget: int) -> int:
        run = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(tmp_path / "long.mp4"),
                              str(cap), str(budget)], capture_output=True, text=True,
                             check=True)
        return int(run.stdout.split()[-1])

    held = peak(512, 1 << 30)  # up to 512 frames: ~235 MB of them
    by_count, by_bytes = peak(8, 1 << 30), peak(512, 8 << 20)
    assert held - by_count > 150e6 and held - by_bytes > 150e6, (held, by_count, by_bytes)


class _InLine:
    """A detector whose stream records the thread each frame reaches it on and can fail."""

    def __init__(self, inner, fail_at: int | None = None):
        self.inner, self.fail_at, self.threads = inner, fail_at, set()

    def stream(self, info):
        stream, outer = self.inner.stream(info), self

        class Stream:
            size, format = stream.size, stream.format
            interpolation = getattr(stream, "interpolation", None)

            def push(self, index, image):
                outer.threads.add(threading.current_thread().name)
                if index == outer.fail_at:
                    raise RuntimeError(f"the detector broke at frame {index}")
                return stream.push(index, image)

            def finish(self, n):
                return stream.finish(n)

        return Stream()


def test_detection_runs_beside_decoding_and_gives_the_in_line_cuts(media):
    """The detector is fed on its own thread; the cuts are those of feeding it every frame in
    line, and a detector that fails mid-title raises in the caller with nothing left running."""
    path = media / "odd.mkv"
    info, conv = probe(path), Converter()
    stream, times, cuts = SceneDetectShots().stream(info), [], []
    for i, f in enumerate(video_frames(path)):
        times.append(float(f.time) - info.start_s)
        cuts += stream.push(i, conv.array(f, *stream.size, stream.format, stream.interpolation))
    cuts += stream.finish(len(times))
    det = _InLine(SceneDetectShots())
    shots = scan(path, det, frames_per_shot=2)
    assert det.threads == {"shot-detector"}
    assert [s.start for s in shots[1:]] == [times[c] for c in cuts] and len(cuts) >= 1
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="broke at frame 7"):
        scan(path, _InLine(SceneDetectShots(), fail_at=7), frames_per_shot=2)
    assert threading.active_count() == before


class BrokenVideoEncoder:
    name, dim = "broken", 8

    def encode(self, shots):
        raise ValueError("the video encoder ran out of memory")


def test_an_encoder_failing_in_its_thread_fails_only_that_title(media, tmp_path):
    cfg = IngestConfig.of(video_encoder="color-stats", audio_encoder="logmel")
    job = TitleJob("cuts", str(media / "cuts.mp4"))
    stage = IngestStage(cfg, {"cuts": title_key(job)})
    enc = stage.setup(None)
    enc.video = BrokenVideoEncoder()
    staging = Staging(tmp_path / "staging")
    before = threading.active_count()
    result = attempt(stage, enc, job, staging, False)
    assert result.error is not None and "ran out of memory" in result.error
    assert not staging.is_done(stage.key(job)) and threading.active_count() == before


def test_rotation_metadata_turns_frames_upright(tmp_path):
    """A phone video stored landscape with a 90 degree display matrix: the encoder's frames
    and the thumbnail are what FFmpeg's own (auto-rotating) decoder shows."""
    from PIL import Image

    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x180:rate=25:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "plain.mp4", cwd=tmp_path)
    ffmpeg("-i", "plain.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=90", "rot.mp4",
           cwd=tmp_path)
    ffmpeg("-i", "rot.mp4", "-frames:v", "1", "shown.png", cwd=tmp_path)  # autorotated
    shown = Image.open(tmp_path / "shown.png").convert("RGB")
    assert shown.size == (180, 320)
    a = np.asarray(shown.resize((256, round(320 * 256 / 180)), Image.BILINEAR))
    top = (a.shape[0] - 224) // 2
    want = a[top:top + 224, 16:240].astype(int)
    (shot,) = scan(tmp_path / "rot.mp4", SceneDetectShots(), frames_per_shot=4)
    first = frames_at(tmp_path / "rot.mp4", np.array([0.0]))[0].astype(int)
    assert np.abs(first - want).mean() < 8  # interpolation differences only
    assert np.abs(np.rot90(first, 2) - want).mean() > 40  # (the test can tell orientations)
    assert np.abs(shot.frames[0].astype(int) - want).mean() < 8
    thumb = Image.open(io.BytesIO(shot.thumb))
    assert thumb.size == (180, 320)  # upright, portrait


def test_a_10_bit_4k_title(tmp_path):
    """High 10 H.264 at 3840x2160: decoded, downscaled once per use (detector, encoder crop,
    thumbnail), the cut found and the colours right."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=3840x2160:rate=25:duration=1", "-f", "lavfi",
           "-i", "color=c=red:size=3840x2160:rate=25:duration=1", "-filter_complex",
           "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv420p10le", "k4.mp4", cwd=tmp_path)
    first, red = scan(tmp_path / "k4.mp4", SceneDetectShots(), frames_per_shot=2)
    assert first.end == pytest.approx(1.0, abs=2 / FPS)
    assert red.frames.shape == (2, 224, 224, 3)
    r, g, b = red.frames.reshape(-1, 3).mean(0)
    assert r > 240 and g < 15 and b < 15


def test_interlaced_pal(tmp_path):
    """Interlaced 720x576 (fields woven, as archives hold SD): the cut is found and the colours
    are right. No explicit deinterlacing: the 2.25x vertical downscale to the encoder's size
    blends the two fields."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=720x576:rate=25:duration=2", "-f", "lavfi",
           "-i", "color=c=red:size=720x576:rate=25:duration=2", "-filter_complex",
           "[0:v][1:v]concat=n=2:v=1:a=0,tinterlace=mode=interleave_top,fieldorder=tff[v]",
           "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme",
           "-x264opts", "tff=1", "-pix_fmt", "yuv420p", "pal.mp4", cwd=tmp_path)
    assert next(iter(video_frames(tmp_path / "pal.mp4"))).interlaced_frame
    first, red = scan(tmp_path / "pal.mp4", SceneDetectShots(), frames_per_shot=2)
    assert first.end == pytest.approx(2.0, abs=2 / 12.5)  # 12.5 frames a second, 2 fields each
    r, g, b = red.frames.reshape(-1, 3).mean(0)
    assert r > 240 and g < 15 and b < 15


def test_a_title_that_starts_between_keyframes(tmp_path):
    """A broadcast capture that begins mid-GOP (an MPEG-TS cut at a packet boundary, 1.2 s
    into a 2-s GOP): the frames before the first keyframe cannot be decoded and are skipped, the
    title's clock still starts at its first packet (the audio's), and the cuts fall at the same
    moments as in the whole recording."""
    import av

    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-f", "lavfi",
           "-i", "sine=f=440:d=8", "-vf", "hue=h='90*floor(t/3)'", "-c:v", "libx264",
           "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac",
           "-f", "mpegts", "full.ts", cwd=tmp_path)
    data = (tmp_path / "full.ts").read_bytes()
    (tmp_path / "mid.ts").write_bytes(data[len(data) // 188 * 15 // 100 * 188:])
    with av.open(str(tmp_path / "mid.ts")) as c:
        first = next(p for p in c.demux(c.streams.video[0]) if p.size)
        assert not first.is_keyframe
    full, mid = probe(tmp_path / "full.ts"), probe(tmp_path / "mid.ts")
    whole = [s.start + full.start_s for s in
             scan(tmp_path / "full.ts", SceneDetectShots(), frames_per_shot=0)[1:]]
    shots = scan(tmp_path / "mid.ts", SceneDetectShots(), frames_per_shot=2)
    assert len(whole) == 2
    assert [s.start + mid.start_s for s in shots[1:]] == pytest.approx(whole, abs=1 / FPS)
    assert shots[0].start == 0 and shots[0].times[0] > 0.5  # the undecodable start: skipped
    assert all(len(s.frames) == 2 for s in shots)


def test_a_flash_inside_a_shot_is_not_a_cut(tmp_path):
    """Two white frames in the middle of one take: PySceneDetect alone cuts there (its flash
    filter merges the flash's two cuts into one); ours sees the picture come back and keeps one
    shot, while a real cut next to it stays."""
    import scenedetect

    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4", "-f", "lavfi",
           "-i", "color=c=blue:size=320x240:rate=25:duration=2", "-filter_complex",
           "[0:v]drawbox=enable='between(n,50,51)':x=0:y=0:w=iw:h=ih:color=white:t=fill[f];"
           "[f][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "flash.mp4", cwd=tmp_path)
    path = tmp_path / "flash.mp4"
    theirs = [s[0].seconds for s in scenedetect.detect(
        str(path), scenedetect.ContentDetector(min_scene_len=12))[1:]]
    assert theirs == pytest.approx([2.0, 4.0], abs=0.05)  # the flash, then the real cut
    for kind in ("content", "adaptive"):
        ours = [s for s, _ in SceneDetectShots(kind).detect(path)[1:]]
        assert ours == pytest.approx([4.0], abs=2 / FPS), (kind, ours)


def test_torchcodec_decoder_gives_the_pyav_scan(media, tmp_path):
    """``--decoder torchcodec`` (the GPU path's decoder, run here on the CPU) finds the same
    cuts, samples the same frame times, and its frames and thumbnails differ from PyAV's only
    by interpolation (torch's bilinear against swscale's bicubic), rotated videos included."""
    from PIL import Image

    from mediafm.ingest import codec

    assert codec.available(), "torchcodec is part of the dev install (Makefile)"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x180:rate=25:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "plain.mp4", cwd=tmp_path)
    ffmpeg("-i", "plain.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=90", "rot.mp4",
           cwd=tmp_path)
    for path in (media / "cuts.mp4", media / "odd.mkv", tmp_path / "rot.mp4"):
        fps = probe(path).fps
        ours = scan(path, SceneDetectShots(), frames_per_shot=4, decoder="torchcodec")
        pyav = scan(path, SceneDetectShots(), frames_per_shot=4)
        assert len(ours) == len(pyav), path
        for a, b in zip(ours, pyav, strict=True):
            assert a.start == pytest.approx(b.start, abs=2 / fps)
            assert a.end == pytest.approx(b.end, abs=2 / fps)
            np.testing.assert_allclose(a.times, b.times, atol=1e-6)
            assert a.frames.shape == b.frames.shape
            assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 8, path
            ta, tb = (Image.open(io.BytesIO(s.thumb)) for s in (a, b))
            assert ta.size == tb.size
    with pytest.raises(ValueError, match="unknown decoder"):
        scan(media / "cuts.mp4", SceneDetectShots(), decoder="opencv")


def test_torchcodec_decoder_names_a_broken_file(media):
    from mediafm.ingest.media import MediaError

    with pytest.raises(MediaError, match="not_video.mp4"):
        scan(media / "not_video.mp4", SceneDetectShots(), decoder="torchcodec",
             info=probe(media / "cuts.mp4"))
