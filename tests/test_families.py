"""The family registry: one table names the families, a new family is one entry (its module's FAMILY), and
the exporter's known noise is silenced only where it is raised. That the layers below the registry know no
family is import-linter's contract (pyproject.toml, `make lint`)."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import pytest

from finsta import families
from finsta.export.bundle import _exporter_noise_silenced
from finsta.families import FAMILIES, Family, parse_config
from finsta.train.config import ConfigError
from finsta.train.setup import TrainResult


def test_every_family_is_in_the_table_with_all_its_pieces():
    assert set(FAMILIES) == {"stgt", "finsta", "svilm"}
    for name, fam in FAMILIES.items():
        assert fam.name == name and isinstance(fam, Family)
        for f in dataclasses.fields(Family):
            assert getattr(fam, f.name) is not None, (name, f.name)
    with pytest.raises(ValueError, match=r"family must be one of \('stgt', 'finsta', 'svilm'\), got 'clip'"):
        families.family("clip")


def test_a_new_family_is_one_table_entry(monkeypatch, tmp_path):
    """A toy family registered in the table: the config accepts it, runs its checks, and training
    and export dispatch to it; nothing else had to learn its name."""
    seen = []

    def validate(cfg, where):
        seen.append(("validate", where))
        if cfg.model.get("bad"):
            raise ConfigError(f"{where}: model: bad is bad")

    def train(cfg, resume):
        seen.append(("train", resume))
        return TrainResult(Path(cfg.output), {"r1": 1.0}, 0.0, 1)

    toy = Family("toy", validate, train, load=lambda run: None, export_parts=lambda run: None)
    monkeypatch.setitem(FAMILIES, "toy", toy)
    raw = {
        "name": "t",
        "family": "toy",
        "frame_backbone": "tiny_vit",
        "text_backbone": "tiny_text",
        "output": str(tmp_path / "toy"),
    }
    cfg = parse_config(raw, "toy.yaml")
    assert cfg.family == "toy" and seen == [("validate", "toy.yaml")]
    with pytest.raises(ConfigError, match="toy.yaml: model: bad is bad"):
        parse_config({**raw, "model": {"bad": True}}, "toy.yaml")
    assert families.train(cfg, resume=False).metrics == {"r1": 1.0} and seen[-1] == ("train", False)
    monkeypatch.delitem(FAMILIES, "toy")
    with pytest.raises(ConfigError, match="toy.yaml: family must be one of"):
        parse_config(raw, "toy.yaml")


def test_exporter_noise_is_silenced_only_while_exporting(caplog):
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    noise = [
        ("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning),
        (
            "# The axis name: B will not be used, since it shares the same shape constraints with another axis: B.",
            UserWarning,
        ),
    ]
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        with _exporter_noise_silenced():
            for msg, cat in noise:
                warnings.warn(msg, cat, stacklevel=1)
            registration.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
            warnings.warn("something else", UserWarning, stacklevel=1)  # other warnings still arrive
            registration.warning("a real registration problem")
        for msg, cat in noise:  # outside the export the same warnings are shown
            warnings.warn(msg, cat, stacklevel=1)
        registration.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
    assert [str(w.message) for w in got] == ["something else"] + [m for m, _ in noise]
    assert [r.getMessage() for r in caplog.records if r.name == registration.name] == [
        "a real registration problem",
        "torchvision is not installed. Skipping torchvision::nms",
    ]
