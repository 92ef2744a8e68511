"""The ``finsta-rt`` command line: one module per command, each with ``NAME``, ``HELP``,
``DESCRIPTION`` (and ``EPILOG``), ``add_arguments(parser)`` and ``run(args) -> int``.

    finsta-rt info BUNDLE                          what a bundle holds, its files verified
    finsta-rt extract BUNDLE INPUT... -o OUT       features of many videos (resumable)
    finsta-rt embed-text BUNDLE TEXT...            text embeddings (JSON or .npy)
    finsta-rt score BUNDLE --video V --text T...   how well texts describe one video
    finsta-rt index OUT                            the search index of extracted features (usearch)
    finsta-rt search OUT --text "..." [-k K]       top-k over extracted features (indexed or exact)
    finsta-rt bench BUNDLE INPUT...                decode / model / pipeline throughput
    finsta-rt ops                                  the op libraries and execution providers
    finsta-rt ground BUNDLE --video V --text T     heat maps of each noun of T (S-ViLM), PNG
    finsta-rt scenes BUNDLE --video V [--json]     scene boundaries with timestamps (S-ViLM)

Every command refuses bad input with one line on stderr and exit status 2 (``_common.guarded``),
and escapes what it echoes (``_common.printable``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from .. import __version__
from . import bench, embed_text, extract, ground, index, info, ops, scenes, score, search
from ._common import EXIT_USAGE, guarded, printable, safe_streams

COMMANDS: tuple[ModuleType, ...] = (info, extract, embed_text, score, index, search, bench, ops, ground, scenes)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``finsta-rt extract: argument --batch-size: ...``), exit status 2."""

    def error(self, message: str):
        print(f"{printable(self.prog)}: {printable(message)} (see {printable(self.prog)} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


class _SafeFormatter(logging.Formatter):
    """Log lines (a failed video's name among them) escaped like the rest of the output."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(printable(line) for line in super().format(record).split("\n"))


def add_command(subparsers, command: ModuleType) -> argparse.ArgumentParser:
    """Adds one command module to ``subparsers``; ``args.func`` is its guarded ``run``."""
    p = subparsers.add_parser(
        command.NAME,
        help=command.HELP,
        description=command.DESCRIPTION,
        epilog=getattr(command, "EPILOG", None),
        formatter_class=argparse.RawDescriptionHelpFormatter
        if getattr(command, "RAW_HELP", False)
        else argparse.HelpFormatter,
    )
    command.add_arguments(p)
    p.set_defaults(func=guarded(command.NAME, command.run))
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="finsta-rt",
        description="Run structural video-language model bundles with ONNX Runtime (no PyTorch needed).",
    )
    ap.add_argument("--version", action="version", version=f"finsta-rt {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log debug messages (and tracebacks)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for command in COMMANDS:
        add_command(sub, command)
    return ap


def main(argv: list[str] | None = None) -> int:
    safe_streams()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, a usage error: already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler])
    return args.func(args)


__all__ = ["COMMANDS", "add_command", "build_parser", "main"]
