"""The files that follow the store: one reader and one writer for every kind.

Shot, clip and title embeddings, predictions, moments, labels, clips, transcripts and scenes
are plain Parquet (pandas, DuckDB and Spark read them) whose metadata says what each file is
and what made it, under one key, ``mediafm.artifact``::

    {"kind": "shot_embeddings", "version": 1,
     "store": {"fingerprint": ..., "path": ...},       # the store the rows refer to
     "model": {"fingerprint": ..., "path": ...},       # the weights that made them
     ...: what else the kind records (readout, mode, tasks, ...)}

A reader checks the kind it was asked for and the columns that kind needs, with errors that
name the file; a consumer compares the recorded fingerprints with the store or model it is
given (``check_store``, ``check_model``). Files written before this metadata existed are
recognised by their columns. Task kinds ride under ``mediafm.tasks`` too, which labels files
have used since before (users write it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import atomic_file
from mediafm.errors import Mismatch, StoreError
from mediafm.store.format import fixed_list_to_numpy, vector_array

ARTIFACT_KEY = b"mediafm.artifact"
TASKS_KEY = b"mediafm.tasks"  # {task: {"kind": ..., "metric": ...}}
READOUT_KEY = b"mediafm.readout"  # what shot embeddings recorded before ARTIFACT_KEY
VERSION = 1


@dataclass(frozen=True)
class Kind:
    """One kind of file: the columns that identify a row and the others it must have."""

    name: str
    what: str  # how messages call it
    keys: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return (*self.keys, *self.columns)


KINDS = {k.name: k for k in (
    Kind("shot_embeddings", "shot embeddings", ("title_id", "shot_index"), ("embedding",)),
    Kind("clip_embeddings", "clip embeddings", ("clip_id",), ("embedding",)),
    Kind("title_embeddings", "title embeddings", ("title_id",), ("embedding",)),
    Kind("predictions", "shot predictions", ("title_id", "shot_index", "task", "label"),
         ("score",)),
    Kind("clip_predictions", "clip predictions", ("clip_id", "task", "label"), ("score",)),
    Kind("moments", "moments", ("title_id", "task", "rank"),
         ("first_shot", "last_shot", "start_s", "end_s", "score", "reason")),
    Kind("labels", "labels", ("clip_id",), ("title_id", "first_shot", "last_shot")),
    Kind("clips", "clips", ("clip_id",), ("title_id", "first_shot", "last_shot")),
    Kind("transcripts", "transcripts", ("title_id", "segment"), ("start_s", "end_s", "text")),
    Kind("scenes", "scenes", ("title_id", "scene"),
         ("first_shot", "last_shot", "start_s", "end_s", "score")),
)}
EMBEDDINGS = ("shot_embeddings", "clip_embeddings", "title_embeddings")
TRANSCRIPTS = "transcripts.parquet"  # in an ingested store: what speech to text heard
WORD = pa.struct([("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()),
                  ("probability", pa.float32())])


@dataclass
class Artifact:
    """A file read back: its kind, rows and recorded metadata."""

    kind: Kind
    table: pa.Table
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def frame(self, vectors: bool = False) -> pd.DataFrame:
        """The rows as a DataFrame; the embedding column as arrays only if ``vectors``."""
        table = self.table
        if not vectors and "embedding" in table.column_names:
            table = table.drop_columns(["embedding"])
        return table.to_pandas()

    def vectors(self) -> np.ndarray:
        """(rows, dim) float32 embeddings; NaN or inf is an error naming the file."""
        x = fixed_list_to_numpy(self.table["embedding"])
        if not np.isfinite(x).all():
            raise StoreError(f"{self.path}: embeddings contain NaN or inf")
        return x

    @property
    def tasks(self) -> dict[str, dict]:
        """Task -> {"kind", "metric"} recorded for labels and predictions."""
        return self.meta.get("tasks", {})


def _guess(names: set[str]) -> str | None:
    """The kind of a file written without ``mediafm.artifact``, from its columns."""
    for kind in ("predictions", "clip_predictions", "moments", "shot_embeddings",
                 "clip_embeddings", "title_embeddings"):
        if set(KINDS[kind].required) <= names:
            return kind
    if set(KINDS["labels"].required) <= names:
        return "labels"
    return None


def _tasks(raw: bytes | None) -> dict[str, dict]:
    """``mediafm.tasks`` in either shape ever written: {task: kind} or {task: {kind, ...}}."""
    decl = json.loads(raw) if raw else {}
    return {t: v if isinstance(v, dict) else {"kind": v} for t, v in decl.items()}


def read(path: str | os.PathLike, *kinds: str, columns: list[str] | None = None) -> Artifact:
    """Read an artifact file; ``kinds``: the kinds the caller accepts (any when empty).

    Errors name the file: missing, not Parquet, another kind, a column missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{path}: cannot read as Parquet ({e})") from None
    raw = schema.metadata or {}
    meta = json.loads(raw[ARTIFACT_KEY]) if ARTIFACT_KEY in raw else {}
    names = set(schema.names)
    name = meta.get("kind") or (kinds[0] if len(kinds) == 1 and kinds[0] in ("labels", "clips")
                                else _guess(names))
    wanted = " or ".join(KINDS[k].what for k in kinds)
    if name not in KINDS:
        raise StoreError(f"{path}: not a mediafm file of a known kind (columns {sorted(names)})"
                         + (f"; expected {wanted}" if kinds else ""))
    kind = KINDS[name]
    if kinds and name not in kinds and not (name == "labels" and "clips" in kinds):
        raise StoreError(f"{path}: holds {kind.what}, not {wanted}")
    missing = [c for c in kind.required if c not in names]
    if missing:
        raise StoreError(f"{path}: {kind.what} need column(s) {missing}; found {sorted(names)}")
    if READOUT_KEY in raw and "readout" not in meta:
        meta["readout"] = raw[READOUT_KEY].decode()
    if TASKS_KEY in raw:
        meta["tasks"] = _tasks(raw[TASKS_KEY])
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{path}: cannot read as Parquet ({e})") from None
    return Artifact(kind, table, meta, path)


