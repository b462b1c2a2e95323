"""The shape of the code, checked: the store's layout stays inside ``store/``, one artifacts
module and one engine, no import cycles (lazy imports counted), no function past ~80 lines,
and a core install (no extras) told which extra to install."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "mediafm"


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every mediafm module ``name`` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def test_no_import_cycles_lazy_imports_included():
    known = modules()
    graph = {m: imports(m, p, known) for m, p in known.items()}
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_only_the_store_knows_its_layout():
    """No module outside ``store/`` reads a part file or a row offset."""
    leaks = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
             if "store" not in p.relative_to(SRC).parts[:1]
             and re.search(r"row_offset|shots\" / |\"shots\"\) /|_read_part|\._part\b",
                           p.read_text())]
    assert leaks == []


def test_one_artifacts_module_and_one_engine():
    """Only ``artifacts`` writes the metadata keys of the files after the store; only
    ``jobs`` starts Ray, and the catalog-scale stages (ingest, embed) run through it."""
    src = {str(p.relative_to(SRC)): p.read_text() for p in SRC.rglob("*.py")}
    assert [f for f, t in src.items() if "mediafm.artifact\"" in t or "b\"mediafm." in t] == [
        "artifacts.py"]
    assert [f for f, t in src.items() if "ray.init(" in t] == ["jobs.py"]
    assert sorted(f for f, t in src.items() if re.search(r"\bjobs\.run\(|run_stage\(", t)) == [
        "embed.py", "ingest/run.py"]


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({n} lines)")
    assert long == []


BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {%s}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
"""


def test_a_core_install_is_told_which_extra_to_install(tmp_path, store):
    """Without the extras' packages (blocked on import here, as on ``pip install mediafm``),
    a command that needs one names the extra in one line and exits 2."""
    blocked = ["av", "scenedetect", "cv2", "faiss", "fastapi", "uvicorn", "ray", "pysubs2"]
    (tmp_path / "sitecustomize.py").write_text(BLOCKER % ", ".join(map(repr, blocked)))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 100)
    cases = [(["ingest", "clip.mp4", "--out", "s"], "mediafm[ingest]"),
             (["serve", "--store", str(store.path)], "mediafm[serve]")]
    for argv, extra in cases:
        proc = subprocess.run([sys.executable, "-m", "mediafm", "-q", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"pip install '{extra}'" in proc.stderr and "bug" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "s").exists()


def test_worker_processes_import_neither_torch_nor_pandas():
    """The probes' and heads' jobs run in spawned processes, each importing the module of its
    job function (``probes.linear``): NumPy and SciPy, not torch (3 s a worker on 2 cores)."""
    code = ("import sys, mediafm.probes.linear; "
            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)}, check=True)
    assert out.stdout.strip() == "[]"
