#!/usr/bin/env python3
"""Text -> video retrieval on the held-out real clips (datasets/real_clips/val.jsonl): one table for
bundles (through the runtime: finsta_rt, ONNX Runtime), the ConSE bridge alone (no training) and chance.

Protocol (docs/families.md, "The ConSE bridge"):

* gallery: the val *segments* (a segment is the pair video, [start, end); its frames are the bundle's T
  frames sampled uniformly inside the window by finsta_rt.video.read_frames with the bundle's preprocessing);
* queries: every val caption (a segment may have several);
* segment-level R@K: the query's own segment is among the top K; video-level R@K: one of the top K is a
  segment of the query's video (several segments of one clip may be in the gallery);
* chance: the exact expectation under a uniformly random ranking: K / N segment-level, and for a query
  whose video has m of the N segments, 1 - C(N - m, K) / C(N, K), averaged over the queries.

    python benchmarks/real_retrieval.py --bundle default=bundles/stgt-demo --bundle meanpool=bundles/stgt-demo-meanpool
    python benchmarks/real_retrieval.py --bridge-grid        # the bridge alone: frame size x template x top
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT / "datasets/real_clips/val.jsonl"
KS = (1, 5)
log = logging.getLogger("real_retrieval")


@dataclass
class RealSet:
    """The gallery segments and the queries of a caption file."""

    segments: list[tuple[Path, float | None, float | None]]
    queries: list[str]
    query_segment: np.ndarray  # [Q] index into segments
    segment_video: np.ndarray  # [N] index of the segment's video

    @property
    def query_video(self) -> np.ndarray:
        return self.segment_video[self.query_segment]


def real_set(path: Path = VAL) -> RealSet:
    from finsta.data.caption_files import read_captions

    rows = read_captions(path)
    segments = sorted({(r.video, r.start, r.end) for r in rows}, key=lambda s: (str(s[0]), s[1] or 0.0, s[2] or 0.0))
    index = {s: i for i, s in enumerate(segments)}
    videos = sorted({s[0] for s in segments})
    return RealSet(
        segments,
        [r.caption for r in rows],
        np.array([index[(r.video, r.start, r.end)] for r in rows]),
        np.array([videos.index(s[0]) for s in segments]),
    )


def chance(rs: RealSet) -> dict[str, float]:
    """The exact expected R@K of a uniformly random ranking (see the module docstring)."""
    n = len(rs.segments)
    out = {}
    for k in KS:
        out[f"seg_r{k}"] = min(k, n) / n
        m = np.array([(rs.segment_video == v).sum() for v in rs.query_video])
        out[f"vid_r{k}"] = float(np.mean([1 - math.comb(n - mi, k) / math.comb(n, k) for mi in m]))
    return out


def recall(scores: np.ndarray, rs: RealSet) -> dict[str, float]:
    """Segment- and video-level R@K of ``scores`` [queries, segments]."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = {}
    for k in KS:
        top = order[:, :k]
        out[f"seg_r{k}"] = float(np.mean([q in t for q, t in zip(rs.query_segment, top)]))
        out[f"vid_r{k}"] = float(np.mean([v in rs.segment_video[t] for v, t in zip(rs.query_video, top)]))
    return out


def segment_frames(rs: RealSet, preprocess) -> np.ndarray:
    """uint8 [N, T, S, S, 3]: each segment's frames as the bundle's preprocessing makes them."""
    from finsta_rt.video import read_frames

    T = preprocess.frames
    out = []
    for video, start, end in rs.segments:
        window = None if start is None else (start, end)
        out.append(read_frames(video, f"uniform:{T}", transform=preprocess, window=window).frames)
    return np.stack(out)


def bundle_scores(bundle: Path, rs: RealSet, batch: int = 4) -> tuple[np.ndarray, dict[str, float]]:
    """[queries, segments] scores of a bundle, through finsta_rt (ONNX Runtime), and for a bundle with domain
    gates how it routes the held-out real rows (:func:`routing`)."""
    from finsta_rt.model import Model

    model = Model(bundle, device="auto")
    frames = segment_frames(rs, model.bundle.preprocess)
    v = np.concatenate(
        [model.embed_frames(frames[i : i + batch])["video_embedding"] for i in range(0, len(frames), batch)]
    )
    t = model.embed_text(rs.queries)
    return model.score(v, t), routing(bundle, v, t)


