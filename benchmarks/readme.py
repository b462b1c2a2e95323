"""Regenerate the result tables of benchmarks/README.md from benchmarks/results/*.json.

Each table sits between ``<!-- results:NAME -->`` and ``<!-- /results -->`` and is rendered by
the ``render`` function of the benchmark that wrote ``results/NAME.json`` (``table`` of the
current probe's records for context quality); a results file that does not exist yet renders
as "not measured".

    python benchmarks/readme.py
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script

README = Path(__file__).parent / "README.md"
MARKER = re.compile(r"(<!-- results:([a-z0-9_]+) -->\n)(.*?)(<!-- /results -->)", re.S)


def render(name: str) -> str:
    path = harness.RESULTS / f"{name}.json"
    if not path.exists():
        return f"Not measured yet: no `benchmarks/results/{name}.json`."
    data = json.loads(path.read_text())
    # NAME_cuda, NAME_10min, NAME_1080p, NAME_1m, NAME_workers, NAME_readout, NAME_fused,
    # NAME_avx2, NAME_families, NAME_catalog, NAME_change: the same benchmark on a GPU, at
    # another size, in another setting or on another CPU (a benchmark's own name first:
    # context_families is one)
    suffix = r"_(cuda|10min|1080p|workers|1m|readout|fused|avx2|families|catalog|change)$"
    own = (Path(__file__).parent / f"{name}.py").exists()
    module = importlib.import_module(name if own else re.sub(suffix, "", name))
    if name == "context_quality":  # scores of older probes stay in the JSON, not the table
        return module.table(module.current(data))
    return module.render(data)


def main() -> None:
    text = README.read_text()
    new = MARKER.sub(lambda m: f"{m.group(1)}{render(m.group(2))}\n{m.group(4)}", text)
    README.write_text(new)
    print(f"regenerated {len(MARKER.findall(new))} tables in {README}")


if __name__ == "__main__":
    main()
