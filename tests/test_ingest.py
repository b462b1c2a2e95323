"""Ingest of real media made by ffmpeg (Debian package, installed by `make test`): known cuts,
aligned subtitles, speech from espeak-ng, odd sizes and codecs, every bad input, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from mediafm.ingest import IngestConfig, ingest, read_manifest
from mediafm.ingest.encoders import build, resolve_precision
from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.media import MediaError, frames_at, probe
from mediafm.ingest.shots import SceneDetectShots
from mediafm.ingest.subtitles import assign, load_cues
from mediafm.store import ShotStore

FPS = 25


def test_cuts_within_two_frames(media):
    shots = SceneDetectShots().detect(media / "cuts.mp4")
    assert len(shots) == 3
    for (_, end), truth in zip(shots[:2], (2.0, 4.0), strict=True):
        assert abs(end - truth) <= 2 / FPS
    assert shots[0][0] == 0.0 and abs(shots[-1][1] - 6.0) < 0.1
    odd = SceneDetectShots().detect(media / "odd.mkv")  # variable frame rate, odd size
    assert len(odd) == 2 and abs(odd[0][1] - 2.0) <= 2 / FPS


def test_transnetv2_cuts_within_two_frames(media):
    from mediafm.ingest.shots import TransNetV2Shots

    shots = TransNetV2Shots().detect(media / "cuts.mp4")
    assert len(shots) == 3
    for (_, end), truth in zip(shots[:2], (2.0, 4.0), strict=True):
        assert abs(end - truth) <= 2 / FPS


def test_decoding_facts_and_frames(media):
    info = probe(media / "odd.mkv")
    assert (info.width, info.height, info.has_audio) == (321, 181, True)
    frames = frames_at(media / "cuts.mp4", np.array([3.0, 1.0]))
    assert frames.shape == (2, 224, 224, 3)
    red = frames[0].reshape(-1, 3).mean(0)  # 3.0 s is inside the red shot
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    for bad, match in (("not_video.mp4", "not a readable media file"),
                       ("empty.mp4", "empty file"), ("nope.mp4", "no such file")):
        with pytest.raises(MediaError, match=match):
            probe(media / bad)


def test_cue_alignment_and_encodings(media):
    cues = load_cues(media / "cuts.srt")
    assert [c.text for c in cues] == ["Hello there.", "We meet again."]
    texts = assign(cues, [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 7.0)])
    assert texts == ["Hello there.", "We meet again.", "We meet again.", ""]
    (vtt,) = load_cues(media / "odd.vtt")
    assert "trésor" in vtt.text and "chêne" in vtt.text


@pytest.fixture(scope="module")
def ingested(media, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest")
    manifest = out / "manifest.jsonl"
    rows = [
        {"title_id": "cuts", "video": str(media / "cuts.mp4"),
         "subtitles": [str(media / "cuts.srt")], "synopsis": "A test film.",
         "tags": ["test", "abstract"]},
        {"title_id": "odd", "video": str(media / "odd.mkv"), "subtitles": str(media / "odd.vtt")},
        {"title_id": "notvideo", "video": str(media / "not_video.mp4")},
        {"title_id": "empty", "video": str(media / "empty.mp4")},
        {"title_id": "truncated", "video": str(media / "truncated.mp4")},
        {"title_id": "silent", "video": str(media / "silent.mp4")},
        {"title_id": "missing", "video": str(media / "missing.mp4")},
        {"title_id": "badsubs", "video": str(media / "cuts.mp4"),
         "subtitles": str(media / "bad.srt")},
        {"title_id": "nosubsfile", "video": str(media / "cuts.mp4"),
         "subtitles": str(media / "none.srt")},
        {"video": str(media / "cuts.mp4")},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    jobs, failures = read_manifest(manifest)
    report = ingest(jobs, out / "store", IngestConfig(), failures, progress=False)
    return out, report


def test_ingest_builds_a_store(ingested):
    out, report = ingested
    store = ShotStore(out / "store")
    assert set(store.titles.title_id) >= {"cuts", "odd", "silent"}
    assert store.dims["video"] == 1280 and store.dims["text"] == 384
    assert store.dims["metadata"] == 384
    assert store.info.encoders["video"]["name"] == "efficientnet-lite0"
    assert store.info.encoders["audio"]["name"] == "aisfx" and store.dims["audio"] == 512
    ran = resolve_precision("auto", "cpu")  # the default: bf16 where this CPU computes it
    for modality in ("video", "audio"):
        assert store.info.encoders[modality].get("precision", "fp32") == ran
    shots = pd.read_parquet(out / "store" / "shots")
    cuts = shots[shots.title_id == "cuts"].sort_values("shot_index")
    assert cuts.has_text.tolist() == [True, True, True]
    for col in ("video", "audio", "text", "fused"):
        assert np.isfinite(np.stack(shots[col].to_list())).all()
    text = build("text").encode(["Hello there.", "We meet again."])
    np.testing.assert_allclose(np.stack(cuts.text.iloc[:2].to_list()), text, atol=1e-4)
    emb = store.title_embeddings()
    assert np.abs(emb[store.title_row("cuts")]).sum() > 0  # synopsis + tags
    assert np.abs(emb[store.title_row("odd")]).sum() == 0  # no metadata: zero [GLOBAL]
    # a video without an audio stream is a normal title: zero audio, flagged, and summarised
    has_audio = dict(zip(store.titles.title_id, store.titles.has_audio, strict=True))
    assert has_audio == {"cuts": True, "odd": True, "silent": False}
    silent = shots[shots.title_id == "silent"]
    assert len(silent) > 0 and not np.stack(silent.audio.to_list()).any()
    assert np.stack(silent.video.to_list()).any()
    assert report.no_audio == ["silent"] and "1 title(s) without an audio stream" in (
        report.summary())


def test_every_bad_input_is_reported_and_isolated(ingested):
    out, report = ingested
    errors = {f["title_id"]: f["error"] for f in report.failures}
    assert "not a readable media file" in errors["notvideo"]
    assert "empty file" in errors["empty"]
    assert "silent" not in errors  # no audio stream: a normal title unless --require-audio
    assert "no such file" in errors["missing"]
    assert "malformed" in errors["badsubs"] or "no subtitle cues" in errors["badsubs"]
    assert "no such subtitle file" in errors["nosubsfile"]
    assert "missing title_id" in errors[None]
    assert "not a readable media file" in errors["truncated"]  # mp4 cut before its index
    assert set(ShotStore(out / "store").titles.title_id) == {"cuts", "odd", "silent"}
    lines = (out / "store.failures.jsonl").read_text().splitlines()
    assert len(lines) == len(report.failures)


def test_rerun_skips_finished_titles(ingested, media):
    out, first = ingested
    staged = {p: p.stat().st_mtime_ns for p in (out / ".store.ingest").iterdir()}
    jobs, failures = read_manifest(out / "manifest.jsonl")
    again = ingest(jobs, out / "store", IngestConfig(), failures, progress=False)
    assert set(again.skipped) >= {"cuts", "odd", "silent"} and "cuts" not in again.done
    assert again.stage_seconds == {}  # no title went through decoding or an encoder again
    assert {p: p.stat().st_mtime_ns for p in staged} == staged
    assert set(ShotStore(out / "store").titles.title_id) == {"cuts", "odd", "silent"}
    assert again.no_audio == ["silent"]  # skipped titles are still reported


# Orchestration (resume, process pool, Ray) is the same whatever the encoders: these tests use
# the fast ones (colour statistics, log-mel); the real encoders have their own tests above.
CHEAP = {"video_encoder": "color-stats", "audio_encoder": "logmel"}
CHEAP_FLAGS = ["--video-encoder", "color-stats", "--audio-encoder", "logmel"]


@pytest.fixture(scope="module")
def cheap(ingested, tmp_path_factory):
    """The good titles and one bad one, ingested in this process with the fast encoders."""
    out, _ = ingested
    jobs, _ = read_manifest(out / "manifest.jsonl")
    some = [j for j in jobs if j.title_id in ("cuts", "odd", "notvideo")]
    store = tmp_path_factory.mktemp("cheap") / "store"
    report = ingest(some, store, IngestConfig.of(**CHEAP), progress=False)
    assert sorted(report.done) == ["cuts", "odd"] and len(report.failures) == 1
    assert ShotStore(store).info.encoders["video"]["name"] == "color-stats"
    return some, ShotStore(store)


def same_vectors(a: ShotStore, b: ShotStore) -> None:
    assert sorted(a.titles.title_id) == sorted(b.titles.title_id)
    for t in a.titles.title_id:
        np.testing.assert_allclose(a.title_vectors(t), b.title_vectors(t), atol=1e-5)


@pytest.mark.slow
def test_kill_mid_run_then_resume(media, tmp_path):
    rows = [{"title_id": f"t{i}", "video": str(media / "cuts.mp4"),
             "subtitles": [str(media / "cuts.srt")]} for i in range(6)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "mediafm", "-q", "ingest", "m.jsonl", "--out", "store",
           *CHEAP_FLAGS]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = tmp_path / ".store.ingest"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(staging.glob("t*.json"))) < 2:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    finished = {p.stem for p in staging.glob("t*.json")}  # not settings.json
    assert 2 <= len(finished) < 6
    for key in finished:  # a staged title is whole: its shots file is there and readable
        assert len(pd.read_parquet(staging / f"{key}.parquet")) == 3
    assert not (tmp_path / "store").exists()
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{len(finished)} already done" in done.stdout
    assert len(ShotStore(tmp_path / "store").titles) == 6


def test_a_rerun_under_other_settings_stops_or_restages(cheap, tmp_path):
    """Titles made under one setting are not mixed with a rerun's under another: the rerun
    names the difference and touches nothing, or with restage makes them again. A finished
    ingest leaves only the store; the store is the resume point of the next run."""
    from mediafm.ingest import SettingsMismatch

    jobs = [j for j in cheap[0] if j.title_id == "cuts"]
    store = tmp_path / "store"
    first = ingest(jobs, store, IngestConfig.of(**CHEAP), progress=False)
    assert first.done == ["cuts"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no staging, no report
    written = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    other = IngestConfig.of(frames_per_shot=2, **CHEAP)
    with pytest.raises(SettingsMismatch, match=r"1 title\(s\).*frames_per_shot: 4 then, 2 now"):
        ingest(jobs, store, other, progress=False)
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    ran = resolve_precision("auto", "cpu")  # what the first run's auto became, then the other
    other_precision = IngestConfig.of(precision="fp32" if ran == "bf16" else "bf16", **CHEAP)
    with pytest.raises(SettingsMismatch, match=r"precision: (None|'bf16') then"):
        ingest(jobs, store, other_precision, progress=False)
    # the width the cut detector reads: recorded only when it is not 256, the width of the
    # stores made before it was a setting, which therefore still take reruns at 256
    with pytest.raises(SettingsMismatch, match=r"detect_width: 128 then, None now"):
        ingest(jobs, store, IngestConfig.of(detect_width=256, **CHEAP), progress=False)
    assert "detect_width" not in IngestConfig.of(detector="transnetv2").output_settings()
    # where and how it runs is no difference: the title is taken as it is, nothing written
    same = ingest(jobs, store, IngestConfig.of(workers=2, **CHEAP), progress=False)
    assert same.skipped == ["cuts"] and not same.done
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == written
    again = ingest(jobs, store, other, progress=False, restage=True)
    assert again.done == ["cuts"] and not again.skipped
    assert ShotStore(store).info.encoders["shots"]["frames_per_shot"] == 2
    assert ingest(jobs, store, other, progress=False).skipped == ["cuts"]


@pytest.mark.slow
def test_process_pool_gives_the_same_store(cheap, tmp_path):
    jobs, one = cheap
    report = ingest(jobs, tmp_path / "store", IngestConfig.of(workers=2, **CHEAP), progress=False)
    assert sorted(report.done) == ["cuts", "odd"]
    assert [f["title_id"] for f in report.failures] == ["notvideo"]
    same_vectors(one, ShotStore(tmp_path / "store"))


@pytest.mark.slow
def test_ray_engine_gives_the_same_store(cheap, tmp_path):
    """A local Ray instance: same vectors as the local engine, failures isolated, resume."""
    jobs, one = cheap
    cfg = IngestConfig.of(engine="ray", workers=2, **CHEAP)
    report = ingest(jobs, tmp_path / "store", cfg, progress=False)
    assert sorted(report.done) == ["cuts", "odd"]
    assert [f["title_id"] for f in report.failures] == ["notvideo"]
    same_vectors(one, ShotStore(tmp_path / "store"))
    again = ingest(jobs[:2], tmp_path / "store", cfg, progress=False)
    assert sorted(again.skipped) == ["cuts", "odd"] and not again.done


@pytest.mark.slow
def test_cli_single_video_and_exit_codes(media, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mediafm", "-q", "ingest", *map(str, args),
                               *CHEAP_FLAGS], cwd=tmp_path, capture_output=True, text=True)

    ok = cli(media / "cuts.mp4", "--subtitles", media / "cuts.srt", "--synopsis", "A film.",
             "--tag", "test", "--out", "one", "--deblock", "on")
    assert ok.returncode == 0, ok.stderr
    assert "1 ingested" in ok.stdout and "video s / s" in ok.stdout
    store = ShotStore(tmp_path / "one")
    assert store.titles.title_id.tolist() == ["cuts"] and store.info.n_shots == 3
    assert store.info.encoders["decoder"] == {"name": "pyav", "deblock": "on"}
    (tmp_path / "m.csv").write_text(f"title_id,video\ngood,{media / 'cuts.mp4'}\n"
                                    f"bad,{media / 'not_video.mp4'}\n")
    some_failed = cli("m.csv", "--out", "two")
    assert some_failed.returncode == 1
    assert "failures: two.failures.jsonl (1)" in some_failed.stderr
    assert ShotStore(tmp_path / "two").titles.title_id.tolist() == ["good"]
    assert ShotStore(tmp_path / "two").info.encoders["decoder"]["deblock"] == "auto"
    (tmp_path / "s.csv").write_text(f"title_id,video\ngood,{media / 'cuts.mp4'}\n"
                                    f"silent,{media / 'silent.mp4'}\n")
    required = cli("s.csv", "--out", "three", "--require-audio")
    assert required.returncode == 1, required.stderr
    (failure,) = map(json.loads, (tmp_path / "three.failures.jsonl").read_text().splitlines())
    assert failure["title_id"] == "silent" and "no audio stream" in failure["error"]
    assert ShotStore(tmp_path / "three").titles.title_id.tolist() == ["good"]


@pytest.mark.slow
def test_ray_cluster_of_two_nodes_from_the_cli(cheap, media, tmp_path):
    """``--engine ray --address`` joins an existing cluster, as on a real one: a head and a
    second node (each its own raylet, one CPU each) started with ray.cluster_utils. The pool's
    two one-CPU actors therefore run on different nodes; the store is the local engine's."""
    from ray.cluster_utils import Cluster

    _, one = cheap
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        rel = {f: os.path.relpath(media / f, tmp_path)  # relative paths, as users write them
               for f in ("cuts.mp4", "cuts.srt", "odd.mkv", "odd.vtt")}
        (tmp_path / "m.csv").write_text(f"title_id,video,subtitles\n"
                                        f"cuts,{rel['cuts.mp4']},{rel['cuts.srt']}\n"
                                        f"odd,{rel['odd.mkv']},{rel['odd.vtt']}\n")
        proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", "ingest", "m.csv",
                               "--out", "store", "--engine", "ray", "--workers", "2",
                               "--address", cluster.address, *CHEAP_FLAGS], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 ingested" in proc.stdout
    same_vectors(one, ShotStore(tmp_path / "store"))


