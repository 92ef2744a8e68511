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


class ConfigError(ValueError):
    """A bad configuration value; the message names the file and the key."""


DATA_KINDS = ("synthetic", "captions", "mixed")
PART_KINDS = ("synthetic", "captions")
CAPTION_FORMATS = ("auto", "jsonl", "csv", "msrvtt", "webvid")


@dataclass
class DataConfig:
    """The ``data`` section. ``kind`` decides which keys mean something:

    * synthetic: ``train``/``val`` are video counts rendered from ``seed``/``val_seed`` at ``size``;
    * captions: ``train``/``val`` are caption files (JSONL, CSV, MSR-VTT JSON, WebVid CSV; ``format``
      and ``columns`` as finsta.data.caption_files.read_captions takes them), each row a video segment;
      a split needs at least ``min_rows`` usable rows after missing/undecodable videos are skipped;
    * mixed: ``parts`` is a list of synthetic/captions sections trained on together (each part's rows
      ``repeat`` times per training epoch; held-out metrics per part, prefixed with its ``name``).

    ``frames`` is the model's T and holds for every part."""

    kind: str = "synthetic"
    train: int | str = 1000
    val: int | str = 200
    seed: int = 0
    val_seed: int = 100_000
    frames: int = 8
    size: int = 112
    format: str = "auto"
    columns: dict = field(default_factory=dict)
    min_rows: int = 4
    name: str = ""  # a part's name (mixed): its metrics' prefix; default its kind
    repeat: int = 1  # a part's rows per training epoch, in copies (mixed: oversample a small real set)
    parts: list = field(default_factory=list)  # mixed: DataConfig per part

    def to_dict(self) -> dict:
        """The keys of its kind only, so that :func:`parse_data` reads it back (checkpoints store it)."""
        if self.kind == "mixed":
            return {"kind": "mixed", "frames": self.frames, "parts": [p.to_dict() for p in self.parts]}
        keys = SYNTHETIC_KEYS if self.kind == "synthetic" else CAPTION_KEYS
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name in keys}
        for k, default in (("name", self.kind), ("repeat", 1)):  # at their defaults: as checkpoints before parts
            if out[k] == default:
                del out[k]
        return out


SYNTHETIC_KEYS = {"kind", "train", "val", "seed", "val_seed", "frames", "size", "name", "repeat"}
CAPTION_KEYS = {"kind", "train", "val", "format", "columns", "min_rows", "frames", "name", "repeat"}
MIXED_KEYS = {"kind", "frames", "parts"}


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
        return {**asdict(self), "data": self.data.to_dict()}


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


