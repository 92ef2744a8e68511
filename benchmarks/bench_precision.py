#!/usr/bin/env python3
"""What fp16 and int8 cost and buy, per flavour, on the same inputs: one table.

From a trained fp32 bundle (default bundles/stgt-demo, after `make demo`) and its run (for the int8
calibration frames: the run's training data, as finsta-export takes them), this writes the fp16 and
int8 versions of the custom and portable bundles and the flat version of each (finsta.export.precision,
finsta.export.flat; into --work), then for each precision x flavour, through finsta_rt on the CPU:

* video ms/clip: the video tower on one clip [1, T, S, S, 3], the median wall time of --repeat runs after a
  warm-up, and the median CPU time (time.process_time, all threads: load from other jobs disturbs it less);
* text ms: the text tower on the held-out captions (one batch), median of --repeat runs;
* MB: video.onnx + text.onnx;
* cosine to fp32: the lowest row cosine of each video and text output against the custom fp32 bundle
  on the held-out synthetic clips and captions;
* held-out synthetic R@1/R@5 (text -> video, each caption's own clip among --synthetic held-out videos of
  the run's validation stream) and real R@1/R@5 (datasets/real_clips/val.jsonl, video level, as
  benchmarks/real_retrieval.py).

    python benchmarks/bench_precision.py --bundle bundles/stgt-demo --run runs/stgt-demo
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_retrieval import VAL, real_set, recall, segment_frames  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_precision")


def make_variants(
    bundle: Path, portable: Path | None, run: Path, work: Path, clips: int, reuse: bool = False
) -> dict[tuple[str, str], Path]:
    """(flavour, precision) -> bundle directory; the converted ones are written into ``work`` (``reuse``: keep
    those already there)."""
    from finsta.cli.export import training_frames
    from finsta.export.flat import flatten_bundle
    from finsta.export.precision import convert_bundle
    from finsta_rt.bundle import Bundle

    pre = Bundle.load(bundle).preprocess
    calib = training_frames(run, pre, clips)
    log.info("calibration: %d clips of %s", 0 if calib is None else len(calib), run)
    out = {("custom", "fp32"): bundle}
    if portable is not None:
        out[("portable", "fp32")] = portable
    for (flavour, _), src in list(out.items()):
        for precision in ("fp16", "int8"):
            if reuse and (work / f"{flavour}-{precision}" / "bundle.yaml").is_file():
                out[(flavour, precision)] = work / f"{flavour}-{precision}"
                continue
            t = time.monotonic()
            out[(flavour, precision)] = convert_bundle(
                src, precision, work / f"{flavour}-{precision}", calib, overwrite=True, verify=False
            )
            log.info("%s %s written in %.0f s", flavour, precision, time.monotonic() - t)
    if portable is not None:
        for precision in ("fp32", "fp16", "int8"):
            if reuse and (work / f"flat-{precision}" / "bundle.yaml").is_file():
                out[("flat", precision)] = work / f"flat-{precision}"
                continue
            out[("flat", precision)] = flatten_bundle(
                out[("portable", precision)], work / f"flat-{precision}", overwrite=True, verify=False
            )
    return out


def synthetic_held_out(run: Path, preprocess, n: int) -> tuple[np.ndarray, list[str]]:
    """The first ``n`` videos of the run's held-out synthetic stream (its val_seed), preprocessed, and their captions."""
    from finsta.data import SyntheticVideoDataset
    from finsta.train.fit import read_checkpoint

    _, cfg = read_checkpoint(run)
    parts = cfg.data.parts if cfg.data.kind == "mixed" else [cfg.data]
    d = next((p for p in parts if p.kind == "synthetic"), None)
    seed, size = (d.val_seed, d.size) if d is not None else (100_000, 112)
    data = SyntheticVideoDataset(n, seed=seed, frames=preprocess.frames, size=size)
    items = [data[i] for i in range(n)]
    return np.stack([preprocess(it.frames) for it in items]), [it.caption for it in items]


def r_at(scores: np.ndarray, ks=(1, 5)) -> dict[str, float]:
    """Text -> video R@K where text i belongs to video i."""
    rank = (scores > scores[np.arange(len(scores)), np.arange(len(scores))][:, None]).sum(1)
    return {f"r{k}": float((rank < k).mean()) for k in ks}


