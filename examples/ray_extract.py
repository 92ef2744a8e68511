#!/usr/bin/env python3
"""Embed videos on Ray Data from a list of paths (``pip install 'finsta-rt[ray]'``; docs/runtime.md).

    python examples/ray_extract.py bundles/stgt videos/*.mp4 --cpus 2 -o embeddings.npy
    python examples/ray_extract.py bundles/stgt list.txt --address ray://head:10001

Rows carry paths, never frames: each actor decodes its own videos (finsta_rt.video) and runs one Model
whose ONNX Runtime threads are the actor's CPUs. A bad video comes back as a row with status "failed".
For a resumable extraction folder (the same as ``finsta-rt extract``), use
``finsta_rt.ray.extract_on_ray`` or ``finsta-rt extract BUNDLE INPUT... -o OUT --ray [ADDRESS]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import ray

from finsta_rt.inputs import collect
from finsta_rt.ray import EmbedVideos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="+", help="videos, directories, globs or .txt/.csv lists")
    p.add_argument("--address", help="a Ray cluster (default: start a local one)")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--actor-cpus", type=int, default=1, help="CPUs per actor = its ONNX Runtime threads")
    p.add_argument("-o", "--output", type=Path, help="save the pooled embeddings of the ok videos here (.npy)")
    args = p.parse_args()

    paths = [str(x.resolve()) for x in collect(args.inputs).paths]
    ray.init(address=args.address, num_cpus=None if args.address else args.cpus, include_dashboard=False)
    actors = max(1, int(ray.cluster_resources()["CPU"]) // args.actor_cpus)
    ds = ray.data.from_items([{"path": x} for x in paths]).map_batches(
        EmbedVideos,
        fn_constructor_kwargs={"bundle": args.bundle, "outputs": ["video_global"]},
        batch_size=8,
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(paths))),
        num_cpus=args.actor_cpus,
        batch_format="numpy",
    )
    ok, failed = [], []
    for row in ds.iter_rows():
        (ok if row["status"] == "ok" else failed).append(row)
        print(f"{row['status']:6}  {row['path']}  {row['error']}".rstrip())
    print(
        f"{len(ok)} embedded, {len(failed)} failed; ONNX Runtime threads per actor: {ok[0]['ort_threads'] if ok else '-'}"
    )
    if args.output and ok:
        np.save(args.output, np.stack([np.asarray(r["video_global"])[0] for r in ok]))
        print(f"pooled embeddings [{len(ok)}, E] -> {args.output}")


if __name__ == "__main__":
    main()
