"""Real media -> shot store: videos + subtitles + metadata in, the same store ``import`` builds.

- ``manifest``: the manifest (CSV / JSONL) -> ``TitleJob``s;
- ``media`` (PyAV decoding), ``shots`` (detector protocol: PySceneDetect, TransNetV2),
  ``subtitles`` (cues, encodings, assignment to shots), ``encoders/`` (registry, lazy imports);
- ``config``: ``IngestConfig``, one section per component (decode, detect, encode, run);
- ``pipeline``: one title -> SHOTS rows + its record (``ingest_title``, the unit of work);
- ``staging``: a finished title written whole beside the store, keyed by its identity;
- ``run``: ``ingest()``: the ingest stage through the job engine (``mediafm.jobs``: this
  process, a process pool, Ray) -> staging -> ``import_shots`` -> the store;
- ``thumbs``: ``mediafm thumbs``, thumbnails from the recorded media.

Names are imported lazily, so the CLI can read the encoder registry without pandas or torch.
"""

from importlib import import_module

_API = {"TitleJob": "manifest", "read_manifest": "manifest", "IngestConfig": "config",
        "load_ingest_config": "config", "ingest_title": "pipeline", "IngestReport": "run",
        "ingest": "run", "add_thumbs": "thumbs"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name == "SettingsMismatch":
        from mediafm.jobs import SettingsMismatch

        return SettingsMismatch
    if name in _API:
        return getattr(import_module(f"mediafm.ingest.{_API[name]}"), name)
    raise AttributeError(f"module 'mediafm.ingest' has no attribute {name!r}")
