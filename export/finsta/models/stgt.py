"""STGT (Zhang et al., arXiv 2407.11677), following the official code (docs/families.md, STGT).

The structural part works on per-frame backbone tokens: ``tokens`` [B, T, 1 + P, C] (a CLS token
and P = h * w patch tokens per frame). :class:`STGTVideoHead` maps them to query embeddings
``Zv`` [B, Q, E] (L2-normalised); :class:`TextHead` maps text-backbone token features to ``zt``
[B, E]; similarity is max over queries of <Zv_q, zt>. Backbones stay outside so that training
can run on cached backbone features; :mod:`finsta.export` composes backbone + head for export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..nn import st_graph_attention
from .bridge import IMAGENET_CLASSES, ConSEBridge, sentence_embedding
from .config import ModelConfig
from .layers import CrossAttentionBlock, ResidualAttentionBlock


@dataclass
class STGTConfig(ModelConfig):
    """Sizes and graph settings. ``backbone_dim``/``text_dim``/``grid`` come from the backbones."""

    TITLE = "STGT"

    backbone_dim: int = 1280
    text_dim: int = 384
    grid: tuple[int, int] = (7, 7)  # h, w of the backbone's patch grid: P = h * w tokens per frame
    # The video head average-pools the patch grid by this factor first (ceil: 7x7 -> 4x4 at 2): the graph and
    # spatial attention see 1 + 16 instead of 1 + 49 tokens per frame, about 5x less training compute at 224 px.
    token_pool: int = 1
    frames: int = 8  # T the time embedding is trained for (nearest-interpolated for other T)
    dim: int = 256  # D, width of the STGT module
    heads: int = 8
    layers: int = 1
    sim_threshold: float = 0.5  # tau (the official fine-tuning value)
    frame_radius: int = 1
    queries: int = 8  # Q learned queries
    query_layers: int = 2
    embed_dim: int = 256  # E
    text_layers: int = 1
    temperature: float = 0.07  # initial value of the learnable ITC temperature
    # The ConSE bridge (models/bridge.py): the embeddings become [sqrt(1-g) learned, sqrt(g) bridge], so the
    # score is (1 - g) learned cosine + g bridge cosine. ``embed_dim`` stays the final width: the learned
    # part gets embed_dim - text_dim of it. g starts at ``bridge_weight``; trained only with bridge_trainable.
    bridge: bool = False
    bridge_top: int = 20  # ConSE's T: the top classes in the convex combination
    bridge_weight: float = 0.5
    bridge_trainable: bool = False
    # A domain gate instead of one g (needs bridge; trained on mixed data): each video and each text gets its own
    # g = sigmoid(GATE_SHARPNESS * gate), a linear classifier per frame's token 0 / per caption token, max-pooled
    # over the row, of "like the captions parts" (real) against "like the synthetic parts", trained by
    # cross-entropy on the rows' part alone; the score becomes
    # sqrt((1-g_v)(1-g_t)) learned + sqrt(g_v g_t) bridge: each expert answers where it was trained.
    bridge_gate: bool = False

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def head_grid(self) -> tuple[int, int]:
        """The patch grid the video head works on, after ``token_pool``."""
        p = self.token_pool
        return (-(-self.grid[0] // p), -(-self.grid[1] // p))

    @property
    def learned_dim(self) -> int:
        """The width of the learned embedding: embed_dim, less the bridge's text_dim when bridged."""
        return self.embed_dim - self.text_dim if self.bridge else self.embed_dim

    def validate(self) -> None:
        self.need_positive_ints(
            "backbone_dim",
            "text_dim",
            "frames",
            "dim",
            "heads",
            "layers",
            "queries",
            "query_layers",
            "embed_dim",
            "token_pool",
        )
        self.need_grid()
        self.need_heads_divide_dim()
        need = self.need
        need(
            isinstance(self.frame_radius, int) and self.frame_radius >= 0,
            f"frame_radius must be >= 0, got {self.frame_radius!r}",
        )
        need(-1.0 <= float(self.sim_threshold) <= 1.0, f"sim_threshold must be in [-1, 1], got {self.sim_threshold!r}")
        need(
            isinstance(self.text_layers, int) and self.text_layers >= 0,
            f"text_layers must be >= 0, got {self.text_layers!r}",
        )
        need(0 < float(self.temperature) < 1, f"temperature must be in (0, 1), got {self.temperature!r}")
        for key in ("bridge", "bridge_trainable", "bridge_gate"):
            need(isinstance(getattr(self, key), bool), f"{key} must be true or false, got {getattr(self, key)!r}")
        if self.bridge:
            need(
                self.embed_dim > self.text_dim,
                f"with bridge: true, embed_dim ({self.embed_dim}) is the final width and must exceed the text "
                f"backbone's width ({self.text_dim}): the learned part gets embed_dim - {self.text_dim}",
            )
            top = self.bridge_top
            need(
                isinstance(top, int) and not isinstance(top, bool) and 1 <= top <= IMAGENET_CLASSES,
                f"bridge_top must be an integer in 1..{IMAGENET_CLASSES}, got {top!r}",
            )
            need(0 < float(self.bridge_weight) < 1, f"bridge_weight must be in (0, 1), got {self.bridge_weight!r}")
        need(not self.bridge_gate or self.bridge, "bridge_gate: true needs bridge: true")
        need(
            not (self.bridge_gate and self.bridge_trainable),
            "bridge_gate and bridge_trainable exclude each other (the gate replaces the one trained g)",
        )


