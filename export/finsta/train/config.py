"""Training configuration: a YAML file, validated field by field with messages that name the key.

:func:`parse_config` checks what every family shares; the family's own checks (its model section,
its extra keys) run in :func:`finsta.families.parse_config`, which is what the CLI uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

VIDEO_HEADS = ("stgt", "meanpool")
LOSSES = ("itc", "csal")


def backbone_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The frame and text backbone names a config may use: the tables of finsta.models.backbones
    (reading them imports no torch)."""
    from ..models.backbones import FRAME_BACKBONES, TEXT_BACKBONES

    return tuple(FRAME_BACKBONES), tuple(TEXT_BACKBONES)


class ConfigError(ValueError):
    """A bad configuration value; the message names the file and the key."""


@dataclass
class DataConfig:
    kind: str = "synthetic"
    train: int = 1000
    val: int = 200
    seed: int = 0
    val_seed: int = 100_000
    frames: int = 8
    size: int = 112


@dataclass
class OptimConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    loss: str = "csal"  # csal: ITC first, CSAL after `csal_after` of the epochs (the paper's order)
    csal_after: float = 0.5
    hard_negatives: bool = True  # each video's order/attribute-swapped captions join the text batch
    max_minutes: float = 10.0
    seed: int = 0
    eval_every: int = 5
    threads: int = 0


@dataclass
class TrainConfig:
    name: str = "stgt"
    family: str = "stgt"
    frame_backbone: str = "efficientnet_lite0"
    text_backbone: str = "minilm_l6"
    video_head: str = "stgt"
    model: dict = field(default_factory=dict)  # the family's model settings (checked by the family)
    host: str = ""  # a family built on another run (finsta: the trained STGT run it plugs onto, kept frozen)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs/stgt"
    cache: str = ".cache/features"

    def to_dict(self) -> dict:
        return asdict(self)


def _typed(section: type, values: Any, where: str):
    if values is None:
        return section()
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(section)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    default = section()
    out = {}
    for k, v in values.items():
        want = type(getattr(default, k))
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if want in (int, float, str, bool) and (type(v) is not want):
            raise ConfigError(f"{where}.{k} must be {want.__name__}, got {v!r}")
        out[k] = v
    return section(**out)


def check(cond: bool, where: str, msg: str) -> None:
    """Raises ConfigError(``where: msg``) unless ``cond``."""
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def check_model(where: str, validate: Callable[[dict], object], model: dict) -> None:
    """Runs a family's model-section check; its TypeError/ValueError becomes ``where: model: ...``."""
    try:
        validate(dict(model))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: model: {e}") from e


def parse_config(raw: dict, where: str = "config") -> TrainConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    raw = dict(raw)
    data = _typed(DataConfig, raw.pop("data", None), f"{where}: data")
    optim = _typed(OptimConfig, raw.pop("optim", None), f"{where}: optim")
    model = raw.pop("model", None) or {}
    check(isinstance(model, dict), where, "model must be a mapping of the family's model settings")
    top = _typed(TrainConfig, raw, where)
    cfg = TrainConfig(
        **{**{f.name: getattr(top, f.name) for f in fields(TrainConfig)}, "data": data, "optim": optim, "model": model}
    )
    check(
        bool(re.fullmatch(r"[a-z][a-z0-9_]*", cfg.family)),
        where,
        f"family must be a plain lower-case name, got {cfg.family!r}",
    )
    frame_backbones, text_backbones = backbone_names()
    check(
        cfg.frame_backbone in frame_backbones,
        where,
        f"frame_backbone must be one of {frame_backbones}, got {cfg.frame_backbone!r}",
    )
    check(
        cfg.text_backbone in text_backbones,
        where,
        f"text_backbone must be one of {text_backbones}, got {cfg.text_backbone!r}",
    )
    check(cfg.video_head in VIDEO_HEADS, where, f"video_head must be one of {VIDEO_HEADS}, got {cfg.video_head!r}")
    check(bool(cfg.name) and "/" not in cfg.name, where, f"name must be a plain name, got {cfg.name!r}")
    d, o = cfg.data, cfg.optim
    check(d.kind == "synthetic", f"{where}: data", f"kind must be 'synthetic', got {d.kind!r}")
    check(
        d.train >= 2 and d.val >= 2, f"{where}: data", f"train and val need at least 2 videos, got {d.train}, {d.val}"
    )
    check(d.seed != d.val_seed, f"{where}: data", "seed and val_seed must differ (held-out videos must be new)")
    check(
        1 <= d.frames <= 64 and 16 <= d.size <= 1024,
        f"{where}: data",
        f"frames in 1..64 and size in 16..1024, got {d.frames}, {d.size}",
    )
    check(
        o.epochs >= 1 and o.batch_size >= 2,
        f"{where}: optim",
        f"epochs >= 1 and batch_size >= 2, got {o.epochs}, {o.batch_size}",
    )
    check(0 < o.lr < 1, f"{where}: optim", f"lr must be in (0, 1), got {o.lr}")
    check(o.weight_decay >= 0, f"{where}: optim", f"weight_decay must be >= 0, got {o.weight_decay}")
    check(o.loss in LOSSES, f"{where}: optim", f"loss must be one of {LOSSES}, got {o.loss!r}")
    check(0 <= o.csal_after <= 1, f"{where}: optim", f"csal_after must be in [0, 1], got {o.csal_after}")
    check(o.max_minutes > 0, f"{where}: optim", f"max_minutes must be > 0, got {o.max_minutes}")
    check(o.eval_every >= 1 and o.threads >= 0, f"{where}: optim", "eval_every >= 1 and threads >= 0")
    return cfg


def read_config(path: str | Path, overrides: dict | None = None) -> tuple[dict, str]:
    """The YAML mapping of ``path`` with dotted ``overrides`` applied, and the name to cite in errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    return raw, str(p)


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """:func:`parse_config` of a YAML file (the shared checks only; see the module docstring)."""
    return parse_config(*read_config(path, overrides))
