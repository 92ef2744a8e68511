"""Finsta (Fei et al., TPAMI 2024): scene graphs of text and video, graph Transformers and
structural alignment, plugged onto a frozen host video-language model (docs/families.md,
Finsta; the paper leaves much open, these are our definitions).

Video side, inside the graph and without a detector (:class:`VideoSceneGraph`): K group tokens
softly assigned over each frame's patch tokens give K object slots per frame; slot m at frames t
and t+1 is one track. Slot features are assignment-weighted token means, slot positions the
weighted means of patch coordinates. Spatial edges join the slots of a frame (relation features
from slot pairs); temporal edges follow tracks.

Encoders: :class:`TextGraphTransformer` (EdgeGraphAttention over the parsed text graph),
:class:`RecurrentGraphTransformer` (per-frame EdgeGraphAttention, a gated memory per track carried
across frames) and :class:`GaussianDiffGraphTransformer` (GaussianDiffGraphAttention over the
spatial-temporal graph: context and its change).

Scores of text i against video j (all in [-1, 1] before weighting):
- *spatial*, object-centred: each text object node takes its best-matching video track;
- *temporal*, predicate-centred: each text predicate attends over per-frame predicate features;
  the aligned features must match and the attended times must follow the caption's order;
- *holistic*: the two graph vectors;
- *global*: the host's max-over-queries similarity after a gated fusion of the graph vectors into
  the host embeddings. The total is the global score plus learned non-negative weights times the
  parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import edge_graph_attention, gaussian_diff_graph_attention
from .config import ModelConfig

NODE_TYPES = 4  # padding, object, attribute, predicate (finsta_rt.scene_graph)
EDGE_TYPES = 8  # none, self, subj->pred, pred->obj, obj->attr and the three reverses
OBJECT, PREDICATE = 1, 3
BOX_SHARPNESS = 40.0  # slope of the soft box indicator, per unit of normalised frame size


@dataclass
class FinstaConfig(ModelConfig):
    TITLE = "Finsta"

    backbone_dim: int = 1280  # frame backbone channels C (tokens [B, T, 1 + P, C])
    text_dim: int = 384  # text backbone channels
    grid: tuple[int, int] = (7, 7)
    frames: int = 8
    host_embed_dim: int = 256  # E of the host's embeddings
    dim: int = 128  # width of the graph encoders
    heads: int = 4
    slots: int = 4  # K object slots per frame
    text_layers: int = 2
    video_layers: int = 1
    gaussian_diff: bool = True  # ablation switch: the spatial-temporal Gaussian differential module
    temporal: bool = True  # ablation switch: predicate-centred temporal alignment
    spatial: bool = True  # ablation switch: object-centred spatial alignment
    max_nodes: int = 16  # N of the padded text graph
    parser: str = "rules"  # text scene-graph parser (finsta_rt.scene_graph): rules | spacy | auto
    clamp: float = 5.0
    temperature: float = 0.07

    def validate(self) -> None:
        self.need_positive_ints(
            "backbone_dim", "text_dim", "frames", "host_embed_dim", "dim", "heads", "slots", "text_layers", "max_nodes"
        )
        self.need_heads_divide_dim()
        if not isinstance(self.video_layers, int) or self.video_layers < 0:
            raise ValueError(f"Finsta config: video_layers must be >= 0, got {self.video_layers!r}")
        if self.parser not in ("rules", "spacy", "auto"):
            raise ValueError(f"Finsta config: parser must be rules, spacy or auto, got {self.parser!r}")
        if not self.clamp > 0:
            raise ValueError(f"Finsta config: clamp must be > 0, got {self.clamp!r}")


def _heads(x: Tensor, h: int) -> Tensor:
    """[..., N, D] -> [..., h, N, D / h]."""
    *lead, n, d = x.shape
    return x.reshape(*lead, n, h, d // h).transpose(-2, -3)


def _merge(x: Tensor) -> Tensor:
    """[..., h, N, d] -> [..., N, h * d]."""
    *lead, h, n, d = x.shape
    return x.transpose(-2, -3).reshape(*lead, n, h * d)


class EdgeGraphLayer(nn.Module):
    """A graph Transformer layer with edge features (Dwivedi & Bresson, as in Dysen): node and
    edge streams, each with a residual, LayerNorm and a 2x FFN, around EdgeGraphAttention."""

    def __init__(self, dim: int, heads: int, clamp: float):
        super().__init__()
        self.heads, self.clamp = heads, clamp
        self.qkv = nn.Linear(dim, 3 * dim)
        self.edge = nn.Linear(dim, dim)
        self.o_h, self.o_e = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.ln_h1, self.ln_h2, self.ln_e1, self.ln_e2 = (nn.LayerNorm(dim) for _ in range(4))
        self.ffn_h = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.ffn_e = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def forward(self, h: Tensor, e: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
        """h [B, N, D], e [B, N, N, D], adj [B, N, N] bool with self-loops."""
        B, N, D = h.shape
        q, k, v = (_heads(t, self.heads) for t in self.qkv(h).chunk(3, dim=-1))
        ee = self.edge(e).view(B, N, N, self.heads, D // self.heads).permute(0, 3, 1, 2, 4)  # [B, H, N, N, d]
        h_att, e_att = edge_graph_attention(q, k, v, ee, adj, clamp=self.clamp)
        h = self.ln_h1(h + self.o_h(_merge(h_att)))
        h = self.ln_h2(h + self.ffn_h(h))
        e = self.ln_e1(e + self.o_e(e_att.permute(0, 2, 3, 1, 4).reshape(B, N, N, D)))
        e = self.ln_e2(e + self.ffn_e(e))
        return h, e


class TextGraphTransformer(nn.Module):
    """The parsed text scene graph over frozen text-backbone token features -> node features.

    Nodes start as the mean of their span's token features plus a node-type embedding (and, for
    predicates, their order in the caption); edges start as edge-type embeddings."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        self.input_proj = nn.Linear(cfg.text_dim, cfg.dim)
        self.node_type = nn.Embedding(NODE_TYPES, cfg.dim)
        self.edge_type = nn.Embedding(EDGE_TYPES, cfg.dim)
        self.order = nn.Linear(1, cfg.dim)
        self.layers = nn.ModuleList(EdgeGraphLayer(cfg.dim, cfg.heads, cfg.clamp) for _ in range(cfg.text_layers))

    def forward(
        self, features: Tensor, node_span: Tensor, node_type: Tensor, adj: Tensor, edge_type: Tensor, pred_order: Tensor
    ) -> Tensor:
        S = features.shape[1]
        pos = torch.arange(S, device=features.device)
        span = ((pos >= node_span[..., :1]) & (pos < node_span[..., 1:])).to(features.dtype)  # [B, N, S]
        x = self.input_proj(features)
        h = span @ x / span.sum(-1, keepdim=True).clamp_min(1.0)
        n_pred = (pred_order.amax(dim=1, keepdim=True) + 1).clamp_min(1).to(h.dtype)
        rel = torch.where(pred_order >= 0, pred_order.to(h.dtype) / n_pred, torch.zeros_like(h[..., 0]))
        h = h + self.node_type(node_type) + self.order(rel[..., None]) * (pred_order >= 0).to(h.dtype)[..., None]
        e = self.edge_type(edge_type)
        for layer in self.layers:
            h, e = layer(h, e, adj)
        return h


