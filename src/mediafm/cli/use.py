"""Subcommands that put embeddings to work: heads, predict, moments, index, search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _model_and_store(args: argparse.Namespace):
    from mediafm.model import MediaFM
    from mediafm.store import ShotStore

    model = MediaFM.from_pretrained(args.model)
    if getattr(args, "device", None):
        model = model.to(args.device)
    return model, ShotStore(args.store)


def _heads(args: argparse.Namespace) -> None:
    from mediafm.config import key_values
    from mediafm.embed import validate_clips
    from mediafm.heads import Heads
    from mediafm.probes import read_labels

    model, store = _model_and_store(args)
    labels, tasks = read_labels(args.labels, key_values(args.task, "--task"))
    validate_clips(labels, store, str(args.labels))
    heads = Heads.fit(store, model, labels, tasks, args.output, not args.no_title,
                      args.folds, model_path=str(Path(args.model).absolute()),
                      progress=not args.quiet)
    out = heads.save(args.out)
    for name, h in heads.heads.items():
        cv = h.info["cv"]
        print(f"{name:<16} {h.task.kind:<10} {len(h.labels):>3} label(s)  cross-validated "
              f"{cv['metric']} {cv['score']:.3f} ({cv['n_titles']} titles)")
    print(f"heads: {out}")


def _predict(args: argparse.Namespace) -> None:
    import pandas as pd

    from mediafm.heads import Heads, predict, write_predictions

    heads = Heads.load(args.heads)
    model, store = _model_and_store(args)
    clips = None
    if args.clips:
        clips = pd.read_parquet(args.clips)
    frame = predict(heads, model, store, clips, progress=not args.quiet)
    out = write_predictions(frame, heads.kinds, args.out)
    print(f"wrote {len(frame):,} predictions ({', '.join(heads.tasks)}) to {out}")


def _moments(args: argparse.Namespace) -> None:
    from mediafm.atomic import atomic_file
    from mediafm.moments import find_moments, read_predictions
    from mediafm.store import ShotStore

    pred, kinds = read_predictions(args.pred)
    frame = find_moments(pred, kinds, ShotStore(args.store), args.task or None, args.k,
                         args.relevance)
    with atomic_file(args.out) as tmp:
        frame.to_parquet(tmp, index=False)
    print(f"wrote {len(frame)} moments to {args.out}")
    if len(frame):
        t = frame["title_id"].iloc[0]
        print(frame[frame["title_id"] == t].to_string(index=False, max_colwidth=60))


def _index(args: argparse.Namespace) -> None:
    from mediafm.search import build_index

    out = build_index(args.embeddings, args.out, args.store, args.recall)
    meta = json.loads((out / "index.json").read_text())
    print(f"indexed {meta['n']:,} {meta['kind']} ({meta['dim']}-d) with "
          f"{meta['index']['type']} {json.dumps(meta['index'])} in {out}")


def _search(args: argparse.Namespace) -> None:
    from mediafm.search import Index

    index = Index.load(args.index)
    try:
        hits = index.search(args.title, args.shot, args.clip, args.k, args.other_titles)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    if args.json:
        print(hits.to_json(orient="records", indent=1))
    else:
        print(hits.to_string(index=False))


def _serve(args: argparse.Namespace) -> None:
    import os
    import sys

    from mediafm.serve.app import serve
    from mediafm.serve.catalog import Catalog

    token = args.token or os.environ.get("MEDIAFM_TOKEN")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this machine can open "
              "the explorer" + ("" if token else "; set --token (or MEDIAFM_TOKEN) to require "
                                "a bearer token"), file=sys.stderr)
    catalog = Catalog(args.store, args.model, args.heads, args.index, args.pred)
    print(f"mediafm explorer: http://{args.host}:{args.port}/"
          + (f"?token={token}" if token else "") + f"  (API docs: /docs; {args.store})")
    serve(catalog, args.host, args.port, token)


def register(sub) -> None:
    s = sub.add_parser("heads", help="fit one linear head per labelled task on in-context "
                       "clip embeddings (calibrated, cross-validated) and save them")
    s.add_argument("--store", required=True)
    s.add_argument("--model", required=True, help="run directory or model directory")
    s.add_argument("--labels", required=True, help="LABELS.parquet, as for probe")
    s.add_argument("--out", required=True, help="heads directory to write")
    s.add_argument("--task", action="append", default=[], metavar="NAME=KIND",
                   help="declare a task's kind: multilabel, binary, ranking, boundary")
    s.add_argument("--output", default="input+context", help="the readout (see embed)")
    s.add_argument("--no-title", action="store_true",
                   help="features without the title part (mean fused vector and context) "
                   "beside the clip")
    s.add_argument("--folds", type=int, default=5)
    s.add_argument("--device")
    s.set_defaults(func=_heads)

    s = sub.add_parser("predict", help="score every shot (or given clips) in context with "
                       "fitted heads: long-form Parquet")
    s.add_argument("--heads", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True, help="PRED.parquet: title_id, shot_index (or "
                   "clip_id), task, label, score")
    s.add_argument("--clips", help="CLIPS.parquet: score these clips instead of every shot")
    s.add_argument("--device")
    s.set_defaults(func=_predict)

    s = sub.add_parser("moments", help="top non-overlapping moments per title from "
                       "predictions: highlights and ad-break candidates")
    s.add_argument("--pred", required=True, help="shot-level PRED.parquet from predict")
    s.add_argument("--store", required=True, help="the store (for shot times)")
    s.add_argument("--out", required=True, help="MOMENTS.parquet")
    s.add_argument("--task", action="append", default=[],
                   help="a binary/ranking task (highlights) or boundary task (ad breaks); "
                   "default: all of them")
    s.add_argument("-k", type=int, default=5, help="moments per title and task")
    s.add_argument("--relevance", help="a multilabel task that says what follows an ad "
                   "break (e.g. ad_relevancy)")
    s.set_defaults(func=_moments)

    s = sub.add_parser("index", help="build a FAISS index over shot, clip or title "
                       "embeddings (exact when small, IVF with measured recall when large)")
    s.add_argument("--embeddings", required=True, help="an embeddings Parquet file")
    s.add_argument("--out", required=True, help="index directory")
    s.add_argument("--store", help="add shot times from this store (shot embeddings)")
    s.add_argument("--recall", type=float, default=0.95,
                   help="approximate index: the recall@10 to reach (sets nprobe)")
    s.set_defaults(func=_index)

    s = sub.add_parser("search", help="nearest neighbours of a shot, clip or title")
    s.add_argument("--index", required=True)
    s.add_argument("--title", help="the query's title (with --shot for a shot index)")
    s.add_argument("--shot", type=int)
    s.add_argument("--clip", help="the query clip (clip index)")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--other-titles", action="store_true",
                   help="exclude the query's own title")
    s.add_argument("--json", action="store_true", help="JSON records instead of a table")
    s.set_defaults(func=_search)

    s = sub.add_parser("serve", help="the explorer: a local web app over a store, predictions "
                       "and search (FastAPI + uvicorn)")
    s.add_argument("--store", required=True)
    s.add_argument("--model", help="a run or model directory (predictions with --heads)")
    s.add_argument("--heads", help="heads directory: prediction lanes and moments")
    s.add_argument("--pred", help="precomputed PRED.parquet from predict (instead of "
                   "--model/--heads)")
    s.add_argument("--index", help="a shot index for search (else exact search over the store)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--token", help="require this bearer token on every request (default: "
                   "$MEDIAFM_TOKEN)")
    s.set_defaults(func=_serve)
