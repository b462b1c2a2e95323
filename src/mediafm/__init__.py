"""mediafm: contextual tri-modal shot embeddings for long-form media (an open MediaFM).

The public API is imported lazily, so ``mediafm --help`` does not pay for importing torch.
"""

from importlib import import_module

_API = {
    "MediaFM": "mediafm.model", "MediaFMConfig": "mediafm.model",
    "ShotStore": "mediafm.store", "StoreError": "mediafm.store", "import_shots": "mediafm.store",
    "StoreWriter": "mediafm.store", "store_writer": "mediafm.store",
    "TrainConfig": "mediafm.config", "load_run_config": "mediafm.train", "train": "mediafm.train",
    "embed_clips": "mediafm.embed", "embed_sequences": "mediafm.embed",
    "embed_store": "mediafm.embed",
}
__all__ = sorted(_API)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'mediafm' has no attribute {name!r}")
