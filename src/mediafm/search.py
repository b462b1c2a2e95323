"""Similarity search over shot, clip or title embeddings, with FAISS; indexes that grow.

An index is built from an embeddings file (``mediafm embed`` output): vectors are unit-normed
so inner product is cosine similarity, each block the file records first (``block_norm``:
in a raw readout the hidden-state blocks drown the rest). Small collections get exact search
(``IndexFlatIP``); large ones an inverted-file index (``IndexIVFFlat``, ``nlist ~ 4 sqrt(n)``
lists) whose ``nprobe`` is the smallest that reaches ``target_recall`` at 10 against exact
search on a sample of queries, and recorded. A catalog whose vectors would not fit in RAM (over
``COMPRESS_FROM`` bytes of float32: ~2M shots at 256-d) gets a compressed index: product
quantization in an inverted file after a learned rotation (``OPQ{m},IVF{nlist},PQ{m}``, ``m =
dim / 8``: 32 bytes a 256-d vector instead of 1,024) whose candidates are re-ranked on the
exact vectors, kept in ``vectors.npy`` and memory-mapped, so RAM holds the codes and the
pages of the few rows each query reads. Its vectors are streamed from the embeddings file to
``vectors.npy`` and never all in memory. Every vector has an explicit id
(``keys.parquet``'s ``id``), so titles are added to an index and removed from it without
rebuilding (``add_to_index``, ``remove_from_index``); after each change the choice of kind
(unless ``--kind`` forced one) and the measured recall are made again, so what index.json
says stays true.

``INDEX/`` holds ``index.faiss``, ``keys.parquet`` (what each id is, with shot times when a
store is given), ``vectors.npy`` (the compressed kind) and ``index.json`` (kind, parameters,
measured recall, the embeddings with their readout and model, the store); with ``--store``,
``INDEX/text/`` is an index of the store's text vectors of the same form, for searching by
words (``query.search_text``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm import artifacts
from mediafm.atomic import atomic_dir
from mediafm.errors import MediaFMError, Mismatch, NotFound, StoreError, require
from mediafm.fusion import block_norm, unit_norm
from mediafm.readouts import recorded_cut
from mediafm.store import ShotStore

EXACT_UP_TO = 50_000  # rows: below this exact search is fast enough (<~10 ms a query)
COMPRESS_FROM = 2 * 2**30  # bytes of float32 vectors: above this, product quantization
RERANK = 64  # candidates of the compressed index re-ranked on exact vectors (k <= 10)
VECTORS = "vectors.npy"  # the exact vectors of a compressed index, a row per keys.parquet row
INDEX_KINDS = {"shots": "shot_embeddings", "clips": "clip_embeddings", "titles": "title_embeddings"}
KEY_KINDS = {k: list(artifacts.KINDS[a].keys) for k, a in INDEX_KINDS.items()}
TEXT = "text"  # the subfolder of an index that holds the store's text vectors


def _faiss():
    return require("faiss", "similarity search (FAISS; faiss-gpu on CUDA machines)")


@contextlib.contextmanager
def one_thread():
    """FAISS on one OpenMP thread in this block, then as it was: one query gains nothing from
    more (IVF search is parallel over queries), and on 2 cores the threads it starts wait
    busily (measured: 3.9 ms for a query on 2M compressed vectors, 1.0 ms on one thread; in
    the explorer, 9 ms of CPU for a query of 3.4 ms, CPU the other requests then lack).
    OpenMP keeps the setting per thread, so a notebook's later ``build_index`` still uses
    every core."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def read_embeddings(path: str | os.PathLike, blocks: list[int] | None = None
                    ) -> tuple[str, pd.DataFrame, np.ndarray, dict]:
    """(kind, keys, (n, dim) unit-normed float32 vectors, recorded metadata) of an embeddings
    file (shot, clip or title embeddings: ``artifacts``), each of its ``blocks`` scaled to
    unit norm first (``fusion.block_norm``; None: the blocks the file records)."""
    emb = artifacts.read(path, *artifacts.EMBEDDINGS)
    x = emb.vectors()
    keys = emb.frame()[list(emb.kind.keys)]
    if keys.duplicated().any():
        raise StoreError(f"{path}: key {keys[keys.duplicated()].iloc[0].tolist()} appears "
                         "twice")
    kind = next(k for k, a in INDEX_KINDS.items() if a == emb.kind.name)
    blocks = _blocks(path, emb.meta, x.shape[1], blocks)
    x = block_norm(x, blocks).astype(np.float32, copy=False)  # one copy of the vectors
    return kind, keys, np.ascontiguousarray(x), emb.meta


