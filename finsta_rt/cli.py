"""The ``finsta-rt`` command line.

    finsta-rt info BUNDLE                          what a bundle holds, its files verified
    finsta-rt extract BUNDLE INPUT... -o OUT       features of many videos (resumable)
    finsta-rt embed-text BUNDLE TEXT...            text embeddings (JSON or .npy)
    finsta-rt score BUNDLE --video V --text T...   how well texts describe one video
    finsta-rt search OUT --text "..." [-k K]       exact top-k over extracted features
    finsta-rt bench BUNDLE INPUT...                decode / model / pipeline throughput
    finsta-rt ops                                  the op libraries and execution providers
    finsta-rt ground BUNDLE --video V --text T     heat maps of each noun of T (S-ViLM), PNG
    finsta-rt scenes BUNDLE --video V [--json]     scene boundaries with timestamps (S-ViLM)
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__, ops


def _cmd_ops(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    print(f"finsta-rt {__version__}, onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
    print(f"library folder: {ops.library_dir()}  (override with {ops.ENV_DIR})")
    status = 0
    for device in ("cpu", "cuda"):
        try:
            path = ops.library_path(device)
        except ops.OpsLibraryError as e:
            print(f"  {device:<5} missing: {e}")
            status = 1 if device == "cpu" else status
            continue
        info = ops.library_info(path, path.stat().st_mtime_ns)
        print(f"  {device:<5} {path}  version {info['version']}, cuda={info.get('cuda')}, ops: {info.get('ops')}")
    return status


def _cmd_info(args: argparse.Namespace) -> int:
    from .bundle import Bundle, BundleError

    try:
        b = Bundle.load(args.bundle)
    except BundleError as e:
        print(f"finsta-rt: {e}", file=sys.stderr)
        return 2
    m = b.manifest
    p = b.preprocess
    print(f"bundle    {b.root}  (all {len(m['files'])} files pass their sha256 check)")
    print(f"name      {b.name}   family {b.family}   flavour {b.flavour}   format {m['format_version']}")
    print(f"exporter  {m.get('exporter', {}).get('name')} {m.get('exporter', {}).get('version')}, created {m.get('created')}")
    print(f"frames    T={p.frames} ({p.sampling}), {p.size}x{p.size} {p.colour} {p.dtype}, resize {p.resize} "
          f"({p.interpolation}), mean {list(p.mean)}, std {list(p.std)}")
    t = b.tokenizer_spec
    print(f"tokenizer {t.kind}, {t.vocab.name}, lowercase={t.lowercase}, max_length={t.max_length}")
    for op in b.custom_ops:
        need = "required" if b.requires_op_library else "optional (portable functions included)"
        print(f"ops       domain {op['domain']} v{op['version']}: {', '.join(op['ops'])}  [{need}]")
    for g in b.graphs.values():
        sig = lambda specs: ", ".join(f"{s.name} {s.dtype}{s.shape}" for s in specs)  # noqa: E731
        print(f"graph     {g.name:<6} {g.path.name}: ({sig(g.inputs)}) -> ({sig(g.outputs)})")
    return 0


def _model(args: argparse.Namespace):
    from .model import Model

    return Model(args.bundle, device=args.device, threads=args.threads)


def _cmd_extract(args: argparse.Namespace) -> int:
    from .extract import ExtractError, extract
    from .inputs import collect

    exts = tuple(e.strip() for e in args.ext.split(",")) if args.ext else None
    found = collect(args.inputs, **({"extensions": exts} if exts else {}))
    for item, reason in found.errors:
        print(f"finsta-rt: {item}: {reason}", file=sys.stderr)
    if not found.paths:
        print("finsta-rt: no videos to extract", file=sys.stderr)
        return 1
    model = _model(args)
    print(f"extracting {len(found.paths)} videos with {model.bundle.name} on {model.device} into {args.output}",
          file=sys.stderr)
    try:
        s = extract(model, found.paths, args.output, sampling=args.sampling, batch_size=args.batch_size,
                    workers=args.workers, timeout=args.timeout or None, resume=not args.no_resume,
                    progress=not args.quiet)
    except ExtractError as e:
        print(f"finsta-rt: {e}", file=sys.stderr)
        return 2
    print(f"{s.done} extracted, {s.skipped} already done, {s.failed} failed in {s.seconds:.1f} s -> {args.output}")
    if s.failed:
        print(f"failures are listed in {args.output}/errors.jsonl", file=sys.stderr)
    return 0 if (not s.failed and not found.errors) or args.allow_failures else 1


def _cmd_embed_text(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    texts = [t for t in args.texts if t.strip()]
    if len(texts) != len(args.texts):
        print("finsta-rt: empty text given; each TEXT must say something", file=sys.stderr)
        return 2
    emb = _model(args).embed_text(texts)
    if args.output:
        np.save(args.output, emb)
        print(f"wrote {emb.shape} to {args.output}")
    else:
        for t, e in zip(texts, emb):
            print(json.dumps({"text": t, "embedding": [round(float(x), 6) for x in e]}))
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import numpy as np

    from .video import VideoError, read_frames

    if not args.text or any(not t.strip() for t in args.text):
        print("finsta-rt: give at least one non-empty --text", file=sys.stderr)
        return 2
    model = _model(args)
    user = None
    if args.graph:
        try:
            user = model.load_user_graph(args.graph)
        except (ValueError, OSError) as e:  # UserGraphError is a ValueError
            print(f"finsta-rt: --graph: {e}", file=sys.stderr)
            return 2
    pre = model.bundle.preprocess
    try:
        clip = read_frames(args.video, args.sampling or f"uniform:{pre.frames}", transform=pre,
                           frames_per_clip=pre.frames, timeout=args.timeout or None)
    except (VideoError, ValueError) as e:
        print(f"finsta-rt: {e}", file=sys.stderr)
        return 1
    # every family's scorer reads its inputs from these outputs; finsta's also returns the parts
    parts = model.score_parts(model.embed_frames(clip.frames[None], user_graph=user), model.embed_texts(args.text))
    scores = parts["scores"][:, 0]
    names = [n for n in parts if n != "scores"]
    order = np.argsort(-scores)
    print(f"{'rank':>4}  {'score':>7}  " + "".join(f"{n.removeprefix('score_'):>9}  " for n in names) + "text")
    for r, i in enumerate(order, 1):
        print(f"{r:>4}  {scores[i]:>7.4f}  " + "".join(f"{parts[n][i, 0]:>9.4f}  " for n in names) + args.text[i])
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    import json

    from .bundle import BundleError
    from .search import FeatureIndex, SearchError

    try:
        index = FeatureIndex(args.features)
        if args.text is not None:
            if not args.text.strip():
                raise SearchError("--text is empty")
            from .model import Model

            bundle = args.bundle or index.info["bundle"]
            model = Model(bundle, device=args.device, threads=args.threads)
            if model.bundle.sha256 != index.info["bundle_sha256"]:
                raise SearchError(f"{bundle} is not the bundle these features were made with ({index.info['bundle']})")
            hits = index.search_text(model.embed_text([args.text])[0], args.k)
        else:
            hits = index.search_video(args.video, args.k)
    except (SearchError, BundleError) as e:
        print(f"finsta-rt: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], indent=1))
        return 0
    print(f"{'rank':>4}  {'score':>7}  video")
    for h in hits:
        seg = f"  (segment {h.segment})" if h.segment is not None else ""
        print(f"{h.rank:>4}  {h.score:>7.4f}  {h.path}{seg}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .inputs import collect

    found = collect(args.inputs)
    if not found.paths:
        print("finsta-rt: no videos to benchmark", file=sys.stderr)
        return 1
    print(run_bench(_model(args), found.paths, sampling=args.sampling, batch_size=args.batch_size,
                    workers=args.workers, repeat=args.repeat))
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if onnxruntime-gpu and a GPU are there), cpu, cuda[:N]")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="finsta-rt",
        description="Run structural video-language model bundles with ONNX Runtime (no PyTorch needed).",
    )
    ap.add_argument("--version", action="version", version=f"finsta-rt {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("info", help="show what a bundle holds (and verify its files)",
                       description="Load a bundle, verify every file's sha256, and print its family, flavour, "
                                   "preprocessing, tokenizer, required custom ops and graph signatures.")
    p.add_argument("bundle", help="bundle directory (holding bundle.yaml)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("extract", help="extract features of many videos into a folder",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Decode, sample and embed videos; one .npy per video, a manifest and errors.jsonl.",
                       epilog="inputs: video files, directories (recursive), globs ('clips/**/*.mp4'), .txt/.csv lists\n"
                              "(one path per line / a 'path' column), or - to read paths from stdin.\n"
                              "A second run into the same folder skips what is done (resume).\n"
                              "exit status: 0 all done, 1 some video failed (unless --allow-failures), 2 bad usage.\n\n"
                              "example: finsta-rt extract bundles/stgt videos/ -o features/ --sampling uniform:8")
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--sampling", help="uniform:N | fps:F | every:K | segments:S (default uniform:T of the bundle)")
    p.add_argument("--ext", help="comma list of extensions for directories and globs (default: common video types)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per model call")
    p.add_argument("--workers", type=int, default=2, help="decoding threads running ahead of the model")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed to decode one video (0: no limit)")
    p.add_argument("--no-resume", action="store_true", help="re-extract videos that already have features")
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some videos failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_model_args(p)
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("embed-text", help="embed texts with the bundle's text tower",
                       description="Print one JSON line per text, or save an [N, E] array with -o.")
    p.add_argument("bundle")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("-o", "--output", help="save the embeddings as .npy")
    _add_model_args(p)
    p.set_defaults(func=_cmd_embed_text)

    p = sub.add_parser("score", help="score texts against one video",
                       description="Rank texts by how well they describe the video (the bundle's similarity). "
                                   "A finsta bundle parses each text into a scene graph and also prints the parts "
                                   "of the score: global (host), spatial (objects), temporal (predicates), holistic.",
                       epilog='example: finsta-rt score bundles/stgt --video clip.mp4 --text "a dog runs" --text "a car"')
    p.add_argument("bundle")
    p.add_argument("--video", required=True)
    p.add_argument("--text", action="append", required=True, help="repeatable")
    p.add_argument("--sampling", help="default uniform:T of the bundle")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--graph", metavar="FILE",
                   help="family finsta: a user video scene graph (JSON: per-frame boxes, labels, relations; "
                        "frame t = the t-th of the bundle's T sampled frames; format in finsta_rt/user_graph.py) "
                        "used instead of the learned object slots")
    _add_model_args(p)
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("search", help="search extracted features by text or by video",
                       description="Exact cosine top-k over a folder made by finsta-rt extract.",
                       epilog='examples:\n  finsta-rt search features/ --text "a man rides a bike" -k 5\n'
                              '  finsta-rt search features/ --video videos/a.mp4',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("features", help="folder made by finsta-rt extract")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="text query")
    q.add_argument("--video", help="an extracted video (its path) to find neighbours of")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--bundle", help="bundle for text queries (default: the one recorded by extract)")
    p.add_argument("--json", action="store_true")
    _add_model_args(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("bench", help="throughput of decoding, the model and the whole pipeline",
                       description="Frames/s and videos/s for decoding alone, the model alone and the pipeline.")
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--sampling")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1, help="pass over the inputs this many times")
    _add_model_args(p)
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("ops", help="show the custom-op libraries and the execution providers",
                       description="Show where the finsta op libraries are, their version and ops, and "
                                   "which ONNX Runtime execution providers this machine offers. "
                                   "Exit status 1 if the CPU library is missing or stale.")
    p.set_defaults(func=_cmd_ops)
    from . import ground, scenes  # S-ViLM bundles: where nouns are, where scenes change

    ground.add_parser(sub)
    scenes.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
