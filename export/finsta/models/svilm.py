"""S-ViLM (Xiong et al., ICLR 2024; docs/families.md, S-ViLM) on frozen per-frame backbone tokens.

Video head (:class:`SViLMVideoHead`): backbone tokens [B, T, 1 + P, C] are projected to width D,
given a time and a patch position embedding, and run through ``layers`` Transformer blocks over
all T (1 + P) tokens of the clip together with G learnable *group tokens*. After each block named
in ``group_at`` (1-based) a :class:`GroupingBlock` assigns every patch token of every frame to one
group (GroupViT-style: Gumbel-softmax with a straight-through hard assignment in training, a plain
argmax at inference) and adds the assignment-weighted mean of the tokens to each group token. The
video tokens are kept (not replaced by the groups, docs/families.md, S-ViLM) and go on to the later
blocks.

Outputs (names as in the exported video graph; E = ``embed_dim``, all embeddings L2-normalised):

* ``video_embedding`` [B, 1, E] / ``video_global`` [B, E]: mean of all tokens, projected: the
  global video-text contrastive embedding (one "query", so the STGT max-over-queries scorer applies)
* ``group_features`` [B, G, E]: the group tokens projected into the noun-grounding space
* ``group_assignment`` int64 [B, T, P]: the group of each patch of each frame (hard, last grouping block)
* ``group_probs`` [B, T, P, G]: the same assignment's softmax over groups (confidence, for tie-breaks)
* ``frame_features`` [B, T, E]: per-frame mean of the tokens, projected (temporal grouping space)
* ``scene_change`` [B, T]: 1 - cos(frame t, frame t - 1); 0 at t = 0

Text head (:class:`SViLMTextHead`): a small Transformer over frozen text-backbone token features,
then the [CLS] token projected twice: ``text_embedding`` (global contrastive space) and
``noun_embedding`` (grounding space: nouns are encoded as their own short texts, docs/families.md, S-ViLM).

Losses (:func:`contrastive_loss`, :func:`grounding_loss`, :func:`temporal_grouping_loss`) follow
docs/families.md, S-ViLM; :func:`splice` is cut-and-paste on cached features (the frame backbone works per
frame, so splicing features is splicing frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .layers import MLP, ResidualAttentionBlock
from .stgt import time_embedding_for

VIDEO_OUTPUTS = (
    "video_embedding",
    "video_global",
    "group_features",
    "group_assignment",
    "group_probs",
    "frame_features",
    "scene_change",
)
TEXT_OUTPUTS = ("text_embedding", "noun_embedding")


@dataclass
class SViLMConfig(ModelConfig):
    TITLE = "S-ViLM"

    backbone_dim: int = 1280
    text_dim: int = 384
    grid: tuple[int, int] = (7, 7)
    frames: int = 8  # T the time embedding is trained for (nearest-interpolated for other T)
    dim: int = 256
    heads: int = 8
    layers: int = 2
    group_at: list[int] = field(default_factory=lambda: [1])  # 1-based blocks followed by a grouping block
    groups: int = 8  # G group tokens
    embed_dim: int = 256
    text_layers: int = 1
    gumbel_tau: float = 1.0  # temperature of the Gumbel-softmax assignment (training)
    ground_tau: float = 0.1  # tau_g of the noun -> groups softmax in the grounding score
    temperature: float = 0.07  # initial learnable temperature of the three InfoNCE losses
    # the best cut/no-cut split of training clips' scene_change, calibrated after training and used by
    # eval_svilm on synthetic clips; real footage needs a relative rule (finsta_rt.scenes.SceneRule)
    scene_threshold: float = 0.5

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    def validate(self) -> None:
        need = self.need
        self.need_positive_ints("backbone_dim", "text_dim", "frames", "dim", "heads", "layers", "groups", "embed_dim")
        self.need_grid()
        self.need_heads_divide_dim()
        need(
            isinstance(self.group_at, list)
            and len(self.group_at) >= 1
            and all(isinstance(i, int) and 1 <= i <= self.layers for i in self.group_at)
            and len(set(self.group_at)) == len(self.group_at),
            f"group_at must be a non-empty list of distinct block numbers in 1..layers={self.layers}, got {self.group_at!r}",
        )
        need(
            isinstance(self.text_layers, int) and self.text_layers >= 0,
            f"text_layers must be >= 0, got {self.text_layers!r}",
        )
        for name in ("gumbel_tau", "ground_tau"):
            need(float(getattr(self, name)) > 0, f"{name} must be > 0, got {getattr(self, name)!r}")
        need(0 < float(self.temperature) < 1, f"temperature must be in (0, 1), got {self.temperature!r}")
        need(0 <= float(self.scene_threshold) <= 2, f"scene_threshold must be in [0, 2], got {self.scene_threshold!r}")


def one_hot_groups(idx: Tensor, groups: int, dtype: torch.dtype) -> Tensor:
    """[B, N] group indices -> [B, G, N] one-hot (ArgMax + Equal, exports as standard ops)."""
    return (idx[:, None, :] == torch.arange(groups, device=idx.device)[None, :, None]).to(dtype)


class GroupingBlock(nn.Module):
    """Assign tokens to group tokens and update the groups (docs/families.md, S-ViLM):

    logits = (LN(G) W_q)(LN(Z) W_k)^T / sqrt(D)                   [B, G, N]
    A = softmax_G((logits + gumbel) / tau)   (training; no noise and argmax at inference)
    A_h = onehot(argmax_G A) + A - sg(A)     (straight-through)
    G <- G + W_o((A_h Z W_v) / (sum_n A_h + eps));  G <- G + MLP(LN(G))
    """

    def __init__(self, dim: int, groups: int, tau: float):
        super().__init__()
        self.groups, self.tau, self.scale = groups, tau, dim**-0.5
        self.ln_g, self.ln_z = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.ln_mlp, self.mlp = nn.LayerNorm(dim), MLP(dim)

    def forward(self, g: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """g [B, G, D], z [B, N, D] -> (new g, logits [B, G, N], hard index [B, N])."""
        zn = self.ln_z(z)
        logits = (self.q(self.ln_g(g)) @ self.k(zn).transpose(1, 2)) * self.scale
        if self.training:
            u = torch.rand_like(logits).clamp_(1e-9, 1 - 1e-9)
            soft = torch.softmax((logits - torch.log(-torch.log(u))) / self.tau, dim=1)
            idx = soft.argmax(dim=1)
            assign = one_hot_groups(idx, self.groups, soft.dtype) + soft - soft.detach()
        else:
            idx = logits.argmax(dim=1)
            assign = one_hot_groups(idx, self.groups, logits.dtype)
        agg = (assign @ self.v(zn)) / (assign.sum(dim=-1, keepdim=True) + 1e-6)
        g = g + self.o(agg)
        return g + self.mlp(self.ln_mlp(g)), logits, idx


class SViLMVideoHead(nn.Module):
    """Frame tokens [B, T, 1 + P, C] -> the tuple of :data:`VIDEO_OUTPUTS` (module docstring)."""

    def __init__(self, cfg: SViLMConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        P, D, G = cfg.tokens_per_frame, cfg.dim, cfg.groups
        self.input_proj = nn.Linear(cfg.backbone_dim, D)
        self.time_embed = nn.Parameter(torch.randn(cfg.frames, D) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1 + P, D) * 0.02)
        self.group_tokens = nn.Parameter(torch.randn(G, D) * 0.02)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(D, cfg.heads) for _ in range(cfg.layers))
        self.grouping = nn.ModuleDict({str(i): GroupingBlock(D, G, cfg.gumbel_tau) for i in cfg.group_at})
        self.ln_post, self.ln_group = nn.LayerNorm(D), nn.LayerNorm(D)
        self.video_proj = nn.Linear(D, cfg.embed_dim)
        self.group_proj = nn.Linear(D, cfg.embed_dim)
        self.frame_proj = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, cfg.embed_dim))

    def forward(self, tokens: Tensor) -> tuple[Tensor, ...]:
        B, T, N, _ = tokens.shape
        G = self.cfg.groups
        x = self.input_proj(tokens) + time_embedding_for(self.time_embed, T)[None, :, None] + self.pos_embed
        x = x.reshape(B, T * N, -1)
        g = self.group_tokens.expand(B, -1, -1)
        logits = idx = None
        for i, blk in enumerate(self.blocks, start=1):
            y = blk(torch.cat([g, x], dim=1))
            g, x = y[:, :G], y[:, G:]
            if str(i) in self.grouping:
                patches = x.view(B, T, N, -1)[:, :, 1:].reshape(B, T * (N - 1), -1)
                g, logits, idx = self.grouping[str(i)](g, patches)
        x = self.ln_post(x).view(B, T, N, -1)
        zv = F.normalize(self.video_proj(x.mean(dim=(1, 2))), dim=-1)
        groups = F.normalize(self.group_proj(self.ln_group(g)), dim=-1)
        frames = F.normalize(self.frame_proj(x.mean(dim=2)), dim=-1)  # [B, T, E]
        change = 1.0 - (frames[:, 1:] * frames[:, :-1]).sum(dim=-1)
        change = torch.cat([torch.zeros_like(change[:, :1]), change], dim=1)
        assert logits is not None and idx is not None
        probs = torch.softmax(logits, dim=1).transpose(1, 2).reshape(B, T, N - 1, G)
        return zv[:, None], zv, groups, idx.view(B, T, N - 1), probs, frames, change


class SViLMTextHead(nn.Module):
    """Text-backbone token features [B, S, Ct] and mask [B, S] -> (text_embedding, noun_embedding) [B, E]."""

    def __init__(self, cfg: SViLMConfig):
        super().__init__()
        self.input_proj = nn.Linear(cfg.text_dim, cfg.dim)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(cfg.dim, cfg.heads) for _ in range(cfg.text_layers))
        self.ln = nn.LayerNorm(cfg.dim)
        self.text_proj = nn.Linear(cfg.dim, cfg.embed_dim)
        self.noun_proj = nn.Linear(cfg.dim, cfg.embed_dim)

    def forward(self, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x = self.input_proj(features)
        for blk in self.blocks:
            x = blk(x, key_mask=mask)
        cls = self.ln(x[:, 0])
        return F.normalize(self.text_proj(cls), dim=-1), F.normalize(self.noun_proj(cls), dim=-1)


class SViLMHeads(nn.Module):
    """The trainable part of S-ViLM: video head, text head and one learnable temperature."""

    def __init__(self, cfg: SViLMConfig):
        super().__init__()
        self.cfg = cfg
        self.video, self.text = SViLMVideoHead(cfg), SViLMTextHead(cfg)
        self.log_temp = nn.Parameter(torch.tensor(math.log(cfg.temperature)))

    @property
    def temperature(self) -> Tensor:
        return self.log_temp.exp()


# ----------------------------------------------------------------------------- towers (export)
class SViLMVideoTower(nn.Module):
    """uint8 frames [B, T, S, S, 3] -> :data:`VIDEO_OUTPUTS`."""

    def __init__(self, encoder: nn.Module, head: SViLMVideoHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, frames: Tensor) -> tuple[Tensor, ...]:
        return self.head(self.encoder(frames))


class SViLMTextTower(nn.Module):
    """(input_ids, attention_mask) int64 [B, S] -> (text_embedding, noun_embedding) [B, E]."""

    def __init__(self, backbone: nn.Module, head: SViLMTextHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        features, _ = self.backbone(input_ids, attention_mask)
        return self.head(features, attention_mask)


# ----------------------------------------------------------------------------- scores and losses
def grounding_scores(nouns: Tensor, groups: Tensor, tau_g: float) -> Tensor:
    """s[k, j] = <n_k, a^j_k>, a^j_k = sum_m softmax_m(<n_k, g^j_m> / tau_g) g^j_m.

    nouns [K, E], groups [J, G, E] -> [K, J]."""
    sim = torch.einsum("ke,jme->kjm", nouns, groups)
    return (torch.softmax(sim / tau_g, dim=-1) * sim).sum(dim=-1)


def grounding_loss(nouns: Tensor, owner: Tensor, same: Tensor, groups: Tensor, tau_g: float, temp: Tensor) -> Tensor:
    """Inter-clip spatial grounding: each noun (of clip ``owner[k]``) must score its own clip's groups
    above the other clips' groups. ``same`` [K, J] is True where clip j's caption also names noun k:
    those clips are not negatives (a false negative would teach the model to ignore the noun)."""
    s = grounding_scores(nouns, groups, tau_g) / temp
    keep = ~same | (torch.arange(groups.shape[0])[None, :] == owner[:, None])
    s = s.masked_fill(~keep, torch.finfo(s.dtype).min)
    return F.cross_entropy(s, owner)


def noun_contrast_loss(nouns: Tensor, owner: Tensor, groups: Tensor, tau_g: float, temp: Tensor) -> Tensor:
    """Intra-clip noun contrast (our addition, not in the paper; ``noun_contrast_weight``): the inter-clip
    loss is satisfied by one group covering every object of a clip, so it never asks two nouns of the
    same clip to find different things. Here noun k of clip b must match the groups it attends to,
    a^b_k, better than the groups that the clip's other nouns attend to, a^b_k'. Clips with a single
    noun add nothing; returns 0 when no clip has two. nouns [K, E], owner [K], groups [J, G, E]."""
    g = groups[owner]  # [K, G, E]: each noun's own clip
    w = torch.softmax(torch.einsum("ke,kme->km", nouns, g) / tau_g, dim=-1)
    a = torch.einsum("km,kme->ke", w, g)  # a^b_k
    s = (nouns @ a.t()) / temp  # [K, K]: noun k against the attended groups of noun k'
    same = owner[:, None] == owner[None, :]
    rows = same.sum(dim=1) > 1
    if not bool(rows.any()):
        return s.sum() * 0.0
    s = s.masked_fill(~same, torch.finfo(s.dtype).min)
    return F.cross_entropy(s[rows], torch.arange(len(owner))[rows])


def splice(tokens: Tensor, partner: Tensor, start: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
    """Cut-and-paste: clip i (of the first len(partner) clips) takes frames [start_i, end_i) from
    clip partner[i]. Returns the spliced tokens and the foreground labels y [B, T] (1 original, 0 pasted)."""
    B, T = len(partner), tokens.shape[1]
    t = torch.arange(T)[None]
    pasted = (t >= start[:, None]) & (t < end[:, None])  # [B, T]
    out = torch.where(pasted[:, :, None, None], tokens[partner], tokens[:B])
    return out, (~pasted).long()


def temporal_grouping_loss(frames: Tensor, y: Tensor, temp: Tensor) -> Tensor:
    """Intra-clip temporal grouping: frames [B, T, E] (normalised), labels y [B, T] (1 foreground).
    f, b = mean of the foreground / background frames; each frame classifies itself between them."""
    yf = y.to(frames.dtype)[:, :, None]
    f = (frames * yf).sum(1) / yf.sum(1).clamp_min(1)
    b = (frames * (1 - yf)).sum(1) / (1 - yf).sum(1).clamp_min(1)
    logits = torch.stack([(frames * b[:, None]).sum(-1), (frames * f[:, None]).sum(-1)], dim=-1) / temp  # [B, T, 2]
    return F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1))


def contrastive_loss(zv: Tensor, zt: Tensor, temp: Tensor) -> Tensor:
    """Global symmetric InfoNCE: zv [B, E], zt [B, E]."""
    from ..losses import itc_loss

    return itc_loss(zt @ zv.t(), temp)