def routing(bundle: Path, v: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """With STGT's domain gates (docs/families.md) an embedding is [sqrt(1-g) learned, sqrt(g) bridge], so the
    squared norm of its last text_dim values is its g: the share of the held-out real queries (``text_real``)
    and segments (``video_real``) the gates send to the bridge (g > 0.5), and the least g of each. {} without."""
    import yaml

    stgt = (yaml.safe_load((bundle / "bundle.yaml").read_text()).get("model") or {}).get("stgt") or {}
    if not stgt.get("bridge_gate"):
        return {}
    width = int(stgt["text_dim"])
    gt = np.square(t[:, -width:]).sum(-1) / np.square(t).sum(-1)
    gv = np.square(v[:, 0, -width:]).sum(-1) / np.square(v[:, 0]).sum(-1)
    return {
        "text_real": float((gt > 0.5).mean()),
        "video_real": float((gv > 0.5).mean()),
        "min_gt": float(gt.min()),
        "min_gv": float(gv.min()),
    }


def held_out_synthetic_r1(bundle: Path) -> float | None:
    """The run's held-out synthetic R@1, as its checkpoint recorded it (bundle.yaml model.held_out_metrics)."""
    import yaml

    metrics = (yaml.safe_load((bundle / "bundle.yaml").read_text()).get("model") or {}).get("held_out_metrics") or {}
    value = metrics.get("synthetic_r1", metrics.get("r1"))
    return None if value is None else float(value)


class BridgeAlone:
    """The ConSE bridge with no training, in PyTorch: frames -> bridge embedding; captions -> sentence embedding."""

    def __init__(self) -> None:
        import torch

        from finsta.models.bridge import build_bridge
        from finsta.train.config import TrainConfig
        from finsta.train.features import build_backbones

        torch.set_grad_enabled(False)
        self.bb = build_backbones(TrainConfig())
        self.bridge = build_bridge(self.bb.frame, self.bb.text, self.bb.tokenizer, top=20)

    def frame_tokens(self, frames: np.ndarray, batch: int = 4):
        import torch

        enc = self.bb.encoder
        return torch.cat([enc(torch.from_numpy(frames[i : i + batch]))[:, :, :1] for i in range(0, len(frames), batch)])

    def text(self, texts: list[str]):
        import torch

        from finsta.models.bridge import sentence_embedding

        ids, mask = self.bb.tokenizer(texts)
        feats, _ = self.bb.text(torch.from_numpy(ids), torch.from_numpy(mask))
        return sentence_embedding(feats, torch.from_numpy(mask))

    def scores(self, tokens, texts: list[str], top: int | None = None, table=None) -> np.ndarray:
        if top is not None:
            self.bridge.top = top
        if table is not None:
            self.bridge.classes.copy_(table)
        return (self.text(texts) @ self.bridge(tokens).T).numpy()


def bridge_grid(rs: RealSet, out: list[str]) -> None:
    """The bridge alone over frame size x class-name template x top T (how its defaults were chosen)."""
    from dataclasses import replace

    from finsta.models.bridge import class_name_table, imagenet_classnames

    b = BridgeAlone()
    names = imagenet_classnames()
    templates = {"bare": ("{}",), "photo": ("a photo of a {}.",), "video": ("a video of a {}.",)}
    tables = {k: class_name_table(b.bb.text, b.bb.tokenizer, names, t) for k, t in templates.items()}
    out.append(f"| size | template | top | {' | '.join(f'{k}' for k in chance(rs))} |")
    out.append("|---" * (3 + len(chance(rs))) + "|")
    for size in (224, 112):
        tokens = b.frame_tokens(segment_frames(rs, replace(b.bb.preprocess, size=size)))
        for key, table in tables.items():
            for top in (1, 5, 10, 20, 50, 1000):
                m = recall(b.scores(tokens, rs.queries, top, table), rs)
                out.append(f"| {size} | {key} | {top} | " + " | ".join(f"{v:.3f}" for v in m.values()) + " |")
                print(out[-1], flush=True)


def row(name: str, m: dict) -> str:
    """A table row: video- then segment-level R@K, then the synthetic held-out R@1 and the gates' routing of the
    real rows where known."""
    cells = [f"{m[f'{lvl}_r{k}']:.3f}" for lvl in ("vid", "seg") for k in KS]
    cells += ["" if m.get(k) is None else f"{m[k]:.3f}" for k in ("synthetic_r1", "text_real", "video_real")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR", help="a bundle to evaluate")
    ap.add_argument("--val", type=Path, default=VAL, help="the held-out caption file (default %(default)s)")
    ap.add_argument("--no-bridge", action="store_true", help="leave out the bridge-alone row")
    ap.add_argument("--bridge-grid", action="store_true", help="only the bridge alone: size x template x top")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # other libraries: warnings only
    log.setLevel(logging.INFO)  # our progress lines
    rs = real_set(args.val)
    n_videos = len(set(rs.segment_video.tolist()))
    head = f"{len(rs.queries)} queries, {len(rs.segments)} segments of {n_videos} held-out videos ({args.val.name})"
    print(head, flush=True)
    lines: list[str] = [head, ""]
    if args.bridge_grid:
        bridge_grid(rs, lines)
        return 0
    results: dict[str, dict] = {}
    for spec in args.bundle:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"--bundle wants NAME=DIR, got {spec!r}")
        t0 = time.monotonic()
        scores, routed = bundle_scores(Path(path), rs)
        results[name] = {**recall(scores, rs), **routed}
        results[name]["synthetic_r1"] = held_out_synthetic_r1(Path(path))
        log.info("%s: scored in %.0f s", name, time.monotonic() - t0)
    if not args.no_bridge:
        b = BridgeAlone()
        tokens = b.frame_tokens(segment_frames(rs, b.bb.preprocess))  # 224 px, T = 8
        results["bridge alone (no training)"] = recall(b.scores(tokens, rs.queries), rs)
    results["chance"] = chance(rs)
    lines += [
        "| model | video R@1 | video R@5 | segment R@1 | segment R@5 | synthetic held-out R@1 | real text to bridge "
        "| real video to bridge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(name, m) for name, m in results.items()]
    print("\n".join(lines[2:]))
    if args.json:
        args.json.write_text(json.dumps({"set": head, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
