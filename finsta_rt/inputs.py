"""Turning command-line inputs into a list of video paths: files, directories (recursive, with an
extension filter), globs, .txt/.csv lists, and '-' for standard input."""

from __future__ import annotations

import csv
import glob
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

VIDEO_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".webm",
    ".avi",
    ".mov",
    ".m4v",
    ".f4v",
    ".flv",
    ".mpeg",
    ".mpg",
    ".vob",
    ".wmv",
    ".asf",
    ".3gp",
    ".3g2",
    ".rm",
    ".swf",
    ".m1v",
    ".m2v",
    ".ts",
    ".mts",
    ".m2ts",
    ".ogv",
    ".ogg",
    ".gif",
    ".divx",
    ".dv",
    ".mxf",
    ".y4m",
)
LIST_EXTENSIONS = (".txt", ".csv", ".lst")


@dataclass
class InputSet:
    paths: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (input, reason): inputs that gave no video


def _read_list(text: str, base: Path, is_csv: bool) -> list[Path]:
    if is_csv:
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        col = header.index("path") if "path" in header else 0
        body = rows[1:] if "path" in header else rows
        items = [r[col].strip() for r in body if len(r) > col and r[col].strip()]
    else:
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [p if p.is_absolute() else base / p for p in map(Path, items)]


def collect(inputs: list[str], extensions: tuple[str, ...] = VIDEO_EXTENSIONS, stdin=None) -> InputSet:
    """Expands inputs in order, without duplicates. A named file is taken whatever its extension;
    directories and globs are filtered by ``extensions``. Relative paths in a list file are
    relative to the list's folder; those read from stdin to the working directory."""
    out = InputSet()
    seen: set[Path] = set()
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)

    def add(p: Path) -> None:
        key = p.resolve() if p.exists() else p.absolute()
        if key not in seen:
            seen.add(key)
            out.paths.append(p)

    for item in inputs:
        if item == "-":
            text = (stdin or sys.stdin).read()
            for p in _read_list(text, Path.cwd(), is_csv=False):
                add(p)
            continue
        p = Path(item)
        if any(ch in item for ch in "*?[") and not p.exists():
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            vids = [m for m in matches if m.is_file() and m.suffix.lower() in exts]
            if not vids:
                out.errors.append((item, "the pattern matches no video files"))
            for m in vids:
                add(m)
        elif p.is_dir():
            vids = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
            if not vids:
                out.errors.append((item, f"directory holds no video files (extensions {', '.join(exts[:6])}, ...)"))
            for f in vids:
                add(f)
        elif p.is_file() and p.suffix.lower() in LIST_EXTENSIONS:
            try:
                text = p.read_text()
            except (OSError, UnicodeDecodeError) as e:
                out.errors.append((item, f"cannot read the list: {e}"))
                continue
            listed = _read_list(text, p.parent, is_csv=p.suffix.lower() == ".csv")
            if not listed:
                out.errors.append((item, "the list names no files"))
            for f in listed:
                add(f)
        else:
            add(p)  # files, and missing paths: the extractor reports those per video
    return out
