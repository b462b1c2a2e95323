"""Masked-shot-modeling pretraining: the loop, validation, logging, checkpoints, resume.

A run directory holds::

    run.json            model config, train config, store path (what was asked for)
    model/              the latest weights (MediaFM.save_pretrained: config.json + safetensors)
    checkpoint.pt       model + optimiser + scheduler state + RNG, for --resume (atomic replace)
    metrics.jsonl       one record per log / eval step; metrics.csv, the same as a table
    tb/                 TensorBoard events

Batch ``i`` and its mask are pure functions of (seed, i) and the checkpoint carries the dropout
RNG, so a resumed run reproduces the uninterrupted one exactly (on CPU).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mediafm import distributed
from mediafm.atomic import atomic_file, locked, write_text
from mediafm.config import (
    TRAIN_MOVED,
    TRAIN_SECTIONS,
    TrainConfig,
    from_dict,
    load_sections,
    load_toml,
    train_config,
)
from mediafm.model import MediaFM, MediaFMConfig, count_parameters
from mediafm.objective import MSMMetrics, masked_cosine_sum, neighbour_mean, window_mean
from mediafm.optim import build_optimizers, lr_lambda
from mediafm.sequences import (
    WindowLoader,
    collate,
    sample_mask,
    split_titles,
    steps_per_epoch,
    title_clock,
    window_starts,
)
from mediafm.store import ShotStore


def _model_config(store: ShotStore, model: dict) -> MediaFMConfig:
    for key, dim in (("fused_dim", store.dims["fused"]), ("title_dim", store.dims["metadata"])):
        if key in model and model[key] != dim:
            raise ValueError(f"config {key}={model[key]} but the store {store.path} has {dim}")
    return MediaFMConfig.from_dict({**model, "fused_dim": store.dims["fused"],
                                    "title_dim": store.dims["metadata"]})


# ------------------------------------------------------------------------- validation


def validation_batches(store: ShotStore, rows: list[int], max_shots: int, batch_size: int,
                       seed: int, mask_ratio: float = 0.2):
    """Deterministic windows of the held-out titles, with fixed masks (same every eval)."""
    title_emb = store.title_embeddings()
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    windows = []
    for row in rows:
        t = store.titles.iloc[row]
        fused = store.title_vectors(t.title_id)
        for s in window_starts(len(fused), max_shots, max_shots):
            windows.append((fused[s:s + max_shots], title_emb[row], s, len(fused)))
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        seqs = [w[0] for w in chunk]
        clock = title_clock(np.array([w[2] for w in chunk]), np.array([len(x) for x in seqs]),
                            np.array([w[3] for w in chunk]), max(len(x) for x in seqs))
        batch = collate(seqs, np.stack([w[1] for w in chunk]), clock)
        batch["mask"] = sample_mask(batch["lengths"], batch["shots"].shape[1], mask_ratio, gen)
        yield batch


@torch.no_grad()
def evaluate(model: MediaFM, batches: list[dict], device: torch.device) -> dict[str, float]:
    """Masked-shot loss and retrieval of the model and of the two baselines."""
    model.eval()
    metrics = {"model": MSMMetrics(), "neighbour_mean": MSMMetrics(),
               "window_mean": MSMMetrics()}
    for b in batches:
        _, pred = model(b["shots"].to(device), b["lengths"].to(device), b["title_emb"].to(device),
                        b["mask"].to(device), b["clock"].to(device))
        args = (b["shots"], b["lengths"], b["mask"])
        metrics["model"].update(pred.float().cpu(), *args)
        metrics["neighbour_mean"].update(neighbour_mean(*args), *args)
        metrics["window_mean"].update(window_mean(*args), *args)
    model.train()
    return {f"{name}/{k}": v for name, m in metrics.items() for k, v in m.result().items()}


# ------------------------------------------------------------------------- logging


class MetricLog:
    """metrics.jsonl (+ metrics.csv) and TensorBoard; on resume, later records are dropped."""

    def __init__(self, run: Path, start_step: int):
        self.path = run / "metrics.jsonl"
        if self.path.exists():
            keep = [line for line in self.path.read_text().splitlines()
                    if line and json.loads(line)["step"] <= start_step]
            self.path.write_text("".join(f"{line}\n" for line in keep))
        self.file = self.path.open("a")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"), purge_step=start_step + 1)
        except ImportError:  # tensorboard is a dependency, but a broken install must not stop us
            pass

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        self.file.write(json.dumps({"step": step, "split": split, **values}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        import pandas as pd

        records = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        if records:
            pd.DataFrame.from_records(records).to_csv(self.path.with_suffix(".csv"), index=False)


# ------------------------------------------------------------------------- checkpoints


def _save_checkpoint(run: Path, step: int, model: MediaFM, optimizers, schedulers,
                     best: dict, ema: MediaFM | None = None) -> None:
    state = {"step": step, "model": model.state_dict(),
             "optimizers": [o.state_dict() for o in optimizers],
             "schedulers": [s.state_dict() for s in schedulers],
             "rng": torch.get_rng_state(), "best": json.dumps(best)}
    if ema is not None:
        state["ema"] = ema.state_dict()
    with atomic_file(run / "checkpoint.pt") as tmp:
        torch.save(state, tmp)
    if not best:  # no validation: the product is the latest model (its average, with ema)
        (model if ema is None else ema).save_pretrained(run / "model")


def _load_checkpoint(run: Path, model: MediaFM, optimizers, schedulers,
                     ema: MediaFM | None = None) -> tuple[int, dict]:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"], strict=True)
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{run / 'checkpoint.pt'} was trained without ema; resume it "
                             "without --set ema")
        ema.load_state_dict(state["ema"], strict=True)
    for o, s in zip(optimizers, state["optimizers"], strict=True):
        o.load_state_dict(s)
    for sch, s in zip(schedulers, state["schedulers"], strict=True):
        sch.load_state_dict(s)
    torch.set_rng_state(state["rng"])
    return int(state["step"]), json.loads(state.get("best", "{}"))


@torch.no_grad()
def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average`` <- ``decay`` x ``average`` + (1 - ``decay``) x ``model``, parameter by
    parameter (buffers copied). Why an average: late in a run the weights wander around a
    minimum with the optimiser's noise; their mean over the last ~1 / (1 - decay) steps sits
    nearer its centre than any one step's (Polyak averaging)."""
    for a, p in zip(average.parameters(), model.parameters(), strict=True):
        a.lerp_(p.detach(), 1 - decay)
    for a, b in zip(average.buffers(), model.buffers(), strict=True):
        a.copy_(b)


