"""Property-based tests of the parsers and validators: every input either parses correctly or
fails with our clear error (StoreError, SubtitleError, a manifest failure record); never a crash
or a hang. CI runs a few hundred examples per property; `make fuzz` runs many more
(HYPOTHESIS_PROFILE=fuzz)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediafm.ingest.manifest import read_manifest
from mediafm.ingest.subtitles import SubtitleError, load_cues
from mediafm.store import ShotStore, StoreError, import_shots

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


@st.composite
def shot_tables(draw):
    """SHOTS-like tables: mostly valid, with every kind of damage mixed in."""
    n_titles = draw(st.integers(1, 3))
    rows = []
    for t in range(n_titles):
        n = draw(st.integers(1, 4))
        for i in range(n):
            rows.append({"title_id": draw(st.sampled_from([f"t{t}", f"t{t}", None, "ü/\\"])),
                         "shot_index": draw(st.sampled_from([i, i, i, i - 1, i + 5, None])),
                         "start_s": draw(st.sampled_from([float(i), float(i), -1.0, np.nan])),
                         "end_s": float(i + 1)})
    dims = {m: draw(st.integers(0, 3)) for m in ("video", "audio", "text")}
    for m, d in dims.items():
        for r in rows:
            kind = draw(st.sampled_from(["ok", "ok", "ok", "null", "short", "bad"]))
            if kind == "null":
                r[m] = None
            elif kind == "short":
                r[m] = [1.0] * max(0, d - 1)
            elif kind == "bad":
                r[m] = [draw(FLOATS) for _ in range(d)]
            else:
                r[m] = [draw(st.floats(-3, 3, width=32)) for _ in range(d)]
    frame = pd.DataFrame(rows)
    drop = draw(st.sets(st.sampled_from(list(frame.columns)), max_size=1))
    return frame.drop(columns=list(drop)), draw(st.booleans())


@given(shot_tables())
def test_import_either_imports_or_says_why(case):
    frame, shuffle = case
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=0)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "shots.parquet"
        try:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src)
        except (pa.ArrowException, TypeError, ValueError):
            return  # not even writable as Parquet: nothing for us to read
        try:
            store = import_shots(src, Path(d) / "store", progress=False)
        except StoreError as e:
            assert str(src) in str(e) or "fused_modalities" in str(e) or "titles" in str(e)
            assert not (Path(d) / "store").exists()
            return
        reopened = ShotStore(store.path)
        assert reopened.info.n_shots == len(frame)
        for t in reopened.titles.title_id:
            x = reopened.title_vectors(t)
            assert np.isfinite(x).all()
            np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)


TIMESTAMP = st.from_regex(r"-?\d{1,3}:\d{1,3}:\d{1,3}[,.]\d{0,4}", fullmatch=True)


@st.composite
def subtitle_files(draw):
    kind = draw(st.sampled_from(["bytes", "srt", "vtt"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400)), ".srt"
    cues = []
    for i in range(draw(st.integers(0, 4))):
        text = draw(st.text(max_size=40 if draw(st.booleans()) else 2000))
        cues.append(f"{i + 1}\n{draw(TIMESTAMP)} --> {draw(TIMESTAMP)}\n{text}\n")
    body = ("WEBVTT\n\n" if kind == "vtt" else "") + "\n".join(cues)
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"]))
    return body.encode(encoding, errors="replace"), f".{kind}"


@given(subtitle_files())
def test_subtitles_parse_or_fail_clearly(case):
    data, suffix = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"subs{suffix}"
        path.write_bytes(data)
        try:
            cues = load_cues(path)
        except SubtitleError as e:
            assert str(path) in str(e)
            return
        assert all(isinstance(c.text, str) and c.text for c in cues)
        assert [c.start_s for c in cues] == sorted(c.start_s for c in cues)


FIELD = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@given(st.lists(st.fixed_dictionaries({}, optional={
    "title_id": FIELD, "video": FIELD, "subtitles": FIELD, "synopsis": FIELD, "tags": FIELD,
    "extra": FIELD}), max_size=5), st.booleans(), st.booleans())
def test_manifest_rows_are_jobs_or_failures(rows, bom, jsonl):
    import json

    with tempfile.TemporaryDirectory() as d:
        if jsonl:
            path = Path(d) / "m.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            import csv

            path = Path(d) / "m.csv"
            cols = ["title_id", "video", "subtitles", "synopsis", "tags", "extra"]
            with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
                w = csv.writer(f, quoting=csv.QUOTE_ALL)  # as spreadsheets quote odd fields
                w.writerow(cols)
                w.writerows([[r.get(c, "") for c in cols] for r in rows])
        ids = [(r.get("title_id") or "").strip() for r in rows]
        seen, twice = set(), []
        for i in ids:  # the first title met a second time is the one named
            if i and i in seen:
                twice.append(i)
            seen.add(i)
        if twice:  # refused up front, naming the title and both lines
            with pytest.raises(ValueError, match=re.escape(f"title {twice[0]!r} is on line")):
                read_manifest(path)
            return
        jobs, failures = read_manifest(path)
        assert len(jobs) + len(failures) == len(rows)
        good = [r for r, i in zip(rows, ids, strict=True)
                if i and (r.get("video") or "").strip() and ids.count(i) == 1]
        assert {r["title_id"].strip() for r in good} <= {j.title_id for j in jobs}
        for job in jobs:
            assert job.title_id and job.title_id == job.title_id.strip()
            assert Path(job.video).is_absolute()
        for f in failures:
            assert f["error"].startswith(str(path))
