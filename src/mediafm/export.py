"""Timelines an editor opens: a title's shots (or scenes) as clips of its source media with
frame-exact ranges, dissolves as transitions, moments as markers (an audio-only title: the
markers alone, on a gap its length); written as OpenTimelineIO,
CMX 3600 EDL or Final Cut Pro XML through OpenTimelineIO's own adapters, or as CSV, or as
chapters a player shows (FFmetadata, WebVTT).

Ranges are the shots' times in frames of the title's rate (``round(start_s * rate)``), where
an editor's timeline puts them; at a constant frame rate these are exactly the shots' frame
numbers (``first_frame`` .. ``last_frame``, their order in the stream). Under a variable
frame rate the two differ (dropped frames leave gaps in the times, not in the numbers) and
the times pick the right picture; CSV gives both. The timeline starts at 00:00:00:00
(drop-frame at 29.97 / 59.94).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediafm.atomic import write_text
from mediafm.errors import MediaFMError, NotFound, require
from mediafm.timecode import rate_of, timecode

if TYPE_CHECKING:  # the CLI reads FORMATS without importing pandas
    import pandas as pd

    from mediafm.store import ShotStore

FORMATS = ("otio", "edl", "fcpxml", "csv", "chapters")
ADAPTERS = {"otio": "otio_json", "edl": "cmx_3600", "fcpxml": "fcp_xml"}
ONE_TIMELINE = ("edl", "chapters")  # formats that hold one title


@dataclass
class Unit:
    """One clip of a timeline: a shot, or a scene (a run of shots)."""

    name: str
    first_frame: int  # in stream order
    last_frame: int  # inclusive
    start_s: float
    end_s: float
    transition: str | None  # what begins it (cut, dissolve, fade, ...)
    transition_frames: int | None
    at: int = 0  # where it starts on the timeline, in frames of the title's rate
    length: int = 1  # frames on the timeline

    def placed(self, rate: Fraction) -> Unit:
        at = round(self.start_s * rate)
        self.at, self.length = at, max(round(self.end_s * rate) - at, 1)
        return self


def units(store: ShotStore, title_id: str, scenes: pd.DataFrame | None = None) -> list[Unit]:
    """The title's shots, or its ``scenes`` (rows of a scenes file), as frame ranges."""
    cols = [c for c in ("first_frame", "last_frame", "transition", "transition_frames")
            if c in store.shot_columns]
    shots = store.shots(title_id, ("start_s", "end_s", *cols))
    rate = title_rate(store, title_id)
    if "first_frame" not in shots or shots["first_frame"].isna().any():
        shots["first_frame"] = np.round(shots["start_s"] * float(rate)).astype(int)
        shots["last_frame"] = np.maximum(np.round(shots["end_s"] * float(rate)).astype(int) - 1,
                                         shots["first_frame"])
    if scenes is None:
        return [Unit(f"{title_id} shot {i}", int(r.first_frame), int(r.last_frame), r.start_s,
                     r.end_s, _text(getattr(r, "transition", None)),
                     _int(getattr(r, "transition_frames", None))).placed(rate)
                for i, r in enumerate(shots.itertuples())]
    mine = scenes[scenes["title_id"] == title_id].sort_values("scene")
    return [Unit(f"{title_id} scene {int(s.scene)}", int(shots["first_frame"].iat[s.first_shot]),
                 int(shots["last_frame"].iat[s.last_shot]), float(s.start_s), float(s.end_s),
                 _text(shots["transition"].iat[s.first_shot]) if "transition" in shots else None,
                 _int(shots["transition_frames"].iat[s.first_shot])
                 if "transition_frames" in shots else None).placed(rate)
            for s in mine.itertuples()]


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def _int(v) -> int | None:
    return None if v is None or (isinstance(v, float) and v != v) else int(v)