def _schema_meta(kind: str, meta: dict, schema: pa.Schema) -> dict[bytes, bytes]:
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}: {sorted(KINDS)}")
    meta = {k: v for k, v in meta.items() if v is not None}
    tasks = meta.pop("tasks", None)
    out = {**(schema.metadata or {}),
           ARTIFACT_KEY: json.dumps({"kind": kind, "version": VERSION, **meta}).encode()}
    if tasks is not None:
        out[TASKS_KEY] = json.dumps(tasks).encode()
    return out


def as_table(data: pa.Table | pd.DataFrame | dict) -> pa.Table:
    """A table from a DataFrame or dict of columns; an ``embedding`` column of equal-length
    arrays (or a 2-D array) becomes the store's vector type, fixed_size_list<float32>."""
    if isinstance(data, pa.Table):
        return data
    cols = dict(data.items()) if isinstance(data, dict) else {c: data[c] for c in data.columns}
    emb = cols.get("embedding")
    if emb is not None and not isinstance(emb, pa.Array | pa.ChunkedArray):
        x = np.asarray(emb, np.float32) if isinstance(emb, np.ndarray) and emb.ndim == 2 \
            else np.stack([np.asarray(v, np.float32) for v in emb])
        cols["embedding"] = vector_array(x)
    return pa.table({k: v if isinstance(v, pa.Array | pa.ChunkedArray)
                     else pa.array(list(v) if isinstance(v, pd.Series) else v)
                     for k, v in cols.items()})


def write(kind: str, data: pa.Table | pd.DataFrame | dict, out: str | os.PathLike,
          **meta) -> Path:
    """Write ``data`` as an artifact of ``kind`` at ``out``, atomically; ``meta``: what made
    it (``store=store_stamp(...)``, ``model=model_stamp(...)``, ``tasks=...``, ...)."""
    table = as_table(data)
    missing = [c for c in KINDS[kind].required if c not in table.column_names]
    if missing:
        raise ValueError(f"{KINDS[kind].what} need column(s) {missing}")
    table = table.replace_schema_metadata(_schema_meta(kind, meta, table.schema))
    with atomic_file(out) as tmp:
        pq.write_table(table, tmp)
    return Path(out)


