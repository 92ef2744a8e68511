"""The training loop every family shares: AdamW with warm-up and cosine decay, resume when the
config is unchanged, a wall-clock budget, held-out evaluation every few epochs, one line per epoch
in metrics.jsonl and a checkpoint written atomically after each epoch. A family supplies the loss
of one batch and its evaluation."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .config import TrainConfig, parse_config
from .metrics import summary as default_summary

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
PROGRESS_SECONDS = 30.0  # a long epoch says where it is this often

# loss of one batch: (sorted video indices, the run's rng, epoch) -> (loss, named parts for the log)
StepFn = Callable[[np.ndarray, np.random.Generator, int], tuple[Tensor, dict[str, float]]]


@dataclass
class Fitted:
    """What :func:`fit` leaves: the last metrics, the epochs done, seconds spent, and the state a
    family needs to write its checkpoint again (e.g. after a post-training calibration)."""

    metrics: dict[str, float]
    epochs: int
    seconds: float
    optimizer: torch.optim.Optimizer
    scheduler: Any


def save_checkpoint(
    path: Path,
    heads: nn.Module,
    config_key: str,
    model_config: dict,
    cfg: TrainConfig,
    fitted_or_state: Fitted | dict,
    metrics: dict,
) -> None:
    """checkpoint.pt: heads, ``{config_key}: model_config``, training config, optimizer and
    scheduler, epoch, seconds and metrics; written beside and renamed (never half-written)."""
    f = fitted_or_state
    state = (
        f
        if isinstance(f, dict)
        else {
            "optimizer": f.optimizer.state_dict(),
            "scheduler": f.scheduler.state_dict(),
            "epoch": f.epochs,
            "train_seconds": f.seconds,
        }
    )
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "heads": heads.state_dict(),
            config_key: model_config,
            "train_config": cfg.to_dict(),
            **state,
            "metrics": metrics,
        },
        tmp,
    )
    tmp.replace(path)


def read_checkpoint(run_or_ckpt: str | Path) -> tuple[dict, TrainConfig]:
    """The checkpoint of a run directory (or file) and its training config."""
    p = Path(run_or_ckpt)
    p = p / CHECKPOINT if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p} (train first: finsta-train CONFIG.yaml)")
    state = torch.load(p, map_location="cpu", weights_only=True)
    return state, parse_config(state["train_config"], str(p))


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def fit(
    heads: nn.Module,
    cfg: TrainConfig,
    n_train: int,
    step: StepFn,
    evaluate: Callable[[], dict[str, float]],
    config_key: str,
    model_config: dict,
    resume: bool = True,
    epoch_info: Callable[[int], dict[str, Any]] | None = None,
    summary: Callable[[dict[str, float]], str] | None = None,
) -> Fitted:
    """Trains ``heads`` on ``n_train`` videos in batches of ``cfg.optim.batch_size``.

    ``epoch_info(epoch)`` adds fields to an epoch's metrics line; ``summary(metrics)`` is what the
    log says about an evaluation (default: R@1 and the hard-negative accuracies). A module with a
    ``log_temp`` parameter has its temperature kept in [0.01, 0.5] after every step.
    """
    o = cfg.optim
    run = Path(cfg.output)
    run.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.AdamW(heads.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=(0.9, 0.98))
    steps_per_epoch = math.ceil(n_train / o.batch_size)
    total, warm = o.epochs * steps_per_epoch, max(1, int(o.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )
    ckpt = run / CHECKPOINT
    start_epoch, spent = 0, 0.0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["train_config"] == cfg.to_dict():
            heads.load_state_dict(state["heads"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, spent = state["epoch"], state["train_seconds"]
            log.info("resuming %s at epoch %d", ckpt, start_epoch)
        else:
            log.warning("%s was trained with another config; starting afresh", ckpt)
    if start_epoch == 0:  # a fresh run starts its own log (a resumed one appends)
        (run / "metrics.jsonl").unlink(missing_ok=True)
    summary = summary or default_summary
    temp = getattr(heads, "log_temp", None)

    rng = np.random.default_rng(o.seed + start_epoch)
    metrics: dict[str, float] = {}
    budget, t_start = o.max_minutes * 60, time.monotonic() - spent
    t_session = time.monotonic()  # epochs of this session (not resumed ones) time the rest
    done, stopped = start_epoch, False
    heads.train()
    for epoch in range(start_epoch, o.epochs):
        t_said = time.monotonic()
        order = rng.permutation(n_train)
        losses: list[float] = []
        parts_sum: dict[str, float] = {}
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * o.batch_size : (s + 1) * o.batch_size])  # sorted reads suit the memory map
            if len(idx) < 2:
                continue
            loss, parts = step(idx, rng, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if temp is not None:
                with torch.no_grad():
                    temp.clamp_(math.log(0.01), math.log(0.5))
            losses.append(float(loss.detach()))
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            if time.monotonic() - t_start > budget:
                stopped = True
                break
            if time.monotonic() - t_said > PROGRESS_SECONDS and s + 1 < steps_per_epoch:
                t_said = time.monotonic()
                log.info(
                    "epoch %d/%d step %d/%d loss %.4f", epoch + 1, o.epochs, s + 1, steps_per_epoch, np.mean(losses)
                )
        elapsed = time.monotonic() - t_start
        n = max(1, len(losses))
        line: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)) if losses else None,
            **{f"loss_{k}": v / n for k, v in parts_sum.items()},
            "lr": sched.get_last_lr()[0],
            **(epoch_info(epoch) if epoch_info else {}),
            "seconds": round(elapsed, 1),
        }
        evaluated = stopped or epoch + 1 == o.epochs or (epoch + 1) % o.eval_every == 0
        if evaluated:
            metrics = evaluate()
            line.update({f"val_{k}": v for k, v in metrics.items()})
        left = min(
            (time.monotonic() - t_session) / (epoch + 1 - start_epoch) * (o.epochs - epoch - 1),
            max(0.0, budget - elapsed),
        )
        log.info(
            "epoch %d/%d loss %.4f%s %s, %s left%s",
            epoch + 1,
            o.epochs,
            line["loss"] or float("nan"),
            "".join(f" {k} {v / n:.3f}" for k, v in parts_sum.items()),
            _clock(elapsed),
            _clock(left),
            f"  val {summary(metrics)}" if evaluated else "",
        )
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        done = epoch + 1
        fitted = Fitted(metrics, done, elapsed, opt, sched)
        save_checkpoint(ckpt, heads, config_key, model_config, cfg, fitted, metrics)
        if stopped:
            log.warning("stopped by the %.1f-minute limit after epoch %d", o.max_minutes, epoch + 1)
            break
    if not metrics:
        metrics = evaluate()
    return Fitted(metrics, done, time.monotonic() - t_start, opt, sched)
