"""What the model configs of every family share: built from a plain dict (a YAML section or a
checkpoint) with unknown keys refused by name, validated on construction, and written back as
plain data (tuples as lists, for YAML and checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

C = TypeVar("C", bound="ModelConfig")


class ModelConfig:
    """Mixin for the dataclass configs: ``TITLE`` names the family in error messages."""

    TITLE = "model"

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.TITLE} config keys {unknown}; known keys: {sorted(known)}")
        d = dict(d)
        if "grid" in d:
            d["grid"] = tuple(d["grid"])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def validate(self) -> None:
        """Raises ValueError naming the bad key; the families override it."""
