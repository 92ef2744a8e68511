"""What every command shares: the one-line error convention, safe text output, model options."""

from __future__ import annotations

import argparse
import functools
import io
import logging
import re
import sys
import unicodedata
from collections.abc import Callable

log = logging.getLogger("finsta_rt.cli")

EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|[^\x00-\x7f]")


def _escape(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable argv/file-name byte (surrogateescape): show the byte
        return f"\\x{o - 0xDC00:02x}"
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def printable(text: object) -> str:
    """``text`` safe for any terminal: control characters (ANSI escapes included), bidi and other
    format characters, line separators and lone surrogates escaped as \\xNN / \\uNNNN; printable
    Unicode is kept (the stream's errors='backslashreplace' handles encodings that lack it)."""
    s = str(text)

    def sub(m: re.Match) -> str:
        ch = m.group()
        if (
            ord(ch) > 0x9F
            and ch not in "\u2028\u2029"
            and not 0xD800 <= ord(ch) <= 0xDFFF
            and unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp")
        ):
            return ch
        return _escape(ch)

    return _UNSAFE.sub(sub, s)


def safe_streams() -> None:
    """Output never fails on a character the terminal's encoding lacks (a strict ASCII or UTF-8 stdout)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, io.UnsupportedOperation):  # a detached or closed stream
                pass


def error(command: str, message: object) -> None:
    """The one line a refused command prints."""
    print(
        f"finsta-rt {command}: {printable(' '.join(str(message).split()) or type(message).__name__)}", file=sys.stderr
    )


def _is_runtime_error(e: BaseException) -> bool:
    """Refusals of bad input (bundle, video, folder, option, device) rather than bugs."""
    from ..video import VideoError

    return isinstance(e, (ValueError, OSError, RuntimeError, VideoError, MemoryError, UnicodeError)) or type(
        e
    ).__module__.startswith("onnxruntime")


def guarded(command: str, run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` with the CLI's error convention: a refusal is one line on stderr and exit status 2; an
    unexpected exception (a bug) is one line and exit status 3, its traceback logged with -v."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except KeyboardInterrupt:
            error(command, "interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `finsta-rt search ... | head`: the reader left, nothing to say
            return EXIT_FAILED
        except Exception as e:  # noqa: BLE001 - the one place that turns exceptions into exit statuses
            if _is_runtime_error(e):
                log.debug("refused", exc_info=True)
                error(command, e)
                return EXIT_USAGE
            log.debug("internal error", exc_info=True)
            error(command, f"internal error ({type(e).__name__}: {e}); rerun with -v for the traceback")
            return EXIT_INTERNAL

    return wrapper


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def seconds(text: str) -> float:
    """A time limit: seconds >= 0 (0: none)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return v


def add_model_args(p: argparse.ArgumentParser, device: str = "auto") -> None:
    p.add_argument(
        "--device",
        default=device,
        help=f"auto (CUDA if onnxruntime-gpu and a GPU are there), cpu, cuda[:N] (default {device})",
    )
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")


def load_model(args: argparse.Namespace):
    from ..model import Model

    return Model(args.bundle, device=args.device, threads=getattr(args, "threads", 0))
