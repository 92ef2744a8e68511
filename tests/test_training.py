"""The training loop of every family end to end on the small test backbones and a few synthetic
videos: it learns (the loss falls), writes one metrics line per epoch and a loadable checkpoint,
resumes instead of retraining, and Finsta plugs onto the STGT run it names as host."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pytest

from finsta.families import finsta as finsta_family
from finsta.families import load_run, parse_config, train
from finsta.families import stgt as stgt_family
from finsta.families import svilm as svilm_family
from finsta.train.features import build_backbones
from finsta.train.setup import cache_features

DATA = {"train": 24, "val": 12, "seed": 0, "val_seed": 5, "frames": 4, "size": 32}


def config(tmp: Path, family: str, epochs: int = 4, **extra) -> dict:
    return {
        "name": family,
        "family": family,
        "frame_backbone": "tiny_vit",
        "text_backbone": "tiny_text",
        "data": DATA,
        "output": str(tmp / family),
        "cache": str(tmp / "cache"),
        "optim": {
            "epochs": epochs,
            "batch_size": 8,
            "lr": 1e-3,
            "eval_every": 2,
            "max_minutes": 5.0,
            "warmup_epochs": 0.5,
        },
        **extra,
    }


def lines(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stgt_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("train")
    cfg = parse_config(
        config(tmp, "stgt", model={"dim": 32, "heads": 4, "queries": 2, "query_layers": 1, "embed_dim": 16})
    )
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
    heads, cfg, metrics = stgt_family.load_heads(run)
    assert cfg.family == "stgt" and metrics == result.metrics
    again = train(parse_config(json.loads(json.dumps(cfg.to_dict()))))  # the same config: nothing left to do
    assert again.epochs == 4 and len(lines(run)) == 4


def test_finsta_trains_on_the_frozen_host(stgt_run):
    tmp, _ = stgt_run
    host_ckpt = tmp / "stgt" / "checkpoint.pt"
    before = hashlib.sha256(host_ckpt.read_bytes()).hexdigest()
    cfg = parse_config(
        config(
            tmp,
            "finsta",
            epochs=3,
            host=str(tmp / "stgt"),
            model={"dim": 16, "heads": 4, "slots": 2, "text_layers": 1, "max_nodes": 12},
        )
    )
    result = train(cfg)
    log = lines(tmp / "finsta")
    assert [ln["epoch"] for ln in log] == [1, 2, 3] and log[-1]["loss"] < log[0]["loss"]
    host = {k[5:]: v for k, v in result.metrics.items() if k.startswith("host_")}
    assert set(host) >= {"r1", "order_acc", "attribute_acc"}
    # the host is unchanged by Finsta's training: its checkpoint, and the host measured now, after it
    assert hashlib.sha256(host_ckpt.read_bytes()).hexdigest() == before
    host_heads, host_cfg, host_metrics = stgt_family.load_heads(tmp / "stgt")
    after = stgt_family.evaluate(host_heads, cache_features(cfg, "val", build_backbones(cfg)))
    for k in ("r1", "r5", "order_acc", "attribute_acc"):
        assert after[k] == pytest.approx(host[k]) == pytest.approx(host_metrics[k]), k
    heads, cfg2, metrics = finsta_family.load_finsta(tmp / "finsta")
    assert cfg2.host == str(tmp / "stgt") and metrics["host_r1"] == result.metrics["host_r1"]


def test_svilm_trains_and_calibrates_its_threshold(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="finsta.train.fit")
    cfg = parse_config(
        config(tmp_path, "svilm", epochs=2, model={"dim": 32, "heads": 4, "layers": 2, "groups": 4, "embed_dim": 16})
    )
    result = train(cfg)
    log = lines(tmp_path / "svilm")
    assert [ln["epoch"] for ln in log] == [1, 2]
    assert any(k.startswith("loss_") for k in log[0])  # the named loss parts
    progress = [r.getMessage() for r in caplog.records if r.name == "finsta.train.fit"]
    epochs = [
        m.group(1)
        for m in (re.match(r"epoch (\d)/2 loss \d+\.\d+ .*\d+m\d\ds, \d+m\d\ds left", t) for t in progress)
        if m
    ]
    assert epochs == ["1", "2"], progress  # a progress line per epoch: its loss, the time spent and left
    heads, _, metrics = svilm_family.load_svilm(tmp_path / "svilm")
    assert type(load_run(tmp_path / "svilm")[0]) is type(heads)  # the registry finds the run's family
    assert heads.cfg.scene_threshold == pytest.approx(metrics["scene_threshold"]) == result.metrics["scene_threshold"]
    assert 0.0 <= heads.cfg.scene_threshold <= 2.0
