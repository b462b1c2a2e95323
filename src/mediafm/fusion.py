"""Per-modality shot vectors -> one unit-normed fused shot vector (MEDIAFM.md §1).

The fused vector is the concatenation [video | audio | text], then divided by its L2 norm.
A shot without timed text contributes a zero text block: the spec's choice, which keeps every
fused vector the same length and lets the model learn what "no dialogue" looks like.
"""

from __future__ import annotations

import numpy as np

MODALITIES = ("video", "audio", "text")


def unit_norm(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm (rows of zeros stay zero), in x's float dtype."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps).astype(x.dtype)


def fuse(video: np.ndarray, audio: np.ndarray, text: np.ndarray, has_text: np.ndarray,
         include: tuple[str, ...] = MODALITIES) -> np.ndarray:
    """Concatenate (N, dv), (N, da), (N, dt) with zeros where ``has_text`` is False; unit-norm.

    Each modality is first unit-normed on its own, so that no encoder dominates the fused vector
    merely because its outputs have a larger scale (ours: the spec only says "concatenated and
    unit-normed"; with per-part norming every present modality carries equal weight).
    ``include`` keeps a subset, in the same order: the modality ablation.
    """
    text = np.where(has_text[:, None], text, 0.0)
    parts = {"video": video, "audio": audio, "text": text}
    return unit_norm(np.concatenate([unit_norm(parts[m]) for m in MODALITIES if m in include],
                                    axis=1))