def ema_decay(decay: float, step: int) -> float:
    """The decay at ``step`` (1-based): ``decay``, but less at first so that the average
    forgets the random initialisation (as TensorFlow's moving average with num_updates)."""
    return min(decay, (1 + step) / (10 + step))


def context_verdict(val: dict[str, float], cfg: MediaFMConfig | None = None,
                    tc: TrainConfig | None = None) -> str:
    """One plain sentence: has the model beaten the no-learning baselines on held-out titles?

    The masked-shot loss of a model that learnt nothing but the title average equals the window
    mean's; one that learnt only "look at the next shot" equals the neighbour mean's. When it
    has not, the hint names only the levers this run did not already pull.
    """
    model, nb, wm = val["model/loss"], val["neighbour_mean/loss"], val["window_mean/loss"]
    if model < min(nb, wm) - 0.005:
        return (f"the model has learned context: validation loss {model:.4f} beats the "
                f"neighbour mean ({nb:.4f}) and the window mean ({wm:.4f})")
    worse = " and ".join(f"the {name} ({v:.4f})" for name, v in
                         (("neighbour mean", nb), ("window mean", wm)) if model >= v - 0.005)
    hints = []
    if cfg is None or cfg.positions == "learned":
        hints.append("relative positions (--set positions=rope)")
    if tc is None or tc.loader.crop == 0:
        hints.append("random crops (--set crop=0.5)")
    run = "" if tc is None else (f" (this run: {tc.passes:g} passes, {tc.steps} steps)"
                                 if tc.passes else f" (this run: {tc.steps})")
    hints.append(("more passes" if tc is not None and tc.passes else "more steps") + run
                 + " or more titles")
    if cfg is None or cfg.max_shots > 128:
        hints.append("a smaller max_shots, which trains faster")
    return (f"the model has not learned context: validation loss {model:.4f} does not beat "
            f"{worse}. Try {', '.join(hints)}")


