"""Similarity search over shot, clip or title embeddings, with FAISS; indexes that grow.

An index is built from an embeddings file (``mediafm embed`` output): vectors are unit-normed
so inner product is cosine similarity. Small collections get exact search (``IndexFlatIP``);
large ones an inverted-file index (``IndexIVFFlat``, ``nlist ~ 4 sqrt(n)`` lists) whose
``nprobe`` is chosen as the smallest that reaches ``target_recall`` at 10 against exact search
on a sample of queries, and recorded. Every vector has an explicit id (``keys.parquet``'s
``id``), so titles are added to an index and removed from it without rebuilding
(``add_to_index``, ``remove_from_index``); after each change the choice of exact or IVF and
the measured recall are made again, so what index.json says stays true.

``INDEX/`` holds ``index.faiss``, ``keys.parquet`` (what each id is, with shot times when a
store is given) and ``index.json`` (kind, parameters, measured recall, the embeddings with
their readout and model, the store); with ``--store``, ``INDEX/text/`` is an index of the
store's text vectors of the same form, for searching by words (``query.search_text``).
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm import artifacts
from mediafm.atomic import atomic_dir
from mediafm.errors import MediaFMError, Mismatch, NotFound, StoreError, require
from mediafm.fusion import unit_norm
from mediafm.store import ShotStore

EXACT_UP_TO = 50_000  # rows: below this exact search is fast enough (<~10 ms a query)
INDEX_KINDS = {"shots": "shot_embeddings", "clips": "clip_embeddings", "titles": "title_embeddings"}
KEY_KINDS = {k: list(artifacts.KINDS[a].keys) for k, a in INDEX_KINDS.items()}
TEXT = "text"  # the subfolder of an index that holds the store's text vectors


def _faiss():
    return require("faiss", "similarity search (FAISS; faiss-gpu on CUDA machines)")


_this_thread = threading.local()


def one_thread_per_query() -> None:
    """Make FAISS use one OpenMP thread for the queries of the calling thread.

    A server answers many small queries at once, one per worker thread. With FAISS's default
    (every core) each query starts threads that then wait busily: measured on 2 cores, 9 ms
    of CPU for a query that takes 3.4 ms on one thread (and less wall time), CPU that the
    other requests then lack. OpenMP keeps the setting per thread, so each worker thread
    calls this (once; later calls cost a lookup)."""
    if not getattr(_this_thread, "single", False):
        _faiss().omp_set_num_threads(1)
        _this_thread.single = True


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


def build_index(embeddings: str | os.PathLike | None, out: str | os.PathLike,
                store: str | os.PathLike | ShotStore | None = None, target_recall: float = 0.95,
                exact_up_to: int = EXACT_UP_TO, seed: int = 0) -> Path:
    """Build ``out`` from an embeddings file and / or a store (see the module docstring).
    With ``store``, shot keys get their times and must be shots of it, and the store's text
    vectors are indexed in ``out/text`` for searching by words."""
    if not 0 < target_recall <= 1:
        raise ValueError(f"--recall must be in (0, 1], got {target_recall}")
    if embeddings is None and store is None:
        raise ValueError("give --embeddings (shots, clips or titles) and / or --store")
    store = ShotStore(store) if store is not None and not isinstance(store, ShotStore) \
        else store
    with atomic_dir(out) as tmp:
        if embeddings is not None:
            kind, keys, x, made = read_embeddings(embeddings)
            meta = {"kind": kind, "embeddings": {
                "path": str(Path(embeddings).absolute()),
                **{k: made[k] for k in ("readout", "model") if k in made}},
                "store": made.get("store")}
            if store is not None and kind == "shots":
                artifacts.check_store(made, store, f"the embeddings {embeddings}")
                keys = _with_times(keys, store)
                meta["store"] = artifacts.store_stamp(store)
            _write(tmp, keys.assign(id=np.arange(len(keys), dtype=np.int64)), x, meta,
                   target_recall, exact_up_to, seed)
        else:
            (tmp / "index.json").write_text(json.dumps(
                {"kind": "shots", "n": 0, "store": artifacts.store_stamp(store),
                 "index": {"type": "none"}}, indent=2))
        if store is not None and "text" in store.info.modalities:
            keys, x = store_text(store)
            _write(tmp / TEXT, keys, x, {"kind": "shots", "vectors": "text",
                                         "store": artifacts.store_stamp(store)},
                   target_recall, exact_up_to, seed)
    return Path(out)


def store_text(store: ShotStore) -> tuple[pd.DataFrame, np.ndarray]:
    """(keys with ids, unit-normed text vectors) of every shot of the store that has text."""
    keys, vectors = [], []
    for title_id, x in store.iter_titles("text"):
        shots = np.flatnonzero(np.abs(x).sum(axis=1) > 0)
        keys.append(pd.DataFrame({"title_id": title_id, "shot_index": shots}))
        vectors.append(x[shots])
    keys = pd.concat(keys, ignore_index=True)
    x = np.concatenate(vectors) if vectors else np.zeros((0, store.dims["text"]), np.float32)
    return keys.assign(id=np.arange(len(keys), dtype=np.int64)), \
        np.ascontiguousarray(unit_norm(x.astype(np.float32)))


def _write(folder: Path, keys: pd.DataFrame, x: np.ndarray, meta: dict, target_recall: float,
           exact_up_to: int, seed: int) -> None:
    """One index folder: the FAISS index over ``x`` with ``keys.id`` as ids, its keys and
    its index.json."""
    folder.mkdir(parents=True, exist_ok=True)
    index, info = _faiss_index(x, keys["id"].to_numpy(np.int64), target_recall, exact_up_to,
                               seed)
    _faiss().write_index(index, str(folder / "index.faiss"))
    keys.to_parquet(folder / "keys.parquet", index=False)
    meta = {**meta, "n": len(x), "dim": int(x.shape[1]),
            "metric": "cosine (inner product, unit vectors)", "index": info}
    (folder / "index.json").write_text(json.dumps(meta, indent=2))


def _faiss_index(x: np.ndarray, ids: np.ndarray, target_recall: float, exact_up_to: int,
                 seed: int):
    """(a FAISS index holding ``x`` under ``ids``, what index.json records of it)."""
    faiss = _faiss()
    n, dim = x.shape
    if n <= exact_up_to:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        index.add_with_ids(x, ids)
        return index, {"type": "IndexFlatIP", "exact": True}
    nlist = int(min(65536, 4 * math.sqrt(n)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    index.train(x[rng.choice(n, size=min(n, 64 * nlist), replace=False)])
    index.add_with_ids(x, ids)
    nprobe, recall = _tune_nprobe(faiss, index, x, ids, target_recall, rng)
    return index, {"type": "IndexIVFFlat", "exact": False, "nlist": nlist, "nprobe": nprobe,
                   "recall_at_10": recall, "target_recall_at_10": target_recall}


def _tune_nprobe(faiss, index, x: np.ndarray, ids: np.ndarray, target: float, rng,
                 queries: int = 200) -> tuple[int, float]:
    """The smallest nprobe (powers of two) reaching ``target`` recall@10 on sample queries,
    against exact search over the same vectors (``x``, held under ``ids``)."""
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    q = x[rng.choice(len(x), size=min(queries, len(x)), replace=False)]
    _, truth = exact.search(q, 10)
    truth = ids[truth]
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


def _vectors(faiss, index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every vector an index holds (exact or IVF)."""
    if isinstance(index, faiss.IndexIDMap2) or hasattr(index, "id_map"):
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        inner = faiss.downcast_index(index.index)
        return ids, faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d).reshape(
            inner.ntotal, inner.d).copy()
    ids, parts = [], []
    invlists = index.invlists
    for i in range(index.nlist):
        n = invlists.list_size(i)
        if n:
            ids.append(faiss.rev_swig_ptr(invlists.get_ids(i), n).copy())
            codes = faiss.rev_swig_ptr(invlists.get_codes(i), n * index.code_size).copy()
            parts.append(codes.view(np.float32).reshape(n, index.d))
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
    return np.concatenate(ids), np.concatenate(parts)


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