def embed(model, frames: np.ndarray, batch: int = 4) -> dict[str, np.ndarray]:
    parts = [model.embed_frames(frames[i : i + batch]) for i in range(0, len(frames), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def median_ms(run, repeat: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds of ``run()``: medians of ``repeat`` calls after a warm-up."""
    run()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1000 * float(np.median(wall)), 1000 * float(np.median(cpu))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=ROOT / "bundles/stgt-demo", help="the custom fp32 bundle")
    ap.add_argument("--portable", type=Path, default=ROOT / "bundles/stgt-demo-portable", help="'' to skip")
    ap.add_argument("--run", type=Path, default=ROOT / "runs/stgt-demo", help="its training run (calibration)")
    ap.add_argument("--work", type=Path, default=ROOT / ".cache/bench_precision", help="converted bundles go here")
    ap.add_argument("--clips", type=int, default=16, help="int8 calibration clips")
    ap.add_argument(
        "--synthetic",
        type=int,
        default=100,
        help="held-out synthetic videos (100: R@1 in steps of 0.01, finer than the 0.02 target)",
    )
    ap.add_argument("--real", type=Path, default=VAL, help="real caption file ('' to skip)")
    ap.add_argument("--reuse", action="store_true", help="keep the converted bundles already in --work")
    ap.add_argument("--flavours", default="custom,portable,flat", help="which rows to measure")
    ap.add_argument("--precisions", default="fp32,fp16,int8", help="which rows to measure")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("finsta_rt").setLevel(logging.WARNING)
    from finsta.export.passes import row_cosines
    from finsta_rt.model import Model

    portable = args.portable if str(args.portable) not in ("", ".") and args.portable.is_dir() else None
    variants = make_variants(args.bundle, portable, args.run, args.work, args.clips, args.reuse)
    ref = Model(args.bundle, device="cpu", threads=args.threads)
    frames, captions = synthetic_held_out(args.run, ref.bundle.preprocess, args.synthetic)
    rs = real_set(args.real) if str(args.real) not in ("", ".") else None
    real_frames = segment_frames(rs, ref.bundle.preprocess) if rs else None
    base: dict[str, np.ndarray] = {}
    rows = []
    keep = [(f, p) for f, p in variants if f in args.flavours.split(",") and p in args.precisions.split(",")]
    for (flavour, precision), path in variants.items():
        if (flavour, precision) != ("custom", "fp32") and (flavour, precision) not in keep:
            continue  # custom fp32 is the reference: always measured, first
        t0 = time.monotonic()
        model = ref if (flavour, precision) == ("custom", "fp32") else Model(path, device="cpu", threads=args.threads)
        out = {**embed(model, frames), "text_embedding": model.embed_text(captions)}
        if not base:
            base = out
        cosines = {k: float(row_cosines(out[k], base[k]).min()) for k in base if out[k].dtype.kind == "f"}
        syn = r_at(model.score(out["video_embedding"], out["text_embedding"]))
        real = {}
        if rs:
            v = embed(model, real_frames)["video_embedding"]
            real = recall(model.score(v, model.embed_text(rs.queries)), rs)
        mb = sum((path / f"{g}.onnx").stat().st_size for g in ("video", "text")) / 1e6
        ms, cpu = median_ms(partial(model.embed_frames, frames[:1]), args.repeat)
        text_ms, _ = median_ms(partial(model.embed_text, captions), args.repeat)
        rows.append((flavour, precision, (ms, cpu, text_ms), mb, cosines, syn, real))
        log.info("%s %s measured in %.0f s", flavour, precision, time.monotonic() - t0)
        del model

    fp32_ms = {r[0]: r[2] for r in rows if r[1] == "fp32"}
    names = list(rows[0][4])
    head = ["flavour", "precision", "video ms/clip", "x fp32", "video CPU ms/clip", "x fp32", "text ms", "MB"]
    head += [f"cos {n}" for n in names]
    head += ["syn R@1", "syn R@5"] + (["real vid R@1", "real vid R@5", "real seg R@1"] if rs else [])
    print(
        f"\n{args.bundle} ({ref.bundle.family}), {len(frames)} held-out synthetic clips, "
        f"{len(rs.queries) if rs else 0} real queries, T={ref.bundle.preprocess.frames}, "
        f"threads={args.threads or 'all'}, medians of {args.repeat} runs, {len(captions)} captions per text batch\n"
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for flavour, precision, (ms, cpu, text_ms), mb, cosines, syn, real in rows:
        ref_ms, ref_cpu, _ = fp32_ms.get(flavour, fp32_ms["custom"])
        cells = [flavour, precision, f"{ms:.0f}", f"{ref_ms / ms:.2f}", f"{cpu:.0f}", f"{ref_cpu / cpu:.2f}"]
        cells += [f"{text_ms:.0f}", f"{mb:.1f}", *[f"{cosines[n]:.4f}" for n in names]]
        cells += [f"{syn['r1']:.3f}", f"{syn['r5']:.3f}"]
        if rs:
            cells += [f"{real['vid_r1']:.3f}", f"{real['vid_r5']:.3f}", f"{real['seg_r1']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
