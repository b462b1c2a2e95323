"""Per-stage ingest throughput on a generated long 720p title, and the torch thread choice.

Generates (once, cached in --workdir) a 720p, 25 fps title with a hard cut every 3 s (hue
jumps), a tone track that changes pitch at every cut, and an SRT cue every 5 s; then runs
``mediafm.ingest`` on it and prints video seconds processed per wall second for each stage.
A second table times the video encoder alone with 1 and 2 torch threads on the same frames.

    python benchmarks/ingest_throughput.py                # 10-minute title
    python benchmarks/ingest_throughput.py --minutes 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch


def make_title(workdir: Path, minutes: float) -> tuple[Path, Path]:
    video = workdir / f"title-{minutes:g}min-720p.mp4"
    subs = video.with_suffix(".srt")
    seconds = int(minutes * 60)
    if not video.exists():
        tmp = video.with_suffix(".tmp.mp4")
        subprocess.run([
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size=1280x720:rate=25:duration={seconds}", "-f", "lavfi", "-i",
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


def main() -> None:
    from mediafm.ingest import IngestConfig, TitleJob, ingest
    from mediafm.ingest.encoders import build
    from mediafm.ingest.media import frames_at

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--workdir", default="/tmp/mediafm-bench")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    video, subs = make_title(work, args.minutes)
    print(f"title: {video} ({time.perf_counter() - t:.0f} s to generate or find)")

    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(work / ".store.ingest", ignore_errors=True)
    report = ingest([TitleJob("bench", str(video), (str(subs),), "A benchmark title.")],
                    store, IngestConfig(), progress=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print(report.summary())

    enc = build("video")
    frames = frames_at(video, np.linspace(1, args.minutes * 60 - 1, 128))
    print("video encoder alone, 128 frames at 224x224:")
    print(f"{'threads':>8} {'batch':>6} {'frames/s':>9}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (8, 32):
            enc.batch_size = batch
            enc.frames(frames[:batch])
            t = time.perf_counter()
            enc.frames(frames)
            print(f"{threads:>8} {batch:>6} {len(frames) / (time.perf_counter() - t):>9.1f}")


if __name__ == "__main__":
    main()