def export(store: ShotStore, out: str | os.PathLike, fmt: str,
           title_ids: list[str] | None = None, scenes: str | os.PathLike | pd.DataFrame |
           None = None, moments: str | os.PathLike | pd.DataFrame | None = None) -> Path:
    """Write the titles' timelines (default: every title) to ``out`` in ``fmt``. ``scenes``,
    ``moments``: files (checked against the store) or their rows."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    ids = title_ids or store.titles["title_id"].tolist()
    for t in ids:
        store.title_row(t)
    if fmt in ONE_TIMELINE and len(ids) != 1:
        raise ValueError(f"a {fmt} file holds one title, and the store has {len(ids)}: give "
                         "--title")
    scene_rows = _read(scenes, "scenes", store)
    moment_rows = _read(moments, "moments", store)
    if fmt == "csv":
        return write_text(out, _csv(store, ids, scene_rows))
    if fmt == "chapters":
        return write_text(out, _chapters(store, ids[0], scene_rows, moment_rows, Path(out)))
    otio = require("opentimelineio", "export to otio, edl or fcpxml (pip install "
                                     "'mediafm[export]')")
    if fmt == "edl" and not _has_video(store, ids[0]):
        raise MediaFMError(f"title {ids[0]!r} has no video (an audio-only title): an EDL "
                           "lists clips and it has none; export it as otio, fcpxml or chapters")
    timelines = [timeline(store, t, scene_rows, moment_rows) for t in ids]
    root = timelines[0] if len(timelines) == 1 else otio.schema.SerializableCollection(
        name=str(store.path.name), children=timelines)
    return _write(root, Path(out), ADAPTERS[fmt])


def _read(path, kind: str, store: ShotStore) -> pd.DataFrame | None:
    from mediafm import artifacts

    if path is None or not isinstance(path, str | os.PathLike):
        return path
    got = artifacts.read(path, kind)
    artifacts.check_store(got.meta, store, f"the {kind} {path}")
    return got.frame()


def timeline(store: ShotStore, title_id: str, scenes: pd.DataFrame | None = None,
             moments: pd.DataFrame | None = None):
    """An OpenTimelineIO timeline of one title: its clips, dissolves and moment markers. An
    audio-only title has no clips: one gap its length, and the markers on it."""
    import opentimelineio as otio

    rate = float(title_rate(store, title_id))
    parts = units(store, title_id, scenes)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    if _has_video(store, title_id):
        _clips(track, store, title_id, parts, rate)
    else:
        track.append(otio.schema.Gap(name=f"{title_id} (audio only)", source_range=(
            otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                    otio.opentime.RationalTime(parts[-1].at + parts[-1].length,
                                                               rate)))))
    for m in _moments(moments, title_id, parts, scenes is not None):
        track.markers.append(otio.schema.Marker(
            name=m["name"], color=m["color"], metadata={"mediafm": m["meta"]},
            marked_range=otio.opentime.TimeRange(otio.opentime.RationalTime(m["first"], rate),
                                                 otio.opentime.RationalTime(m["frames"], rate))))
    out = otio.schema.Timeline(name=title_id,
                               global_start_time=otio.opentime.RationalTime(0, rate))
    out.tracks.append(track)
    return out


def _has_video(store: ShotStore, title_id: str) -> bool:
    flag = store.titles["has_video"].iat[store.title_row(title_id)] \
        if "has_video" in store.titles else None
    return flag is None or flag != flag or bool(flag)  # (NaN: not recorded)


def _clips(track, store: ShotStore, title_id: str, parts: list[Unit], rate: float) -> None:
    """The clips of the title's source media, a dissolve before each unit that begins with
    one. Raises NotFound if the media is not where the store says."""
    import opentimelineio as otio

    media = store.media(title_id)
    if media is None or not media.is_file():
        where = f"{media}" if media else "no recorded media (an imported store)"
        raise NotFound(f"title {title_id!r}: its source media is not there ({where}); "
                       "give --media-root DIR if the store and its media moved")
    total = parts[-1].at + parts[-1].length
    for i, u in enumerate(parts):
        if i and u.transition == "dissolve" and u.transition_frames:
            half = u.transition_frames // 2
            track.append(otio.schema.Transition(
                name=f"dissolve {u.transition_frames} frames",
                transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=otio.opentime.RationalTime(half, rate),
                out_offset=otio.opentime.RationalTime(u.transition_frames - half, rate)))
        ref = otio.schema.ExternalReference(
            target_url=media.absolute().as_uri(),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                    otio.opentime.RationalTime(total, rate)))
        track.append(otio.schema.Clip(
            name=u.name, media_reference=ref,
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(u.at, rate),
                                                 otio.opentime.RationalTime(u.length, rate)),
            metadata={"mediafm": {"title_id": title_id, "start_s": u.start_s,
                                  "end_s": u.end_s, "transition": u.transition}}))


def _moments(moments: pd.DataFrame | None, title_id: str, parts: list[Unit], by_scene: bool
             ) -> list[dict]:
    """The title's moments as marker fields, on the frames of its shots."""
    if moments is None:
        return []
    out = []
    shots = parts if not by_scene else None
    for m in moments[moments["title_id"] == title_id].itertuples():
        if shots is not None:
            a, b = shots[m.first_shot], shots[m.last_shot]
        else:  # scenes: those the moment's times touch
            a = next(u for u in parts if u.end_s > m.start_s)
            b = next(u for u in reversed(parts) if u.start_s < m.end_s)
        kind = getattr(m, "kind", "highlight")
        out.append({"name": f"{m.task} #{m.rank} ({kind})", "first": a.at,
                    "frames": b.at + b.length - a.at,
                    "color": "RED" if kind == "ad break" else "GREEN",
                    "meta": {"task": m.task, "kind": kind, "rank": int(m.rank),
                             "score": float(m.score), "reason": m.reason}})
    return out


