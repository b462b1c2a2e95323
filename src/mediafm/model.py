"""MediaFM: a BERT-like encoder over a title's sequence of fused shot vectors (MEDIAFM.md §2).

Token layout, per sequence of L shots::

    [CLS] [GLOBAL] shot_0 ... shot_{L-1} [PAD] ...      (S = L + 2 positions)

[GLOBAL] is the title embedding (synopsis, tags, ...) projected to the hidden size, so every shot
attends to title context. Masked shots have their projected input replaced by a learnable
[MASK] embedding. The output projection maps hidden states back to the fused dimension to
predict the original shot vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mediafm.atomic import atomic_dir
from mediafm.config import from_dict

N_SPECIAL = 2  # [CLS], [GLOBAL]
POSITIONS = ("learned", "rope", "alibi")


@dataclass(frozen=True)
class MediaFMConfig:
    fused_dim: int = 2304  # video 768 + audio 768 + text 768 in the original
    title_dim: int = 768  # title embedding (the [GLOBAL] input); 0 = none (learned [GLOBAL])
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    dropout: float = 0.1  # on the embeddings and on each residual branch
    # on the attention probabilities; None: the same as ``dropout`` (BERT). Ours: a separate
    # knob, because any value > 0 takes PyTorch's CPU attention off its fused kernel (4x the
    # attention time, 2x the tiny config's step time, measured); GPU kernels apply it cheaply
    attn_dropout: float | None = None
    # on the embeddings (the shot's input with its title clock, and the special tokens); None:
    # the same as ``dropout``. Ours: a separate knob, to try more dropout on the residual
    # branches than on the title clock, which the arc tasks read and the masked-shot loss asks
    # nothing of; measured: 0.1 under dropout 0.2 lost clip-worthiness as 0.2 did
    # (benchmarks/README.md, the context families)
    embed_dropout: float | None = None
    max_shots: int = 512
    mask_ratio: float = 0.2
    # learned: absolute embeddings (BERT); rope / alibi: relative (ours: a title that fits in
    # one window always starts at position 0, and absolute embeddings let a small model
    # memorise (title, position) instead of learning scene structure)
    positions: str = "learned"
    # ours: the title clock, each shot's place in its whole title (0 = first shot, 1 = last),
    # as Fourier features added to its input. Relative positions (rope, alibi) and windows
    # cut from long titles hide where in the story a shot sits (the climax, the opening); the
    # spec's absolute positions told it only where in the window
    title_clock: bool = False

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.positions == "rope" and (self.hidden // self.heads) % 2:
            raise ValueError("rope needs an even head dimension (hidden / heads)")
        for name in ("dropout", "attn_dropout", "embed_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        for name in ("fused_dim", "hidden", "layers", "heads", "max_shots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> MediaFMConfig:
        """Strict: an unknown key is an error, not silently ignored."""
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def sinusoids(n: int, dim: int) -> torch.Tensor:
    """(n, dim) sine/cosine position table of "Attention is all you need".

    Used to initialise the learned positional embeddings: relative offsets are then linear
    functions of the embeddings from step 0, so attention to "the shot two back" is learnable
    from a small catalog; random initial positions had to learn each of 514 slots separately
    and trained several times slower on our CPU-sized runs.
    """
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


CLOCK_FREQUENCIES = 8


def clock_features(clock: torch.Tensor) -> torch.Tensor:
    """(..., 2 * CLOCK_FREQUENCIES) sin / cos of pi * k * clock, k = 1..8, for clock in [0, 1]:
    smooth in the clock, and a linear map of them can peak anywhere in the title."""
    k = torch.arange(1, CLOCK_FREQUENCIES + 1, dtype=torch.float32, device=clock.device)
    angles = torch.pi * clock.float()[..., None] * k  # (..., K)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def window_clock(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) the clock of windows that are whole titles: shot i of n at i / (n - 1)."""
    pos = torch.arange(max_len, dtype=torch.float32, device=lengths.device)[None]
    return (pos / (lengths[:, None] - 1).clamp(min=1)).clamp(max=1.0)


