"""What every family's training does first: seed and threads, then the frozen backbones and the
cached features of both splits (every part of the data section: synthetic, captions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .caption_features import ERRORS_FILE, caption_features
from .config import TrainConfig, data_parts
from .features import Backbones, FeatureSet, Part, build_backbones, join, synthetic_features


@dataclass
class TrainResult:
    """What a family's training returns: the run directory, its final metrics, seconds and epochs."""

    run_dir: Path
    metrics: dict[str, float]
    train_seconds: float
    epochs: float


def start_run(cfg: TrainConfig) -> None:
    """Seeds torch with ``optim.seed``, applies ``optim.threads`` (0: torch's default) and clears the
    run's errors.jsonl (the rows the data loading skips)."""
    (Path(cfg.output) / ERRORS_FILE).unlink(missing_ok=True)  # this run's skipped rows only
    torch.manual_seed(cfg.optim.seed)
    if cfg.optim.threads:
        torch.set_num_threads(cfg.optim.threads)


def cache_features(cfg: TrainConfig, split: str, bb: Backbones, batch: int = 8) -> FeatureSet:
    """The split's features, every part of the data section (computed and cached first where needed).
    Training rows of a part come ``repeat`` times; held-out rows once."""
    parts = data_parts(cfg.data)
    sets = []
    for d in parts:
        if d.kind == "synthetic":
            fs = synthetic_features(cfg, d, split, bb, batch)
        else:
            fs = caption_features(cfg, d, split, bb)
        sets.append((d.name, d.kind, fs))
    if len(sets) == 1 and (split != "train" or parts[0].repeat == 1):
        fs = sets[0][2]
        fs.parts = [Part(parts[0].name, parts[0].kind, 0, len(fs))]
        return fs
    return join(sets, [d.repeat if split == "train" else 1 for d in parts])


def backbones_and_features(cfg: TrainConfig) -> tuple[Backbones, FeatureSet, FeatureSet]:
    """The config's frozen backbones and the cached features of its train and val splits."""
    bb = build_backbones(cfg)
    return bb, cache_features(cfg, "train", bb), cache_features(cfg, "val", bb)