def _blocks(path: str | os.PathLike, meta: dict, dim: int, blocks: list[int] | None
            ) -> list[int]:
    """``blocks``, or those an embeddings file records (files made before 2026-12-07 record
    none: their rows are scaled whole), checked against its width."""
    blocks = list(meta.get("blocks") or []) if blocks is None else list(blocks)
    if blocks and sum(blocks) != dim:
        raise StoreError(f"{path}: its blocks {blocks} sum to {sum(blocks)}, its vectors "
                         f"have {dim} columns")
    return blocks


def build_index(embeddings: str | os.PathLike | None, out: str | os.PathLike,
                store: str | os.PathLike | ShotStore | None = None, target_recall: float = 0.95,
                exact_up_to: int = EXACT_UP_TO, seed: int = 0,
                compress_from: int = COMPRESS_FROM, progress: bool = False) -> Path:
    """Build ``out`` from an embeddings file and / or a store (see the module docstring).
    With ``store``, shot keys get their times and must be shots of it, and the store's text
    vectors are indexed in ``out/text`` for searching by words. ``exact_up_to`` (rows) and
    ``compress_from`` (bytes of float32 vectors) choose the kind; ``kind_limits`` maps
    ``--kind`` to them."""
    if not 0 < target_recall <= 1:
        raise ValueError(f"--recall must be in (0, 1], got {target_recall}")
    limits = (target_recall, exact_up_to, seed, compress_from, progress)
    if embeddings is None and store is None:
        raise ValueError("give --embeddings (shots, clips or titles) and / or --store")
    store = ShotStore(store) if store is not None and not isinstance(store, ShotStore) \
        else store
    with atomic_dir(out) as tmp:
        if embeddings is not None:
            if _vector_bytes(embeddings) > compress_from:  # stream to disk, never in RAM
                kind, keys, x, made = stream_embeddings(embeddings, tmp / VECTORS, progress)
            else:
                kind, keys, x, made = read_embeddings(embeddings)
            meta = {"kind": kind, "embeddings": {
                "path": str(Path(embeddings).absolute()),
                **{k: made[k] for k in ("readout", "scene_cut", "model", "blocks")
                   if made.get(k)}},
                "store": made.get("store")}
            if store is not None and kind == "shots":
                artifacts.check_store(made, store, f"the embeddings {embeddings}")
                keys = _with_times(keys, store)
                meta["store"] = artifacts.store_stamp(store)
            _write(tmp, keys.assign(id=np.arange(len(keys), dtype=np.int64)), x, meta,
                   *limits)
        else:
            (tmp / "index.json").write_text(json.dumps(
                {"kind": "shots", "n": 0, "store": artifacts.store_stamp(store),
                 "index": {"type": "none"}}, indent=2))
        if store is not None and "text" in store.info.modalities:
            keys, x = store_text(store)
            _write(tmp / TEXT, keys, x, {"kind": "shots", "vectors": "text",
                                         "store": artifacts.store_stamp(store)}, *limits)
    return Path(out)


def kind_limits(kind: str) -> dict:
    """``build_index`` arguments that force an index kind (``auto``: none, sizes choose)."""
    never = 2**62
    return {"auto": {}, "exact": {"exact_up_to": never, "compress_from": never},
            "ivf": {"exact_up_to": 0, "compress_from": never},
            "ivfpq": {"exact_up_to": 0, "compress_from": 0}}[kind]


def _vector_bytes(path: str | os.PathLike) -> int:
    """Bytes the float32 vectors of an embeddings file take (its footer and first row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows * _dim(path) * 4
    except (OSError, KeyError, ValueError, StopIteration, pa.ArrowException):
        return 0  # not readable: read_embeddings says why


def _dim(path: str | os.PathLike) -> int:
    """The length of an embeddings file's vectors: its type's, or its first row's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path, pre_buffer=False)
    kind = f.schema_arrow.field("embedding").type
    if pa.types.is_fixed_size_list(kind):
        return kind.list_size
    first = next(f.iter_batches(batch_size=1, columns=["embedding"])).column(0)
    return len(first[0]) if len(first) else 0