def rope_tables(n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (n, dim): rotary position angles for token positions 0..n-1.

    Rotating queries and keys by their positions makes q.k depend on the offset between two
    shots, not where they sit in the window (RoFormer)."""
    freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = torch.arange(n, dtype=torch.float32)[:, None] * freq[None]  # (n, dim / 2)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, S, Dh) rotated by the angles of its positions (rotate-half form)."""
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-b, a], dim=-1) * sin


def alibi_bias(n_shots: int, heads: int) -> torch.Tensor:
    """(heads, S, S) additive attention bias -slope_h * |i - j| between shots (ALiBi, made
    symmetric for a bidirectional encoder); 0 to and from [CLS] and [GLOBAL], which are not
    in the sequence's time. Slopes 2^(-8 (h+1) / heads): from near-local to near-global."""
    slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1, dtype=torch.float32) / heads)
    pos = torch.arange(n_shots + N_SPECIAL, dtype=torch.float32)
    dist = (pos[:, None] - pos[None]).abs()
    special = pos < N_SPECIAL
    dist[special] = 0.0
    dist[:, special] = 0.0
    return -slopes[:, None, None] * dist


class Block(nn.Module):
    """Pre-norm Transformer block (ours: pre-norm trains more stably than BERT's post-norm)."""

    def __init__(self, cfg: MediaFMConfig):
        super().__init__()
        self.heads = cfg.heads
        self.attn_dropout = cfg.dropout if cfg.attn_dropout is None else cfg.attn_dropout
        self.norm1 = nn.LayerNorm(cfg.hidden)
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.norm2 = nn.LayerNorm(cfg.hidden)
        inner = int(cfg.hidden * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.hidden, inner)
        self.fc2 = nn.Linear(inner, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        B, S, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, S, 3, self.heads, D // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, S, Dh)
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, S, D)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class MediaFM(nn.Module):
    def __init__(self, cfg: MediaFMConfig):
        super().__init__()
        self.config = cfg
        self.input_proj = nn.Linear(cfg.fused_dim, cfg.hidden)
        self.title_proj = nn.Linear(cfg.title_dim, cfg.hidden) if cfg.title_dim else None
        self.cls_emb = nn.Parameter(torch.zeros(cfg.hidden))
        self.global_emb = nn.Parameter(torch.zeros(cfg.hidden))  # [GLOBAL] bias
        self.mask_emb = nn.Parameter(torch.zeros(cfg.hidden))
        n_pos = cfg.max_shots + N_SPECIAL
        if cfg.positions == "learned":
            self.pos_emb = nn.Parameter(torch.zeros(n_pos, cfg.hidden))
        elif cfg.positions == "rope":  # buffers: part of the function, not of the weights
            cos, sin = rope_tables(n_pos, cfg.hidden // cfg.heads)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.register_buffer("alibi", alibi_bias(cfg.max_shots, cfg.heads),
                                 persistent=False)
        self.clock_proj = (nn.Linear(2 * CLOCK_FREQUENCIES, cfg.hidden) if cfg.title_clock
                           else None)
        self.drop = nn.Dropout(cfg.dropout if cfg.embed_dropout is None else cfg.embed_dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.output_proj = nn.Linear(cfg.hidden, cfg.fused_dim)
        # recompute block activations in backward: memory for compute (a run-time switch,
        # not part of the config: it does not change the function)
        self.activation_checkpointing = False
        # the store the model was trained on (dims, fused modalities, encoders): checked
        # against the store it embeds (embed.check_store); saved as data.json
        self.trained_on: dict | None = None
        self.apply(self._init)
        for p in (self.cls_emb, self.global_emb, self.mask_emb):
            nn.init.normal_(p, std=0.02)
        if self.clock_proj is not None:  # small: at 0.02 the clock drowned the shot's content
            nn.init.normal_(self.clock_proj.weight, std=0.002)  # (tone -0.01, measured)
        if cfg.positions == "learned":
            with torch.no_grad():  # learned, but starting from sinusoids (ours): see sinusoids()
                self.pos_emb.copy_(0.02 * sinusoids(n_pos, cfg.hidden))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, shots: torch.Tensor, lengths: torch.Tensor,
                title_emb: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                clock: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Contextualise a batch of shot sequences.

        shots: (B, L, fused_dim); lengths: (B,) real shots per row (rest is padding);
        title_emb: (B, title_dim) or None; mask: (B, L) bool, True = replace input with [MASK];
        clock: (B, L) each shot's place in its whole title in [0, 1] (``title_clock``; None:
        each row is a whole title, ``window_clock``).
        Returns (hidden (B, L, hidden) after the final norm, prediction (B, L, fused_dim)).
        """
        h = self.encode(shots, lengths, title_emb, mask, clock)[:, N_SPECIAL:]  # (B, L, H)
        return h, self.output_proj(h)

    def encode(self, shots: torch.Tensor, lengths: torch.Tensor,
               title_emb: torch.Tensor | None = None, mask: torch.Tensor | None = None,
               clock: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, hidden): the final-norm hidden states of every token, [CLS] and [GLOBAL]
        first (arguments as ``forward``)."""
        cfg = self.config
        B, L, _ = shots.shape
        if cfg.max_shots < L:
            raise ValueError(f"sequence of {L} shots exceeds max_shots={cfg.max_shots}")
        x = self.input_proj(shots)  # (B, L, H)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        if self.clock_proj is not None:  # after masking: a masked shot still knows its place
            if clock is None:
                clock = window_clock(lengths, L)
            x = x + self.clock_proj(clock_features(clock).to(x.dtype))
        global_token = self.global_emb.expand(B, -1)
        if self.title_proj is not None and title_emb is not None:
            global_token = global_token + self.title_proj(title_emb)
        x = torch.cat([self.cls_emb.expand(B, 1, -1), global_token[:, None], x], dim=1)  # (B,S,H)
        S = L + N_SPECIAL
        if cfg.positions == "learned":
            x = x + self.pos_emb[:S]
        x = self.drop(x)
        rope = None
        if cfg.positions == "rope":
            rope = (self.rope_cos[:S].to(x.dtype), self.rope_sin[:S].to(x.dtype))
        attn_mask = None
        if bool((lengths < L).any()):
            keep = torch.arange(S, device=shots.device) < (lengths + N_SPECIAL)[:, None]
            attn_mask = keep[:, None, None, :]  # (B, 1, 1, S): True = attend to this key
        if cfg.positions == "alibi":
            bias = self.alibi[:, :S, :S].to(x.dtype)[None]  # (1, H, S, S)
            attn_mask = bias if attn_mask is None else bias.masked_fill(~attn_mask, -torch.inf)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, attn_mask, rope, use_reentrant=False)
            else:
                x = block(x, attn_mask, rope)
        return self.norm(x)

    def fingerprint(self) -> str:
        """A digest of the config and the weights: what the outputs this model makes record
        (embeddings, heads, predictions), so a consumer can tell it from another model of the
        same shape. Recomputed only after the weights change."""
        version = (id(self), sum(p._version for p in self.parameters()))
        if getattr(self, "_fingerprint", (None, ""))[0] != version:
            h = hashlib.blake2b(json.dumps(self.config.to_dict(), sort_keys=True).encode(),
                                digest_size=16)
            for name, tensor in sorted(self.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
            self._fingerprint = (version, h.hexdigest())
        return self._fingerprint[1]

    # ------------------------------------------------------------------ save / load

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """config.json + model.safetensors (+ data.json: what the model was trained on, when
        known), written to a temp dir then swapped into place."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_dir(directory) as tmp:
            (tmp / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
            if self.trained_on is not None:
                (tmp / "data.json").write_text(json.dumps(self.trained_on, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike,
                        map_location: str | torch.device = "cpu") -> MediaFM:
        """Load strictly from a model dir, or from a training run dir (its ``model/``)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / "config.json").is_file() and (directory / "model").is_dir():
            directory = directory / "model"
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: no config.json (not a MediaFM model or run)")
        try:
            cfg = MediaFMConfig.from_dict(json.loads((directory / "config.json").read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{directory / 'config.json'}: not a valid model config ({e})"
                             ) from None
        model = cls(cfg)
        weights = directory / "model.safetensors"
        try:
            state = load_file(weights, device=str(map_location))
        except (OSError, RuntimeError, ValueError, SafetensorError) as e:  # missing, truncated
            raise ValueError(f"{weights}: cannot load the weights ({e})") from None
        model.load_state_dict(state, strict=True)
        if (directory / "data.json").is_file():
            model.trained_on = json.loads((directory / "data.json").read_text())
        return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
