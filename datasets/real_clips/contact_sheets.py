"""Render contact sheets of the real clips that train.jsonl and val.jsonl caption, so the captions can be checked by eye.

Each sheet is a PNG grid of frames sampled every ``--step`` seconds, each tile labelled with its timestamp.
Needs PyAV, numpy and ``finsta.data.caption_files`` (stdlib only; the PNG encoder and the digit font are below);
no torch, no PIL.

    make real-clips   # once: the Debian and gradio clips into .cache/real_clips
    .venv/bin/python datasets/real_clips/contact_sheets.py --check
    .venv/bin/python datasets/real_clips/contact_sheets.py --out /tmp/sheets
    .venv/bin/python datasets/real_clips/contact_sheets.py --out /tmp/sheets --step 0.25 --only bikes
    .venv/bin/python datasets/real_clips/contact_sheets.py --out /tmp/sheets --segments   # one sheet per segment

Rows are read and their ``video`` references resolved by ``finsta.data.caption_files`` (``read_captions``,
``resolve_video``: ``pkg:``/``deb:`` references, the media root ``$FINSTA_MEDIA_ROOT`` or the nearest
``.cache/real_clips``, ``.gz`` gunzipped once; docs/data.md).
"""

from __future__ import annotations

import argparse
import logging
import struct
import sys
import zlib
from pathlib import Path

import av
import numpy as np

from finsta.data.caption_files import CaptionFileError, CaptionRow, read_captions, resolve_video

log = logging.getLogger("contact_sheets")
HERE = Path(__file__).resolve().parent

# 3x5 bitmap digits (rows top to bottom, 3 bits per row) for tile labels.
_FONT = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "s": (0, 3, 6, 3, 6),
    "-": (0, 0, 7, 0, 0), " ": (0, 0, 0, 0, 0),
}  # fmt: skip


def duration_s(path: Path) -> float:
    """Clip length in seconds on the caption clock: last frame's time - first frame's time + one frame."""
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        times = [float(f.time) for f in box.decode(stream) if f.time is not None]
    if not times:
        raise ValueError(f"{path}: no decodable video frames")
    rate = float(stream.average_rate or 0) or 25.0
    return max(times) - times[0] + 1.0 / rate


def sample(path: Path, times: list[float], width: int) -> list[tuple[float, np.ndarray]]:
    """Decode the clip once and keep the first frame at or after each requested time, resized to ``width``."""
    out: list[tuple[float, np.ndarray]] = []
    wanted = sorted(times)
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        sar = stream.codec_context.sample_aspect_ratio
        aspect = float(sar) if sar else 1.0  # keep the display aspect (1 for nearly every clip here)
        t0 = None
        for frame in box.decode(stream):
            t0 = float(frame.time or 0.0) if t0 is None else t0
            t = float(frame.time or 0.0) - t0  # caption times count from the first frame (cityCC0 starts at 0.54)
            if wanted and t + 1e-6 >= wanted[0]:
                height = max(2, round(frame.height * width / (frame.width * aspect)))
                out.append((t, frame.to_ndarray(format="rgb24", width=width, height=height)))
                while wanted and t + 1e-6 >= wanted[0]:
                    wanted.pop(0)
            if not wanted:
                break
    return out


def label(tile: np.ndarray, text: str, scale: int = 2) -> None:
    """Draw ``text`` (digits, '.', 's', '-') in white on a black box at the tile's top-left, in place."""
    h, w = 5 * scale + 4, (4 * len(text)) * scale + 4
    tile[:h, :w] = 0
    for i, ch in enumerate(text):
        for r, bits in enumerate(_FONT.get(ch, _FONT[" "])):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    y, x = 2 + r * scale, 2 + (4 * i + c) * scale
                    tile[y : y + scale, x : x + scale] = 255