class VideoSceneGraph(nn.Module):
    """Frame tokens [B, T, 1 + P, C] -> slots [B, T, K, D], positions [B, T, K, 2], relation
    features [B, T, K, K, D] and the per-patch assignment [B, T, P, K]."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        h, w = cfg.grid
        self.cfg = cfg
        self.input_proj = nn.Linear(cfg.backbone_dim, cfg.dim)
        self.pos_embed = nn.Parameter(torch.randn(h * w, cfg.dim) * 0.02)
        self.groups = nn.Parameter(torch.randn(cfg.slots, cfg.dim) * 0.5)
        self.ln_tok, self.ln_grp = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.1)))
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        coords = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], dim=-1).reshape(h * w, 2)
        self.register_buffer("coords", coords.to(torch.float32))
        self.relation = nn.Sequential(nn.Linear(2 * cfg.dim + 2, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))

    def box_weights(self, slot_box: Tensor, slot_mask: Tensor) -> Tensor:
        """[B, T, P, K]: a smooth indicator of each patch centre inside each user box (so that a
        box smaller than a patch still pools its nearest patches), zero for empty slots."""
        c = self.coords  # [P, 2]
        box = slot_box[:, :, None]  # [B, T, 1, K, 4]
        cx, cy = c[None, None, :, None, 0], c[None, None, :, None, 1]
        inside = (
            torch.sigmoid(BOX_SHARPNESS * (cx - box[..., 0]))
            * torch.sigmoid(BOX_SHARPNESS * (box[..., 2] - cx))
            * torch.sigmoid(BOX_SHARPNESS * (cy - box[..., 1]))
            * torch.sigmoid(BOX_SHARPNESS * (box[..., 3] - cy))
        )
        return inside * slot_mask[:, :, None].to(inside.dtype)

    def forward(
        self, tokens: Tensor, slot_box: Tensor | None = None, slot_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``slot_box`` [B, T, K, 4] / ``slot_mask`` [B, T, K]: a user-supplied graph's boxes
        (finsta_rt.user_graph); a video whose mask is all False keeps the learned slots."""
        x = self.input_proj(tokens[:, :, 1:]) + self.pos_embed  # [B, T, P, D]
        logits = self.ln_tok(x) @ self.ln_grp(self.groups).t() / (x.shape[-1] ** 0.5 * self.log_tau.exp())
        assign = torch.softmax(logits, dim=-1)  # [B, T, P, K]: each patch shared among the slots
        if slot_box is not None and slot_mask is not None:
            user = slot_mask.flatten(1).any(dim=1)[:, None, None, None]
            assign = torch.where(user, self.box_weights(slot_box, slot_mask), assign)
        mass = assign.sum(dim=2).clamp_min(1e-6)  # [B, T, K]
        slots = assign.transpose(-1, -2) @ x / mass[..., None]
        pos = assign.transpose(-1, -2) @ self.coords / mass[..., None]
        K = slots.shape[2]
        pair = torch.cat(
            [
                slots[..., :, None, :].expand(-1, -1, -1, K, -1),
                slots[..., None, :, :].expand(-1, -1, K, -1, -1),
                pos[..., :, None, :] - pos[..., None, :, :],
            ],
            dim=-1,
        )
        return slots, pos, self.relation(pair), assign


