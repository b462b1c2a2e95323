"""Timelines an editor opens, read back through OpenTimelineIO's own adapters: every clip's
range is its shot's frames, and the frames there are the shot's (decoded by ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction

import numpy as np
import opentimelineio as otio
import pytest
from conftest import ffmpeg

from mediafm.export import export
from mediafm.ingest import IngestConfig, TitleJob, ingest
from mediafm.store import ShotStore
from mediafm.timecode import timecode

CHEAP = {"video_encoder": "color-stats", "audio_encoder": "logmel", "mode": "off"}


@pytest.fixture(scope="module")
def titles(media, tmp_path_factory):
    """cuts.mp4 (testsrc, red, mandelbrot: hard cuts at 2 s and 4 s) at 25 fps, converted to
    29.97, and with every seventh frame dropped (a variable frame rate), and an audio-only
    title, ingested."""
    root = tmp_path_factory.mktemp("export")
    shutil.copy(media / "cuts.mp4", root / "cuts.mp4")
    ffmpeg("-i", "cuts.mp4", "-vf", "fps=30000/1001", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-an", "ntsc.mp4", cwd=root)
    ffmpeg("-i", "cuts.mp4", "-vf", "select='not(eq(mod(n\\,7)\\,3))'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-an", "vfr.mp4", cwd=root)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=5", "tone.wav", cwd=root)
    jobs = [TitleJob("cuts", str(root / "cuts.mp4")), TitleJob("ntsc", str(root / "ntsc.mp4")),
            TitleJob("vfr", str(root / "vfr.mp4")), TitleJob("tone", str(root / "tone.wav"))]
    report = ingest(jobs, root / "store", IngestConfig.of(**CHEAP), progress=False)
    assert not report.failures
    return root, ShotStore(root / "store")


def frame_rgb(path, n: int) -> np.ndarray:
    """Frame ``n`` (0-based, in stream order) of a video, decoded by ffmpeg, 32x24 RGB."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf",
                          f"select=eq(n\\,{n}),scale=32:24", "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(24, 32, 3).astype(int)


@pytest.mark.parametrize("fmt,suffix", [("otio", "otio"), ("edl", "edl"), ("fcpxml", "xml")])
def test_timelines_read_back_frame_exact(titles, fmt, suffix):
    root, store = titles
    for title in ("cuts", "ntsc"):
        path = export(store, root / f"{title}.{suffix}", fmt, [title])
        rate = float(Fraction(store.titles.set_index("title_id").frame_rate[title]))
        extra = {"rate": rate} if fmt == "edl" else {}  # an EDL does not say its rate
        timeline = otio.adapters.read_from_file(str(path), **extra)
        clips = list(timeline.find_clips())
        shots = store.shots(title, ("first_frame", "last_frame"))
        assert len(clips) == len(shots) == 3
        for clip, shot in zip(clips, shots.itertuples(), strict=True):
            r = clip.source_range
            assert r.start_time.rate == pytest.approx(rate, rel=1e-6)
            assert round(r.start_time.value) == shot.first_frame
            assert round(r.duration.value) == shot.last_frame - shot.first_frame + 1
        # the frames at the exported ranges are the shots': the red shot starts red
        second = clips[1].source_range
        first = round(second.start_time.value)
        red = frame_rgb(root / f"{title}.mp4", first).mean(axis=(0, 1))
        before = frame_rgb(root / f"{title}.mp4", first - 1).mean(axis=(0, 1))
        assert red[0] > 200 and red[1] < 60 and before[1] > 60, (title, red, before)


def frame_at(path, seconds: float) -> np.ndarray:
    """The frame ffmpeg shows at ``seconds`` (32x24 RGB)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{seconds:.6f}", "-i", str(path),
                          "-vf", "scale=32:24", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(24, 32, 3).astype(int)


def test_variable_frame_rate_timelines_follow_the_times(titles):
    """Dropped frames: the stream's frame numbers run behind the times; the timeline counts
    at the 25 fps the timestamps sit on, so each clip starts on its shot's first picture."""
    root, store = titles
    assert store.titles.set_index("title_id").frame_rate["vfr"] == "25"
    shots = store.shots("vfr", ("start_s", "first_frame"))
    assert shots.first_frame.iat[1] < round(shots.start_s.iat[1] * 25)  # frames were dropped
    timeline = otio.adapters.read_from_file(str(export(store, root / "vfr.otio", "otio",
                                                       ["vfr"])))
    clips = list(timeline.find_clips())
    for clip, shot in zip(clips, shots.itertuples(), strict=True):
        assert clip.source_range.start_time.to_seconds() == pytest.approx(shot.start_s, abs=1e-6)
    red = frame_at(root / "vfr.mp4", clips[1].source_range.start_time.to_seconds())
    assert red.mean(axis=(0, 1))[0] > 200 and red.mean(axis=(0, 1))[1] < 60
    assert (frame_rgb(root / "vfr.mp4", int(shots.first_frame.iat[1])) == red).all()