def time_embedding_for(table: Tensor, frames: int) -> Tensor:
    """The learned [T_cfg, D] table, nearest-interpolated to ``frames`` rows (official code)."""
    idx = (torch.arange(frames, device=table.device) * table.shape[0]) // frames
    return table[idx]


class GraphAttention(nn.Module):
    """STGT's local graph attention: q, k, v, o projections with biases around STGraphAttention."""

    def __init__(self, cfg: STGTConfig):
        super().__init__()
        self.cfg = cfg
        self.heads, self.head_dim = cfg.heads, cfg.dim // cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.o = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, u: Tensor) -> Tensor:
        B, L, D = u.shape
        q, k, v = self.qkv(u).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = st_graph_attention(u, q, k, v, self.cfg.tokens_per_frame, self.cfg.sim_threshold, self.cfg.frame_radius)
        return self.o(out.transpose(1, 2).reshape(B, L, D))


class STGTBlock(nn.Module):
    """``CrossFramelGraphFormerBlock``: proj_fc, temporal branch over frame CLS tokens (one block
    applied twice, shared weights), graph branch over patch tokens (no residual), then per-frame
    spatial attention and MLP."""

    def __init__(self, cfg: STGTConfig):
        super().__init__()
        self.proj_fc = nn.Linear(cfg.dim, cfg.dim)
        self.temporal = ResidualAttentionBlock(cfg.dim, cfg.heads)
        self.graph = GraphAttention(cfg)
        self.spatial = ResidualAttentionBlock(cfg.dim, cfg.heads)

    def forward(self, x: Tensor) -> Tensor:  # [B, T, 1 + P, D]
        B, T, N, D = x.shape
        x = self.proj_fc(x)
        g = self.temporal(self.temporal(x[:, :, 0]))  # [B, T, D]
        u = self.graph(x[:, :, 1:].reshape(B, T * (N - 1), D)).view(B, T, N - 1, D)
        x = torch.cat([g[:, :, None], u], dim=2).reshape(B * T, N, D)
        return self.spatial(x).view(B, T, N, D)