def _write(root, out: Path, adapter: str) -> Path:
    """Through OpenTimelineIO's adapter, to a temporary name, then into place."""
    import opentimelineio as otio

    from mediafm.atomic import atomic_file

    with atomic_file(out) as tmp:
        text = otio.adapters.write_to_string(root, adapter_name=adapter)
        tmp.write_text(text)
    return out


def _csv(store: ShotStore, ids: list[str], scenes: pd.DataFrame | None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["title_id", "name", "first_frame", "last_frame", "start_s", "end_s",
                "start_tc", "end_tc", "transition", "transition_frames"])
    for t in ids:
        rate = title_rate(store, t)
        for u in units(store, t, scenes):
            w.writerow([t, u.name, u.first_frame, u.last_frame, f"{u.start_s:.6f}",
                        f"{u.end_s:.6f}", timecode(u.at, rate),
                        timecode(u.at + u.length, rate), u.transition or "",
                        u.transition_frames or ""])
    return buf.getvalue()


def _chapters(store: ShotStore, title_id: str, scenes: pd.DataFrame | None,
              moments: pd.DataFrame | None, out: Path) -> str:
    """Chapters a player shows: WebVTT (``.vtt``) or FFmetadata (anything else, for
    ``ffmpeg -i video -i chapters.txt -map_metadata 1 -c copy out.mkv``). The scenes given,
    else the moments, else the shots."""
    if scenes is not None:
        rows = [(u.start_s, u.end_s, u.name) for u in units(store, title_id, scenes)]
    elif moments is not None:
        m = moments[moments["title_id"] == title_id].sort_values("start_s")
        rows = [(r.start_s, r.end_s, f"{r.task} #{r.rank}: {r.reason}") for r in m.itertuples()]
    else:
        rows = [(u.start_s, u.end_s, u.name) for u in units(store, title_id)]
    if out.suffix.lower() == ".vtt":
        cues = [f"{i + 1}\n{_vtt(a)} --> {_vtt(b)}\n{name}\n" for i, (a, b, name) in
                enumerate(rows)]
        return "WEBVTT\n\n" + "\n".join(cues)
    blocks = [f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={round(a * 1000)}\nEND={round(b * 1000)}\n"
              f"title={_escape(name)}\n" for a, b, name in rows]
    return ";FFMETADATA1\n" + "".join(blocks)


def _vtt(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _escape(text: str) -> str:
    """FFmetadata: '=', ';', '#', '\\' and newlines escaped with a backslash."""
    for c in "\\=;#":
        text = text.replace(c, "\\" + c)
    return text.replace("\n", "\\\n")


def title_rate(store: ShotStore, title_id: str) -> Fraction:
    """The title's frame rate as recorded (25 for a store that recorded none)."""
    return rate_of(store.titles["frame_rate"].iat[store.title_row(title_id)]
                   if "frame_rate" in store.titles else None)
