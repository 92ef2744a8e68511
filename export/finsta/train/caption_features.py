"""Backbone features of captioned real videos (data kind ``captions``), cached per segment.

Each distinct segment (video content, start, end) is decoded and sampled by the runtime's own
``finsta_rt.video.read_frames`` with the bundle's preprocessing, run through the frozen frame
backbone once and written to ``CACHE/segments/KEY.npy`` atomically (a temporary renamed into place), so a
second run decodes nothing and an interrupted one loses only the segment in flight. The key covers
the file's content hash, the segment, the sampling, the preprocessing, the backbone and the version.

A missing or undecodable video is no error: its rows are skipped and logged to the run's
``errors.jsonl`` (an undecodable one is remembered in the cache, so it is not decoded again); a split
needs ``min_rows`` usable rows. Train and val must not share a video (same file or same content)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from finsta_rt.video import VideoError, read_frames

from .. import __version__
from ..data.caption_files import CaptionRow, read_captions
from .config import DataConfig, TrainConfig
from .features import Backbones, FeatureSet, RowView, encode_texts

log = logging.getLogger(__name__)

ERRORS_FILE = "errors.jsonl"
SEGMENT_VERSION = 1  # bump when what a segment file holds changes


class DataError(ValueError):
    """The captions data cannot be trained on (too few usable rows, train/val sharing a video)."""


@dataclass
class _Rows:
    """A split's rows with what the checks found: each row's content hash (None: the video is missing)."""

    file: Path
    rows: list[CaptionRow]
    digest: list[str | None]


def content_hash(path: Path, cache: Path) -> str:
    """sha256 of a file's bytes, remembered in ``cache/hashes`` by (path, size, mtime): a second run
    hashes nothing unless the file changed."""
    st = path.stat()
    memo = cache / "hashes" / hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    _write_atomic(memo, h.hexdigest().encode())
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Writes ``data`` (bytes, or a function writing to the open file) to a temporary beside ``path``
    and renames it into place: ``path`` is whole or absent, whenever the run stops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            data(f) if callable(data) else f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split_file(d: DataConfig, split: str) -> Path:
    return Path(d.train if split == "train" else d.val)


def read_split(d: DataConfig, split: str, cache: Path) -> _Rows:
    """The split's checked rows (CaptionFileError names file:line) and each video's content hash."""
    path = split_file(d, split)
    rows = read_captions(path, format=d.format, columns=d.columns or None)
    digests: dict[Path, str | None] = {}
    for r in rows:
        if r.video not in digests:
            digests[r.video] = content_hash(r.video, cache) if r.video.is_file() else None
    return _Rows(path, rows, [digests[r.video] for r in rows])


def check_disjoint(train: _Rows, val: _Rows) -> None:
    """Train and val must not share a video: the same resolved file or the same content."""
    seen_path: dict[Path, CaptionRow] = {}
    seen_hash: dict[str, CaptionRow] = {}
    for r, h in zip(train.rows, train.digest):  # the first train row of each video is the one named
        seen_path.setdefault(r.video, r)
        if h is not None:
            seen_hash.setdefault(h, r)
    for r, h in zip(val.rows, val.digest):
        other = seen_path.get(r.video) or (seen_hash.get(h) if h is not None else None)
        if other is not None:
            same = "the same file" if other.video == r.video else f"the same content ({other.video} and {r.video})"
            raise DataError(
                f"train row {other.where} and val row {r.where} share a video ({same}): held-out videos must be "
                "new; move every row of that video to one split"
            )


def _segment_key(cfg: TrainConfig, bb: Backbones, digest: str, row: CaptionRow, sampling: str) -> str:
    ident = {
        "v": __version__,
        "segment_version": SEGMENT_VERSION,
        "content": digest,
        "start": row.start,
        "end": row.end,
        "sampling": sampling,
        "frames": bb.preprocess.frames,
        "pre": bb.preprocess.to_dict(),
        "frame": bb.identity[0] or cfg.frame_backbone,  # a plug-in's files by content
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def log_error(cfg: TrainConfig, entry: dict) -> None:
    """One line of the run's errors.jsonl (file, where, video, reason)."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ERRORS_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


@torch.no_grad()
def _encode_segment(bb: Backbones, row: CaptionRow, sampling: str, dest: Path) -> None:
    """Decodes one segment, runs the frame backbone, writes float16 tokens [1, T, 1 + P, C] to ``dest``."""
    window = None if row.start is None else (row.start, row.end)
    clip = read_frames(row.video, sampling, window=window, transform=bb.preprocess)
    T = bb.preprocess.frames
    if clip.frames.shape[0] != T:
        raise VideoError(row.video, f"{clip.frames.shape[0]} frames decoded for the segment, {T} needed")
    tokens = bb.encoder(torch.from_numpy(np.ascontiguousarray(clip.frames[None]))).numpy().astype(np.float16)
    _write_atomic(dest, lambda f: np.save(f, tokens))


