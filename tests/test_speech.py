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
    """A directory that is not a model, and one whose model does not load, are refused before
    anything runs, in one line (workers load the model only when a title first needs it)."""
    def ingest_with_model() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mediafm", "-q", "ingest",
                               str(podcast[0]), "--out", "store", "--asr-model", "model"],
                              cwd=tmp_path, capture_output=True, text=True)

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    for error in ("not a CTranslate2 Whisper model", "cannot load"):
        proc = ingest_with_model()
        assert proc.returncode == 2, proc.stderr
        assert f"--asr-model model: {error}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
        (tmp_path / "model" / "model.bin").write_bytes(b"not a model")  # then all its files
        (tmp_path / "model" / "tokenizer.json").write_text("{}")


@pytest.fixture(scope="module")
def spoken(podcast, tmp_path_factory):
    """The podcast ingested (speech to text) with a second title beside it."""
    out = tmp_path_factory.mktemp("spoken")
    sounds, lines = asterisk_sounds()
    other = ("agent-pass", "auth-incorrect", "call-waiting", "privacy-prompt")
    subprocess.run(["ffmpeg", "-v", "error", "-y",
                    *[a for n in other for a in ("-i", str(sounds / f"{n}.wav"))],
                    "-filter_complex", "".join(f"[{i}:a]apad=pad_dur=1.2[a{i}];"
                                               for i in range(len(other)))
                    + "".join(f"[a{i}]" for i in range(len(other)))
                    + f"concat=n={len(other)}:v=0:a=1[out]", "-map", "[out]",
                    str(out / "other.wav")], check=True)
    cheap = IngestConfig.of(video_encoder="color-stats", audio_encoder="logmel")
    ingest([TitleJob("pod", str(podcast[0])), TitleJob("other", str(out / "other.wav"))],
           out / "store", cheap, progress=False)
    return out


def test_find_a_moment_by_what_is_said(spoken):
    """Exact lines and paraphrases find the shot where they are said, with its times, its
    line and the words that matched; from the CLI as JSON with the documented names."""
    from mediafm.query import search_text

    store = ShotStore(spoken / "store")
    hits = search_text(store, "all circuits are busy now", k=3)
    top = hits.iloc[0]
    assert top.title_id == "pod" and "circuits" in top.line.lower()
    assert top.words == ["all", "circuits", "busy", "now"]
    assert top.modalities["text"] == top.score > hits.score.iloc[1]
    assert 0 <= top.start_s < top.end_s
    paraphrase = search_text(store, "thanks a lot", k=5)
    assert any("thank you" in (line or "").lower() for line in paraphrase.line)
    proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", "search", "--store",
                           "store", "--text", "please enter your password", "-k", "2",
                           "--json"], cwd=spoken, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (first, _) = __import__("json").loads(proc.stdout)
    assert {"title_id", "shot_index", "start_s", "end_s", "line", "score", "words",
            "modalities", "rank"} <= set(first)
    assert first["title_id"] == "other" and "password" in first["words"]


def test_text_search_through_an_index_and_bad_queries(spoken):
    from mediafm.search import build_index

    build_index(None, spoken / "index", spoken / "store")
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mediafm", "-q", "search", *args],
                              cwd=spoken, capture_output=True, text=True)

    ok = cli("--index", "index", "--text", "call waiting", "-k", "1")
    assert ok.returncode == 0 and "other" in ok.stdout, ok.stderr
    store = ShotStore(spoken / "store")
    rng = np.random.default_rng(0)
    artifacts.write("shot_embeddings", {
        "title_id": ["pod"] * store.n_shots("pod"), "shot_index": np.arange(store.n_shots("pod")),
        "embedding": rng.normal(size=(store.n_shots("pod"), 8))}, spoken / "emb.parquet")
    build_index(spoken / "emb.parquet", spoken / "plain")  # no --store: no text vectors
    for args, message in ((["--store", "store", "--text", " "], "the text query is empty"),
                          (["--index", "plain", "--store", "store", "--text", "hello"],
                           "holds no text vectors: build it with --store"),
                          (["--store", "store", "--text", "x" * 1001], "at most 1000"),
                          (["--index", "index", "--title", "pod", "--shot", "0"],
                           "holds no embeddings")):
        bad = cli(*args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
