"""The ingest manifest: one title per row (CSV or JSONL) -> ``TitleJob``s, bad rows as failures."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TitleJob:
    """One title to ingest: its id, media, timed text and metadata (paths absolute or relative
    to the working directory; ingest records them absolute). ``video`` is the media file: a
    video, or an audio-only file (a podcast), which ingest treats as an audio-only title."""

    title_id: str
    video: str
    subtitles: tuple[str, ...] = ()
    synopsis: str | None = None
    tags: tuple[str, ...] = ()


def _split_list(value) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return tuple(s.strip() for s in str(value).replace("|", ";").split(";") if s.strip())


def read_manifest(path: str | Path) -> tuple[list[TitleJob], list[dict]]:
    """(jobs, failures) from a CSV or JSONL manifest; a bad row is a failure, not an abort.

    Columns: title_id, video (or audio: the media file of an audio-only title), optional
    subtitles (one path, or several separated by ';' in CSV, a list in JSONL; a podcast's
    transcript as SRT/VTT), synopsis, tags (';'-separated in CSV, a list in JSONL). Relative
    paths are relative to the manifest's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM from an editor is not JSON
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                rows.append((i + 1, json.loads(line)))
            except json.JSONDecodeError as e:
                rows.append((i + 1, {"_error": f"invalid JSON ({e})"}))
    else:
        try:  # utf-8-sig: spreadsheet programs start their CSV exports with a BOM
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(f))]
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    jobs, failures, seen = [], [], {}
    for line, row in rows:
        where = f"{path} line {line}"
        if not isinstance(row, dict):
            row = {"_error": f"expected a JSON object, got {type(row).__name__}"}
        row = {k: v if v is None or isinstance(v, list) else str(v) for k, v in row.items()
               if isinstance(k, str)}
        tid = (row.get("title_id") or "").strip()
        video = (row.get("video") or row.get("audio") or "").strip()
        error = row.get("_error") or (None if tid else "missing title_id") or (
            None if video else "missing video (or audio) file")
        if tid in seen:  # refused up front: which of the two rows is the title?
            raise ValueError(f"{path}: title {tid!r} is on line {seen[tid]} and on line "
                             f"{line}; give each title one row")
        if tid:
            seen[tid] = line
        if error:
            failures.append({"title_id": tid or None, "source": where, "stage": "manifest",
                             "error": f"{where}: {error}"})
            continue
        resolve = lambda p: os.path.abspath(p if Path(p).is_absolute()  # noqa: E731
                                            else path.parent / p)
        jobs.append(TitleJob(tid, resolve(video),
                             tuple(resolve(s) for s in _split_list(row.get("subtitles"))),
                             row.get("synopsis") or None, _split_list(row.get("tags"))))
    return jobs, failures


def check_unique(jobs: list[TitleJob]) -> None:
    """Two jobs with one title id are refused (by the Python API as by ``read_manifest``):
    the store can hold one of them, and which one was meant is not ours to guess."""
    first: dict[str, int] = {}
    for i, job in enumerate(jobs):
        if job.title_id in first:
            raise ValueError(f"title {job.title_id!r} is given twice (jobs {first[job.title_id]}"
                             f" and {i}: {job.video} and {jobs[first[job.title_id]].video})")
        first[job.title_id] = i
