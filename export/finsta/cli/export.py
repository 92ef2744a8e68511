"""``finsta-export RUN_DIR``: write a model bundle (ONNX graphs + tokenizer + bundle.yaml) from a
training run. Flavour ``custom`` uses the finsta op library; ``portable`` runs in stock ONNX Runtime."""

from __future__ import annotations

import argparse
import logging
import sys

EPILOG = """examples:
  finsta-export runs/stgt                       # -> bundles/stgt
  finsta-export runs/stgt --flavour portable    # -> bundles/stgt-portable
  finsta-export runs/stgt --flavour both --overwrite
  finsta-rt info bundles/stgt                   # what the bundle holds

Every bundle is checked before it is written: finsta_rt loads it and must reproduce PyTorch
(cosine >= 0.9999 on embeddings, scores within 1e-4).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="finsta-export", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", help="training run directory (or its checkpoint.pt)")
    ap.add_argument("--flavour", choices=["custom", "portable", "both"], default="custom")
    ap.add_argument("--out", help="bundle directory (default bundles/NAME, bundles/NAME-portable)")
    ap.add_argument("--name", help="bundle name (default: the run config's name)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")
    ap.add_argument("--no-verify", action="store_true", help="skip the PyTorch parity check")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.flavour == "both" and args.out:
        ap.error("--out names one directory; with --flavour both use the default names")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    from ..families import export_run  # imported late: --help needs no torch

    flavours = ["custom", "portable"] if args.flavour == "both" else [args.flavour]
    try:
        for fl in flavours:
            path = export_run(args.run, fl, args.out, args.name, args.overwrite, not args.no_verify)
            print(f"wrote {fl} bundle {path}")
    except (FileNotFoundError, FileExistsError, PermissionError, ImportError, ValueError) as e:
        print(f"finsta-export: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