class RecurrentGraphTransformer(nn.Module):
    """Per frame: the memory of each track enters its slot, EdgeGraphAttention layers propagate
    within the frame, and a gated update (MART-style) writes the result back to the track memory."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        D = cfg.dim
        self.layers = nn.ModuleList(EdgeGraphLayer(D, cfg.heads, cfg.clamp) for _ in range(cfg.video_layers))
        self.read = nn.Linear(D, D)
        self.ln_in = nn.LayerNorm(D)
        self.gate = nn.Linear(2 * D, D)
        self.cand = nn.Linear(2 * D, D)

    def forward(self, slots: Tensor, rel: Tensor, slot_adj: Tensor | None = None) -> Tensor:
        """``slot_adj`` [B, T, K, K] bool with self-loops (a user graph's relations); default: the
        slots of a frame are all related."""
        B, T, K, D = slots.shape
        if slot_adj is None:
            slot_adj = torch.ones(B, T, K, K, dtype=torch.bool, device=slots.device)
        memory = torch.zeros(B, K, D, dtype=slots.dtype, device=slots.device)
        out = []
        for t in range(T):
            h, e = self.ln_in(slots[:, t] + self.read(memory)), rel[:, t]
            for layer in self.layers:
                h, e = layer(h, e, slot_adj[:, t])
            hm = torch.cat([h, memory], dim=-1)
            z = torch.sigmoid(self.gate(hm))
            memory = (1 - z) * torch.tanh(self.cand(hm)) + z * memory
            out.append(h)
        return torch.stack(out, dim=1)


class GaussianDiffGraphTransformer(nn.Module):
    """GaussianDiffGraphAttention over all T*K slots: neighbours are the slots of the same frame
    and the same track at t +- 1; a per-head Gaussian of the (x, y, t) distance weights them; the
    output is the context and its change, projected back to D with a residual."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        D = cfg.dim
        self.heads = cfg.heads
        self.qkv = nn.Linear(D, 3 * D)
        self.sigma_raw = nn.Parameter(torch.full((cfg.heads, 3), math.log(math.e - 1) * 0.5))
        self.o = nn.Linear(2 * D, D)
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.ffn = nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D))

    @staticmethod
    def adjacency(T: int, K: int, device: torch.device) -> Tensor:
        frame = torch.arange(T * K, device=device) // K
        track = torch.arange(T * K, device=device) % K
        same_frame = frame[:, None] == frame[None, :]
        along_track = (track[:, None] == track[None, :]) & ((frame[:, None] - frame[None, :]).abs() <= 1)
        return same_frame | along_track

    def forward(self, h: Tensor, pos: Tensor) -> Tensor:
        B, T, K, D = h.shape
        x = h.reshape(B, T * K, D)
        t = torch.arange(T, device=h.device, dtype=h.dtype).view(1, T, 1, 1).expand(B, T, K, 1) / max(T - 1, 1)
        p = torch.cat([pos, t], dim=-1).reshape(B, T * K, 3)
        adj = self.adjacency(T, K, h.device)[None].expand(B, -1, -1)
        q, k, v = (_heads(z, self.heads) for z in self.qkv(x).chunk(3, dim=-1))
        sigma = F.softplus(self.sigma_raw) + 1e-3
        out = gaussian_diff_graph_attention(q, k, v, p, adj, sigma)  # [B, H, N, 2d]
        d = D // self.heads
        ctx, delta = _merge(out[..., :d]), _merge(out[..., d:])
        x = self.ln1(x + self.o(torch.cat([ctx, delta], dim=-1)))
        x = self.ln2(x + self.ffn(x))
        return x.view(B, T, K, D)


