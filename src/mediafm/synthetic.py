"""Built-in synthetic catalogs with narrative structure, for the demo, tests and benchmarks.

Generative story (all ours; chosen so that context is genuinely informative):

- A title has 1-3 of 11 genres; its latent vector mixes its genres' vectors. Its title
  embedding (the [GLOBAL] input) is a noisy linear view of that vector.
- A title is a sequence of scenes (geometric lengths, mean ~9 shots). A scene has a tone, drawn
  with genre-dependent odds, an intensity, and a latent vector mixing title, tone, intensity
  and scene-specific content.
- Inside a scene the camera cuts between 2-3 set-ups (shot / reverse shot): consecutive shots
  usually differ in set-up, so shot i resembles shot i-2 more than its direct neighbours. A
  model that reads context beats "average the two neighbours".
- The action moves on: a slow random walk shared by the scene's shots, so a shot is best
  predicted from the nearby shots of its own set-up, on both sides.
- Every shot adds its own noise (framing, lighting, actors): ``shot_noise`` sets how loud it is
  against the scene's latent (norm 1).
- Modalities see the shot latent with different strength: video strongly (per shot), audio
  partly scene-level ambience (``audio_scene``), text weakly and only for ~60% of shots
  (dialogue scenes talk more). Shots without text get text = null, as real silent shots do.
- About ``long_fraction`` of titles are longer than 512 shots (feature-length films).

The structure (scene lengths and their regularity, how often cuts alternate set-ups, how many
set-ups, dialogue, how tone moves from scene to scene, drift) is in ``CatalogSpec`` too, and
``draw_spec`` draws all of it at random: a family of catalogs, so that what is measured on the
presets can be checked on catalogs nobody tuned for (``benchmarks/context_families.py``).

Presets (``PRESETS``, ``mediafm synth --preset``):

- ``clean``: a shot shows its scene clearly (per-shot noise 0.15 of the scene signal); tone
  is readable from one shot. The demo's catalog.
- ``noisy``: per-shot noise larger than the scene signal (1.5), audio mostly per-shot, scene
  intensity (what makes a clip worth showing) in the latent, and short labelled clips (1-3
  shots of a ~9-shot scene): one shot alone is ambiguous; the scene carries tone and
  clip-worthiness, the title the genre, as in real footage.

``make_catalog`` returns the SHOTS and TITLES tables of ``mediafm import`` plus a LATENT table
(scene, tone, intensity, set-up per shot) that the probe suite uses for labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediafm.atomic import atomic_file
from mediafm.fusion import unit_norm

if TYPE_CHECKING:
    import pandas as pd

GENRES = ("action", "comedy", "drama", "horror", "romance", "thriller", "documentary",
          "animation", "sci-fi", "crime", "family")
TONES = ("tense", "humorous", "romantic", "creepy", "scary", "heartwarming", "sad", "exciting",
         "calm", "suspenseful", "dark", "uplifting")


@dataclass(frozen=True)
class CatalogSpec:
    n_titles: int = 100
    mean_shots: int = 180
    long_fraction: float = 0.08
    video_dim: int = 128
    audio_dim: int = 64
    text_dim: int = 64
    title_dim: int = 64
    latent_dim: int = 32
    text_fraction: float = 0.6
    shot_noise: float = 0.15  # per-shot latent noise, against a scene latent of norm 1
    audio_scene: float = 0.8  # audio's share of the scene latent (the rest: the shot's)
    intensity: float = 0.0  # how strongly a scene's intensity shows in its latent
    clip_shots: tuple[int, int] = (3, 8)  # shortest and longest labelled clip, in shots
    seed: int = 0
    # the story's structure (catalog families draw these: ``draw_spec``)
    scene_shots: float = 9.0  # mean scene length in shots, less one
    scene_regularity: float = 0.0  # 0: geometric scene lengths; toward 1: ever more regular
    cut_prob: float = 0.85  # a cut goes to another set-up (shot / reverse shot)
    setups: tuple[int, int] = (2, 3)  # fewest and most set-ups in a scene
    talk: float = 0.7  # share of dialogue scenes (more of their shots have text)
    tone_stay: float = 0.0  # a scene keeps the tone of the one before
    drift: float = 0.25  # how far the action moves on within a scene


PRESETS = {
    "clean": CatalogSpec(),
    "noisy": CatalogSpec(mean_shots=150, long_fraction=0.05, shot_noise=1.5, audio_scene=0.4,
                         intensity=0.5, clip_shots=(1, 3)),
}


def preset(name: str, **overrides) -> CatalogSpec:
    """A named catalog preset, with fields overridden (``n_titles``, ``seed``, ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown catalog preset {name!r}: use one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def make_catalog(spec: CatalogSpec = CatalogSpec()) -> tuple[pd.DataFrame, pd.DataFrame,
                                                             pd.DataFrame]:
    """(shots, titles, latent) DataFrames; shots in import schema, in title order."""
    rng = np.random.default_rng(spec.seed)
    k = spec.latent_dim
    genre_vec = unit_norm(rng.normal(size=(len(GENRES), k)))
    tone_vec = unit_norm(rng.normal(size=(len(TONES), k)))
    intensity_vec = unit_norm(rng.normal(size=k))
    tone_odds = rng.dirichlet(np.full(len(TONES), 0.3), size=len(GENRES))  # genre -> tone
    W = {m: rng.normal(size=(k, d)) / np.sqrt(k) for m, d in
         (("video", spec.video_dim), ("audio", spec.audio_dim), ("text", spec.text_dim),
          ("title", spec.title_dim))}

    shots, titles, latent = [], [], []
    for t in range(spec.n_titles):
        title_id = f"title-{t:05d}"
        genres = sorted(rng.choice(len(GENRES), size=rng.integers(1, 4), replace=False))
        tvec = unit_norm(genre_vec[genres].sum(0) + 0.5 * rng.normal(size=k))
        if rng.random() < spec.long_fraction:
            n = int(rng.integers(600, 900))
        else:
            n = int(np.clip(rng.lognormal(np.log(spec.mean_shots), 0.4), 40, 480))
        titles.append({
            "title_id": title_id,
            "metadata": (tvec @ W["title"] + 0.1 * rng.normal(size=spec.title_dim)
                         ).astype(np.float32),
            "synopsis": f"A {' / '.join(GENRES[g] for g in genres)} story.",
            "tags": [GENRES[g] for g in genres],
            "genres": [GENRES[g] for g in genres],
        })
        i, scene, t_s, tone = 0, 0, 0.0, -1
        while i < n:
            length = min(n - i, _scene_length(rng, spec))
            if not (tone >= 0 and spec.tone_stay and rng.random() < spec.tone_stay):
                tone = int(rng.choice(len(TONES), p=tone_odds[rng.choice(genres)]))
            intensity = spec.intensity * float(rng.normal())
            zvec = unit_norm(0.6 * tvec + 0.8 * tone_vec[tone] + intensity * intensity_vec
                             + 0.8 * unit_norm(rng.normal(size=k)))
            setups = 0.7 * unit_norm(rng.normal(size=(
                int(rng.integers(spec.setups[0], spec.setups[1] + 1)), k)))
            talk = rng.random() < spec.talk
            setup = 0
            drift = np.zeros(k)
            for j in range(length):
                if j and rng.random() < spec.cut_prob and len(setups) > 1:  # another set-up
                    setup = (setup + int(rng.integers(1, len(setups)))) % len(setups)
                drift += spec.drift * rng.normal(size=k) / np.sqrt(k)  # the action moves on
                u = zvec + setups[setup] + drift + spec.shot_noise * rng.normal(size=k) / np.sqrt(k)
                dur = float(rng.gamma(2.0, 1.5)) + 0.3
                video = u @ W["video"] + 0.1 * rng.normal(size=spec.video_dim)
                audio = (spec.audio_scene * zvec + (1 - spec.audio_scene) * u) @ W["audio"] \
                    + 0.15 * rng.normal(size=spec.audio_dim)
                has_text = rng.random() < (spec.text_fraction + 0.2 if talk else 0.2)
                text = ((u + 0.5 * setups[setup]) @ W["text"]
                        + 0.3 * rng.normal(size=spec.text_dim)) if has_text else None
                shots.append({
                    "title_id": title_id, "shot_index": i, "start_s": t_s,
                    "end_s": t_s + dur, "video": video.astype(np.float32),
                    "audio": audio.astype(np.float32),
                    "text": None if text is None else text.astype(np.float32)})
                latent.append({"title_id": title_id, "shot_index": i, "scene": scene,
                               "tone": TONES[tone], "intensity": intensity, "setup": setup,
                               "position": i / max(n - 1, 1)})
                t_s += dur
                i += 1
            scene += 1
    import pandas as pd  # here: `mediafm --help` reads PRESETS without importing pandas

    return pd.DataFrame(shots), pd.DataFrame(titles), pd.DataFrame(latent)


def _scene_length(rng: np.random.Generator, spec: CatalogSpec) -> int:
    """Shots in the next scene: geometric (memoryless, as in the presets) or, with
    ``scene_regularity`` r > 0, gamma of shape 1 + 19 r: the same mean, less spread."""
    if not spec.scene_regularity:
        return int(rng.geometric(1 / spec.scene_shots)) + 1
    shape = 1 + 19 * spec.scene_regularity
    return max(1, round(rng.gamma(shape, spec.scene_shots / shape))) + 1


def draw_spec(seed: int, n_titles: int = 100) -> CatalogSpec:
    """A catalog of the family: every structural parameter drawn at random (from ``seed``),
    over ranges that hold both presets and much on either side of them."""
    rng = np.random.default_rng([seed, 7919])  # the structure's own stream
    fewest = int(rng.integers(1, 4))
    return CatalogSpec(
        n_titles=n_titles, seed=seed,
        mean_shots=int(rng.integers(100, 260)), long_fraction=float(rng.uniform(0, 0.25)),
        shot_noise=float(np.exp(rng.uniform(np.log(0.15), np.log(2.5)))),
        audio_scene=float(rng.uniform(0.2, 0.9)), intensity=float(rng.uniform(0, 0.8)),
        text_fraction=float(rng.uniform(0.2, 0.8)),
        clip_shots=[(1, 3), (2, 5), (3, 8)][int(rng.integers(3))],
        scene_shots=float(rng.uniform(3, 20)), scene_regularity=float(rng.uniform(0, 1)),
        cut_prob=float(rng.uniform(0.3, 0.95)),
        setups=(fewest, int(rng.integers(max(fewest, 2), 5))),
        talk=float(rng.uniform(0.3, 0.9)), tone_stay=float(rng.uniform(0, 0.7)),
        drift=float(rng.uniform(0.05, 0.5)))


def write_catalog(out: str | Path, spec: CatalogSpec = CatalogSpec()) -> dict[str, Path]:
    """Write shots.parquet, titles.parquet and latent.parquet under ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shots, titles, latent = make_catalog(spec)
    paths = {name: out / f"{name}.parquet" for name in ("shots", "titles", "latent")}
    vec = pa.list_(pa.float32())
    shot_schema = pa.schema([("title_id", pa.string()), ("shot_index", pa.int32()),
                             ("start_s", pa.float64()), ("end_s", pa.float64()),
                             ("video", vec), ("audio", vec), ("text", vec)])
    tables = {"shots": pa.Table.from_pandas(shots, schema=shot_schema, preserve_index=False),
              "titles": pa.Table.from_pandas(titles, preserve_index=False),
              "latent": pa.Table.from_pandas(latent, preserve_index=False)}
    for name, table in tables.items():
        with atomic_file(paths[name]) as tmp:
            pq.write_table(table, tmp)
    return paths


def write_large_store(out: str | Path, n_shots: int, fused_dim: int = 2304,
                      shots_per_title: int = 1500, seed: int = 0, progress: bool = True
                      ) -> Path:
    """A fused-only store of ``n_shots`` for scale tests, written title by title.

    Vectors follow a unit-normed AR(1) walk per title (neighbours correlated, as in real
    films). Memory stays at one part file's worth, whatever ``n_shots`` is; the store appears
    atomically when complete.
    """
    from mediafm.progress import progress_bar
    from mediafm.store import store_writer

    rng = np.random.default_rng(seed)
    with store_writer(out) as writer, progress_bar(total=n_shots, desc="synth store", unit="shot",
                                           disable=not progress) as bar:
        done, t = 0, 0
        while done < n_shots:
            n = min(shots_per_title, n_shots - done)
            x = rng.standard_normal((n, fused_dim), dtype=np.float32)
            for i in range(1, n):
                x[i] = 0.8 * x[i - 1] + 0.6 * x[i]
            start = np.cumsum(np.r_[0.0, rng.gamma(2.0, 1.5, n - 1)])
            writer.add_title(f"title-{t:07d}", start, start + 1.0, unit_norm(x))
            done, t = done + n, t + 1
            bar.update(n)
        writer.finish({"fused": fused_dim, "metadata": 0})
    return Path(out)
