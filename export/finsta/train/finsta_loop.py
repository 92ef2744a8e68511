"""Training Finsta plug-and-play on a frozen host (a trained STGT run): the host's embeddings and
the backbones' features are computed once; only the scene-graph encoders, alignment heads and the
gated fusion learn. Captions and their hard negatives are parsed into text scene graphs once."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from finsta_rt.scene_graph import encode_text_graphs

from ..losses import itc_loss
from ..models.finsta import (FinstaConfig, FinstaScorer, FinstaText, FinstaVideo, TextGraphOutputs,
                             VideoGraphOutputs)
from ..models.stgt import STGTHeads, similarity
from .config import TrainConfig
from .features import FeatureSet, build_backbones, cache_features
from .fit import CHECKPOINT, fit, read_checkpoint, save_checkpoint
from .loop import TrainResult, _batch, _encode_texts, load_heads

log = logging.getLogger(__name__)

GRAPH_KEYS = ("node_span", "node_type", "adj", "edge_type", "pred_order")


class FinstaHeads(torch.nn.Module):
    """The trainable part of Finsta: video and text graph branches, scorer, ITC temperature."""

    def __init__(self, cfg: FinstaConfig):
        super().__init__()
        self.cfg = cfg
        self.video, self.text, self.scorer = FinstaVideo(cfg), FinstaText(cfg), FinstaScorer(cfg)
        self.log_temp = torch.nn.Parameter(torch.tensor(math.log(cfg.temperature)))

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temp.exp()


@dataclass
class HostOutputs:
    """The frozen host's embeddings of one split: zv [N, Q, E], zt [N, 3, E] (caption, order-swapped,
    attribute-swapped) and the text graphs of the same texts ([N, 3, ...] each)."""

    zv: torch.Tensor
    zt: torch.Tensor
    graphs: dict[str, torch.Tensor]


@torch.no_grad()
def host_outputs(host: STGTHeads, fs: FeatureSet, tokenizer, max_nodes: int, parser: str, batch: int = 64) -> HostOutputs:
    zv, zt = [], []
    for i in range(0, len(fs), batch):
        tokens, text, mask = _batch(fs, np.arange(i, min(len(fs), i + batch)))
        zv.append(host.video(tokens)[0])
        zt.append(_encode_texts(host, text, mask))
    flat = [t for row in fs.texts for t in row]
    S = fs.mask.shape[-1]
    g = encode_text_graphs(None, flat, tokenizer, max_nodes=max_nodes, max_length=S, parser=parser)
    graphs = {k: torch.from_numpy(g[k]).reshape(len(fs), 3, *g[k].shape[1:]) for k in GRAPH_KEYS}
    return HostOutputs(torch.cat(zv), torch.cat(zt), graphs)


def _texts(heads: FinstaHeads, text: torch.Tensor, graphs: dict[str, torch.Tensor], zt: torch.Tensor):
    """Flattens [B, K, ...] texts to B*K rows (video-major) and runs the text branch."""
    B, K = text.shape[:2]
    g = {k: v.reshape(B * K, *v.shape[2:]) for k, v in graphs.items()}
    return heads.text(text.reshape(B * K, *text.shape[2:]), g["node_span"], g["node_type"], g["adj"],
                      g["edge_type"], g["pred_order"], zt.reshape(B * K, -1))


@torch.no_grad()
def evaluate_finsta(heads: FinstaHeads, fs: FeatureSet, ho: HostOutputs, batch: int = 50) -> dict[str, float]:
    """Held-out recall and hard-negative accuracy on Finsta's total score."""
    heads.eval()
    videos, texts = [], []
    for i in range(0, len(fs), batch):
        idx = np.arange(i, min(len(fs), i + batch))
        tokens, text, _ = _batch(fs, idx)
        videos.append(heads.video(tokens, ho.zv[idx]))
        texts.append(_texts(heads, text, {k: v[idx] for k, v in ho.graphs.items()}, ho.zt[idx]))
    n = len(fs)
    v = VideoGraphOutputs(*(torch.cat([getattr(o, f.name) for o in videos]) for f in fields(VideoGraphOutputs)))
    t = TextGraphOutputs(*(torch.cat([getattr(o, f.name) for o in texts]) for f in fields(TextGraphOutputs)))
    total = heads.scorer(v, t)["total"].view(n, 3, n)  # [video's texts, 3, videos]
    sim = total[:, 0]
    rank = (sim > sim.diag()[:, None]).sum(dim=1)
    own = total[torch.arange(n), :, torch.arange(n)]  # [N, 3]
    heads.train()
    return _metrics(rank, own)


def _metrics(rank: torch.Tensor, own: torch.Tensor) -> dict[str, float]:
    n = rank.shape[0]
    return {"n": float(n), "chance_r1": 1.0 / n, "r1": float((rank < 1).float().mean()),
            "r5": float((rank < 5).float().mean()), "r10": float((rank < 10).float().mean()),
            "median_rank": float(rank.float().median() + 1),
            "order_acc": float((own[:, 0] > own[:, 1]).float().mean()),
            "attribute_acc": float((own[:, 0] > own[:, 2]).float().mean())}


