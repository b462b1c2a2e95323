"""Shot encoders: one protocol, a registry of lazily imported backends, one per modality.

An encoder turns a batch of per-shot inputs into a (batch, dim) float32 array:

- video: (k, 224, 224, 3) uint8 frames sampled uniformly inside each shot -> mean-pooled;
- audio: the shot's mono waveform at the encoder's ``rate`` attribute (16 kHz when it has none;
  aisfx asks for 44.1 kHz) -> pooled over time;
- text: the shot's subtitle text (and the title's synopsis + tags) -> one vector.

Backends import their heavy dependencies only when built, so ``mediafm --help`` and the
store/model code never pay for them.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from importlib import import_module
from typing import Any, Protocol

import numpy as np


class Encoder(Protocol):
    name: str
    version: str
    dim: int
    modality: str

    def encode(self, items: list[Any]) -> np.ndarray: ...


REGISTRY: dict[str, dict[str, str]] = {
    "video": {"efficientnet-lite0": "mediafm.ingest.encoders.video:EfficientNetLite0",
              "hf-clip": "mediafm.ingest.encoders.video:HFClip",
              "color-stats": "mediafm.ingest.encoders.video:ColorStats"},
    "audio": {"aisfx": "mediafm.ingest.encoders.audio:AISFX",
              "logmel": "mediafm.ingest.encoders.audio:LogMel",
              "hf-wav2vec2": "mediafm.ingest.encoders.audio:HFWav2Vec2"},
    "text": {"minilm": "mediafm.ingest.encoders.text:minilm",
             "sentence-transformers": "mediafm.ingest.encoders.text:SentenceTransformerText",
             "openai": "mediafm.ingest.encoders.text:OpenAIText"},
}
DEFAULTS = {"video": "efficientnet-lite0", "audio": "aisfx", "text": "minilm"}
# The default when its package cannot be installed (aisfx: old pins, installed --no-deps).
FALLBACKS = {"aisfx": ("logmel", "aisfx")}


def default_name(modality: str) -> str:
    """The modality's offline default, or its fallback when the default is not installed."""
    from importlib.util import find_spec

    name = DEFAULTS[modality]
    if name in FALLBACKS and find_spec(FALLBACKS[name][1]) is None:
        return FALLBACKS[name][0]
    return name


def build(modality: str, name: str | None = None, device: str | None = None,
          **kwargs) -> Encoder:
    """Instantiate a registered encoder (``name`` defaults to the modality's offline default)
    on ``device`` ("cpu", "cuda", "cuda:1"; None: the backend's default, the CPU) where it runs
    a model; encoders without one (colour statistics, log-mel, a remote API) ignore it."""
    choices = REGISTRY.get(modality)
    if choices is None:
        raise ValueError(f"unknown modality {modality!r}: {sorted(REGISTRY)}")
    name = name or default_name(modality)
    if name not in choices:
        raise ValueError(f"unknown {modality} encoder {name!r}: {sorted(choices)}")
    module, cls = choices[name].split(":")
    factory = getattr(import_module(module), cls)
    if device is not None and "device" in inspect.signature(factory).parameters:
        kwargs["device"] = device
    return factory(**kwargs)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hugging Face's weight-loading progress bar off while a model loads (restored after).

    transformers 5 draws one for every checkpoint it loads ("Loading weights: 103/103"), with
    carriage returns even when stderr is a log file; a load from local disk takes a fraction of
    a second, and our own progress lines say what the run is doing."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def describe(encoder: Encoder) -> dict:
    """What the store records about an encoder."""
    return {"name": encoder.name, "version": encoder.version, "dim": encoder.dim}