def grid(tiles: list[tuple[float, np.ndarray]], cols: int) -> np.ndarray:
    """Lay out labelled tiles in rows of ``cols`` with a 4-pixel grey gutter."""
    th = max(t.shape[0] for _, t in tiles)
    tw = max(t.shape[1] for _, t in tiles)
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * (th + 4) + 4, cols * (tw + 4) + 4, 3), 96, np.uint8)
    for k, (t, img) in enumerate(tiles):
        img = img.copy()
        label(img, f"{t:.2f}s")
        y, x = 4 + (k // cols) * (th + 4), 4 + (k % cols) * (tw + 4)
        sheet[y : y + img.shape[0], x : x + img.shape[1]] = img
    return sheet


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Minimal 8-bit RGB PNG encoder (filter 0 per row, zlib)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def check(rows: list[CaptionRow], path: Path, dur: float) -> int:
    """Problems with one clip's rows (logged): segments inside the clip and 1-10 s long."""
    bad = 0
    for r in rows:
        a, b = (0.0, dur) if r.start is None else (r.start, r.end)
        if not (0 <= a < b <= dur + 1e-6):
            log.error("%s: %s [%s, %s]: outside 0..%.3f s", r.where, path.name, a, b, dur)
            bad += 1
        elif not 1.0 - 1e-6 <= b - a <= 10.0 + 1e-6:
            log.error("%s: %s [%s, %s]: segments must be 1-10 s long", r.where, path.name, a, b)
            bad += 1
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sheets"), help="output folder (keep it outside the repo)")
    ap.add_argument("--captions", type=Path, nargs="*", default=[HERE / "train.jsonl", HERE / "val.jsonl"])
    ap.add_argument("--step", type=float, default=0.5, help="seconds between sampled frames (whole-clip sheets)")
    ap.add_argument("--width", type=int, default=240, help="tile width in pixels")
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--per-sheet", type=int, default=36, help="tiles per PNG; longer clips get several sheets")
    ap.add_argument("--only", default="", help="substring: render only clips whose name contains it")
    ap.add_argument("--video", nargs="*", default=[], help="clip references (pkg:, deb:, paths) to render instead")
    ap.add_argument("--span", type=float, nargs=2, default=None, help="render only START END seconds of each clip")
    ap.add_argument("--segments", action="store_true", help="one sheet per captioned segment (8 frames each)")
    ap.add_argument(
        "--check", action="store_true", help="verify rows: file, start < end <= duration, 1-10 s, no video in two files"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        per_file = {f: read_captions(f) for f in args.captions}
    except CaptionFileError as e:
        log.error("%s", e)
        return 1
    rows = [r for rs in per_file.values() for r in rs]
    bad = 0
    if args.check:  # the split is by video: no clip may be captioned in two of the files (train and val)
        for f, g in [(f, g) for f in per_file for g in per_file if str(f) < str(g)]:
            for v in sorted({r.video for r in per_file[f]} & {r.video for r in per_file[g]}):
                log.error("%s is captioned in both %s and %s", v, f.name, g.name)
                bad += 1
    videos = [resolve_video(v, HERE) for v in args.video] or sorted(
        {r.video for r in rows if args.only in str(r.video)}
    )
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
    for path in videos:
        if not path.is_file():
            log.error("%s: not found (run `make real-clips`)", path)
            bad += 1
            continue
        dur = duration_s(path)
        stem = path.name.split(".")[0]
        mine = [r for r in rows if r.video == path]
        if args.check:
            bad += check(mine, path, dur)
            log.info("%s: %.3f s, %d rows checked", path.name, dur, len(mine))
            continue
        if args.segments:
            spans = sorted({(r.start or 0.0, dur if r.end is None else r.end) for r in mine})
            for a, b in spans:
                times = [a + (b - a) * k / 8 for k in range(8)]
                write_png(args.out / f"{stem}_{a:06.2f}-{b:06.2f}.png", grid(sample(path, times, args.width), 4))
            log.info("%s: %d segment sheets", path.name, len(spans))
            continue
        a, b = args.span or (0.0, dur)
        times = [a + k * args.step for k in range(int((min(b, dur) - a) / args.step + 1e-9) + 1)]
        for part in range(0, len(times), args.per_sheet):
            chunk = times[part : part + args.per_sheet]
            name = args.out / f"{stem}_{chunk[0]:06.2f}.png"
            tiles = sample(path, chunk, args.width)
            if not tiles:  # sparse clips (GIFs at 1 fps) have no frame left in the last chunk
                continue
            write_png(name, grid(tiles, args.cols))
            log.info("wrote %s", name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
