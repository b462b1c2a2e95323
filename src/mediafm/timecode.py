"""SMPTE timecode of a frame at a title's rate, drop-frame at 29.97 and 59.94.

A store records each shot's first and last frame (their order in the stream) and the title's
frame rate as a ratio ("30000/1001", "25"); the timecode is a function of the two, so it is
computed, not stored. Drop-frame timecode (``HH:MM:SS;FF``) skips frame numbers 0 and 1 (2
and 3 at 59.94) at the start of every minute but every tenth, so that it keeps step with the
clock at NTSC rates; no frame is dropped, only numbers. Tested against OpenTimelineIO's.
"""

from __future__ import annotations

from fractions import Fraction


def rate_of(text: str | float | None, default: float = 25.0) -> Fraction:
    """A frame rate from its recorded text ("30000/1001", "25", "29.97") or number."""
    if text is None or text == "" or (isinstance(text, float) and text != text):
        return Fraction(default)
    return Fraction(str(text)).limit_denominator(1001)


def is_drop_frame(rate: Fraction) -> bool:
    """29.97 and 59.94 (and their multiples): counted in drop-frame timecode."""
    return rate.denominator == 1001 and rate.numerator % 30000 == 0


def timecode(frame: int, rate: Fraction) -> str:
    """``HH:MM:SS:FF`` (``;FF`` drop-frame) of the 0-based frame ``frame``."""
    nominal = round(rate)
    if is_drop_frame(rate):
        drop = 2 * nominal // 30  # numbers skipped a minute: 2 at 29.97, 4 at 59.94
        per_ten = nominal * 600 - 9 * drop  # frames in ten minutes
        per_minute = nominal * 60 - drop
        tens, rest = divmod(frame, per_ten)
        frame += 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
        sep = ";"
    else:
        sep = ":"
    ff = frame % nominal
    seconds = frame // nominal
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{ff:02d}"
