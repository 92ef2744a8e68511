"""finsta-train configs: bad values give errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finsta.cli.train import main as train_cli
from finsta.families import load_config, parse_config
from finsta.train.config import ConfigError

BASE = "configs/stgt_synthetic.yaml"


def test_shipped_configs_parse():
    assert load_config(BASE).data.train == 1000
    assert load_config("configs/stgt_demo.yaml").name == "stgt-demo"


@pytest.mark.parametrize(
    "override,message",
    [
        ({"optim.lr": 5.0}, "lr must be in \\(0, 1\\)"),
        ({"optim.epochs": 0}, "epochs >= 1"),
        ({"optim.batch_size": "big"}, "optim.batch_size must be int"),
        ({"optim.loss": "triplet"}, "loss must be one of"),
        ({"optim.speed": 3}, "unknown keys \\['speed'\\]"),
        ({"data.seed": 100000}, "seed and val_seed must differ"),
        ({"frame_backbone": "resnet"}, "frame_backbone must be one of"),
        ({"model.dim": 250}, "dim=250 must be divisible by heads=8"),
        ({"model.sim_threshold": 3.0}, "sim_threshold must be in \\[-1, 1\\]"),
        ({"model.widht": 3}, "unknown STGT config keys \\['widht'\\]"),
        ({"family": "clip"}, "family must be one of \\('stgt', 'finsta', 'svilm'\\), got 'clip'"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(BASE, override)
    assert BASE in str(e.value)


def test_cli_reports_bad_config_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"optim": {"lr": -1}}))
    assert train_cli([str(bad)]) == 2
    assert "lr must be in (0, 1)" in capsys.readouterr().err
    assert train_cli([str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("a: [1, 2")
    assert train_cli([str(tmp_path / "broken.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


CAPTIONS = "configs/stgt_captions.yaml"
MIXED = "configs/stgt_captions_mixed.yaml"


def test_captions_and_mixed_configs_parse_resolve_paths_and_round_trip(tmp_path):
    for path in (CAPTIONS, MIXED, "configs/finsta_captions.yaml", "configs/svilm_captions.yaml"):
        cfg = load_config(path)
        assert parse_config(cfg.to_dict()).data == cfg.data  # what a checkpoint stores reads back the same
    # a synthetic section stores what it stored before data kinds existed: older runs still resume
    assert set(load_config(BASE).to_dict()["data"]) == {"kind", "train", "val", "seed", "val_seed", "frames", "size"}
    d = load_config(CAPTIONS).data
    assert (d.kind, d.train, d.frames) == ("captions", str(Path("datasets/real_clips/train.jsonl").resolve()), 8)
    parts = load_config(MIXED).data.parts
    assert [(p.kind, p.name, p.repeat) for p in parts] == [("synthetic", "synthetic", 1), ("captions", "real", 4)]
    assert parts[1].val == str(Path("datasets/real_clips/val.jsonl").resolve())
    # relative to the config file's folder, not the working directory; absolute paths stay
    (tmp_path / "sub").mkdir()
    raw = yaml.safe_load(Path(CAPTIONS).read_text())
    raw["data"].update(train="sub/a.jsonl", val="/abs/b.jsonl")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    d = load_config(tmp_path / "c.yaml").data
    assert (d.train, d.val) == (str(tmp_path / "sub" / "a.jsonl"), "/abs/b.jsonl")


@pytest.mark.parametrize(
    "path,override,message",
    [
        (CAPTIONS, {"data.kind": "videos"}, r"data: kind must be one of \('synthetic', 'captions', 'mixed'\)"),
        (CAPTIONS, {"data.train": 100}, r"data.train must be a caption file \(str\) for kind 'captions', got 100"),
        (CAPTIONS, {"data.val": ""}, "data: val must name a caption file"),
        (CAPTIONS, {"data.seed": 3}, r"data: unknown keys \['seed'\] for kind 'captions'"),
        (CAPTIONS, {"data.format": "xml"}, "data: format must be one of"),
        (CAPTIONS, {"data.columns": {"video": 3}}, "data: columns must map field names to column names"),
        (CAPTIONS, {"data.columns": {"clip": "path"}}, r"data: columns: unknown keys \['clip'\]"),
        (CAPTIONS, {"data.min_rows": 1}, "data: min_rows must be >= 2, got 1"),
        (CAPTIONS, {"data.frames": 0}, "data: frames in 1..64"),
        (BASE, {"data.train": "a.jsonl"}, r"data.train must be a number of videos \(int\) for kind 'synthetic'"),
        (MIXED, {"data.parts": []}, "data: kind 'mixed' needs parts"),
        (MIXED, {"data.size": 64}, r"data: unknown keys \['size'\] for kind 'mixed'"),
        (
            MIXED,
            {"data.parts": [{"kind": "mixed"}]},
            r"data.parts\[0\]: kind must be one of \('synthetic', 'captions'\)",
        ),
        (MIXED, {"data.parts": [{"kind": "synthetic", "frames": 4}]}, r"data.parts\[0\]: frames 4 differs from data"),
        (MIXED, {"data.parts": [{"kind": "synthetic"}, {"kind": "synthetic"}]}, r"parts need distinct names"),
        (MIXED, {"data.parts": [{"kind": "synthetic", "repeat": 0}]}, r"data.parts\[0\]: repeat must be >= 1"),
        (MIXED, {"data.parts": [{"kind": "synthetic", "name": "Real"}]}, r"name must be a plain lower-case name"),
    ],
)
def test_bad_data_sections_name_the_key(path, override, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(path, override)
    assert path in str(e.value)
