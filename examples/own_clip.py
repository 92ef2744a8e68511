"""Your own CLIP as the backbone: a tiny random transformers CLIPModel saved locally (save_pretrained),
STGT heads trained on it for about a minute, the bundle exported and scored with finsta-rt.

    .venv/bin/python examples/own_clip.py [--out build/own_clip] [--minutes 1]

With a real CLIP, point ``frame_backbone`` / ``text_backbone`` at its ``save_pretrained`` directory
(``hf-clip:DIR``; config.json, model.safetensors, vocab.json, merges.txt) and set ``data`` to your captions.
Nothing is downloaded: the tiny CLIP is random and its tokenizer is CLIP's BPE cut to 2,000 merges.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import numpy as np

from finsta import families
from finsta.export import ExportSpec, export_bundle
from finsta.models.backbones import save_tiny_random_clip
from finsta.models.towers import TextTower, VideoTower
from finsta.train.config import parse_config
from finsta.train.features import build_backbones
from finsta_rt import Model, cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("build/own_clip"))
    ap.add_argument("--minutes", type=float, default=1.0, help="training budget")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out
    shutil.rmtree(out, ignore_errors=True)

    clip = save_tiny_random_clip(out / "tiny-clip")  # stands for your CLIP's save_pretrained directory
    cfg = parse_config(
        {
            "name": "own-clip",
            "family": "stgt",
            "frame_backbone": f"hf-clip:{clip}",
            "text_backbone": f"hf-clip:{clip}",
            "data": {"kind": "synthetic", "train": 200, "val": 50, "seed": 0, "val_seed": 7, "frames": 4, "size": 32},
            "model": {"dim": 32, "heads": 4, "queries": 2, "query_layers": 1, "embed_dim": 32},
            "optim": {"epochs": 100, "batch_size": 16, "lr": 1e-3, "max_minutes": args.minutes, "eval_every": 5},
            "output": str(out / "run"),
            "cache": str(out / "cache"),
        },
        "examples/own_clip.py",
    )
    result = families.train(cfg, resume=False)
    print(
        f"trained {result.epochs:.0f} epochs in {result.train_seconds:.0f} s: held-out R@1 {result.metrics['r1']:.3f}"
    )

    # export the run's own towers with the public API: the bundle carries CLIP's vocab.json + merges.txt
    heads, cfg, metrics = families.load_run(out / "run")
    bb = build_backbones(cfg)
    spec = ExportSpec.for_text_backbone(
        "stgt", "own-clip", bb.preprocess, bb.text.config, {"stgt": heads.cfg.to_dict(), "held_out_metrics": metrics}
    )
    video, text = VideoTower(bb.encoder, heads.video), TextTower(bb.text, heads.text)
    bundle = export_bundle(video, text, spec, out_dir=out / "bundle", overwrite=True)  # verified against PyTorch

    # score with finsta-rt (no torch needed there): a held-out synthetic clip and its captions
    from finsta.train.features import synthetic_split

    item = synthetic_split(cfg, "val")[0]
    m = Model(bundle, device="cpu")
    frames = m.bundle.preprocess(item.frames)[None]
    texts = [item.caption, item.negatives["order"], item.negatives["attribute"], "a small red circle moves left"]
    scores = m.score(m.embed_frames(frames)["video_embedding"], m.embed_text(texts))[:, 0]
    for rank, i in enumerate(np.argsort(-scores), 1):
        print(f"{rank:4d} {scores[i]:8.4f}  {texts[i]}")
    cli.main(["info", str(bundle)])


if __name__ == "__main__":
    main()
