"""The files that follow the store: each says what it is, readers check it, errors name the
file (pinned here as the store's are)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mediafm import artifacts
from mediafm.errors import Mismatch, StoreError


def shots(n: int = 4, dim: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"title_id": ["a"] * n, "shot_index": np.arange(n),
                         "embedding": list(rng.normal(size=(n, dim)).astype(np.float32))})


def test_round_trip_with_provenance(store, tmp_path):
    out = artifacts.write("shot_embeddings", shots(), tmp_path / "e.parquet", readout="context",
                          store=artifacts.store_stamp(store))
    got = artifacts.read(out, "shot_embeddings")
    assert got.kind.name == "shot_embeddings" and got.meta["readout"] == "context"
    assert got.meta["store"]["fingerprint"] == store.fingerprint
    assert got.vectors().shape == (4, 3) and got.vectors().dtype == np.float32
    assert got.frame().columns.tolist() == ["title_id", "shot_index"]
    assert pq.read_schema(out).field("embedding").type == pa.list_(pa.float32(), 3)
    assert pd.read_parquet(out).shape == (4, 3)  # plain Parquet for everyone else
    artifacts.check_store(got.meta, store, "the embeddings")


def test_streamed_writes_appear_whole(tmp_path):
    with artifacts.writer("shot_embeddings", tmp_path / "e.parquet", readout="hidden") as write:
        write(shots(3))
        assert not (tmp_path / "e.parquet").exists()  # not before the block ends
        write(shots(2))
    assert len(artifacts.read(tmp_path / "e.parquet").table) == 5
    with pytest.raises(RuntimeError), artifacts.writer("shot_embeddings",
                                                       tmp_path / "f.parquet") as write:
        write(shots(3))
        raise RuntimeError("killed mid-write")
    assert not (tmp_path / "f.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["e.parquet"]


def test_errors_name_the_file(store, tmp_path):
    path = artifacts.write("moments", pd.DataFrame({
        "title_id": ["a"], "task": ["t"], "kind": ["highlight"], "rank": [1], "first_shot": [0],
        "last_shot": [2], "start_s": [0.0], "end_s": [3.0], "score": [0.5], "reason": ["x"]}),
        tmp_path / "m.parquet", store={"fingerprint": "0" * 32, "path": "/elsewhere"})
    with pytest.raises(StoreError, match=r"m.parquet: holds moments, not shot embeddings or "
                                         r"clip embeddings"):
        artifacts.read(path, "shot_embeddings", "clip_embeddings")
    with pytest.raises(Mismatch, match=r"the moments: made from the store at /elsewhere "
                                       r"\(fingerprint 000000000000\), not from the store"):
        artifacts.check_store(artifacts.read(path).meta, store, "the moments")
    with pytest.raises(FileNotFoundError, match="nope.parquet: no such file"):
        artifacts.read(tmp_path / "nope.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(StoreError, match="text.parquet: cannot read as Parquet"):
        artifacts.read(tmp_path / "text.parquet")
    pd.DataFrame({"clip_id": ["c"]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(StoreError, match=r"c.parquet: clips need column\(s\) \['title_id', "
                                         r"'first_shot', 'last_shot'\]"):
        artifacts.read(tmp_path / "c.parquet", "clips")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(StoreError, match=r"x.parquet: not a mediafm file of a known kind"):
        artifacts.read(tmp_path / "x.parquet", "shot_embeddings")
    bad = shots()
    bad.at[1, "embedding"] = np.array([np.nan, 0, 0], np.float32)
    artifacts.write("shot_embeddings", bad, tmp_path / "nan.parquet")
    with pytest.raises(StoreError, match="nan.parquet: embeddings contain NaN or inf"):
        artifacts.read(tmp_path / "nan.parquet").vectors()


def test_files_of_mediafm_0_2_are_recognised(tmp_path):
    """Written before the metadata existed: the kind comes from the columns, the task kinds
    from the key predictions and labels had (in either shape)."""
    shots().to_parquet(tmp_path / "shots.parquet")
    assert artifacts.read(tmp_path / "shots.parquet").kind.name == "shot_embeddings"
    pred = pa.Table.from_pandas(pd.DataFrame({
        "title_id": ["a"], "shot_index": [0], "task": ["t"], "label": ["t"], "score": [0.1]}),
        preserve_index=False).replace_schema_metadata({b"mediafm.tasks": b'{"t": "binary"}'})
    pq.write_table(pred, tmp_path / "pred.parquet")
    got = artifacts.read(tmp_path / "pred.parquet", "predictions")
    assert got.tasks == {"t": {"kind": "binary"}} and "store" not in got.meta
