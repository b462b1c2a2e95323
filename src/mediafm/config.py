"""Configs: strict loading of dataclasses, named TOML configs, ``--set key=value`` overrides.

A run's config has one section per component, each the dataclass that component builds from
(torchtitan's habit): ``[model]`` is ``MediaFMConfig`` (model.py), ``[train]`` is
``TrainConfig`` (here). The dataclasses are the single source of truth: an unknown section or
key is an error, never silently ignored. Named configs (``tiny``, ``base``) ship as TOML in
``mediafm/configs``; a path to a TOML file of the same shape works everywhere a name does.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """``cls(**values)``, but an unknown key is an error that lists the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def parse_value(text: str) -> Any:
    """A TOML value (``3``, ``1e-3``, ``true``, ``"x"``, ``[1, 2]``); anything else is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def key_values(items: list[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; the error names the flag and the item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{flag} {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def load_toml(name_or_path: str) -> dict:
    """A named config shipped with the package (``tiny``, ``base``) or a TOML file path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        return tomllib.loads(path.read_text())
    ref = resources.files("mediafm") / "configs" / f"{name_or_path}.toml"
    if not ref.is_file():
        names = sorted(p.name[:-5] for p in (resources.files("mediafm") / "configs").iterdir()
                       if p.name.endswith(".toml"))
        raise ValueError(f"unknown config {name_or_path!r}: use one of {names} or a .toml path")
    return tomllib.loads(ref.read_text())


@dataclass(frozen=True)
class TrainConfig:
    """The ``[train]`` section: optimisation, schedule, data loading, evaluation, logging."""

    steps: int = 1000
    batch_size: int = 16  # windows (titles) per step
    lr: float = 1e-3  # AdamW
    muon_lr: float = 0.02  # Muon (Keller's default scale)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.1  # held-out titles
    max_val_titles: int = 64
    eval_every: int = 200
    ckpt_every: int = 500
    log_every: int = 10
    parts_in_memory: int = 4
    loader_workers: int = 0  # 0: one read-ahead thread; N: N DataLoader worker processes
    loader_threads: int = 1  # threads reading the windows of one batch (fused cache: GPUs)
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute block activations in backward
    # the recipe levers of the context-quality ablation (benchmarks/context_quality.py); the
    # defaults are the spec's plain masked shot modeling
    crop: float = 0.0  # P(a title that fits the window is trained on a random sub-window)
    mask_span: float = 1.0  # mean length of masked runs of shots (1: independent shots)
    mask_keep: float = 0.0  # share of the selected shots that keep their input (BERT's 10%)
    # noise added to the input of those kept shots (the norm of a Gaussian vector against
    # the unit-norm fused vector): the model learns to denoise a shot with its context, so the
    # hidden state of a shot it can see is trained too (ours); 0: kept as they are
    keep_noise: float = 0.0
    unmasked_loss: float = 0.0  # loss weight of the unmasked shots (0: masked only, the spec)
    short_steps: float = 0.0  # share of steps on windows cut to short_max_shots (warm-up)
    short_max_shots: int = 128
    # the model's title clock (model.title_clock) shifted by one draw of N(0, clock_jitter) per
    # window: it still says where in the story a window sits, not which shot (without it the
    # clock and [GLOBAL] together let a small model memorise its titles, as learned positions)
    clock_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        for name in ("crop", "mask_keep", "short_steps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_span < 1.0 or min(self.unmasked_loss, self.clock_jitter,
                                       self.keep_noise) < 0.0:
            raise ValueError("mask_span must be >= 1; unmasked_loss, clock_jitter and "
                             "keep_noise >= 0")


SECTIONS = ("model", "train")


def load_run_config(config: str = "tiny", overrides: list[str] | None = None
                    ) -> tuple[dict, TrainConfig]:
    """(model config dict, TrainConfig) from a named config or TOML plus ``key=value`` overrides.

    Keys may be ``model.hidden`` / ``train.lr`` or bare names; unknown sections and keys are
    errors. The model section stays a dict: ``fused_dim`` and ``title_dim`` come from the store
    at training time unless set explicitly.
    """
    from mediafm.model import MediaFMConfig

    raw = load_toml(config)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"config {config}: unknown section(s) {unknown}; use [model], [train]")
    sections = {name: dict(raw.get(name, {})) for name in SECTIONS}
    keys = {"model": {f.name for f in dataclasses.fields(MediaFMConfig)},
            "train": {f.name for f in dataclasses.fields(TrainConfig)}}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        section, _, name = key.rpartition(".")
        if section and section not in SECTIONS:
            raise ValueError(f"--set {item!r}: unknown section {section!r}")
        section = section or next((s for s in SECTIONS if name in keys[s]), "")
        if name not in keys.get(section, ()):
            raise ValueError(f"--set {item!r}: unknown key {name!r}")
        sections[section][name] = parse_value(value)
    from_dict(MediaFMConfig, sections["model"])  # validate keys and values early
    return sections["model"], from_dict(TrainConfig, sections["train"])
