"""The model families, by name: the one table that knows them (docs/extending.md: a new family is
one module with a ``FAMILY``, one line here, a config and its tests).

Everything that starts from a config or a run and must know its family goes through here: the
``finsta-train`` and ``finsta-export`` commands, :func:`load_config`, :func:`train`,
:func:`export_run`. The layers below (finsta.train, finsta.export) never import a family."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..export.bundle import ExportSpec
from ..export.run import ExportParts, export_parts
from ..train import config as _config
from ..train.config import ConfigError, TrainConfig
from ..train.fit import CHECKPOINT
from ..train.setup import TrainResult
from . import finsta, stgt, svilm
from .base import Family, RunPath

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        stgt.FAMILY,
        finsta.FAMILY,
        svilm.FAMILY,
    )
}

__all__ = [
    "FAMILIES",
    "ConfigError",
    "Family",
    "family",
    "parse_config",
    "load_config",
    "train",
    "run_family",
    "load_run",
    "run_parts",
    "towers_from_run",
    "towers_and_scorer_from_run",
    "export_run",
]


def family(name: str) -> Family:
    """The family called ``name``; ValueError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"family must be one of {tuple(FAMILIES)}, got {name!r}") from None


def parse_config(raw: dict, where: str = "config") -> TrainConfig:
    """A training config with the shared checks (finsta.train.config) and then its family's."""
    cfg = _config.parse_config(raw, where)
    _config.check(cfg.family in FAMILIES, where, f"family must be one of {tuple(FAMILIES)}, got {cfg.family!r}")
    FAMILIES[cfg.family].validate(cfg, where)
    return cfg


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """:func:`parse_config` of a YAML file, with dotted ``overrides`` (``{"optim.epochs": 5}``)."""
    return parse_config(*_config.read_config(path, overrides))


def train(cfg: TrainConfig, resume: bool = True) -> TrainResult:
    """Trains the run ``cfg`` names with its family's training."""
    return family(cfg.family).train(cfg, resume)


def run_family(run: RunPath) -> Family:
    """The family of a training run (its directory or checkpoint file)."""
    p = Path(run)
    ckpt = p / CHECKPOINT if p.is_dir() else p
    if not ckpt.is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt} (train first: finsta-train CONFIG.yaml)")
    name = torch.load(ckpt, map_location="cpu", weights_only=True)["train_config"].get("family", "stgt")
    try:
        return family(name)
    except ValueError as e:
        raise ValueError(f"{ckpt}: {e}") from None


def load_run(run: RunPath) -> tuple[nn.Module, TrainConfig, dict]:
    """A run's trained heads (eval mode), training config and checkpoint metrics, whatever its family."""
    return run_family(run).load(run)


def run_parts(run: RunPath) -> ExportParts:
    """What the exporter needs for a run: its towers, scorer and graph builder."""
    return run_family(run).export_parts(run)


def towers_from_run(run: RunPath) -> tuple[nn.Module, nn.Module, ExportSpec]:
    """The video and text towers of a training run and their export spec."""
    return run_parts(run).towers()[:3]


def towers_and_scorer_from_run(run: RunPath) -> tuple[nn.Module, nn.Module, ExportSpec, nn.Module | None]:
    """As :func:`towers_from_run`, plus the scorer module (None: the STGT default)."""
    return run_parts(run).towers()


def export_run(
    run: RunPath,
    flavour: str = "custom",
    out_dir: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Exports a run's checkpoint as a bundle; returns the bundle directory."""
    return export_parts(run_parts(run), flavour, out_dir, name, overwrite, verify)