def test_what_real_catalogs_have_and_generated_media_lack(media, tmp_path):
    """Several audio tracks (the default-marked one, or --audio-track), audio that stops before
    the video, subtitles that start before 0 and overlap."""
    from conftest import ffmpeg

    from mediafm.ingest.media import audio_mono

    ffmpeg("-i", media / "cuts.mp4", "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
           "-f", "lavfi", "-i", "sine=frequency=880:duration=6", "-map", "0:v", "-map", "1:a",
           "-map", "2:a", "-disposition:a:0", "0", "-disposition:a:1", "default", "-c:v",
           "copy", "-c:a", "aac", "tracks.mkv", cwd=tmp_path)
    ffmpeg("-i", media / "cuts.mp4", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
           "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "short.mp4",
           cwd=tmp_path)

    def pitch(wave: np.ndarray) -> int:
        return int(np.argmax(np.abs(np.fft.rfft(wave[:16_000]))))  # Hz: one second at 16 kHz

    tracks = tmp_path / "tracks.mkv"
    assert pitch(audio_mono(tracks)) == 880  # the default-marked track, not the first
    assert pitch(audio_mono(tracks, track=0)) == 440
    with pytest.raises(MediaError, match=r"tracks\.mkv: no audio track 2 \(it has 2\)"):
        audio_mono(tracks, track=2)
    (tmp_path / "early.ass").write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Style, Name, "
        "MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,-0:00:01.00,0:00:00.50,Default,,0,0,0,,Before the start.\n"
        "Dialogue: 0,0:00:01.00,0:00:03.00,Default,,0,0,0,,First line.\n"
        "Dialogue: 0,0:00:02.50,0:00:04.50,Default,,0,0,0,,Overlapping line.\n")
    jobs = [TitleJob("tracks", str(tracks)),
            TitleJob("short", str(tmp_path / "short.mp4"), (str(tmp_path / "early.ass"),))]
    stores = {}
    for track in (None, 0, 1):
        report = ingest(jobs, tmp_path / f"store-{track}", IngestConfig.of(**CHEAP,
                                                                        audio_track=track),
                        progress=False)
        assert report.done == (["tracks"] if track == 1 else ["tracks", "short"])
        if track == 1:  # a track the file lacks fails that title, and only that one
            (failure,) = report.failures
            assert failure["title_id"] == "short" and "no audio track 1 (it has 1)" in (
                failure["error"])
        stores[track] = pd.read_parquet(tmp_path / f"store-{track}" / "shots")
    audio = {k: np.stack(v[v.title_id == "tracks"].audio.to_list()) for k, v in stores.items()}
    np.testing.assert_array_equal(audio[None], audio[1])
    assert np.abs(audio[0] - audio[1]).max() > 0.1
    short = stores[None][stores[None].title_id == "short"].sort_values("shot_index")
    assert len(short) == 3  # the cuts are the video's: audio ending at 2 s changes nothing
    a = np.stack(short.audio.to_list())
    assert np.isfinite(a).all() and np.abs(a[0] - a[2]).max() > 0.1  # tone, then silence
    np.testing.assert_allclose(np.stack(short.text.to_list()), build("text").encode(
        ["Before the start. First line.", "First line. Overlapping line.",
         "Overlapping line."]), atol=1e-4)


