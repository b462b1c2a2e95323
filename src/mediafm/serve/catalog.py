"""What the explorer shows, as calls into the library: titles, shots, predictions, moments,
neighbours. No web code here (``app.py`` is a thin layer of routes over this), and nothing
the library does is done again: moments come from ``moments.title_moments`` (what
``mediafm moments`` writes), search from ``search.Index`` (what ``mediafm search`` runs)."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.errors import BadQuery
from mediafm.moments import check_predictions, moment_tasks, read_predictions, title_moments
from mediafm.store import ShotStore

SEARCH_IN_MEMORY_UP_TO = 200_000  # shots: without an index, search the store exactly up to this
MOMENTS_PER_TASK = 3


@dataclass(frozen=True)
class Page:
    """A title page encoded once: its JSON, the same gzipped, and an ETag (a hash of the
    JSON). Kept as bytes, not as a dict, so a cached page costs no work per request (a
    2,000-shot page with six tasks is ~80k numbers: encoding it took longer than everything
    else a request does) and ~0.5 MB of memory, not the ~10 MB of its Python objects."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, data: dict) -> Page:
        body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
        return cls(body, gzip.compress(body, compresslevel=3, mtime=0),
                   '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')


class Catalog:
    """A store, optionally with a model + heads or predictions (lanes, moments) and an index.

    Every file given is checked against the store when the catalog opens (heads against the
    model, an index or predictions against the store): the explorer never starts on outputs
    that do not belong together."""

    def __init__(self, store: str | Path, model_dir: str | None = None,
                 heads_dir: str | None = None, index_dir: str | None = None,
                 pred: str | None = None, relevance: str = "ad_relevancy",
                 cache_titles: int = 64, media_root: str | None = None,
                 scenes: str | None = None):
        """``relevance``: the multilabel task that says what suits the scene after an ad
        break (used when present)."""
        self.store, self.relevance = ShotStore(store, media_root=media_root), relevance
        self.model = self.heads = self.index = self.pred = None
        self.kinds: dict[str, str] = {}
        if model_dir:
            from mediafm.model import MediaFM

            self.model = MediaFM.from_pretrained(model_dir)
        if heads_dir:
            from mediafm.heads import Heads

            if self.model is None:
                raise ValueError("--heads needs --model (predictions come from the model)")
            self.heads = Heads.load(heads_dir)
            self.heads.check(self.model, self.store)
            self.kinds = self.heads.kinds
        self._pred_rows: dict[str, slice] = {}
        if pred:
            self.pred, self.kinds, meta = read_predictions(pred)
            check_predictions(self.pred, meta, self.store, pred)
            self.pred, self._pred_rows = _by_title(self.pred)
        self.scenes = None
        if scenes:
            from mediafm import artifacts

            got = artifacts.read(scenes, "scenes")
            artifacts.check_store(got.meta, self.store, f"the scenes {scenes}")
            self.scenes = got.frame()
        if index_dir:
            from mediafm.search import Index

            self.index = Index.load(index_dir)
            self.index.check_store(self.store)
        titles = self.store.titles
        self.titles = titles.assign(
            synopsis=titles["synopsis"].fillna(""),
            tags=[list(t) if t is not None else [] for t in titles["tags"]])
        self.lock = threading.Lock()
        self.cache: OrderedDict[str, Page] = OrderedDict()
        self.cache_size = cache_titles
        self._searcher = None

    # ------------------------------------------------------------------ titles

    def list_titles(self, q: str = "", offset: int = 0, limit: int = 50) -> dict:
        t = self.titles
        if q:
            needle = q.lower()
            hit = (t["title_id"].str.lower().str.contains(needle, regex=False)
                   | t["synopsis"].str.lower().str.contains(needle, regex=False)
                   | t["tags"].map(lambda tags: any(needle in x.lower() for x in tags)))
            t = t[hit]
        page = t.iloc[offset:offset + limit]
        return {"total": len(t), "offset": offset, "limit": limit,
                "titles": [{"title_id": r.title_id, "n_shots": int(r.n_shots),
                            "synopsis": r.synopsis, "tags": r.tags,
                            "media": self.media_file(r.title_id) is not None}
                           for r in page.itertuples()]}

    def title(self, title_id: str) -> dict:
        """Everything the title view shows (the page's JSON, decoded)."""
        return json.loads(self.title_page(title_id).body)

    def cached_page(self, title_id: str) -> Page | None:
        """The title's page if it is made already (no work: safe on an event loop)."""
        with self.lock:
            page = self.cache.get(title_id)
            if page is not None:
                self.cache.move_to_end(title_id)
            return page

    def title_page(self, title_id: str) -> Page:
        """The title view's JSON, encoded and compressed once; cached (LRU) so a revisit, or
        a second client, costs a lookup. Two requests for a page not made yet both make it
        (each outside the lock: one title never holds up another)."""
        page = self.cached_page(title_id)
        if page is not None:
            return page
        page = Page.of(self._title(title_id))
        with self.lock:
            self.cache[title_id] = page
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return page

    def _title(self, title_id: str) -> dict:
        row = self.titles.iloc[self.store.title_row(title_id)]  # NotFound if unknown
        shots = self.store.shots(title_id, ("start_s", "end_s", "has_text"))
        start, end = shots["start_s"].to_numpy(), shots["end_s"].to_numpy()
        n = len(shots)
        long = self._long_predictions(title_id)
        preds = _wide(long, n)
        flag = row.get("has_video")  # false: an audio-only title (a podcast), no pictures
        has_video = flag is None or bool(pd.isna(flag)) or bool(flag)
        return {"title_id": title_id, "n_shots": n, "synopsis": row.synopsis,
                "tags": row.tags, "duration_s": float(end[-1]) if n else 0.0,
                "media": self.media_file(title_id) is not None, "has_video": has_video,
                "thumbs": self.store.has_thumbs and has_video,
                "shots": {"start_s": np.round(start, 3).tolist(),
                          "end_s": np.round(end, 3).tolist(),
                          "has_text": [bool(x) for x in shots["has_text"].fillna(False)]},
                "predictions": {task: {"kind": self.kinds.get(task), "labels": labels,
                                       "scores": _rounded(s)}
                                for task, (labels, s) in preds.items()},
                "moments": self._moments(long, preds, start, end),
                "scenes": self._scenes(title_id)}

    def _long_predictions(self, title_id: str) -> pd.DataFrame | None:
        """The title's predictions, long form (title_id, shot_index, task, label, score)."""
        if self.pred is not None:  # rows grouped by title once: a page does not scan them all
            return self.pred.iloc[self._pred_rows.get(title_id, slice(0, 0))]
        if self.heads is None:
            return None
        from mediafm.heads import predict

        n = self.store.n_shots(title_id)
        clips = pd.DataFrame({"clip_id": np.arange(n), "title_id": title_id,
                              "first_shot": np.arange(n), "last_shot": np.arange(n)})
        p = predict(self.heads, self.model, self.store, clips, progress=False)
        return p.rename(columns={"clip_id": "shot_index"}).assign(title_id=title_id)

    def _scenes(self, title_id: str) -> list[list[int]]:
        """[first_shot, last_shot] of the title's scenes (bands on the page)."""
        if self.scenes is None:
            return []
        mine = self.scenes[self.scenes["title_id"] == title_id].sort_values("scene")
        return [[int(a), int(b)] for a, b in zip(mine.first_shot, mine.last_shot, strict=True)]

    def timeline(self, title_id: str, fmt: str) -> tuple[bytes, str]:
        """The title's timeline in ``fmt`` (``export``) as the page shows it: (bytes, file
        name), the scenes as clips when the explorer has them, the moments as markers."""
        import tempfile

        from mediafm.export import export

        moments = pd.DataFrame(self.title(title_id)["moments"])
        suffix = {"otio": ".otio", "edl": ".edl", "fcpxml": ".xml", "csv": ".csv",
                  "chapters": ".vtt"}[fmt]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{title_id}{suffix}"
            export(self.store, path, fmt, [title_id], self.scenes,
                   moments.assign(title_id=title_id) if len(moments) else None)
            return path.read_bytes(), "".join(c if c.isalnum() or c in "-_." else "_"
                                              for c in path.name)

    def _moments(self, p: pd.DataFrame | None, preds: dict, start: np.ndarray,
                 end: np.ndarray) -> list[dict]:
        """The title's moments as ``mediafm moments`` finds them (``title_moments``)."""
        if p is None or not len(p):
            return []
        tasks = moment_tasks(preds, self.kinds)
        relevance = self.relevance if self.relevance in preds else None
        scenes = None
        if self.scenes is not None:
            scenes = [a for a, _ in self._scenes(p["title_id"].iloc[0])]
        rows = title_moments(p, self.kinds, tasks, len(start), start, end, MOMENTS_PER_TASK,
                             relevance, scenes=scenes)
        return [{"task": r[1], "kind": r[2], "rank": r[3], "first_shot": int(r[4]),
                 "last_shot": int(r[5]), "start_s": float(r[6]), "end_s": float(r[7]),
                 "score": round(float(r[8]), 3), "reason": r[9]} for r in rows]

    def thumb(self, title_id: str, shot: int) -> bytes | None:
        return self.store.thumbnail(title_id, shot)

    def media_file(self, title_id: str) -> Path | None:
        """The recorded source media of a title, if the file is there; never another path."""
        path = self.store.media(title_id)
        return path if path is not None and path.is_file() else None

    # ------------------------------------------------------------------ search

    @property
    def searched(self) -> str:
        """Which vectors "nearest shots" compares, in words (the page shows it)."""
        if self.index is not None:
            made = self.index.meta.get("embeddings", {})
            return (f"the index {self.index.path} ({made.get('readout', 'embeddings')} of "
                    f"the model at {(made.get('model') or {}).get('path') or 'unknown'})")
        if self.model is not None:
            from mediafm.readouts import DEFAULT_READOUT

            if self.store.info.n_shots > SEARCH_IN_MEMORY_UP_TO:  # said at start, not at 1st use
                return (f"none: {self.store.info.n_shots:,} shots are too many to embed in "
                        "memory; give an index (mediafm embed, mediafm index, serve --index)")
            return f"contextual embeddings ({DEFAULT_READOUT}) of the model, exact"
        return "the fused shot vectors (no model given), exact"

    def searcher(self):
        """The library's searcher over the index given, else over an index built in memory
        on first use: the store's contextual embeddings (with a model) or its fused vectors,
        exactly."""
        from mediafm.query import Searcher

        with self.lock:
            if self._searcher is None:
                if self.index is None and self.model is not None:
                    self.index = _memory_index(self.store, self.model, self.searched)
                self._searcher = Searcher(self.store, self.index)
        return self._searcher

    def search(self, title_id: str, shot: int, k: int = 10, other_titles: bool = False
               ) -> list[dict]:
        """The nearest shots of a shot, each with its per-modality cosines (``mediafm
        search``'s)."""
        return self.searcher().shot_rows(title_id, shot, k, other_titles)

    def search_text(self, query: str, k: int = 10) -> list[dict]:
        """The shots where ``query`` is said (or, with a CLIP model, shown)."""
        hits = self.searcher().text(query, k)
        return hits.drop(columns=["rank"]).to_dict(orient="records")