def test_drop_frame_timecode_and_edl(titles):
    root, store = titles
    path = export(store, root / "ntsc.edl", "edl", ["ntsc"])
    text = path.read_text()
    shots = store.shots("ntsc", ("first_frame",))
    rate = Fraction(30000, 1001)
    assert timecode(int(shots.first_frame.iat[1]), rate) in text  # HH:MM:SS;FF
    assert ";" in timecode(1800, rate) and timecode(1800, rate) == "00:01:00;02"
    assert timecode(50, Fraction(25)) == "00:00:02:00"


def test_csv_chapters_and_markers(titles, tmp_path):
    from mediafm import artifacts

    root, store = titles
    csv = export(store, tmp_path / "all.csv", "csv").read_text().splitlines()
    assert csv[0].startswith("title_id,name,first_frame,last_frame,start_s,end_s,start_tc")
    assert len(csv) == 1 + sum(store.titles.n_shots)
    vtt = export(store, tmp_path / "cuts.vtt", "chapters", ["cuts"]).read_text()
    assert vtt.startswith("WEBVTT") and "00:00:02.000 --> 00:00:04.000" in vtt
    ffmeta = export(store, tmp_path / "tone.txt", "chapters", ["tone"]).read_text()
    assert ffmeta.startswith(";FFMETADATA1") and "[CHAPTER]" in ffmeta
    moments = artifacts.write("moments", {
        "title_id": ["cuts"], "task": ["clip_worthy"], "kind": ["highlight"], "rank": [1],
        "first_shot": [1], "last_shot": [2], "start_s": [2.0], "end_s": [6.0], "score": [0.9],
        "reason": ["shots 1-2: mean clip_worthy probability 0.90"]}, tmp_path / "m.parquet",
        store=artifacts.store_stamp(store))
    timeline = otio.adapters.read_from_file(str(export(store, tmp_path / "m.otio", "otio",
                                                       ["cuts"], moments=moments)))
    (marker,) = timeline.tracks[0].markers
    assert marker.name == "clip_worthy #1 (highlight)"
    assert round(marker.marked_range.start_time.value) == 50
    assert marker.metadata["mediafm"]["reason"].startswith("shots 1-2")
    # an audio-only title: no clips, its moments as markers over a gap its length
    tone = artifacts.write("moments", {
        "title_id": ["tone"], "task": ["clip_worthy"], "kind": ["highlight"], "rank": [1],
        "first_shot": [0], "last_shot": [0], "start_s": [0.0], "end_s": [5.0], "score": [0.5],
        "reason": ["shot 0"]}, tmp_path / "t.parquet", store=artifacts.store_stamp(store))
    timeline = otio.adapters.read_from_file(str(export(store, tmp_path / "tone.otio", "otio",
                                                       ["tone"], moments=tone)))
    (track,) = timeline.tracks
    assert not list(timeline.find_clips()) and len(track.markers) == 1
    assert track.duration().to_seconds() == pytest.approx(store.times("tone")[1][-1], abs=0.05)


def test_bad_exports_are_one_line_and_write_nothing(titles, tmp_path):
    root, store = titles
    moved = tmp_path / "moved"
    shutil.copytree(root / "store", moved)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mediafm", "-q", "export", *map(str, args)],
                              cwd=tmp_path, capture_output=True, text=True)

    gone = root / "cuts.mp4"
    gone.rename(root / "cuts.away")
    try:
        bad = cli("--store", moved, "--format", "otio", "--title", "cuts", "--out", "x.otio")
    finally:
        (root / "cuts.away").rename(gone)
    assert bad.returncode == 2 and f"source media is not there ({gone})" in bad.stderr
    audio = cli("--store", moved, "--format", "edl", "--title", "tone", "--out", "t.edl")
    assert audio.returncode == 2 and "has no video" in audio.stderr
    several = cli("--store", moved, "--format", "edl", "--out", "all.edl")
    assert several.returncode == 2 and "give --title" in several.stderr
    unknown = cli("--store", moved, "--format", "mov", "--out", "x.mov")
    assert unknown.returncode == 2 and "invalid choice: 'mov'" in unknown.stderr
    for p in (bad, audio, several, unknown):
        assert len(p.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved"]
