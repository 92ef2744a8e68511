#!/usr/bin/env python3
"""Feature agreement across containers and codecs: iscc-samples ships one real 60 s clip in 21
containers. Extracts them all with a bundle and prints, per file, the status and the cosine of
its pooled video embedding against the H.264 mp4's (decode failures are listed, not fatal).

    python benchmarks/bench_containers.py bundles/stgt
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np


def container_table(
    bundle: str, sampling: str | None = None, device: str = "cpu"
) -> list[tuple[str, str, float | None, str]]:
    from finsta_rt.extract import extract, read_manifest
    from finsta_rt.model import Model

    d = Path(importlib.util.find_spec("iscc_samples").origin).parent / "files" / "video"
    files = sorted(d.iterdir())
    model = Model(bundle, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        extract(model, files, out, sampling=sampling, progress=False)
        rows = {Path(r["path"]).name: r for r in read_manifest(out).values()}

        def pooled(name: str) -> np.ndarray:
            a = np.load(out / rows[name]["file"]).mean(axis=0)
            return a / np.linalg.norm(a)

        ref = pooled("demo.mp4")
        table = []
        for f in files:
            r = rows[f.name]
            if r["status"] == "ok":
                table.append((f.name, "ok", float(pooled(f.name) @ ref), ""))
            else:
                table.append((f.name, "failed", None, r["error"].split(": ", 1)[-1][:70]))
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--sampling")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"{'file':<12} {'status':<7} {'cosine vs demo.mp4':>18}  note")
    for name, status, c, note in container_table(args.bundle, args.sampling, args.device):
        print(f"{name:<12} {status:<7} {'' if c is None else f'{c:.4f}':>18}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
