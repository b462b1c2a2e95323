"""Subcommands of the model: train, embed, probe, and the demo of the whole flow."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mediafm.cli.options import POSITIVE, Number
from mediafm.jobs import ENGINES
from mediafm.readouts import DEFAULT_READOUT, MODES, READOUTS, TITLE_POOLS, readout_stamp


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
                         baselines=not args.no_baselines, workers=args.workers)
    print(results.pivot(index="task", columns="method", values="mean").round(3).to_string())
    print(f"report: {Path(args.out) / 'REPORT.md'} and {Path(args.out) / 'report.html'}")


def _train(args: argparse.Namespace) -> None:
    from mediafm.train import load_run_config, train

    model_cfg, train_cfg = load_run_config(args.config, args.set)
    metrics = train(args.store, args.out, model_cfg, train_cfg, resume=args.resume,
                    stop_after=args.stop_after, device=args.device, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        if metrics:
            print(json.dumps(metrics, indent=2))
        print(f"model: {Path(args.out) / 'model'}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from mediafm.distributed import exit_worker

        exit_worker(0)  # not through the interpreter's teardown (see exit_worker)


def _embed(args: argparse.Namespace) -> None:
    from mediafm import artifacts
    from mediafm.embed import embed_clips, embed_store, embed_titles, vector_blocks
    from mediafm.jobs import Where
    from mediafm.model import MediaFM
    from mediafm.store import ShotStore

    if args.clips and args.titles:
        raise ValueError("--clips and --titles are different outputs: give one")
    where = Where(args.engine, args.workers, args.address)
    if where != Where() and (args.clips or args.titles):
        raise ValueError("--engine, --workers and --address spread shots over workers; clips "
                         "and titles are embedded here")
    model = MediaFM.from_pretrained(args.model)
    if args.device:
        model = model.to(args.device)
    store = ShotStore(args.store)
    made = {"model": artifacts.model_stamp(model, args.model),
            "store": artifacts.store_stamp(store), **readout_stamp(args.output)}
    if args.clips:
        clips = artifacts.read(args.clips, "clips").frame()
        frame = embed_clips(model, store, clips, args.mode, args.output, args.batch_size,
                            progress=not args.quiet, with_title=args.with_title)
        out = artifacts.write("clip_embeddings", frame, args.out, mode=args.mode,
                              with_title=args.with_title, **made, blocks=vector_blocks(
                                  model, args.output, with_title=args.with_title))
        print(f"wrote {len(frame)} clip embeddings ({args.mode}) to {out}")
    elif args.titles:
        frame = embed_titles(model, store, args.title_pool, args.output, args.batch_size,
                             progress=not args.quiet)
        out = artifacts.write("title_embeddings", frame, args.out, pool=args.title_pool,
                              **made, blocks=vector_blocks(model, args.output,
                                                           pool=args.title_pool))
        print(f"wrote {len(frame)} title embeddings ({args.title_pool}) to {out}")
    else:
        out = embed_store(model, store, args.out, args.output, args.batch_size,
                          progress=not args.quiet, where=where, model_path=args.model)
        print(f"wrote {store.info.n_shots} shot embeddings to {out}")


def _demo(args: argparse.Namespace) -> None:
    from mediafm.demo import run_demo

    report = run_demo(args.out, n_titles=args.titles, overrides=args.set,
                      progress=not args.quiet, preset=args.preset, seed=args.seed,
                      probe_seeds=args.probe_seeds)
    out = Path(args.out)
    print(f"report: {report}")
    print(f"explore it: mediafm serve --store {out / 'store'} --pred "
          f"{out / 'predictions.parquet'} --index {out / 'index'}")


def register(sub) -> None:
    s = sub.add_parser("train", help="pretrain MediaFM with masked shot modeling")
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--config", default="tiny", help="tiny | base | path/to/config.toml "
                   "(sections [model], [train], [optim], [loader], [masking])")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=100 --set hidden=256")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    s.add_argument("--stop-after", type=POSITIVE, help="stop this invocation after N steps")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (none: cuda if available)")
    s.set_defaults(func=_train)

    s = sub.add_parser("embed", help="contextual shot embeddings, or clip embeddings")
    s.add_argument("--model", required=True, help="run directory or model directory")
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True, help="output Parquet file")
    s.add_argument("--clips", help="CLIPS.parquet: clip_id, title_id, first_shot, last_shot")
    s.add_argument("--mode", choices=MODES, default=MODES[0])
    s.add_argument("--output", choices=list(READOUTS), default=DEFAULT_READOUT,
                   help="the readout: " + "; ".join(f"{k} = {v}" for k, v in READOUTS.items()))
    s.add_argument("--with-title", action="store_true",
                   help="clips in context: the whole title (its mean fused vector and mean "
                   "context) beside the clip")
    s.add_argument("--titles", action="store_true",
                   help="one embedding per title (title_id, embedding) instead of per shot")
    s.add_argument("--title-pool", choices=TITLE_POOLS, default=TITLE_POOLS[0],
                   help="--titles: the mean of the title's shot embeddings, the [CLS] state, "
                   "or both side by side")
    s.add_argument("--engine", choices=ENGINES, default="local",
                   help="shots: ray spreads the store's parts over a Ray cluster")
    s.add_argument("--address", help="ray: cluster address (none: a local Ray instance)")
    s.add_argument("--workers", type=Number(int, 0), help="parts at once: processes (local) "
                   "or actors (ray); 0: one per CPU; none: 1 here, one per CPU of a Ray "
                   "cluster")
    s.add_argument("--batch-size", type=POSITIVE, default=16, help="windows per forward pass")
    s.add_argument("--device", help="cpu, cuda, ... (none: the CPU)")
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
    s.add_argument("--seeds", type=Number(int, 1, 100), default=3,
                   help="title partitions the probes average over")
    s.add_argument("--folds", type=Number(int, 2, 100), default=5,
                   help="title-grouped cross-validation folds (ranking tasks: 10)")
    s.add_argument("--no-baselines", action="store_true",
                   help="skip the per-modality and fused store baselines")
    s.add_argument("--workers", type=Number(int, 0), default=0,
                   help="probes run side by side in this many processes, one thread each "
                   "(0: one per CPU core)")
    s.set_defaults(func=_probe)


def register_demo(sub) -> None:
    from mediafm.synthetic import PRESETS

    s = sub.add_parser("demo", help="synthetic catalog -> import -> train tiny -> embed -> report")
    s.add_argument("--out", default="demo_out")
    s.add_argument("--preset", choices=sorted(PRESETS), default="clean",
                   help="the catalog (see synth)")
    s.add_argument("--titles", type=Number(int, 4, 100_000), default=100)
    s.add_argument("--seed", type=Number(int, 0), default=0, help="the catalog's seed")
    s.add_argument("--probe-seeds", type=Number(int, 1, 100), default=1,
                   help="title partitions the probes average over (as probe --seeds; each "
                        "adds ~4 min on 2 cores at 100 titles)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tiny-config value")
    s.set_defaults(func=_demo)
