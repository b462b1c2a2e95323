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


def block_norm(x: np.ndarray, blocks: tuple[int, ...] | list[int] = ()) -> np.ndarray:
    """Each block of ``blocks`` columns scaled to unit L2 norm, then each row (``unit_norm``):
    a cosine over the result weighs every block alike. Idempotent, so a vector scaled once
    may be scaled again; ``blocks`` of fewer than two (one block) is ``unit_norm``.

    Why: a readout concatenates blocks of very different norms (hidden states ~7-11, the
    input projection and the fused vectors ~0.75), so a cosine over the raw row is the hidden
    states' cosine, and search by example ignores what the shot itself shows; measured in
    ``benchmarks/search_quality.py``."""
    if len(blocks) < 2:
        return unit_norm(x)
    x = np.array(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))  # the one copy
    if sum(blocks) != x.shape[-1]:
        raise ValueError(f"blocks {list(blocks)} sum to {sum(blocks)}, the vectors have "
                         f"{x.shape[-1]} columns")
    lo = 0
    for width in (*blocks, None):  # each block, then the row, in place
        part = x[..., lo:lo + width] if width else x
        part /= np.maximum(np.linalg.norm(part, axis=-1, keepdims=True), 1e-12)
        lo += width or 0
    return x


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