# ------------------------------------------------------------------ an index that grows


def add_to_index(path: str | os.PathLike, embeddings: str | os.PathLike,
                 store: str | os.PathLike | ShotStore | None = None) -> Path:
    """Add the titles (or clips) of an embeddings file to the index at ``path``, replacing
    those it holds already: the same model and readout, or a ``Mismatch``. With ``store``
    (the store grew), the index's shots must all be shots of it, and its text index is made
    again from it."""
    index = Index.load(path)
    kind, keys, x, made = read_embeddings(embeddings)
    mine = index.meta.get("embeddings", {})
    if kind != index.kind:
        raise Mismatch(f"{embeddings} holds {kind}; the index {path} holds {index.kind}")
    if index.index is not None:
        if x.shape[1] != index.meta["dim"]:
            raise Mismatch(f"{embeddings} has {x.shape[1]} dims; the index {path} "
                           f"{index.meta['dim']}")
        for key in ("readout", "model"):
            a, b = mine.get(key), made.get(key)
            if key == "model":
                a, b = (a or {}).get("fingerprint"), (b or {}).get("fingerprint")
            if a and b and a != b:
                raise Mismatch(f"{embeddings} was made with another {key} than the index "
                               f"{path} ({b} against {a})")
    by = KEY_KINDS[kind][0]
    kept = index.keys[~index.keys[by].isin(set(keys[by]))] if len(index.keys) else index.keys
    ids, old = index.all_vectors()
    keep = np.isin(ids, kept["id"].to_numpy()) if len(ids) else np.zeros(0, bool)
    start = int(ids.max()) + 1 if len(ids) else 0
    new_keys = keys.assign(id=np.arange(start, start + len(keys), dtype=np.int64))
    store = ShotStore(store) if store is not None and not isinstance(store, ShotStore) \
        else store
    if store is not None and kind == "shots":
        artifacts.check_store(made, store, f"the embeddings {embeddings}")
        new_keys = _with_times(new_keys, store)
        _check_keys(kept, store, path)
    all_keys = pd.concat([kept, new_keys], ignore_index=True)
    order = np.argsort(np.concatenate([ids[keep], new_keys["id"].to_numpy()]))
    vectors = np.concatenate([old[keep], x])[order] if len(old) else x
    meta = {**{k: v for k, v in index.meta.items() if k not in ("n", "dim", "index")},
            "embeddings": {**mine, "added": [*mine.get("added", []),
                                             str(Path(embeddings).absolute())]}}
    if store is not None:
        meta["store"] = artifacts.store_stamp(store)
    return _rewrite(path, all_keys.sort_values("id").reset_index(drop=True), vectors, meta,
                    index, store)


