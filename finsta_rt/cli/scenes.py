"""``finsta-rt scenes BUNDLE --video V [--json]``: scene boundaries with timestamps (S-ViLM bundles)."""

from __future__ import annotations

import argparse
import sys

from ..scenes import DEFAULT_SAMPLING, SceneRule
from ._common import EXIT_USAGE, error, printable

NAME = "scenes"
HELP = "scene boundaries (shot cuts) of a video with timestamps (S-ViLM bundles)"
_d = SceneRule()
DESCRIPTION = (
    "Print where the scenes of a video change.\n\n"
    "Frames are sampled densely (default fps:4) and scored in overlapping windows of the\n"
    "bundle's T frames: each pair of consecutive sampled frames gets a scene-change score\n"
    "(1 - cosine of their temporal-grouping features). A boundary is a local maximum that is\n"
    f"above --min-score ({_d.min_score:g}) and at least --ratio ({_d.ratio:g}) times the mean score of\n"
    f"the other pairs within --window ({_d.window:g}) seconds: relative to the video's own scores,\n"
    "so fast motion (high scores all around) is not a cut while a quiet shot's cut is.\n"
    "The defaults were chosen on real footage with labelled cuts (benchmarks/calibrate_scenes.py)\n"
    "at fps:4. --ratio 0 makes --min-score a plain threshold. A boundary's time is the first\n"
    "sampled frame of the new scene; the cut lies after the previous sampled frame, so denser\n"
    "sampling gives tighter times. --json prints every score, to tune the rule on your footage."
)
EPILOG = (
    "examples:\n"
    "  finsta-rt scenes bundles/svilm --video film.mp4\n"
    "  finsta-rt scenes bundles/svilm --video film.mp4 --ratio 3 --min-score 0.06 --json\n"
    "  finsta-rt scenes bundles/svilm --video film.mp4 --ratio 0 --min-score 0.1   # plain threshold\n"
    "needs an S-ViLM bundle (family svilm)."
)
RAW_HELP = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="an S-ViLM bundle directory")
    p.add_argument("--video", required=True, help="the video file")
    p.add_argument(
        "--sampling",
        default=DEFAULT_SAMPLING,
        help=f"frames to score: fps:F, every:K or uniform:N (default {DEFAULT_SAMPLING})",
    )
    p.add_argument(
        "--ratio",
        type=float,
        default=_d.ratio,
        help=f"a boundary's score over the mean of its neighbours' (default {_d.ratio:g}; 0 = off)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=_d.window,
        help=f"seconds on each side whose scores form that mean (default {_d.window:g})",
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=_d.min_score,
        help=f"a boundary's score must exceed this, in [0, 2] (default {_d.min_score:g})",
    )
    p.add_argument("--json", action="store_true", help="print the rule, boundaries, scenes and every score as JSON")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line (shown only on a terminal)")


def run(args: argparse.Namespace) -> int:
    import json

    from ..model import Model
    from ..scenes import _clock, detect

    try:
        rule = SceneRule(ratio=args.ratio, window=args.window, min_score=args.min_score)
    except ValueError as e:
        error(NAME, str(e).replace("scene rule: ", "--").replace("min_score", "min-score"))
        return EXIT_USAGE
    show = not args.quiet and sys.stderr.isatty()

    def progress(t: float, duration: float) -> None:
        sys.stderr.write(f"\rscoring {printable(args.video)}: {_clock(t)} of {_clock(duration)}")
        sys.stderr.flush()

    try:
        model = Model(args.bundle, device=args.device)
        r = detect(model, args.video, args.sampling, rule, progress if show else None)
    finally:
        if show:
            sys.stderr.write("\n")
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        printable(
            f"{r['video']}: {r['frames']} frames ({r['sampling']}), ratio {rule.ratio:g} within "
            f"{rule.window:g} s, min score {rule.min_score:g}: {len(r['boundaries'])} "
            f"boundar{'y' if len(r['boundaries']) == 1 else 'ies'}"
        )
    )
    for b in r["boundaries"]:
        print(f"  cut at {_clock(b['time'])}  (after {_clock(b['previous_time'])})  score {b['score']:.3f}")
    for k, s in enumerate(r["scenes"]):
        print(f"  scene {k + 1}: {_clock(s['start'])} - {_clock(s['end'])}")
    return 0
