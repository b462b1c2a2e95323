"""Audio encoders: a shot's mono waveform (at the encoder's ``rate``) -> one vector."""

from __future__ import annotations

import numpy as np
import torch


def mel_filterbank(n_mels: int, n_fft: int, rate: int) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    edges = hz(np.linspace(mel(0), mel(rate / 2), n_mels + 2))
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return torch.from_numpy(fb.astype(np.float32))


class LogMel:
    """Log-mel statistics: the mean and standard deviation over time of 64 log-mel bands
    (25 ms windows, 10 ms hop): 128-d. No learned weights; the fallback the ingest issue names
    when no pretrained audio model is installed. Clips shorter than a window are zero-padded."""

    modality = "audio"
    name = "logmel"
    version = "64mel-25ms-10ms-meanstd"

    def __init__(self, n_mels: int = 64, rate: int = 16_000):
        self.rate, self.n_fft, self.hop = rate, 400, 160
        self.fb = mel_filterbank(n_mels, self.n_fft, rate)
        self.window = torch.hann_window(self.n_fft)
        self.dim = 2 * n_mels

    def encode(self, items: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for i, wave in enumerate(items):
            x = torch.from_numpy(np.asarray(wave, np.float32))
            if len(x) < self.n_fft:
                x = torch.nn.functional.pad(x, (0, self.n_fft - len(x)))
            spec = torch.stft(x, self.n_fft, self.hop, window=self.window,
                              return_complex=True).abs() ** 2  # (freq, time)
            logmel = torch.log(self.fb @ spec + 1e-6)  # (n_mels, time)
            out[i] = torch.cat([logmel.mean(1), logmel.std(1, unbiased=False)]).numpy()
        return out



class HFWav2Vec2:
    """A wav2vec2 model from Hugging Face transformers, loaded from a local directory (or the
    local cache): the last hidden state, mean-pooled over time. Input: 16 kHz mono, normalised
    to zero mean and unit variance per clip as wav2vec2's feature extractor does; clips shorter
    than the convolutional receptive field (400 samples) are zero-padded."""

    modality = "audio"
    rate = 16_000

    def __init__(self, path: str, batch_size: int = 8, device: str = "cpu",
                 precision: str = "fp32"):
        from transformers import Wav2Vec2Model

        self.device = torch.device(device)
        from mediafm.ingest.encoders import quiet_loading

        with quiet_loading():
            self.model = Wav2Vec2Model.from_pretrained(path, local_files_only=True)
        self.model = self.model.eval().to(self.device)
        self.dim = self.model.config.hidden_size
        self.name, self.version = "hf-wav2vec2", str(path)
        self.precision = precision

    @torch.no_grad()
    def encode(self, items: list[np.ndarray]) -> np.ndarray:
        from mediafm.ingest.encoders import autocast

        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for i, wave in enumerate(items):
            x = torch.from_numpy(np.asarray(wave, np.float32)).to(self.device)
            if len(x) < 400:
                x = torch.nn.functional.pad(x, (0, 400 - len(x)))
            x = (x - x.mean()) / (x.std() + 1e-7)
            with autocast(self.device, self.precision):
                hidden = self.model(x[None]).last_hidden_state[0]
            out[i] = hidden.float().mean(0).cpu().numpy()
        return out


def aisfx_network(device: str = "cpu") -> torch.nn.Module:
    """aiSFX's network as its package ships it, in eval mode (``AISFX`` folds it).

    The checkpoint is a pickled (state dict, dataset table) tuple holding NumPy scalars. It is
    loaded with ``weights_only=True`` and only those NumPy types allow-listed, and only from the
    installed package's own file: no pickle code ever runs.
    """
    import aisfx.inference as inference
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet
    from numpy._core.multiarray import scalar

    allow = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]
    with torch.serialization.safe_globals(allow):
        weights, datasets = torch.load(inference.get_path_modelWeights(), map_location="cpu",
                                       weights_only=True)
    model = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, device)
    model.load_state_dict(weights, strict=True)
    return model.eval()


