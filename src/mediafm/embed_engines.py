"""Where ``embed_store`` runs: in this process, or over a Ray cluster; the same output.

The unit of work is one part file of the store (its titles whole, in store order). Each
finished part is staged atomically in ``.OUT.parts/`` beside the output, so a killed run
resumes with the parts it has not finished; when every part is there they are concatenated in
part order into OUT (atomically) and the staging is removed. Ray actors load the model once
(its config and weights travel through the object store) and write the staged parts
themselves: on a multi-node cluster OUT's folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from mediafm.atomic import atomic_file, locked
from mediafm.model import MediaFM
from mediafm.store import ShotStore


def _stage(model: MediaFM, store: ShotStore, part: str, staging: Path, output: str,
           batch_size: int) -> int:
    from mediafm.embed import embed_part

    table = embed_part(model, store, part, output, batch_size)
    with atomic_file(staging / part) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


class _RayEmbedder:
    """A Ray actor holding one model: it embeds whole parts and stages them."""

    def __init__(self, config: dict, state: dict, store: str, staging: str, output: str,
                 batch_size: int):
        import torch

        from mediafm.model import MediaFMConfig

        torch.set_num_threads(1)
        self.model = MediaFM(MediaFMConfig.from_dict(config))
        self.model.load_state_dict(state, strict=True)
        self.model.eval()
        self.store, self.staging = ShotStore(store), Path(staging)
        self.output, self.batch_size = output, batch_size

    def embed(self, part: str) -> tuple[str, int]:
        return part, _stage(self.model, self.store, part, self.staging, self.output,
                            self.batch_size)


def run(model: MediaFM, store: ShotStore, out: Path, output: str, batch_size: int,
        progress: bool, engine: str, address: str | None, workers: int) -> Path:
    from mediafm.progress import progress_bar

    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}: local | ray")
    out = out.absolute()
    staging = out.parent / f".{out.name}.parts"
    with locked(out):
        staging.mkdir(parents=True, exist_ok=True)
        rows = store.titles.groupby("part")["n_shots"].sum().to_dict()
        todo = [p for p in store.parts() if not (staging / p).is_file()]
        bar = progress_bar(total=store.info.n_shots, desc="embed", unit="shot",
                           disable=not progress,
                           initial=store.info.n_shots - sum(rows[p] for p in todo))
        if engine == "local":
            for part in todo:
                bar.update(_stage(model, store, part, staging, output, batch_size))
        elif todo:
            _run_ray(model, store, staging, output, batch_size, address, workers, todo, bar)
        bar.close()
        with atomic_file(out) as tmp:  # streamed: memory is one part
            writer = None
            try:
                for part in store.parts():
                    table = pq.read_table(staging / part)
                    if writer is None:
                        schema = table.schema.with_metadata({b"mediafm.readout":
                                                             output.encode()})
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(table.cast(writer.schema))
            finally:
                if writer is not None:
                    writer.close()
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _run_ray(model, store, staging, output, batch_size, address, workers, todo, bar) -> None:
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        n = workers if workers > 0 else max(1, int(ray.cluster_resources()["CPU"]))
        state = ray.put({k: v.cpu() for k, v in model.state_dict().items()})
        actor = ray.remote(num_cpus=1)(_RayEmbedder)
        pool = ActorPool([actor.remote(model.config.to_dict(), state,
                                       os.path.abspath(store.path), str(staging), output,
                                       batch_size) for _ in range(min(n, len(todo)))])
        for _, n_rows in pool.map_unordered(lambda a, part: a.embed.remote(part), todo):
            bar.update(n_rows)
    finally:
        if started:
            ray.shutdown()