# ------------------------------------------------------------------------- the loop


class _Waited:
    """The batch iterator, adding up how long the training loop waits for it.

    ``data_wait`` in the log is that time over the elapsed time: near 0 when the loader keeps
    up, and the fraction of the run lost to reading when it does not.
    """

    def __init__(self, batches):
        self.batches, self.seconds = iter(batches), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self.batches)
        finally:
            self.seconds += time.perf_counter() - t


def draw_masks(lengths: torch.Tensor, max_len: int, mask_ratio: float, tc: TrainConfig,
               step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(selected, keep), each (B, L) bool, for the global batch of ``step``.

    ``selected``: the shots the masked-shot loss is on; those of them not in ``keep`` have
    their input replaced by [MASK]. A pure function of (seed, step): the same for any world size.
    """
    gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
    selected = sample_mask(lengths, max_len, mask_ratio, gen, tc.masking.mask_span)
    keep = torch.zeros_like(selected)
    if tc.masking.mask_keep > 0:
        keep = selected & (torch.rand(selected.shape, generator=gen) < tc.masking.mask_keep)
    return selected, keep


def noisy_inputs(shots: torch.Tensor, keep: torch.Tensor, rank: int, world: int,
                 tc: TrainConfig, step: int) -> torch.Tensor:
    """The local shard's input: ``shots`` with Gaussian noise of norm ~``keep_noise`` added to
    the kept shots, then unit-normed. ``keep`` is the global batch's (B, L); noise is drawn for
    its kept shots in order, a pure function of (seed, step) whatever the world size."""
    where = keep.nonzero()  # (K, 2) global (row, shot), row-major
    gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step + 104_729)
    noise = torch.randn(len(where), shots.shape[-1], generator=gen)
    mine = where[:, 0] % world == rank
    rows, cols = (where[mine, 0] // world).to(shots.device), where[mine, 1].to(shots.device)
    scale = tc.masking.keep_noise / math.sqrt(shots.shape[-1])
    out = shots.clone()
    noisy = shots[rows, cols] + scale * noise[mine].to(shots.device, shots.dtype)
    out[rows, cols] = torch.nn.functional.normalize(noisy, dim=-1)
    return out


def clock_shift(n: int, tc: TrainConfig, step: int) -> torch.Tensor:
    """(n, 1): the title-clock shift of each window of the global batch of ``step``
    (``clock_jitter``); a pure function of (seed, step), zeros when there is no jitter."""
    if tc.masking.clock_jitter <= 0:
        return torch.zeros(n, 1)
    gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step + 7_919)
    return tc.masking.clock_jitter * torch.randn(n, 1, generator=gen)


def load_run_config(config: str = "tiny", overrides: list[str] | None = None
                    ) -> tuple[dict, TrainConfig]:
    """(model config dict, TrainConfig) from a named config or TOML plus ``key=value`` overrides.

    Sections ``[model]``, ``[train]``, ``[optim]``, ``[loader]``, ``[masking]``; keys may be
    ``model.hidden`` / ``optim.lr`` or bare names; unknown sections and keys and values out of
    range are errors naming them. The model section stays a dict: ``fused_dim`` and
    ``title_dim`` come from the store at training time unless set explicitly.
    """
    sections = load_sections(load_toml(config), overrides,
                             {"model": MediaFMConfig, **TRAIN_SECTIONS}, f"config {config}",
                             TRAIN_MOVED)
    named = {item.partition("=")[0].rpartition(".")[2] for item in overrides or []}
    if "steps" in named and "passes" not in named:  # --set steps=N means N steps
        sections["train"]["passes"] = 0.0
    from_dict(MediaFMConfig, sections["model"])  # validate keys and values early
    return sections["model"], train_config(sections)


def run_steps(tc: TrainConfig, steps_per_pass: int) -> TrainConfig:
    """``tc`` with its length in steps: ``passes`` passes of ``steps_per_pass`` when set.

    Why passes: the steps a catalog wants grow with it (on the CPU scaling curve ~40 passes
    were enough at 60 and 240 titles, and 80 at 60 titles worse for ad relevancy), so a
    length in passes is right for a catalog of any size where a fixed count is right for one.
    """
    if not tc.passes:
        return tc
    return dataclasses.replace(tc, steps=max(1, round(tc.passes * steps_per_pass)))


def train(store: str | os.PathLike, out: str | os.PathLike, model_config: dict | None = None,
          train_config: TrainConfig | None = None, *, resume: bool = False,
          stop_after: int | None = None, device: str | None = None,
          progress: bool = True) -> dict:
    """Pretrain MediaFM on ``store``; write the run to ``out``; return the last eval metrics.

    ``out/model`` holds the weights of the best validation loss (``run.json`` says which
    step), or the latest when no titles are held out. ``stop_after``: end this invocation
    after that many steps (the schedule stays that of the full run), e.g. for time-sliced
    jobs; ``resume=True`` continues from ``out/checkpoint.pt``. Under torchrun each process
    takes every world-th window of the same global batch (DDP); rank 0 alone evaluates, logs
    and writes checkpoints; a script of your own that calls this under torchrun should end
    with ``mediafm.distributed.exit_worker()``, as ``mediafm train`` does (why: its docstring).
    """
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1, got {stop_after}")
    main = int(os.environ.get("RANK", "0")) == 0  # torchrun: rank 0 writes the run
    with locked(out) if main else contextlib.nullcontext():
        run = _Run.start(store, Path(out), model_config or {}, train_config or TrainConfig(),
                         resume, device)
        try:
            run.loop(stop_after, progress)
        finally:
            run.close()
        return run.finish()


@dataclass
class _Run:
    """One training invocation: what the loop reads and writes (see ``train``)."""

    dir: Path
    store: ShotStore
    cfg: MediaFMConfig
    tc: TrainConfig
    ddp: distributed.Dist
    dev: torch.device
    core: MediaFM  # the module itself: trained, clipped
    model: torch.nn.Module  # what the step calls: compiled and / or DDP-wrapped
    ema: MediaFM | None  # the average of core's weights ([optim] ema): evaluated and saved
    optimizers: list
    schedulers: list
    step: int
    best: dict
    meta: dict
    loader: WindowLoader
    val_batches: list
    log: MetricLog | None
    last_eval: dict = field(default_factory=dict)

    @classmethod
    def start(cls, store: str | os.PathLike, run: Path, model_config: dict, tc: TrainConfig,
              resume: bool, device: str | None) -> _Run:
        """Check the request, build the model, optimisers, loader and log; resume if asked."""
        shot_store = ShotStore(store)
        cfg = _model_config(shot_store, model_config)
        if (run / "checkpoint.pt").exists() and not resume:
            raise FileExistsError(f"{run} already holds a run; pass --resume or choose another "
                                  "--out")
        if resume and not (run / "checkpoint.pt").exists():
            raise FileNotFoundError(f"{run}: nothing to resume (no checkpoint.pt)")
        train_rows, val_rows = split_titles(list(shot_store.titles["title_id"]),
                                            tc.val_fraction, tc.max_val_titles)
        tc = run_steps(tc, steps_per_epoch(shot_store.titles["n_shots"].iloc[train_rows],
                                           cfg.max_shots, tc.batch_size))
        ddp = distributed.init(device)
        dev = ddp.device(device)
        if ddp.is_main:
            run.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(tc.seed)
        core = MediaFM(cfg).to(dev)
        core.trained_on = {"store": str(Path(store).absolute()),
                           "store_fingerprint": shot_store.fingerprint,
                           **{k: v for k, v in shot_store.info.to_json().items()
                              if k in ("dims", "fused_modalities", "encoders")}}
        optimizers = build_optimizers(core, tc.optim.lr, tc.optim.muon_lr,
                                      tc.optim.weight_decay)
        schedule = lr_lambda(tc.optim.warmup_steps, tc.steps, tc.optim.min_lr_ratio)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in optimizers]
        ema = copy.deepcopy(core).eval().requires_grad_(False) if tc.optim.ema else None
        step, best = (_load_checkpoint(run, core, optimizers, schedulers, ema) if resume
                      else (0, {}))
        core.activation_checkpointing = tc.activation_checkpointing
        model = torch.compile(core, dynamic=True) if tc.compile else core  # lengths vary
        if ddp.world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[dev.index] if dev.type == "cuda" else None)
        meta = {"model": cfg.to_dict(), "train": dataclasses.asdict(tc), "store": str(store),
                "parameters": count_parameters(core), "world_size": ddp.world}
        lc = tc.loader
        loader = WindowLoader(shot_store, train_rows, cfg.max_shots, tc.batch_size, tc.seed,
                              lc.parts_in_memory, lc.loader_threads, lc.crop,
                              round(lc.short_steps * tc.steps), lc.short_max_shots)
        meta["passes"] = round(tc.steps / loader.steps_per_epoch, 1)
        val_batches, log = [], None
        if ddp.is_main:
            write_text(run / "run.json", json.dumps(meta, indent=2))
            _notes(shot_store, store, dev, val_rows, meta["passes"])
            val_batches = list(validation_batches(shot_store, val_rows, cfg.max_shots,
                                                  tc.batch_size, tc.seed, cfg.mask_ratio))
            log = MetricLog(run, step)
        return cls(run, shot_store, cfg, tc, ddp, dev, core, model, ema, optimizers,
                   schedulers, step, best, meta, loader, val_batches, log)

    def loop(self, stop_after: int | None, progress: bool) -> None:
        """Train until ``steps`` (or ``stop_after`` more), evaluating and checkpointing."""
        from mediafm.progress import progress_bar

        tc, main = self.tc, self.ddp.is_main
        end = tc.steps if stop_after is None else min(tc.steps, self.step + stop_after)
        self.model.train()
        bar = progress_bar(total=tc.steps, initial=self.step, desc="train", unit="step",
                           disable=not (progress and main))
        t0, shots_seen = time.perf_counter(), 0
        if self.val_batches and self.step == 0:  # the untrained model: the curve's start
            self.log.write(0, "val", evaluate(self.core, self.val_batches, self.dev))
        batches = _Waited(self.loader.iterate(self.step, end, self.ddp.rank, self.ddp.world,
                                              workers=tc.loader.loader_workers,
                                              pin_memory=self.dev.type == "cuda"))
        try:
            for windows, batch in batches:
                loss, grad_norm = self.train_step(windows, batch)
                shots_seen += int(windows[:, 2].sum())
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if main and (self.step % tc.log_every == 0 or self.step == end):
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    self.log.write(self.step, "train", {
                        "loss": loss, "grad_norm": grad_norm,
                        "lr": self.schedulers[-1].get_last_lr()[0],
                        "shots_per_s": shots_seen / elapsed,
                        "data_wait": batches.seconds / elapsed})
                self.after_step(end, bar)
        finally:
            bar.close()

    def train_step(self, windows: np.ndarray, batch: dict) -> tuple[float, float]:
        """One optimiser step on this rank's shard of the global batch: (loss, grad norm)."""
        tc, cfg, ddp, dev, step = self.tc, self.cfg, self.ddp, self.dev, self.step
        lengths = torch.from_numpy(windows[:, 2])
        L = int(lengths.max())
        selected, keep = draw_masks(lengths, L, cfg.mask_ratio, tc, step)
        real = torch.arange(L)[None] < lengths[:, None]
        # global counts: each rank's loss is its share of the global batch's mean; x world
        # because DDP averages gradients over ranks
        unmasked = tc.masking.unmasked_loss
        denom = int(selected.sum()) + unmasked * int((real & ~selected).sum())
        local = slice(ddp.rank, None, ddp.world)
        width = batch["shots"].shape[1]
        sel = selected[local, :width].to(dev)
        shots = batch["shots"].to(dev, non_blocking=True)
        inputs = shots
        if tc.masking.keep_noise > 0:
            inputs = noisy_inputs(shots, keep, ddp.rank, ddp.world, tc, step)
        bf16 = tc.precision == "bf16" or (tc.precision == "auto" and dev.type == "cuda")
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            _, pred = self.model(inputs, batch["lengths"].to(dev), batch["title_emb"].to(dev),
                                 sel & ~keep[local, :width].to(dev),
                                 (batch["clock"] + clock_shift(len(windows), tc, step)[local]
                                  ).to(dev))
        total = masked_cosine_sum(pred, shots, sel)
        if unmasked > 0:
            rest = real[local, :width].to(dev) & ~sel
            total = total + unmasked * masked_cosine_sum(pred, shots, rest)
        loss = total * (ddp.world / denom)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.core.parameters(), tc.optim.grad_clip)
        for o in self.optimizers:
            o.step()
            o.zero_grad(set_to_none=True)
        for s in self.schedulers:
            s.step()
        self.step += 1
        if self.ema is not None:
            update_ema(self.ema, self.core, ema_decay(tc.optim.ema, self.step))
        batch_loss = float(ddp.mean(loss.detach()))
        if not math.isfinite(batch_loss):
            raise FloatingPointError(f"loss is {batch_loss} at step {self.step}")
        return batch_loss, float(grad_norm)

    def after_step(self, end: int, bar) -> None:
        """Evaluate (keeping the best model) and checkpoint when the step calls for it."""
        tc, step = self.tc, self.step
        if self.val_batches and (step % tc.eval_every == 0 or step == tc.steps):
            product = self.core if self.ema is None else self.ema
            self.last_eval = evaluate(product, self.val_batches, self.dev)
            self.log.write(step, "val", self.last_eval)
            if not self.best or self.last_eval["model/loss"] < self.best["val"]["model/loss"]:
                self.best = {"step": step, "val": self.last_eval}
                product.save_pretrained(self.dir / "model")
            bar.write(f"step {step}: val loss {self.last_eval['model/loss']:.4f} (neighbour "
                      f"mean {self.last_eval['neighbour_mean/loss']:.4f}, window mean "
                      f"{self.last_eval['window_mean/loss']:.4f}; best at step "
                      f"{self.best['step']})")
        if self.ddp.is_main and (step % tc.ckpt_every == 0 or step == end):
            _save_checkpoint(self.dir, step, self.core, self.optimizers, self.schedulers,
                             self.best, self.ema)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def finish(self) -> dict:
        """Record the best model's verdict in run.json; leave the process group."""
        if self.ddp.is_main and self.best:
            verdict = context_verdict(self.best["val"], self.cfg, self.tc)
            write_text(self.dir / "run.json", json.dumps(
                {**self.meta, "best": {"step": self.best["step"], **self.best["val"]},
                 "summary": verdict}, indent=2))
            if self.step == self.tc.steps:
                print(f"model: the best validation loss, step {self.best['step']}; {verdict}",
                      file=sys.stderr)
        distributed.shutdown(self.ddp)
        return self.last_eval


