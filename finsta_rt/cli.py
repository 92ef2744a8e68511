"""The ``finsta-rt`` command line.

    finsta-rt info BUNDLE   what a bundle holds (family, flavour, graphs, preprocessing), verified
    finsta-rt ops           where the op libraries are, what they hold, which providers ORT offers
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
    p = sub.add_parser("ops", help="show the custom-op libraries and the execution providers",
                       description="Show where the finsta op libraries are, their version and ops, and "
                                   "which ONNX Runtime execution providers this machine offers. "
                                   "Exit status 1 if the CPU library is missing or stale.")
    p.set_defaults(func=_cmd_ops)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
