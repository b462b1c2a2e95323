"""Similarity search over shot, clip or title embeddings, with FAISS.

An index is built from an embeddings file (``mediafm embed`` output): vectors are unit-normed
so inner product is cosine similarity. Small collections get exact search (``IndexFlatIP``);
large ones an inverted-file index (``IndexIVFFlat``, ``nlist ~ 4 sqrt(n)`` lists) whose
``nprobe`` is chosen at build time as the smallest that reaches ``target_recall`` at 10
against exact search on a sample of queries, and recorded. ``INDEX/`` holds ``index.faiss``,
``keys.parquet`` (what each row is, with shot times when a store is given) and
``index.json`` (kind, parameters, measured recall, and the embeddings file it came from).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mediafm.atomic import atomic_dir
from mediafm.fusion import unit_norm
from mediafm.store import ShotStore, StoreError

EXACT_UP_TO = 50_000  # rows: below this exact search is fast enough (<~10 ms a query)
KEY_KINDS = {"shots": ["title_id", "shot_index"], "clips": ["clip_id"], "titles": ["title_id"]}


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError("similarity search needs FAISS: pip install 'mediafm[search]' "
                          "(faiss-cpu; faiss-gpu on CUDA machines)") from None
    return faiss


def read_embeddings(path: str | os.PathLike) -> tuple[str, pd.DataFrame, np.ndarray]:
    """(kind, keys, (n, dim) unit-normed float32 vectors) of an embeddings Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such embeddings file")
    names = pq.read_schema(path).names
    kind = ("shots" if {"title_id", "shot_index"} <= set(names) else
            "clips" if "clip_id" in names else "titles" if "title_id" in names else None)
    if kind is None or "embedding" not in names:
        raise ValueError(f"{path}: needs an embedding column and title_id, shot_index (shots), "
                         f"clip_id (clips) or title_id (titles); found {names}")
    table = pq.read_table(path, columns=[*KEY_KINDS[kind], "embedding"])
    from mediafm.store import fixed_list_to_numpy

    x = fixed_list_to_numpy(table["embedding"])
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: embeddings contain NaN or inf")
    keys = table.drop_columns(["embedding"]).to_pandas()
    if keys.duplicated().any():
        raise ValueError(f"{path}: key {keys[keys.duplicated()].iloc[0].tolist()} appears twice")
    return kind, keys, np.ascontiguousarray(unit_norm(x.astype(np.float32)))


def build_index(embeddings: str | os.PathLike, out: str | os.PathLike,
                store: str | os.PathLike | None = None, target_recall: float = 0.95,
                exact_up_to: int = EXACT_UP_TO, seed: int = 0) -> Path:
    """Build ``out`` from an embeddings file (see the module docstring)."""
    faiss = _faiss()
    kind, keys, x = read_embeddings(embeddings)
    n, dim = x.shape
    if store is not None and kind == "shots":
        keys = _with_times(keys, ShotStore(store))
    meta = {"kind": kind, "n": n, "dim": dim, "metric": "cosine (inner product, unit vectors)",
            "embeddings": {"path": str(Path(embeddings).absolute()),
                           "bytes": Path(embeddings).stat().st_size},
            "store": str(Path(store).absolute()) if store else None}
    if n <= exact_up_to:
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        meta["index"] = {"type": "IndexFlatIP", "exact": True}
    else:
        nlist = int(min(65536, 4 * math.sqrt(n)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = x[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.train(sample)
        index.add(x)
        nprobe, recall = _tune_nprobe(faiss, index, x, target_recall, rng)
        meta["index"] = {"type": "IndexIVFFlat", "exact": False, "nlist": nlist,
                         "nprobe": nprobe, "recall_at_10": recall,
                         "target_recall_at_10": target_recall}
    with atomic_dir(out) as tmp:
        faiss.write_index(index, str(tmp / "index.faiss"))
        keys.to_parquet(tmp / "keys.parquet", index=False)
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def _tune_nprobe(faiss, index, x: np.ndarray, target: float, rng, queries: int = 200
                 ) -> tuple[int, float]:
    """The smallest nprobe (powers of two) reaching ``target`` recall@10 on sample queries."""
    q = x[rng.choice(len(x), size=min(queries, len(x)), replace=False)]
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(q, 10)
    nprobe, recall = 1, 0.0
    while nprobe <= index.nlist:
        index.nprobe = nprobe
        _, got = index.search(q, 10)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth,
                                                                          strict=True)]))
        if recall >= target:
            break
        nprobe *= 2
    index.nprobe = min(nprobe, index.nlist)
    return index.nprobe, recall