def stream_embeddings(path: str | os.PathLike, out: Path, progress: bool = False,
                      blocks: list[int] | None = None
                      ) -> tuple[str, pd.DataFrame, np.ndarray, dict]:
    """``read_embeddings`` for files larger than RAM: the unit-normed vectors are written
    batch by batch to the ``.npy`` file ``out`` and returned memory-mapped."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mediafm.progress import progress_bar
    from mediafm.store import fixed_list_to_numpy

    emb = artifacts.read(path, *artifacts.EMBEDDINGS, columns=list(
        {c for k in INDEX_KINDS.values() for c in artifacts.KINDS[k].keys}
        & set(pq.read_schema(path).names)))
    keys = emb.frame()[list(emb.kind.keys)]
    if keys.duplicated().any():
        raise StoreError(f"{path}: key {keys[keys.duplicated()].iloc[0].tolist()} appears "
                         "twice")
    # pre_buffer off: with it, the reader keeps every batch's column chunk cached until it
    # is closed (measured: 2.6 GB held after reading 2M 256-d vectors; 0.4 GB without)
    f, dim = pq.ParquetFile(path, pre_buffer=False), _dim(path)
    blocks = _blocks(path, emb.meta, dim, blocks)
    x = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(len(keys), dim))
    bar = progress_bar(total=len(keys), desc="read vectors", unit="row", disable=not progress)
    done = 0
    for batch in f.iter_batches(batch_size=1 << 16, columns=["embedding"]):
        lengths = pc.min_max(pc.list_value_length(batch.column(0))).as_py()
        if (lengths["min"], lengths["max"]) != (dim, dim) or batch.column(0).null_count:
            raise StoreError(f"{path}: embeddings missing or of unequal lengths (rows {done} to "
                             f"{done + batch.num_rows - 1}; the first has {dim})")
        v = fixed_list_to_numpy(batch.column(0))
        if not np.isfinite(v).all():
            raise StoreError(f"{path}: embeddings contain NaN or inf (rows {done} to "
                             f"{done + len(v) - 1})")
        x[done:done + len(v)] = block_norm(v.astype(np.float32), blocks)
        done += len(v)
        bar.update(len(v))
    bar.close()
    x.flush()
    kind = next(k for k, a in INDEX_KINDS.items() if a == emb.kind.name)
    return kind, keys, x, emb.meta


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
           exact_up_to: int, seed: int, compress_from: int = COMPRESS_FROM,
           progress: bool = False) -> None:
    """One index folder: the FAISS index over ``x`` with ``keys.id`` as ids, its keys and
    its index.json (and, compressed, the exact vectors in ``vectors.npy``)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = keys["id"].to_numpy(np.int64)
    if len(x) > exact_up_to and x.nbytes > compress_from:
        x = _on_disk(x, folder / VECTORS)
        index, info = _compressed_index(x, ids, target_recall, seed, progress,
                                        _groups(keys))
    else:
        (folder / VECTORS).unlink(missing_ok=True)
        index, info = _faiss_index(x, ids, target_recall, exact_up_to, seed, _groups(keys))
    _faiss().write_index(index, str(folder / "index.faiss"))
    keys.to_parquet(folder / "keys.parquet", index=False)
    if (exact_up_to, compress_from) != (EXACT_UP_TO, COMPRESS_FROM):
        info["limits"] = {"exact_up_to": exact_up_to, "compress_from": compress_from}
    meta = {**meta, "n": len(x), "dim": int(x.shape[1]),
            "metric": "cosine (inner product, unit vectors)", "index": info}
    (folder / "index.json").write_text(json.dumps(meta, indent=2))


def _on_disk(x: np.ndarray, path: Path) -> np.ndarray:
    """``x`` as the memory-mapped ``.npy`` file ``path`` (written unless it is that file)."""
    if isinstance(x, np.memmap) and x.filename and Path(x.filename).resolve() == path.resolve():
        return x
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=x.shape)
    for lo in range(0, len(x), 1 << 18):
        out[lo:lo + (1 << 18)] = x[lo:lo + (1 << 18)]
    out.flush()
    return out


def _groups(keys: pd.DataFrame) -> np.ndarray | None:
    """Each row's title as a code (what a search for other titles leaves out), or None."""
    return pd.factorize(keys["title_id"])[0] if "title_id" in keys else None


def _faiss_index(x: np.ndarray, ids: np.ndarray, target_recall: float, exact_up_to: int,
                 seed: int, groups: np.ndarray | None = None):
    """(a FAISS index holding ``x`` under ``ids``, what index.json records of it);
    ``groups``: each row's title (``_tune_nprobe``)."""
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
    tuned = _tune_nprobe(index, x, ids, target_recall, rng, groups)
    return index, {"type": "IndexIVFFlat", "exact": False, "nlist": nlist, **tuned,
                   "target_recall_at_10": target_recall}