class GatedFusion(nn.Module):
    """host' = normalise(host + g * W h), g = sigmoid(W_g [host; h]): the graph vector nudges the
    host embedding; W starts at zero so the fused model starts as the host."""

    def __init__(self, embed: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, embed)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.gate = nn.Linear(embed + dim, embed)

    def forward(self, host: Tensor, g: Tensor) -> Tensor:
        if host.dim() == 3:  # per-query host embeddings [B, Q, E]: one graph vector for all queries
            g = g[:, None].expand(-1, host.shape[1], -1)
        gate = torch.sigmoid(self.gate(torch.cat([host, g], dim=-1)))
        return F.normalize(host + gate * self.proj(g), dim=-1)


@dataclass
class VideoGraphOutputs:
    tracks: Tensor  # [B, K, E'] normalised: object nodes pooled over their track
    frames: Tensor  # [B, T, E'] normalised: per-frame predicate features
    graph: Tensor  # [B, E'] normalised graph vector
    fused: Tensor  # [B, Q, E] the host video embedding after fusion
    assign: Tensor  # [B, T, P, K]


@dataclass
class TextGraphOutputs:
    objects: Tensor  # [B, N, E'] normalised node features (meaningful where node_type == object)
    predicates: Tensor  # [B, N, E'] normalised (meaningful where node_type == predicate)
    object_mask: Tensor  # [B, N] bool
    pred_order: Tensor  # [B, N] int64, -1 for non-predicates
    graph: Tensor  # [B, E']
    fused: Tensor  # [B, E]


class FinstaVideo(nn.Module):
    """Backbone tokens + the host's video embedding -> :class:`VideoGraphOutputs`."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.dim
        self.dsg = VideoSceneGraph(cfg)
        self.rgt = RecurrentGraphTransformer(cfg)
        self.gd = GaussianDiffGraphTransformer(cfg) if cfg.gaussian_diff else None
        self.time_embed = nn.Parameter(torch.randn(cfg.frames, D) * 0.02)
        self.track_proj = nn.Linear(D, D)
        self.frame_proj = nn.Sequential(nn.Linear(2 * D, D), nn.GELU(), nn.Linear(D, D))
        self.graph_proj = nn.Linear(D, D)
        self.fusion = GatedFusion(cfg.host_embed_dim, D)

    def forward(
        self,
        tokens: Tensor,
        host_embedding: Tensor,
        slot_box: Tensor | None = None,
        slot_mask: Tensor | None = None,
        slot_adj: Tensor | None = None,
    ) -> VideoGraphOutputs:
        """The optional ``slot_*`` tensors carry a user-supplied video graph (see VideoSceneGraph)."""
        slots, pos, rel, assign = self.dsg(tokens, slot_box, slot_mask)
        if slot_adj is not None and slot_mask is not None:  # a video without a user graph: all related
            user = slot_mask.flatten(1).any(dim=1)[:, None, None, None]
            slot_adj = slot_adj | ~user
        h = self.rgt(slots, rel, slot_adj)
        if self.gd is not None:
            h = self.gd(h, pos)
        T = h.shape[1]
        idx = (torch.arange(T, device=h.device) * self.time_embed.shape[0]) // T
        state = h.mean(dim=2)  # [B, T, D]
        change = torch.cat([torch.zeros_like(state[:, :1]), state[:, 1:] - state[:, :-1]], dim=1)
        frames = self.frame_proj(torch.cat([state, change], dim=-1)) + self.time_embed[idx]
        graph = self.graph_proj(h.mean(dim=(1, 2)))
        return VideoGraphOutputs(
            tracks=F.normalize(self.track_proj(h.mean(dim=1)), dim=-1),
            frames=F.normalize(frames, dim=-1),
            graph=F.normalize(graph, dim=-1),
            fused=self.fusion(host_embedding, graph),
            assign=assign,
        )


class FinstaText(nn.Module):
    """Text-backbone features + the parsed graph + the host's text embedding -> :class:`TextGraphOutputs`."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        D = cfg.dim
        self.gtrm = TextGraphTransformer(cfg)
        self.object_proj, self.pred_proj, self.graph_proj = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.fusion = GatedFusion(cfg.host_embed_dim, D)

    def forward(
        self,
        features: Tensor,
        node_span: Tensor,
        node_type: Tensor,
        adj: Tensor,
        edge_type: Tensor,
        pred_order: Tensor,
        host_embedding: Tensor,
    ) -> TextGraphOutputs:
        h = self.gtrm(features, node_span, node_type, adj, edge_type, pred_order)
        valid = (node_type > 0).to(h.dtype)[..., None]
        graph = self.graph_proj((h * valid).sum(1) / valid.sum(1).clamp_min(1.0))
        return TextGraphOutputs(
            objects=F.normalize(self.object_proj(h), dim=-1),
            predicates=F.normalize(self.pred_proj(h), dim=-1),
            object_mask=node_type == OBJECT,
            pred_order=torch.where(node_type == PREDICATE, pred_order, -1),
            graph=F.normalize(graph, dim=-1),
            fused=self.fusion(host_embedding, graph),
        )


