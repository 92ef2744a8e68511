"""Video decoding and frame sampling with PyAV (docs/runtime.md).

Sampling specs (``Sampling.parse``):
    uniform:N    N frames at the centres of N equal time bins over the whole video
    fps:F        one frame every 1/F seconds
    every:K      every K-th decoded frame
    segments:S   S equal segments, each giving one clip of T frames (T from the bundle)
Frames are chosen by timestamp (variable frame rate safe): each target time takes the frame
nearest to it. A packet scan (demuxing, no decoding) says which packet that is, and only the
packets from the keyframe before each chosen one up to it are decoded (video_plan); a file that
disagrees with its scan is decoded in one pass instead. Rotation metadata is applied, any pixel
format is converted to RGB, and each kept frame is transformed (resized, cropped) as soon as it
is decoded, so a 4K video never sits in memory at full size.

A ``window=(start, end)`` restricts any sampling to that segment: seconds counted from the first
decoded frame (the caption files' clock, docs/data.md), so a stream whose first frame is stamped
0.54 s still has its segment 0-1 s at the first second of pictures.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .video_plan import (
    MISSING_PTS,
    WINDOW_EDGE_S,
    PacketTable,
    PlanFailed,
    every_packets,
    nearest_by_seeking,
    nearest_packets,
    read_planned,
    scan_packets,
)

log = logging.getLogger(__name__)

SAMPLING_KINDS = ("uniform", "fps", "every", "segments")
# Packets in a row the decoder may refuse before a one-pass decode ends (a damaged or cut-off file).
MAX_BAD_PACKETS = 64
STILL_IMAGE_CODECS = {
    "png",
    "mjpeg",
    "bmp",
    "tiff",
    "webp",
    "jpeg2000",
    "gif_single",
    "ppm",
    "pgm",
    "pbm",
    "sgi",
    "tga",
}
# Raw elementary streams have no header with a length: FFmpeg guesses their duration from the
# bitrate (0.12 s for a 60 s MPEG-1 stream), so their duration is measured from packet timestamps.
RAW_STREAM_FORMATS = {
    "mpegvideo",
    "h264",
    "hevc",
    "m4v",
    "mjpeg",
    "rawvideo",
    "cavsvideo",
    "vc1",
    "h261",
    "h263",
    "dirac",
    "obu",
    "vvc",
    "avs2",
    "avs3",
}
# Containers whose header duration is not the video stream's span: measured from its packets.
SPAN_FROM_PACKETS = {"matroska"}
STILL_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "ppm_pipe", "pgm_pipe"}


class VideoError(Exception):
    """A video cannot be used; str(e) names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class VideoTimeout(VideoError):
    """Decoding one video took longer than its time limit."""


@dataclass(frozen=True)
class Sampling:
    kind: str
    value: float

    @classmethod
    def parse(cls, spec: str | Sampling) -> Sampling:
        if isinstance(spec, Sampling):
            return spec
        kind, sep, val = str(spec).partition(":")
        kind = kind.strip().lower()
        if kind not in SAMPLING_KINDS or not sep:
            raise ValueError(f"sampling must be one of {', '.join(k + ':VALUE' for k in SAMPLING_KINDS)}, got {spec!r}")
        try:
            v = float(val)
        except ValueError:
            raise ValueError(f"sampling {spec!r}: {val!r} is not a number") from None
        if kind == "fps":
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"sampling {spec!r}: fps must be > 0")
        elif not (v >= 1 and v == int(v)):
            raise ValueError(f"sampling {spec!r}: {kind} takes a whole number >= 1")
        return cls(kind, v)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


@dataclass
class VideoInfo:
    path: str
    container: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    start: float  # seconds
    duration: float  # seconds (0 when unknown)
    frames: int  # from the header (0 when unknown)


@dataclass
class Clip:
    frames: np.ndarray  # uint8 [N, H, W, 3] after the transform
    timestamps: np.ndarray  # float64 [N] seconds of the chosen frames


class _Deadline:
    """The time limit of one video: opening, demuxing (also to measure a stream's span) and decoding."""

    def __init__(self, path, seconds: float | None):
        self.path, self.seconds = path, seconds
        self.end = time.monotonic() + seconds if seconds else None

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() > self.end

    def check(self) -> None:
        if self.expired():
            raise VideoTimeout(self.path, f"timed out after {self.seconds:g} s")

    def av_timeout(self) -> float | None:
        """For av.open: FFmpeg's interrupt callback stops blocking reads (a playlist opening one file
        after another, a huge header) once the time left is spent."""
        return None if self.end is None else max(self.end - time.monotonic(), 0.001)


