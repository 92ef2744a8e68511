#!/usr/bin/env python3
"""Finsta's held-out table: the frozen host alone, host + Finsta, and host + Finsta without the
Gaussian differential module and without temporal alignment (text->video R@1, order-swap and
attribute-swap hard-negative accuracy), from the runs' checkpoints.

    python benchmarks/finsta_ablation.py --train          # trains the three Finsta runs first
    python benchmarks/finsta_ablation.py                  # only prints, from runs/finsta*

Needs the host run of configs/finsta_synthetic.yaml (runs/stgt: finsta-train configs/stgt_synthetic.yaml).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "finsta_synthetic.yaml"
VARIANTS = {  # run directory -> overrides of the config
    "host + Finsta": ("runs/finsta", []),
    "host + Finsta, no Gaussian differential": ("runs/finsta-no-gd", ["model.gaussian_diff=false"]),
    "host + Finsta, no temporal alignment": ("runs/finsta-no-temporal", ["model.temporal=false"]),
}


def metrics(run: Path) -> dict:
    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file():
        raise SystemExit(f"no checkpoint in {run}: train it (--train) first")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return {**state["metrics"], "epochs": state["epoch"], "minutes": state["train_seconds"] / 60}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="store_true", help="train (or resume) the three runs first")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override for every run")
    args = ap.parse_args()
    if args.train:
        for run, overrides in VARIANTS.values():
            cmd = [sys.executable, "-m", "finsta.cli.train", str(CONFIG), "--output", run, "-q"]
            for o in overrides + args.set:
                cmd += ["--set", o]
            print("$", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
    rows = {name: metrics(ROOT / run) for name, (run, _) in VARIANTS.items()}
    first = next(iter(rows.values()))
    host = {k[len("host_") :]: v for k, v in first.items() if k.startswith("host_")}
    print(f"held-out synthetic videos: {int(first['n'])} (chance R@1 {first['chance_r1']:.3f})")
    print(f"{'model':<42} {'R@1':>6} {'R@5':>6} {'order-swap':>11} {'attribute-swap':>15} {'epochs':>7}")
    print(
        f"{'host alone (frozen STGT)':<42} {host['r1']:>6.3f} {host['r5']:>6.3f} {host['order_acc']:>11.3f} "
        f"{host['attribute_acc']:>15.3f} {'':>7}"
    )
    for name, m in rows.items():
        print(
            f"{name:<42} {m['r1']:>6.3f} {m['r5']:>6.3f} {m['order_acc']:>11.3f} {m['attribute_acc']:>15.3f} "
            f"{m['epochs']:>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