def _by_title(p: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, slice]]:
    """``p`` with each title's rows together (as ``predict`` writes them; sorted if not),
    and each title's rows: a page reads its slice instead of scanning every row."""
    ids = p["title_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    if len(starts) != p["title_id"].nunique():
        p = p.sort_values("title_id", kind="stable", ignore_index=True)
        return _by_title(p)
    ends = [*starts[1:], len(ids)]
    return p, {ids[a]: slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)}


def _rounded(scores: np.ndarray) -> list:
    """Scores to 3 decimals (what the page shows); a shot without a prediction is null."""
    r = np.round(scores, 3)
    missing = np.isnan(r)
    return np.where(missing, None, r).tolist() if missing.any() else r.tolist()


def _wide(p: pd.DataFrame | None, n: int) -> dict[str, tuple[list[str], np.ndarray]]:
    """Long predictions of one title -> task -> (labels, (n_shots, n_labels) scores)."""
    out = {}
    for task, g in (p.groupby("task", sort=False) if p is not None else ()):
        wide = g.pivot(index="shot_index", columns="label", values="score").reindex(range(n))
        out[task] = (list(wide.columns), wide.to_numpy(np.float64))
    return out


def _memory_index(store: ShotStore, model, searched: str):
    """An exact index over the contextual embeddings of every shot of a small store."""
    from mediafm.embed import DEFAULT_READOUT, embed_part, vector_blocks
    from mediafm.search import Index

    if store.info.n_shots > SEARCH_IN_MEMORY_UP_TO:
        raise BadQuery(f"{store.info.n_shots:,} shots: give the explorer an index "
                       "(mediafm embed, mediafm index, then serve --index) to search a "
                       "store this size")
    keys, vectors = [], []
    for part in store.parts():
        t = embed_part(model, store, part)
        keys.append(t.select(["title_id", "shot_index"]).to_pandas())
        vectors.append(np.stack(t["embedding"].to_numpy(zero_copy_only=False)))
    return Index.from_vectors("shots", pd.concat(keys, ignore_index=True),
                              np.concatenate(vectors), {"searched": searched, "embeddings": {
                                  "blocks": vector_blocks(model, DEFAULT_READOUT)}})
