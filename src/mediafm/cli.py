"""``mediafm`` command line: one subcommand per stage, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _import(args: argparse.Namespace) -> None:
    from mediafm.store import import_shots

    fuse = tuple(m.strip() for m in args.fuse.split(",") if m.strip())
    store = import_shots(args.shots, args.out, args.titles, fuse_modalities=fuse,
                         progress=not args.quiet)
    print(f"wrote {store}")


def _info(args: argparse.Namespace) -> None:
    from mediafm.store import ShotStore

    store = ShotStore(args.store)
    n = store.titles["n_shots"]
    print(json.dumps({**store.info.to_json(), "shots_per_title": {
        "min": int(n.min()), "median": float(n.median()), "max": int(n.max())},
        "parts": len(store.parts())}, indent=2))


def _synth(args: argparse.Namespace) -> None:
    from mediafm.probes.catalog_labels import write_catalog_labels
    from mediafm.synthetic import CatalogSpec, write_catalog

    paths = write_catalog(args.out, CatalogSpec(n_titles=args.titles, seed=args.seed))
    paths["labels"] = write_catalog_labels(paths, Path(args.out) / "labels.parquet")
    for name, path in paths.items():
        print(f"{name}: {path}")


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{flag} {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def _probe(args: argparse.Namespace) -> None:
    from mediafm.model import MediaFM
    from mediafm.probes import read_labels, run_probes

    if not args.model and not args.embeddings:
        raise ValueError("give --model RUN and/or --embeddings NAME=FILE.parquet")
    labels, tasks = read_labels(args.labels, _key_values(args.task, "--task"))
    model = MediaFM.from_pretrained(args.model) if args.model else None
    metrics = Path(args.model) / "metrics.jsonl" if args.model else None
    results = run_probes(args.store, labels, tasks, args.out, model=model,
                         embeddings=_key_values(args.embeddings, "--embeddings"),
                         seeds=tuple(range(args.seeds)), folds=args.folds,
                         training_metrics=metrics, progress=not args.quiet,
                         baselines=not args.no_baselines)
    print(results.pivot(index="task", columns="method", values="mean").round(3).to_string())
    print(f"report: {Path(args.out) / 'REPORT.md'} and {Path(args.out) / 'report.html'}")


def _train(args: argparse.Namespace) -> None:
    from mediafm.train import load_run_config, train

    model_cfg, train_cfg = load_run_config(args.config, args.set)
    metrics = train(args.store, args.out, model_cfg, train_cfg, resume=args.resume,
                    stop_after=args.stop_after, device=args.device, progress=not args.quiet)
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
                            progress=not args.quiet)
        out = write_clip_embeddings(frame, args.out)
        print(f"wrote {len(frame)} clip embeddings ({args.mode}) to {out}")
    else:
        out = embed_store(model, store, args.out, args.output, args.batch_size,
                          progress=not args.quiet)
        print(f"wrote {store.info.n_shots} shot embeddings to {out}")


def _demo(args: argparse.Namespace) -> None:
    from mediafm.demo import run_demo

    report = run_demo(args.out, n_titles=args.titles, overrides=args.set,
                      progress=not args.quiet)
    print(f"report: {report}")


def build_parser() -> argparse.ArgumentParser:
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

    s = sub.add_parser("info", help="summarise a shot store")
    s.add_argument("store")
    s.set_defaults(func=_info)

    s = sub.add_parser("synth", help="write the built-in synthetic catalog as Parquet")
    s.add_argument("--out", required=True)
    s.add_argument("--titles", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synth)

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
    s.add_argument("--output", choices=["hidden", "output"], default="hidden",
                   help="final hidden state (default) or the output projection")
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
    s.add_argument("--titles", type=int, default=100)
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tiny-config value")
    s.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mediafm.store import StoreError

    try:
        args.func(args)
    except (StoreError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"mediafm {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