def _open(path: str | Path, deadline: _Deadline | None = None):
    import av

    p = Path(path)
    if not p.exists():
        raise VideoError(path, "file not found")
    if p.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    if deadline is not None:
        deadline.check()
    try:
        container = av.open(str(p), metadata_errors="ignore", timeout=deadline.av_timeout() if deadline else None)
    except av.FFmpegError as e:  # before PermissionError: FFmpeg's EPERM subclasses both
        if deadline is not None and deadline.expired():  # the interrupt callback stopped it
            raise VideoTimeout(path, f"timed out after {deadline.seconds:g} s") from e
        if isinstance(e, av.error.EOFError):
            raise VideoError(path, "ends before any video data (an empty or cut-off file)") from e
        raise VideoError(path, f"not a readable video ({type(e).__name__}: {e})") from e
    except PermissionError as e:
        raise VideoError(path, f"cannot read: {e.strerror or e}") from e
    except OSError as e:
        raise VideoError(path, f"cannot read: {e}") from e
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(path, f"no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    fmt = container.format.name.split(",")[0]
    if fmt in STILL_IMAGE_FORMATS or (
        stream.codec_context.name in STILL_IMAGE_CODECS and (stream.frames or 0) <= 1 and not container.duration
    ):
        container.close()
        raise VideoError(path, f"is a still image ({stream.codec_context.name}), not a video")
    return container, stream


def _info(path, container, stream) -> VideoInfo:
    tb = float(stream.time_base) if stream.time_base else 0.0
    duration = float(stream.duration * tb) if stream.duration and tb else (container.duration or 0) / 1e6
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    rate = stream.average_rate or stream.guessed_rate
    cc = stream.codec_context
    return VideoInfo(
        str(path),
        container.format.name,
        cc.name,
        cc.format.name if cc.format else "?",
        cc.width,
        cc.height,
        float(rate) if rate else 0.0,
        start,
        max(duration, 0.0),
        int(stream.frames or 0),
    )


def probe(path: str | Path) -> VideoInfo:
    """Header facts of a video; raises VideoError if it is not a usable video."""
    container, stream = _open(path)
    try:
        return _info(path, container, stream)
    finally:
        container.close()


def _packet_table(path, container, stream, deadline: _Deadline) -> PacketTable:
    """The video stream's packets (a demux, no decoding); VideoError when it has none."""
    import av

    try:
        table = scan_packets(container, stream, deadline.check)
    except av.FFmpegError as e:
        deadline.check()  # the interrupt callback stopped a read: that is the timeout
        raise VideoError(path, f"not a readable video ({type(e).__name__}: {e})") from e
    if not (table.pts != MISSING_PTS).any():
        raise VideoError(path, "has no video frames")
    return table


def _packet_span(path, deadline: _Deadline | None = None) -> PacketTable:
    """The packet table, read with a container of its own (some formats cannot seek back)."""
    deadline = deadline or _Deadline(path, None)
    container, stream = _open(path, deadline)
    try:
        return _packet_table(path, container, stream, deadline)
    finally:
        container.close()


def _span(
    path, container, info: VideoInfo, deadline: _Deadline | None = None, table: PacketTable | None = None
) -> tuple[float, float, int]:
    """(start, duration, frames) of the video stream: the header's, or measured from packet timestamps
    when the header has no duration, a guessed one (raw elementary streams), or one that counts from 0
    rather than from the first frame (Matroska: a stream starting at 0.72 s would span 0.72 s too long)."""
    fmt = container.format.name.split(",")[0]
    if info.duration <= 0 or container.format.name in RAW_STREAM_FORMATS or fmt in SPAN_FROM_PACKETS:
        table = table if table is not None else _packet_span(path, deadline)
        return table.start, table.end - table.start, len(table)
    return info.start, info.duration, info.frames


def target_times(sampling: Sampling, start: float, duration: float, frames_per_clip: int = 8) -> np.ndarray:
    """Target timestamps (seconds) for time-based sampling; [S, T] for segments, else [N]."""
    if sampling.kind == "uniform":
        n = int(sampling.value)
        return start + (np.arange(n) + 0.5) * duration / n
    if sampling.kind == "fps":
        n = max(1, int(math.floor(duration * sampling.value + 1e-9)))
        return start + (np.arange(n) + 0.5) / sampling.value
    if sampling.kind == "segments":
        s = int(sampling.value)
        seg = duration / s
        inner = (np.arange(frames_per_clip) + 0.5) * seg / frames_per_clip
        return start + np.arange(s)[:, None] * seg + inner[None, :]
    raise ValueError(f"{sampling} is not time-based")


def _check_window(path, window) -> tuple[float, float]:
    """(start, end) of a segment window, or VideoError naming the file and the window."""
    try:
        a, b = (float(x) for x in window)
    except (TypeError, ValueError):
        raise VideoError(path, f"window {window!r} must be two numbers (start, end) in seconds") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or a >= b:
        raise VideoError(path, f"window [{a:g}, {b:g}] s: needs 0 <= start < end, both finite")
    return a, b


def _first_frame_time(path, deadline: _Deadline) -> float:
    """Time of the first decoded frame (with a container of its own: the caller's may not seek back)."""
    container, stream = _open(path, deadline)
    try:
        for frame in _decode(path, container, stream, deadline):
            return float(frame.time)
    finally:
        container.close()
    raise VideoError(path, "has no decodable video frames")


def _window_span(path, window, start: float, duration: float, fps: float, deadline: _Deadline) -> tuple[float, float]:
    """(start, duration) of ``window`` on the stream's clock, checked against the video: the window may end
    at most one frame period past the stream's span (the caption clock counts the last frame's period)."""
    a, b = _check_window(path, window)
    t0 = _first_frame_time(path, deadline)
    length = start + duration - t0
    slack = (1.0 / fps if fps > 0 else 0.0) + 1e-6
    if a >= length or b > length + slack:
        raise VideoError(
            path, f"window [{a:g}, {b:g}] s is outside the video (0-{length:.3f} s from its first frame at {t0:.3f} s)"
        )
    return t0 + a, b - a


def _to_rgb(frame) -> np.ndarray:
    img = frame.to_ndarray(format="rgb24")
    rot = int(round((frame.rotation or 0) / 90.0)) % 4  # display matrix: counter-clockwise degrees
    return np.ascontiguousarray(np.rot90(img, k=rot)) if rot else img


def _decode(path, container, stream, deadline: _Deadline, max_bad: int = MAX_BAD_PACKETS):
    """Decoded frames with timestamps. A packet the decoder refuses after some frames is skipped (a
    Theora stream refuses some and decodes the rest; a cut-off file's last packet is the common case),
    up to MAX_BAD_PACKETS in a row; one before any frame is the error. The callers then decide whether
    the video stops too early."""
    import av

    n = bad = 0
    for pkt in container.demux(stream):
        if pkt.size == 0 and pkt.pts is not None:  # an empty packet is no frame (Theora: "repeat the last")
            continue  # and the decoder refuses it; the closing flush packet (no pts) drains it
        try:
            frames = pkt.decode()
        except av.FFmpegError as e:
            deadline.check()  # the interrupt callback stopped a read: that is the timeout, not a bad packet
            if n == 0:
                raise VideoError(path, f"decoding failed ({type(e).__name__}: {e})") from e
            bad += 1
            if bad == 1:
                log.warning("%s: the decoder refused a packet after %d frames: %s", path, n, e)
            if bad >= max_bad:
                log.warning("%s: decoding stopped after %d frames and %d refused packets", path, n, bad)
                return
            continue
        bad = 0
        for frame in frames:
            deadline.check()
            if frame.time is not None:
                n += 1
                yield frame


def _decode_to_refusal(path, container, stream, deadline: _Deadline):
    """Decoded frames up to the first packet the decoder refuses (none when it refuses the first)."""
    try:
        yield from _decode(path, container, stream, deadline, max_bad=1)
    except VideoTimeout:
        raise
    except VideoError:
        return


def _check_not_truncated(path, last_time: float | None, targets: np.ndarray, duration: float) -> None:
    """Targets far past the last decodable frame mean the file stops early (cut off or damaged):
    filling them with the last frame would be a silent wrong answer."""
    if last_time is None:
        raise VideoError(path, "has no decodable video frames")
    slack = max(0.5, 0.1 * duration)
    if float(np.max(targets)) - last_time > slack:
        raise VideoError(
            path, f"truncated or damaged: decodable frames stop at {last_time:.2f} s of a {duration:.2f} s video"
        )


def _nearest_in_order(path, container, stream, targets: np.ndarray, deadline, duration: float) -> Iterator:
    """One pass over the video yielding, for each target of ascending ``targets``, the decoded frame
    nearest in time; only the previous frame is held, so memory does not grow with the video."""
    k, prev = 0, None
    for frame in _decode(path, container, stream, deadline):
        t = frame.time
        while k < len(targets) and t >= targets[k]:
            tgt = targets[k]
            yield prev if prev is not None and tgt - prev.time < t - tgt else frame
            k += 1
        if k == len(targets):
            return
        prev = frame
    if k < len(targets):  # targets past the last frame take it, if the video does not stop early
        _check_not_truncated(path, prev.time if prev is not None else None, targets[k:], duration)
    for _ in range(k, len(targets)):
        yield prev


def _nearest_sequential(path, container, stream, targets: np.ndarray, deadline, duration: float) -> list:
    """For each target, the decoded frame nearest in time (one pass over the video)."""
    order = np.argsort(targets, kind="stable")
    chosen: list = [None] * len(targets)
    for j, frame in zip(order, _nearest_in_order(path, container, stream, targets[order], deadline, duration)):
        chosen[j] = frame
    return chosen


def _every_in_window(frames: Iterator, k: int, start: float, duration: float) -> Iterator:
    """Every k-th of the decoded ``frames`` with start <= time < start + duration (ends past the window), to
    WINDOW_EDGE_S at both edges as every_packets."""
    i = 0
    for frame in frames:
        if frame.time >= start + duration - WINDOW_EDGE_S:
            return
        if frame.time >= start - WINDOW_EDGE_S:
            if i % k == 0:
                yield frame
            i += 1


def read_frames(
    path: str | Path,
    sampling: str | Sampling = "uniform:8",
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    frames_per_clip: int = 8,
    threads: str = "AUTO",
    timeout: float | None = None,
    window: tuple[float, float] | None = None,
) -> Clip:
    """Decodes the sampled frames of one video, or of its segment ``window`` = (start, end) seconds
    counted from the first decoded frame (sampling then spans the window only).

    Returns frames [N, H, W, 3] (``segments:S`` gives N = S * frames_per_clip, clip-major), each
    passed through ``transform`` (e.g. ``Preprocess``) right after decoding, and their stream
    timestamps. Raises VideoError (also for a window outside the video).
    """
    import av

    sampling = Sampling.parse(sampling)
    deadline = _Deadline(path, timeout)
    opened = []

    def reopen():
        container, stream = _open(path, deadline)
        opened.append(container)
        stream.thread_type = threads
        return container, stream

    container, stream = reopen()
    try:
        info = _info(path, container, stream)
        table = _packet_table(path, container, stream, deadline)
        start, duration, _ = _span(path, container, info, deadline, table)
        video_duration = duration
        if window is not None:
            start, duration = _window_span(path, window, start, duration, info.fps, deadline)
        if sampling.kind == "every":
            span = (start, start + duration) if window is not None else None
            end = span[1] if span else info.start + info.duration if info.duration > 0 else None
            if table.plannable and end is not None:  # as iter_frames: a file that stops early is an error
                _check_not_truncated(path, float(table.times.max()), np.asarray([end]), video_duration)
            args = (sampling, transform, deadline, reopen, window, span, threads)
            return _read_every(path, container, stream, table, *args)
        targets = target_times(sampling, start, duration, frames_per_clip).reshape(-1)
        if table.plannable:
            _check_not_truncated(path, float(table.times.max()), targets, video_duration)
            try:
                chosen = nearest_packets(table, targets)
                return _clip_by_plan(path, container, stream, table, chosen, transform, deadline, reopen)
            except PlanFailed as e:  # the file disagrees with its scan: one pass from a fresh open decides
                log.debug("%s: decoding by plan failed (%s); decoding in one pass", path, e)
        container, stream = reopen()
        chosen = nearest_by_seeking(container, stream, targets, lambda c, s: _decode_to_refusal(path, c, s, deadline))
        if any(c is None for c in chosen) or float(np.max(targets)) - max(c.time for c in chosen) > 0.5:
            container, stream = reopen()  # a bad index or a cut-off file: one pass decides
            chosen = _nearest_sequential(path, container, stream, targets, deadline, video_duration)
        if not chosen or any(c is None for c in chosen):
            raise VideoError(path, "has no decodable video frames")
        stamps = np.asarray([c.time for c in chosen], np.float64)
        cache: dict[int, np.ndarray] = {}  # one conversion per distinct frame (short videos repeat frames)
        out = []
        for c in chosen:
            if id(c) not in cache:
                cache[id(c)] = _convert(c, transform)
            out.append(cache[id(c)])
        return Clip(np.stack(out), stamps)
    except av.FFmpegError as e:  # any FFmpeg failure not met above still names the file
        deadline.check()
        raise VideoError(path, f"not a readable video ({type(e).__name__}: {e})") from e
    finally:
        for c in opened:
            c.close()


def _convert(frame, transform: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    img = _to_rgb(frame)
    return transform(img) if transform else img


def _clip_by_plan(path, container, stream, table: PacketTable, chosen, transform, deadline, reopen, strict=False):
    """The ``chosen`` packets' frames, decoded by plan (video_plan.read_planned); raises PlanFailed."""
    frames, times, said = read_planned(
        container, stream, table, chosen, lambda f: _convert(f, transform), deadline.check, reopen, strict
    )
    log.debug("%s: %s for %d targets", path, said, len(chosen))
    return Clip(frames, times)


def _read_every(
    path, container, stream, table: PacketTable, sampling, transform, deadline, reopen, window, span, threads
) -> Clip:
    """every:K by plan: the scan says which frames one pass would pick (every K-th in presentation order,
    of those in ``span`` = (start, end) seconds, ``window`` on the stream's clock), and only the packets
    they need are decoded, none past the last. Frames are counted, so a packet the decoder refuses fails
    the plan (strict): one pass (iter_frames) decides then, as for a stream the scan cannot match."""
    if table.plannable:
        chosen = every_packets(table, int(sampling.value), *(span or (None, None)))
        if len(chosen):
            try:
                return _clip_by_plan(path, container, stream, table, chosen, transform, deadline, reopen, strict=True)
            except PlanFailed as e:
                log.debug("%s: decoding by plan failed (%s); decoding in one pass", path, e)
    left = deadline.av_timeout()
    pairs = list(iter_frames(path, sampling, transform=transform, threads=threads, timeout=left, window=window))
    return Clip(np.stack([f for _, f in pairs]), np.asarray([t for t, _ in pairs], np.float64))


def iter_frames(
    path: str | Path,
    sampling: str | Sampling = "fps:4",
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    threads: str = "AUTO",
    timeout: float | None = None,
    window: tuple[float, float] | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """(time, frame) of each sampled frame in order, decoded in one pass and converted as it comes:
    memory is that of a few frames however long the video (``read_frames`` keeps them all). Dense
    samplings only: fps:F and every:K (every K-th frame of those in ``window``, when given).
    Raises VideoError, also midway for a file that stops early.
    """
    sampling = Sampling.parse(sampling)
    if sampling.kind not in ("fps", "every"):
        raise ValueError(f"iter_frames takes a dense sampling (fps:F or every:K), got {sampling}")
    import av

    deadline = _Deadline(path, timeout)
    container, stream = _open(path, deadline)
    try:
        stream.thread_type = threads
        info = _info(path, container, stream)
        if window is not None:
            start, video_duration, _ = _span(path, container, info, deadline)
            w_start, w_duration = _window_span(path, window, start, video_duration, info.fps, deadline)
        decoded_until = [None]  # time of the last frame decoded: whether the file stops early

        def decoded():
            for frame in _decode(path, container, stream, deadline):
                decoded_until[0] = frame.time
                yield frame

        if sampling.kind == "every" and window is not None:
            picks = _every_in_window(decoded(), int(sampling.value), w_start, w_duration)
        elif sampling.kind == "every":
            picks = (f for i, f in enumerate(decoded()) if i % int(sampling.value) == 0)
        else:
            start, duration, _ = _span(path, container, info, deadline)
            video_duration = duration
            if window is not None:
                start, duration = w_start, w_duration
            picks = _nearest_in_order(
                path, container, stream, target_times(sampling, start, duration), deadline, video_duration
            )
        last, img, n = None, None, 0
        for frame in picks:
            if frame is not last:  # a short video at a high fps repeats frames: convert each once
                img = _to_rgb(frame)
                img = transform(img) if transform else img
                last = frame
            n += 1
            yield float(frame.time), img
        if n == 0:
            raise VideoError(path, "has no decodable video frames" + (f" in window {window}" if window else ""))
        if sampling.kind == "every" and window is not None:  # the last frame decoded, not the last picked:
            _check_not_truncated(path, decoded_until[0], np.asarray([w_start + w_duration]), video_duration)
        elif sampling.kind == "every" and info.duration > 0:  # every:100 of 250 frames picks 8 s of 10 s
            _check_not_truncated(path, decoded_until[0], np.asarray([info.start + info.duration]), info.duration)
    except av.FFmpegError as e:  # any FFmpeg failure not met above still names the file
        deadline.check()
        raise VideoError(path, f"not a readable video ({type(e).__name__}: {e})") from e
    finally:
        container.close()
