"""Probe tasks: the LABELS schema, task declarations, targets, and the built-in catalog's labels.

LABELS is one row per clip: ``clip_id``, ``title_id``, ``first_shot``, ``last_shot`` and one
column per task. A task uses the rows where its column is not null. Kinds:

- ``multilabel``: a list of label names per clip (metric: macro AP, or micro AP if declared);
- ``binary``: a bool per clip (AP);
- ``ranking``: a float score, ranked within its title (Kendall's tau within title);
- ``boundary``: shot level, one-shot clips, bool "a new scene starts here" (AP).

Kinds are declared in the Parquet file's metadata under ``mediafm.tasks`` (a JSON object
``{"tone": {"kind": "multilabel", "metric": "micro_ap"}, ...}``), or on the command line; without
a declaration a list column is multilabel, a bool column binary and a float column ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mediafm import artifacts

KINDS = ("multilabel", "binary", "ranking", "boundary")
DEFAULT_METRIC = {"multilabel": "macro_ap", "binary": "ap", "ranking": "kendall_tau",
                  "boundary": "ap"}
KEY_COLUMNS = ("clip_id", "title_id", "first_shot", "last_shot")


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    metric: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")


def read_labels(path: str | Path, declared: dict[str, str] | None = None
                ) -> tuple[pd.DataFrame, list[Task]]:
    """LABELS frame and its tasks (file metadata, then ``declared`` overrides, then inference)."""
    labels = artifacts.read(path, "labels")
    table = labels.table
    meta = dict(labels.tasks)
    for name, kind in (declared or {}).items():
        meta[name] = {"kind": kind}
    tasks = []
    for name in table.column_names:
        if name in KEY_COLUMNS:
            continue
        spec = meta.get(name)
        if spec is None:
            typ = table.schema.field(name).type
            kind = ("multilabel" if pa.types.is_list(typ) else "binary" if pa.types.is_boolean(
                typ) else "ranking" if pa.types.is_floating(typ) else None)
            if kind is None:
                raise ValueError(f"{path}: cannot tell the kind of task column {name!r} ({typ});"
                                 " declare it (--task NAME=KIND)")
            spec = {"kind": kind}
        if spec["kind"] not in KINDS:
            raise ValueError(f"{path}: task {name!r}: kind must be one of {KINDS}, got "
                             f"{spec['kind']!r}")
        tasks.append(Task(name, spec["kind"], spec.get("metric", DEFAULT_METRIC[spec["kind"]])))
    unknown = sorted(set(declared or {}) - {t.name for t in tasks})
    if unknown:
        raise ValueError(f"{path}: declared task(s) {unknown} have no column")
    frame = table.to_pandas()
    bad = frame[frame["first_shot"] > frame["last_shot"]]
    if len(bad):
        raise ValueError(f"{path}: clip {bad['clip_id'].iloc[0]!r} has first_shot > last_shot")
    return frame, tasks


def write_labels(frame: pd.DataFrame, tasks: list[Task], path: str | Path) -> Path:
    """LABELS.parquet with its tasks declared in the metadata (``mediafm.tasks``)."""
    return artifacts.write("labels", pa.Table.from_pandas(frame, preserve_index=False), path,
                           tasks={t.name: {"kind": t.kind, "metric": t.metric} for t in tasks})


def targets(frame: pd.DataFrame, task: Task) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(row indices that carry the task, targets, label names) for one task."""
    col = frame[task.name]
    rows = np.flatnonzero(col.notna().to_numpy())
    if task.kind == "multilabel":
        values = [list(v) for v in col.iloc[rows]]
        names = sorted({x for v in values for x in v})
        index = {n: i for i, n in enumerate(names)}
        Y = np.zeros((len(rows), len(names)), dtype=bool)
        for r, v in enumerate(values):
            Y[r, [index[x] for x in v]] = True
        return rows, Y, names
    if task.kind == "ranking":
        return rows, col.iloc[rows].to_numpy(np.float64), []
    return rows, col.iloc[rows].to_numpy().astype(bool), []
