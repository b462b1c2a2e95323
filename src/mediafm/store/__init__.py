"""The shot store: a catalog's per-shot vectors as plain Parquet (layout: ``format.py``).

- ``format``: layout, constants, store.json, ``StoreError``, the vector column type;
- ``reader``: ``ShotStore`` (one title, a part, every title streamed);
- ``rows``: row readers for the training loader (Parquet parts, or the fused cache);
- ``writer``: ``store_writer`` / ``StoreWriter``, the one way a store is written;
- ``validate`` + ``importer``: ``import_shots``, SHOTS/TITLES Parquet -> a validated store;
- ``cache``: ``write_fused_cache`` (``mediafm cache``).
"""

from mediafm.store.cache import write_fused_cache
from mediafm.store.format import (
    FUSED_CACHE,
    StoreError,
    StoreInfo,
    fixed_list_to_numpy,
    vector_array,
)
from mediafm.store.importer import import_shots
from mediafm.store.reader import ShotStore
from mediafm.store.rows import CachedRows, ParquetRows, RowReader
from mediafm.store.writer import StoreWriter, store_writer

__all__ = ["FUSED_CACHE", "CachedRows", "ParquetRows", "RowReader", "ShotStore", "StoreError",
           "StoreInfo", "StoreWriter", "fixed_list_to_numpy", "import_shots", "store_writer",
           "vector_array", "write_fused_cache"]
