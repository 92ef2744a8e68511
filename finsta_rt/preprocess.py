"""Frame preprocessing done outside the graph: resize and crop, exactly as a bundle says.

The video tower takes uint8 RGB frames [B, T, S, S, 3]; normalisation (mean/std) happens inside
the graph. Resizing is separable and antialiased (a triangle filter widened by the scale when
shrinking, as PIL's BILINEAR and torch's ``interpolate(antialias=True)`` do), so a 4K frame and
a 176x144 frame give comparable features.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

RESIZE_MODES = ("shorter_side_then_center_crop", "stretch")
INTERPOLATIONS = ("bilinear",)


@dataclass(frozen=True)
class Preprocess:
    """What a bundle says about turning decoded frames into the video tower's input."""

    size: int = 224
    resize: str = "shorter_side_then_center_crop"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)  # on the 0..255 scale
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    colour: str = "RGB"
    dtype: str = "uint8"
    frames: int = 8
    sampling: str = "uniform"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"preprocess size must be a positive integer, got {self.size!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"preprocess resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"preprocess interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.colour != "RGB" or self.dtype != "uint8":
            raise ValueError(f"only uint8 RGB input is supported, got {self.dtype} {self.colour}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s > 0 for s in self.std):  # NaN > 0 is False
            raise ValueError(f"preprocess mean/std must be 3 values each, std > 0; got {self.mean}, {self.std}")
        if not isinstance(self.frames, int) or self.frames <= 0:
            raise ValueError(f"preprocess frames must be a positive integer, got {self.frames!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [..., H, W, 3] -> uint8 [..., size, size, 3]."""
        return resize_and_crop(frames, self.size, self.resize)


@functools.lru_cache(maxsize=64)
def _weights(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] resampling matrix: triangle filter on half-pixel centres, widened when shrinking."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale
    src = np.arange(in_size) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs(src[None, :] - centres[:, None]) / support)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Antialiased bilinear resize of uint8 [..., H, W, C] to [..., out_h, out_w, C] (uint8)."""
    if frames.dtype != np.uint8 or frames.ndim < 3:
        raise ValueError(f"frames must be uint8 [..., H, W, C], got {frames.dtype} {frames.shape}")
    h, w = frames.shape[-3], frames.shape[-2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot resize an empty frame of {h}x{w}")
    if (h, w) == (out_h, out_w):
        return frames
    x = frames.astype(np.float32)
    x = np.einsum("oh,...hwc->...owc", _weights(h, out_h), x, optimize=True)
    x = np.einsum("pw,...owc->...opc", _weights(w, out_w), x, optimize=True)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resize_and_crop(frames: np.ndarray, size: int, mode: str = "shorter_side_then_center_crop") -> np.ndarray:
    """Resize the shorter side to ``size`` (keeping the aspect), then centre-crop size x size."""
    h, w = frames.shape[-3], frames.shape[-2]
    if mode == "stretch":
        return resize(frames, size, size)
    if h <= w:
        nh, nw = size, max(size, int(round(w * size / h)))
    else:
        nh, nw = max(size, int(round(h * size / w))), size
    top, left = (nh - size) // 2, (nw - size) // 2
    # Crop before resizing where possible would change the filter footprint at the edges; resize
    # the whole frame (as PIL/torchvision do), then crop.
    return np.ascontiguousarray(resize(frames, nh, nw)[..., top : top + size, left : left + size, :])
