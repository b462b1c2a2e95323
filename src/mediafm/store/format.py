"""The store format: layout, constants, ``store.json``, errors, and the vector column type.

A store is a directory any Parquet reader (pandas, DuckDB, Spark, Ray) opens directly::

    STORE/store.json               format, version, dims, modalities, counts, encoders
    STORE/titles.parquet           title_id, n_shots, part, row_offset, metadata, synopsis, tags,
                                   has_audio, has_video (null unless ingested; has_video
                                   false: an audio-only title, video vectors are zeros)
    STORE/shots/part-00000.parquet title_id, shot_index, start_s, end_s,
                                   [video, audio, text], has_text, [timed_text], fused
    STORE/cache/fused/             optional (``mediafm cache``): the fused column of each part
                                   as uncompressed Arrow IPC, read by the training loader

Every title lives whole in one part file, its shots contiguous and in order, and the title table
records where (``part``, ``row_offset``). Readers therefore fetch one title, or stream part by
part, without ever holding the corpus in memory. Vectors are ``fixed_size_list<float32>``.
The title embedding (the [GLOBAL] input) is the ``metadata`` column of the title table and
``dims["metadata"]`` in store.json: those names are the file schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mediafm.errors import StoreError
from mediafm.fusion import MODALITIES

FORMAT = "mediafm-store"
VERSION = 1
ROW_GROUP = 1024  # rows per Parquet row group: the unit a title read touches
PART_ROWS = 8192  # target rows per part file: the unit a streaming read holds in memory
FUSED_CACHE = Path("cache") / "fused"
TIMED_TEXT = "timed_text"  # optional shot column: the subtitles' or transcribed words' text
# optional shot columns ingest writes and import passes through, with their types: the
# timed text, the shot's frames (0-based, inclusive, in stream order) and the transition that
# begins it (cut, dissolve, fade, ...: ``ingest.transitions``) with its length in frames
SHOT_EXTRAS = {TIMED_TEXT: pa.string(), "first_frame": pa.int64(), "last_frame": pa.int64(),
               "transition": pa.string(), "transition_frames": pa.int64()}


@dataclass(frozen=True)
class StoreInfo:
    """What store.json records."""

    dims: dict[str, int]  # video/audio/text (when kept), fused, metadata (the title embedding)
    modalities: tuple[str, ...]  # the per-modality columns kept; () when imported as fused only
    n_titles: int
    n_shots: int
    encoders: dict = field(default_factory=dict)
    fused_modalities: tuple[str, ...] = MODALITIES  # what the fused vector is made of
    # a digest of the store's content (every shot's columns and the title table, not their
    # layout in parts): what the outputs made from a store record, so that a consumer can tell
    # it the same store (re-imported or moved) from another one; "" in stores written before
    fingerprint: str = ""

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "dims": self.dims,
                "modalities": list(self.modalities),
                "fused_modalities": list(self.fused_modalities), "n_titles": self.n_titles,
                "n_shots": self.n_shots, "encoders": self.encoders,
                "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, meta: dict, source: Path) -> StoreInfo:
        """Parse store.json; the error names the file and what is missing or unsupported."""
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise StoreError(f"{source}: unsupported format {meta.get('format')!r} "
                             f"version {meta.get('version')!r}")
        missing = [k for k in ("dims", "modalities", "n_titles", "n_shots") if k not in meta]
        if missing:
            raise StoreError(f"{source}: missing key(s) {missing}")
        return cls(dims=meta["dims"], modalities=tuple(meta["modalities"]),
                   n_titles=meta["n_titles"], n_shots=meta["n_shots"],
                   encoders=meta.get("encoders", {}),
                   fused_modalities=tuple(meta.get("fused_modalities", meta["modalities"])),
                   fingerprint=meta.get("fingerprint", ""))


def vector_array(x: np.ndarray) -> pa.FixedSizeListArray:
    """(rows, dim) float array -> the store's vector column type, fixed_size_list<float32>."""
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), x.shape[1])


def fixed_list_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column of equal-length float lists (no nulls) as a (rows, dim) float32 array."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    dim = col.type.list_size if pa.types.is_fixed_size_list(col.type) else None
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if dim is None:
        dim = flat.size // max(len(col), 1)
    return flat.reshape(len(col), dim)


def vectors_or_zeros(col: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A nullable vector column as (rows, dim) float32, zeros where null."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    out = np.zeros((len(col), dim), dtype=np.float32)
    valid = ~col.is_null().to_numpy(zero_copy_only=False)
    if dim and valid.any():
        out[valid] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return out


def column_digest(h, name: str, col: pa.ChunkedArray | pa.Array) -> None:
    """Feed a column's name, values and nulls into the hash ``h`` (``hashlib``), the same for
    the same values however the column is chunked, sliced or compressed."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    h.update(name.encode() + b"\0" + str(len(col)).encode())
    h.update(col.is_null().to_numpy(zero_copy_only=False).tobytes())
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        h.update(col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).tobytes())
        values = col.flatten()
        if pa.types.is_string(values.type):
            h.update("\0".join(v or "" for v in values.to_pylist()).encode())
        else:
            h.update(values.to_numpy(zero_copy_only=False).astype(np.float32).tobytes())
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        h.update("\0".join(v or "" for v in col.to_pylist()).encode())
    elif pa.types.is_binary(col.type):
        for v in col.to_pylist():
            h.update(len(v or b"").to_bytes(8, "little") + (v or b""))
    else:  # numbers and flags; a null's value does not matter, its bit is hashed above
        values = col.to_numpy(zero_copy_only=False)
        h.update(np.nan_to_num(np.asarray(values, dtype=np.float64)).tobytes())
