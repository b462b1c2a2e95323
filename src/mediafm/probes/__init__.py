"""Linear-probe evaluation of frozen embeddings (MEDIAFM.md §4): tasks, metrics, report.

Imported lazily: the probes' and heads' worker processes import ``probes.linear`` (NumPy and
SciPy alone), and ``run_probes`` would bring torch with it (3 s a worker on 2 cores).
"""

from importlib import import_module

_API = {"run_probes": "mediafm.probes.run", "Task": "mediafm.probes.tasks",
        "read_labels": "mediafm.probes.tasks", "write_labels": "mediafm.probes.tasks"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'mediafm.probes' has no attribute {name!r}")