def test_a_title_that_does_not_start_at_zero(media, tmp_path):
    """MPEG-TS (broadcast) starts its clock at ~1.4 s, and muxers may start audio late: every
    time is on the title's own timeline, as a player shows it, so cuts, subtitles and audio
    stay aligned."""
    from conftest import ffmpeg

    from mediafm.ingest.media import audio_mono

    ffmpeg("-i", media / "cuts.mp4", "-c", "copy", "-f", "mpegts", "cuts.ts", cwd=tmp_path)
    ffmpeg("-i", media / "cuts.mp4", "-itsoffset", "1", "-i", media / "cuts.mp4", "-map",
           "0:v", "-map", "1:a", "-c", "copy", "late.mkv", cwd=tmp_path)
    ts = tmp_path / "cuts.ts"
    assert probe(ts).start_s > 1.0  # the broadcast clock
    cuts = [s for s, _ in SceneDetectShots().detect(ts)[1:]]
    np.testing.assert_allclose(cuts, [2.0, 4.0], atol=2 / FPS + 1e-6)
    wave = audio_mono(tmp_path / "late.mkv")
    rms = [float(np.sqrt(np.mean(wave[int(a * 16_000):int(b * 16_000)] ** 2)))
           for a, b in ((0.0, 0.9), (1.1, 2.0))]
    assert rms[0] < 1e-3 < 0.05 < rms[1], rms  # silence, then the tone (rms 0.088) from 1 s
    at = np.array([1.0, 3.0])  # the same pictures at the same title times
    diff = frames_at(ts, at).astype(int) - frames_at(media / "cuts.mp4", at).astype(int)
    assert np.abs(diff).mean() < 3


