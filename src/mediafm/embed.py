"""Contextual shot and clip embeddings from a trained MediaFM (MEDIAFM.md §4).

A title longer than ``max_shots`` is covered by windows overlapping by half; each shot takes
its embedding from the window in which it sits most centrally, so every shot sees as much
context on both sides as the model allows.

Clips are embedded *in context* (the whole title goes through the model, then the clip's shots
are mean-pooled) or *clip-only* (only the clip's shots go in). Both keep the title's [GLOBAL]
token: the comparison isolates shot context, not title metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mediafm import jobs
from mediafm.atomic import atomic_file, locked
from mediafm.errors import Mismatch
from mediafm.jobs import Outcome, Staging, Where
from mediafm.model import MediaFM
from mediafm.readouts import DEFAULT_READOUT, MODES, READOUTS, TITLE_POOLS, readout_stamp
from mediafm.sequences import collate, title_clock, window_starts
from mediafm.store import ShotStore, StoreError, vector_array


def _best_window(n: int, starts: list[int], width: int) -> np.ndarray:
    """For each of n shots, the index of the window where it is most central."""
    pos = np.arange(n)[:, None]
    s = np.asarray(starts)[None]
    inside = (pos >= s) & (pos < s + width)
    dist = np.where(inside, np.abs(pos - (s + (width - 1) / 2)), np.inf)
    return dist.argmin(axis=1)


@torch.no_grad()
def embed_sequences(model: MediaFM, seqs: list[np.ndarray], title_emb: np.ndarray,
                    output: str = DEFAULT_READOUT, batch_size: int = 16,
                    device: torch.device | str | None = None) -> list[np.ndarray]:
    """Contextual embeddings of whole sequences (any length): one (n_i, dim) array each.

    seqs: fused vectors (n_i, fused_dim) per title; title_emb: (len(seqs), title_dim).
    """
    if output not in READOUTS:
        raise ValueError(f"output must be one of {READOUTS}, got {output!r}")
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    windowed, change, scene, title = stitched_parts(output)  # the whole title's: once stitched
    width = model.config.max_shots
    stride = max(1, width // 2)
    windows = []  # (seq index, window index, start, length)
    plans = []
    for i, s in enumerate(seqs):
        starts = window_starts(len(s), width, stride)
        plans.append(starts)
        windows += [(i, w, st, min(width, len(s))) for w, st in enumerate(starts)]
    windows.sort(key=lambda j: -j[3])  # similar lengths together: less padding
    results: dict[tuple[int, int], np.ndarray] = {}
    for b in range(0, len(windows), batch_size):
        chunk = windows[b:b + batch_size]
        clock = title_clock(np.array([st for _, _, st, _ in chunk]),
                            np.array([ln for *_, ln in chunk]),
                            np.array([len(seqs[i]) for i, *_ in chunk]), chunk[0][3])
        batch = collate([seqs[i][st:st + ln] for i, _, st, ln in chunk],
                        title_emb[[i for i, *_ in chunk]], clock)
        out = readout(model, batch["shots"].to(device), batch["lengths"].to(device),
                      batch["title_emb"].to(device), windowed,
                      batch["clock"].to(device)).float().cpu().numpy()
        for k, (i, w, _, ln) in enumerate(chunk):
            results[(i, w)] = out[k, :ln]
    embeddings = []
    for i, s in enumerate(seqs):
        starts = plans[i]
        if len(starts) == 1:
            emb = results[(i, 0)]
        else:
            best = _best_window(len(s), starts, width)
            emb = np.stack([results[(i, w)][p - starts[w]] for p, w in enumerate(best)])
        whole = [change_block(model, emb, windowed)] if change else []
        whole += [scene_block(model, s, emb, scene)] if scene else []
        whole += [title_block(model, emb)] if title else []
        embeddings.append(np.hstack([emb, *whole]) if whole else emb)
    return embeddings


CHANGE = "+change"  # after the windowed blocks: each one's distance to the previous shot's
SCENE = "+scene"  # the readouts' suffix for the scene block (of the context)
SCENE_INPUT = "+scene-input"  # before it: the scene block of the input projection too
SCENE_FUSED = "+scene-fused"  # or that of the fused vectors themselves
TITLE = "+title"  # after them: the title's mean context vector


def stitched_parts(output: str) -> tuple[str, bool, tuple[str, ...], bool]:
    """(what a window reads out, whether the change block follows it, the scene blocks the
    whole title adds after them, whether the title block follows those). Scene blocks are
    named by what they average over the scene: ``context``, after ``input`` (the input
    projection) or ``fused`` (the fused vectors)."""
    title = output.endswith(TITLE)
    output = output.removesuffix(TITLE)
    scene: tuple[str, ...] = ()
    if output.endswith(SCENE):
        output, scene = output.removesuffix(SCENE), ("context",)
        for first, suffix in (("input", SCENE_INPUT), ("fused", SCENE_FUSED)):
            if output.endswith(suffix):
                output, scene = output.removesuffix(suffix), (first, "context")
                break
    change = output.endswith(CHANGE)
    return output.removesuffix(CHANGE), change, scene, title


def change_block(model: MediaFM, emb: np.ndarray, windowed: str) -> np.ndarray:
    """(n, blocks): for each block of the windowed readout ``emb`` (input projection,
    context, visible, ahead), each shot's cosine distance to the previous shot's
    (``changepoints.cosine_change``; 0 for the first).

    Why: a scene boundary is a change between two shots, and a linear probe of pooled
    vectors cannot compute how far one vector is from another: without it MediaFM's
    boundary AP sat near chance on the catalog family (0.134 on draw 0, chance 0.073) while
    the fused vector's own distance to the previous shot found nearly every scene start
    (0.978: the naive baseline ``probes.features.CHANGE``). With the distances of what the
    model reads around each shot beside it, 0.998 there and ahead of that baseline on the
    noisier draws too (benchmarks/README.md, *Context on catalogs nobody tuned for*)."""
    from mediafm.changepoints import block_changes

    return block_changes(emb, readout_blocks(model, windowed))


def scene_block(model: MediaFM, fused: np.ndarray, emb: np.ndarray,
                parts: tuple[str, ...] = ("context",)) -> np.ndarray:
    """Each shot's mean over its scene of ``parts``, side by side: ``context`` (its mean
    context vector, hidden columns), after ``input`` (the mean input projection, hidden) or
    ``fused`` (the mean fused vector, fused_dim), the scenes of the whole title cut at the change
    points of its fused vectors as ``mediafm scenes`` cuts them (``changepoints.scene_starts``
    at its default windows and bar; files record the cut, ``readouts.readout_stamp``);
    ``emb``: the title's readout, [input projection ; context ; ...].

    Why: tone, intensity and appeal belong to a scene, and a short clip's own context vectors
    carry its set-ups and action as much as its scene. Against the same models read without
    it (docs/design.md, *Why scene*): tone better on 4 of 4 tuning draws of the catalog
    family and 6 of 8 held-out ones (+0.036 and +0.030 where scenes are long and clear; the
    median margin over the best naive baseline +0.010 -> +0.019), boundary on 5 of 8 (up to
    +0.028), the other tasks within ±0.013 a draw. On the noisiest catalogs the change points
    are weak and it adds little.

    Why the input projection's scene mean too (``+scene-input+scene``): where scenes are long,
    the moving average of the fused vectors over ±k shots spans a scene and beats a mean of
    context vectors alone on tone; with the scene's mean of what its shots show beside it, tone
    was won on 8 of 8 held-out catalogs at 60 and at 240 titles (6 and 7 with ``+scene``),
    at a small cost to clip-worthiness (docs/design.md, *Why scene-input*).

    Why the fused vectors' scene mean instead (``+scene-fused+scene``): the input projection
    squeezes fused_dim columns into hidden ones, trained for what the model predicts, and
    what it drops can be what a probe wants of a whole scene (docs/design.md, *Why
    scene-fused*).
    """
    from mediafm.changepoints import BAR, WINDOWS, scene_means, scene_starts

    hidden = model.config.hidden
    starts = scene_starts(fused, WINDOWS, BAR)
    of = {"input": emb[:, :hidden], "context": emb[:, hidden:2 * hidden], "fused": fused}
    return np.hstack([scene_means(np.asarray(of[p], np.float32), starts) for p in parts])


def title_block(model: MediaFM, emb: np.ndarray) -> np.ndarray:
    """(n, hidden): the title's mean context vector, the same for every shot; ``emb``: the
    title's readout, [input projection ; context ; ...].

    Why: a clip's place among its title's clips is what a label chosen per title asks for
    (clip-worthiness: the 8 most appealing clips of each title), and every shot of a title
    carries the title's own direction, so "more exciting than this title's usual" needs the
    title's usual beside the clip. The naive baseline has it (the moving average with the
    fused title mean beside it); the scene blocks have the scene's, not the title's.
    Measured on the catalog family (benchmarks/README.md, *Context on catalogs nobody tuned
    for*; docs/design.md, *Why title*).
    """
    hidden = model.config.hidden
    return np.broadcast_to(emb[:, hidden:2 * hidden].mean(0), (len(emb), hidden))


def readout(model: MediaFM, shots: torch.Tensor, lengths: torch.Tensor,
            title_emb: torch.Tensor, output: str, clock: torch.Tensor | None = None
            ) -> torch.Tensor:
    """(B, L, dim) per-shot embeddings of a padded batch (``clock``: as ``MediaFM.forward``),
    by readout:

    - ``hidden``: the final hidden state (the spec's contextual embedding);
    - ``output``: the output projection, in fused dims;
    - ``context``: for every shot, the hidden state when that shot is masked: what the title
      around it says, the quantity masked shot modeling trains (ours). Shots are masked in
      ``k = max(2, round(1 / mask_ratio))`` passes, every k-th shot at a time, so each pass
      sees about the mask density of training; the pass with nothing masked is run only for
      the readouts that use the hidden state, so ``input+context`` costs k passes, not k + 1;
    - ``input+hidden`` / ``input+context``: the input projection of the shot's own fused
      vector beside it (what the shot shows, and what its context says);
    - ``fused+context``: the shot's fused vector itself beside the context (no bottleneck
      through the input projection: fused_dim + hidden columns);
    - ``input+context+hidden``: all three, [input projection ; context ; hidden]: the context
      alone sees past a scene break, the hidden state (trained where ``keep_noise`` asks the
      model to clean up a shot it can see) says what this shot is among its neighbours;
    - ``input+context+visible``: [input projection ; context ; visible], where visible is the
      shot's hidden state in the masked passes that leave it visible (their mean; k - 1 of
      them): what the model makes of the shot while it has to fill in every k-th shot around
      it, read off the very passes the context comes from, so no extra pass. Measured on
      held-out catalogs (benchmarks/README.md, catalog families), it is ahead of the plain
      hidden state on clip-worthiness and popularity, partly by carrying where the shot sits
      in its title, and level elsewhere;
    - ``input+context+visible+ahead``: the same and the *next* shot's context
      vector, what the title around it says comes next (zeros after the title's last shot).
      A shot's own context is filled in from its own scene, so nothing in it says what
      follows a scene break: the clips before an ad break, whose label is the tone of the
      scene after it, scored 1 of 8 held-out catalogs against the moving average (which
      reaches past the clip), and 7 of 8 (+0.110) with the next shot's context; boundaries 7
      → 8 of 8, the other tasks level. Same passes;
    - ``input+context+visible+ahead+scene``: the same and the mean context vector of the
      shot's scene (``scene_block``). The scenes are the whole title's, so ``embed_sequences``
      adds that block once a title's windows are stitched; this function gives the rest;
    - ``input+context+visible+ahead+scene-input+scene``: the same with the scene's mean
      input projection before its mean context vector (``scene_block``, two blocks);
    - ``input+context+visible+ahead+scene-input+scene+title``: the same and the title's mean
      context vector (``title_block``), also added by ``embed_sequences`` once the title is
      stitched;
    - ``...+scene-fused+scene+title``: the scene's mean fused vector in place of its mean
      input projection (``scene_block`` says why); ``...+ahead+change+scene-fused+scene+title``
      (the default): ``change_block`` after ahead, added once the title is stitched.
    """
    windowed, change, scene, title = stitched_parts(output)
    if change or scene or title:
        raise ValueError(f"{output!r} needs the whole title for its change, scene and title "
                         f"blocks (embed_sequences adds them); read out {windowed!r}")
    if output in ("hidden", "output", "input+hidden", "input+context+hidden"):
        h, pred = model(shots, lengths, title_emb, None, clock)  # the pass with nothing masked
    if output in ("hidden", "output", "input+hidden"):
        out = {"hidden": h, "output": pred}.get(output)
        return out if out is not None else torch.cat([model.input_proj(shots), h], dim=-1)
    passes = max(2, round(1 / model.config.mask_ratio))
    L = shots.shape[1]
    real = torch.arange(L, device=shots.device)[None] < lengths[:, None]
    ctx = visible = None
    for r in range(passes):
        mask = real & (torch.arange(L, device=shots.device) % passes == r)[None]
        h_masked, _ = model(shots, lengths, title_emb, mask, clock)
        ctx = torch.where(mask[..., None], h_masked, 0.0 if ctx is None else ctx)
        if output.startswith("input+context+visible"):
            seen = torch.where(mask[..., None], 0.0, h_masked)
            visible = seen if visible is None else visible + seen
    if output == "context":
        return ctx
    if output == "input+context+visible":
        return torch.cat([model.input_proj(shots), ctx, visible / (passes - 1)], dim=-1)
    if output == "input+context+visible+ahead":
        ahead = torch.roll(ctx, -1, dims=1)  # the next shot's context; none after the last
        ahead = torch.where((torch.arange(L, device=shots.device)[None] < lengths[:, None] - 1
                             )[..., None], ahead, 0.0)
        return torch.cat([model.input_proj(shots), ctx, visible / (passes - 1), ahead], dim=-1)
    if output == "input+context+hidden":
        return torch.cat([model.input_proj(shots), ctx, h], dim=-1)
    own = shots if output == "fused+context" else model.input_proj(shots)
    return torch.cat([own, ctx], dim=-1)


def readout_blocks(model: MediaFM, output: str, fused_blocks: tuple[int, ...] = ()
                   ) -> tuple[int, ...]:
    """Column counts of the readout's blocks, for per-block probe weights: one of hidden per
    part of [input proj ; ...], (*fused_blocks, hidden) for [fused ; context] (``fused_blocks``:
    the store's modality widths, or one block of fused_dim), and the same for a scene's mean
    fused vector (``+scene-fused``)."""
    fused, hidden = fused_blocks or (model.config.fused_dim,), model.config.hidden
    if output == "fused+context":
        return (*fused, hidden)
    if not output.startswith("input+"):
        return ()
    windowed = stitched_parts(output)[0].count("+") + 1  # one distance each: ``change_block``
    return tuple(w for part in output.split("+") for w in (
        fused if part == SCENE_FUSED[1:] else (windowed,) if part == CHANGE[1:] else (hidden,)))


def _own_width(model: MediaFM, output: str) -> int:
    """Columns of the readout that show the shot itself (input projection or fused vector)."""
    if output.startswith("input+"):
        return model.config.hidden
    return model.config.fused_dim if output.startswith("fused+") else 0


# what title_part computes (recorded by heads; a +title readout has the context mean already)
TITLE_PART = "fused mean + context mean"


def _context_width(model: MediaFM, output: str) -> int:
    """Columns of the readout's context block: the one after the shot's own, or the whole
    readout when it has no own block (``context``, ``hidden``, ``output``)."""
    return model.config.fused_dim if output == "output" else model.config.hidden


def title_part(model: MediaFM, fused: np.ndarray, emb: np.ndarray, output: str) -> np.ndarray:
    """What ``with_title`` puts beside a clip: [mean fused vector ; mean of the readout's
    context block] over the whole title.

    Why the fused mean and not the mean of the input projection: the title part is one vector
    a title, so there is no reason to squeeze it through the model's input bottleneck (hidden
    columns for fused_dim), and that bottleneck loses what the title's shots show as a whole:
    measured on the clean catalog (seed 0), genre from the title mean of the projection scores
    0.524 against 0.583 from the fused mean. The context columns say what the model read
    around each shot.

    Why the context block alone, also for ``input+context+hidden``: a title's mean hidden
    state says again what its mean context says, and on a small catalog (24 titles, 11
    catalog seeds, a 30-step model) the heads' genre AP with it beside the context mean was
    below the ``input+context`` heads' on 9 seeds of 11 (seed 3: 0.277 against 0.340); with
    the context mean alone, 0.330.

    A readout with the title block (``+title``) already carries the title's mean context on
    every shot, so its title part is the fused mean alone (the same column twice would only
    split one block's weight in two).
    """
    if output.endswith(TITLE):
        return fused.mean(axis=0)
    own = _own_width(model, output)
    return np.concatenate([fused.mean(axis=0),
                           emb[:, own:own + _context_width(model, output)].mean(axis=0)])


def title_blocks(model: MediaFM, output: str, fused_blocks: tuple[int, ...] = ()
                 ) -> tuple[int, ...]:
    """Column counts of ``title_part``'s blocks: the fused vector's, then the context's (none
    for a readout with the title block)."""
    fused = fused_blocks or (model.config.fused_dim,)
    return fused if output.endswith(TITLE) else (*fused, _context_width(model, output))


def vector_blocks(model: MediaFM, output: str, with_title: bool = False, pool: str = "mean"
                  ) -> list[int]:
    """Column counts of an embeddings file's vectors by block (the readout's, the fused
    vector as one block, then the title part's or the [CLS] state's), recorded as the file's
    ``blocks`` so an index can weigh each block alike (``fusion.block_norm``); [] for a
    one-block vector. ``pool``: a title embedding's (``embed_titles``)."""
    own = list(readout_blocks(model, output)) or [_context_width(model, output)]
    if pool == "cls":
        own = [model.config.hidden]
    elif pool == "both":
        own.append(model.config.hidden)
    blocks = own + (list(title_blocks(model, output)) if with_title else [])
    return blocks if len(blocks) > 1 else []


