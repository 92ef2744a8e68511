"""``finsta-train CONFIG.yaml``: train a model family's structural heads on cached backbone features."""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from ..train.config import ConfigError, data_parts

EPILOG = """examples:
  finsta-train configs/stgt_synthetic.yaml
  finsta-train configs/stgt_synthetic.yaml --set optim.max_minutes=2 --set video_head=meanpool --output runs/meanpool
  finsta-train configs/finsta_synthetic.yaml        # Finsta on the frozen host runs/stgt
  finsta-train configs/stgt_captions.yaml           # your videos and captions
  finsta-train configs/stgt_captions_mixed.yaml     # synthetic and captions together

data kinds (the config's data section; docs/data.md):
  synthetic  rendered shape videos with order/attribute-swapped hard negatives
               data: {kind: synthetic, train: 1000, val: 200, seed: 0, val_seed: 100000, frames: 8, size: 112}
  captions   your videos: caption files with one row per (video, caption[, start, end]) segment
               data: {kind: captions, train: train.jsonl, val: val.jsonl, format: auto, frames: 8,
                      columns: {video: videoid, caption: name}, min_rows: 4}
             format: auto (by extension and content), jsonl, csv, msrvtt (annotation JSON), webvid (CSV); columns
             maps the fields video, caption, start, end to your file's names. Paths are relative to the config
             file's folder, a row's video to its caption file's folder (pkg:/deb: references: docs/data.md).
             Frames are decoded and preprocessed by finsta_rt.video as the bundle will; features are cached per
             segment (a second run decodes nothing). A missing or undecodable video is skipped and logged in
             RUN_DIR/errors.jsonl; a split needs min_rows usable rows. Train and val must not share a video.
             Held-out recall is video-level (a hit is any segment of the right video), also seg_r1/seg_r5.
  mixed      several parts trained together, each a synthetic or captions section; data.frames holds for all:
               data: {kind: mixed, frames: 8, parts: [{kind: synthetic, train: 1000, val: 200},
                      {kind: captions, name: real, train: train.jsonl, val: val.jsonl, repeat: 4}]}
             repeat: the part's rows per epoch, in copies; metrics per part as NAME_r1 (unprefixed: the first
             part's). Hard negatives (optim.hard_negatives) apply to the rows that have them (synthetic).

The run directory holds checkpoint.pt (resumed automatically when the config is unchanged) and
metrics.jsonl (one line per epoch). Export it with: finsta-export RUN_DIR
"""


def _override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k, yaml.safe_load(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="finsta-train", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("config", help="training config (YAML); see configs/")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, dotted keys for sections (optim.epochs=5)",
    )
    ap.add_argument("--output", help="run directory (default: the config's output)")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming")
    ap.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only warnings and the final metrics (default: a line per epoch with the loss and time left)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    overrides = dict(args.overrides)
    if args.output:
        overrides["output"] = args.output
    from ..data.caption_files import CaptionFileError
    from ..families import load_config, train  # imported late: --help needs no torch
    from ..train.caption_features import DataError

    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"finsta-train: {e}", file=sys.stderr)
        return 2

    try:
        result = train(cfg, resume=not args.fresh)
    except (ImportError, CaptionFileError, DataError) as e:  # a missing weights package says how to install it
        print(f"finsta-train: {e}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"run {result.run_dir}: {result.epochs} epochs in {result.train_seconds / 60:.1f} min")
    parts = [p.name for p in data_parts(cfg.data)]
    for prefix, what in [(f"{p}_" if len(parts) > 1 else "", f"held-out {p}") for p in parts] + [("host_", "host")]:
        if f"{prefix}r1" in m:  # host: finsta's frozen host alone on the same held-out videos
            print(f"  {what if prefix != 'host_' else f'host {cfg.host} alone'}: {held_out_line(m, prefix)}")
    return 0


def held_out_line(m: dict, prefix: str = "") -> str:
    """Recall (video-level for captions data) with chance, and the hard-negative accuracies where there are any."""
    g = lambda k: m.get(prefix + k)  # noqa: E731
    text = f"R@1 {g('r1'):.3f} (chance {g('chance_r1'):.3f}) R@5 {g('r5'):.3f} R@10 {g('r10'):.3f}"
    if g("videos") is not None:
        text += f" over {g('videos'):.0f} videos; segment R@1 {g('seg_r1'):.3f} R@5 {g('seg_r5'):.3f}"
    if g("order_acc") is not None:
        text += f"; order-swap acc {g('order_acc'):.3f} attribute-swap acc {g('attribute_acc'):.3f}"
    return text


if __name__ == "__main__":
    sys.exit(main())
