"""``finsta-rt extract BUNDLE INPUT... -o OUT``: features of many videos (resumable)."""

from __future__ import annotations

import argparse
import sys

from ._common import EXIT_FAILED, add_model_args, error, load_model, positive_int, printable, seconds

NAME = "extract"
HELP = "extract features of many videos into a folder"
DESCRIPTION = (
    "Decode, sample and embed videos; .npy features (one per video, or packs of many), a manifest and errors.jsonl."
)
EPILOG = (
    "inputs: video files, directories (recursive), globs ('clips/**/*.mp4'), .txt/.csv lists\n"
    "(one path per line / a 'path' column), or - to read paths from stdin.\n"
    "A second run into the same folder skips what is done (resume). Several runs may write one folder\n"
    "at once, each with its --shard I/N (rows are appended under the folder's lock; none is lost).\n"
    "exit status: 0 all done, 1 some video failed (unless --allow-failures), 2 bad usage or the\n"
    "output folder cannot be written.\n\n"
    "examples: finsta-rt extract bundles/stgt videos/ -o features/ --sampling uniform:8\n"
    "  finsta-rt extract bundles/stgt list.txt -o features/ --layout packed --outputs all --shard 0/2\n"
    "  finsta-rt extract bundles/stgt videos/ -o features/ --ray            (a local Ray; or --ray ADDRESS)"
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
    p.add_argument(
        "--outputs",
        default="video_embedding",
        help="comma list of the video graph's outputs to save, or 'all' (default video_embedding)",
    )
    p.add_argument(
        "--layout",
        choices=("per-video", "packed"),
        default="per-video",
        help="per-video: one .npy per video and output; packed: .npy packs of many videos (packs/)",
    )
    p.add_argument("--pack-size", type=positive_int, default=1024, help="videos per pack (--layout packed)")
    p.add_argument("--shard", type=shard, help="I/N: only the videos of shard I of N (a stable hash of the path)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on a Ray cluster: --ray=ADDRESS, or --ray last for a local one (--workers and --threads "
        "then give way to --actors and --actor-cpus); needs finsta-rt[ray]",
    )
    p.add_argument("--actors", type=positive_int, help="Ray actors (default: the cluster's CPUs / --actor-cpus)")
    p.add_argument(
        "--actor-cpus",
        type=positive_int,
        default=1,
        help="CPUs of each Ray actor: its ONNX Runtime threads and decoding threads (default 1)",
    )
    p.add_argument("--no-resume", action="store_true", help="re-extract videos that already have features")
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some videos failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(p)


def shard(text: str) -> tuple[int, int]:
    from ..extract import parse_shard

    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--shard ")) from None


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
    options = dict(
        sampling=args.sampling,
        batch_size=args.batch_size,
        timeout=args.timeout or None,
        resume=not args.no_resume,
        progress=not args.quiet,
        outputs=args.outputs,
        layout=args.layout,
        pack_size=args.pack_size,
        shard=args.shard,
    )
    if args.ray:
        from ..ray import extract_on_ray

        where = "a local Ray" if args.ray == "local" else f"Ray at {args.ray}"
        print(printable(f"extracting {len(found.paths)} videos on {where} into {args.output}"), file=sys.stderr)
        s = extract_on_ray(
            args.bundle,
            found.paths,
            args.output,
            address=None if args.ray == "local" else args.ray,
            device=args.device,
            actors=args.actors,
            cpus_per_actor=args.actor_cpus,
            **options,
        )
        if s.ort_threads:
            print(printable(f"Ray actors ran ONNX Runtime with intra_op_num_threads={s.ort_threads}"), file=sys.stderr)
    else:
        model = load_model(args)
        print(
            printable(
                f"extracting {len(found.paths)} videos with {model.bundle.name} on {model.device} into {args.output}"
            ),
            file=sys.stderr,
        )
        s = extract(model, found.paths, args.output, workers=args.workers, **options)
    print(
        printable(
            f"{s.done} extracted, {s.skipped} already done, {s.failed} failed in {s.seconds:.1f} s -> {args.output}"
        )
    )
    if s.failed:
        print(printable(f"failures are listed in {args.output}/errors.jsonl"), file=sys.stderr)
    return 0 if (not s.failed and not found.errors) or args.allow_failures else EXIT_FAILED
