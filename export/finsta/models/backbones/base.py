"""What every backbone is: the frame and text interfaces, their preprocessing / tokenizer records, and
the attention and pooling the networks share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn


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


def attention(q: Tensor, k: Tensor, v: Tensor, heads: int, bias: Tensor | None) -> Tensor:
    """Multi-head scaled dot-product attention on [B, S, D] inputs; ``bias`` [B, 1, 1, S] is added.

    Written out (not SDPA) so the ONNX graph is plain MatMul/Softmax on every exporter version."""
    B, S, D = q.shape
    d = D // heads
    q, k, v = (t.reshape(B, S, heads, d).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) * (d**-0.5)
    if bias is not None:
        scores = scores + bias
    return (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, S, D)


@dataclass(frozen=True)
class TextConfig:
    """The tokenizer a text backbone expects: WordPiece (``vocab.txt``) or CLIP BPE (``vocab.json`` +
    ``merges.txt``); ``tokenizer_kind`` is one of finsta_rt.tokenizer.TOKENIZER_KINDS."""

    vocab_file: Path
    lowercase: bool = True
    max_length: int = 32
    tokenizer_kind: str = "wordpiece"
    merges_file: Path | None = None  # clip_bpe only

    def tokenizer(self):
        """The runtime tokenizer this config names (finsta_rt's: training tokenizes as serving does)."""
        from finsta_rt.bundle import TokenizerSpec, tokenizer_from_spec

        return tokenizer_from_spec(
            TokenizerSpec(self.tokenizer_kind, Path(self.vocab_file), self.lowercase, self.max_length, self.merges_file)
        )


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
        mask[0, length // 2 :] = 0  # one padded row, so masking is exercised
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
