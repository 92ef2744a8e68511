"""finsta-train configs: bad values give errors that name the file and the key."""

from __future__ import annotations

import pytest
import yaml

from finsta.cli.train import main as train_cli
from finsta.families import load_config
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
