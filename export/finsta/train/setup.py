"""What every family's training does first: seed and threads, then the frozen backbones and the
cached features of both splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig
from .features import Backbones, FeatureSet, build_backbones, cache_features


@dataclass
class TrainResult:
    """What a family's training returns: the run directory, its final metrics, seconds and epochs."""

    run_dir: Path
    metrics: dict[str, float]
    train_seconds: float
    epochs: float


def start_run(cfg: TrainConfig) -> None:
    """Seeds torch with ``optim.seed`` and applies ``optim.threads`` (0: torch's default)."""
    torch.manual_seed(cfg.optim.seed)
    if cfg.optim.threads:
        torch.set_num_threads(cfg.optim.threads)


def backbones_and_features(cfg: TrainConfig) -> tuple[Backbones, FeatureSet, FeatureSet]:
    """The config's frozen backbones and the cached features of its train and val splits."""
    bb = build_backbones(cfg)
    return bb, cache_features(cfg, "train", bb), cache_features(cfg, "val", bb)
