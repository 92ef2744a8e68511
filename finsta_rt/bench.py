"""Throughput of decoding alone, the model alone and the whole extraction pipeline (``finsta-rt bench``)."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .extract import decode, extract
from .model import Model
from .video import Sampling


def decode_all(model: Model, paths: list[Path], sampling: Sampling, workers: int) -> tuple[list[np.ndarray], float]:
    """Decodes (and preprocesses) every video on ``workers`` threads; returns the clips and seconds."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        clips = [c for c, _ in pool.map(lambda p: decode(p, sampling, model, None), paths)]
    return clips, time.perf_counter() - t0


def model_only(model: Model, clips: list[np.ndarray], batch_size: int) -> float:
    """Seconds to embed already-decoded clips in batches of ``batch_size``."""
    flat = np.concatenate(clips)
    model.embed_frames(flat[:1])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(flat), batch_size):
        model.embed_frames(flat[i : i + batch_size])
    return time.perf_counter() - t0


def run_bench(
    model: Model, paths: list[Path], sampling: str | None = None, batch_size: int = 8, workers: int = 2, repeat: int = 1
) -> str:
    s = Sampling.parse(sampling or f"uniform:{model.bundle.preprocess.frames}")
    paths = list(paths) * max(1, repeat)
    clips, t_dec = decode_all(model, paths, s, workers)
    frames = sum(c.shape[0] * c.shape[1] for c in clips)
    t_model = model_only(model, clips, batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        extract(
            model,
            paths,
            Path(tmp) / "out",
            sampling=str(s),
            batch_size=batch_size,
            workers=workers,
            resume=False,
            progress=False,
        )
        t_pipe = time.perf_counter() - t0
    n = len(paths)
    rows = [("decode + preprocess", t_dec), ("model", t_model), ("pipeline (extract)", t_pipe)]
    out = [
        f"{n} videos, {frames} frames, sampling {s}, batch {batch_size}, {workers} decode workers, "
        f"device {model.device}",
        f"{'stage':<22} {'seconds':>8} {'frames/s':>9} {'videos/s':>9}",
    ]
    out += [f"{name:<22} {t:>8.2f} {frames / t:>9.1f} {n / t:>9.2f}" for name, t in rows]
    out.append(f"pipeline throughput / min(decode, model) throughput = {max(t_dec, t_model) / t_pipe:.2f}")
    return "\n".join(out)
