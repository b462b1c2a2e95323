"""Speech to text on real speech no one here recorded (Debian's Asterisk prompts, a human
voice, CC-BY-SA): the words, their times, and a podcast without a transcript made searchable
by what is said."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import asterisk_sounds

from mediafm import artifacts
from mediafm.ingest import IngestConfig, TitleJob, ingest
from mediafm.ingest.speech import SpeechToText, word_error_rate, words_of_shots
from mediafm.store import ShotStore

PROMPTS = ("agent-loginok", "all-circuits-busy-now", "auth-thankyou", "call-forwarding",
           "cannot-complete-as-dialed", "check-number-dial-again")


def test_word_error_rate():
    assert word_error_rate("Please enter your password.", "please enter your password") == (0, 4)
    assert word_error_rate("the pound key", "the pond key now") == (2, 3)
    assert word_error_rate("", "words") == (1, 0)


@pytest.fixture(scope="module")
def podcast(tmp_path_factory):
    """A 'podcast' of six real prompts with pauses between them (a WAV, 8 kHz as recorded)."""
    sounds, lines = asterisk_sounds()
    out = tmp_path_factory.mktemp("podcast")
    inputs = []
    for name in PROMPTS:
        inputs += ["-i", str(sounds / f"{name}.wav")]
    silence = "".join(f"[{i}:a]apad=pad_dur=1.2[a{i}];" for i in range(len(PROMPTS)))
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex",
                    silence + "".join(f"[a{i}]" for i in range(len(PROMPTS)))
                    + f"concat=n={len(PROMPTS)}:v=0:a=1[out]", "-map", "[out]",
                    str(out / "podcast.wav")], check=True)
    return out / "podcast.wav", [lines[n] for n in PROMPTS]


def test_whisper_transcribes_real_speech_with_word_times(podcast):
    from mediafm.ingest.media import audio_mono

    path, said = podcast
    asr = SpeechToText()
    segments = asr.transcribe(audio_mono(path, 16_000))
    heard = " ".join(s.text for s in segments)
    errors, words = word_error_rate(" ".join(said), heard)
    assert words > 20 and errors / words < 0.2, heard
    times = [(w.start_s, w.end_s) for s in segments for w in s.words]
    assert all(a <= b for a, b in times) and all(
        b1 <= a2 + 0.05 for (_, b1), (a2, _) in zip(times, times[1:], strict=False))
    assert times[-1][1] <= len(audio_mono(path, 16_000)) / 16_000 + 0.1
    # each word goes to the one shot that holds its middle
    cut = times[len(times) // 2][0]
    halves = words_of_shots(segments, [(0.0, cut), (cut, 1e9)])
    assert len(halves[0].split()) + len(halves[1].split()) == len(times)


def test_a_podcast_without_a_transcript_gets_its_text_from_speech(podcast, tmp_path):
    path, said = podcast
    cheap = {"video_encoder": "color-stats", "audio_encoder": "logmel"}
    report = ingest([TitleJob("pod", str(path))], tmp_path / "store", IngestConfig.of(**cheap),
                    progress=False)
    assert report.done == ["pod"] and report.audio_only == ["pod"]
    store = ShotStore(tmp_path / "store")
    shots = store.shots("pod", ("start_s", "end_s", "has_text", "timed_text"))
    assert shots.has_text.all() and np.abs(store.title_vectors("pod", "text")).sum() > 0
    heard = " ".join(shots.timed_text)
    assert word_error_rate(" ".join(said), heard)[0] / len(" ".join(said).split()) < 0.2
    assert store.info.encoders["asr"]["mode"] == "auto"
    assert "tiny.en" in store.info.encoders["asr"]["version"]
    transcript = artifacts.read_transcript(store, "pod")
    assert " ".join(transcript.text).split()[:3] == heard.split()[:3]
    assert {"word", "start_s", "end_s", "probability"} <= set(transcript.words[0][0])
    off = ingest([TitleJob("pod", str(path))], tmp_path / "off",
                 IngestConfig.of(mode="off", **cheap), progress=False)
    assert off.done == ["pod"] and not ShotStore(tmp_path / "off").shots("pod").has_text.any()


def test_an_asr_model_directory_that_is_not_one(tmp_path, podcast):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", "ingest", str(podcast[0]),
                           "--out", "store", "--asr-model", "model"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "--asr-model model: not a CTranslate2 Whisper model" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
