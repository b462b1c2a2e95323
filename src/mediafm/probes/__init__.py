"""Linear-probe evaluation of frozen embeddings (MEDIAFM.md §4): tasks, metrics, report."""

from mediafm.probes.run import run_probes
from mediafm.probes.tasks import Task, read_labels, write_labels

__all__ = ["Task", "read_labels", "run_probes", "write_labels"]
