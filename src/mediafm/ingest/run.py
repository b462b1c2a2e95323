"""``mediafm ingest``: titles through the job engine into staging, then staging into the store.

Each title is one unit of the ingest stage (``IngestStage``), run by ``jobs.run`` here, in a
process pool or on Ray. When every title has been tried, the staged titles go through
``import_shots``: the result is exactly the store ``mediafm import`` builds, with the same
validation, plus thumbnails and the media records (``ingest.json``: where each title came from,
its identity and the settings). A title that fails (bad media, bad subtitles, a bad manifest
row) is written to ``STORE.failures.jsonl`` with its error and never stops the others.

A store is its own resume point: titles already in it, made from the same files with the same
settings, are taken from it rather than ingested again, so a catalog grows by the titles
added to its manifest. The staging folder is removed once the store holds every title.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import locked, write_text
from mediafm.errors import require
from mediafm.ingest.config import IngestConfig
from mediafm.ingest.manifest import TitleJob, check_unique
from mediafm.ingest.media import MediaError
from mediafm.ingest.pipeline import STAGES, Encoders, ingest_title
from mediafm.ingest.staging import (
    identity,
    shots_path,
    stage_title,
    title_key,
    title_prefix,
)
from mediafm.ingest.subtitles import SubtitleError
from mediafm.jobs import Outcome, SettingsMismatch, Staging, settings_diff
from mediafm.jobs import run as run_stage


@dataclass
class IngestReport:
    store: Path | None
    done: list[str]
    skipped: list[str]
    failures: list[dict]
    stage_seconds: dict[str, float]
    video_seconds: float
    wall_seconds: float
    no_audio: list[str] = field(default_factory=list)  # in the store, audio embedded as zeros
    audio_only: list[str] = field(default_factory=list)  # podcasts: audio segments, zero video

    def summary(self) -> str:
        lines = [f"titles: {len(self.done)} ingested, {len(self.skipped)} already done, "
                 f"{len(self.failures)} failed",
                 f"{self.video_seconds:.0f} s of video in {self.wall_seconds:.1f} s wall "
                 f"({self.video_seconds / max(self.wall_seconds, 1e-9):.1f}x real time)"]
        for stage, sec in self.stage_seconds.items():
            lines.append(f"  {stage:<16} {sec:7.1f} s  "
                         f"({self.video_seconds / max(sec, 1e-9):8.1f} video s / s)")
        if self.no_audio:
            shown = ", ".join(self.no_audio[:5]) + (" ..." if len(self.no_audio) > 5 else "")
            lines.append(f"{len(self.no_audio)} title(s) without an audio stream, audio embedded "
                         f"as zeros (has_audio false in titles.parquet; --require-audio fails "
                         f"them): {shown}")
        if self.audio_only:
            shown = ", ".join(self.audio_only[:5]) + (" ..." if len(self.audio_only) > 5 else "")
            lines.append(f"{len(self.audio_only)} audio-only title(s), shots are audio segments "
                         f"cut at pauses, video embedded as zeros (has_video false): {shown}")
        return "\n".join(lines)


@dataclass(frozen=True)
class IngestStage:
    """The ingest stage of the job engine: a unit is one ``TitleJob``."""

    cfg: IngestConfig
    keys: dict[str, str]  # title_id -> staging key (its identity)
    name: str = "ingest"
    failures: tuple[type[BaseException], ...] = (MediaError, SubtitleError, ValueError, OSError)
    # (SpeechError, audio the ASR model cannot read, is a ValueError too: that title fails)

    def key(self, job: TitleJob) -> str:
        return self.keys[job.title_id]

    def setup(self, threads: int | None) -> Encoders:
        return Encoders(self.cfg, threads)

    def run(self, enc: Encoders, job: TitleJob, staging: Staging, progress: bool) -> Outcome:
        from mediafm.progress import progress_bar

        with progress_bar(total=STAGES, desc=job.title_id[:24], unit="stage", leave=False,
                          position=1, disable=not progress) as bar:
            def on_stage(stage: str) -> None:
                bar.set_postfix_str(stage)
                bar.update(1)

            frame, record, seconds = ingest_title(job, self.cfg, enc, on_stage)
        record |= {"encoders": enc.describe(self.cfg), "stage_seconds": seconds}
        stage_title(staging, self.key(job), frame, record)
        return Outcome(self.key(job), record)


def staging_dir(store: Path) -> Path:
    """Where the titles of the store at ``store`` are staged."""
    return store.parent / f".{store.name}.ingest"


def absolute(job: TitleJob) -> TitleJob:
    """The job with absolute paths: what the store records, and what a Ray worker (whose
    directory is not the driver's) or a later ``serve`` from elsewhere can open."""
    return replace(job, video=os.path.abspath(job.video),
                   subtitles=tuple(os.path.abspath(s) for s in job.subtitles))


def ingest(jobs: list[TitleJob], out: str | Path, cfg: IngestConfig | None = None,
           failures: list[dict] | None = None, progress: bool = True,
           restage: bool = False) -> IngestReport:
    """Ingest ``jobs`` into the store ``out`` (resumable; see the module docstring).

    Titles staged (or in the store) under other settings (encoders, detector, decoding) raise
    ``SettingsMismatch`` naming the differences; ``restage=True`` ingests them again instead.
    Two jobs with one title id are refused before anything runs."""
    out = Path(out).absolute()
    check_unique(jobs)
    cfg = (cfg or IngestConfig()).resolved()  # auto precision: decided once, here
    if cfg.asr.mode != "off":  # before anything runs: a bad model is the user's to fix now
        from mediafm.ingest.speech import SpeechToText, check_model

        if cfg.asr.mode == "on":
            require("faster_whisper", "--asr on")
        if cfg.asr.model:  # the user's own model is loaded once here (workers load it when a
            check_model(cfg.asr.model)  # title first needs it), or every title would fail
            if cfg.asr.effective() != "off":
                SpeechToText(cfg.asr.model).load()
    jobs = [absolute(j) for j in jobs]
    with locked(out):
        return _ingest(jobs, out, cfg, list(failures or []), progress, restage)


def _ingest(jobs: list[TitleJob], out: Path, cfg: IngestConfig, failures: list[dict],
            progress: bool, restage: bool) -> IngestReport:
    from mediafm.progress import progress_bar

    t0 = time.perf_counter()
    keys = {j.title_id: title_key(j, identity(j)) for j in jobs}
    settings = cfg.output_settings()
    in_store = _in_store(out, keys, settings, restage)
    staging = staging_dir(out)
    if len(in_store) == len(jobs) and not failures and not staging.exists():
        # the store holds every title as it is now: nothing to do, nothing to write
        return _report(out, jobs, [], list(in_store), [], {}, 0.0, t0)
    staging = Staging(staging)
    staging.check_settings(settings, restage, noun="title")
    mine = {title_prefix(t) for t in keys}
    for old in set(staging.staged()) - set(keys.values()):  # titles whose files changed
        if old.rpartition("-")[0] + "-" in mine:
            staging.remove(old)
    _stage_from_store(out, in_store, keys, staging)
    todo = [j for j in jobs if not staging.is_done(keys[j.title_id])]
    skipped = [j.title_id for j in jobs if staging.is_done(keys[j.title_id])]
    by_key = {keys[j.title_id]: j for j in jobs}
    stage_s: dict[str, float] = defaultdict(float)
    done, video_s = [], 0.0
    bar = progress_bar(total=len(todo), desc="ingest", unit="title", disable=not progress)

    def collect(result: Outcome) -> None:
        nonlocal video_s
        job = by_key[result.unit]
        if result.error:
            failures.append({"title_id": job.title_id, "source": job.video, "stage": "ingest",
                             "error": result.error})
            bar.write(f"failed: {result.error}")
        else:
            done.append(job.title_id)
            video_s += result.record["duration_s"]
            for k, v in result.record.get("stage_seconds", {}).items():
                stage_s[k] += v
        bar.update(1)
        bar.set_postfix(title=job.title_id[:24])

    run_stage(IngestStage(cfg, keys), jobs, staging, cfg.run.where(), collect, progress)
    bar.close()
    return _report(out, jobs, done, skipped, failures, stage_s, video_s, t0,
                   staging=staging, cfg=cfg, keys=keys)


def _report(out: Path, jobs: list[TitleJob], done: list[str], skipped: list[str],
            failures: list[dict], stage_s: dict, video_s: float, t0: float,
            staging: Staging | None = None, cfg: IngestConfig | None = None,
            keys: dict[str, str] | None = None) -> IngestReport:
    """Assemble the store (when a staging is given), write or clear the failures file, and
    report; the staging goes once the store holds every title."""
    store = out if (out / "store.json").is_file() else None
    if staging is not None:
        ready = [j for j in jobs if staging.is_done(keys[j.title_id])]
        if ready:
            store = assemble(staging, ready, keys, out, cfg)
        if len(ready) == len(jobs):
            staging.clear()
    report_path = out.with_name(out.name + ".failures.jsonl")
    if failures:
        write_text(report_path, "".join(json.dumps(f) + "\n" for f in failures))
    else:
        report_path.unlink(missing_ok=True)  # a stale one from an earlier run
    flags = _title_flags(out) if store else {}
    ids = [j.title_id for j in jobs if j.title_id in flags]
    return IngestReport(store, done, skipped, failures, dict(stage_s), video_s,
                        time.perf_counter() - t0,
                        [t for t in ids if not flags[t][0]], [t for t in ids if not flags[t][1]])


def _title_flags(out: Path) -> dict[str, tuple[bool, bool]]:
    """title_id -> (has_audio, has_video) of the store at ``out``."""
    from mediafm.store import ShotStore

    t = ShotStore(out).titles
    audio = t["has_audio"] if "has_audio" in t else pd.Series(True, index=t.index)
    video = t["has_video"] if "has_video" in t else pd.Series(True, index=t.index)
    return {i: (a is not False, v is not False)
            for i, a, v in zip(t["title_id"], audio.astype(object), video.astype(object),
                               strict=True)}


def assemble(staging: Staging, jobs: list[TitleJob], keys: dict[str, str], out: Path,
             cfg: IngestConfig):
    """Import the staged titles of ``jobs`` (in that order) as the store ``out``, with their
    thumbnails and media records."""
    from mediafm.artifacts import write_transcripts
    from mediafm.store import import_shots
    from mediafm.store.thumbs import write_media_records, write_thumbs

    records = [staging.record(keys[j.title_id]) for j in jobs]
    encoders = records[0].get("encoders") or Encoders(cfg).describe(cfg)  # 0.2 stagings
    titles = pd.DataFrame({"title_id": [r["title_id"] for r in records],
                           "metadata": [r["metadata"] for r in records],
                           "synopsis": [r["synopsis"] for r in records],
                           "tags": [r["tags"] for r in records],
                           "has_audio": [r.get("has_audio") for r in records],
                           "has_video": [r.get("has_video", True) for r in records],
                           "frame_rate": [r.get("frame_rate") or None for r in records]})
    schema = pa.schema([("title_id", pa.string()), ("metadata", pa.list_(pa.float32())),
                        ("synopsis", pa.string()), ("tags", pa.list_(pa.string())),
                        ("has_audio", pa.bool_()), ("has_video", pa.bool_()),
                        ("frame_rate", pa.string())])
    paths = [shots_path(staging, keys[j.title_id]) for j in jobs]
    with tempfile.TemporaryDirectory(prefix=".assemble-", dir=staging.root) as tmp:
        titles_path = Path(tmp) / "titles.parquet"
        pq.write_table(pa.Table.from_pandas(titles, schema=schema, preserve_index=False),
                       titles_path)
        store = import_shots(paths, out, titles_path, encoders=encoders, progress=False)
    write_media_records(out, [{"title_id": j.title_id, "video": j.video,
                               "subtitles": list(j.subtitles), "synopsis": j.synopsis,
                               "tags": list(j.tags), "identity": keys[j.title_id],
                               "duration_s": r.get("duration_s")}
                              for j, r in zip(jobs, records, strict=True)],
                        cfg.output_settings())
    thumbs = []
    for j, path in zip(jobs, paths, strict=True):
        table = pq.read_table(path, columns=None)
        if "thumb" in table.column_names:  # titles staged before thumbnails existed: none
            thumbs.append((j.title_id, table["thumb"].to_pylist()))
    write_thumbs(store, thumbs)
    write_transcripts(store, {j.title_id: r.get("transcript") or []
                              for j, r in zip(jobs, records, strict=True)},
                      encoders.get("asr"))
    return store


def _in_store(out: Path, keys: dict[str, str], settings: dict, restage: bool
              ) -> list[str]:
    """The titles the store at ``out`` holds as they are now (same identity), made with these
    ``settings``; titles it holds under other settings raise ``SettingsMismatch`` (unless
    ``restage``: then none are taken from it)."""
    from mediafm.store.thumbs import read_media_records

    if not (out / "store.json").is_file():
        return []
    records, recorded = read_media_records(out)
    have = {r.get("title_id"): r.get("identity") for r in records}
    same = [t for t, k in keys.items() if have.get(t) == k]
    if not same or recorded is None:
        return []
    if json.loads(json.dumps(recorded)) != json.loads(json.dumps(settings)):
        if restage:
            return []
        raise SettingsMismatch(
            f"{out}: {len(same)} title(s) are in the store with other settings "
            f"({settings_diff(recorded, settings)}). Rerun with those settings to add to it, "
            "or pass --restage to ingest them again with these")
    return same


def _stage_from_store(out: Path, titles: list[str], keys: dict[str, str],
                      staging: Staging) -> None:
    """Write titles of the store at ``out`` into the staging, as ingest staged them."""
    from mediafm.store import ShotStore
    from mediafm.store.thumbs import read_media_records

    if not titles:
        return
    store = ShotStore(out)
    media = {r["title_id"]: r for r in read_media_records(out)[0]}
    emb = store.title_embeddings()
    for title_id in titles:
        if not staging.is_done(keys[title_id]):
            _restage(store, title_id, keys[title_id], media[title_id],
                     emb[store.title_row(title_id)], staging)


def _restage(store, title_id: str, key: str, media: dict, meta: np.ndarray,
             staging: Staging) -> None:
    """Write a title of the store back into the staging, as ingest staged it."""
    from mediafm.artifacts import read_transcript
    from mediafm.store.format import SHOT_EXTRAS

    extras = tuple(c for c in SHOT_EXTRAS if c in store.shot_columns)
    shots = store.shots(title_id, ("shot_index", "start_s", "end_s", "has_text", *extras))
    vectors = {m: store.title_vectors(title_id, m) for m in ("video", "audio", "text")}
    has_text = shots["has_text"].fillna(False).to_numpy(bool)
    frame = pd.DataFrame({
        "title_id": title_id, "shot_index": shots["shot_index"], "start_s": shots["start_s"],
        "end_s": shots["end_s"], "video": list(vectors["video"]), "audio": list(vectors["audio"]),
        "text": [v if t else None for v, t in zip(vectors["text"], has_text, strict=True)],
        **{c: shots[c] for c in extras},
        "thumb": [store.thumbnail(title_id, i) for i in range(len(shots))]})
    row = store.titles.iloc[store.title_row(title_id)]
    stage_title(staging, key, frame, {
        "title_id": title_id, "video_path": media["video"],
        "duration_s": media.get("duration_s") or float(shots["end_s"].max()),
        "dims": {m: store.dims[m] for m in ("video", "audio", "text")},
        "n_shots": len(shots), "has_audio": _flag(row, "has_audio"),
        "has_video": _flag(row, "has_video"),
        "metadata": meta.tolist() if np.abs(meta).sum() else None,
        "synopsis": row.synopsis, "tags": list(row.tags) if row.tags is not None else [],
        "encoders": store.info.encoders, "frame_rate": row.get("frame_rate"),
        "transcript": [] if (t := read_transcript(store, title_id)) is None else
        [{"start_s": r.start_s, "end_s": r.end_s, "text": r.text, "words": list(r.words)}
         for r in t.itertuples()]})


def _flag(row, name: str) -> bool:
    value = row.get(name)
    return True if value is None or pd.isna(value) else bool(value)
