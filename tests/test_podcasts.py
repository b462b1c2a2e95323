"""Audio-only titles (podcasts, radio): speech from espeak-ng with pauses at known times, as AAC
in an .m4a file with its transcript; segments cut in the pauses; the store, training and
embedding unchanged."""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pandas as pd
import pytest
from conftest import ffmpeg

from mediafm.ingest import IngestConfig, ingest, read_manifest
from mediafm.ingest.encoders import build
from mediafm.ingest.media import audio_mono, probe
from mediafm.ingest.shots import audio_segments
from mediafm.store import ShotStore

SENTENCES = ["Welcome back to the show where we talk about old films.",
             "Today our guest is a sound engineer from Lisbon.",
             "She recorded the storm scene in a single night.",
             "Thank you for listening and see you next week."]
PAUSE_S = 1.2
RATE = 16_000


def srt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


@pytest.fixture(scope="module")
def podcast(tmp_path_factory):
    """(folder, pauses): four spoken sentences separated by 1.2 s pauses (faint noise, as a
    real recording has), encoded as AAC in pod.m4a, with the transcript pod.srt."""
    d = tmp_path_factory.mktemp("podcast")
    rng = np.random.default_rng(0)
    parts, pauses, spoken, t = [], [], [], 0.0
    for i, sentence in enumerate(SENTENCES):
        subprocess.run(["espeak-ng", "-w", str(d / f"s{i}.wav"), sentence], check=True)
        with wave.open(str(d / f"s{i}.wav")) as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0
        parts.append(x)
        spoken.append((t, t + len(x) / rate))
        t += len(x) / rate
        if i < len(SENTENCES) - 1:
            parts.append(np.zeros(round(PAUSE_S * rate)))
            pauses.append((t, t + PAUSE_S))
            t += PAUSE_S
    y = np.concatenate(parts)
    y = np.clip(y + 0.0005 * rng.standard_normal(len(y)), -1, 1)
    with wave.open(str(d / "pod.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((y * 32767).astype(np.int16).tobytes())
    ffmpeg("-i", "pod.wav", "-c:a", "aac", "pod.m4a", cwd=d)
    (d / "pod.srt").write_text("".join(
        f"{i + 1}\n{srt_time(a + 0.1)} --> {srt_time(b - 0.1)}\n{s}\n\n"
        for i, (s, (a, b)) in enumerate(zip(SENTENCES, spoken, strict=True))))
    return d, pauses


def test_segments_are_cut_in_the_pauses(podcast):
    d, pauses = podcast
    info = probe(d / "pod.m4a")
    assert not info.has_video and info.has_audio and info.duration_s == pytest.approx(15, abs=3)
    segments = audio_segments(audio_mono(d / "pod.m4a", RATE), RATE, info.duration_s)
    assert segments[0][0] == 0.0 and segments[-1][1] == info.duration_s
    assert all(a[1] == b[0] for a, b in zip(segments[:-1], segments[1:], strict=True))
    cuts = [s for s, _ in segments[1:]]
    assert len(cuts) == len(pauses)  # one cut a pause, none inside the speech
    for cut, (a, b) in zip(cuts, pauses, strict=True):
        assert a < cut < b, (cut, a, b)


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_long_segments_are_split_at_a_dip_or_into_equal_parts():
    music = tone(70.0)  # continuous: no pause, no dip -> the fixed-length fallback
    parts = audio_segments(music, RATE, 70.0, min_s=2.0, max_s=30.0)
    lengths = [b - a for a, b in parts]
    assert len(parts) == 3 and max(lengths) <= 30.0 and np.ptp(lengths) < 1e-6
    dipped = music.copy()  # a 0.2 s dip at 40 s: shorter than a pause, but a change point
    dipped[round(40.0 * RATE):round(40.2 * RATE)] *= 0.01
    parts = audio_segments(dipped, RATE, 70.0, min_s=2.0, max_s=45.0)
    assert len(parts) == 2 and parts[0][1] == pytest.approx(40.1, abs=0.1)
    short = np.concatenate([tone(5), np.zeros(RATE), tone(0.5), np.zeros(RATE), tone(5)])
    parts = audio_segments(short, RATE, 12.5, min_s=2.0, max_s=30.0)  # 1.5 s: merged
    assert [round(a, 1) for a, _ in parts] == [0.0, 5.5]
    with pytest.raises(ValueError, match="at least twice"):
        audio_segments(music, RATE, 70.0, min_s=20.0, max_s=30.0)


def test_a_podcast_is_an_audio_only_title_that_trains_and_embeds(podcast, media, tmp_path):
    from mediafm.config import TrainConfig
    from mediafm.embed import embed_store
    from mediafm.model import MediaFM
    from mediafm.train import train

    d, pauses = podcast
    (tmp_path / "m.csv").write_text(
        "title_id,video,audio,subtitles,synopsis\n"
        f"pod,,{d / 'pod.m4a'},{d / 'pod.srt'},A podcast about old films\n"
        f"film,{media / 'cuts.mp4'},,{media / 'cuts.srt'},\n")
    jobs, failures = read_manifest(tmp_path / "m.csv")
    assert not failures
    report = ingest(jobs, tmp_path / "store", IngestConfig.of(video_encoder="color-stats",
                                                           audio_encoder="logmel"),
                    progress=False)
    assert sorted(report.done) == ["film", "pod"] and report.audio_only == ["pod"]
    assert "1 audio-only title(s)" in report.summary()
    store = ShotStore(tmp_path / "store")
    flags = store.titles.set_index("title_id")[["has_video", "has_audio"]]
    assert flags.to_dict("index") == {"pod": {"has_video": False, "has_audio": True},
                                      "film": {"has_video": True, "has_audio": True}}
    shots = pd.read_parquet(tmp_path / "store" / "shots")
    pod = shots[shots.title_id == "pod"].sort_values("shot_index")
    assert len(pod) == len(SENTENCES)
    assert not np.stack(pod.video.to_list()).any()  # no picture: zeros
    assert (np.abs(np.stack(pod.audio.to_list())).sum(axis=1) > 0).all()
    np.testing.assert_allclose(np.stack(pod.text.to_list()), build("text").encode(SENTENCES),
                               atol=1e-4)  # each segment holds its own sentence
    assert np.stack(shots[shots.title_id == "film"].video.to_list()).any()
    # the same store trains and embeds, audio-only titles beside videos
    train(store.path, tmp_path / "run", {"hidden": 32, "heads": 2, "layers": 1,
                                         "max_shots": 16},
          TrainConfig.of(steps=3, batch_size=2, eval_every=3), progress=False, device="cpu")
    out = embed_store(MediaFM.from_pretrained(tmp_path / "run"), store,
                      tmp_path / "emb.parquet", progress=False)
    emb = pd.read_parquet(out)
    assert (emb.title_id == "pod").sum() == len(SENTENCES)
    assert np.isfinite(np.stack(emb.embedding.to_list())).all()
    # the explorer: no thumbnails to ask for, the audio file to play
    from fastapi.testclient import TestClient

    from mediafm.serve.app import create_app
    from mediafm.serve.catalog import Catalog

    client = TestClient(create_app(Catalog(store.path)), base_url="http://127.0.0.1")
    pod, film = (client.get(f"/api/titles/{t}").json() for t in ("pod", "film"))
    assert (pod["has_video"], pod["thumbs"], film["has_video"], film["thumbs"]) == (
        False, False, True, True)
    audio = client.get("/api/titles/pod/media")
    assert audio.status_code == 200 and audio.content == (d / "pod.m4a").read_bytes()
