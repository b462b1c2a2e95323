"""The shot store: import, fusion, reading, and every bad input's error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHOT_SCHEMA, random_shots, write_shots

from mediafm.store import ShotStore, StoreError, import_shots


def expected_fused(row) -> np.ndarray:
    """Independent re-statement of the spec: unit-norm parts, concat (zeros for no text), norm."""
    parts = []
    for v in (row.video, row.audio, row.text):
        v = np.asarray(v, dtype=np.float64)
        parts.append(v / np.linalg.norm(v))
    if row.text is None or (isinstance(row.text, float) and np.isnan(row.text)):
        parts[2] = np.zeros(3)
    x = np.concatenate(parts)
    return x / np.linalg.norm(x)


def test_import_round_trip_and_fusion(tmp_path):
    df = random_shots(n_titles=3, n_shots=5, dims=(6, 4, 3))
    df.loc[df.index % 4 == 0, "text"] = None  # some shots without text
    shuffled = df.sample(frac=1.0, random_state=1)  # rows in any order
    store = import_shots(write_shots(shuffled, tmp_path / "shots.parquet"), tmp_path / "s",
                         progress=False)
    assert store.dims == {"video": 6, "audio": 4, "text": 3, "fused": 13, "metadata": 0}
    assert store.info.n_shots == 15 and store.info.n_titles == 3
    got = pd.read_parquet(tmp_path / "s" / "shots").set_index(["title_id", "shot_index"])
    for row in df.itertuples():
        g = got.loc[(row.title_id, row.shot_index)]
        np.testing.assert_allclose(g["fused"], expected_fused(row), atol=1e-6)
        np.testing.assert_allclose(g["video"], row.video)
        assert g["has_text"] == (row.text is not None)
        if row.text is None:
            assert not np.any(g["text"])
    # per-title reads are ordered by shot and agree with the streaming reader
    streamed = dict(store.iter_titles("fused"))
    for t in ("t0", "t1", "t2"):
        direct = store.title_vectors(t)
        assert direct.shape == (5, 13)
        np.testing.assert_array_equal(direct, streamed[t])
        want = np.stack([expected_fused(r) for r in df[df.title_id == t].itertuples()])
        np.testing.assert_allclose(direct, want, atol=1e-6)


def test_titles_table_and_metadata(tmp_path):
    df = random_shots(n_titles=2)
    titles = pd.DataFrame({"title_id": ["t0", "t1"],
                           "metadata": [np.ones(4, np.float32), None],
                           "synopsis": ["A heist.", None], "tags": [["crime"], []]})
    pq.write_table(pa.Table.from_pandas(titles, preserve_index=False), tmp_path / "titles.pq")
    store = import_shots(write_shots(df, tmp_path / "shots.pq"), tmp_path / "s",
                         tmp_path / "titles.pq", progress=False)
    assert store.dims["metadata"] == 4
    emb = store.title_embeddings()
    np.testing.assert_array_equal(emb[store.title_row("t0")], np.ones(4))
    np.testing.assert_array_equal(emb[store.title_row("t1")], np.zeros(4))  # zero [GLOBAL]
    assert store.titles.set_index("title_id").loc["t0", "synopsis"] == "A heist."


def test_fused_only_input(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"title_id": ["a"] * 4, "shot_index": [3, 1, 0, 2],
                       "start_s": [3.0, 1, 0, 2], "end_s": [4.0, 2, 1, 3],
                       "fused": [rng.normal(size=8).astype(np.float32) for _ in range(4)]})
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "f.pq")
    store = import_shots(tmp_path / "f.pq", tmp_path / "s", progress=False)
    assert store.info.modalities == () and store.dims["fused"] == 8
    got = store.title_vectors("a")
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    want = np.stack(df.sort_values("shot_index")["fused"].to_list())
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)


def test_bucketed_import_equals_in_memory_import(tmp_path):
    """The external hash-partitioned path gives the same store content as one bucket."""
    df = random_shots(n_titles=20, n_shots=7, seed=5).sample(frac=1.0, random_state=0)
    src = write_shots(df, tmp_path / "shots.parquet")
    one = import_shots(src, tmp_path / "one", progress=False)
    many = import_shots(src, tmp_path / "many", bucket_rows=16, part_rows=20, progress=False)
    assert len(many.parts()) > 1
    for t in one.titles["title_id"]:
        np.testing.assert_array_equal(one.title_vectors(t), many.title_vectors(t))
    for part in many.parts():  # parts hold whole titles and stay near the row budget
        n = pq.ParquetFile(tmp_path / "many" / "shots" / part).metadata.num_rows
        assert n <= 20


def test_store_opens_in_pandas_and_pyarrow_dataset(store):
    import pyarrow.dataset as ds

    table = ds.dataset(store.path / "shots", format="parquet").to_table(
        columns=["title_id", "shot_index", "fused"])
    assert table.num_rows == store.info.n_shots
    assert table.schema.field("fused").type.list_size == store.dims["fused"]


# ----------------------------------------------------------------------------- bad input


def _err(tmp_path, df, match, **kw):
    src = write_shots(df, tmp_path / "bad.parquet", SHOT_SCHEMA)
    with pytest.raises(StoreError, match=match):
        import_shots(src, tmp_path / "out", progress=False, **kw)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_error_inconsistent_dims(tmp_path):
    df = random_shots()
    df.at[7, "video"] = np.zeros(5, np.float32)
    _err(tmp_path, df, r"row 7 \(title 't1', shot 2\): video has 5 values, expected 6")


def test_error_odd_first_row_is_the_one_named(tmp_path):
    """Dims are the length most rows have: a bad first row is blamed, not the second."""
    df = random_shots()
    df.at[0, "video"] = np.zeros(5, np.float32)
    _err(tmp_path, df, r"row 0 \(title 't0', shot 0\): video has 5 values, expected 6, as "
                       "most rows have")


def test_error_nan(tmp_path):
    df = random_shots()
    df.at[3, "audio"] = np.array([0, np.nan, 0, 1], np.float32)
    _err(tmp_path, df, r"row 3 \(title 't0', shot 3\): audio contains NaN or inf")


def test_error_duplicate_shot_index(tmp_path):
    df = random_shots()
    df.at[6, "shot_index"] = 0
    _err(tmp_path, df, r"title 't1' has shot_index 0 more than once \(rows \[5, 6\]\)")


def test_error_missing_shot_index(tmp_path):
    df = random_shots().drop(index=12)  # t2 shot 2
    _err(tmp_path, df, r"title 't2' is missing shot_index 2")


def test_error_unknown_title(tmp_path):
    df = random_shots()
    pq.write_table(pa.table({"title_id": ["t0", "t1"]}), tmp_path / "titles.parquet")
    _err(tmp_path, df, r"title 't2' is not in the titles table",
         titles=tmp_path / "titles.parquet")


def test_error_empty_input(tmp_path):
    _err(tmp_path, random_shots().iloc[:0], r"no shots \(empty input\)")


def test_error_missing_columns_and_null_video(tmp_path):
    df = random_shots().drop(columns=["audio"])
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "m.pq")
    with pytest.raises(StoreError, match="needs columns video, audio, text"):
        import_shots(tmp_path / "m.pq", tmp_path / "out", progress=False)
    df = random_shots()
    df.at[2, "video"] = None
    _err(tmp_path, df, r"row 2 \(title 't0', shot 2\): video is null")


def test_error_bad_times_and_not_parquet(tmp_path):
    df = random_shots()
    df.at[4, "end_s"] = -1.0
    _err(tmp_path, df, r"row 4 .*bad times")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(StoreError, match="cannot read as Parquet"):
        import_shots(tmp_path / "junk.parquet", tmp_path / "out", progress=False)


def test_failed_import_keeps_previous_store(tmp_path):
    good = write_shots(random_shots(), tmp_path / "good.parquet")
    import_shots(good, tmp_path / "s", progress=False)
    before = ShotStore(tmp_path / "s").title_vectors("t0")
    bad = random_shots()
    bad.at[0, "video"] = np.full(6, np.inf, np.float32)
    with pytest.raises(StoreError):
        import_shots(write_shots(bad, tmp_path / "bad.parquet"), tmp_path / "s", progress=False)
    np.testing.assert_array_equal(ShotStore(tmp_path / "s").title_vectors("t0"), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "good.parquet", "s"]


def test_refuses_to_overwrite_a_non_store_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(StoreError, match="not a mediafm store"):
        import_shots(write_shots(random_shots(), tmp_path / "x.pq"), tmp_path / "mine",
                     progress=False)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_modality_ablation_fuses_a_subset(tmp_path):
    df = random_shots(n_titles=2, n_shots=4, dims=(6, 4, 3), text_prob=1.0)
    src = write_shots(df, tmp_path / "shots.parquet")
    store = import_shots(src, tmp_path / "va", fused_modalities=("audio", "video"),
                         progress=False)
    assert store.dims["fused"] == 10 and store.info.fused_modalities == ("video", "audio")
    row = df.iloc[0]
    v = row.video / np.linalg.norm(row.video)
    a = row.audio / np.linalg.norm(row.audio)
    want = np.concatenate([v, a]) / np.sqrt(2)
    np.testing.assert_allclose(store.title_vectors("t0")[0], want, atol=1e-6)
    assert ShotStore(tmp_path / "va").info.fused_modalities == ("video", "audio")
    with pytest.raises(StoreError, match="non-empty subset"):
        import_shots(src, tmp_path / "x", fused_modalities=("smell",), progress=False)


def test_all_null_text_needs_known_dims(tmp_path):
    df = random_shots(n_titles=2, text_prob=0.0)  # a catalog without subtitles
    with pytest.raises(StoreError, match="'text' is null in every row"):
        import_shots(write_shots(df, tmp_path / "a.pq"), tmp_path / "a", progress=False)
    fixed = SHOT_SCHEMA.set(SHOT_SCHEMA.get_field_index("text"),
                            pa.field("text", pa.list_(pa.float32(), 3)))
    store = import_shots(write_shots(df, tmp_path / "b.pq", fixed), tmp_path / "b",
                         progress=False)
    assert store.dims["text"] == 3
    assert not pd.read_parquet(tmp_path / "b" / "shots")["has_text"].any()


def test_fused_cache_is_checked_against_the_parts(store, tmp_path):
    """A cache that no longer matches its Parquet part is ignored with a warning; a damaged
    cache file is a clear error naming the file; re-importing drops the cache with the store."""
    import shutil
    import warnings

    from mediafm.store import FUSED_CACHE, write_fused_cache

    copy = tmp_path / "store"
    shutil.copytree(store.path, copy)
    cache = write_fused_cache(copy, progress=False)
    assert sorted(p.name for p in cache.glob("*.arrow")) == [
        p.replace(".parquet", ".arrow") for p in store.parts()]
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".")]  # no temp left

    part = store.parts()[0]
    title = store.titles_in(part)[-1]  # not at the part's first row
    want = store.title_vectors(title)
    out = np.empty_like(want)
    ShotStore(copy).row_reader().read(store.title_row(title), 0, out)
    np.testing.assert_array_equal(out, want)
    ShotStore(copy).row_reader().read(store.title_row(title), 2, out[:3])
    np.testing.assert_array_equal(out[:3], want[2:5])

    damaged = cache / part.replace(".parquet", ".arrow")
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(StoreError, match=f"{damaged.name}.*rerun `mediafm cache`"):
        ShotStore(copy).row_reader().read(store.title_row(title), 0, out[:1])

    table = pq.read_table(copy / "shots" / part)
    pq.write_table(table, copy / "shots" / part, compression="none")  # a part edited by hand
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reopened = ShotStore(copy)
    assert not reopened.has_fused_cache and "stale" in str(caught[0].message)

    import_shots(write_shots(random_shots(), tmp_path / "s.parquet"), copy, progress=False)
    assert not (copy / FUSED_CACHE).exists() and not ShotStore(copy).has_fused_cache


def test_recent_titles_are_kept_within_a_budget_and_not_pickled(store):
    """A title read again comes from memory, equal to a fresh read; the oldest go first when
    the budget is spent; a store sent to a worker (pickled) takes none of them along."""
    import pickle

    from mediafm.store.reader import RecentTables

    s = ShotStore(store.path)
    ids = s.titles["title_id"].tolist()[:3]
    first = s.arrays(ids[0], ("start_s", "end_s"))
    fresh = ShotStore(store.path).times(ids[0])
    np.testing.assert_array_equal(first["start_s"], fresh[0])
    np.testing.assert_array_equal(s.title_vectors(ids[1]), ShotStore(store.path).title_vectors(
        ids[1]))
    assert (ids[0], ("start_s", "end_s")) in s._recent.tables
    reads = []
    small = RecentTables(budget=2 * pa.table({"x": np.zeros(100)}).get_total_buffer_size())
    for i in range(3):
        small.get(("t", i), lambda i=i: reads.append(i) or pa.table({"x": np.full(100, i)}))
    assert list(k[1] for k in small.tables) == [1, 2] and small.used <= small.budget
    assert small.get(("t", 2), lambda: reads.append("again")).column("x")[0].as_py() == 2
    assert reads == [0, 1, 2]  # the kept one was not read again
    copy = pickle.loads(pickle.dumps(s))
    assert copy._recent.tables == {} and copy.times(ids[0])[0].tolist() == fresh[0].tolist()
