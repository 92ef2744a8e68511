"""``finsta-export RUN_DIR``: write a model bundle (ONNX graphs + tokenizer + bundle.yaml) from a
training run. Flavour ``custom`` uses the finsta op library; ``portable`` runs in stock ONNX Runtime;
``flat`` has every function inlined (standard ONNX only: OpenVINO, TensorRT, tract). Precision ``fp32``
(default), ``fp16`` (GPU) or ``int8`` (CPU; calibrated on the run's training frames)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from finsta_rt.bundle import PRECISIONS

EPILOG = """examples:
  finsta-export runs/stgt                       # -> bundles/stgt
  finsta-export runs/stgt --flavour portable    # -> bundles/stgt-portable
  finsta-export runs/stgt --flavour both --overwrite
  finsta-export runs/stgt --precision int8      # -> bundles/stgt-int8 (calibrated on training frames)
  finsta-export runs/stgt --flavour flat --precision fp16   # -> bundles/stgt-flat-fp16
  finsta-rt info bundles/stgt                   # what the bundle holds

Every bundle is checked before it is written: finsta_rt loads it and must reproduce PyTorch
(cosine >= 0.9999 on embeddings, scores within 1e-4); an fp16 bundle must stay within cosine 0.999
of the fp32 bundle, an int8 bundle within 0.6 (a broken conversion) on clips not used for calibration:
benchmarks/bench_precision.py measures what int8 costs.
"""

log = logging.getLogger("finsta.cli.export")


def training_frames(run: str | Path, preprocess, n: int) -> np.ndarray | None:
    """Up to ``n`` uint8 clips [N, T, S, S, 3] of the run's training data, as the bundle preprocesses
    them: rendered synthetic videos and decoded caption segments, taken in turn from each data part."""
    from finsta_rt.video import VideoError, read_frames

    from ..data import SyntheticVideoDataset, read_captions
    from ..train.fit import read_checkpoint

    _, cfg = read_checkpoint(run)
    parts = cfg.data.parts if cfg.data.kind == "mixed" else [cfg.data]
    sampling = f"{preprocess.sampling}:{preprocess.frames}"

    def clips(part):
        if part.kind == "synthetic":
            data = SyntheticVideoDataset(part.train, seed=part.seed, frames=part.frames, size=part.size)
            for i in range(len(data)):
                yield preprocess(data[i].frames)
            return
        try:
            rows = read_captions(part.train, format=part.format, columns=part.columns or None)
        except (OSError, ValueError) as e:
            log.warning("no calibration frames from %s: %s", part.train, e)
            return
        for row in rows:
            window = None if row.start is None else (row.start, row.end)
            try:
                clip = read_frames(row.video, sampling, window=window, transform=preprocess).frames
            except (OSError, VideoError) as e:
                log.warning("calibration skips %s: %s", row.where, e)
                continue
            if clip.shape[0] == preprocess.frames:
                yield clip

    out, sources = [], [clips(p) for p in parts]
    while sources and len(out) < n:
        for src in list(sources):
            clip = next(src, None)
            if clip is None:
                sources.remove(src)
            elif len(out) < n:
                out.append(clip)
    return np.stack(out) if out else None


def read_calibration(path: str | Path, preprocess, n: int) -> np.ndarray:
    """``--calibration``: a .npy of uint8 clips [N, T, S, S, 3], a video file, or a directory of videos."""
    from finsta_rt.video import read_frames

    p = Path(path)
    if p.suffix == ".npy":
        return np.load(p, allow_pickle=False)[:n]
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"--calibration {p}: no files")
    sampling = f"{preprocess.sampling}:{preprocess.frames}"
    return np.stack([read_frames(f, sampling, transform=preprocess).frames for f in files[:n]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="finsta-export", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", help="training run directory (or its checkpoint.pt)")
    ap.add_argument("--flavour", choices=["custom", "portable", "flat", "both"], default="custom")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default), fp16 (GPU) or int8 (CPU)")
    ap.add_argument(
        "--calibration",
        metavar="PATH",
        help="int8: calibration clips (.npy uint8 [N, T, S, S, 3], a video or a folder of videos); "
        "default: the run's training data",
    )
    ap.add_argument("--calibration-clips", type=int, default=16, metavar="N", help="int8: clips to calibrate on")
    ap.add_argument("--out", help="bundle directory (default bundles/NAME[-portable|-flat][-fp16|-int8])")
    ap.add_argument("--name", help="bundle name (default: the run config's name)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")
    ap.add_argument("--no-verify", action="store_true", help="skip the PyTorch (and fp32) parity check")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.flavour == "both" and args.out:
        ap.error("--out names one directory; with --flavour both use the default names")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    from ..export.run import export_flavours
    from ..families import run_parts  # imported late: --help needs no torch

    flavours = ["custom", "portable"] if args.flavour == "both" else [args.flavour]
    try:
        parts = run_parts(args.run)
        calibration = None
        if args.precision == "int8":
            pre, n = parts.spec.preprocess, args.calibration_clips
            if args.calibration:
                calibration = read_calibration(args.calibration, pre, n)
            else:
                calibration = training_frames(args.run, pre, n)
            log.info("int8: %d calibration clips", 0 if calibration is None else len(calibration))
        outs = {fl: args.out for fl in flavours}  # both flavours: one trace, the default names
        paths = export_flavours(parts, outs, args.name, args.overwrite, not args.no_verify, args.precision, calibration)
        for fl, path in paths.items():
            print(f"wrote {fl} {args.precision} bundle {path}")
    except (FileNotFoundError, FileExistsError, PermissionError, ImportError, ValueError) as e:
        print(f"finsta-export: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
