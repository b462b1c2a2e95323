"""Every registered encoder through the same checks; the real loading code of the Hugging Face
backends runs on tiny randomly initialised models of the same classes saved to disk."""

from __future__ import annotations

import numpy as np
import pytest

from mediafm.encoders import DEFAULTS, REGISTRY, build


@pytest.fixture(scope="module")
def local_models(tmp_path_factory):
    """Tiny CLIP and wav2vec2 checkpoints written with save_pretrained (no hub access)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, Wav2Vec2Config, Wav2Vec2Model

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 37, "vocab_size": 99},
        vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 37, "image_size": 32, "patch_size": 8},
        projection_dim=16))
    clip.save_pretrained(root / "clip")
    w2v = Wav2Vec2Model(Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer"))
    w2v.save_pretrained(root / "w2v")
    return {"hf-clip": {"path": str(root / "clip")}, "hf-wav2vec2": {"path": str(root / "w2v")}}


def inputs(modality: str, seed: int):
    rng = np.random.default_rng(seed)
    if modality == "video":
        return [rng.integers(0, 256, size=(k, 224, 224, 3), dtype=np.uint8) for k in (2, 3)]
    if modality == "audio":
        return [rng.normal(size=n).astype(np.float32) * 0.1 for n in (16000, 250)]
    return ["The door creaks open.", f"Nobody is home, says voice {seed}."]


@pytest.mark.parametrize("modality,name", [(m, n) for m, names in REGISTRY.items()
                                           for n in names])
def test_every_registered_encoder(modality, name, local_models):
    enc = build(modality, name, **local_models.get(name, {}))
    assert enc.modality == modality and enc.dim > 0 and enc.name and enc.version
    a, b = enc.encode(inputs(modality, 0)), enc.encode(inputs(modality, 1))
    assert a.shape == (2, enc.dim) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(enc.encode(inputs(modality, 0)), a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, b)  # different inputs, different vectors


def test_defaults_are_offline_and_real():
    assert set(DEFAULTS) == set(REGISTRY)
    text = build("text")
    assert (text.name, text.dim) == ("all-MiniLM-L6-v2", 384)
    sims = text.encode(["a dog runs in the park", "a puppy plays outside", "tax law reform"])
    sims = sims / np.linalg.norm(sims, axis=1, keepdims=True)
    assert sims[0] @ sims[1] > sims[0] @ sims[2] + 0.2  # real semantics, not random weights
    with pytest.raises(ValueError, match="unknown video encoder"):
        build("video", "nope")
