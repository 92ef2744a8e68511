"""Frozen backbones run once: their features for a data split are cached on disk, so that CPU
training only runs the structural heads. The cache key covers everything the features depend on."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from finsta_rt.preprocess import Preprocess
from finsta_rt.tokenizer import WordPieceTokenizer

from .. import __version__
from ..models.towers import FrameEncoder
from .config import TrainConfig

log = logging.getLogger(__name__)

CAPTION_KINDS = ("caption", "order", "attribute")  # column order of the cached text features


@dataclass
class Backbones:
    frame: torch.nn.Module
    text: torch.nn.Module
    encoder: FrameEncoder
    preprocess: Preprocess
    tokenizer: WordPieceTokenizer


def frame_preprocess(frame_backbone, frames: int) -> Preprocess:
    """The bundle's preprocessing for a frame backbone: its resize, crop and mean/std, T = ``frames``."""
    fp = frame_backbone.preprocess
    return Preprocess(
        size=fp.size,
        resize=fp.resize,
        interpolation=fp.interpolation,
        mean=tuple(fp.mean),
        std=tuple(fp.std),
        frames=frames,
    )


def build_backbones(cfg: TrainConfig) -> Backbones:
    """The frozen backbones named by the config, their preprocessing and tokenizer."""
    from ..models.backbones import FRAME_BACKBONES, TEXT_BACKBONES

    frame, text = FRAME_BACKBONES[cfg.frame_backbone](), TEXT_BACKBONES[cfg.text_backbone]()
    for m in (frame, text):
        m.eval().requires_grad_(False)
    pre = frame_preprocess(frame, cfg.data.frames)
    tc = text.config
    tok = WordPieceTokenizer.from_vocab_file(tc.vocab_file, lowercase=tc.lowercase, max_length=tc.max_length)
    return Backbones(frame, text, FrameEncoder(frame, pre.mean, pre.std).eval(), pre, tok)


@dataclass
class FeatureSet:
    tokens: np.ndarray  # float16 [N, T, 1 + P, C] frame-backbone tokens (memory-mapped)
    text: np.ndarray  # float16 [N, 3, S, Ct] text-backbone token features: caption, order neg, attribute neg
    mask: np.ndarray  # int64 [N, 3, S]
    texts: list[list[str]]  # [N][3]

    def __len__(self) -> int:
        return self.tokens.shape[0]


def synthetic_split(cfg: TrainConfig, split: str):
    from ..data.synthetic import SyntheticVideoDataset

    d = cfg.data
    n, seed = (d.train, d.seed) if split == "train" else (d.val, d.val_seed)
    return SyntheticVideoDataset(n, seed=seed, frames=d.frames, size=d.size)


def _key(cfg: TrainConfig, split: str, bb: Backbones) -> str:
    d = cfg.data
    n, seed = (d.train, d.seed) if split == "train" else (d.val, d.val_seed)
    ident = {
        "v": __version__,
        "kind": d.kind,
        "n": n,
        "seed": seed,
        "frames": d.frames,
        "size": d.size,
        "frame": cfg.frame_backbone,
        "text": cfg.text_backbone,
        "pre": bb.preprocess.to_dict(),
        "max_length": bb.tokenizer.max_length,
    }
    return f"{split}-{hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]}"


@torch.no_grad()
def cache_features(cfg: TrainConfig, split: str, bb: Backbones, batch: int = 8) -> FeatureSet:
    """Loads the split's cached features, computing them first if needed (atomically)."""
    root = Path(cfg.cache) / _key(cfg, split, bb)
    if not (root / "done").is_file():
        _compute(cfg, split, bb, root, batch)
    texts = json.loads((root / "texts.json").read_text())
    return FeatureSet(
        np.load(root / "tokens.npy", mmap_mode="r"), np.load(root / "text.npy"), np.load(root / "mask.npy"), texts
    )


def _compute(cfg: TrainConfig, split: str, bb: Backbones, root: Path, batch: int) -> None:
    data = synthetic_split(cfg, split)
    n = len(data)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    first = bb.encoder(torch.from_numpy(bb.preprocess(data[0].frames)[None]))
    tokens = np.lib.format.open_memmap(tmp / "tokens.npy", mode="w+", dtype=np.float16, shape=(n, *first.shape[1:]))
    texts: list[list[str]] = []
    t0 = time.monotonic()
    log.info("caching %s features for %d %s videos in %s", cfg.frame_backbone, n, split, root)
    for i in range(0, n, batch):
        items = [data[j] for j in range(i, min(n, i + batch))]
        frames = np.stack([bb.preprocess(it.frames) for it in items])
        tokens[i : i + len(items)] = bb.encoder(torch.from_numpy(frames)).numpy().astype(np.float16)
        texts += [[it.caption, it.negatives["order"], it.negatives["attribute"]] for it in items]
        if (i // batch) % 25 == 0:
            done = i + len(items)
            log.info(
                "  %d/%d videos, %.0f s, eta %.0f s",
                done,
                n,
                time.monotonic() - t0,
                (time.monotonic() - t0) / done * (n - done),
            )
    tokens.flush()
    del tokens
    flat = [t for row in texts for t in row]
    ids, mask = bb.tokenizer(flat, padding="max_length")
    feats = []
    for i in range(0, len(flat), 256):
        f, _ = bb.text(torch.from_numpy(ids[i : i + 256]), torch.from_numpy(mask[i : i + 256]))
        feats.append(f.numpy().astype(np.float16))
    S = ids.shape[1]
    np.save(tmp / "text.npy", np.concatenate(feats).reshape(n, 3, S, -1))
    np.save(tmp / "mask.npy", mask.reshape(n, 3, S))
    (tmp / "texts.json").write_text(json.dumps(texts))
    (tmp / "done").write_text(f"{time.monotonic() - t0:.1f}\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log.info("cached %s features in %.0f s", split, time.monotonic() - t0)