MANY_PASSES = 100  # the CPU scaling curve: validation loss turned up past ~80 passes


def _notes(store: ShotStore, path, dev: torch.device, val_rows: list[int], passes: float
           ) -> None:
    """What a user should know before a run starts (rank 0). ``passes``: how many times the
    run reads its training windows (steps / windows a pass, a title over max_shots giving
    several); on 60-title catalogs validation loss was as good at 40 passes as at 80 and
    worse at 160, and more titles helped where more steps did not (benchmarks/README.md,
    *Scaling*)."""
    if passes > MANY_PASSES:
        print(f"note: {passes:.0f} passes over the {len(store.titles) - len(val_rows)} "
              f"training titles of {path}: validation loss rose past ~80 passes on the CPU "
              "scaling curve (benchmarks/README.md); more titles, or fewer steps",
              file=sys.stderr)
    if dev.type == "cuda" and not store.has_fused_cache:
        print(f"note: {path} has no fused cache; decoding Parquet may starve the GPU. "
              f"`mediafm cache --store {path}` makes reads ~10x faster.", file=sys.stderr)
    if not val_rows:
        print(f"note: {path} has {len(store.titles)} title(s), too few to hold any out: no "
              "validation, so the model written is the last one and nothing says whether it "
              "learned context", file=sys.stderr)
