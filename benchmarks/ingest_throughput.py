"""Ingest throughput on a generated long 720p title, against a plain decode of the same file.

Generates (once, cached in --workdir) a 720p, 25 fps title with a hard cut every 3 s (hue
jumps), a tone track that changes pitch at every cut, and an SRT cue every 5 s; then runs,
interleaved, ``ffmpeg -i FILE -f null -`` (what decoding alone costs) and ``mediafm.ingest``
on it: wall time, real-time multiple, the ratio of the two, and seconds per ingest stage.

Each ingest runs in a fresh Python process, as a user's ``mediafm ingest`` does: its wall time
includes starting Python, the imports and loading the encoders; the ``ingest()`` call's own wall
time (models, the title, the store) and its stages are reported beside it. The title's own
stages (everything but starting up, loading the models once and writing the store) are what
each further title of a catalog costs a worker: their sum is reported as a ratio too.

The CPU seconds of each run (user + system, the child process and its threads) are reported
beside its wall time: their ratio to the plain decode's says how much more work ingest does,
and the floor (ingest's CPU seconds over the cores, against the decode's wall time) is the
best wall-time ratio that overlapping alone could reach without doing less work.

    python benchmarks/ingest_throughput.py                # 10-minute title
    python benchmarks/ingest_throughput.py --minutes 2
    python benchmarks/ingest_throughput.py --minutes 2 --titles 4   # a catalog: models load once
    python benchmarks/ingest_throughput.py --decoder torchcodec --device cuda   # a GPU box
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script

SIZES = {720: "1280x720", 1080: "1920x1080"}
# the stages that overlap the others (threads beside the decoding pass), reported beside them
OVERLAPPING = ("decode audio", "video encoder", "audio encoder")


def make_title(workdir: Path, minutes: float, height: int = 720) -> tuple[Path, Path]:
    video = workdir / f"title-{minutes:g}min-{height}p.mp4"
    subs = video.with_suffix(".srt")
    seconds = int(minutes * 60)
    if not video.exists():
        tmp = video.with_suffix(".tmp.mp4")
        subprocess.run([
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={SIZES[height]}:rate=25:duration={seconds}", "-f", "lavfi", "-i",
            f"aevalsrc='0.3*sin(2*PI*(300+100*mod(floor(t/3),5))*t)':s=44100:d={seconds}",
            "-vf", "hue=h='67*floor(t/3)':s='1+mod(floor(t/3),2)'", "-c:v", "libx264",
            "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(tmp)], check=True)
        os.replace(tmp, video)
    lines = []
    for i, t in enumerate(range(0, seconds - 2, 5)):
        def ts(x: float) -> str:
            return f"{int(x // 3600):02d}:{int(x % 3600 // 60):02d}:{int(x % 60):02d},000"
        lines.append(f"{i + 1}\n{ts(t)} --> {ts(t + 2)}\nLine number {i} of the story.\n")
    subs.write_text("\n".join(lines))
    return video, subs


# what one fresh process runs: argv = video, subtitles, store, decoder, device ("": default),
# titles (the same file under that many title ids: a catalog in one `mediafm ingest`)
INGEST = """
import json, sys
from mediafm.ingest import IngestConfig, TitleJob, ingest
video, subs, store, decoder, device, titles = sys.argv[1:]
jobs = [TitleJob(f"bench-{i}", video, (subs,), "A benchmark title.") for i in range(int(titles))]
report = ingest(jobs, store, IngestConfig.of(decoder=decoder, device=device or None),
                progress=False)
