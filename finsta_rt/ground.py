"""``finsta-rt ground``: where is each noun of a text in a video (S-ViLM bundles, docs/families.md).

How it works: the text is parsed into noun phrases (the object nodes of the rule-based scene-graph
parser with their attributes: "a large red circle moves left" -> "large red circle"); each phrase
is encoded on its own by the bundle's text tower (``noun_embedding``). The video tower gives G
group features and the hard group of every patch of every frame (``group_assignment``). The heat
of a patch is the similarity of the noun to the group the patch belongs to, so a noun lights up the
whole segment its group covers. Heat maps are upsampled to the frame, blended over it as a colour
overlay (blue = low, red = high, min-max scaled per noun over the clip) and written as PNG files.

numpy only (PNG written with zlib + struct): this runs inside ``finsta_rt`` without torch or PIL.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class GroundError(ValueError):
    """A bad request (not an S-ViLM bundle, a text without nouns...); str(e) says what to do."""


# ----------------------------------------------------------------------------- nouns
def noun_phrases(text: str, parser: str = "rules") -> list[str]:
    """The noun phrases of ``text``: each object node of its scene graph together with the attribute
    words before it ("the small blue square appears" -> ["small blue square"]), duplicates removed
    (case-insensitively), in caption order. Raises GroundError for an empty text or one without nouns."""
    from .scene_graph import SceneGraphError, parse_text_graph

    if not isinstance(text, str) or not text.strip():
        raise GroundError('the text is empty: give a phrase that names something, e.g. --text "a red circle"')
    try:
        g = parse_text_graph(text, parser)
    except SceneGraphError as e:
        raise GroundError(f"cannot parse the text {text!r}: {e}") from e
    out: list[str] = []
    seen: set[str] = set()
    for i, n in enumerate(g.nodes):
        if n.kind != "object":
            continue
        start = min(
            [
                g.nodes[e.target].start
                for e in g.edges
                if e.kind == "attr" and e.source == i and g.nodes[e.target].start < n.start
            ]
            + [n.start]
        )
        phrase = text[start : n.end].strip()
        if phrase.lower() not in seen:
            seen.add(phrase.lower())
            out.append(phrase)
    if not out:
        raise GroundError(f'found no nouns in {text!r}: name the things to find, e.g. "a dog and a red ball"')
    return out


# ----------------------------------------------------------------------------- heat maps
def heat_maps(nouns: np.ndarray, groups: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """Per-patch heat through the hard assignment: heat[k, t, p] = <noun_k, group_{assignment[t, p]}>.

    nouns [K, E], groups [G, E] (one clip), assignment int [T, P] -> [K, T, P] float32."""
    nouns, groups = np.asarray(nouns, np.float32), np.asarray(groups, np.float32)
    assignment = np.asarray(assignment)
    if nouns.ndim != 2 or groups.ndim != 2 or nouns.shape[1] != groups.shape[1]:
        raise ValueError(f"nouns [K, E] and groups [G, E] must share E, got {nouns.shape} and {groups.shape}")
    if assignment.min(initial=0) < 0 or assignment.max(initial=0) >= groups.shape[0]:
        raise ValueError(f"assignment holds groups outside 0..{groups.shape[0] - 1}")
    sim = nouns @ groups.T  # [K, G]
    return sim[:, assignment]


def peak_patches(heat: np.ndarray, assignment: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The peak patch of each map: heat [K, T, P] (constant over a group's patches), ties inside the
    winning group broken by the assignment's confidence probs[t, p, assignment[t, p]].
    assignment [T, P], probs [T, P, G] -> int64 [K, T]."""
    conf = np.take_along_axis(np.asarray(probs), np.asarray(assignment)[..., None], axis=-1)[..., 0]  # [T, P]
    # among the patches of largest heat, the most confident; of equals the last (lexsort's pick)
    c = np.where(heat == heat.max(-1, keepdims=True), conf[None], -np.inf)
    return (heat.shape[-1] - 1 - c[..., ::-1].argmax(-1)).astype(np.int64)


