"""Titles -> windows of <= max_shots consecutive shots -> padded batches; shot masking.

Training reads the store through a *plan*: for each epoch, a list of (title, start, length)
windows computed from the title table alone (no vectors read) with a seeded RNG. Batch ``i`` of
the run is a pure function of (seed, i), which is what makes ``--resume`` exact. The plan keeps
locality: parts are visited in shuffled chunks of ``parts_in_memory`` and windows are shuffled
within a chunk, so the loader holds at most that many parts' fused columns in memory however
large the corpus is.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from mediafm.store import ShotStore


def window_starts(n: int, max_shots: int, stride: int) -> list[int]:
    """Starts of windows of ``max_shots`` covering ``n`` shots, ``stride`` apart (last flush)."""
    if n <= max_shots:
        return [0]
    starts = list(range(0, n - max_shots, stride))
    return [*starts, n - max_shots]


def random_windows(n: int, max_shots: int, rng: np.random.Generator, crop: float = 0.0
                   ) -> list[tuple[int, int]]:
    """Training windows of one title: the whole title, or ceil(n / max) random windows.

    ``crop``: the probability that a title that fits is replaced by a random sub-window of at
    least half its length, so its shots do not always sit at the same positions (ours).
    """
    if n <= max_shots:
        if crop > 0 and n > 1 and rng.random() < crop:
            length = int(rng.integers(max(1, n // 2), n + 1))
            return [(int(rng.integers(0, n - length + 1)), length)]
        return [(0, n)]
    k = math.ceil(n / max_shots)
    return [(int(s), max_shots) for s in rng.integers(0, n - max_shots + 1, size=k)]


def steps_per_epoch(n_shots, max_shots: int, batch_size: int) -> int:
    """Steps in one pass over the training windows of titles of ``n_shots`` shots each (a
    title over ``max_shots`` gives ceil(n / max_shots) windows; at least one step)."""
    n_windows = sum(1 if n <= max_shots else math.ceil(n / max_shots) for n in n_shots)
    return max(1, n_windows // batch_size)


def split_titles(title_ids: list[str], val_fraction: float, max_val: int | None = None
                 ) -> tuple[list[int], list[int]]:
    """Deterministic train/val split by a hash of the title id (stable across stores)."""
    h = np.array([int(hashlib.md5(t.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
                  for t in title_ids])
    order = np.argsort(h, kind="stable")
    n_val = round(len(title_ids) * val_fraction) if val_fraction > 0 else 0
    if val_fraction > 0 and len(title_ids) > 1:
        n_val = min(max(n_val, 1), len(title_ids) - 1)
    if max_val is not None:
        n_val = min(n_val, max_val)
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return train, val


def epoch_plan(parts: np.ndarray, n_shots: np.ndarray, rows: list[int], max_shots: int,
               seed: int, epoch: int, parts_in_memory: int, batch_size: int = 1,
               crop: float = 0.0) -> np.ndarray:
    """(N, 3) int64 array of (title row, start, length) windows for one epoch.

    ``parts``, ``n_shots``: per title row, its part number (``ShotStore.part_numbers``) and
    shot count. Within a chunk of parts, windows are shuffled, then sorted by length inside
    groups of 16 batches and cut into batches in shuffled order: batches hold similar lengths
    (little padding) while staying random.
    """
    rng = np.random.default_rng([seed, epoch])
    sub = pd.DataFrame({"part": np.asarray(parts)[rows], "n_shots": np.asarray(n_shots)[rows],
                        "row": rows})
    parts = np.array(sub["part"].unique(), dtype=object)
    rng.shuffle(parts)
    out: list[tuple[int, int, int]] = []
    for c in range(0, len(parts), parts_in_memory):
        chunk_titles = sub[sub["part"].isin(parts[c:c + parts_in_memory])]
        chunk = [(row, s, ln) for row, n in zip(chunk_titles["row"], chunk_titles["n_shots"],
                                                strict=True)
                 for s, ln in random_windows(int(n), max_shots, rng, crop)]
        rng.shuffle(chunk)
        group = 16 * batch_size
        for g in range(0, len(chunk), group):
            ordered = sorted(chunk[g:g + group], key=lambda w: w[2])
            batches = [ordered[b:b + batch_size] for b in range(0, len(ordered), batch_size)]
            for b in rng.permutation(len(batches)):
                out += batches[b]
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def sample_mask(lengths: torch.Tensor, max_len: int, ratio: float,
                generator: torch.Generator, span: float = 1.0) -> torch.Tensor:
    """(B, L) bool: exactly max(1, round(ratio * length)) real shots masked per row.

    ``span`` > 1 masks runs of consecutive shots (lengths geometric with that mean, the last
    run cut to the count), so a masked shot's neighbours are often masked too and the model
    has to read the scene, not copy the next shot (ours; SpanBERT's idea). 1: independent.
    """
    B = lengths.shape[0]
    scores = torch.rand(B, max_len, generator=generator)
    if span > 1:  # every shot of a run gets the run's score; position breaks ties in order
        starts = torch.rand(B, max_len, generator=generator) < 1.0 / span
        starts[:, 0] = True
        run = starts.long().cumsum(dim=1) - 1  # (B, L) run index of each shot
        pos = torch.arange(max_len, dtype=torch.float64)
        scores = scores.double().gather(1, run) + pos * 1e-9
    pad = torch.arange(max_len)[None] >= lengths[:, None]
    scores = scores.masked_fill(pad, 2.0)  # padding sorts last, never masked
    ranks = scores.argsort(dim=1).argsort(dim=1)
    k = torch.clamp((lengths.float() * ratio).round().long(), min=1)
    return ranks < k[:, None]


def title_clock(starts: np.ndarray, lengths: np.ndarray, n_shots: np.ndarray, width: int
                ) -> torch.Tensor:
    """(B, width) float32: the place of each window's shots in their whole title, shot i of n
    at i / (n - 1) (the model's ``title_clock`` input); padding continues the count, clipped
    to 1. Windows are (start, length) in titles of ``n_shots``."""
    pos = np.asarray(starts, np.float64)[:, None] + np.arange(width)[None]
    den = np.maximum(np.asarray(n_shots, np.float64) - 1, 1)[:, None]
    return torch.from_numpy(np.minimum(pos / den, 1.0).astype(np.float32))


def collate(seqs: list[np.ndarray], title_emb: np.ndarray,
            clock: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Pad (n_i, D) sequences into shots (B, L, D), lengths (B,), title_emb (B, Dt) and, when
    the sequences are windows of longer titles, their ``clock`` (B, L) (``title_clock``)."""
    lengths = [len(s) for s in seqs]
    shots = torch.empty((len(seqs), max(lengths), seqs[0].shape[1]), dtype=torch.float32)
    out = shots.numpy()
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        out[i, len(s):] = 0
    batch = {"shots": shots, "lengths": torch.tensor(lengths),
             "title_emb": torch.from_numpy(np.ascontiguousarray(title_emb, dtype=np.float32))}
    if clock is not None:
        batch["clock"] = clock[:, : max(lengths)]
    return batch


class WindowLoader:
    """Batches of training windows; batch ``step`` is a pure function of (seed, step)."""

    def __init__(self, store: ShotStore, rows: list[int], max_shots: int, batch_size: int,
                 seed: int, parts_in_memory: int = 4, read_threads: int = 1, crop: float = 0.0,
                 short_steps: int = 0, short_max_shots: int = 128):
        """``crop``: see ``random_windows``. ``short_steps``: the first steps' windows are cut
        to ``short_max_shots`` at a random offset (BERT's sequence-length warm-up)."""
        if not rows:
            raise ValueError("no training titles")
        self.store, self.rows, self.max_shots = store, rows, max_shots
        self.batch_size, self.seed, self.parts_in_memory = batch_size, seed, parts_in_memory
        self.crop, self.short_steps, self.short_max_shots = crop, short_steps, short_max_shots
        self.titles = store.titles
        self.title_emb = store.title_embeddings()
        self.steps_per_epoch = steps_per_epoch(self.titles["n_shots"].iloc[rows], max_shots,
                                               batch_size)
        self.reader = store.row_reader(parts_in_memory)
        self.read_threads = read_threads
        self._pool: tuple[int, ThreadPoolExecutor] | None = None
        self._parts = store.part_numbers()
        self._n_shots = self.titles["n_shots"].to_numpy()
        self._plan: tuple[int, np.ndarray] | None = None

    def plan(self, epoch: int) -> np.ndarray:
        if self._plan is None or self._plan[0] != epoch:
            self._plan = (epoch, epoch_plan(self._parts, self._n_shots, self.rows,
                                            self.max_shots, self.seed, epoch,
                                            self.parts_in_memory, self.batch_size, self.crop))
        return self._plan[1]

    def batch_windows(self, step: int) -> np.ndarray:
        """(B, 3) (title row, start, length) windows of the run's batch ``step``."""
        epoch, i = divmod(step, self.steps_per_epoch)
        windows = self.plan(epoch)[i * self.batch_size:(i + 1) * self.batch_size]
        if step < self.short_steps:
            windows = windows.copy()
            long = windows[:, 2] > self.short_max_shots
            rng = np.random.default_rng([self.seed, step, 7])
            extra = windows[long, 2] - self.short_max_shots
            windows[long, 1] += (rng.random(int(long.sum())) * (extra + 1)).astype(np.int64)
            windows[long, 2] = self.short_max_shots
        return windows

    def load(self, windows: np.ndarray, pin_memory: bool = False,
             out: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Read windows straight into one padded batch (one copy of every byte).

        ``pin_memory`` allocates the batch page-locked for a CUDA copy; torch recycles those
        blocks, so steady-state batches neither page-fault nor re-pin. ``out`` is a buffer
        of at least (B, L, D) to fill instead (for callers that recycle their own).
        """
        lengths = windows[:, 2]
        shape = (len(windows), int(lengths.max()), self.store.dims["fused"])
        if out is None:
            out = torch.empty(shape, dtype=torch.float32, pin_memory=pin_memory)
        shots = out[: shape[0], : shape[1]]
        view = shots.numpy()

        def read(i: int) -> None:
            row, start, length = windows[i]
            self.reader.read(int(row), int(start), view[i, :length])
            view[i, length:] = 0

        if self.read_threads > 1:
            # windows are read concurrently (the copies release the GIL); the pool belongs to
            # this process: a forked DataLoader worker inherits none of its threads
            if self._pool is None or self._pool[0] != os.getpid():
                self._pool = (os.getpid(), ThreadPoolExecutor(self.read_threads))
            list(self._pool[1].map(read, range(len(windows))))
        else:
            for i in range(len(windows)):
                read(i)
        return {"shots": shots, "lengths": torch.from_numpy(lengths.copy()),
                "title_emb": torch.from_numpy(self.title_emb[windows[:, 0]]),
                "clock": title_clock(windows[:, 1], lengths, self._n_shots[windows[:, 0]],
                                     shape[1])}

    def __getstate__(self) -> dict:  # for spawned DataLoader workers: threads don't pickle
        return {**self.__dict__, "_pool": None}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.load(self.batch_windows(step))

    def shard(self, step: int, rank: int = 0, world: int = 1, pin_memory: bool = False
              ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """(the global batch's windows, rank ``rank``'s rows r, r + world, ... loaded)."""
        e = self.batch_windows(step)
        if len(e) < world:
            raise ValueError(f"batch of {len(e)} windows cannot be split over {world} "
                             "processes: raise batch_size")
        return e, self.load(e[rank::world], pin_memory)

    def iterate(self, start: int, stop: int, rank: int = 0, world: int = 1, prefetch: int = 2,
                workers: int = 0, pin_memory: bool = False):
        """Yield ``shard(step)`` for steps start..stop-1, in order.

        The global batch is the same for any number of processes. ``workers=0`` reads ahead
        on one thread; ``workers=N`` uses N torch DataLoader processes (tensors travel through
        shared memory), for accelerators that consume more than one thread can read.
        """
        if workers > 0:
            data = torch.utils.data.DataLoader(
                _Steps(self, rank, world), sampler=range(start, stop), batch_size=None,
                num_workers=workers, prefetch_factor=prefetch, pin_memory=pin_memory)
            for windows, batch in data:
                yield np.asarray(windows), batch
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = [pool.submit(self.shard, s, rank, world, pin_memory)
                       for s in range(start, min(start + prefetch, stop))]
            for s in range(start, stop):
                result = pending.pop(0).result()
                if s + prefetch < stop:
                    pending.append(pool.submit(self.shard, s + prefetch, rank, world,
                                               pin_memory))
                yield result


class _Steps(torch.utils.data.Dataset):
    """Step index -> this rank's shard of that step's batch (for DataLoader workers)."""

    def __init__(self, loader: WindowLoader, rank: int, world: int):
        self.loader, self.rank, self.world = loader, rank, world

    def __getitem__(self, step: int):
        return self.loader.shard(step, self.rank, self.world)

    def __len__(self) -> int:  # steps are addressed directly; the sampler bounds them
        raise TypeError("_Steps is indexed by step")