class STGTVideoHead(nn.Module):
    """Frame tokens [B, T, 1 + P, C] -> (Zv [B, Q, E] normalised, compressed tokens [B, T(1+h+w), D]),
    h, w the grid after ``token_pool``."""

    def __init__(self, cfg: STGTConfig):
        super().__init__()
        cfg.validate()
        self.pool, self.backbone_grid = cfg.token_pool, cfg.grid
        cfg = replace(cfg, grid=cfg.head_grid, token_pool=1)  # what the blocks see
        self.cfg = cfg
        P, D = cfg.tokens_per_frame, cfg.dim
        self.input_proj = nn.Linear(cfg.backbone_dim, D)
        self.time_embed = nn.Parameter(torch.randn(cfg.frames, D) * 0.02)
        # Frozen random 2D table, as in the official code (it overwrites its sin-cos init).
        self.register_buffer("pos_embed", torch.randn(1 + P, D) * 0.02)
        self.blocks = nn.ModuleList(STGTBlock(cfg) for _ in range(cfg.layers))
        self.ln_post = nn.LayerNorm(D)
        self.proj = nn.Parameter(D**-0.5 * torch.randn(D, D))
        self.ln_vision = nn.LayerNorm(D)
        self.query_tokens = nn.Parameter(torch.randn(cfg.queries, D) * 0.02)
        self.query_blocks = nn.ModuleList(CrossAttentionBlock(D, cfg.heads) for _ in range(cfg.query_layers))
        self.vision_proj = nn.Linear(D, cfg.embed_dim)

    def compress(self, x: Tensor) -> Tensor:
        """Per frame: CLS, max over grid rows (w vectors), max over grid columns (h vectors)."""
        B, T, N, D = x.shape
        h, w = self.cfg.grid
        grid = x[:, :, 1:].reshape(B, T, h, w, D)
        cols = grid.amax(dim=2)  # [B, T, w, D]
        rows = grid.amax(dim=3)  # [B, T, h, D]
        return torch.cat([x[:, :, :1], cols, rows], dim=2).reshape(B, T * (1 + h + w), D)

    def pool_tokens(self, tokens: Tensor) -> Tensor:
        """[B, T, 1 + P, C] -> [B, T, 1 + P', C]: the patch grid average-pooled by ``token_pool`` (edges
        average only the patches they hold), the CLS token kept."""
        if self.pool == 1:
            return tokens
        B, T, _, C = tokens.shape
        h, w = self.backbone_grid
        grid = tokens[:, :, 1:].reshape(B * T, h, w, C).permute(0, 3, 1, 2)
        pooled = nn.functional.avg_pool2d(grid, self.pool, ceil_mode=True, count_include_pad=False)
        pooled = pooled.flatten(2).transpose(1, 2).reshape(B, T, -1, C)
        return torch.cat([tokens[:, :, :1], pooled], dim=2)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.pool_tokens(tokens)
        B, T, N, _ = tokens.shape
        x = self.input_proj(tokens) + time_embedding_for(self.time_embed, T)[None, :, None] + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.ln_vision(self.ln_post(self.compress(x)) @ self.proj)
        q = self.query_tokens.expand(B, -1, -1)
        for blk in self.query_blocks:
            q = blk(q, x)
        zv = nn.functional.normalize(self.vision_proj(q), dim=-1)
        return zv, x


class MeanPoolVideoHead(nn.Module):
    """Baseline: the mean of the frames' CLS tokens, projected; no structure, no time."""

    def __init__(self, cfg: STGTConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Sequential(nn.Linear(cfg.backbone_dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.embed_dim))

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        pooled = tokens[:, :, 0].mean(dim=1)
        zv = nn.functional.normalize(self.proj(pooled), dim=-1)[:, None]  # one "query"
        return zv, pooled[:, None]


class TextHead(nn.Module):
    """Text-backbone token features [B, S, C] and mask [B, S] -> zt [B, E] (normalised).
    A small transformer over the (frozen) backbone features, then the first ([CLS]) token."""

    def __init__(self, cfg: STGTConfig):
        super().__init__()
        self.input_proj = nn.Linear(cfg.text_dim, cfg.dim)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(cfg.dim, cfg.heads) for _ in range(cfg.text_layers))
        self.ln = nn.LayerNorm(cfg.dim)
        self.text_proj = nn.Linear(cfg.dim, cfg.embed_dim)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        x = self.input_proj(features)
        for blk in self.blocks:
            x = blk(x, key_mask=mask)
        return nn.functional.normalize(self.text_proj(self.ln(x[:, 0])), dim=-1)


def similarity(zv: Tensor, zt: Tensor) -> Tensor:
    """s(text j, video i) = max_q <Zv_iq, zt_j>: [Nt, Nv] for Zv [Nv, Q, E], zt [Nt, E]."""
    return torch.einsum("vqe,te->tvq", zv, zt).amax(dim=-1)


class BridgeMix(nn.Module):
    """[sqrt(1 - g) learned, sqrt(g) bridge] for unit-norm parts: a unit vector whose cosines are
    (1 - g) learned + g bridge. g = sigmoid(logit), trained only when ``trainable``."""

    def __init__(self, weight: float, trainable: bool):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(math.log(weight / (1 - weight))), requires_grad=trainable)

    @property
    def weight(self) -> Tensor:
        return torch.sigmoid(self.logit)

    def forward(self, learned: Tensor, bridge: Tensor, g: Tensor | None = None) -> Tensor:
        """``g`` [..., 1] per row (the domain gate's), else the one shared weight."""
        g = self.weight if g is None else g
        return torch.cat([(1 - g).sqrt() * learned, g.sqrt() * bridge], dim=-1)


# The gates route rather than blend: g = sigmoid(GATE_SHARPNESS * logit), so a row the classifier puts clearly on
# one side (logit beyond +-0.5) gets 99 % of one expert. At sharpness 1 the held-out real clips the gate puts at
# g ~ 0.8 kept 20 % of the learned part, whose score on real footage is worse than chance (docs/families.md).
GATE_SHARPNESS = 10.0


