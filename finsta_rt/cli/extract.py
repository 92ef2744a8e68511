"""``finsta-rt extract BUNDLE INPUT... -o OUT``: features of many videos (resumable)."""

from __future__ import annotations

import argparse
import sys

from ._common import EXIT_FAILED, add_model_args, error, load_model, positive_int, printable, seconds

NAME = "extract"
HELP = "extract features of many videos into a folder"
DESCRIPTION = "Decode, sample and embed videos; one .npy per video, a manifest and errors.jsonl."
EPILOG = (
    "inputs: video files, directories (recursive), globs ('clips/**/*.mp4'), .txt/.csv lists\n"
    "(one path per line / a 'path' column), or - to read paths from stdin.\n"
    "A second run into the same folder skips what is done (resume); a run into a folder another\n"
    "extract is writing waits for it (the folder is locked).\n"
    "exit status: 0 all done, 1 some video failed (unless --allow-failures), 2 bad usage or the\n"
    "output folder cannot be written.\n\n"
    "example: finsta-rt extract bundles/stgt videos/ -o features/ --sampling uniform:8"
)
RAW_HELP = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--sampling", help="uniform:N | fps:F | every:K | segments:S (default uniform:T of the bundle)")
    p.add_argument("--ext", help="comma list of extensions for directories and globs (default: common video types)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="clips per model call")
    p.add_argument("--workers", type=positive_int, default=2, help="decoding threads running ahead of the model")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=120.0,
        help="seconds allowed to open, demux and decode one video (0: no limit)",
    )
    p.add_argument("--no-resume", action="store_true", help="re-extract videos that already have features")
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some videos failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(p)


def run(args: argparse.Namespace) -> int:
    from ..extract import extract
    from ..inputs import collect
    from ..video import Sampling

    if args.sampling:
        Sampling.parse(args.sampling)  # a bad spec fails before the bundle loads
    exts = tuple(e.strip() for e in args.ext.split(",")) if args.ext else None
    found = collect(args.inputs, **({"extensions": exts} if exts else {}))
    for item, reason in found.errors:
        error(NAME, f"{item}: {reason}")
    if not found.paths:
        error(NAME, "no videos to extract")
        return EXIT_FAILED
    model = load_model(args)
    print(
        printable(
            f"extracting {len(found.paths)} videos with {model.bundle.name} on {model.device} into {args.output}"
        ),
        file=sys.stderr,
    )
    s = extract(
        model,
        found.paths,
        args.output,
        sampling=args.sampling,
        batch_size=args.batch_size,
        workers=args.workers,
        timeout=args.timeout or None,
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    print(
        printable(
            f"{s.done} extracted, {s.skipped} already done, {s.failed} failed in {s.seconds:.1f} s -> {args.output}"
        )
    )
    if s.failed:
        print(printable(f"failures are listed in {args.output}/errors.jsonl"), file=sys.stderr)
    return 0 if (not s.failed and not found.errors) or args.allow_failures else EXIT_FAILED