def caption_features(cfg: TrainConfig, d: DataConfig, split: str, bb: Backbones) -> FeatureSet:
    """The features of a captions split: one row per usable caption, its segment's tokens shared."""
    cache = Path(cfg.cache)
    train, val = read_split(d, "train", cache), read_split(d, "val", cache)
    check_disjoint(train, val)
    rs = train if split == "train" else val
    sampling = f"{bb.preprocess.sampling}:{bb.preprocess.frames}"
    seg_dir = cache / "segments"

    keys: dict[tuple[str, float | None, float | None], str] = {}
    first_row: dict[str, CaptionRow] = {}
    row_key: list[str | None] = []
    dropped: list[tuple[CaptionRow, str]] = []
    for r, h in zip(rs.rows, rs.digest):
        if h is None:
            dropped.append((r, "video not found" if not r.video.exists() else "not a file"))
            row_key.append(None)
            continue
        k = keys.setdefault((h, r.start, r.end), _segment_key(cfg, bb, h, r, sampling))
        first_row.setdefault(k, r)
        row_key.append(k)

    todo = [k for k in first_row if not (seg_dir / f"{k}.npy").is_file() and not (seg_dir / f"{k}.error").is_file()]
    if todo:
        log.info(
            "caching %s features of %d %s segments (%d cached) in %s",
            cfg.frame_backbone,
            len(todo),
            split,
            len(first_row) - len(todo),
            seg_dir,
        )
    t0 = last = time.monotonic()
    transient: dict[str, str] = {}  # failures of this run only: the file vanished, or the disk failed
    for i, k in enumerate(todo):
        row = first_row[k]
        try:
            _encode_segment(bb, row, sampling, seg_dir / f"{k}.npy")
        except VideoError as e:
            if not row.video.is_file():  # gone since it was hashed: says nothing about its content
                transient[k] = e.reason
            else:  # undecodable content: remembered (the key holds its hash), so no second run decodes it
                _write_atomic(seg_dir / f"{k}.error", e.reason.encode())
        except OSError as e:
            transient[k] = str(e)
        now = time.monotonic()
        if now - last > 5 or i + 1 == len(todo):
            last = now
            log.info(
                "  %d/%d segments, %.0f s, eta %.0f s",
                i + 1,
                len(todo),
                now - t0,
                (now - t0) / (i + 1) * (len(todo) - i - 1),
            )

    bad = {k: (seg_dir / f"{k}.error").read_text() for k in first_row if (seg_dir / f"{k}.error").is_file()}
    bad.update(transient)
    keep: list[int] = []
    for i, (r, k) in enumerate(zip(rs.rows, row_key)):
        if k is None:
            continue
        if k in bad:
            dropped.append((r, f"undecodable: {bad[k]}"))
        else:
            keep.append(i)
    for r, reason in dropped:
        log_error(
            cfg, {"split": split, "file": str(rs.file), "where": r.where, "video": str(r.video), "reason": reason}
        )
    if dropped:
        videos = len({r.video for r, _ in dropped})
        log.warning(
            "%s: dropped %d of %d rows (%d videos missing or undecodable; see %s)",
            rs.file,
            len(dropped),
            len(rs.rows),
            videos,
            Path(cfg.output) / ERRORS_FILE,
        )
    if len(keep) < d.min_rows:
        raise DataError(
            f"{rs.file}: {len(keep)} usable rows of {len(rs.rows)} ({len(dropped)} dropped, see "
            f"{Path(cfg.output) / ERRORS_FILE}); data.min_rows is {d.min_rows}"
        )

    seg_ids = {k: j for j, k in enumerate(dict.fromkeys(row_key[i] for i in keep))}
    vid_ids = {h: j for j, h in enumerate(dict.fromkeys(rs.digest[i] for i in keep))}
    bases = [np.load(seg_dir / f"{k}.npy", mmap_mode="r") for k in seg_ids]
    captions = [rs.rows[i].caption for i in keep]
    text, mask = _text_features(cfg, bb, captions)
    n = len(keep)
    return FeatureSet(
        RowView(bases, np.array([seg_ids[row_key[i]] for i in keep]), np.zeros(n, np.int64)),
        np.repeat(text[:, None], 3, axis=1),  # no order/attribute negatives: the caption stands in (hard False)
        np.repeat(mask[:, None], 3, axis=1),
        [[c, c, c] for c in captions],
        np.array([vid_ids[rs.digest[i]] for i in keep]),
        np.array([seg_ids[row_key[i]] for i in keep]),
        np.zeros(n, bool),
    )


def _text_features(cfg: TrainConfig, bb: Backbones, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Text-backbone features of the captions, cached by (captions, text backbone, max_length, version)."""
    ident = json.dumps([__version__, bb.identity[1] or cfg.text_backbone, bb.tokenizer.max_length, captions])
    path = Path(cfg.cache) / "caption_text" / f"{hashlib.sha256(ident.encode()).hexdigest()[:24]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["text"], z["mask"]
    text, mask = encode_texts(bb, captions)
    _write_atomic(path, lambda f: np.savez(f, text=text, mask=mask))
    return text, mask
