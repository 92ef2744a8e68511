"""``finsta-rt bench BUNDLE INPUT...``: decode / model / pipeline throughput."""

from __future__ import annotations

import argparse

from ._common import EXIT_FAILED, add_model_args, error, load_model, positive_int

NAME = "bench"
HELP = "throughput of decoding, the model and the whole pipeline"
DESCRIPTION = "Frames/s and videos/s for decoding alone, the model alone and the pipeline."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--sampling")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--workers", type=positive_int, default=2)
    p.add_argument("--repeat", type=positive_int, default=1, help="pass over the inputs this many times")
    add_model_args(p)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_bench
    from ..inputs import collect

    found = collect(args.inputs)
    if not found.paths:
        error(NAME, "no videos to benchmark")
        return EXIT_FAILED
    print(
        run_bench(
            load_model(args),
            found.paths,
            sampling=args.sampling,
            batch_size=args.batch_size,
            workers=args.workers,
            repeat=args.repeat,
        )
    )
    return 0