class FinstaScorer(nn.Module):
    """All text x video pairs -> total [Nt, Nv] and its parts (global, spatial, temporal, holistic)."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        self.cfg = cfg
        self.weights_raw = nn.Parameter(torch.full((3,), -1.0))  # spatial, temporal, holistic
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.1)))  # temporal attention temperature
        self.order_gain = 8.0

    def forward(self, video: VideoGraphOutputs, text: TextGraphOutputs) -> dict[str, Tensor]:
        glob = torch.einsum("vqe,te->tvq", video.fused, text.fused).amax(dim=-1)  # [Nt, Nv]
        zero = torch.zeros_like(glob)
        spatial = self.spatial(video, text) if self.cfg.spatial else zero
        temporal = self.temporal(video, text) if self.cfg.temporal else zero
        holistic = text.graph @ video.graph.t()
        w = F.softplus(self.weights_raw)
        total = glob + w[0] * spatial + w[1] * temporal + w[2] * holistic
        return {"total": total, "global": glob, "spatial": spatial, "temporal": temporal, "holistic": holistic}

    @staticmethod
    def spatial(video: VideoGraphOutputs, text: TextGraphOutputs) -> Tensor:
        """Mean over text objects of the best cosine with a video track."""
        best = torch.einsum("tne,vke->tvnk", text.objects, video.tracks).amax(dim=-1)  # [Nt, Nv, N]
        m = text.object_mask.to(best.dtype)[:, None]
        return (best * m).sum(-1) / m.sum(-1).clamp_min(1.0)

    def temporal(self, video: VideoGraphOutputs, text: TextGraphOutputs) -> Tensor:
        """Mean over text predicates of the cosine with their attended frame feature, plus how well
        consecutive predicates' attended times follow the caption's order."""
        T = video.frames.shape[1]
        sim = torch.einsum("tne,vfe->tvnf", text.predicates, video.frames)  # [Nt, Nv, N, T]
        att = torch.softmax(sim / self.log_tau.exp(), dim=-1)
        match = (att * sim).sum(-1)  # cos with the attended feature's components, [Nt, Nv, N]
        is_pred = (text.pred_order >= 0).to(sim.dtype)[:, None]
        content = (match * is_pred).sum(-1) / is_pred.sum(-1).clamp_min(1.0)
        when = (att * torch.linspace(0, 1, T, device=sim.device, dtype=sim.dtype)).sum(-1)  # [Nt, Nv, N]
        # predicate c precedes c' in the caption: pairs (c, c') with order(c') = order(c) + 1
        o = text.pred_order
        nxt = (o[:, None, :] == o[:, :, None] + 1) & (o[:, :, None] >= 0)  # [Nt, N(c), N(c')]
        gap = when[:, :, None, :] - when[:, :, :, None]  # [Nt, Nv, c, c']: when(c') - when(c)
        pairs = nxt[:, None].to(sim.dtype)
        order = (torch.tanh(self.order_gain * gap) * pairs).sum((-1, -2)) / pairs.sum((-1, -2)).clamp_min(1.0)
        return 0.5 * (content + order)


class FinstaHeads(nn.Module):
    """The trainable part of Finsta: video and text graph branches, scorer, ITC temperature."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        self.cfg = cfg
        self.video, self.text, self.scorer = FinstaVideo(cfg), FinstaText(cfg), FinstaScorer(cfg)
        self.log_temp = nn.Parameter(torch.tensor(math.log(cfg.temperature)))

    @property
    def temperature(self) -> Tensor:
        return self.log_temp.exp()


