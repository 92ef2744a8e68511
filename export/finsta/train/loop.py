"""The training loop: STGT heads on cached backbone features, ITC then CSAL, hard negatives,
checkpoints, a wall-clock limit, and held-out evaluation."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import csal_loss, itc_loss
from ..models.stgt import STGTConfig, STGTHeads, similarity
from .config import TrainConfig
from .features import Backbones, FeatureSet, build_backbones, cache_features

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


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
    run = Path(cfg.output)
    run.mkdir(parents=True, exist_ok=True)
    bb = build_backbones(cfg)
    train_fs, val_fs = cache_features(cfg, "train", bb), cache_features(cfg, "val", bb)
    scfg = stgt_config_for(cfg, bb)
    heads = STGTHeads(scfg, cfg.video_head)
    opt = torch.optim.AdamW(heads.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=(0.9, 0.98))
    steps_per_epoch = math.ceil(len(train_fs) / o.batch_size)
    total, warm = o.epochs * steps_per_epoch, max(1, int(o.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    start_epoch, spent = 0, 0.0
    ckpt = run / CHECKPOINT
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["train_config"] == cfg.to_dict():
            heads.load_state_dict(state["heads"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, spent = state["epoch"], state["train_seconds"]
            log.info("resuming %s at epoch %d", ckpt, start_epoch)
        else:
            log.warning("%s was trained with another config; starting afresh", ckpt)

    rng = np.random.default_rng(o.seed + start_epoch)
    metrics: dict[str, float] = {}
    log_path = run / "metrics.jsonl"
    budget = o.max_minutes * 60
    t_start = time.monotonic() - spent
    epoch = start_epoch
    stopped = False
    heads.train()
    for epoch in range(start_epoch, o.epochs):
        use_csal = o.loss == "csal" and epoch >= o.csal_after * o.epochs
        order = rng.permutation(len(train_fs))
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * o.batch_size:(s + 1) * o.batch_size]
            if len(idx) < 2:
                continue
            tokens, text, mask = _batch(train_fs, idx)
            zv, _ = heads.video(tokens)
            zt_all = _encode_texts(heads, text, mask)  # [B, 3, E]
            zt = zt_all[:, 0]
            sim = similarity(zv, zt)
            temp = heads.temperature
            loss = csal_loss(sim, zv, zt, temp) if use_csal else itc_loss(sim, temp)
            if o.hard_negatives:  # the video must prefer its caption over its swapped versions
                own = torch.einsum("bqe,bke->bkq", zv, zt_all).amax(dim=-1)
                loss = loss + F.cross_entropy(own / temp, torch.zeros(len(idx), dtype=torch.long))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                heads.log_temp.clamp_(math.log(0.01), math.log(0.5))
            losses.append(float(loss.detach()))
            if time.monotonic() - t_start > budget:
                stopped = True
                break
        elapsed = time.monotonic() - t_start
        line = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None, "lr": sched.get_last_lr()[0],
                "temperature": float(heads.temperature.detach()), "loss_kind": "csal" if use_csal else "itc", "seconds": round(elapsed, 1)}
        last = stopped or epoch + 1 == o.epochs
        if last or (epoch + 1) % o.eval_every == 0:
            metrics = evaluate(heads, val_fs)
            line.update({f"val_{k}": v for k, v in metrics.items()})
        log.info("epoch %d/%d loss %.4f (%s) %.0fs%s", epoch + 1, o.epochs, line["loss"] or float("nan"), line["loss_kind"],
                 elapsed, "" if "val_r1" not in line else
                 f"  val R@1 {metrics['r1']:.3f} R@5 {metrics['r5']:.3f} order {metrics['order_acc']:.3f} attribute {metrics['attribute_acc']:.3f}")
        with open(log_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        _save(ckpt, heads, scfg, cfg, opt, sched, epoch + 1, elapsed, metrics)
        if stopped:
            log.warning("stopped by the %.1f-minute limit after epoch %d", o.max_minutes, epoch + 1)
            break
    if not metrics:
        metrics = evaluate(heads, val_fs)
    return TrainResult(run, metrics, time.monotonic() - t_start, epoch + 1)


def _save(path: Path, heads, scfg, cfg, opt, sched, epoch, seconds, metrics) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"heads": heads.state_dict(), "stgt_config": scfg.to_dict(), "train_config": cfg.to_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                "train_seconds": seconds, "metrics": metrics}, tmp)
    tmp.replace(path)  # never a half-written checkpoint


def load_heads(run_or_ckpt: str | Path) -> tuple[STGTHeads, TrainConfig, dict]:
    """The trained heads, the training config and the checkpoint's metrics."""
    from .config import parse_config

    p = Path(run_or_ckpt)
    p = p / CHECKPOINT if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p} (train first: finsta-train CONFIG.yaml)")
    state = torch.load(p, map_location="cpu", weights_only=True)
    cfg = parse_config(state["train_config"], str(p))
    heads = STGTHeads(STGTConfig.from_dict(state["stgt_config"]), cfg.video_head)
    heads.load_state_dict(state["heads"])
    return heads.eval(), cfg, state.get("metrics", {})