class DomainGate(nn.Module):
    """A linear classifier of "real footage / text" (the captions parts) against synthetic, applied to each item
    of a row (a frame's token 0, a caption's token feature) and pooled by max: items [B, N, C] -> logit [B]. A
    row is real when any item is, as in multiple-instance learning: a real caption's colour words ("blue light")
    look synthetic, its other words do not, and they decide; a synthetic row has to look synthetic throughout.
    Starts at logit(bridge_weight) everywhere."""

    def __init__(self, dim: int, weight: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, math.log(weight / (1 - weight)))

    def forward(self, items: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` [B, N] (0: padding, left out); every row needs one item kept."""
        logits = self.linear(self.norm(items))[..., 0]
        if mask is not None:
            logits = logits.masked_fill(mask == 0, -1e4)
        return logits.amax(dim=-1)

    @staticmethod
    def weight(logit: Tensor) -> Tensor:
        """g = sigmoid(GATE_SHARPNESS * logit) [B], detached: the gate learns from its own loss only
        (finsta.families.stgt); the retrieval loss would teach it to trust the learned part wherever that
        part has memorised its training clips."""
        return torch.sigmoid(GATE_SHARPNESS * logit).detach()


class BridgedVideoHead(nn.Module):
    """A video head with the ConSE bridge beside it: Zv [B, Q, E] = mix(learned Zv, bridge(tokens) per query),
    with g from the domain gate (on each frame's token 0) when there is one."""

    def __init__(self, head: nn.Module, bridge: ConSEBridge, mix: BridgeMix, gate: DomainGate | None = None):
        super().__init__()
        self.head, self.bridge, self.mix, self.gate = head, bridge, mix, gate

    def gate_logit(self, tokens: Tensor) -> Tensor:
        assert self.gate is not None
        return self.gate(tokens[:, :, 0])

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        zv, x = self.head(tokens)
        b = self.bridge(tokens)[:, None].expand(-1, zv.shape[1], -1)
        g = None if self.gate is None else DomainGate.weight(self.gate_logit(tokens))[:, None, None]
        return self.mix(zv, b, g), x


class BridgedTextHead(nn.Module):
    """A text head with the bridge's text side: zt [B, E] = mix(learned zt, the backbone's sentence embedding),
    with g from the domain gate (on each token's backbone feature) when there is one."""

    def __init__(self, head: nn.Module, mix: BridgeMix, gate: DomainGate | None = None):
        super().__init__()
        self.head, self.mix, self.gate = head, mix, gate

    def gate_logit(self, features: Tensor, mask: Tensor) -> Tensor:
        assert self.gate is not None
        return self.gate(features, mask)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        sentence = sentence_embedding(features, mask)
        g = None if self.gate is None else DomainGate.weight(self.gate_logit(features, mask))[..., None]
        return self.mix(self.head(features, mask), sentence, g)


class STGTHeads(nn.Module):
    """The trainable part of STGT: video head, text head and the ITC temperature.

    With ``cfg.bridge`` both heads carry the ConSE bridge: ``bridge`` filled from the backbones
    (finsta.models.bridge.build_bridge) when training, or left empty for a checkpoint's state to fill."""

    def __init__(self, cfg: STGTConfig, video_head: str = "stgt", bridge: ConSEBridge | None = None):
        super().__init__()
        self.cfg = cfg
        inner = replace(cfg, embed_dim=cfg.learned_dim, bridge=False, bridge_gate=False)  # the learned part alone
        video: nn.Module = STGTVideoHead(inner) if video_head == "stgt" else MeanPoolVideoHead(inner)
        text: nn.Module = TextHead(inner)
        if cfg.bridge:
            if bridge is None:
                bridge = ConSEBridge(IMAGENET_CLASSES, cfg.backbone_dim, cfg.text_dim, cfg.bridge_top)
            mix = BridgeMix(cfg.bridge_weight, cfg.bridge_trainable)
            vgate = DomainGate(cfg.backbone_dim, cfg.bridge_weight) if cfg.bridge_gate else None
            tgate = DomainGate(cfg.text_dim, cfg.bridge_weight) if cfg.bridge_gate else None
            video, text = BridgedVideoHead(video, bridge, mix, vgate), BridgedTextHead(text, mix, tgate)
        elif bridge is not None:
            raise ValueError("a bridge was given for a model config without bridge: true")
        self.video, self.text = video, text
        self.log_temp = nn.Parameter(torch.tensor(math.log(cfg.temperature)))

    @property
    def temperature(self) -> Tensor:
        return self.log_temp.exp()