@torch.no_grad()
def evaluate_host(ho: HostOutputs) -> dict[str, float]:
    """The same metrics for the host alone (its max-over-queries similarity)."""
    sim = similarity(ho.zv, ho.zt[:, 0])
    rank = (sim > sim.diag()[:, None]).sum(dim=1)
    own = torch.stack([similarity(ho.zv[i:i + 1], ho.zt[i])[:, 0] for i in range(len(ho.zv))])
    return _metrics(rank, own)


def finsta_config_for(cfg: TrainConfig, bb, host: STGTHeads) -> FinstaConfig:
    return FinstaConfig.from_dict({**cfg.model, "backbone_dim": bb.frame.out_dim, "text_dim": bb.text.out_dim,
                                   "grid": tuple(bb.frame.grid), "frames": cfg.data.frames,
                                   "host_embed_dim": host.cfg.embed_dim})


def train_finsta(cfg: TrainConfig, resume: bool = True) -> TrainResult:
    o = cfg.optim
    torch.manual_seed(o.seed)
    if o.threads:
        torch.set_num_threads(o.threads)
    host, host_cfg, _ = load_heads(cfg.host)
    host.requires_grad_(False)
    for key in ("frame_backbone", "text_backbone"):
        if getattr(host_cfg, key) != getattr(cfg, key):
            raise ValueError(f"{key} {getattr(cfg, key)!r} differs from the host run {cfg.host}'s "
                             f"{getattr(host_cfg, key)!r}: Finsta reuses the host's backbones")
    bb = build_backbones(cfg)
    train_fs, val_fs = cache_features(cfg, "train", bb), cache_features(cfg, "val", bb)
    fcfg = finsta_config_for(cfg, bb, host)
    t0 = time.monotonic()
    train_ho = host_outputs(host, train_fs, bb.tokenizer, fcfg.max_nodes, fcfg.parser)
    val_ho = host_outputs(host, val_fs, bb.tokenizer, fcfg.max_nodes, fcfg.parser)
    host_metrics = evaluate_host(val_ho)
    log.info("host embeddings and text graphs in %.0f s; host alone: R@1 %.3f order %.3f attribute %.3f",
             time.monotonic() - t0, host_metrics["r1"], host_metrics["order_acc"], host_metrics["attribute_acc"])

    heads = FinstaHeads(fcfg)

    def step(idx: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        return _step_loss(heads, train_fs, train_ho, idx, fcfg, o.hard_negatives), {}

    fitted = fit(heads, cfg, len(train_fs), step, lambda: evaluate_finsta(heads, val_fs, val_ho), "finsta_config",
                 fcfg.to_dict(), resume)
    metrics = {**fitted.metrics, **{f"host_{k}": v for k, v in host_metrics.items()}}
    save_checkpoint(Path(cfg.output) / CHECKPOINT, heads, "finsta_config", fcfg.to_dict(), cfg, fitted, metrics)
    return TrainResult(Path(cfg.output), metrics, fitted.seconds, fitted.epochs)


def _step_loss(heads: FinstaHeads, fs: FeatureSet, ho: HostOutputs, idx: np.ndarray, fcfg: FinstaConfig,
               hard_negatives: bool) -> torch.Tensor:
    """ITC on the total score and on each structural part (object-centred spatial, predicate-centred
    temporal, holistic), plus: each video prefers its caption over its order- and attribute-swapped
    versions under the total score."""
    tokens, text, _ = _batch(fs, idx)
    B = len(idx)
    video = heads.video(tokens, ho.zv[idx])
    texts = _texts(heads, text, {k: v[idx] for k, v in ho.graphs.items()}, ho.zt[idx])
    parts = heads.scorer(video, texts)
    temp = heads.temperature
    cap = torch.arange(B) * 3
    loss = itc_loss(parts["total"][cap], temp)
    for name, on in (("spatial", fcfg.spatial), ("temporal", fcfg.temporal), ("holistic", True)):
        if on:
            loss = loss + 0.5 * itc_loss(parts[name][cap], temp)
    if hard_negatives:
        own = parts["total"].view(B, 3, B)[torch.arange(B), :, torch.arange(B)]  # [B, 3]
        loss = loss + F.cross_entropy(own / temp, torch.zeros(B, dtype=torch.long))
        if fcfg.temporal:  # order negatives differ only in time: the temporal part must see it
            t_own = parts["temporal"].view(B, 3, B)[torch.arange(B), :2, torch.arange(B)]
            loss = loss + F.cross_entropy(t_own / temp, torch.zeros(B, dtype=torch.long))
    return loss


def load_finsta(run_or_ckpt: str | Path) -> tuple[FinstaHeads, TrainConfig, dict]:
    state, cfg = read_checkpoint(run_or_ckpt)
    heads = FinstaHeads(FinstaConfig.from_dict(state["finsta_config"]))
    heads.load_state_dict(state["heads"])
    return heads.eval(), cfg, state.get("metrics", {})
