"""From a training run to a bundle: rebuild the backbones the run used, load its heads, export."""

from __future__ import annotations

from pathlib import Path

from ..models.towers import TextTower, VideoTower
from .bundle import ExportSpec, export_bundle


def towers_from_run(run: str | Path) -> tuple[VideoTower, TextTower, ExportSpec]:
    from ..train.features import build_backbones
    from ..train.loop import load_heads

    heads, cfg, metrics = load_heads(run)
    bb = build_backbones(cfg)
    spec = ExportSpec(
        family=cfg.family, name=cfg.name, preprocess=bb.preprocess, vocab_file=Path(bb.text.config.vocab_file),
        lowercase=bb.tokenizer.lowercase, max_length=bb.tokenizer.max_length,
        model_config={"stgt": heads.cfg.to_dict(), "frame_backbone": cfg.frame_backbone,
                      "text_backbone": cfg.text_backbone, "video_head": cfg.video_head, "held_out_metrics": metrics},
    )
    return VideoTower(bb.encoder, heads.video).eval(), TextTower(bb.text, heads.text).eval(), spec


def export_run(run: str | Path, flavour: str = "custom", out_dir: str | Path | None = None, name: str | None = None,
               overwrite: bool = False, verify: bool = True) -> Path:
    """Exports a run's checkpoint as a bundle; returns the bundle directory."""
    video, text, spec = towers_from_run(run)
    if name:
        spec.name = name
    return export_bundle(video, text, spec, out_dir=out_dir, flavour=flavour, overwrite=overwrite, verify=verify)
