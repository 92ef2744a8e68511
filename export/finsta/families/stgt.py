"""STGT (docs/families.md, STGT): the spatio-temporal graph Transformer heads on cached backbone
features, trained with ITC then CSAL (the paper's order) and hard negatives; exported as a video
tower (query embeddings, pooled embedding, compressed tokens), a text tower and the
max-over-queries scorer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..export.run import ExportParts
from ..losses import csal_loss
from ..models.bridge import build_bridge
from ..models.stgt import STGTConfig, STGTHeads, similarity
from ..models.towers import TextTower, VideoTower
from ..train.batching import encode_text_rows, feature_batch, hard_rows, itc_loss_masked, same_segment
from ..train.config import ConfigError, TrainConfig, check_model
from ..train.features import Backbones, FeatureSet, build_backbones
from ..train.fit import fit, read_checkpoint
from ..train.metrics import split_metrics
from ..train.setup import TrainResult, backbones_and_features, start_run
from .base import Family, RunPath, spec_for

log = logging.getLogger(__name__)

CONFIG_KEY = "stgt_config"  # the checkpoint's model config


def validate(cfg: TrainConfig, where: str) -> None:
    check_model(where, STGTConfig.from_dict, cfg.model)
    if cfg.model.get("bridge_gate"):
        parts = cfg.data.parts if cfg.data.kind == "mixed" else [cfg.data]
        kinds = sorted({p.kind for p in parts})
        if kinds != ["captions", "synthetic"]:
            raise ConfigError(
                f"{where}: model.bridge_gate needs data of both kinds (data.kind mixed, with a synthetic and a "
                f"captions part: the gate learns which footage is which); this config's data is {kinds}"
            )


def heads_for(cfg: TrainConfig, bb: Backbones) -> STGTHeads:
    """New heads for a run; with ``model.bridge`` the ConSE bridge is filled from the frozen backbones."""
    scfg = stgt_config_for(cfg, bb)
    bridge = None
    if scfg.bridge:
        bridge = build_bridge(bb.frame, bb.text, bb.tokenizer, scfg.bridge_top, frame_name=cfg.frame_backbone)
    return STGTHeads(scfg, cfg.video_head, bridge)


def stgt_config_for(cfg: TrainConfig, bb: Backbones) -> STGTConfig:
    grid = tuple(bb.frame.grid)
    return STGTConfig.from_dict(
        {
            **cfg.model,
            "backbone_dim": bb.frame.out_dim,
            "text_dim": bb.text.out_dim,
            "grid": grid,
            "frames": cfg.data.frames,
        }
    )


@torch.no_grad()
def embed_split(heads: STGTHeads, fs: FeatureSet, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Query embeddings [N, Q, E] of every video and text embeddings [N, 3, E] of its caption,
    order-swapped and attribute-swapped captions."""
    zv, zt = [], []
    for i in range(0, len(fs), batch):
        tokens, text, mask = feature_batch(fs, np.arange(i, min(len(fs), i + batch)))
        zv.append(heads.video(tokens)[0])
        zt.append(encode_text_rows(heads.text, text, mask))
    return torch.cat(zv), torch.cat(zt)


def real_rows(fs: FeatureSet) -> np.ndarray:
    """bool [N]: the row comes from a captions part (real footage and text), the domain gate's target."""
    real = np.zeros(len(fs), bool)
    for p in fs.parts or ():
        real[p.start : p.stop] = p.kind == "captions"
    return real


def gate_loss(heads: STGTHeads, fs: FeatureSet, idx: np.ndarray, tokens, text, mask) -> torch.Tensor:
    """Cross-entropy of both domain gates (video and caption) against the rows' part: real or synthetic."""
    target = torch.from_numpy(real_rows(fs)[idx]).float()
    v = heads.video.gate_logit(tokens)
    t = heads.text.gate_logit(text[:, 0], mask[:, 0])
    return F.binary_cross_entropy_with_logits(v, target) + F.binary_cross_entropy_with_logits(t, target)


@torch.no_grad()
def gate_accuracy(heads: STGTHeads, fs: FeatureSet, batch: int = 64) -> dict[str, float]:
    """How often each domain gate puts a held-out row on the right side (real or synthetic)."""
    real, hits_v, hits_t = real_rows(fs), 0, 0
    for i in range(0, len(fs), batch):
        idx = np.arange(i, min(len(fs), i + batch))
        tokens, text, mask = feature_batch(fs, idx)
        want = torch.from_numpy(real[idx])
        hits_v += int(((heads.video.gate_logit(tokens) > 0) == want).sum())
        hits_t += int(((heads.text.gate_logit(text[:, 0], mask[:, 0]) > 0) == want).sum())
    return {"gate_video_acc": hits_v / len(fs), "gate_text_acc": hits_t / len(fs)}


