"""Progress in job logs: plain periodic lines, no carriage returns, silent with -q."""

from __future__ import annotations

import subprocess
import sys

from conftest import random_shots, write_shots

from mediafm.progress import PlainProgress, progress_bar


def test_plain_lines_when_stderr_is_not_a_terminal(capsys):
    bar = progress_bar(total=200, desc="work", unit="shot")
    assert isinstance(bar, PlainProgress)  # pytest's captured stderr is not a TTY
    for _ in range(200):
        bar.update(1)
    bar.set_postfix(loss="0.5")
    bar.close()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err
    assert 10 <= len(lines) <= 11  # every 10%, and nothing more at the end
    assert lines[0].startswith("work: 20/200 shot (10%)")
    assert lines[-1].startswith("work: 200/200 shot (100%)")
    with progress_bar(range(5), desc="quiet", disable=True) as quiet:
        assert list(quiet) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def test_cli_progress_in_a_log_file(tmp_path):
    src = write_shots(random_shots(n_titles=4), tmp_path / "s.parquet")
    proc = subprocess.run([sys.executable, "-m", "mediafm", "import", "--shots", src,
                           "--out", str(tmp_path / "store")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "import: 20/20 shot (100%)" in proc.stderr
    quiet = subprocess.run([sys.executable, "-m", "mediafm", "-q", "import", "--shots", src,
                            "--out", str(tmp_path / "store2")], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""
