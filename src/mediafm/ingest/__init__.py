"""Real media -> shot store: videos + subtitles + metadata in, the same store ``import`` builds.

- ``manifest``: the manifest (CSV / JSONL) -> ``TitleJob``s;
- ``media`` (PyAV decoding), ``shots`` (detector protocol: PySceneDetect, TransNetV2),
  ``subtitles`` (cues, encodings, assignment to shots), ``encoders/`` (registry, lazy imports);
- ``pipeline``: one title -> SHOTS rows + its record (``process_title``, the unit of work);
- ``staging``: finished titles written whole beside the store (resume);
- ``engines``: where titles run (this process, a process pool, Ray), one protocol;
- ``run``: ``ingest()`` -> engine -> staging -> ``import_shots`` -> the store.

Names are imported lazily, so the CLI can read the encoder registry without pandas or torch.
"""

from importlib import import_module

_API = {"TitleJob": "manifest", "read_manifest": "manifest", "IngestConfig": "pipeline",
        "ingest_title": "pipeline", "IngestReport": "run", "ingest": "run",
        "SettingsMismatch": "staging"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f"mediafm.ingest.{_API[name]}"), name)
    raise AttributeError(f"module 'mediafm.ingest' has no attribute {name!r}")