def test_identity_duplicates_and_recorded_paths(media, tmp_path, monkeypatch):
    """A manifest naming one title twice is refused up front (both lines named); a media file
    replaced under the same title id is ingested again, from a staging as from a store; the
    store records absolute paths, so a server started elsewhere finds the right file, and
    ``media_root`` finds it after the store and its media moved."""
    import shutil

    work = tmp_path / "work"
    (work / "media").mkdir(parents=True)
    shutil.copy(media / "cuts.mp4", work / "media" / "film.mp4")
    (work / "m.csv").write_text("title_id,video\nfilm,media/film.mp4\nother,media/film.mp4\n"
                                "film,media/film.mp4\n")
    with pytest.raises(ValueError, match=r"title 'film' is on line 2 and on line 4"):
        read_manifest(work / "m.csv")
    assert not (work / "store").exists()
    monkeypatch.chdir(work)
    jobs = [TitleJob("film", "media/film.mp4")]  # relative, as a user writes it
    first = ingest(jobs, "store", IngestConfig.of(**CHEAP), progress=False)
    store = ShotStore(work / "store")
    assert first.done == ["film"] and store.media("film") == work / "media" / "film.mp4"
    assert store.info.n_shots == 3
    # the same title id, another video (re-encoded, replaced): ingested again, not reused
    shutil.copy(media / "silent.mp4", work / "media" / "film.mp4")
    second = ingest(jobs, "store", IngestConfig.of(**CHEAP), progress=False)
    assert second.done == ["film"] and not second.skipped
    assert ShotStore(work / "store").info.n_shots == 1 and second.no_audio == ["film"]
    # the store and its media move together: the recorded path is found under media_root
    monkeypatch.chdir(tmp_path)
    shutil.move(work, tmp_path / "moved")
    moved = ShotStore(tmp_path / "moved" / "store")
    assert moved.media("film") == work / "media" / "film.mp4"  # as recorded (gone)
    rooted = ShotStore(tmp_path / "moved" / "store", media_root=tmp_path / "moved" / "media")
    assert rooted.media("film") == tmp_path / "moved" / "media" / "film.mp4"
    assert rooted.media("film").is_file()


