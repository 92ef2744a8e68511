"""``finsta-rt search OUT --text "..."``: exact top-k over extracted features."""

from __future__ import annotations

import argparse

from ._common import EXIT_USAGE, add_model_args, error, positive_int, printable

NAME = "search"
HELP = "search extracted features by text or by video"
DESCRIPTION = "Exact cosine top-k over a folder made by finsta-rt extract."
EPILOG = (
    'examples:\n  finsta-rt search features/ --text "a man rides a bike" -k 5\n'
    "  finsta-rt search features/ --video videos/a.mp4"
)
RAW_HELP = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("features", help="folder made by finsta-rt extract")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="text query")
    q.add_argument("--video", help="an extracted video (its path) to find neighbours of")
    p.add_argument("-k", type=positive_int, default=10)
    p.add_argument("--bundle", help="bundle for text queries (default: the one recorded by extract)")
    p.add_argument("--json", action="store_true")
    add_model_args(p)


def run(args: argparse.Namespace) -> int:
    import json

    from ..search import FeatureIndex

    if args.text is not None and not args.text.strip():
        error(NAME, "--text is empty")
        return EXIT_USAGE
    index = FeatureIndex(args.features)
    if args.text is not None:
        model = index.load_model(args.bundle, device=args.device, threads=args.threads)
        hits = index.search_text(model.embed_text([args.text])[0], args.k)
    else:
        hits = index.search_video(args.video, args.k)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], indent=1))
        return 0
    print(f"{'rank':>4}  {'score':>7}  video")
    for h in hits:
        seg = f"  (segment {h.segment})" if h.segment is not None else ""
        print(f"{h.rank:>4}  {h.score:>7.4f}  {printable(h.path)}{seg}")
    return 0
