"""finsta_rt.preprocess: resize and crop against torch's antialiased bilinear interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finsta_rt.preprocess import Preprocess, resize, resize_and_crop


def torch_resize(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    x = torch.from_numpy(frames.astype(np.float64)).movedim(-1, -3)
    y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return y.movedim(-3, -1).numpy()


@pytest.mark.parametrize(
    "src,dst",
    [
        ((144, 176), (224, 274)),
        ((720, 1280), (224, 398)),
        ((2160, 3840), (224, 398)),
        ((112, 112), (224, 224)),
        ((37, 53), (11, 29)),
        ((1, 7), (5, 3)),
    ],
)
def test_resize_matches_torch_antialiased_bilinear(src, dst):
    rng = np.random.default_rng()
    frames = rng.integers(0, 256, size=(2, *src, 3), dtype=np.uint8)
    ours = resize(frames, *dst).astype(np.float64)
    ref = torch_resize(frames, *dst)
    # ours rounds to uint8: at most half a level from the float result, plus float32 accumulation
    assert np.abs(ours - ref).max() <= 0.51 + 1e-3


@pytest.mark.parametrize("h,w", [(144, 176), (720, 1280), (176, 144), (224, 224), (300, 200)])
def test_shorter_side_then_center_crop(h, w):
    frames = np.random.default_rng().integers(0, 256, size=(3, h, w, 3), dtype=np.uint8)
    out = resize_and_crop(frames, 224)
    assert out.shape == (3, 224, 224, 3) and out.dtype == np.uint8
    nh, nw = (224, round(w * 224 / h)) if h <= w else (round(h * 224 / w), 224)
    full = torch_resize(frames, nh, nw)
    top, left = (nh - 224) // 2, (nw - 224) // 2
    assert np.abs(out - full[:, top : top + 224, left : left + 224]).max() <= 0.51 + 1e-3


def test_bad_inputs_and_config():
    with pytest.raises(ValueError, match="uint8"):
        resize(np.zeros((4, 4, 3), np.float32), 2, 2)
    with pytest.raises(ValueError, match="empty frame"):
        resize(np.zeros((0, 4, 3), np.uint8), 2, 2)
    with pytest.raises(ValueError, match="resize must be one of"):
        Preprocess(resize="squash")
    with pytest.raises(ValueError, match="size must be a positive integer"):
        Preprocess(size=0)
    p = Preprocess(size=64)
    assert Preprocess.from_dict(p.to_dict()) == p
