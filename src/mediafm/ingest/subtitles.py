"""Timed text: subtitle cues (SRT, WebVTT, ASS) and their assignment to shots.

Files are read as bytes and decoded with the encoding charset-normalizer detects (subtitle
files in the wild are Latin-1, CP1252, UTF-16 with a BOM...), then parsed by pysubs2. Each cue
belongs to every shot it overlaps; a shot's text is its cues' text in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREFERRED = ["cp1252", "latin_1", "iso8859_15", "cp1250", "cp1251", "utf_16"]


class SubtitleError(ValueError):
    """A subtitle file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def read_text(path: str | Path) -> str:
    from charset_normalizer import from_bytes

    path = Path(path)
    if not path.is_file():
        raise SubtitleError(f"{path}: no such subtitle file")
    raw = path.read_bytes()
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"),
                     (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            return raw.decode(enc)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        matches = list(from_bytes(raw))
    if not matches:
        raise SubtitleError(f"{path}: cannot detect the text encoding")
    # Short texts often tie between code pages (cp1250 and cp1252 read "chêne" equally well):
    # on a tie, prefer the Western ones most subtitle files in the wild are written in.
    best = min(matches, key=lambda m: (m.chaos, -m.coherence,
                                       PREFERRED.index(m.encoding) if m.encoding in PREFERRED
                                       else len(PREFERRED)))
    return str(best)


def load_cues(path: str | Path) -> list[Cue]:
    """Cues of one file, sorted by start; raises SubtitleError if it parses to nothing."""
    import pysubs2

    text = read_text(path)
    fmt = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa"}.get(
        Path(path).suffix.lower())
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    except Exception as e:  # noqa: BLE001 - pysubs2 raises several types on malformed input
        raise SubtitleError(f"{path}: malformed subtitles ({e})") from e
    cues = [Cue(ev.start / 1000, ev.end / 1000, " ".join(ev.plaintext.split()))
            for ev in subs if not ev.is_comment and ev.plaintext.strip()]
    if not cues and text.strip():
        raise SubtitleError(f"{path}: no subtitle cues found (malformed file?)")
    return sorted(cues, key=lambda c: c.start_s)


def assign(cues: list[Cue], shots: list[tuple[float, float]]) -> list[str]:
    """The text of each shot: the cues overlapping [start, end), joined in time order."""
    out = []
    for start, end in shots:
        out.append(" ".join(c.text for c in cues if c.start_s < end and c.end_s > start))
    return out
