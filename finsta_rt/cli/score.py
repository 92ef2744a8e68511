"""``finsta-rt score BUNDLE --video V --text T...``: how well texts describe one video."""

from __future__ import annotations

import argparse

from ._common import EXIT_FAILED, EXIT_USAGE, add_model_args, error, load_model, printable, seconds

NAME = "score"
HELP = "score texts against one video"
DESCRIPTION = (
    "Rank texts by how well they describe the video (the bundle's similarity). A finsta bundle parses "
    "each text into a scene graph and also prints the parts of the score: global (host), spatial "
    "(objects), temporal (predicates), holistic."
)
EPILOG = 'example: finsta-rt score bundles/stgt --video clip.mp4 --text "a dog runs" --text "a car"'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle")
    p.add_argument("--video", required=True)
    p.add_argument("--text", action="append", required=True, help="repeatable")
    p.add_argument("--sampling", help="default uniform:T of the bundle")
    p.add_argument("--timeout", type=seconds, default=120.0, help="seconds allowed to decode the video (0: no limit)")
    p.add_argument(
        "--graph",
        metavar="FILE",
        help="family finsta: a user video scene graph (JSON: per-frame boxes, labels, relations; "
        "frame t = the t-th of the bundle's T sampled frames; format in finsta_rt/user_graph.py) "
        "used instead of the learned object slots",
    )
    add_model_args(p)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..video import Sampling, VideoError, read_frames

    if any(not t.strip() for t in args.text):
        error(NAME, "give at least one non-empty --text")
        return EXIT_USAGE
    sampling = Sampling.parse(args.sampling) if args.sampling else None  # a bad spec fails before the bundle loads
    model = load_model(args)
    pre = model.bundle.preprocess
    sampling = sampling or Sampling.parse(f"uniform:{pre.frames}")
    user = None
    if args.graph:
        try:
            user = model.load_user_graph(args.graph)
        except (ValueError, OSError) as e:  # UserGraphError is a ValueError
            error(NAME, f"--graph: {e}")
            return EXIT_USAGE
    try:
        clip = read_frames(
            args.video, sampling, transform=pre, frames_per_clip=pre.frames, timeout=args.timeout or None
        )
    except VideoError as e:  # like extract: a video that fails is status 1, a bad request 2
        error(NAME, e)
        return EXIT_FAILED
    # every family's scorer reads its inputs from these outputs; finsta's also returns the parts
    parts = model.score_parts(model.embed_frames(clip.frames[None], user_graph=user), model.embed_texts(args.text))
    scores = parts["scores"][:, 0]
    names = [n for n in parts if n != "scores"]
    order = np.argsort(-scores)
    print(f"{'rank':>4}  {'score':>7}  " + "".join(f"{n.removeprefix('score_'):>9}  " for n in names) + "text")
    for r, i in enumerate(order, 1):
        print(
            f"{r:>4}  {scores[i]:>7.4f}  "
            + "".join(f"{parts[n][i, 0]:>9.4f}  " for n in names)
            + printable(args.text[i])
        )
    return 0
