"""What the explorer shows, computed once and cached: titles, shots, predictions, moments,
neighbours. No web code here: ``app.py`` is a thin layer of routes over this."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.store import ShotStore, StoreError
from mediafm.store.thumbs import Thumbs, media_paths

EXACT_SEARCH_UP_TO = 200_000  # shots: without an index, search the store exactly up to this


class Catalog:
    """A store, optionally with a model + heads (predictions, moments) and an index (search)."""

    def __init__(self, store: str | Path, model_dir: str | None = None,
                 heads_dir: str | None = None, index_dir: str | None = None,
                 pred: str | None = None, relevance: str = "ad_relevancy",
                 cache_titles: int = 64):
        """``relevance``: the multilabel task that says what suits the scene after an ad
        break (used when present)."""
        self.store, self.relevance = ShotStore(store), relevance
        self.thumbs = Thumbs(self.store)
        self.media = media_paths(self.store)
        self.model = self.heads = self.index = None
        if model_dir:
            from mediafm.model import MediaFM

            self.model = MediaFM.from_pretrained(model_dir)
        if heads_dir:
            from mediafm.heads import Heads

            if self.model is None:
                raise ValueError("--heads needs --model (predictions come from the model)")
            self.heads = Heads.load(heads_dir)
            self.heads.check(self.model, self.store)
        if index_dir:
            from mediafm.search import Index

            self.index = Index.load(index_dir)
            if self.index.kind != "shots":
                raise ValueError(f"{index_dir}: an index of {self.index.kind}; the explorer "
                                 "searches shots")
        self.pred = None
        if pred:
            from mediafm.moments import read_predictions

            self.pred, self.kinds = read_predictions(pred)
        elif self.heads is not None:
            self.kinds = self.heads.kinds
        else:
            self.kinds = {}
        titles = self.store.titles
        self.titles = titles.assign(
            synopsis=titles["synopsis"].fillna(""),
            tags=[list(t) if t is not None else [] for t in titles["tags"]])
        self.lock = threading.Lock()
        self.cache: OrderedDict[str, dict] = OrderedDict()
        self.cache_size = cache_titles
        self._exact: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
                            "media": self.has_media(r.title_id)}
                           for r in page.itertuples()]}

    def title(self, title_id: str) -> dict:
        """Everything the title view shows; cached (LRU) so a revisit is instant."""
        with self.lock:
            if title_id in self.cache:
                self.cache.move_to_end(title_id)
                return self.cache[title_id]
        data = self._title(title_id)
        with self.lock:
            self.cache[title_id] = data
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return data

    def _title(self, title_id: str) -> dict:
        row = self.titles.iloc[self.store.title_row(title_id)]  # StoreError if unknown
        n = int(row.n_shots)
        part = self.store.read_part(row.part, ["start_s", "end_s", "has_text"]).slice(
            int(row.row_offset), n)
        start, end = part["start_s"].to_numpy(), part["end_s"].to_numpy()
        has_text = part["has_text"].to_pylist()
        preds = self._predictions(title_id, n)
        moments = self._moments(title_id, preds)
        flag = row.get("has_video")  # false: an audio-only title (a podcast), no pictures
        has_video = flag is None or bool(pd.isna(flag)) or bool(flag)
        return {"title_id": title_id, "n_shots": n, "synopsis": row.synopsis,
                "tags": row.tags, "duration_s": float(end[-1]) if n else 0.0,
                "media": self.has_media(title_id), "has_video": has_video,
                "thumbs": self.thumbs.available and has_video,
                "shots": {"start_s": np.round(start, 3).tolist(),
                          "end_s": np.round(end, 3).tolist(),
                          "has_text": [bool(x) for x in has_text]},
                "predictions": {task: {"kind": self.kinds.get(task), "labels": labels,
                                       "scores": np.round(s, 3).tolist()}
                                for task, (labels, s) in preds.items()},
                "moments": moments}

    def _predictions(self, title_id: str, n: int) -> dict[str, tuple[list[str], np.ndarray]]:
        """task -> (labels, (n_shots, n_labels) scores)."""
        if self.pred is not None:
            p = self.pred[self.pred["title_id"] == title_id]
        elif self.heads is not None:
            from mediafm.heads import predict

            p = predict(self.heads, self.model, self.store, _only(title_id, self.store),
                        progress=False)
            p = p.rename(columns={"clip_id": "shot_index"})
        else:
            return {}
        out = {}
        for task, g in p.groupby("task", sort=False):
            wide = g.pivot(index="shot_index", columns="label", values="score").reindex(
                range(n))
            out[task] = (list(wide.columns), wide.to_numpy(np.float64))
        return out

    def _moments(self, title_id: str, preds: dict) -> list[dict]:
        from mediafm.moments import ad_breaks, highlights

        out = []
        start = self.title_times(title_id)
        rel = preds[self.relevance][1] if self.relevance in preds else None
        for task, (_, s) in preds.items():
            kind = self.kinds.get(task)
            if kind in ("binary", "ranking"):
                for rank, (lo, hi, sc) in enumerate(highlights(s[:, 0], 3), 1):
                    out.append({"task": task, "kind": "highlight", "rank": rank,
                                "first_shot": lo, "last_shot": hi, "score": round(sc, 3),
                                "start_s": start[0][lo], "end_s": start[1][hi]})
            elif kind == "boundary":
                for rank, (lo, hi, sc, _, _) in enumerate(ad_breaks(s[:, 0], 3, rel), 1):
                    out.append({"task": task, "kind": "ad break", "rank": rank,
                                "first_shot": lo, "last_shot": hi, "score": round(sc, 3),
                                "start_s": start[0][lo], "end_s": start[1][hi]})
        return out

    def title_times(self, title_id: str) -> tuple[np.ndarray, np.ndarray]:
        row = self.titles.iloc[self.store.title_row(title_id)]
        t = self.store.read_part(row.part, ["start_s", "end_s"]).slice(int(row.row_offset),
                                                                       int(row.n_shots))
        return t["start_s"].to_numpy(), t["end_s"].to_numpy()

    def thumb(self, title_id: str, shot: int) -> bytes | None:
        self.store.title_row(title_id)  # StoreError if unknown
        return self.thumbs.get(title_id, shot)

    def has_media(self, title_id: str) -> bool:
        """Whether the page may offer playback: recorded *and* still on disk (a moved or
        deleted file would otherwise show a player that can only fail)."""
        path = self.media.get(title_id)
        return bool(path) and Path(path).is_file()

    def media_file(self, title_id: str) -> Path | None:
        """The recorded source media of a title, if the file is there; never another path."""
        self.store.title_row(title_id)
        path = self.media.get(title_id)
        return Path(path) if path and Path(path).is_file() else None

    # ------------------------------------------------------------------ search

    def search(self, title_id: str, shot: int, k: int = 10, other_titles: bool = False
               ) -> list[dict]:
        row = self.titles.iloc[self.store.title_row(title_id)]
        if not 0 <= shot < row.n_shots:
            raise KeyError(f"title {title_id!r} has no shot {shot} (0..{row.n_shots - 1})")
        if self.index is not None:
            hits = self.index.search(title_id, shot, k=k, other_titles=other_titles)
            hits = hits[["title_id", "shot_index", "score"]]
        else:
            hits = self._exact_search(title_id, shot, k, other_titles)
        out = []
        for h in hits.itertuples():
            s, e = self.title_times(h.title_id)
            out.append({"title_id": h.title_id, "shot_index": int(h.shot_index),
                        "start_s": float(s[h.shot_index]), "end_s": float(e[h.shot_index]),
                        "score": round(float(h.score), 4)})
        return out

    def _exact_search(self, title_id: str, shot: int, k: int, other_titles: bool
                      ) -> pd.DataFrame:
        if self.store.info.n_shots > EXACT_SEARCH_UP_TO:
            raise StoreError(f"{self.store.info.n_shots:,} shots: give the explorer an index "
                             "(mediafm index, then serve --index) to search a store this size")
        with self.lock:
            if self._exact is None:
                ids, shots, vecs = [], [], []
                for t, x in self.store.iter_titles("fused"):
                    ids += [t] * len(x)
                    shots.append(np.arange(len(x)))
                    vecs.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
                self._exact = (np.array(ids), np.concatenate(shots), np.concatenate(vecs))
        ids, shots, x = self._exact
        q = x[(ids == title_id) & (shots == shot)][0]
        sims = x @ q
        keep = ~((ids == title_id) & (shots == shot))
        if other_titles:
            keep &= ids != title_id
        order = np.flatnonzero(keep)[np.argsort(-sims[keep])[:k]]
        return pd.DataFrame({"title_id": ids[order], "shot_index": shots[order],
                             "score": sims[order]})


def _only(title_id: str, store: ShotStore) -> pd.DataFrame:
    """One-shot clips for every shot of a title: predictions for one title alone."""
    n = int(store.titles.iloc[store.title_row(title_id)].n_shots)
    return pd.DataFrame({"clip_id": np.arange(n), "title_id": title_id,
                         "first_shot": np.arange(n), "last_shot": np.arange(n)})