def fold_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """aiSFX's network (in eval mode) with each batch norm folded into the convolution before
    it and the weights channels-last: the same function up to float rounding.

    Why: a spectrogram block reaches the network as (b, 1, T, F), which torch treats as
    channels-first, so oneDNN reordered the activations around every convolution, and each
    batch norm was one more pass over them. Measured side by side on 2 cores, 485 real shots
    (``benchmarks/encoder_precision.py``'s voice recordings and clip shots), 3 interleaved
    rounds: 1.28x (1.24-1.30) faster in bf16, 1.14x (1.13-1.20) in fp32. In fp32 the vectors
    are the shipped network's (cosine 1 - 1e-7); in bf16 they are as close to fp32's as the
    shipped network's are (cosine median 0.99998 both, the same 10 nearest neighbours 98.9%
    against 99.0%). EfficientNet's frames already arrive channels-last, where the same
    change measured nothing (``video.fold_for_inference``).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for i in range(1, 5):
        block = getattr(model.embedding_net, f"conv_block{i}")
        for j in (1, 2):
            conv, bn = getattr(block, f"conv{j}"), getattr(block, f"bn{j}")
            setattr(block, f"conv{j}", fuse_conv_bn_eval(conv, bn))
            setattr(block, f"bn{j}", torch.nn.Identity())
    return model.to(memory_format=torch.channels_last)


class AISFX:
    """aiSFX (ISMIR 2022): a CNN pretrained on sound-effects libraries, 512-d embeddings of
    ~2.3 s spectrogram blocks, mean-pooled over the shot. Shipped with its weights by the PyPI
    package ``aisfx`` (installed with ``--no-deps``: its pins are old; it needs librosa).

    Preprocessing as the package's librosa path: 44.1 kHz mono, peak-normalised, 96-band HTK
    mel spectrogram (2048 / 1024), log10(1 + 10^4 x), the paper's min-max normalisation, blocks
    of 100 frames with 50% overlap; clips shorter than a block are zero-padded. Run with its
    batch norms folded and its weights channels-last (``fold_for_inference``); the weights
    are loaded without running pickle code (``aisfx_network``).
    """

    modality = "audio"
    name = "aisfx"
    dim = 512
    rate = 44_100
    BLOCK, N_MELS, MAX_LOG = 100, 96, 9.457798957824707

    def __init__(self, device: str = "cpu", precision: str = "fp32"):
        self.device = torch.device(device)
        self.model = fold_for_inference(aisfx_network(str(self.device))).to(self.device)
        from importlib.metadata import version

        self.version = f"aisfx-{version('aisfx')}/X-Sequential-CE"
        self.precision = precision
        fb = mel_filterbank(self.N_MELS, 2048, self.rate).double()
        self.fb = (fb / fb.sum(1, keepdim=True)).float()  # librosa's norm=1.0: unit L1 rows
        self.window = torch.hann_window(2048)  # periodic, as librosa's get_window("hann")

    def spectrogram(self, wave: np.ndarray) -> np.ndarray:
        """(T, 96) log-mel frames: librosa's ``melspectrogram`` (centred, zero-padded STFT,
        periodic Hann window, L1-normalised HTK filters) computed with torch. librosa itself
        pays ~1.3 s for its first call (lazy imports), inside the encoder thread and beside
        decoding in a fresh process; a test holds the two equal."""
        peak = np.max(np.abs(wave)) if len(wave) else 0.0
        y = torch.from_numpy(np.asarray(wave / (peak if peak > 0 else 1.0), np.float32))
        spec = torch.stft(y, 2048, 1024, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs() ** 2  # (1025, T)
        mel = (self.fb @ spec).T.numpy()
        return (np.log10(mel * 10000.0 + 1) / self.MAX_LOG).astype(np.float32)

    def blocks(self, wave: np.ndarray) -> np.ndarray:
        """(n, BLOCK, N_MELS): a shot's spectrogram in half-overlapping blocks (one at least)."""
        wave = np.asarray(wave, np.float32)
        if len(wave) < 2048:
            wave = np.pad(wave, (0, 2048 - len(wave)))
        spec = self.spectrogram(wave)
        if len(spec) < self.BLOCK:
            spec = np.pad(spec, ((0, self.BLOCK - len(spec)), (0, 0)))
        starts = range(0, len(spec) - self.BLOCK + 1, self.BLOCK // 2)
        return np.stack([spec[s:s + self.BLOCK] for s in starts])

    @torch.no_grad()
    def encode(self, items: list[np.ndarray], max_blocks: int | None = None) -> np.ndarray:
        """Each shot: the mean embedding of its blocks. Blocks go through the network
        ``max_blocks`` at a time (default: 4 on a CPU, 256 on a GPU), across shots and
        splitting long ones: on two cores 2-4 blocks a call ran 64 blocks in 0.8-1.0 s against
        1.4 s for one call of 64 (the activations of a few blocks stay in cache) and against
        0.85 s one at a time; a GPU wants large batches."""
        from mediafm.ingest.encoders import autocast

        max_blocks = max_blocks or (4 if self.device.type == "cpu" else 256)
        sums = np.zeros((len(items), self.dim), dtype=np.float64)
        counts = np.zeros(len(items))
        blocks: list[np.ndarray] = []
        owner: list[int] = []

        def flush(n: int) -> None:
            x = torch.from_numpy(np.stack(blocks[:n])).to(self.device)
            with autocast(self.device, self.precision):
                emb = self.model.get_embedding(x)
            np.add.at(sums, owner[:n], emb.float().cpu().numpy())
            del blocks[:n], owner[:n]

        for i, wave in enumerate(items):
            shot = self.blocks(wave)
            blocks += list(shot)
            owner += [i] * len(shot)
            counts[i] = len(shot)
            while len(blocks) >= max_blocks:
                flush(max_blocks)
        if blocks:
            flush(len(blocks))
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