def _compressed_index(x: np.ndarray, ids: np.ndarray, target_recall: float, seed: int,
                      progress: bool = False, groups: np.ndarray | None = None):
    """(an ``OPQ{m},IVF{nlist},PQ{m}`` index over ``x`` under ``ids``, what index.json
    records).

    ``m = dim / 8`` sub-quantizers of 8 bits: 8 dims a byte. The learned rotation (OPQ) matters
    on trained embeddings, whose variance sits in few directions: measured on 2M vectors made
    of a trained model's scenes, recall@10 after re-ranking 50 candidates was 0.92 without it
    and 0.99 with it (nprobe 32), and deeper re-ranking no longer helped; ``RERANK`` candidates
    are re-scored on the exact vectors. ``nlist`` is the power of two nearest ``sqrt(n)`` (at
    most 16,384): k-means over more lists costs more to train and to assign 10M vectors on CPUs
    than the shorter lists save in scanning. Vectors are added in slices of the memory map, so
    RAM holds the codes, not the vectors."""
    from mediafm.progress import progress_bar

    faiss = _faiss()
    n, dim = x.shape
    m = max(d for d in range(1, dim // 8 + 1) if dim % d == 0)
    nlist = int(min(16384, max(64, 2 ** round(math.log2(math.sqrt(n))))))
    index = faiss.index_factory(dim, f"OPQ{m},IVF{nlist},PQ{m}", faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, max(64 * nlist, 65536), 262144), replace=False))
    bar = progress_bar(total=1, desc=f"train OPQ{m},IVF{nlist},PQ{m} on {len(sample):,} "
                       "vectors", unit="step", disable=not progress)
    index.train(np.ascontiguousarray(x[sample]))
    bar.update(1)
    bar.close()
    bar = progress_bar(total=n, desc="index", unit="vector", disable=not progress)
    for lo in range(0, n, 1 << 18):
        index.add_with_ids(np.ascontiguousarray(x[lo:lo + (1 << 18)]), ids[lo:lo + (1 << 18)])
        bar.update(min(1 << 18, n - lo))
    bar.close()
    searcher = Reranked(index, x, ids, RERANK)
    tuned = _tune_nprobe(searcher, x, ids, target_recall, rng, groups)
    return index, {"type": "OPQ+IndexIVFPQ+rerank", "exact": False, "nlist": nlist, "m": m,
                   "bytes_per_vector": m, **tuned, "rerank": RERANK, "vectors": VECTORS,
                   "target_recall_at_10": target_recall}


