"""Training configuration: a YAML file, validated field by field with messages that name the key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

FRAME_BACKBONES = ("efficientnet_lite0", "tiny_vit")
TEXT_BACKBONES = ("minilm_l6", "tiny_text")
VIDEO_HEADS = ("stgt", "meanpool")
LOSSES = ("itc", "csal")
FAMILIES = ("stgt", "finsta", "svilm")


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
    model: dict = field(default_factory=dict)  # STGTConfig (or, for finsta, FinstaConfig) overrides
    host: str = ""  # finsta: the trained host run (an STGT run directory) it plugs onto, kept frozen
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


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def parse_config(raw: dict, where: str = "config") -> TrainConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    raw = dict(raw)
    data = _typed(DataConfig, raw.pop("data", None), f"{where}: data")
    optim = _typed(OptimConfig, raw.pop("optim", None), f"{where}: optim")
    model = raw.pop("model", None) or {}
    _check(isinstance(model, dict), where, "model must be a mapping of the family's model settings")
    top = _typed(TrainConfig, raw, where)
    cfg = TrainConfig(**{**{f.name: getattr(top, f.name) for f in fields(TrainConfig)}, "data": data, "optim": optim, "model": model})
    _check(cfg.family in FAMILIES, where, f"family must be one of {FAMILIES}, got {cfg.family!r}")
    _check(cfg.family != "finsta" or bool(cfg.host), where,
           "family 'finsta' needs host: the run directory of a trained STGT model (e.g. runs/stgt)")
    _check(cfg.frame_backbone in FRAME_BACKBONES, where, f"frame_backbone must be one of {FRAME_BACKBONES}, got {cfg.frame_backbone!r}")
    _check(cfg.text_backbone in TEXT_BACKBONES, where, f"text_backbone must be one of {TEXT_BACKBONES}, got {cfg.text_backbone!r}")
    _check(cfg.video_head in VIDEO_HEADS, where, f"video_head must be one of {VIDEO_HEADS}, got {cfg.video_head!r}")
    _check(bool(cfg.name) and "/" not in cfg.name, where, f"name must be a plain name, got {cfg.name!r}")
    d, o = cfg.data, cfg.optim
    _check(d.kind == "synthetic", f"{where}: data", f"kind must be 'synthetic', got {d.kind!r}")
    _check(d.train >= 2 and d.val >= 2, f"{where}: data", f"train and val need at least 2 videos, got {d.train}, {d.val}")
    _check(d.seed != d.val_seed, f"{where}: data", "seed and val_seed must differ (held-out videos must be new)")
    _check(1 <= d.frames <= 64 and 16 <= d.size <= 1024, f"{where}: data", f"frames in 1..64 and size in 16..1024, got {d.frames}, {d.size}")
    _check(o.epochs >= 1 and o.batch_size >= 2, f"{where}: optim", f"epochs >= 1 and batch_size >= 2, got {o.epochs}, {o.batch_size}")
    _check(0 < o.lr < 1, f"{where}: optim", f"lr must be in (0, 1), got {o.lr}")
    _check(o.weight_decay >= 0, f"{where}: optim", f"weight_decay must be >= 0, got {o.weight_decay}")
    _check(o.loss in LOSSES, f"{where}: optim", f"loss must be one of {LOSSES}, got {o.loss!r}")
    _check(0 <= o.csal_after <= 1, f"{where}: optim", f"csal_after must be in [0, 1], got {o.csal_after}")
    _check(o.max_minutes > 0, f"{where}: optim", f"max_minutes must be > 0, got {o.max_minutes}")
    _check(o.eval_every >= 1 and o.threads >= 0, f"{where}: optim", "eval_every >= 1 and threads >= 0")
    from ..models.finsta import FinstaConfig
    from ..models.stgt import STGTConfig

    try:  # unknown or bad model keys fail now, not after feature caching
        if cfg.family == "svilm":
            from .svilm_loop import validate_model

            validate_model(dict(model))
        else:
            (FinstaConfig if cfg.family == "finsta" else STGTConfig).from_dict(dict(model))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: model: {e}") from e
    return cfg


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
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
    return parse_config(raw, str(p))