@torch.no_grad()
def evaluate(heads: STGTHeads, fs: FeatureSet, batch: int = 64) -> dict[str, float]:
    """Held-out text->video recall, and how often the true caption beats each hard negative (part by part:
    finsta.train.metrics.split_metrics); with a domain gate, its accuracy."""
    heads.eval()
    zv, zt = embed_split(heads, fs, batch)
    own = torch.stack([similarity(zv[i : i + 1], zt[i])[:, 0] for i in range(len(zv))])  # [N, 3]
    m = split_metrics(fs, similarity(zv, zt[:, 0]), own)
    if heads.cfg.bridge_gate:
        m.update(gate_accuracy(heads, fs, batch))
    heads.train()
    return m


def train(cfg: TrainConfig, resume: bool = True) -> TrainResult:
    """Trains STGT's heads named by ``cfg`` on cached backbone features."""
    o = cfg.optim
    start_run(cfg)
    bb, train_fs, val_fs = backbones_and_features(cfg)
    heads = heads_for(cfg, bb)
    scfg = heads.cfg
    csal = lambda epoch: o.loss == "csal" and epoch >= o.csal_after * o.epochs  # noqa: E731

    def step(idx: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        idx = np.sort(idx)  # feature_batch's row order
        tokens, text, mask = feature_batch(train_fs, idx)
        gl = gate_loss(heads, train_fs, idx, tokens, text, mask) if scfg.bridge_gate else None
        if gl is not None:  # the gates route real rows to the frozen bridge, so the learned part trains on the rest
            keep = torch.from_numpy(~real_rows(train_fs)[idx])
            idx, tokens, text, mask = idx[keep.numpy()], tokens[keep], text[keep], mask[keep]
            if len(idx) < 2:
                return gl, {"gate": float(gl.detach())}
        zv, _ = heads.video(tokens)
        zt_all = encode_text_rows(heads.text, text, mask)  # [B, 3, E]
        zt = zt_all[:, 0]
        sim = similarity(zv, zt)
        temp = heads.temperature
        same = same_segment(train_fs, idx)  # other captions of a row's segment are no negatives
        if csal(epoch) and same is None:
            loss = csal_loss(sim, zv, zt, temp)
        else:  # CSAL's negatives are the batch's other rows: with repeated segments, masked ITC instead
            loss = itc_loss_masked(sim, temp, same)
        hard = hard_rows(train_fs, idx)
        if o.hard_negatives and bool(hard.any()):  # a video prefers its caption over its swapped versions
            own = torch.einsum("bqe,bke->bkq", zv, zt_all).amax(dim=-1)[hard]
            loss = loss + F.cross_entropy(own / temp, torch.zeros(len(own), dtype=torch.long))
        if gl is not None:
            return loss + gl, {"gate": float(gl.detach())}
        return loss, {}

    fitted = fit(
        heads,
        cfg,
        len(train_fs),
        step,
        lambda: evaluate(heads, val_fs),
        CONFIG_KEY,
        scfg.to_dict(),
        resume,
        epoch_info=lambda e: {
            "temperature": float(heads.temperature.detach()),
            "loss_kind": "csal" if csal(e) else "itc",
        },
    )
    return TrainResult(Path(cfg.output), fitted.metrics, fitted.seconds, fitted.epochs)


def load_heads(run_or_ckpt: RunPath) -> tuple[STGTHeads, TrainConfig, dict]:
    """The trained heads, the training config and the checkpoint's metrics."""
    state, cfg = read_checkpoint(run_or_ckpt)
    heads = STGTHeads(STGTConfig.from_dict(state[CONFIG_KEY]), cfg.video_head)
    heads.load_state_dict(state["heads"])
    return heads.eval(), cfg, state.get("metrics", {})


def export_parts(run: RunPath) -> ExportParts:
    heads, cfg, metrics = load_heads(run)
    bb = build_backbones(cfg)
    spec = spec_for(
        cfg,
        bb,
        {
            "stgt": heads.cfg.to_dict(),
            "frame_backbone": cfg.frame_backbone,
            "text_backbone": cfg.text_backbone,
            "video_head": cfg.video_head,
            "held_out_metrics": metrics,
        },
    )
    return ExportParts(VideoTower(bb.encoder, heads.video).eval(), TextTower(bb.text, heads.text).eval(), spec)


FAMILY = Family("stgt", validate, train, load_heads, export_parts)