# ----------------------------------------------------------------------------- exported towers
# The three graphs of a ``finsta`` bundle: the host's towers with Finsta plugged on. Dataclass
# outputs become named tensors; the text graph arrives as the padded tensors of
# finsta_rt.scene_graph.encode_text_graphs.
VIDEO_INPUTS = ("frames", "slot_box", "slot_mask", "slot_adj")
VIDEO_OUTPUTS = ("video_embedding", "video_global", "video_tracks", "video_frames", "video_graph", "video_assign")
TEXT_INPUTS = ("input_ids", "attention_mask", "node_span", "node_type", "adj", "edge_type", "pred_order")
TEXT_OUTPUTS = (
    "text_embedding",
    "text_objects",
    "text_predicates",
    "text_object_mask",
    "text_pred_order",
    "text_graph",
)
SCORER_OUTPUTS = ("scores", "score_global", "score_spatial", "score_temporal", "score_holistic")


class FinstaVideoTower(nn.Module):
    """uint8 frames [B, T, S, S, 3] and an optional user video graph (``slot_box`` [B, T, K, 4],
    ``slot_mask`` [B, T, K], ``slot_adj`` [B, T, K, K]; all-False masks: none) -> VIDEO_OUTPUTS
    (video_embedding: the fused host embedding)."""

    def __init__(self, encoder: nn.Module, host_head: nn.Module, finsta: FinstaVideo):
        super().__init__()
        self.encoder, self.host_head, self.finsta = encoder, host_head, finsta

    def forward(self, frames: Tensor, slot_box: Tensor, slot_mask: Tensor, slot_adj: Tensor) -> tuple[Tensor, ...]:
        tokens = self.encoder(frames)
        zv, _ = self.host_head(tokens)
        out = self.finsta(tokens, zv, slot_box, slot_mask, slot_adj)
        return (out.fused, F.normalize(out.fused.mean(dim=1), dim=-1), out.tracks, out.frames, out.graph, out.assign)


class FinstaTextTower(nn.Module):
    """TEXT_INPUTS -> TEXT_OUTPUTS (text_embedding: the fused host embedding)."""

    def __init__(self, backbone: nn.Module, host_head: nn.Module, finsta: FinstaText):
        super().__init__()
        self.backbone, self.host_head, self.finsta = backbone, host_head, finsta

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        node_span: Tensor,
        node_type: Tensor,
        adj: Tensor,
        edge_type: Tensor,
        pred_order: Tensor,
    ) -> tuple[Tensor, ...]:
        features, _ = self.backbone(input_ids, attention_mask)
        zt = self.host_head(features, attention_mask)
        out = self.finsta(features, node_span, node_type, adj, edge_type, pred_order, zt)
        return (out.fused, out.objects, out.predicates, out.object_mask, out.pred_order, out.graph)


class FinstaScorerTower(nn.Module):
    """Video outputs and text outputs -> SCORER_OUTPUTS, each [Nt, Nv]."""

    def __init__(self, scorer: FinstaScorer):
        super().__init__()
        self.scorer = scorer

    def forward(
        self,
        video_embedding: Tensor,
        video_tracks: Tensor,
        video_frames: Tensor,
        video_graph: Tensor,
        text_embedding: Tensor,
        text_objects: Tensor,
        text_predicates: Tensor,
        text_object_mask: Tensor,
        text_pred_order: Tensor,
        text_graph: Tensor,
    ) -> tuple[Tensor, ...]:
        video = VideoGraphOutputs(video_tracks, video_frames, video_graph, video_embedding, video_tracks[:, :0])
        text = TextGraphOutputs(
            text_objects, text_predicates, text_object_mask, text_pred_order, text_graph, text_embedding
        )
        s = self.scorer(video, text)
        return (s["total"], s["global"], s["spatial"], s["temporal"], s["holistic"])