@contextmanager
def writer(kind: str, out: str | os.PathLike, **meta) -> Iterator:
    """Stream an artifact of ``kind`` to ``out`` table by table (memory: one table); it
    appears whole when the block ends: ``with writer(...) as write: write(table)``."""
    with atomic_file(out) as tmp:
        state: dict = {}

        def write(data) -> None:
            table = as_table(data)
            if "w" not in state:
                schema = table.schema.with_metadata(_schema_meta(kind, meta, table.schema))
                state["w"] = pq.ParquetWriter(tmp, schema)
            state["w"].write_table(table.cast(state["w"].schema))

        try:
            yield write
        finally:
            if "w" in state:
                state["w"].close()
        if "w" not in state:
            raise ValueError(f"{out}: nothing was written")


# ------------------------------------------------------------------ transcripts


def write_transcripts(store, titles: dict[str, list[dict]], asr: dict | None = None
                      ) -> Path | None:
    """STORE/transcripts.parquet from {title_id: [segment rows]} (``ingest.speech``:
    start_s, end_s, text, words); none when no title was transcribed."""
    rows = [(t, i, s) for t, segments in titles.items() for i, s in enumerate(segments)]
    path = Path(store.path) / TRANSCRIPTS
    if not rows:
        path.unlink(missing_ok=True)
        return None
    table = pa.table({
        "title_id": pa.array([t for t, _, _ in rows], pa.string()),
        "segment": pa.array([i for _, i, _ in rows], pa.int32()),
        "start_s": pa.array([s["start_s"] for *_, s in rows], pa.float64()),
        "end_s": pa.array([s["end_s"] for *_, s in rows], pa.float64()),
        "text": pa.array([s["text"] for *_, s in rows], pa.string()),
        "words": pa.array([s["words"] for *_, s in rows], pa.list_(WORD))})
    return write("transcripts", table, path, store=store_stamp(store), asr=asr)


def read_transcript(store, title_id: str) -> pd.DataFrame | None:
    """A title's transcript segments (start_s, end_s, text, words), or None."""
    path = Path(store.path) / TRANSCRIPTS
    if not path.is_file():
        return None
    rows = pq.read_table(path, filters=[("title_id", "=", title_id)]).to_pandas()
    return rows.sort_values("segment").reset_index(drop=True) if len(rows) else None


# ------------------------------------------------------------------ provenance


def store_stamp(store) -> dict:
    """What an artifact records about the store its rows refer to."""
    return {"fingerprint": store.fingerprint, "path": str(Path(store.path).absolute())}


def model_stamp(model, path: str | os.PathLike | None = None) -> dict:
    """What an artifact records about the model that made it."""
    return {"fingerprint": model.fingerprint(),
            "path": str(Path(path).absolute()) if path else None}


def check_store(meta: dict, store, what: str) -> None:
    """The artifact (``meta``: its recorded metadata; ``what``: how to name it) refers to
    ``store``; a ``Mismatch`` names both when it was made from another store. Artifacts
    that recorded no store (written by mediafm 0.2) are not checked here."""
    made = (meta.get("store") or {}).get("fingerprint")
    if made and made != store.fingerprint:
        raise Mismatch(f"{what}: made from {_source(meta, 'store')} (fingerprint {made[:12]}), "
                       f"not from the store {store.path} ({store.fingerprint[:12]})")


def check_model(meta: dict, model, what: str) -> None:
    """The artifact was made by ``model``'s weights; a ``Mismatch`` names both if not."""
    made = (meta.get("model") or {}).get("fingerprint")
    mine = model.fingerprint()
    if made and made != mine:
        raise Mismatch(f"{what}: made by {_source(meta, 'model')} (weights {made[:12]}), not "
                       f"by this model ({mine[:12]})")


def _source(meta: dict, side: str) -> str:
    path = (meta.get(side) or {}).get("path")
    return f"the {side} at {path}" if path else f"another {side}"