class Reranked:
    """A compressed index searched as one: ``depth`` candidates from the codes, their exact
    vectors read from ``vectors`` (rows by id order; memory-mapped) and re-scored."""

    def __init__(self, index, vectors: np.ndarray, ids: np.ndarray, depth: int = RERANK):
        self.index, self.vectors, self.depth = index, vectors, depth
        self.ids = ids  # ascending: vectors.npy holds the rows in id order

    @property
    def nprobe(self) -> int:
        return _faiss().extract_index_ivf(self.index).nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        _faiss().extract_index_ivf(self.index).nprobe = value

    @property
    def nlist(self) -> int:
        return _faiss().extract_index_ivf(self.index).nlist

    def search(self, q: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's (scores, ids) shape, ids -1 where fewer than k were found; ``params``:
        FAISS search parameters for the compressed index (``without``: ids left out)."""
        _, cand = self.index.search(q, max(k, self.depth), params=params)
        scores = np.full((len(q), k), -np.inf, np.float32)
        found = np.full((len(q), k), -1, np.int64)
        for i, c in enumerate(cand):
            c = np.sort(c[c >= 0])  # in file order: pages read front to back
            rows = np.searchsorted(self.ids, c)
            s = self.vectors[rows] @ q[i]
            best = np.argsort(-s, kind="stable")[:k]
            scores[i, :len(best)], found[i, :len(best)] = s[best], c[best]
        return scores, found


def _tune_nprobe(index, x: np.ndarray, ids: np.ndarray, target: float, rng,
                 groups: np.ndarray | None = None, queries: int = 200) -> dict:
    """What index.json records of the search depth: the smallest nprobe (powers of two)
    reaching ``target`` recall@10 on sample queries against exact search over the same
    vectors (``x``, held under ``ids``), and that recall.

    ``groups`` (each row's title): also ``nprobe_other_titles``, the same for a search that
    leaves out the query's own title (``Index.search(other_titles=True)``). Titles cluster,
    so the lists nearest a shot hold mostly its own title's shots: measured on 100 titles of
    60 shots (32 dims, nlist 309), the plain search's nprobe (4) found 0.22 of the 10 nearest
    shots of other titles, and 26 of 50 queries got fewer than 10 hits; 32 lists found 0.97.
    """
    rows = np.sort(rng.choice(len(x), size=min(queries, len(x)), replace=False))
    q = np.ascontiguousarray(x[rows])
    truth = ids[exact_top(x, q, 10)]

    def depth(search, truth: np.ndarray, start: int = 1) -> tuple[int, float]:
        nprobe, recall = start, 0.0
        while nprobe <= index.nlist:
            got = search(nprobe)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(
                got, truth, strict=True)]))
            if recall >= target:
                break
            nprobe *= 2
        return min(nprobe, index.nlist), recall

    def plain(nprobe: int) -> np.ndarray:
        index.nprobe = nprobe
        return index.search(q, 10)[1]

    nprobe, recall = depth(plain, truth)
    index.nprobe = nprobe
    out = {"nprobe": nprobe, "recall_at_10": recall}
    if groups is None:
        return out
    if (np.bincount(groups) > len(groups) - 10).any():
        return out  # a title with fewer than 10 shots beside it: no 10 nearest to find
    truth = ids[exact_top(x, q, 10, exclude=(groups, groups[rows]))]
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(groups.max() + 2))
    mine = [ids[order[bounds[g]:bounds[g + 1]]] for g in groups[rows]]
    inner = index.index if isinstance(index, Reranked) else index

    def other(nprobe: int) -> np.ndarray:
        return np.concatenate([index.search(q[i:i + 1], 10, params=without(
            inner, mine[i], nprobe))[1] for i in range(len(q))])

    nprobe, recall = depth(other, truth, nprobe)
    return out | {"nprobe_other_titles": nprobe, "recall_at_10_other_titles": recall}


def without(index, ids: np.ndarray, nprobe: int | None = None):
    """FAISS search parameters for ``index`` (flat, IVF, or OPQ+IVF) that leave out ``ids``,
    scanning ``nprobe`` lists (IVF; default: the index's own).

    Dropping the rows after the search would need a hit list longer by as many rows (a title
    of 2,000 shots: 2,010 hits for 10): measured on a flat index of 20k shots, 1.10 ms a
    search that way against 0.78 ms this way (0.70 ms with nothing left out). Ids that form
    one range (an index built title by title) are an ``IDSelectorRange``, others an
    ``IDSelectorBatch``."""
    faiss = _faiss()
    ids = np.sort(np.asarray(ids, np.int64))
    if len(ids) and ids[-1] - ids[0] + 1 == len(ids):
        inner = faiss.IDSelectorRange(int(ids[0]), int(ids[-1]) + 1)
    else:
        inner = faiss.IDSelectorBatch(ids)
    sel = faiss.IDSelectorNot(inner)
    ivf = faiss.try_extract_index_ivf(index)
    params = faiss.SearchParameters(sel=sel) if ivf is None else faiss.SearchParametersIVF(
        sel=sel, nprobe=nprobe or ivf.nprobe)
    if isinstance(faiss.downcast_index(index), faiss.IndexPreTransform):
        params = faiss.SearchParametersPreTransform(index_params=params)
    params.referenced = (inner, sel)  # SWIG holds raw pointers: keep them alive with it
    return params


def exact_top(x: np.ndarray, q: np.ndarray, k: int, chunk: int = 1 << 16,
              exclude: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Rows of the ``k`` vectors of ``x`` nearest each query (inner product), best first,
    scanning ``x`` a slice at a time (a memory map larger than RAM included): memory is one
    slice's scores, not the whole scan's. ``exclude=(groups, query_groups)``: each row's
    group and each query's; a query's own group is left out (its title)."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for lo in range(0, len(x), chunk):
        s = q @ np.asarray(x[lo:lo + chunk]).T
        if exclude is not None:
            s[exclude[0][lo:lo + chunk][None, :] == exclude[1][:, None]] = -np.inf
        top = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argpartition(-best_s, min(k, best_s.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


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
    mine = index.meta.get("embeddings", {})
    # the new rows scaled as the index's are (an index from before 2026-12-07: rows whole)
    blocks = mine.get("blocks", []) if index.index is not None else None
    kind, keys, x, made = read_embeddings(embeddings, blocks)
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
        if mine.get("readout") and made.get("readout") \
                and recorded_cut(mine) != recorded_cut(made):
            raise Mismatch(f"{embeddings} cut its scene blocks at {recorded_cut(made)}; the "
                           f"index {path}'s at {recorded_cut(mine)} (windows@bar): embed "
                           "again, or make a new index")
    by = KEY_KINDS[kind][0]
    keep = ~index.keys[by].isin(set(keys[by])).to_numpy() if len(index.keys) \
        else np.zeros(0, bool)
    start = int(index.keys["id"].max()) + 1 if len(index.keys) else 0
    new_keys = keys.assign(id=np.arange(start, start + len(keys), dtype=np.int64))
    store = ShotStore(store) if store is not None and not isinstance(store, ShotStore) \
        else store
    if store is not None and kind == "shots":
        artifacts.check_store(made, store, f"the embeddings {embeddings}")
        new_keys = _with_times(new_keys, store)
        _check_keys(index.keys[keep], store, path)
    meta = {**{k: v for k, v in index.meta.items() if k not in ("n", "dim", "index")},
            "embeddings": {**mine, "added": [*mine.get("added", []),
                                             str(Path(embeddings).absolute())],
                           **({"blocks": made["blocks"]} if blocks is None
                              and made.get("blocks") else {})}}
    if store is not None:
        meta["store"] = artifacts.store_stamp(store)
    return _rewrite(path, index, keep, new_keys, x, meta, store)


def remove_from_index(path: str | os.PathLike, title_id: str) -> Path:
    """Remove a title's rows (shots, or the title) from the index at ``path``."""
    index = Index.load(path)
    if "title_id" not in index.keys:
        raise ValueError(f"the index {path} holds {index.kind}, which have no title")
    gone = (index.keys["title_id"] == title_id).to_numpy()
    if not gone.any():
        raise NotFound(f"title {title_id!r} is not in the index {path}")
    return _rewrite(path, index, ~gone, index.keys.iloc[:0], None,
                    {k: v for k, v in index.meta.items() if k not in ("n", "dim", "index")},
                    None, title_id)


def _rewrite(path, index: Index, keep: np.ndarray, new_keys: pd.DataFrame,
             new_x: np.ndarray | None, meta: dict, store: ShotStore | None,
             removed: str | None = None) -> Path:
    """Write the updated index (atomically): the rows of ``index`` where ``keep``, then the
    new ones; the kind chosen again for the new size and the recall measured again. Its text
    index follows (made again from ``store``, or with the removed title's rows dropped)."""
    target = index.meta.get("index", {}).get("target_recall_at_10", 0.95)
    limits = index.meta.get("index", {}).get("limits", {})  # a forced --kind stays forced
    sizes = (limits.get("exact_up_to", EXACT_UP_TO), 0,
             limits.get("compress_from", COMPRESS_FROM))
    with atomic_dir(path) as tmp:
        _changed(tmp, index, keep, new_keys, new_x, meta, target, sizes)
        text = index.text
        if store is not None and "text" in store.info.modalities:
            k, v = store_text(store)
            _write(tmp / TEXT, k, v, {"kind": "shots", "vectors": "text",
                                      "store": artifacts.store_stamp(store)}, target, *sizes)
        elif text is not None:
            _changed(tmp / TEXT, text, (text.keys["title_id"] != removed).to_numpy(),
                     text.keys.iloc[:0], None,
                     {k: v for k, v in text.meta.items() if k not in ("n", "dim", "index")},
                     target, sizes)
    return Path(path)


def _changed(folder: Path, index: Index, keep: np.ndarray, new_keys: pd.DataFrame,
             new_x: np.ndarray | None, meta: dict, target: float, sizes: tuple) -> None:
    """``index``'s rows where ``keep`` and the new rows (ids above its own) as the index
    ``folder``. A compressed index that stays compressed keeps its trained quantizers: the
    codes of the rows gone are removed and the new rows' added, and its vectors.npy is
    copied a slice at a time, so a change to a 10M-shot index needs neither its vectors in
    RAM nor a new training; any other is written whole."""
    keys = pd.concat([_plain(index.keys[keep]), new_keys], ignore_index=True)
    new_x = np.zeros((0, index.meta.get("dim", 0)), np.float32) if new_x is None else new_x
    if not len(keys):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.json").write_text(json.dumps({**meta, "n": 0,
                                                       "index": {"type": "none"}}, indent=2))
        return
    n, dim = len(keys), index.meta["dim"]
    if isinstance(index.searcher, Reranked) and n > sizes[0] and n * dim * 4 > sizes[2]:
        return _regrow(folder, index, keep, keys, new_x, meta, target)
    ids, old = index.all_vectors()  # in the index's own order: put them in keys' order
    mine = pd.Index(ids).get_indexer(index.keys["id"].to_numpy(np.int64))
    vectors = np.concatenate([np.asarray(old)[mine][keep], new_x]) if len(old) else new_x
    _write(folder, keys, vectors, meta, target, *sizes)


