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

from mediafm import artifacts
from mediafm.atomic import atomic_dir
from mediafm.errors import Mismatch, NotFound, StoreError, require
from mediafm.fusion import unit_norm
from mediafm.store import ShotStore

EXACT_UP_TO = 50_000  # rows: below this exact search is fast enough (<~10 ms a query)
INDEX_KINDS = {"shots": "shot_embeddings", "clips": "clip_embeddings", "titles": "title_embeddings"}
KEY_KINDS = {k: list(artifacts.KINDS[a].keys) for k, a in INDEX_KINDS.items()}


def _faiss():
    return require("faiss", "similarity search (FAISS; faiss-gpu on CUDA machines)")


def read_embeddings(path: str | os.PathLike) -> tuple[str, pd.DataFrame, np.ndarray, dict]:
    """(kind, keys, (n, dim) unit-normed float32 vectors, recorded metadata) of an embeddings
    file (shot, clip or title embeddings: ``artifacts``)."""
    emb = artifacts.read(path, *artifacts.EMBEDDINGS)
    x = emb.vectors()
    keys = emb.frame()[list(emb.kind.keys)]
    if keys.duplicated().any():
        raise StoreError(f"{path}: key {keys[keys.duplicated()].iloc[0].tolist()} appears "
                         "twice")
    kind = next(k for k, a in INDEX_KINDS.items() if a == emb.kind.name)
    return kind, keys, np.ascontiguousarray(unit_norm(x.astype(np.float32))), emb.meta


def build_index(embeddings: str | os.PathLike, out: str | os.PathLike,
                store: str | os.PathLike | ShotStore | None = None, target_recall: float = 0.95,
                exact_up_to: int = EXACT_UP_TO, seed: int = 0) -> Path:
    """Build ``out`` from an embeddings file (see the module docstring). With ``store``
    (shot embeddings), the keys get shot times and must all be shots of that store."""
    if not 0 < target_recall <= 1:
        raise ValueError(f"--recall must be in (0, 1], got {target_recall}")
    kind, keys, x, made = read_embeddings(embeddings)
    meta = {"kind": kind, "n": len(x), "dim": x.shape[1],
            "metric": "cosine (inner product, unit vectors)",
            "embeddings": {"path": str(Path(embeddings).absolute()),
                           "bytes": Path(embeddings).stat().st_size,
                           **{k: made[k] for k in ("readout", "model") if k in made}},
            "store": made.get("store")}
    if store is not None and kind == "shots":
        store = store if isinstance(store, ShotStore) else ShotStore(store)
        artifacts.check_store(made, store, f"the embeddings {embeddings}")
        keys = _with_times(keys, store)
        meta["store"] = artifacts.store_stamp(store)
    index, meta["index"] = _faiss_index(x, target_recall, exact_up_to, seed)
    with atomic_dir(out) as tmp:
        _faiss().write_index(index, str(tmp / "index.faiss"))
        keys.to_parquet(tmp / "keys.parquet", index=False)
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def _faiss_index(x: np.ndarray, target_recall: float, exact_up_to: int, seed: int):
    """(a FAISS index holding ``x``, what index.json records of it)."""
    faiss = _faiss()
    n, dim = x.shape
    if n <= exact_up_to:
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        return index, {"type": "IndexFlatIP", "exact": True}
    nlist = int(min(65536, 4 * math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    index.train(x[rng.choice(n, size=min(n, 64 * nlist), replace=False)])
    index.add(x)
    nprobe, recall = _tune_nprobe(faiss, index, x, target_recall, rng)
    return index, {"type": "IndexIVFFlat", "exact": False, "nlist": nlist, "nprobe": nprobe,
                   "recall_at_10": recall, "target_recall_at_10": target_recall}


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
    """Shot keys with their times from the store (read part by part); a key the store does
    not have is an error."""
    times = pd.concat([t.assign(title_id=title_id) for title_id, t in
                       store.iter_shots(("shot_index", "start_s", "end_s"))],
                      ignore_index=True)
    merged = keys.merge(times, on=["title_id", "shot_index"], how="left")
    missing = merged["start_s"].isna()
    if missing.any():
        r = merged[missing].iloc[0]
        raise NotFound(f"embeddings have title {r.title_id!r} shot {r.shot_index}, which the "
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
        try:
            meta = json.loads((path / "index.json").read_text())
            index = faiss.read_index(str(path / "index.faiss"))
            keys = pd.read_parquet(path / "keys.parquet")
        except (OSError, ValueError, RuntimeError) as e:  # faiss raises RuntimeError
            raise StoreError(f"{path}: damaged index ({e}); build it again "
                             "(mediafm index)") from None
        if meta["index"].get("nprobe"):
            index.nprobe = meta["index"]["nprobe"]
        return cls(path, index, keys, meta)

    @classmethod
    def from_vectors(cls, kind: str, keys: pd.DataFrame, x: np.ndarray, meta: dict,
                     name: str = "memory") -> Index:
        """An exact index in memory over ``x`` (rows of ``keys``), for a store small enough
        to search without building one (the explorer)."""
        x = np.ascontiguousarray(unit_norm(np.asarray(x, np.float32)))
        index, info = _faiss_index(x, 1.0, len(x), 0)
        return cls(Path(name), index, keys.reset_index(drop=True),
                   {"kind": kind, "n": len(x), "dim": x.shape[1], "index": info, **meta})

    def check_store(self, store: ShotStore) -> None:
        """The index's shots are the store's: a ``Mismatch`` when it was built from another
        store's embeddings (an index without that record: every key must be a shot of it)."""
        if self.kind != "shots":
            raise Mismatch(f"{self.path}: an index of {self.kind}; this needs one of shots")
        if (self.meta.get("store") or {}).get("fingerprint"):
            artifacts.check_store(self.meta, store, f"the index {self.path}")
            return
        n = dict(zip(store.titles["title_id"], store.titles["n_shots"], strict=True))
        bad = [(t, s) for t, s in zip(self.keys["title_id"], self.keys["shot_index"],
                                      strict=True) if not 0 <= s < n.get(t, 0)]
        if bad:
            raise Mismatch(f"the index {self.path} holds title {bad[0][0]!r} shot {bad[0][1]}, "
                           f"which the store {store.path} does not: built from another store")

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
            raise NotFound(f"{what} is not in the index {self.path}")
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
        if k < 1:
            raise ValueError(f"-k must be >= 1, got {k}")
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