def remove_from_index(path: str | os.PathLike, title_id: str) -> Path:
    """Remove a title's rows (shots, or the title) from the index at ``path``."""
    index = Index.load(path)
    if "title_id" not in index.keys:
        raise ValueError(f"the index {path} holds {index.kind}, which have no title")
    gone = index.keys["title_id"] == title_id
    if not gone.any():
        raise NotFound(f"title {title_id!r} is not in the index {path}")
    ids, x = index.all_vectors()
    keep = ~np.isin(ids, index.keys.loc[gone, "id"].to_numpy())
    return _rewrite(path, index.keys[~gone].reset_index(drop=True), x[keep],
                    {k: v for k, v in index.meta.items() if k not in ("n", "dim", "index")},
                    index, None, title_id)


def _rewrite(path, keys: pd.DataFrame, x: np.ndarray, meta: dict, index: Index,
             store: ShotStore | None, removed: str | None = None) -> Path:
    """Write the updated index whole (atomically): exact or IVF chosen again for its size,
    recall measured again; its text index follows (made again from ``store``, or with the
    removed title's rows dropped)."""
    target = index.meta.get("index", {}).get("target_recall_at_10", 0.95)
    with atomic_dir(path) as tmp:
        if len(keys):
            _write(tmp, keys, x, meta, target, EXACT_UP_TO, 0)
        else:
            (tmp / "index.json").write_text(json.dumps({**meta, "n": 0,
                                                        "index": {"type": "none"}}, indent=2))
        text = index.text
        if store is not None and "text" in store.info.modalities:
            k, v = store_text(store)
            _write(tmp / TEXT, k, v, {"kind": "shots", "vectors": "text",
                                      "store": artifacts.store_stamp(store)}, target,
                   EXACT_UP_TO, 0)
        elif text is not None:
            ids, v = text.all_vectors()
            keep = (text.keys["title_id"] != removed).to_numpy()
            order = np.argsort(ids)
            _write(tmp / TEXT, text.keys[keep].reset_index(drop=True), v[order][keep],
                   {k: val for k, val in text.meta.items() if k not in ("n", "dim", "index")},
                   target, EXACT_UP_TO, 0)
    return Path(path)


