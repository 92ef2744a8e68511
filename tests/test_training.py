"""The training loop of every family end to end on the small test backbones and a few synthetic
videos: it learns (the loss falls), writes one metrics line per epoch and a loadable checkpoint,
resumes instead of retraining, and Finsta plugs onto the STGT run it names as host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsta.train.config import parse_config
from finsta.train.loop import load_heads, train

DATA = {"train": 24, "val": 12, "seed": 0, "val_seed": 5, "frames": 4, "size": 32}


def config(tmp: Path, family: str, epochs: int = 4, **extra) -> dict:
    return {"name": family, "family": family, "frame_backbone": "tiny_vit", "text_backbone": "tiny_text",
            "data": DATA, "output": str(tmp / family), "cache": str(tmp / "cache"),
            "optim": {"epochs": epochs, "batch_size": 8, "lr": 1e-3, "eval_every": 2, "max_minutes": 5.0,
                      "warmup_epochs": 0.5},
            **extra}


def lines(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stgt_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("train")
    cfg = parse_config(config(tmp, "stgt", model={"dim": 32, "heads": 4, "queries": 2, "query_layers": 1,
                                                 "embed_dim": 16}))
    result = train(cfg)
    return tmp, result


def test_stgt_trains_resumes_and_loads(stgt_run):
    tmp, result = stgt_run
    run = tmp / "stgt"
    log = lines(run)
    assert [ln["epoch"] for ln in log] == [1, 2, 3, 4] and result.epochs == 4
    assert log[-1]["loss"] < log[0]["loss"]
    assert "val_r1" in log[1] and "val_r1" not in log[0] and {"temperature", "loss_kind", "lr"} <= set(log[0])
    assert set(result.metrics) >= {"r1", "r5", "order_acc", "attribute_acc"}
    heads, cfg, metrics = load_heads(run)
    assert cfg.family == "stgt" and metrics == result.metrics
    again = train(parse_config(json.loads(json.dumps(cfg.to_dict()))))  # the same config: nothing left to do
    assert again.epochs == 4 and len(lines(run)) == 4


def test_finsta_trains_on_the_frozen_host(stgt_run):
    from finsta.train.finsta_loop import load_finsta

    tmp, _ = stgt_run
    cfg = parse_config(config(tmp, "finsta", epochs=3, host=str(tmp / "stgt"),
                              model={"dim": 16, "heads": 4, "slots": 2, "text_layers": 1, "max_nodes": 12}))
    result = train(cfg)
    log = lines(tmp / "finsta")
    assert [ln["epoch"] for ln in log] == [1, 2, 3] and log[-1]["loss"] < log[0]["loss"]
    host = {k[5:]: v for k, v in result.metrics.items() if k.startswith("host_")}
    assert set(host) >= {"r1", "order_acc", "attribute_acc"}
    host_heads, _, host_metrics = load_heads(tmp / "stgt")
    assert host["r1"] == pytest.approx(host_metrics["r1"])  # the host was not changed by Finsta's training
    heads, cfg2, metrics = load_finsta(tmp / "finsta")
    assert cfg2.host == str(tmp / "stgt") and metrics["host_r1"] == result.metrics["host_r1"]


def test_svilm_trains_and_calibrates_its_threshold(tmp_path):
    from finsta.train.svilm_loop import load_svilm

    cfg = parse_config(config(tmp_path, "svilm", epochs=2,
                              model={"dim": 32, "heads": 4, "layers": 2, "groups": 4, "embed_dim": 16}))
    result = train(cfg)
    log = lines(tmp_path / "svilm")
    assert [ln["epoch"] for ln in log] == [1, 2]
    assert any(k.startswith("loss_") for k in log[0])  # the named loss parts
    heads, _, metrics = load_svilm(tmp_path / "svilm")
    assert heads.cfg.scene_threshold == pytest.approx(metrics["scene_threshold"]) == result.metrics["scene_threshold"]
    assert 0.0 <= heads.cfg.scene_threshold <= 2.0
