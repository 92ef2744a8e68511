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

from finsta_rt.clip_tokenizer import ClipBpeTokenizer
from finsta_rt.preprocess import Preprocess
from finsta_rt.tokenizer import WordPieceTokenizer

from .. import __version__
from ..models.towers import FrameEncoder
from .config import DataConfig, TrainConfig

log = logging.getLogger(__name__)

CAPTION_KINDS = ("caption", "order", "attribute")  # column order of the cached text features


@dataclass
class Backbones:
    frame: torch.nn.Module
    text: torch.nn.Module
    encoder: FrameEncoder
    preprocess: Preprocess
    tokenizer: WordPieceTokenizer | ClipBpeTokenizer
    identity: tuple[str, str] = ("", "")  # what feature caches key on: the frame and text backbones' identities


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
    """The frozen backbones named by the config (built-in names or plug-ins), their preprocessing and
    tokenizer. An ONNX frame encoder runs in ONNX Runtime: the cached features come through it."""
    from ..models.backbones.plugin import build_backbone, cache_identity

    frame, text = build_backbone("frame", cfg.frame_backbone), build_backbone("text", cfg.text_backbone)
    pre = frame_preprocess(frame, cfg.data.frames)
    identity = (cache_identity(cfg.frame_backbone), cache_identity(cfg.text_backbone))
    return Backbones(frame, text, FrameEncoder(frame, pre.mean, pre.std).eval(), pre, text.config.tokenizer(), identity)


