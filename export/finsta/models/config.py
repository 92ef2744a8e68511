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

    # checks the families share; each error names the family and the key
    def need(self, ok: bool, msg: str) -> None:
        if not ok:
            raise ValueError(f"{self.TITLE} config: {msg}")

    def need_positive_ints(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            self.need(
                isinstance(v, int) and not isinstance(v, bool) and v > 0,
                f"{name} must be a positive integer, got {v!r}",
            )

    def need_heads_divide_dim(self) -> None:
        dim, heads = self.dim, self.heads  # type: ignore[attr-defined]
        self.need(dim % heads == 0, f"dim={dim} must be divisible by heads={heads}")

    def need_grid(self) -> None:
        grid = self.grid  # type: ignore[attr-defined]
        self.need(
            len(grid) == 2 and all(isinstance(g, int) and g > 0 for g in grid),
            f"grid must be two positive integers, got {grid!r}",
        )