def test_ingest_config_file_set_and_flags(media, tmp_path):
    """The config file, then --set, then flags: each component's section; the store records
    what was used."""
    (tmp_path / "ingest.toml").write_text(
        '[detect]\nmin_shot_s = 0.3\n\n[encode]\nframes_per_shot = 3\nvideo_encoder = '
        '"color-stats"\naudio_encoder = "logmel"\n\n[run]\nworkers = 1\n')
    proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", "ingest",
                           str(media / "cuts.mp4"), "--out", "store", "--config", "ingest.toml",
                           "--set", "encode.frames_per_shot=2", "--set", "pause_s=0.5",
                           "--frames-per-shot", "5"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    enc = ShotStore(tmp_path / "store").info.encoders
    assert enc["shots"]["min_shot_s"] == 0.3 and enc["shots"]["frames_per_shot"] == 5
    assert enc["audio_segments"]["pause_s"] == 0.5 and enc["video"]["name"] == "color-stats"
    (tmp_path / "bad.toml").write_text("[decode]\nframes_per_shot = 3\n")  # in [encode]
    bad = subprocess.run([sys.executable, "-m", "mediafm", "-q", "ingest",
                          str(media / "cuts.mp4"), "--out", "other", "--config", "bad.toml"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and not (tmp_path / "other").exists()