def _with_times(keys: pd.DataFrame, store: ShotStore) -> pd.DataFrame:
    times = []
    for title_id, n in zip(store.titles["title_id"], store.titles["n_shots"], strict=True):
        row = store.titles.iloc[store.title_row(title_id)]
        t = store.read_part(row.part, ["start_s", "end_s"]).slice(int(row.row_offset), int(n))
        times.append(pd.DataFrame({"title_id": title_id, "shot_index": np.arange(n),
                                   "start_s": t["start_s"].to_numpy(),
                                   "end_s": t["end_s"].to_numpy()}))
    merged = keys.merge(pd.concat(times), on=["title_id", "shot_index"], how="left")
    missing = merged["start_s"].isna()
    if missing.any():
        r = merged[missing].iloc[0]
        raise StoreError(f"embeddings have title {r.title_id!r} shot {r.shot_index}, which the "
                         f"store {store.path} does not: built from other embeddings")
    return merged


class Index:
    """A built index: search by a row's key (``title``/``shot`` or ``clip``) or by a vector."""

    def __init__(self, path: Path, index, keys: pd.DataFrame, meta: dict):
        self.path, self.index, self.keys, self.meta = path, index, keys, meta
        self.kind = meta["kind"]
        self._row = {tuple(k): i for i, k in enumerate(
            keys[KEY_KINDS[self.kind]].itertuples(index=False, name=None))}

    @classmethod
    def load(cls, path: str | os.PathLike) -> Index:
        faiss = _faiss()
        path = Path(path)
        if not (path / "index.json").is_file():
            raise FileNotFoundError(f"{path}: no index.json (not a mediafm index)")
        meta = json.loads((path / "index.json").read_text())
        index = faiss.read_index(str(path / "index.faiss"))
        if meta["index"].get("nprobe"):
            index.nprobe = meta["index"]["nprobe"]
        return cls(path, index, pd.read_parquet(path / "keys.parquet"), meta)

    def row(self, title: str | None = None, shot: int | None = None,
            clip: str | None = None) -> int:
        """The row of a key; an unknown one is an error naming it."""
        if self.kind == "clips":
            key, what = (clip,), f"clip {clip!r}"
        elif self.kind == "titles":
            key, what = (title,), f"title {title!r}"
        else:
            if shot is None:
                raise ValueError("a shot index needs --shot N (or search a title index)")
            key, what = (title, int(shot)), f"title {title!r} shot {shot}"
        if None in key:
            raise ValueError(f"this index holds {self.kind}: give "
                             f"{' and '.join(KEY_KINDS[self.kind])}")
        if key not in self._row:
            raise KeyError(f"{what} is not in the index {self.path}")
        return self._row[key]

    def vector(self, row: int) -> np.ndarray:
        if hasattr(self.index, "make_direct_map") and not getattr(self, "_mapped", False):
            self.index.make_direct_map()
            self._mapped = True
        return self.index.reconstruct(int(row))

    def search(self, title: str | None = None, shot: int | None = None,
               clip: str | None = None, k: int = 10, other_titles: bool = False,
               vector: np.ndarray | None = None) -> pd.DataFrame:
        """The ``k`` nearest rows (the query row itself excluded), best first, with scores."""
        own = None
        if vector is None:
            own = self.row(title, shot, clip)
            vector = self.vector(own)
            if self.kind != "clips":
                title = self.keys.iloc[own]["title_id"]
        q = unit_norm(np.asarray(vector, np.float32).reshape(1, -1))
        if q.shape[1] != self.meta["dim"]:
            raise ValueError(f"query has {q.shape[1]} dims, the index {self.meta['dim']}")
        fetch = k + 1
        while True:
            scores, rows = self.index.search(q, min(fetch, len(self.keys)))
            found = pd.DataFrame({"row": rows[0], "score": scores[0]})
            found = found[(found["row"] >= 0) & (found["row"] != own)]
            hits = self.keys.iloc[found["row"]].assign(score=found["score"].to_numpy())
            if other_titles and "title_id" in hits and title is not None:
                hits = hits[hits["title_id"] != title]
            if len(hits) >= k or fetch >= len(self.keys):
                break
            fetch *= 4
        hits = hits.head(k).reset_index(drop=True)
        return hits.assign(rank=np.arange(1, len(hits) + 1))
