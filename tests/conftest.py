"""Shared fixtures: small synthetic catalogs written as real Parquet files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mediafm.store import import_shots
from mediafm.synthetic import CatalogSpec, write_catalog

VEC = pa.list_(pa.float32())
SHOT_SCHEMA = pa.schema([("title_id", pa.string()), ("shot_index", pa.int32()),
                         ("start_s", pa.float64()), ("end_s", pa.float64()),
                         ("video", VEC), ("audio", VEC), ("text", VEC)])


def write_shots(frame: pd.DataFrame, path, schema: pa.Schema | None = SHOT_SCHEMA) -> str:
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    return str(path)


def random_shots(n_titles: int = 3, n_shots: int = 5, dims=(6, 4, 3), seed: int = 0,
                 text_prob: float = 0.5) -> pd.DataFrame:
    """A tiny SHOTS table with random vectors; text null with probability 1 - text_prob."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_titles):
        for i in range(n_shots):
            rows.append({"title_id": f"t{t}", "shot_index": i, "start_s": float(i),
                         "end_s": float(i + 1),
                         "video": rng.normal(size=dims[0]).astype(np.float32),
                         "audio": rng.normal(size=dims[1]).astype(np.float32),
                         "text": rng.normal(size=dims[2]).astype(np.float32)
                         if rng.random() < text_prob else None})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def catalog(tmp_path_factory):
    """The built-in synthetic catalog, small: 24 titles, one of them longer than 512 shots."""
    out = tmp_path_factory.mktemp("catalog")
    spec = CatalogSpec(n_titles=24, mean_shots=90, long_fraction=0.05, video_dim=32,
                       audio_dim=16, text_dim=16, title_dim=8, seed=3)
    return write_catalog(out, spec)


@pytest.fixture(scope="session")
def store(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "store"
    return import_shots(catalog["shots"], out, catalog["titles"], part_rows=600, progress=False)
