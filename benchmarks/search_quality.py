"""Search by example: what a shot's nearest shots share with it, per readout.

On the presets' catalogs and models (``context_quality.py``'s: the same workdir, so its trained
models are reused), every shot is embedded with each readout (``mediafm embed``'s), and for a
sample of query shots the 10 nearest shots by cosine (exact search, as a small ``mediafm index``
does) are read against the catalog's latent truth: the share from the query's own title, the
share whose scene has the query's tone, and, among the 10 nearest shots of *other* titles (the
"elsewhere in the catalog" search), the share with the query's tone, the share whose title
shares a genre with the query's, and how far apart in their titles they and the query sit (the
mean of |place - query's place|, a place being 0 for a title's first shot and 1 for its last:
a model that knows the place, ``title_clock``, might find other titles' shots by it). The
store's fused vectors (no model) are the baseline; chance is what all other titles' shots
share with the query (a random shot's place is ~1/3 apart).

Each readout of several blocks is searched twice: its rows unit-normed whole (indexes made
before 2026-12-07) and each block scaled to unit norm first (``fusion.block_norm``, what
``mediafm index`` does with embeddings that record their blocks), where the hidden-state blocks
(norm ~7-11) no longer drown the input-side ones (~0.75).

Why: a readout block that is the same on every shot of a title (``+title``) helps the probes,
which compare clips across titles, but pulls a shot's neighbours toward its own title; this
measures by how much, and whether the shots it finds elsewhere are still the right ones.
``--set`` measures a recipe other than the tiny default (its models trained, or reused from the
context suite's runs, as ``context_quality.py --recipes`` would), its rows named with it.

    python benchmarks/search_quality.py                       # clean, noisy x seeds 0, 1
    python benchmarks/search_quality.py --presets noisy --seeds 0   # those catalogs' rows anew
    python benchmarks/search_quality.py --table                      # print the JSON's table
    python benchmarks/search_quality.py --set title_clock=true --readouts DEFAULT  # a recipe
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.readouts import DEFAULT_READOUT

import context_quality  # benchmarks/context_quality.py, beside this script
import harness  # benchmarks/harness.py

FUSED = "fused (no model)"
SCALINGS = {"row": "", "blocks": ", blocks alike"}  # how rows are scaled -> the tables' suffix
# the default before the title block, with it, with the scene's fused vector in place of its
# input projection, with the change block (the default), and the context vector alone
READOUTS = ("input+context+visible+ahead+scene-input+scene",
            "input+context+visible+ahead+scene-input+scene+title",
            "input+context+visible+ahead+scene-fused+scene+title",
            "input+context+visible+ahead+change+scene-fused+scene+title", "context")
METRICS = {"same_title": "own title", "tone": "same tone",
           "tone_elsewhere": "same tone, other titles",
           "genre_elsewhere": "shared genre, other titles",
           "place_elsewhere": "place apart, other titles"}


def places(latent: pd.DataFrame) -> np.ndarray:
    """Each shot's place in its title: 0 the first shot, 1 the last (the title clock's)."""
    index = latent["shot_index"].to_numpy(dtype=float)
    last = latent.groupby("title_id")["shot_index"].transform("max").to_numpy(dtype=float)
    return index / np.maximum(last, 1)


def neighbours(x: np.ndarray, q: np.ndarray, titles: np.ndarray, k: int = 10
               ) -> tuple[np.ndarray, np.ndarray]:
    """(the k nearest rows of each query, itself left out; the k nearest of other titles)."""
    sim = x[q] @ x.T
    sim[np.arange(len(q)), q] = -np.inf
    near = np.argsort(-sim, axis=1)[:, :k]
    sim[titles[None, :] == titles[q][:, None]] = -np.inf
    return near, np.argsort(-sim, axis=1)[:, :k]


def scores(x: np.ndarray, latent: pd.DataFrame, genres: dict[str, set[str]], q: np.ndarray
           ) -> dict[str, float]:
    """The shares of ``METRICS`` over the queries ``q``."""
    titles, tones, place = latent["title_id"].to_numpy(), latent["tone"].to_numpy(), places(latent)
    near, elsewhere = neighbours(x, q, titles)
    shared = [[bool(genres[titles[i]] & genres[titles[j]]) for j in row]
              for i, row in zip(q, elsewhere, strict=True)]
    return {"same_title": float(np.mean(titles[near] == titles[q][:, None])),
            "tone": float(np.mean(tones[near] == tones[q][:, None])),
            "tone_elsewhere": float(np.mean(tones[elsewhere] == tones[q][:, None])),
            "genre_elsewhere": float(np.mean(shared)),
            "place_elsewhere": float(np.mean(np.abs(place[elsewhere] - place[q][:, None])))}


def chance(latent: pd.DataFrame, genres: dict[str, set[str]], q: np.ndarray) -> dict[str, float]:
    """What a random shot of another title shares with the query, on average (the genre
    share over one in 50 of those shots: titles weighted by their length, as for the tone)."""
    titles, tones, place = latent["title_id"].to_numpy(), latent["tone"].to_numpy(), places(latent)
    tone, genre, apart = [], [], []
    for i in q:
        other = titles != titles[i]
        tone.append(np.mean(tones[other] == tones[i]))
        apart.append(np.mean(np.abs(place[other] - place[i])))
        genre.append(np.mean([bool(genres[titles[i]] & genres[t]) for t in titles[other][::50]]))
    return {"tone_elsewhere": float(np.mean(tone)), "genre_elsewhere": float(np.mean(genre)),
            "place_elsewhere": float(np.mean(apart))}


def run(args) -> list[dict]:
    from mediafm.embed import embed_store, vector_blocks
    from mediafm.fusion import block_norm
    from mediafm.model import MediaFM
    from mediafm.search import read_embeddings

    records, info = [], harness.machine()
    work = Path(args.workdir)
    for preset in args.presets:
        for seed in args.seeds:
            d, store, _, _ = context_quality.prepare(work, preset, seed, args.titles)
            latent = pd.read_parquet(d / "catalog" / "latent.parquet")
            titles = pd.read_parquet(d / "catalog" / "titles.parquet")
            genres = {t: set(g) for t, g in zip(titles["title_id"], titles["genres"],
                                                strict=True)}
            q = np.sort(np.random.default_rng(0).choice(len(latent), args.queries, replace=False))
            common = {"preset": preset, "seed": seed, "n_shots": len(latent),
                      "queries": args.queries, **info}
            records.append({**common, "readout": "chance", **chance(latent, genres, q)})
            fused = np.concatenate([store.title_vectors(t) for t in latent["title_id"].unique()])
            records.append({**common, "readout": FUSED, **scores(fused, latent, genres, q)})
            run_dir, _, _ = context_quality.trained(d, store, [f"seed={seed}", *args.set])
            model = MediaFM.from_pretrained(run_dir)
            folder = d / "search_quality" / run_dir.name  # one per trained model (its configs)
            for readout in args.readouts:
                out = folder / f"{readout}.parquet"
                if not out.exists():
                    embed_store(model, store, out, output=readout, progress=False)
                _, keys, x, _ = read_embeddings(out, [])  # rows whole
                at = pd.MultiIndex.from_frame(keys).get_indexer(
                    pd.MultiIndex.from_frame(latent[["title_id", "shot_index"]]))
                if (at < 0).any():
                    raise SystemExit(f"{out}: {int((at < 0).sum())} shots of the catalog "
                                     "are not in it; delete it to embed again")
                x = x[at]  # rows in the latent table's order
                blocks = vector_blocks(model, readout)  # a row's scale is lost in block_norm
                scaled = {"row": x, **({"blocks": block_norm(x, blocks)} if blocks else {})}
                for scaling, x in scaled.items():
                    records.append({**common, "readout": readout, "scaling": scaling,
                                    **({"overrides": args.set} if args.set else {}),
                                    **scores(x, latent, genres, q)})
                    print(f"{preset} seed {seed} {name(readout, scaling, args.set)}: "
                          + ", ".join(f"{k} {records[-1][k]:.3f}" for k in METRICS), flush=True)
    return records


def name(readout: str, scaling: str, overrides: list[str]) -> str:
    """A row's name in the table: the readout, how its rows are scaled, the recipe's changes."""
    return (readout + SCALINGS[scaling] + (f" [{', '.join(overrides)}]" if overrides else "")
            + (" (the index's default)" if readout == DEFAULT_READOUT and scaling == "blocks"
               and not overrides else ""))


def render(records: list[dict]) -> str:
    """Per preset and readout: each share as the mean over the preset's catalogs, with its
    range."""
    df = pd.DataFrame(records)
    df["scaling"] = df["scaling"].fillna("row") if "scaling" in df else "row"
    sets = df["overrides"] if "overrides" in df else pd.Series([None] * len(df), index=df.index)
    df["recipe"] = [", ".join(o) if isinstance(o, list) else "" for o in sets]
    lines = ["| preset | readout | " + " | ".join(METRICS.values()) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for preset, p in df.groupby("preset", sort=False):
        for readout, recipe, scaling in itertools.product(
                ["chance", FUSED, *READOUTS], p["recipe"].unique(), SCALINGS):
            rows = p[(p["readout"] == readout) & (p["scaling"] == scaling)
                     & (p["recipe"] == recipe)]
            if not rows.empty:
                cells = []
                for m in METRICS:
                    v = rows[m].dropna()
                    cells.append("" if v.empty else
                                 f"{v.mean():.3f} ({v.min():.3f}–{v.max():.3f})")
                row = name(readout, scaling, recipe.split(", ") if recipe else [])
                lines.append(f"| {preset} | {row} | " + " | ".join(cells) + " |")
    r = records[0]
    catalogs = sorted({(x["preset"], x["seed"]) for x in records})
    return (f"{len(catalogs)} catalogs ({', '.join(f'{p} {s}' for p, s in catalogs)}; "
            f"{df['n_shots'].min():,}–{df['n_shots'].max():,} shots), {r['queries']} query "
            "shots a catalog, the 10 "
            f"nearest by cosine; a cell is the mean over a preset's catalogs (range).\n\n"
            + "\n".join(lines) + "\n\n" + harness.machine_line(r))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="clean,noisy", type=lambda s: s.split(","))
    p.add_argument("--seeds", default="0,1", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--titles", type=int, default=100)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="train the tiny recipe with this change (as mediafm train --set); its "
                        "rows are named with it")
    p.add_argument("--readouts", default=",".join(READOUTS),
                   type=lambda s: [DEFAULT_READOUT if r == "DEFAULT" else r for r in s.split(",")],
                   help="comma-separated; DEFAULT: the default readout")
    p.add_argument("--workdir", default="/tmp/mediafm-context")
    p.add_argument("--json", default=str(harness.RESULTS / "search_quality.json"))
    p.add_argument("--table", action="store_true", help="only print the table of --json")
    args = p.parse_args()
    out = Path(args.json)
    if not args.table:
        new = run(args)

        def key(r: dict) -> tuple:  # a rerun replaces the rows of its catalogs, recipe, readouts
            return r["preset"], r["seed"], tuple(r.get("overrides", ())), r["readout"]

        ran = {key(r) for r in new}
        old = json.loads(out.read_text()) if out.exists() else []
        records = [r for r in old if key(r) not in ran] + new
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, out)
    print(render(json.loads(out.read_text())))


if __name__ == "__main__":
    main()