def feature_width(model: MediaFM, output: str, with_title: bool) -> int:
    """Columns of a clip's features (heads): the readout, then the title part if asked."""
    width = sum(readout_blocks(model, output)) or _context_width(model, output)
    return width + (sum(title_blocks(model, output)) if with_title else 0)


def title_batches(store: ShotStore, title_ids: list[str] | None, max_shots: int
                   ) -> Iterator[tuple[list[str], list[np.ndarray], np.ndarray]]:
    """Titles grouped so one group is about ``max_shots * 16`` shots (bounded memory)."""
    emb = store.title_embeddings()
    ids, seqs, n = [], [], 0
    for title_id, fused in store.iter_titles("fused", title_ids):
        ids.append(title_id)
        seqs.append(fused)
        n += len(fused)
        if n >= max_shots * 16:
            yield ids, seqs, emb[[store.title_row(t) for t in ids]]
            ids, seqs, n = [], [], 0
    if ids:
        yield ids, seqs, emb[[store.title_row(t) for t in ids]]


def embed_store(model: MediaFM, store: ShotStore | str | os.PathLike, out: str | os.PathLike,
                output: str = DEFAULT_READOUT, batch_size: int = 16, progress: bool = True,
                where: Where | None = None, model_path: str | os.PathLike | None = None
                ) -> Path:
    """Write one contextual embedding per shot: a shot-embeddings artifact (title_id,
    shot_index, embedding; ``artifacts``) that records the readout, model and store.

    The unit of work is one part of the store (its titles whole); each finished part is
    staged atomically beside ``out`` (``jobs``), so a rerun resumes where a killed one
    stopped; ``where`` runs the parts in worker processes or on a Ray cluster, with the same
    output. Memory is one part's titles.
    """
    from mediafm import artifacts
    from mediafm.progress import progress_bar

    if output not in READOUTS:
        raise ValueError(f"output must be one of {READOUTS}, got {output!r}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    store = store if isinstance(store, ShotStore) else ShotStore(store)
    check_store(model, store)
    out = Path(out).absolute()
    stage = EmbedStage(model, str(store.path.absolute()), output, batch_size)
    meta = {**readout_stamp(output), "model": artifacts.model_stamp(model, model_path),
            "store": artifacts.store_stamp(store), "blocks": vector_blocks(model, output)}
    with locked(out):
        staging = Staging(out.parent / f".{out.name}.parts")
        staging.check_settings(embed_settings(model, store, output), restage=True)
        parts = store.parts()
        shots = {p: sum(store.n_shots(t) for t in store.titles_in(p)) for p in parts}
        todo = [p for p in parts if not staging.is_done(stage.key(p))]
        bar = progress_bar(total=store.info.n_shots, desc="embed", unit="shot",
                           disable=not progress,
                           initial=store.info.n_shots - sum(shots[p] for p in todo))
        jobs.run(stage, parts, staging, where or Where(),
                 lambda outcome: bar.update(outcome.record["rows"]), progress=False)
        bar.close()
        with artifacts.writer("shot_embeddings", out, **meta) as write:  # memory: one part
            for part in parts:
                write(pq.read_table(staging.path(stage.key(part), ".parquet")))
        staging.clear()
    return out


def embed_settings(model: MediaFM, store: ShotStore, output: str) -> dict:
    """What a staged part depends on: parts staged under others are made again."""
    return {**readout_stamp(output), "model": model.fingerprint(), "store": store.fingerprint}


@dataclass(frozen=True)
class EmbedStage:
    """Shot embedding as a stage of the job engine: a unit is one part of the store."""

    model: MediaFM
    store: str
    output: str
    batch_size: int
    name: str = "embed"
    failures: tuple[type[BaseException], ...] = ()  # a part that fails is a bug: stop

    def key(self, part: str) -> str:
        return Path(part).stem

    def setup(self, threads: int | None) -> tuple[MediaFM, ShotStore]:
        if threads is not None:
            torch.set_num_threads(threads)
        return self.model.eval(), ShotStore(self.store)

    def run(self, state: tuple[MediaFM, ShotStore], part: str, staging: Staging,
            progress: bool) -> Outcome:
        model, store = state
        table = embed_part(model, store, part, self.output, self.batch_size)
        with atomic_file(staging.path(self.key(part), ".parquet")) as tmp:
            pq.write_table(table, tmp)
        staging.finish(self.key(part), {"rows": table.num_rows})
        return Outcome(self.key(part), {"rows": table.num_rows})


def embed_part(model: MediaFM, store: ShotStore, part: str, output: str = DEFAULT_READOUT,
               batch_size: int = 16) -> pa.Table:
    """(title_id, shot_index, embedding) of every shot of one part, in store order."""
    tables = []
    for ids, seqs, title_emb in title_batches(store, store.titles_in(part),
                                               model.config.max_shots):
        embs = embed_sequences(model, seqs, title_emb, output, batch_size)
        tables.append(pa.table({
            "title_id": pa.array(np.repeat(ids, [len(s) for s in seqs]), pa.string()),
            "shot_index": pa.array(np.concatenate([np.arange(len(s)) for s in seqs]),
                                   pa.int32()),
            "embedding": vector_array(np.concatenate(embs))}))
    return pa.concat_tables(tables)


@torch.no_grad()
def embed_titles(model: MediaFM, store: ShotStore | str | os.PathLike, pool: str = "mean",
                 output: str = DEFAULT_READOUT, batch_size: int = 16, progress: bool = True
                 ) -> pd.DataFrame:
    """(title_id, embedding): one vector per title, for cold start and "more like this".

    ``mean``: the mean of the title's contextual shot embeddings (``output`` readout), the
    default; ``cls``: the final [CLS] state (averaged over the title's windows; note that masked
    shot modeling puts no loss on [CLS], so it is only as good as what flows into it); ``both``:
    [mean ; cls].
    """
    from mediafm.progress import progress_bar

    if pool not in TITLE_POOLS:
        raise ValueError(f"pool must be one of {TITLE_POOLS}, got {pool!r}")
    store = store if isinstance(store, ShotStore) else ShotStore(store)
    check_store(model, store)
    device = next(model.parameters()).device
    ids_all, vecs = [], []
    bar = progress_bar(total=len(store.titles), desc="embed titles", unit="title",
                       disable=not progress)
    for ids, seqs, title_emb in title_batches(store, None, model.config.max_shots):
        parts = []
        if pool in ("mean", "both"):
            parts.append(np.stack([e.mean(axis=0) for e in embed_sequences(
                model, seqs, title_emb, output, batch_size)]))
        if pool in ("cls", "both"):
            width = model.config.max_shots
            cls = []
            for s, t in zip(seqs, title_emb, strict=True):
                starts = window_starts(len(s), width, max(1, width // 2))
                n = min(width, len(s))
                clock = title_clock(np.array(starts), np.full(len(starts), n),
                                    np.full(len(starts), len(s)), n)
                batch = collate([s[st:st + width] for st in starts],
                                np.repeat(t[None], len(starts), 0), clock)
                full = model.encode(batch["shots"].to(device), batch["lengths"].to(device),
                                    batch["title_emb"].to(device), None,
                                    batch["clock"].to(device))
                cls.append(full[:, 0].float().mean(0).cpu().numpy())
            parts.append(np.stack(cls))
        ids_all += ids
        vecs.append(np.concatenate(parts, axis=1))
        bar.update(len(ids))
    bar.close()
    return pd.DataFrame({"title_id": ids_all, "embedding": list(np.concatenate(vecs))})


def check_store(model: MediaFM, store: ShotStore) -> None:
    """The model can embed the store: the same fused and title dims and, when the model
    records what it was trained on and this is another store, the same fused modalities and
    encoders. A ``Mismatch`` names both sides."""
    cfg, dims = model.config, store.dims
    seen = model.trained_on or {}
    for key, theirs in (("fused_dim", dims["fused"]), ("title_dim", dims["metadata"])):
        if getattr(cfg, key) != theirs:
            raise Mismatch(f"the model has {key}={getattr(cfg, key)} but the store "
                           f"{store.path} has {theirs}: it was trained on another store "
                           f"({seen.get('store', 'unknown')})")
    if not seen or seen.get("store_fingerprint") == store.fingerprint:
        return
    if list(seen.get("fused_modalities", [])) != list(store.info.fused_modalities):
        raise Mismatch(f"the model was trained on fused modalities "
                       f"{seen.get('fused_modalities')} but the store {store.path} fuses "
                       f"{list(store.info.fused_modalities)}")
    for modality, enc in (seen.get("encoders") or {}).items():
        mine = store.info.encoders.get(modality)
        if modality in ("video", "audio", "text") and mine and (
                mine.get("name"), mine.get("version")) != (enc.get("name"), enc.get("version")):
            raise Mismatch(f"the model was trained on {modality} vectors from "
                           f"{enc.get('name')} {enc.get('version')} but the store "
                           f"{store.path} has {mine.get('name')} {mine.get('version')}")


def validate_clips(clips: pd.DataFrame, store: ShotStore, source: str = "CLIPS") -> None:
    """Clear errors naming the clip: missing columns, unknown titles, bad shot ranges."""
    need = ["clip_id", "title_id", "first_shot", "last_shot"]
    missing = [c for c in need if c not in clips.columns]
    if missing:
        raise StoreError(f"{source}: missing column(s) {missing}")
    if clips.empty:
        raise StoreError(f"{source}: no clips")
    dup = clips["clip_id"].duplicated()
    if dup.any():
        raise StoreError(f"{source}: clip_id {clips['clip_id'][dup].iloc[0]!r} appears twice")
    n_shots = dict(zip(store.titles["title_id"], store.titles["n_shots"], strict=True))
    for row in clips.itertuples():
        if row.title_id not in n_shots:
            raise StoreError(f"{source}: clip {row.clip_id!r}: title {row.title_id!r} is not "
                             f"in the store {store.path}")
        if not 0 <= row.first_shot <= row.last_shot < n_shots[row.title_id]:
            raise StoreError(f"{source}: clip {row.clip_id!r}: shots {row.first_shot}.."
                             f"{row.last_shot} outside title {row.title_id!r} "
                             f"(0..{n_shots[row.title_id] - 1}) or first > last")


def embed_clips(model: MediaFM, store: ShotStore | str | os.PathLike, clips: pd.DataFrame,
                mode: str = "in-context", output: str = DEFAULT_READOUT, batch_size: int = 16,
                progress: bool = True, with_title: bool = False) -> pd.DataFrame:
    """(clip_id, embedding) with the embedding = mean of the clip's contextual shots.

    ``with_title`` (in context only): the whole title beside it (``title_part``), so the
    clip embedding carries its title's context too: [clip mean ; title part].
    """
    from mediafm.progress import progress_bar

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if with_title and mode != "in-context":
        raise ValueError("with_title needs mode='in-context' (clip-only sees no title)")
    store = store if isinstance(store, ShotStore) else ShotStore(store)
    check_store(model, store)
    validate_clips(clips, store)
    by_title = {t: g for t, g in clips.groupby("title_id", sort=False)}
    result: dict[str, np.ndarray] = {}
    bar = progress_bar(total=len(clips), desc=f"embed clips ({mode})", unit="clip",
               disable=not progress)
    for ids, seqs, title_emb in title_batches(store, list(by_title), model.config.max_shots):
        if mode == "in-context":
            embs = embed_sequences(model, seqs, title_emb, output, batch_size)
            for t, e, fused in zip(ids, embs, seqs, strict=True):
                title = [title_part(model, fused, e, output)] if with_title else []
                for c in by_title[t].itertuples():
                    result[c.clip_id] = np.concatenate(
                        [e[c.first_shot:c.last_shot + 1].mean(axis=0), *title])
        else:
            clip_rows = [(c, i) for i, t in enumerate(ids) for c in by_title[t].itertuples()]
            embs = embed_sequences(
                model, [seqs[i][c.first_shot:c.last_shot + 1] for c, i in clip_rows],
                title_emb[[i for _, i in clip_rows]], output, batch_size)
            for (c, _), e in zip(clip_rows, embs, strict=True):
                result[c.clip_id] = e.mean(axis=0)
        bar.update(sum(len(by_title[t]) for t in ids))
    bar.close()
    return pd.DataFrame({"clip_id": clips["clip_id"].tolist(),
                         "embedding": [result[c] for c in clips["clip_id"]]})