print(json.dumps({"wall_seconds": report.wall_seconds, "stage_seconds": report.stage_seconds}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=0, help="every ingest is a fresh process")
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    p.add_argument("--decoder", default="pyav", help="pyav | torchcodec")
    p.add_argument("--device", help="encoders (and torchcodec) device; default: cuda if any")
    p.add_argument("--height", type=int, choices=sorted(SIZES), default=720)
    p.add_argument("--titles", type=int, default=1, help="a catalog of this many titles (the "
                   "same file under as many title ids) in one fresh process, against as many "
                   "plain decodes: the models loaded once, as a catalog pays them")
    p.add_argument("--baseline", type=Path, help="the src folder of another checkout: its "
                   "ingest runs beside this tree's, interleaved")
    p.add_argument("--json")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    video, subs = make_title(work, args.minutes, args.height)
    print(f"title: {video} ({time.perf_counter() - t:.0f} s to generate or find)")
    stages: list[dict[str, float]] = []

    def decode() -> float:
        return sum(harness.timed(lambda: subprocess.run(
            ["ffmpeg", "-v", "error", "-threads", "0", "-i", str(video), "-f", "null", "-"],
            check=True)) for _ in range(args.titles))

    inner: list[float] = []
    baseline_inner: list[float] = []
    src = Path(__file__).resolve().parents[1] / "src"

    def run_ingest(tree: Path = src, record: bool = True) -> float:
        store = work / "store"
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(work / ".store.ingest", ignore_errors=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", INGEST, str(video), str(subs), str(store),
                               args.decoder, args.device or "", str(args.titles)],
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(tree)})
        wall = time.perf_counter() - t
        if proc.returncode != 0:  # the child's own error, not just its exit status
            raise SystemExit(f"ingest failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        report = json.loads(proc.stdout.splitlines()[-1])
        if record:
            stages.append(report["stage_seconds"])
            inner.append(report["wall_seconds"])
        else:
            baseline_inner.append(report["wall_seconds"])
        return wall

    variants = {"ffmpeg -f null decode": decode, "mediafm ingest, fresh process": run_ingest}
    if args.baseline:
        variants["baseline ingest, fresh process"] = lambda: run_ingest(args.baseline, False)
    cpu: dict[str, list[float]] = {name: [] for name in variants}

    def with_cpu(name: str, fn):
        def run() -> float:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = fn()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            return wall
        return run

    runs = harness.interleaved({name: with_cpu(name, fn) for name, fn in variants.items()},
                               args.repeats, args.warmup)
    cpu = {name: sec[-args.repeats:] for name, sec in cpu.items()}
    runs["ingest() call in it"] = inner[-args.repeats:]
    if args.baseline:
        runs["baseline's ingest() call"] = baseline_inner[-args.repeats:]
    runs["the title's stages in it"] = [sum(v for k, v in st.items() if k not in OVERLAPPING)
                                        for st in stages[-args.repeats:]]
    seconds = args.minutes * 60 * args.titles
    result = {"benchmark": "ingest_throughput", "machine": harness.machine(),
              "title": {"minutes": args.minutes, "size": SIZES[args.height], "fps": 25,
                        "cut_every_s": 3, "titles": args.titles},
              "decoder": args.decoder, "repeats": args.repeats,
              "baseline": str(args.baseline) if args.baseline else None,
              "variants": {}, "stages": {}, "ratios": {}}
    for name, sec in runs.items():
        result["variants"][name] = {"seconds": harness.summary(sec),
                                    "x_real_time": harness.summary([seconds / x for x in sec])}
        if name in cpu:
            result["variants"][name]["cpu_seconds"] = harness.summary(cpu[name])
    for stage in stages[-1]:
        sec = [s[stage] for s in stages[-args.repeats:]]
        result["stages"][stage] = {"seconds": harness.summary(sec),
                                   "video_s_per_s": harness.summary([seconds / x for x in sec])}
    for name in ("mediafm ingest, fresh process", "ingest() call in it",
                 "the title's stages in it", "baseline ingest, fresh process"
                 )[:4 if args.baseline else 3]:
        result["ratios"][f"{name} / plain decode (time)"] = harness.ratio(
            runs[name], runs["ffmpeg -f null decode"])
    decode_s, ingest_cpu = runs["ffmpeg -f null decode"], cpu["mediafm ingest, fresh process"]
    result["ratios"]["mediafm ingest, fresh process / plain decode (CPU seconds)"] = \
        harness.ratio(ingest_cpu, cpu["ffmpeg -f null decode"])
    cores = os.cpu_count() or 1
    result["ratios"][f"the floor: mediafm ingest's CPU seconds over {cores} cores / plain "
                     "decode (time)"] = harness.ratio([c / cores for c in ingest_cpu], decode_s)
    if args.baseline:
        result["ratios"]["baseline / this tree (time)"] = harness.ratio(
            runs["baseline ingest, fresh process"], runs["mediafm ingest, fresh process"])
        result["ratios"]["baseline's ingest() call / this tree's (time)"] = harness.ratio(
            runs["baseline's ingest() call"], runs["ingest() call in it"])
    print(render(result))
    harness.write("ingest_throughput" + ("" if args.height == 720 else f"_{args.height}p")
                  + ("_catalog" if args.titles > 1 else ""), result, args.json)


def render(r: dict) -> str:
    t = r["title"]
    rows = [[name, harness.fmt(v["seconds"], ".1f"), harness.fmt(v["x_real_time"], ".1f"),
             harness.fmt(v["cpu_seconds"], ".1f") if "cpu_seconds" in v else "-"]
            for name, v in r["variants"].items()]
    stage_rows = [[name, harness.fmt(v["seconds"], ".1f"), harness.fmt(v["video_s_per_s"], ".1f")]
                  for name, v in r["stages"].items()]
    n = t.get("titles", 1)
    lines = [(f"A catalog of {n} titles in one process (the same file under {n} title ids, "
              f"against {n} plain decodes), each a" if n > 1 else "A") +
             f" generated {t['minutes']:g}-minute {t['size']} title at {t['fps']} fps, a cut "
             f"every {t['cut_every_s']} s, default encoders, decoder "
             f"{r.get('decoder', 'pyav')}; {r['repeats']} interleaved rounds.",
             "", harness.markdown_table(["run", "seconds median (range)", "× real time",
                                            "CPU seconds"], rows),
             "", *[f"{n}: {harness.fmt_ratio(x)}." for n, x in r["ratios"].items()], "",
             harness.markdown_table(["ingest stage", "seconds", "video s / s"], stage_rows),
             "", harness.machine_line(r["machine"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