def _plain(keys: pd.DataFrame) -> pd.DataFrame:
    """Keys with their categorical columns (``Index``'s) back to strings."""
    return keys.astype({c: object for c in keys.select_dtypes("category")})


def _regrow(folder: Path, index: Index, keep: np.ndarray, keys: pd.DataFrame,
            new_x: np.ndarray, meta: dict, target: float) -> None:
    faiss = _faiss()
    folder.mkdir(parents=True, exist_ok=True)
    old = index.searcher.vectors
    x = np.lib.format.open_memmap(folder / VECTORS, mode="w+", dtype=np.float32,
                                  shape=(len(keys), old.shape[1]))
    done, step = 0, 1 << 18
    for lo in range(0, len(old), step):
        part = np.asarray(old[lo:lo + step])[keep[lo:lo + step]]
        x[done:done + len(part)] = part
        done += len(part)
    x[done:] = new_x
    x.flush()
    codes = faiss.read_index(str(index.path / "index.faiss"))  # in memory: it changes
    if (~keep).any():
        codes.remove_ids(index._ids[~keep])
    ids = keys["id"].to_numpy(np.int64)
    if len(new_x):
        codes.add_with_ids(np.ascontiguousarray(new_x), ids[done:])
    info = index.meta["index"]
    tuned = _tune_nprobe(Reranked(codes, x, ids, info["rerank"]), x, ids, target,
                         np.random.default_rng(0), _groups(keys))
    faiss.write_index(codes, str(folder / "index.faiss"))
    keys.to_parquet(folder / "keys.parquet", index=False)
    (folder / "index.json").write_text(json.dumps({
        **meta, "n": len(keys), "dim": int(x.shape[1]),
        "metric": "cosine (inner product, unit vectors)",
        "index": {**info, **tuned}}, indent=2))


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
        keys = keys.reset_index(drop=True)
        for c in ("title_id", "clip_id"):  # codes: a hit's rows are taken in microseconds
            if c in keys:  # (Arrow-backed strings in Parquet's row groups: ~2 ms a take)
                keys[c] = keys[c].astype("category")
        self.keys = keys
        self.kind = meta["kind"]
        self._ids = self.keys["id"].to_numpy(np.int64)
        self._sorted = bool((np.diff(self._ids) > 0).all())  # ids ascending: a binary search
        self._lookup: pd.Index | None = None  # key -> row, made on the first search by key
        self.searcher = index
        if index is not None and meta["index"].get("rerank"):
            vectors = np.load(path / meta["index"]["vectors"], mmap_mode="r")
            self.searcher = Reranked(index, vectors, self._ids, meta["index"]["rerank"])
        self._text: Index | None | bool = False
        self.in_memory = False  # built by ``from_vectors``, not loaded from a folder
        self._titles: np.ndarray | None = None
        self._title_order: np.ndarray | None = None  # rows by title (``_without_title``)
        self._title_bounds: np.ndarray | None = None

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
            # compressed: the inverted lists memory-mapped, pages read as queries need them
            flags = faiss.IO_FLAG_MMAP if meta["index"].get("rerank") else 0
            index = faiss.read_index(str(path / "index.faiss"), flags)
            keys = pd.read_parquet(path / "keys.parquet")
        except (OSError, ValueError, RuntimeError, KeyError) as e:  # faiss: RuntimeError
            raise StoreError(f"{path}: damaged index ({e}); build it again "
                             "(mediafm index)") from None
        if meta["index"].get("nprobe"):
            faiss.extract_index_ivf(index).nprobe = meta["index"]["nprobe"]
        return cls(path, index, keys, meta)

    @classmethod
    def from_vectors(cls, kind: str, keys: pd.DataFrame, x: np.ndarray, meta: dict,
                     name: str = "memory") -> Index:
        """An exact index in memory over ``x`` (rows of ``keys``), for a store small enough
        to search without building one (the explorer, searching a store by words); ``meta``'s
        ``embeddings.blocks``, if any, are scaled alike (``fusion.block_norm``)."""
        x = np.ascontiguousarray(block_norm(np.asarray(x, np.float32),
                                            meta.get("embeddings", {}).get("blocks", [])))
        keys = keys.reset_index(drop=True).assign(id=np.arange(len(x), dtype=np.int64))
        index, info = _faiss_index(x, keys["id"].to_numpy(), 1.0, len(x), 0)
        made = cls(Path(name), index, keys, {"kind": kind, "n": len(x), "dim": x.shape[1],
                                             "index": info, **meta})
        made.in_memory, made._text = True, None  # no folder: no text index beside it
        return made

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
        if isinstance(self.searcher, Reranked):
            return self._ids, np.asarray(self.searcher.vectors)
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
        if self._lookup is None:  # codes per column, not a Python tuple per row (10M rows)
            cols = KEY_KINDS[self.kind]
            self._lookup = pd.MultiIndex.from_frame(self.keys[cols]) if len(cols) > 1 \
                else pd.Index(self.keys[cols[0]])
        try:
            row = self._lookup.get_loc(key if len(key) > 1 else key[0])
        except (KeyError, TypeError):
            raise NotFound(f"{what} is not in the index {self.path}") from None
        if not isinstance(row, int | np.integer):
            raise StoreError(f"{self.path}: {what} appears twice in keys.parquet; build the "
                             "index again (mediafm index)")
        return int(row)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of ``keys`` holding FAISS ids (every id is the index's)."""
        if self._sorted:
            return np.searchsorted(self._ids, ids)
        if not hasattr(self, "_row_of_id"):
            self._row_of_id = pd.Series(np.arange(len(self._ids)), index=self._ids)
        return self._row_of_id.reindex(ids).to_numpy()

    def _title_of_row(self) -> np.ndarray:
        """Each row's title, as its category code."""
        if self._titles is None:
            self._titles = self.keys["title_id"].cat.codes.to_numpy()
        return self._titles

    def _title_code(self, title: str) -> int:
        categories = self.keys["title_id"].cat.categories
        return int(categories.get_loc(title)) if title in categories else -2

    def _without_title(self, code: int, nprobe: int | None):
        """FAISS search parameters leaving out the rows of title ``code`` (a category code;
        -2: none) and scanning ``nprobe`` lists (IVF kinds)."""
        if self._title_order is None:  # rows grouped by title, once
            codes = self._title_of_row()
            self._title_order = np.argsort(codes, kind="stable")
            self._title_bounds = np.searchsorted(codes[self._title_order],
                                                 np.arange(codes.max(initial=-1) + 2))
        ids = np.zeros(0, np.int64)
        if 0 <= code < len(self._title_bounds) - 1:
            lo, hi = self._title_bounds[code], self._title_bounds[code + 1]
            ids = self._ids[self._title_order[lo:hi]]
        index = self.searcher.index if isinstance(self.searcher, Reranked) else self.index
        return without(index, ids, nprobe)

    def vector(self, row: int) -> np.ndarray:
        if isinstance(self.searcher, Reranked):
            return np.array(self.searcher.vectors[row])
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
                title = self.keys["title_id"].iat[own]
        q = np.asarray(vector, np.float32).reshape(1, -1)
        if q.shape[1] != self.meta["dim"]:
            raise ValueError(f"query has {q.shape[1]} dims, the index {self.meta['dim']}")
        # scaled as the index's rows (idempotent: a row of the index comes back the same)
        q = block_norm(q, self.meta.get("embeddings", {}).get("blocks", []))
        fetch = k + 1
        skip_title = other_titles and title is not None and "title_id" in self.keys
        params, info = None, self.meta["index"]
        nlist, nprobe = info.get("nlist", 1), info.get("nprobe")
        # other titles: FAISS leaves the title's rows out as it scans (no longer hit list), and
        # an IVF index scans as deep as its build tuned for that search (one built before
        # that was tuned: deeper until k are found)
        if skip_title:
            code = self._title_code(title)
            fetch = k
            nprobe = info.get("nprobe_other_titles", nprobe)
            params = self._without_title(code, nprobe)
        while True:
            with one_thread():
                scores, ids = self.searcher.search(q, min(fetch, len(self.keys)),
                                                   params=params)
            found = ids[0] >= 0
            rows = self._rows(ids[0][found])
            keep = rows != own if own is not None else np.ones(len(rows), bool)
            if skip_title:
                keep &= self._title_of_row()[rows] != code
            if keep.sum() >= k:
                break
            if skip_title and nprobe and nprobe < nlist:
                nprobe = min(4 * nprobe, nlist)
                params = self._without_title(code, nprobe)
            elif fetch < len(self.keys):
                fetch *= 4
            else:
                break
        rows, scores = rows[keep][:k], scores[0][found][keep][:k]
        return pd.DataFrame({**{c: take(rows) for c, take in self._columns().items()},
                             "score": scores, "rank": np.arange(1, len(rows) + 1)})

    def _columns(self) -> dict:
        """Column -> rows -> values, for the keys' columns but ``id`` (titles from their
        codes): a hit list built from arrays, not by taking rows of the whole frame."""
        if not hasattr(self, "_takers"):
            def taker(col: pd.Series):
                if isinstance(col.dtype, pd.CategoricalDtype):
                    codes, names = col.cat.codes.to_numpy(), col.cat.categories.to_numpy(object)
                    return lambda rows: names[codes[rows]]
                values = col.to_numpy()
                return lambda rows: values[rows]
            self._takers = {c: taker(self.keys[c]) for c in self.keys.columns if c != "id"}
        return self._takers
