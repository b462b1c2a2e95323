"""Subcommands that put embeddings to work: heads, predict, moments, index, search, serve."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mediafm.cli.options import PORT, POSITIVE, Number
from mediafm.readouts import DEFAULT_READOUT, READOUTS


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
                      progress=not args.quiet, workers=args.workers or None)
    out = heads.save(args.out)
    for name, h in heads.heads.items():
        cv = h.info["cv"]
        print(f"{name:<16} {h.task.kind:<10} {len(h.labels):>3} label(s)  cross-validated "
              f"{cv['metric']} {cv['score']:.3f} ({cv['n_titles']} titles)")
    print(f"heads: {out}")


def _predict(args: argparse.Namespace) -> None:
    from mediafm import artifacts
    from mediafm.heads import Heads, predict, write_predictions

    heads = Heads.load(args.heads)
    model, store = _model_and_store(args)
    clips = artifacts.read(args.clips, "clips").frame() if args.clips else None
    frame = predict(heads, model, store, clips, progress=not args.quiet,
                    other_store=args.other_store)
    out = write_predictions(frame, heads, args.out, model, store, args.heads)
    print(f"wrote {len(frame):,} predictions ({', '.join(heads.tasks)}) to {out}")


def _moments(args: argparse.Namespace) -> None:
    from mediafm.moments import check_predictions, find_moments, read_predictions, write_moments
    from mediafm.store import ShotStore

    store = ShotStore(args.store)
    pred, kinds, meta = read_predictions(args.pred)
    check_predictions(pred, meta, store, args.pred)
    scenes = None
    if args.scenes:
        from mediafm import artifacts

        got = artifacts.read(args.scenes, "scenes")
        artifacts.check_store(got.meta, store, f"the scenes {args.scenes}")
        scenes = got.frame()
    frame = find_moments(pred, kinds, store, args.task or None, args.k, args.relevance,
                         scenes=scenes)
    write_moments(frame, args.out, store, args.pred)
    print(f"wrote {len(frame)} moments to {args.out}")
    if len(frame):
        t = frame["title_id"].iloc[0]
        print(frame[frame["title_id"] == t].to_string(index=False, max_colwidth=60))


def _scenes(args: argparse.Namespace) -> None:
    from mediafm.heads import Heads
    from mediafm.model import MediaFM
    from mediafm.scenes import find_scenes, write_scenes
    from mediafm.store import ShotStore

    store = ShotStore(args.store)
    model = MediaFM.from_pretrained(args.model) if args.model else None
    if (args.heads or args.vectors == "context") and model is None:
        raise ValueError(f"{'--heads' if args.heads else '--vectors context'} needs --model")
    heads = Heads.load(args.heads) if args.heads else None
    frame = find_scenes(store, model, heads, args.window, args.bar, args.min_shots,
                        args.vectors, progress=not args.quiet)
    how = ("the boundary head" if heads else f"change points of the {args.vectors} vectors")
    used = model if heads or args.vectors == "context" else None
    out = write_scenes(frame, args.out, store, used, how)
    print(f"wrote {len(frame)} scenes of {frame.title_id.nunique()} titles ({how}) to {out}")
    single = int((frame.groupby("title_id").size() == 1).sum())
    if heads is not None and single > frame.title_id.nunique() / 2:
        cv = next(h.info["cv"] for h in heads.heads.values() if h.task.kind == "boundary")
        print(f"note: in {single} titles the boundary head never reached probability 0.5 (its "
              f"cross-validated {cv['metric']} is {cv['score']:.3f}): it is weak on this "
              "catalog; change points (no --heads) may serve better", file=sys.stderr)


def _export(args: argparse.Namespace) -> None:
    from mediafm.export import export
    from mediafm.store import ShotStore

    store = ShotStore(args.store, media_root=args.media_root)
    out = export(store, args.out, args.format, args.title or None, args.scenes, args.moments)
    print(f"wrote {out} ({args.format})")


def _index(args: argparse.Namespace) -> None:
    from mediafm.search import add_to_index, build_index, kind_limits, remove_from_index

    if args.add and args.remove:
        raise ValueError("--add and --remove are two changes: make one at a time")
    if args.add:
        out = add_to_index(args.out, args.add, args.store)
    elif args.remove:
        out = remove_from_index(args.out, args.remove)
    else:
        out = build_index(args.embeddings, args.out, args.store, args.recall,
                          progress=not args.quiet, **kind_limits(args.kind))
    meta = json.loads((out / "index.json").read_text())
    text = out / "text" / "index.json"
    print(f"index {out}: {meta['n']:,} {meta['kind']}"
          + (f" ({meta['dim']}-d, {meta['index']['type']} {json.dumps(meta['index'])})"
             if meta["n"] else "")
          + (f"; {json.loads(text.read_text())['n']:,} shots' text vectors (search by words)"
             if text.is_file() else ""))


def _search(args: argparse.Namespace) -> None:
    from mediafm.query import search_shot, search_text
    from mediafm.search import Index
    from mediafm.store import ShotStore

    if not args.index and not args.store:
        raise ValueError("give --index INDEX and / or --store STORE to search")
    index = Index.load(args.index) if args.index else None
    if args.text is not None:
        store = ShotStore(args.store or _index_store(index))
        hits = search_text(store, args.text, args.k, index)
    elif args.store and (index is None or index.kind == "shots"):
        hits = search_shot(ShotStore(args.store), args.title, args.shot, args.k, index,
                           args.other_titles)
    else:
        hits = index.search(args.title, args.shot, args.clip, args.k, args.other_titles)
    if args.json:
        print(hits.to_json(orient="records", indent=1))
    else:
        print(hits.to_string(index=False, max_colwidth=60))


def _index_store(index) -> str:
    """The store an index was built from (its text needs the store's encoder and lines)."""
    path = (index.meta.get("store") or {}).get("path")
    if not path:
        raise ValueError(f"the index {index.path} does not record its store: give --store")
    return path


def _serve(args: argparse.Namespace) -> None:
    from mediafm.serve import serve_cli

    serve_cli(args)


def register(sub) -> None:
    s = sub.add_parser("heads", help="fit one linear head per labelled task on in-context "
                       "clip embeddings (calibrated, cross-validated) and save them")
    s.add_argument("--store", required=True)
    s.add_argument("--model", required=True, help="run directory or model directory")
    s.add_argument("--labels", required=True, help="LABELS.parquet, as for probe")
    s.add_argument("--out", required=True, help="heads directory to write")
    s.add_argument("--task", action="append", default=[], metavar="NAME=KIND",
                   help="declare a task's kind: multilabel, binary, ranking, boundary")
    s.add_argument("--output", choices=list(READOUTS), default=DEFAULT_READOUT,
                   help="the readout (see embed)")
    s.add_argument("--no-title", action="store_true",
                   help="features without the title part (mean fused vector and context) "
                   "beside the clip")
    s.add_argument("--folds", type=Number(int, 2, 100), default=5,
                   help="title-grouped cross-validation folds (ranking tasks: 10)")
    s.add_argument("--workers", type=Number(int, 0), default=0,
                   help="tasks fitted side by side in this many processes, one thread each "
                   "(0: one per CPU core)")
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
    s.add_argument("--other-store", action="store_true",
                   help="apply heads fitted on another store to this one although this store "
                   "does not record its encoders (you vouch its vectors come from the same)")
    s.add_argument("--device")
    s.set_defaults(func=_predict)
    _register_moments_and_search(sub)


def _register_moments_and_search(sub) -> None:
    s = sub.add_parser("moments", help="top non-overlapping moments per title from "
                       "predictions: highlights and ad-break candidates")
    s.add_argument("--pred", required=True, help="shot-level PRED.parquet from predict")
    s.add_argument("--store", required=True, help="the store (for shot times)")
    s.add_argument("--out", required=True, help="MOMENTS.parquet")
    s.add_argument("--task", action="append", default=[],
                   help="a binary/ranking task (highlights) or boundary task (ad breaks); "
                   "none: all of them")
    s.add_argument("-k", type=POSITIVE, default=5, help="moments per title and task")
    s.add_argument("--relevance", help="a multilabel task that says what follows an ad "
                   "break (e.g. ad_relevancy)")
    s.add_argument("--scenes", help="SCENES.parquet (mediafm scenes): ad breaks between "
                   "scenes, never inside one")
    s.set_defaults(func=_moments)

    _register_timelines(sub)
    _register_index_and_search(sub)


def _register_timelines(sub) -> None:
    from mediafm import scenes
    from mediafm.export import FORMATS

    s = sub.add_parser("scenes", help="group each title's shots into scenes: from a "
                       "boundary head, or change points of the shot vectors")
    s.add_argument("--store", required=True)
    s.add_argument("--model", help="a run or model directory (for --heads or --vectors "
                   "context)")
    s.add_argument("--heads", help="heads with a boundary task: scenes start where it peaks")
    s.add_argument("--vectors", choices=scenes.VECTORS, default="fused",
                   help="without --heads, whose change points: the fused vectors (measured "
                   "best) or the model's contextual embeddings")
    s.add_argument("--out", required=True, help="SCENES.parquet: title_id, scene, first_shot, "
                   "last_shot, start_s, end_s, score")
    s.add_argument("--window", type=Number(int, 1, 50), nargs="+", default=scenes.WINDOWS,
                   metavar="N",
                   help="shots a side compared at each change point; several: one scale "
                   "each, their robust z-scores averaged")
    s.add_argument("--bar", type=Number(float, 0, 100), default=scenes.BAR,
                   help="robust z-score (averaged over the windows) a change point must "
                   "reach")
    s.add_argument("--min-shots", type=Number(int, 1, 1000), default=scenes.MIN_SHOTS,
                   help="the shortest scene, in shots")
    s.set_defaults(func=_scenes)

    s = sub.add_parser("export", help="a timeline an editor opens: shots (or scenes) as clips "
                       "of the source media with frame-exact ranges, moments as markers")
    s.add_argument("--store", required=True)
    s.add_argument("--format", required=True, choices=FORMATS, help="otio "
                   "(OpenTimelineIO), edl (CMX 3600), fcpxml (Final Cut Pro XML), csv, chapters "
                   "(WebVTT when --out ends in .vtt, else FFmetadata)")
    s.add_argument("--out", required=True)
    s.add_argument("--title", action="append", default=[], help="a title to export "
                   "(repeatable; none: every title; edl and chapters hold one)")
    s.add_argument("--scenes", help="SCENES.parquet: scenes as the clips (or the chapters)")
    s.add_argument("--moments", help="MOMENTS.parquet: moments as markers (or the chapters)")
    s.add_argument("--media-root", metavar="DIR", help="where the recorded media are now, when "
                   "the store and its media moved together")
    s.set_defaults(func=_export)


def _register_index_and_search(sub) -> None:
    s = sub.add_parser("index", help="build a FAISS index over shot, clip or title "
                       "embeddings (exact when small, IVF with measured recall when large), "
                       "and over a store's text vectors; add or remove titles")
    s.add_argument("--embeddings", help="an embeddings Parquet file")
    s.add_argument("--out", required=True, help="index directory (with --add / --remove: the "
                   "index to change)")
    s.add_argument("--store", help="the store the shots are of: adds shot times, checks them, "
                   "and indexes its text vectors for search by words")
    s.add_argument("--recall", type=Number(float, 0.01, 1), default=0.95,
                   help="approximate index: the recall@10 to reach (sets nprobe)")
    s.add_argument("--kind", choices=("auto", "exact", "ivf", "ivfpq"), default="auto",
                   help="auto (default): exact up to 50k rows, IVF up to 2 GiB of vectors, "
                   "then compressed (IVF-PQ with exact re-ranking from a memory-mapped "
                   "vectors.npy); or force one")
    s.add_argument("--add", metavar="EMB", help="add (or replace) the titles of this "
                   "embeddings file in the index --out, without rebuilding it")
    s.add_argument("--remove", metavar="TITLE", help="remove a title from the index --out")
    s.set_defaults(func=_index)

    s = sub.add_parser("search", help="shots like a shot, or shots where words are said: "
                       "nearest neighbours with times, scores per modality and the line")
    s.add_argument("--index", help="an index (mediafm index)")
    s.add_argument("--store", help="search this store (exactly, up to 200k shots, without "
                   "--index); shots come with their line of text and per-modality scores")
    s.add_argument("--text", help="find shots by what is said (the store's text encoder; a "
                   "CLIP video encoder also finds what is shown)")
    s.add_argument("--title", help="the query's title (with --shot for a shot index)")
    s.add_argument("--shot", type=Number(int, 0))
    s.add_argument("--clip", help="the query clip (clip index)")
    s.add_argument("-k", type=Number(int, 1, 10_000), default=10)
    s.add_argument("--other-titles", action="store_true",
                   help="exclude the query's own title")
    s.add_argument("--json", action="store_true", help="JSON records (title_id, shot_index, "
                   "start_s, end_s, score, line, words, modalities, rank) instead of a table")
    s.set_defaults(func=_search)

    s = sub.add_parser("serve", help="the explorer: a local web app over a store, predictions "
                       "and search (FastAPI + uvicorn)")
    s.add_argument("--store", required=True)
    s.add_argument("--model", help="a run or model directory (predictions with --heads; "
                   "without --index, search over its contextual embeddings)")
    s.add_argument("--heads", help="heads directory: prediction lanes and moments")
    s.add_argument("--pred", help="precomputed PRED.parquet from predict (instead of "
                   "--model/--heads)")
    s.add_argument("--index", help="a shot index for search (else exact search over the "
                   "store: contextual embeddings with --model, fused vectors without)")
    s.add_argument("--media-root", metavar="DIR", help="where the recorded media are now, when "
                   "the store and its media moved together")
    s.add_argument("--scenes", help="SCENES.parquet (mediafm scenes): bands on the timeline, "
                   "ad breaks between scenes")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=8765)
    s.add_argument("--workers", type=Number(int, 1, 64), default=1,
                   help="server processes sharing the port, forked once the catalog is "
                   "loaded (a team: one per core; each caches its own pages)")
    s.add_argument("--token", help="require this bearer token on every request (none: "
                   "$MEDIAFM_TOKEN)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name the explorer answers to besides localhost, 127.0.0.1 and "
                   "--host (a DNS-rebinding page cannot use it); repeatable")
    s.set_defaults(func=_serve)
