"""Decoding with TorchCodec (the PyTorch project's decoder), the alternative to PyAV for the scan.

``--decoder torchcodec`` hands ``scan`` frames decoded by TorchCodec as uint8 tensors: on the
CPU (FFmpeg, threaded) or, with ``--device cuda``, on the GPU (NVDEC), where they are also
resized: only the small images the detector, the encoder and the thumbnails need come back to
the host. The frames are the same as PyAV's (presentation times on the stream's clock, rotation
applied: TorchCodec >= 0.11 applies the display matrix itself). Resizing is torch's bilinear
with antialiasing instead of swscale's bicubic, so pixels differ slightly: the tests check the
cuts (within two frames) and the video embeddings (cosine) against the PyAV path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mediafm.ingest.media import MediaError

BATCH = 16  # frames decoded per call (one transfer on the GPU)


def available() -> bool:
    """TorchCodec is installed and its FFmpeg libraries load."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    return True


@dataclass
class TensorFrame:
    """One decoded frame: ``image`` (H, W, 3) uint8 RGB, upright, on the decoding device."""

    time: float  # presentation time on the stream's clock, seconds
    image: object  # torch.Tensor

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def tensor_frames(path: str | Path, device: str = "cpu"):
    """Decoded frames (``TensorFrame``) in presentation order. A file that breaks off after
    some frames ends there; one that yields none raises MediaError naming the file."""
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, OSError) as e:
        raise MediaError(f"--decoder torchcodec: TorchCodec cannot be loaded ({e}); "
                         "`pip install torchcodec` matching your torch, or use --decoder pyav"
                         ) from None
    try:
        decoder = VideoDecoder(str(path), device=device, dimension_order="NHWC",
                               num_ffmpeg_threads=0)
    except (RuntimeError, ValueError) as e:
        raise MediaError(f"{path}: cannot decode video with TorchCodec ({e})") from None
    n = 0
    for start in range(0, len(decoder), BATCH):
        try:
            batch = decoder.get_frames_in_range(start, min(start + BATCH, len(decoder)))
        except (RuntimeError, IndexError) as e:
            if n == 0:
                raise MediaError(f"{path}: cannot decode video ({e})") from None
            return  # truncated: keep what decoded
        for image, pts in zip(batch.data, batch.pts_seconds.tolist(), strict=True):
            n += 1
            yield TensorFrame(float(pts), image)
    if n == 0:
        raise MediaError(f"{path}: no decodable video frames")


class TensorConverter:
    """``media.Converter``'s methods for ``TensorFrame``s: resized on the frame's device, then
    copied to the host as the small uint8 arrays the detector, encoder and thumbnails take."""

    def array(self, frame: TensorFrame, width: int, height: int, fmt: str = "rgb24",
              interpolation: str | None = None) -> np.ndarray:
        """``interpolation`` is PyAV's; here every resize is antialiased bilinear."""
        img = self._resized(frame.image, width, height)
        if fmt == "bgr24":
            img = img.flip(-1)
        return img.contiguous().cpu().numpy()

    def crop(self, frame: TensorFrame, short_side: int = 256, crop: int = 224) -> np.ndarray:
        """Short side to ``short_side``, centre crop ``crop`` x ``crop`` (as Converter.crop)."""
        w, h = frame.width, frame.height
        scale = short_side / min(w, h)
        nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
        img = self._resized(frame.image, nw, nh)
        top, left = (nh - crop) // 2, (nw - crop) // 2
        return img[top:top + crop, left:left + crop].contiguous().cpu().numpy()

    def thumb(self, frame: TensorFrame, width: int = 192) -> np.ndarray:
        """At most ``width`` wide, aspect kept, never enlarged (as Converter.thumb)."""
        w, h = frame.width, frame.height
        if w > width:
            w, h = width, max(1, round(h * width / w))
        return self._resized(frame.image, w, h).contiguous().cpu().numpy()

    @staticmethod
    def _resized(image, width: int, height: int):
        import torch.nn.functional as F

        if image.shape[0] == height and image.shape[1] == width:
            return image
        x = image.permute(2, 0, 1)[None].float()  # (1, 3, H, W)
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True,
                          align_corners=False)
        return x[0].permute(1, 2, 0).round().clamp(0, 255).to(image.dtype)