def _check_keys(keys: pd.DataFrame, store: ShotStore, path) -> None:
    n = dict(zip(store.titles["title_id"], store.titles["n_shots"], strict=True))
    bad = [(t, s) for t, s in zip(keys["title_id"], keys["shot_index"], strict=True)
           if not 0 <= s < n.get(t, 0)]
    if bad:
        raise Mismatch(f"the index {path} holds title {bad[0][0]!r} shot {bad[0][1]}, which the "
                       f"store {store.path} does not: built from another store")


class Index:
    """A built index: search by a row's key (``title``/``shot`` or ``clip``) or by a vector."""

    def __init__(self, path: Path, index, keys: pd.DataFrame, meta: dict):
        self.path, self.index, self.meta = path, index, meta
        if "id" not in keys:  # built by mediafm 0.2: ids are row numbers
            keys = keys.assign(id=np.arange(len(keys), dtype=np.int64))
        self.keys = keys.reset_index(drop=True)
        self.kind = meta["kind"]
        ids = self.keys["id"].to_numpy(np.int64)
        self._row_of_id = pd.Series(np.arange(len(ids)), index=ids)
        self._row = {tuple(k): i for i, k in enumerate(
            self.keys[KEY_KINDS[self.kind]].itertuples(index=False, name=None))}
        self._text: Index | None | bool = False
        self._title_rows: pd.Series | None = None
        self._titles: np.ndarray | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Index:
        faiss = _faiss()
        path = Path(path)
        if not (path / "index.json").is_file():
            raise FileNotFoundError(f"{path}: no index.json (not a mediafm index)")
        try:
            meta = json.loads((path / "index.json").read_text())
            if meta["index"]["type"] == "none":
                return cls(path, None, pd.DataFrame({"title_id": [], "shot_index": []}), meta)
            index = faiss.read_index(str(path / "index.faiss"))
            keys = pd.read_parquet(path / "keys.parquet")
        except (OSError, ValueError, RuntimeError, KeyError) as e:  # faiss: RuntimeError
            raise StoreError(f"{path}: damaged index ({e}); build it again "
                             "(mediafm index)") from None
        if meta["index"].get("nprobe"):
            index.nprobe = meta["index"]["nprobe"]
        return cls(path, index, keys, meta)

    @classmethod
    def from_vectors(cls, kind: str, keys: pd.DataFrame, x: np.ndarray, meta: dict,
                     name: str = "memory") -> Index:
        """An exact index in memory over ``x`` (rows of ``keys``), for a store small enough
        to search without building one (the explorer, searching a store by words)."""
        x = np.ascontiguousarray(unit_norm(np.asarray(x, np.float32)))
        keys = keys.reset_index(drop=True).assign(id=np.arange(len(x), dtype=np.int64))
        index, info = _faiss_index(x, keys["id"].to_numpy(), 1.0, len(x), 0)
        return cls(Path(name), index, keys, {"kind": kind, "n": len(x), "dim": x.shape[1],
                                             "index": info, **meta})

    @property
    def text(self) -> Index | None:
        """The index of the store's text vectors built beside this one, or None."""
        if self._text is False:
            self._text = Index.load(self.path / TEXT) if (self.path / TEXT).is_dir() else None
        return self._text

    def check_store(self, store: ShotStore) -> None:
        """The index's shots are the store's: a ``Mismatch`` when it was built from another
        store's embeddings (an index without that record: every key must be a shot of it)."""
        if self.kind != "shots":
            raise Mismatch(f"{self.path}: an index of {self.kind}; this needs one of shots")
        if (self.meta.get("store") or {}).get("fingerprint"):
            artifacts.check_store(self.meta, store, f"the index {self.path}")
            return
        _check_keys(self.keys, store, self.path)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything the index holds."""
        if self.index is None:
            return np.zeros(0, np.int64), np.zeros((0, self.meta.get("dim", 0)), np.float32)
        faiss = _faiss()
        if not hasattr(self.index, "invlists") and not hasattr(self.index, "id_map"):
            n, d = self.index.ntotal, self.index.d  # 0.2: a plain IndexFlatIP, ids = rows
            inner = faiss.downcast_index(self.index)
            return np.arange(n), faiss.rev_swig_ptr(inner.get_xb(), n * d).reshape(n, d).copy()
        return _vectors(faiss, faiss.downcast_index(self.index))

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

    def _title_of_row(self) -> np.ndarray:
        if self._titles is None:
            self._titles = self.keys["title_id"].to_numpy(object)
        return self._titles

    def rows_of_title(self, title: str) -> int:
        """How many rows of the index are ``title``'s."""
        if self._title_rows is None:
            self._title_rows = self.keys["title_id"].value_counts()
        return int(self._title_rows.get(title, 0))

    def vector(self, row: int) -> np.ndarray:
        faiss = _faiss()
        index = faiss.downcast_index(self.index)
        key = int(self.keys["id"].iat[row])
        if hasattr(index, "invlists") and not getattr(self, "_mapped", False):
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # by id, any ids
            self._mapped = True
        return index.reconstruct(key)

    def search(self, title: str | None = None, shot: int | None = None,
               clip: str | None = None, k: int = 10, other_titles: bool = False,
               vector: np.ndarray | None = None) -> pd.DataFrame:
        """The ``k`` nearest rows (the query row itself excluded), best first, with scores."""
        if k < 1:
            raise ValueError(f"-k must be >= 1, got {k}")
        if self.index is None:
            raise MediaFMError(f"the index {self.path} holds no embeddings (built from a "
                               "store's text alone): build it with --embeddings")
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
        skip_title = other_titles and title is not None and "title_id" in self.keys
        if skip_title:
            fetch += self.rows_of_title(title)  # at most that many hits to skip: one search
        while True:
            scores, ids = self.index.search(q, min(fetch, len(self.keys)))
            found = ids[0] >= 0
            rows = self._row_of_id.reindex(ids[0][found]).to_numpy()
            keep = rows != own if own is not None else np.ones(len(rows), bool)
            if skip_title:
                keep &= self._title_of_row()[rows] != title
            if keep.sum() >= k or fetch >= len(self.keys):
                break
            fetch *= 4
        rows, scores = rows[keep][:k], scores[0][found][keep][:k]
        hits = self.keys.iloc[rows].drop(columns=["id"]).reset_index(drop=True)
        hits["score"] = scores
        return hits.assign(rank=np.arange(1, len(hits) + 1))