def parse_data(values: Any, where: str) -> DataConfig:
    """The ``data`` section: each kind's own keys, typed and checked (see :class:`DataConfig`)."""
    if values is None:
        values = {}
    check(isinstance(values, dict), where, f"must be a mapping, got {type(values).__name__}")
    kind = values.get("kind", "synthetic")
    check(kind in DATA_KINDS, where, f"kind must be one of {DATA_KINDS}, got {kind!r}")
    if kind != "mixed":
        return _data_part(values, where)
    _known_keys(values, MIXED_KEYS, where, kind)
    frames = values.get("frames", DataConfig.frames)
    parts = values.get("parts")
    check(
        isinstance(parts, list) and len(parts) >= 1,
        where,
        "kind 'mixed' needs parts: a list of data sections (kind synthetic or captions)",
    )
    out = []
    for i, part in enumerate(parts):
        at = f"{where}.parts[{i}]"
        check(isinstance(part, dict), at, f"must be a mapping, got {type(part).__name__}")
        check(part.get("kind") in PART_KINDS, at, f"kind must be one of {PART_KINDS}, got {part.get('kind')!r}")
        check(
            part.get("frames", frames) == frames,
            at,
            f"frames {part.get('frames')!r} differs from data.frames {frames!r}: every part feeds one model",
        )
        out.append(_data_part({**part, "frames": frames}, at))
    names = [p.name for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    check(not dup, where, f"parts need distinct names (metrics are prefixed with them), {dup} repeat: set name:")
    return DataConfig(kind="mixed", frames=out[0].frames, size=out[0].size, parts=out)


def _known_keys(values: dict, known: set[str], where: str, kind: str) -> None:
    unknown = sorted(set(values) - known)
    check(not unknown, where, f"unknown keys {unknown} for kind {kind!r}; known: {sorted(known)}")


def _data_part(values: dict, where: str) -> DataConfig:
    """A synthetic or captions section (also a part of a mixed one)."""
    kind = values.get("kind", "synthetic")
    _known_keys(values, SYNTHETIC_KEYS if kind == "synthetic" else CAPTION_KEYS, where, kind)
    default = DataConfig() if kind == "synthetic" else DataConfig(kind=kind, train="", val="")
    v = dict(values)
    for k in ("train", "val"):  # their type depends on the kind; the default's type is the one required
        if k in v and type(v[k]) is not type(getattr(default, k)):
            what = "a number of videos (int)" if kind == "synthetic" else "a caption file (str)"
            raise ConfigError(f"{where}.{k} must be {what} for kind {kind!r}, got {v[k]!r}")
    d = _typed(DataConfig, {k: x for k, x in v.items() if k not in ("train", "val", "columns")}, where)
    d.kind, d.train, d.val = kind, v.get("train", default.train), v.get("val", default.val)
    d.name = d.name or kind
    check(
        bool(re.fullmatch(r"[a-z][a-z0-9_]*", d.name)), where, f"name must be a plain lower-case name, got {d.name!r}"
    )
    check(d.repeat >= 1, where, f"repeat must be >= 1, got {d.repeat}")
    check(
        1 <= d.frames <= 64 and 16 <= d.size <= 1024,
        where,
        f"frames in 1..64 and size in 16..1024, got {d.frames}, {d.size}",
    )
    if kind == "synthetic":
        check(d.train >= 2 and d.val >= 2, where, f"train and val need at least 2 videos, got {d.train}, {d.val}")
        check(d.seed != d.val_seed, where, "seed and val_seed must differ (held-out videos must be new)")
        return d
    for k in ("train", "val"):
        check(
            bool(getattr(d, k).strip()), where, f"{k} must name a caption file (JSONL, CSV, MSR-VTT JSON, WebVid CSV)"
        )
    check(d.train != d.val, where, f"train and val must be different files, both are {d.train!r}")
    check(d.format in CAPTION_FORMATS, where, f"format must be one of {CAPTION_FORMATS}, got {d.format!r}")
    columns = v.get("columns", {}) or {}
    check(
        isinstance(columns, dict) and all(isinstance(a, str) and isinstance(b, str) for a, b in columns.items()),
        where,
        f"columns must map field names to column names (strings), got {columns!r}",
    )
    from ..data.caption_files import FIELDS, OPTIONS  # the stdlib only

    unknown = sorted(set(columns) - set(FIELDS) - set(OPTIONS))
    check(not unknown, where, f"columns: unknown keys {unknown}; known: {list(FIELDS + OPTIONS)}")
    d.columns = dict(columns)
    check(d.min_rows >= 2, where, f"min_rows must be >= 2, got {d.min_rows}")
    return d


def data_parts(d: DataConfig) -> list[DataConfig]:
    """The parts of a data section: itself unless it is mixed."""
    return list(d.parts) if d.kind == "mixed" else [d]


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
    data = parse_data(raw.pop("data", None), f"{where}: data")
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
    from ..models.backbones.plugin import check_name

    for side in ("frame", "text"):
        why = check_name(side, getattr(cfg, f"{side}_backbone"))
        check(why is None, where, f"{side}_backbone {why}")
    check(cfg.video_head in VIDEO_HEADS, where, f"video_head must be one of {VIDEO_HEADS}, got {cfg.video_head!r}")
    check(bool(cfg.name) and "/" not in cfg.name, where, f"name must be a plain name, got {cfg.name!r}")
    o = cfg.optim
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
    resolve_data_paths(raw, p.parent)
    return raw, str(p)


def resolve_data_paths(raw: Any, folder: Path) -> None:
    """Makes a config's relative caption-file paths (``data.train``/``val`` of captions sections, also in
    ``parts``) relative to ``folder``, the config file's folder, in place; other values are left to the checks."""
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        return
    sections = data.get("parts") if data.get("kind") == "mixed" else [data]
    for sec in sections if isinstance(sections, list) else []:
        if isinstance(sec, dict) and sec.get("kind") == "captions":
            for k in ("train", "val"):
                if isinstance(sec.get(k), str) and sec[k].strip() and not Path(sec[k]).expanduser().is_absolute():
                    sec[k] = str(Path(folder, sec[k]).resolve())


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """:func:`parse_config` of a YAML file (the shared checks only; see the module docstring)."""
    return parse_config(*read_config(path, overrides))
