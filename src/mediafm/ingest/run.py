"""``mediafm ingest``: titles through an engine into staging, then staging into the store.

When every title has been tried, the staged titles go through ``import_shots``: the result is
exactly the store ``mediafm import`` builds, with the same validation. A title that fails (bad
media, bad subtitles, a bad manifest row) is written to ``STORE.failures.jsonl`` with its
error and never stops the others.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import locked, write_text
from mediafm.ingest.engines import LocalEngine, make_engine
from mediafm.ingest.manifest import TitleJob
from mediafm.ingest.pipeline import Encoders, IngestConfig, TitleResult, output_settings
from mediafm.ingest.staging import Staging, staging_dir


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


def ingest(jobs: list[TitleJob], out: str | Path, cfg: IngestConfig | None = None,
           failures: list[dict] | None = None, progress: bool = True,
           restage: bool = False) -> IngestReport:
    """Ingest ``jobs`` into the store ``out`` (resumable; see the module docstring).

    Titles staged by an earlier run under other settings (encoders, detector, decoding) raise
    ``SettingsMismatch`` naming the differences; ``restage=True`` ingests them again instead."""

    out = Path(out).absolute()  # Ray workers do not run in this process's directory
    with locked(out):
        return _ingest(jobs, out, cfg or IngestConfig(), failures, progress, restage)


def _ingest(jobs: list[TitleJob], out: Path, cfg: IngestConfig, failures: list[dict] | None,
            progress: bool, restage: bool) -> IngestReport:
    from mediafm.progress import progress_bar

    staging = Staging(staging_dir(out))
    staging.check_settings(output_settings(cfg), restage)
    engine = make_engine(cfg, progress)
    failures = list(failures or [])
    todo = [j for j in jobs if not staging.is_staged(j.title_id)]
    skipped = [j.title_id for j in jobs if staging.is_staged(j.title_id)]
    stage_s: dict[str, float] = defaultdict(float)
    done, video_s = [], 0.0
    t0 = time.perf_counter()
    bar = progress_bar(total=len(todo), desc="ingest", unit="title", disable=not progress)

    def collect(result: TitleResult) -> None:
        nonlocal video_s
        if result.failure:
            failures.append(result.failure)
            bar.write(f"failed: {result.failure['error']}")
        else:
            done.append(result.title_id)
            video_s += result.duration_s
            for k, v in result.stage_seconds.items():
                stage_s[k] += v
        bar.update(1)
        bar.set_postfix(title=result.title_id[:24])

    if todo:
        engine.run(todo, cfg, staging, collect)
    bar.close()

    failed = {f["title_id"] for f in failures}
    ready = [j for j in jobs if j.title_id not in failed and staging.is_staged(j.title_id)]
    store = None
    if ready:
        enc = engine.encoders if isinstance(engine, LocalEngine) and engine.encoders else None
        store = assemble(staging, ready, out, (enc or Encoders(cfg)).describe(cfg))
    write_text(out.with_name(out.name + ".failures.jsonl"),
               "".join(json.dumps(f) + "\n" for f in failures))
    records = [staging.record(j.title_id) for j in ready]
    return IngestReport(store, done, skipped, failures, dict(stage_s), video_s,
                        time.perf_counter() - t0,
                        [r["title_id"] for r in records if not r.get("has_audio", True)],
                        [r["title_id"] for r in records if not r.get("has_video", True)])


def assemble(staging: Staging, jobs: list[TitleJob], out: Path, encoders: dict):
    """Import the staged titles of ``jobs`` (in that order) as the store ``out``."""
    from mediafm.store import import_shots
    from mediafm.store.thumbs import write_thumbs

    records = [staging.record(j.title_id) for j in jobs]
    titles = pd.DataFrame({"title_id": [r["title_id"] for r in records],
                           "metadata": [r["metadata"] for r in records],
                           "synopsis": [r["synopsis"] for r in records],
                           "tags": [r["tags"] for r in records],
                           "has_audio": [r.get("has_audio") for r in records],
                           "has_video": [r.get("has_video", True) for r in records]})
    schema = pa.schema([("title_id", pa.string()), ("metadata", pa.list_(pa.float32())),
                        ("synopsis", pa.string()), ("tags", pa.list_(pa.string())),
                        ("has_audio", pa.bool_()), ("has_video", pa.bool_())])
    with tempfile.TemporaryDirectory(prefix=".assemble-", dir=staging.root) as tmp:
        titles_path = Path(tmp) / "titles.parquet"
        pq.write_table(pa.Table.from_pandas(titles, schema=schema, preserve_index=False),
                       titles_path)
        store = import_shots([staging.shots_path(j.title_id) for j in jobs], out, titles_path,
                             encoders=encoders, progress=False)
    write_text(out / "ingest.json", json.dumps([asdict(j) for j in jobs], indent=1))
    thumbs = []
    for j in jobs:
        table = pq.read_table(staging.shots_path(j.title_id))
        if "thumb" in table.column_names:  # titles staged before thumbnails existed: none
            thumbs.append((j.title_id, table["thumb"].to_pylist()))
    write_thumbs(store, thumbs)
    return store