class RowView:
    """Rows of several arrays as one read-only [N, ...] array: row r is ``bases[which[r]][index[r]]``.

    Caption rows share their segment's tokens (many captions, one segment) and a mixed set joins its
    parts' arrays, without copying the (memory-mapped) tokens; it takes the indexing the families use:
    an int, a slice or an int array."""

    def __init__(self, bases: list[np.ndarray], which: np.ndarray, index: np.ndarray):
        self.bases, self.which, self.index = bases, np.asarray(which, np.int64), np.asarray(index, np.int64)
        self.shape = (len(self.which), *bases[0].shape[1:])
        self.dtype = bases[0].dtype
        self.ndim = len(self.shape)

    @classmethod
    def of(cls, a: np.ndarray | RowView) -> RowView:
        return a if isinstance(a, RowView) else cls([a], np.zeros(len(a), np.int64), np.arange(len(a)))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.bases[self.which[key]][self.index[key]])
        rows = np.arange(len(self))[key]
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        w, ix = self.which[rows], self.index[rows]
        for b in np.unique(w):
            sel = w == b
            out[sel] = self.bases[b][ix[sel]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take(self, rows: np.ndarray) -> RowView:
        return RowView(self.bases, self.which[rows], self.index[rows])


@dataclass
class Part:
    """A part of a FeatureSet: rows [start, stop) came from data section ``name`` of ``kind``."""

    name: str
    kind: str
    start: int
    stop: int


@dataclass
class FeatureSet:
    """Cached features of a split, one row per caption. Synthetic rows are one video each; caption rows
    share their segment (``segment``) and video (``video``, its content) with the other captions of it."""

    tokens: np.ndarray | RowView  # float16 [N, T, 1 + P, C] frame-backbone tokens (memory-mapped)
    text: np.ndarray  # float16 [N, 3, S, Ct] text-backbone token features: caption, order neg, attribute neg
    mask: np.ndarray  # int64 [N, 3, S]
    texts: list[list[str]]  # [N][3]
    video: np.ndarray | None = None  # int64 [N] video id (default: every row its own)
    segment: np.ndarray | None = None  # int64 [N] segment id: rows of one segment are each other's positives
    hard: np.ndarray | None = None  # bool [N]: the row's order/attribute negatives are real (synthetic)
    parts: list[Part] | None = None  # default: one synthetic part

    def __post_init__(self) -> None:
        n = len(self)
        self.video = np.arange(n) if self.video is None else np.asarray(self.video, np.int64)
        self.segment = np.arange(n) if self.segment is None else np.asarray(self.segment, np.int64)
        self.hard = np.ones(n, bool) if self.hard is None else np.asarray(self.hard, bool)
        self.parts = [Part("synthetic", "synthetic", 0, n)] if self.parts is None else self.parts

    def __len__(self) -> int:
        return self.tokens.shape[0]


def join(sets: list[tuple[str, str, FeatureSet]], repeats: list[int] | None = None) -> FeatureSet:
    """One FeatureSet of (name, kind, set) parts, part i's rows ``repeats[i]`` times; video and
    segment ids stay distinct across parts."""
    repeats = repeats or [1] * len(sets)
    bases: list[np.ndarray] = []
    which, index, text, mask, texts, video, segment, hard, parts = [], [], [], [], [], [], [], [], []
    start = v_off = s_off = 0
    for (name, kind, fs), rep in zip(sets, repeats):
        rows = np.tile(np.arange(len(fs)), rep)
        view = RowView.of(fs.tokens).take(rows)
        which.append(view.which + len(bases))
        index.append(view.index)
        bases += view.bases
        text.append(fs.text[rows])
        mask.append(fs.mask[rows])
        texts += [fs.texts[r] for r in rows]
        video.append(fs.video[rows] + v_off)
        segment.append(fs.segment[rows] + s_off)
        hard.append(fs.hard[rows])
        parts.append(Part(name, kind, start, start + len(rows)))
        start += len(rows)
        v_off, s_off = v_off + int(fs.video.max()) + 1, s_off + int(fs.segment.max()) + 1
    return FeatureSet(
        RowView(bases, np.concatenate(which), np.concatenate(index)),
        np.concatenate(text),
        np.concatenate(mask),
        texts,
        np.concatenate(video),
        np.concatenate(segment),
        np.concatenate(hard),
        parts,
    )


def synthetic_split(cfg: TrainConfig | DataConfig, split: str):
    """The synthetic videos of a split: of ``cfg.data`` (a synthetic section) or of the section given."""
    from ..data.synthetic import SyntheticVideoDataset

    d = cfg.data if isinstance(cfg, TrainConfig) else cfg
    n, seed = (d.train, d.seed) if split == "train" else (d.val, d.val_seed)
    return SyntheticVideoDataset(n, seed=seed, frames=d.frames, size=d.size)


def _key(cfg: TrainConfig, d: DataConfig, split: str, bb: Backbones) -> str:
    n, seed = (d.train, d.seed) if split == "train" else (d.val, d.val_seed)
    ident = {
        "v": __version__,
        "kind": d.kind,
        "n": n,
        "seed": seed,
        "frames": d.frames,
        "size": d.size,
        "frame": bb.identity[0] or cfg.frame_backbone,
        "text": bb.identity[1] or cfg.text_backbone,
        "pre": bb.preprocess.to_dict(),
        "max_length": bb.tokenizer.max_length,
    }
    return f"{split}-{hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]}"


@torch.no_grad()
def synthetic_features(cfg: TrainConfig, d: DataConfig, split: str, bb: Backbones, batch: int = 8) -> FeatureSet:
    """Loads the synthetic split's cached features, computing them first if needed (atomically)."""
    root = Path(cfg.cache) / _key(cfg, d, split, bb)
    if not (root / "done").is_file():
        _compute(cfg, d, split, bb, root, batch)
    texts = json.loads((root / "texts.json").read_text())
    return FeatureSet(
        np.load(root / "tokens.npy", mmap_mode="r"), np.load(root / "text.npy"), np.load(root / "mask.npy"), texts
    )


@torch.no_grad()
def encode_texts(bb: Backbones, flat: list[str], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Text-backbone token features float16 [N, S, Ct] and mask [N, S] of ``flat`` (padded to max_length)."""
    ids, mask = bb.tokenizer(flat, padding="max_length")
    feats = []
    for i in range(0, len(flat), batch):
        f, _ = bb.text(torch.from_numpy(ids[i : i + batch]), torch.from_numpy(mask[i : i + batch]))
        feats.append(f.numpy().astype(np.float16))
    return np.concatenate(feats), mask


def _compute(cfg: TrainConfig, d: DataConfig, split: str, bb: Backbones, root: Path, batch: int) -> None:
    data = synthetic_split(d, split)
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
    feats, mask = encode_texts(bb, flat)
    S = mask.shape[1]
    np.save(tmp / "text.npy", feats.reshape(n, 3, S, -1))
    np.save(tmp / "mask.npy", mask.reshape(n, 3, S))
    (tmp / "texts.json").write_text(json.dumps(texts))
    (tmp / "done").write_text(f"{time.monotonic() - t0:.1f}\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log.info("cached %s features in %.0f s", split, time.monotonic() - t0)
