"""What a model family is to the rest of finsta: one :class:`Family` per family module, listed in
the registry (finsta.families.FAMILIES). Training, evaluation and export are shared layers
(finsta.train, finsta.export) that know no family; a family supplies the pieces below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..export.bundle import ExportSpec
from ..export.run import ExportParts
from ..train.config import TrainConfig
from ..train.features import Backbones
from ..train.setup import TrainResult

RunPath = str | Path


@dataclass(frozen=True)
class Family:
    """A model family.

    * ``validate(cfg, where)``: the family's own config checks (its model section, keys such as
      ``host``), raising ConfigError that names ``where`` and the key; run before anything is cached.
    * ``train(cfg, resume)``: trains the run ``cfg.output`` (finsta.train.fit does the loop).
    * ``load(run)``: the trained heads (eval mode), the run's config and its checkpoint metrics.
    * ``export_parts(run)``: the bundle's towers, scorer and graph builder (finsta.export.run).
    """

    name: str
    validate: Callable[[TrainConfig, str], None]
    train: Callable[[TrainConfig, bool], TrainResult]
    load: Callable[[RunPath], tuple[nn.Module, TrainConfig, dict]]
    export_parts: Callable[[RunPath], ExportParts]


def spec_for(cfg: TrainConfig, bb: Backbones, model_config: dict) -> ExportSpec:
    """The export spec of a run: its family and name, the backbones' preprocessing and tokenizer,
    and ``model_config`` (the bundle's ``model`` section)."""
    spec = ExportSpec.for_text_backbone(cfg.family, cfg.name, bb.preprocess, bb.text.config, model_config)
    spec.max_length = bb.tokenizer.max_length
    return spec
