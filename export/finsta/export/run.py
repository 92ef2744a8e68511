"""From a training run to a bundle: rebuild the backbones the run used, load its heads, export."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models.towers import TextTower, VideoTower
from .bundle import ExportSpec, export_bundle


def towers_from_run(run: str | Path) -> tuple[nn.Module, nn.Module, ExportSpec]:
    """The video and text towers of a training run (family stgt, finsta or svilm) and their export spec."""
    return towers_and_scorer_from_run(run)[:3]


def towers_and_scorer_from_run(run: str | Path) -> tuple[nn.Module, nn.Module, ExportSpec, nn.Module | None]:
    """As :func:`towers_from_run`, plus the scorer module (None: the STGT default)."""
    from ..train.features import build_backbones
    from ..train.fit import CHECKPOINT
    from ..train.loop import load_heads

    p = Path(run)
    ckpt = p / CHECKPOINT if p.is_dir() else p
    if not ckpt.is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt} (train first: finsta-train CONFIG.yaml)")
    family = torch.load(ckpt, map_location="cpu", weights_only=True)["train_config"].get("family", "stgt")
    if family == "finsta":
        from ..models.finsta import FinstaScorerTower, FinstaTextTower, FinstaVideoTower
        from ..train.finsta_loop import load_finsta

        heads, cfg, metrics = load_finsta(run)
        host, host_cfg, host_metrics = load_heads(cfg.host)
        bb = build_backbones(cfg)
        spec = _spec(cfg, bb, {"finsta": heads.cfg.to_dict(), "host": {"run": str(cfg.host), "stgt": host.cfg.to_dict(),
                                                                       "held_out_metrics": host_metrics},
                               "frame_backbone": cfg.frame_backbone, "text_backbone": cfg.text_backbone,
                               "held_out_metrics": metrics})
        return (FinstaVideoTower(bb.encoder, host.video, heads.video).eval(),
                FinstaTextTower(bb.text, host.text, heads.text).eval(), spec, FinstaScorerTower(heads.scorer).eval())
    if family == "svilm":
        from ..models.svilm import SViLMTextTower, SViLMVideoTower
        from ..train.svilm_loop import load_svilm

        heads, cfg, metrics = load_svilm(run)
        bb = build_backbones(cfg)
        spec = _spec(cfg, bb, {"svilm": heads.cfg.to_dict(), "frame_backbone": cfg.frame_backbone,
                               "text_backbone": cfg.text_backbone, "held_out_metrics": metrics})
        return (SViLMVideoTower(bb.encoder, heads.video).eval(), SViLMTextTower(bb.text, heads.text).eval(), spec,
                None)
    heads, cfg, metrics = load_heads(run)
    bb = build_backbones(cfg)
    spec = _spec(cfg, bb, {"stgt": heads.cfg.to_dict(), "frame_backbone": cfg.frame_backbone,
                           "text_backbone": cfg.text_backbone, "video_head": cfg.video_head, "held_out_metrics": metrics})
    return VideoTower(bb.encoder, heads.video).eval(), TextTower(bb.text, heads.text).eval(), spec, None


def _spec(cfg, bb, model_config: dict) -> ExportSpec:
    return ExportSpec(family=cfg.family, name=cfg.name, preprocess=bb.preprocess, vocab_file=Path(bb.text.config.vocab_file),
                      lowercase=bb.tokenizer.lowercase, max_length=bb.tokenizer.max_length, model_config=model_config)


def export_run(run: str | Path, flavour: str = "custom", out_dir: str | Path | None = None, name: str | None = None,
               overwrite: bool = False, verify: bool = True) -> Path:
    """Exports a run's checkpoint as a bundle; returns the bundle directory."""
    video, text, spec, scorer = towers_and_scorer_from_run(run)
    if name:
        spec.name = name
    return export_bundle(video, text, spec, out_dir=out_dir, flavour=flavour, overwrite=overwrite, verify=verify,
                         scorer=scorer)