def upsample(maps: np.ndarray, grid: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Bilinear upsampling (align_corners=False) of maps [..., h * w] on a grid (h, w) to [..., H, W]."""
    h, w = grid
    m = np.asarray(maps, np.float32).reshape(*maps.shape[:-1], h, w)

    def axis(n_in: int, n_out: int):
        x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        x = np.clip(x, 0, n_in - 1)
        i0 = np.floor(x).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (x - i0).astype(np.float32)

    y0, y1, fy = axis(h, height)
    x0, x1, fx = axis(w, width)
    rows = m[..., y0, :] * (1 - fy)[:, None] + m[..., y1, :] * fy[:, None]  # [..., H, w]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB (a blue-cyan-yellow-red 'jet'-like ramp)."""
    v = np.clip(np.asarray(v, np.float32), 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255 + 0.5).astype(np.uint8)


def overlay(frame: np.ndarray, heat01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map in [0, 1] [H, W] over a uint8 RGB frame [H, W, 3]."""
    c = colormap(heat01).astype(np.float32)
    return (frame.astype(np.float32) * (1 - alpha) + c * alpha + 0.5).clip(0, 255).astype(np.uint8)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """A uint8 RGB image [H, W, 3] as an 8-bit truecolour PNG (zlib + struct, no imaging library)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_png needs uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    H, W, _ = rgb.shape
    raw = np.concatenate([np.zeros((H, 1), np.uint8), rgb.reshape(H, W * 3)], axis=1).tobytes()  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    Path(path).write_bytes(png)


def read_png(path: str | Path) -> np.ndarray:
    """Reads back what :func:`write_png` writes (8-bit RGB, filter 0 rows); for tests and tools."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, W, H = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0]:
            raise ValueError(f"{path}: bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            W, H, depth, colour = struct.unpack(">IIBB", body[:10])
            if (depth, colour) != (8, 2):
                raise ValueError(f"{path}: only 8-bit RGB is read here")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(H, 1 + 3 * W)
    if rows[:, 0].any():
        raise ValueError(f"{path}: only filter type 0 is read here")
    return rows[:, 1:].reshape(H, W, 3).copy()


# ----------------------------------------------------------------------------- running a bundle
def require_svilm(model) -> None:
    """GroundError unless the bundle's graphs have the S-ViLM outputs."""
    outs = {o.name for o in model.bundle.graphs["video"].outputs}
    t_outs = {o.name for o in model.bundle.graphs["text"].outputs}
    need = {"group_features", "group_assignment", "group_probs", "scene_change"}
    if not need <= outs or "noun_embedding" not in t_outs:
        raise GroundError(
            f"bundle {model.bundle.name} is family {model.bundle.family!r}: grounding and scenes need an "
            f"S-ViLM bundle (family 'svilm', e.g. finsta-export runs/svilm)"
        )


def clip_frames(model, video: str | Path, sampling: str | None, timeout: float | None = None):
    """(frames uint8 [T, S, S, 3] preprocessed, timestamps [T])."""
    from .video import read_frames

    pre = model.bundle.preprocess
    T = pre.frames
    clip = read_frames(video, sampling or f"uniform:{T}", transform=pre, frames_per_clip=T, timeout=timeout)
    return clip.frames, clip.timestamps


def ground(
    model,
    video: str | Path,
    text: str,
    out_dir: str | Path,
    sampling: str | None = None,
    alpha: float = 0.5,
    parser: str = "rules",
) -> dict:
    """Writes OUT/<noun>_frameNN.png overlays for every noun of ``text``; returns a summary dict."""
    require_svilm(model)
    nouns = noun_phrases(text, parser)
    frames, stamps = clip_frames(model, video, sampling)
    T = model.bundle.preprocess.frames
    if len(frames) != T:
        raise GroundError(f"the bundle's video tower takes T={T} frames; sampling {sampling!r} gave {len(frames)}")
    v = model.embed_frames(frames[None])
    n = model.embed_texts(nouns)["noun_embedding"]
    heat = heat_maps(n, v["group_features"][0], v["group_assignment"][0])  # [K, T, P]
    P = heat.shape[-1]
    side = int(round(P**0.5))
    grid = (side, P // side)
    peaks = peak_patches(heat, v["group_assignment"][0], v["group_probs"][0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    S = frames.shape[1]
    report = {"video": str(video), "text": text, "nouns": [], "out": str(out)}
    for k, noun in enumerate(nouns):
        lo, hi = float(heat[k].min()), float(heat[k].max())
        big = upsample(heat[k], grid, S, S)
        scaled = (big - lo) / (hi - lo) if hi > lo else np.zeros_like(big)
        slug = "".join(c if c.isalnum() else "_" for c in noun.lower()).strip("_") or f"noun{k}"
        files = []
        for t in range(T):
            img = overlay(frames[t], scaled[t], alpha)
            py, px = divmod(int(peaks[k, t]), grid[1])
            cy, cx = int((py + 0.5) * S / grid[0]), int((px + 0.5) * S / grid[1])
            img[max(0, cy - 2) : cy + 3, max(0, cx - 2) : cx + 3] = (255, 255, 255)  # the peak patch's centre
            f = out / f"{slug}_frame{t:02d}.png"
            write_png(f, img)
            files.append(str(f))
        report["nouns"].append(
            {
                "noun": noun,
                "files": files,
                "similarity_min": lo,
                "similarity_max": hi,
                "peak_patch": [[int(p // grid[1]), int(p % grid[1])] for p in peaks[k]],
                "timestamps": [float(s) for s in stamps],
            }
        )
    return report
