"""``finsta-rt ground BUNDLE --video V --text T``: heat maps of each noun of T (S-ViLM bundles, PNG)."""

from __future__ import annotations

import argparse

from ._common import EXIT_USAGE, error, printable

NAME = "ground"
HELP = "heat maps of where each noun of a text is in a video (S-ViLM bundles)"
DESCRIPTION = (
    "Find each noun of TEXT in the video and write per-frame heat-map overlays as PNG files.\n\n"
    'The text is split into noun phrases ("a small red circle moves past a blue square" ->\n'
    '"small red circle", "blue square"); each is encoded by the bundle\'s text tower and compared\n'
    "with the video's group tokens. Every patch takes the score of the group it is assigned to,\n"
    "so each noun lights up the segment of its best group (red = high, blue = low; scaled per\n"
    "noun over the clip). A white dot marks the peak patch. The overlays are drawn on the frames\n"
    "as the model sees them (resized and centre-cropped to the bundle's size).\n"
    "Files: OUT/<noun>_frameNN.png."
)
EPILOG = (
    "examples:\n"
    '  finsta-rt ground bundles/svilm --video clip.mp4 --text "a red circle and a blue square" -o heat/\n'
    '  finsta-rt ground bundles/svilm --video clip.mp4 --text "a dog" --sampling fps:2 --json\n'
    "needs an S-ViLM bundle (family svilm); the clip is the bundle's T frames (default uniform:T)."
)
RAW_HELP = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="an S-ViLM bundle directory")
    p.add_argument("--video", required=True, help="the video file")
    p.add_argument("--text", required=True, help="a caption or phrase naming what to find")
    p.add_argument("-o", "--out", default="ground", help="folder for the PNG overlays (default: ./ground)")
    p.add_argument(
        "--sampling", default=None, help="which frames (default uniform:T, T = the bundle's frames); must give T frames"
    )
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the summary (files, peaks) as JSON")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")


def run(args: argparse.Namespace) -> int:
    import json

    from ..ground import ground, noun_phrases
    from ..model import Model

    if not 0 <= args.alpha <= 1:
        error(NAME, f"--alpha must be in [0, 1], got {args.alpha}")
        return EXIT_USAGE
    nouns = noun_phrases(args.text)  # a bad text fails before anything loads
    model = Model(args.bundle, device=args.device)
    report = ground(model, args.video, args.text, args.out, args.sampling, args.alpha)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(printable(f"{len(nouns)} noun(s) in {args.text!r}: {', '.join(nouns)}"))
        for r in report["nouns"]:
            print(printable(f"  {r['noun']}: {len(r['files'])} overlays, e.g. {r['files'][0]}"))
    return 0
