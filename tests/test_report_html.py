"""The probe report as a person sees it: rendered by headless Chromium (Debian `chromium`,
installed by `make test`)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd

from mediafm.probes import run_probes
from mediafm.probes.catalog_labels import TASKS, make_labels

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_html_report_renders(store, catalog, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed: `make test` installs it (make system-deps)"
    labels = make_labels(pd.read_parquet(catalog["latent"]), pd.read_parquet(catalog["titles"]))
    labels = labels[labels.title_id.isin(labels.title_id.unique()[:8])]  # a report, not evidence
    run_probes(store, labels, TASKS, tmp_path / "report", seeds=(0,), folds=3, progress=False)
    page = (tmp_path / "report" / "report.html").as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *FLAGS, *profile, f"--screenshot={shot}",
                    "--window-size=1200,1400", page], check=True, capture_output=True,
                   timeout=120)
    dom = subprocess.run([chromium, *FLAGS, *profile, "--dump-dom", page], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert "<table" in dom and "video only" in dom and "clip_worthy" in dom
    assert "Ablation" in dom and dom.count("<img") >= 1

    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    non_white = (pixels < 0.9).any(axis=-1).mean()
    assert non_white > 0.05, f"screenshot is nearly blank ({non_white:.1%} non-white)"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a chart, not a flat page
