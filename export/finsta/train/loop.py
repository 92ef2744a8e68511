"""Training STGT's heads on cached backbone features (ITC, then CSAL, with hard negatives) through
the shared loop of :mod:`.fit`; ``train`` dispatches the other families."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import csal_loss, itc_loss
from ..models.stgt import STGTConfig, STGTHeads, similarity
from .config import TrainConfig
from .features import Backbones, FeatureSet, build_backbones, cache_features
from .fit import fit, read_checkpoint

log = logging.getLogger(__name__)


def stgt_config_for(cfg: TrainConfig, bb: Backbones) -> STGTConfig:
    grid = tuple(bb.frame.grid)
    return STGTConfig.from_dict({**cfg.model, "backbone_dim": bb.frame.out_dim, "text_dim": bb.text.out_dim,
                                 "grid": grid, "frames": cfg.data.frames})


def _batch(fs: FeatureSet, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    idx = np.sort(idx)  # sorted reads are faster on the memory map
    return (torch.from_numpy(np.asarray(fs.tokens[idx], dtype=np.float32)),
            torch.from_numpy(fs.text[idx].astype(np.float32)), torch.from_numpy(fs.mask[idx]))


def _encode_texts(heads: STGTHeads, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    B, K, S, C = text.shape
    return heads.text(text.reshape(B * K, S, C), mask.reshape(B * K, S)).view(B, K, -1)


@torch.no_grad()
def evaluate(heads: STGTHeads, fs: FeatureSet, batch: int = 64) -> dict[str, float]:
    """Held-out text->video recall, and how often the true caption beats each hard negative."""
    heads.eval()
    zv, zt = [], []
    for i in range(0, len(fs), batch):
        tokens, text, mask = _batch(fs, np.arange(i, min(len(fs), i + batch)))
        zv.append(heads.video(tokens)[0])
        zt.append(_encode_texts(heads, text, mask))
    zv, zt = torch.cat(zv), torch.cat(zt)  # [N, Q, E], [N, 3, E]
    sim = similarity(zv, zt[:, 0])  # [texts, videos]
    n = sim.shape[0]
    rank = (sim > sim.diag()[:, None]).sum(dim=1)  # 0 = the true video ranks first
    own = torch.stack([similarity(zv[i:i + 1], zt[i])[:, 0] for i in range(n)])  # [N, 3]
    heads.train()
    return {
        "n": float(n), "chance_r1": 1.0 / n,
        "r1": float((rank < 1).float().mean()), "r5": float((rank < 5).float().mean()),
        "r10": float((rank < 10).float().mean()), "median_rank": float(rank.float().median() + 1),
        "order_acc": float((own[:, 0] > own[:, 1]).float().mean()),
        "attribute_acc": float((own[:, 0] > own[:, 2]).float().mean()),
    }


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, float]
    train_seconds: float
    epochs: float


def train(cfg: TrainConfig, resume: bool = True) -> TrainResult:
    """Trains the family's heads named by ``cfg`` on cached backbone features."""
    if cfg.family == "finsta":
        from .finsta_loop import train_finsta

        return train_finsta(cfg, resume)
    if cfg.family == "svilm":
        from .svilm_loop import train_svilm

        return train_svilm(cfg, resume)
    o = cfg.optim
    torch.manual_seed(o.seed)
    if o.threads:
        torch.set_num_threads(o.threads)
    bb = build_backbones(cfg)
    train_fs, val_fs = cache_features(cfg, "train", bb), cache_features(cfg, "val", bb)
    scfg = stgt_config_for(cfg, bb)
    heads = STGTHeads(scfg, cfg.video_head)
    csal = lambda epoch: o.loss == "csal" and epoch >= o.csal_after * o.epochs  # noqa: E731

    def step(idx: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        tokens, text, mask = _batch(train_fs, idx)
        zv, _ = heads.video(tokens)
        zt_all = _encode_texts(heads, text, mask)  # [B, 3, E]
        zt = zt_all[:, 0]
        sim = similarity(zv, zt)
        temp = heads.temperature
        loss = csal_loss(sim, zv, zt, temp) if csal(epoch) else itc_loss(sim, temp)
        if o.hard_negatives:  # the video must prefer its caption over its swapped versions
            own = torch.einsum("bqe,bke->bkq", zv, zt_all).amax(dim=-1)
            loss = loss + F.cross_entropy(own / temp, torch.zeros(len(idx), dtype=torch.long))
        return loss, {}

    fitted = fit(heads, cfg, len(train_fs), step, lambda: evaluate(heads, val_fs), "stgt_config", scfg.to_dict(),
                 resume, epoch_info=lambda e: {"temperature": float(heads.temperature.detach()),
                                               "loss_kind": "csal" if csal(e) else "itc"})
    return TrainResult(Path(cfg.output), fitted.metrics, fitted.seconds, fitted.epochs)


def load_heads(run_or_ckpt: str | Path) -> tuple[STGTHeads, TrainConfig, dict]:
    """The trained heads, the training config and the checkpoint's metrics."""
    state, cfg = read_checkpoint(run_or_ckpt)
    heads = STGTHeads(STGTConfig.from_dict(state["stgt_config"]), cfg.video_head)
    heads.load_state_dict(state["heads"])
    return heads.eval(), cfg, state.get("metrics", {})
