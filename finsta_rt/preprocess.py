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


@functools.lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(index [out, taps], weight [out, taps] float32): each row of _weights over its non-zero run, in order
    (a shorter run is padded with zero weights inside the image: adding 0 * x changes no sum)."""
    w = _weights(in_size, out_size)
    nz = w != 0
    first = nz.argmax(axis=1)
    last = in_size - 1 - nz[:, ::-1].argmax(axis=1)
    taps = int((last - first + 1).max())
    idx = np.minimum(first, in_size - taps)[:, None] + np.arange(taps)
    return idx, np.take_along_axis(w, idx, axis=1)


def _sum_taps(x: np.ndarray, idx: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """Sum over k of w[:, k] * x[idx[:, k]] along ``axis`` (-3 rows, -2 columns), float32, k in order: the
    order runtime/src/preprocess.cc sums in, so both give the same bits."""
    shape = list(x.shape)
    shape[axis] = idx.shape[0]
    acc = np.zeros(shape, np.float32)
    wk = (-1, 1, 1) if axis == -3 else (-1, 1)
    for k in range(idx.shape[1]):
        acc += w[:, k].reshape(wk) * np.take(x, idx[:, k], axis=axis)
    return acc


def _check(frames: np.ndarray) -> tuple[int, int]:
    if frames.dtype != np.uint8 or frames.ndim < 3:
        raise ValueError(f"frames must be uint8 [..., H, W, C], got {frames.dtype} {frames.shape}")
    h, w = frames.shape[-3], frames.shape[-2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot resize an empty frame of {h}x{w}")
    return h, w


def _resize_window(frames: np.ndarray, out_h: int, out_w: int, rows: slice, cols: slice) -> np.ndarray:
    """The ``rows`` x ``cols`` window of the out_h x out_w resize, computing that window only (each output
    pixel is its own sum over its taps: the same bits as resizing all, then cropping)."""
    h, w = frames.shape[-3], frames.shape[-2]
    ih, wh = (a[rows] for a in _taps(h, out_h))
    iw, ww = (a[cols] for a in _taps(w, out_w))
    c0, c1 = int(iw.min()), int(iw.max()) + 1  # the input columns the window reads
    x = _sum_taps(frames[..., :, c0:c1, :], ih, wh, -3)
    y = _sum_taps(x, iw - c0, ww, -2)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def resize(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Antialiased bilinear resize of uint8 [..., H, W, C] to [..., out_h, out_w, C] (uint8)."""
    if _check(frames) == (out_h, out_w):
        return frames
    return _resize_window(frames, out_h, out_w, slice(None), slice(None))


def resize_and_crop(frames: np.ndarray, size: int, mode: str = "shorter_side_then_center_crop") -> np.ndarray:
    """Resize the shorter side to ``size`` (keeping the aspect), then centre-crop size x size."""
    h, w = _check(frames)
    if mode == "stretch":
        return resize(frames, size, size)
    if h <= w:
        nh, nw = size, max(size, int(round(w * size / h)))
    else:
        nh, nw = max(size, int(round(h * size / w))), size
    top, left = (nh - size) // 2, (nw - size) // 2
    rows, cols = slice(top, top + size), slice(left, left + size)
    if (h, w) == (nh, nw):
        return np.ascontiguousarray(frames[..., rows, cols, :])
    # The filter footprint is that of the whole resized frame (as PIL/torchvision resize, then crop), but
    # only the kept window is computed.
    return _resize_window(frames, nh, nw, rows, cols)
