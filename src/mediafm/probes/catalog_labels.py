"""Labels for six tasks of the four task kinds, generated from the built-in catalog's story.

Each label depends on what it depends on in real media, so each says whether context helps:

- ``genre`` (multilabel, macro AP): the title's genres. Every shot carries the title's latent
  and the [GLOBAL] token carries its metadata: context adds little.
- ``tone`` (multilabel, micro AP): the tone of the clip's scene. A single shot carries it weakly
  under set-up and action noise; the scene's other shots, outside a short clip, pin it down:
  context helps.
- ``clip_worthy`` (binary, AP; 1 positive : 3 negatives, 8 positives per title): high for
  clips late in the story arc (the climax) in exciting, intense scenes. Position in the story
  is not in any shot's content, only in where the clip sits in the title; a scene's intensity
  (the ``noisy`` preset) shows only across its shots: context is essential.
- ``popularity`` (ranking within title, Kendall's tau): the same latent appeal plus noise,
  ranked among the clips of one title: context helps for the same reason.
- ``ad_relevancy`` (multilabel, macro AP): clips that end at a scene break (an ad slot); the
  labels are the tone of the scene that follows the break. A clip-only embedding cannot see it.
- ``boundary`` (boundary, AP): one-shot clips; does a new scene start at this shot? A boundary
  is a change relative to the previous shot, invisible to the shot alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.probes.tasks import Task, write_labels

EXCITING = {"tense", "exciting", "scary", "suspenseful", "creepy"}

TASKS = [Task("genre", "multilabel", "macro_ap"), Task("tone", "multilabel", "micro_ap"),
         Task("clip_worthy", "binary", "ap"), Task("popularity", "ranking", "kendall_tau"),
         Task("ad_relevancy", "multilabel", "macro_ap"), Task("boundary", "boundary", "ap")]


def make_labels(latent: pd.DataFrame, titles: pd.DataFrame, seed: int = 0,
                clips_per_title: int = 32, boundary_shots: int = 40,
                clip_shots: tuple[int, int] = (3, 8)) -> pd.DataFrame:
    """LABELS rows for every title of the catalog (see module docstring)."""
    rng = np.random.default_rng(seed)
    genres = dict(zip(titles["title_id"], titles["genres"], strict=True))
    rows: list[dict] = []
    for title_id, shots in latent.groupby("title_id", sort=True):
        shots = shots.sort_values("shot_index")
        scene = shots["scene"].to_numpy()
        tone = shots["tone"].to_numpy()
        intensity = (shots["intensity"].to_numpy() if "intensity" in shots
                     else np.zeros(len(shots)))
        n = len(shots)
        starts = np.flatnonzero(np.r_[True, scene[1:] != scene[:-1]])
        ends = np.r_[starts[1:], n] - 1
        # clips inside one scene, clip_shots long; appeal = story arc + excitement + noise
        cands = []
        for _ in range(clips_per_title * 3):
            k = int(rng.integers(len(starts)))
            lo, hi = starts[k], ends[k]
            length = int(min(rng.integers(clip_shots[0], clip_shots[1] + 1), hi - lo + 1))
            first = int(rng.integers(lo, hi - length + 2))
            pos = (first + length / 2) / n
            arc = np.exp(-((pos - 0.8) / 0.12) ** 2)
            appeal = (arc + 0.6 * (tone[first] in EXCITING) + intensity[first]
                      + 0.2 * rng.normal())
            cands.append((first, first + length - 1, appeal))
        cands = sorted(set(cands), key=lambda c: -c[2])
        n_pos = min(8, len(cands) // 4)
        pos_c, neg_pool = cands[:n_pos], cands[n_pos * 2:]  # a gap keeps the classes apart
        neg_idx = rng.choice(len(neg_pool), size=min(3 * n_pos, len(neg_pool)), replace=False)
        chosen = [(c, True) for c in pos_c] + [(neg_pool[i], False) for i in neg_idx]
        for i, ((first, last, appeal), worthy) in enumerate(chosen):
            rows.append({"clip_id": f"{title_id}/c{i}", "title_id": title_id,
                         "first_shot": first, "last_shot": last,
                         "genre": list(genres[title_id]), "tone": [str(tone[first])],
                         "clip_worthy": worthy,
                         "popularity": float(appeal + 0.1 * rng.normal())})
        # ad slots: the last 4 shots before a scene break; labels: the next scene's tone
        for j in rng.permutation(len(starts) - 1)[:8]:
            last = int(ends[j])
            rows.append({"clip_id": f"{title_id}/ad{j}", "title_id": title_id,
                         "first_shot": max(int(starts[j]), last - 3), "last_shot": last,
                         "ad_relevancy": [str(tone[last + 1])]})
        # scene boundaries at single shots
        for s in rng.choice(np.arange(1, n), size=min(boundary_shots, n - 1), replace=False):
            rows.append({"clip_id": f"{title_id}/s{s}", "title_id": title_id,
                         "first_shot": int(s), "last_shot": int(s),
                         "boundary": bool(scene[s] != scene[s - 1])})
    frame = pd.DataFrame(rows)
    for t in TASKS:
        if t.name not in frame:
            frame[t.name] = None
    return frame[["clip_id", "title_id", "first_shot", "last_shot", *[t.name for t in TASKS]]]


def write_catalog_labels(paths: dict, out: str | Path,
                         clip_shots: tuple[int, int] = (3, 8)) -> Path:
    """labels.parquet (tasks declared in its metadata) for a catalog written by write_catalog."""
    labels = make_labels(pd.read_parquet(paths["latent"]), pd.read_parquet(paths["titles"]),
                         clip_shots=clip_shots)
    return write_labels(labels, TASKS, out)


def write_labelled_catalog(out: str | Path, spec) -> dict[str, Path]:
    """A synthetic catalog (``mediafm.synthetic.CatalogSpec``) and its labels.parquet under
    ``out``: shots, titles, latent, labels."""
    from mediafm.synthetic import write_catalog

    paths = write_catalog(out, spec)
    paths["labels"] = write_catalog_labels(paths, Path(out) / "labels.parquet", spec.clip_shots)
    return paths
