"""Configs: strict dataclasses, named TOML configs, ``--set key=value`` overrides.

A config file has one section per component, each the small frozen dataclass that component
builds from (torchtitan's habit): for training ``[model]`` (``model.MediaFMConfig``),
``[train]``, ``[optim]``, ``[loader]`` and ``[masking]`` (here); for ingest ``[decode]``,
``[detect]``, ``[encode]`` and ``[run]`` (``ingest.config``). Each component gets only its
own section. The dataclasses are the single source of truth: an unknown section or key is an
error that lists the known ones, never silently ignored, and a value out of its range is an
error naming the key. Named configs (``tiny``, ``base``) ship as TOML in ``mediafm/configs``;
a path to a TOML file of the same shape works wherever a name does.

This module imports nothing else of mediafm: every component's config can use it.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
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
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {path}: not valid TOML ({e})") from None
    ref = resources.files("mediafm") / "configs" / f"{name_or_path}.toml"
    if not ref.is_file():
        names = sorted(p.name[:-5] for p in (resources.files("mediafm") / "configs").iterdir()
                       if p.name.endswith(".toml"))
        raise ValueError(f"unknown config {name_or_path!r}: use one of {names} or a .toml path")
    return tomllib.loads(ref.read_text())


def section_keys(sections: dict[str, type]) -> dict[str, set[str]]:
    """The keys of each section (a nested section is its own section, not a key)."""
    return {s: {f.name for f in dataclasses.fields(c) if not str(f.type).endswith("Config")}
            for s, c in sections.items()}


def place(out: dict[str, dict], sections: dict[str, type], section: str, name: str,
          value: Any, what: str, moved: dict[str, tuple[str, ...]] | None = None) -> None:
    """Put ``name = value`` in ``section``, or, for a bare key (no section), in the one
    section that has it. ``moved``: sections whose keys moved to others since (``[train] lr``
    before the optimiser had its own section): such a key goes where it lives now. Anything
    else unknown is an error naming it."""
    keys = section_keys(sections)
    if section and name in keys[section]:
        out[section][name] = value
        return
    candidates = (moved or {}).get(section, ()) if section else tuple(sections)
    owners = [s for s in candidates if name in keys[s]]
    if len(owners) != 1:
        where = f" in [{section}]" if section else ""
        raise ValueError(f"{what}: unknown key {name!r}{where}")
    out[owners[0]][name] = value


def load_sections(raw: dict, overrides: list[str] | None, sections: dict[str, type],
                  source: str = "config", moved: dict[str, tuple[str, ...]] | None = None
                  ) -> dict[str, dict]:
    """The sections of a parsed config with ``key=value`` overrides applied, as dicts.

    Keys may be ``section.key`` or bare names (found in the one section that has them).
    Unknown sections and keys are errors naming them (``moved``: see ``place``)."""
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {unknown}; use "
                         f"{', '.join(f'[{s}]' for s in sections)}")
    out: dict[str, dict] = {s: {} for s in sections}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ValueError(f"{source}: [{section}] must be a table of key = value")
        for name, value in values.items():
            place(out, sections, section, name, value, f"{source} [{section}]", moved)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        section, _, name = key.rpartition(".")
        if section and section not in sections:
            raise ValueError(f"--set {item!r}: unknown section {section!r}; known: "
                             f"{sorted(sections)}")
        place(out, sections, section, name, parse_value(text), f"--set {item!r}", moved)
    return out


def by_section(values: dict, sections: dict[str, type]) -> dict[str, dict]:
    """Flat keyword arguments -> {section: {key: value}}; an unknown key is an error."""
    out: dict[str, dict] = {s: {} for s in sections}
    for name, value in values.items():
        place(out, sections, "", name, value, "arguments")
    return out


def check_ranges(obj, ranges: dict[str, tuple[float | None, float | None]]) -> None:
    """Every named field of a config within [low, high] (None: unbounded) and finite; the
    error names the key, its value and its range."""
    for name, (low, high) in ranges.items():
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        if (low is not None and value < low) or (high is not None and value > high):
            span = (f">= {low}" if high is None else f"<= {high}" if low is None
                    else f"in [{low}, {high}]")
            raise ValueError(f"{name} must be {span}, got {value}")


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class OptimConfig:
    """``[optim]``: Muon for the hidden matrices, AdamW for the rest (``optim.py``)."""

    lr: float = 1e-3  # AdamW
    muon_lr: float = 0.02  # Muon (Keller's default scale)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # > 0: the model evaluated and saved is an exponential moving average of the trained
    # weights, this decay a step (0.99: about the last 100 steps), not the last step's weights
    ema: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(self, {"lr": (0, None), "muon_lr": (0, None), "weight_decay": (0, None),
                            "warmup_steps": (0, None), "min_lr_ratio": (0, 1),
                            "grad_clip": (0, None), "ema": (0, 1)})
        if self.lr <= 0 or self.muon_lr <= 0:
            raise ValueError(f"lr and muon_lr must be > 0, got {self.lr} and {self.muon_lr}")
        if self.ema >= 1:
            raise ValueError(f"ema must be < 1 (1 would never move the average), got {self.ema}")


@dataclass(frozen=True)
class LoaderConfig:
    """``[loader]``: which windows a step reads and how (``sequences.WindowLoader``)."""

    parts_in_memory: int = 4
    loader_workers: int = 0  # 0: one read-ahead thread; N: N DataLoader worker processes
    loader_threads: int = 1  # threads reading the windows of one batch (fused cache: GPUs)
    # P(a title that fits the window is trained on a random sub-window of at least half its
    # length), so its shots do not always sit at the same positions (ours)
    crop: float = 0.0
    short_steps: float = 0.0  # share of steps on windows cut to short_max_shots (warm-up)
    short_max_shots: int = 128

    def __post_init__(self) -> None:
        check_ranges(self, {"parts_in_memory": (1, None), "loader_workers": (0, None),
                            "loader_threads": (1, None), "crop": (0, 1),
                            "short_steps": (0, 1), "short_max_shots": (1, None)})


@dataclass(frozen=True)
class MaskingConfig:
    """``[masking]``: which shots the masked-shot loss is on, beyond the model's mask ratio;
    the defaults are the spec's plain masked shot modeling (levers of the context-quality
    ablation, ``benchmarks/context_quality.py``)."""

    mask_span: float = 1.0  # mean length of masked runs of shots (1: independent shots)
    mask_keep: float = 0.0  # share of the selected shots that keep their input (BERT's 10%)
    # noise added to the input of those kept shots (the norm of a Gaussian vector against
    # the unit-norm fused vector): the model learns to denoise a shot with its context, so the
    # hidden state of a shot it can see is trained too (ours); 0: kept as they are
    keep_noise: float = 0.0
    unmasked_loss: float = 0.0  # loss weight of the unmasked shots (0: masked only, the spec)
    # the model's title clock (model.title_clock) shifted by one draw of N(0, clock_jitter) per
    # window: it still says where in the story a window sits, not which shot (without it the
    # clock and [GLOBAL] together let a small model memorise its titles, as learned positions)
    clock_jitter: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(self, {"mask_span": (1, None), "mask_keep": (0, 1), "keep_noise": (0, None),
                            "unmasked_loss": (0, None), "clock_jitter": (0, None)})


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: the run (steps, batch, evaluation, logging, precision), with the
    optimiser, loader and masking configs beside it (their own sections in a file)."""

    steps: int = 1000
    # > 0: the run lasts this many passes over its training windows and ``steps`` is what that
    # comes to on the store it trains on (``run_steps``); 0: ``steps`` as set
    passes: float = 0.0
    batch_size: int = 16  # windows (titles) per step
    seed: int = 0
    val_fraction: float = 0.1  # held-out titles
    max_val_titles: int = 64
    eval_every: int = 200
    ckpt_every: int = 500
    log_every: int = 10
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute block activations in backward
    optim: OptimConfig = field(default_factory=OptimConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check_ranges(self, {"steps": (1, None), "passes": (0, None), "batch_size": (1, None),
                            "seed": (0, None),
                            "val_fraction": (0, 0.9), "max_val_titles": (0, None),
                            "eval_every": (1, None), "ckpt_every": (1, None),
                            "log_every": (1, None)})

    @classmethod
    def of(cls, **values) -> TrainConfig:
        """From flat keyword arguments of every section: ``TrainConfig.of(steps=10, lr=1e-3)``."""
        return train_config(by_section(values, TRAIN_SECTIONS))


TRAIN_SECTIONS = {"train": TrainConfig, "optim": OptimConfig, "loader": LoaderConfig,
                  "masking": MaskingConfig}
# configs of mediafm 0.2 held the optimiser, loader and masking keys under [train]
TRAIN_MOVED = {"train": ("optim", "loader", "masking")}


def train_config(sections: dict[str, dict]) -> TrainConfig:
    """A ``TrainConfig`` from the dicts of its four sections."""
    return from_dict(TrainConfig, {**sections.get("train", {}), **{
        name: from_dict(cls, sections.get(name, {}))
        for name, cls in TRAIN_SECTIONS.items() if name != "train"}})
