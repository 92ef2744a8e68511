"""Render contact sheets of the real clips named in captions.jsonl, so the captions can be checked by eye.

Each sheet is a PNG grid of frames sampled every ``--step`` seconds, each tile labelled with its timestamp.
Needs only PyAV and numpy (the PNG encoder and the digit font are below); no torch, no PIL.

    .venv/bin/python datasets/real_clips/contact_sheets.py --out /tmp/sheets
    .venv/bin/python datasets/real_clips/contact_sheets.py --out /tmp/sheets --step 0.25 --only bikes
    .venv/bin/python datasets/real_clips/contact_sheets.py --out /tmp/sheets --segments   # one sheet per segment

Clip names are resolved with the scheme in README.md ("pkg:<dist>/<path in site-packages>",
"deb:<package>/<absolute path in the package>"); Debian files are looked for under ``--deb-root``
(where ``dpkg-deb -x <package>.deb <deb-root>/<package>`` unpacked them), then at their system path;
a PyPI file not installed in this environment is looked for under ``--pkg-root``/<dist>/ (an unzipped wheel).
A path ending in ``.gz`` is gunzipped into ``--cache`` first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import struct
import sys
import sysconfig
import zlib
from pathlib import Path

import av
import numpy as np

log = logging.getLogger("contact_sheets")
HERE = Path(__file__).resolve().parent

# 3x5 bitmap digits (rows top to bottom, 3 bits per row) for tile labels.
_FONT = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "s": (0, 3, 6, 3, 6),
    "-": (0, 0, 7, 0, 0), " ": (0, 0, 0, 0, 0),
}  # fmt: skip


def resolve(video: str, deb_root: Path, cache: Path, pkg_root: Path = Path("/tmp/pkg")) -> Path:
    """Map a "pkg:"/"deb:" clip name to a local file (gunzipping ``.gz`` into ``cache``)."""
    scheme, _, rest = video.partition(":")
    if scheme == "pkg":
        dist, _, inner = rest.partition("/")
        roots = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
        roots += [Path(p) for p in sys.path if p.endswith("site-packages")]
        candidates = [r / inner for r in roots] + [pkg_root / dist / inner]
    elif scheme == "deb":
        package, _, inner = rest.partition("/")
        candidates = [deb_root / package / inner, Path("/") / inner]
    else:
        raise ValueError(f"video {video!r}: unknown scheme {scheme!r} (expected 'pkg:' or 'deb:')")
    for path in candidates:
        if path.is_file():
            if path.suffix == ".gz":
                out = cache / path.stem
                if not out.is_file():
                    cache.mkdir(parents=True, exist_ok=True)
                    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                return out
            return path
    raise FileNotFoundError(f"video {video!r}: not found at any of {[str(c) for c in candidates]}")


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


def load_rows(files: list[Path]) -> list[dict]:
    rows = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{f}:{n}: not JSON: {e}") from e
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sheets"), help="output folder (keep it outside the repo)")
    ap.add_argument("--captions", type=Path, nargs="*", default=[HERE / "captions.jsonl"])
    ap.add_argument("--deb-root", type=Path, default=Path("/tmp/deb/x"))
    ap.add_argument("--pkg-root", type=Path, default=Path("/tmp/pkg"), help="<root>/<dist>/ holds unzipped wheels")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/real_clips_cache"))
    ap.add_argument("--step", type=float, default=0.5, help="seconds between sampled frames (whole-clip sheets)")
    ap.add_argument("--width", type=int, default=240, help="tile width in pixels")
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--per-sheet", type=int, default=36, help="tiles per PNG; longer clips get several sheets")
    ap.add_argument("--only", default="", help="substring: render only clips whose name contains it")
    ap.add_argument("--video", nargs="*", default=[], help="clip names to render instead of those in the captions")
    ap.add_argument("--span", type=float, nargs=2, default=None, help="render only START END seconds of each clip")
    ap.add_argument("--segments", action="store_true", help="one sheet per captioned segment (8 frames each)")
    ap.add_argument("--check", action="store_true", help="verify rows: file, start < end <= duration, 1-10 s, split")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows = load_rows(args.captions)
    videos = sorted(set(args.video) or {r["video"] for r in rows if args.only in r["video"]})
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
    bad = 0
    for video in videos:
        path = resolve(video, args.deb_root, args.cache, args.pkg_root)
        dur = duration_s(path)
        stem = Path(video).name.split(".")[0]
        if args.check:
            for r in rows:
                if r["video"] != video:
                    continue
                if not (0 <= r["start"] < r["end"] <= dur + 1e-6):
                    log.error("%s [%s, %s]: outside 0..%.3f s", video, r["start"], r["end"], dur)
                    bad += 1
                elif not 1.0 - 1e-6 <= r["end"] - r["start"] <= 10.0 + 1e-6:
                    log.error("%s [%s, %s]: segments must be 1-10 s long", video, r["start"], r["end"])
                    bad += 1
                if r.get("split") not in ("train", "val") or not str(r.get("caption", "")).strip():
                    log.error("%s [%s, %s]: needs a caption and split 'train'|'val'", video, r["start"], r["end"])
                    bad += 1
            splits = {r.get("split") for r in rows if r["video"] == video}
            if len(splits) > 1:  # the split is by video: a clip's segments must not straddle train and val
                log.error("%s: rows in more than one split %s", video, sorted(map(str, splits)))
                bad += 1
            log.info("%s: %.3f s, %d rows checked", video, dur, sum(r["video"] == video for r in rows))
            continue
        if args.segments:
            spans = sorted({(r["start"], r["end"]) for r in rows if r["video"] == video})
            for a, b in spans:
                times = [a + (b - a) * k / 8 for k in range(8)]
                write_png(args.out / f"{stem}_{a:06.2f}-{b:06.2f}.png", grid(sample(path, times, args.width), 4))
            log.info("%s: %d segment sheets", video, len(spans))
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
