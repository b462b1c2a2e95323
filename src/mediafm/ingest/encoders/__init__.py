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
# What the image and audio networks compute in: auto is bf16 on a CPU that does it in
# hardware, fp32 anywhere else (``resolve_precision``).
PRECISIONS = ("auto", "fp32", "bf16")
# The default when its package cannot be installed (aisfx: old pins, installed --no-deps).
FALLBACKS = {"aisfx": ("logmel", "aisfx")}


def default_name(modality: str) -> str:
    """The modality's offline default, or its fallback when the default is not installed."""
    from importlib.util import find_spec

    name = DEFAULTS[modality]
    if name in FALLBACKS and find_spec(FALLBACKS[name][1]) is None:
        return FALLBACKS[name][0]
    return name


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere torch
    emulates it, slower than fp32."""
    import torch

    caps = getattr(torch.cpu, "get_capabilities", dict)()  # an older torch: fp32
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def resolve_precision(precision: str, device: str | None) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bfloat16, else ``fp32``; the others as
    given. Why bf16 on such a CPU: on real shots (2 cores, ``benchmarks/encoder_precision.py``)
    EfficientNet-Lite0 runs 2.2-2.9x faster (three runs, two hosts) and aisfx 1.6x as shipped,
    1.85x folded, with shot vectors at cosine 0.99+ of fp32's (median 0.9987 and 0.99998) and
    98-99% of each shot's 10 nearest neighbours the same: less than skipping the deblocking
    filter moves them. On a GPU the encoders are not the bottleneck: fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if str(device).startswith("cpu") and native_bf16() else "fp32"


def build(modality: str, name: str | None = None, device: str | None = None,
          precision: str | None = None, **kwargs) -> Encoder:
    """Instantiate a registered encoder (``name`` defaults to the modality's offline default)
    on ``device`` ("cpu", "cuda", "cuda:1"; None: the backend's default, the CPU) where it runs
    a model, computing in ``precision`` ("fp32", "bf16"; None: fp32) where it runs a
    network that can; encoders without one (colour statistics, log-mel, a text model, a remote
    API) ignore both."""
    choices = REGISTRY.get(modality)
    if choices is None:
        raise ValueError(f"unknown modality {modality!r}: {sorted(REGISTRY)}")
    name = name or default_name(modality)
    if name not in choices:
        raise ValueError(f"unknown {modality} encoder {name!r}: {sorted(choices)}")
    module, cls = choices[name].split(":")
    factory = getattr(import_module(module), cls)
    params = inspect.signature(factory).parameters
    if device is not None and "device" in params:
        kwargs["device"] = device
    if precision is not None and "precision" in params:
        kwargs["precision"] = resolve_precision(precision, device)
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


def autocast(device, precision: str):
    """The context a network runs in: bfloat16 autocast (outputs are cast back to float32 by
    the encoder), or none."""
    import torch

    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=precision == "bf16")


def describe(encoder: Encoder) -> dict:
    """What the store records about an encoder (its precision where it is not fp32)."""
    out = {"name": encoder.name, "version": encoder.version, "dim": encoder.dim}
    if getattr(encoder, "precision", "fp32") != "fp32":
        out["precision"] = encoder.precision
    return out
