"""Caption files of real videos: JSONL, CSV, MSR-VTT's annotation JSON and WebVid's CSV (docs/data.md).

``read_captions`` turns a file into ``CaptionRow``s (video path, caption, optional segment), checking every row: a
bad row is a ``CaptionFileError`` naming ``<file>:<line>``, the field and what is wrong. Whether the video exists is
not checked here: a missing or undecodable video is the trainer's logged skip, not a file error.

``resolve_video`` maps a ``video`` reference to a local path: a path relative to the captions file's folder, an
absolute path, ``pkg:<distribution>/<path in site-packages>`` or ``deb:<package>/<path in the package>``; files
ending in ``.gz`` are gunzipped once into the media root. Torch-free (the stdlib only).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import shutil
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMATS = ("auto", "jsonl", "csv", "msrvtt", "webvid")
FIELDS = ("video", "caption", "start", "end")
# ``columns`` keys beyond the field names: where MSR-VTT's / WebVid's videos are, and MSR-VTT's split to keep.
OPTIONS = ("video_dir", "split")
MEDIA_ROOT_ENV = "FINSTA_MEDIA_ROOT"
MEDIA_ROOT_DIR = Path(".cache") / "real_clips"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters or more: "C:" stays a path


class CaptionFileError(ValueError):
    """A caption file or one of its rows is unusable; str(e) is ``<where>: <field>: <what is wrong>``."""

    def __init__(self, where: str, field: str, what: str):
        self.where, self.field, self.what = where, field, what
        super().__init__(f"{where}: {field}: {what}")


@dataclass(frozen=True)
class CaptionRow:
    video: Path  # resolved, absolute; existence not checked
    caption: str  # stripped, non-empty
    start: float | None  # seconds from the first decoded frame; both None = the whole video
    end: float | None
    where: str  # "<file>:<line>" (or "<file>:sentences[i]" for JSON) for error messages and errors.jsonl


# ---------------------------------------------------------------------------------------------- video references


def media_root(base: str | Path) -> Path | None:
    """Where unpacked packages and gunzipped files live: ``$FINSTA_MEDIA_ROOT``, else the nearest
    ``.cache/real_clips`` walking up from ``base`` (so a clone works from any working directory), else None."""
    env = os.environ.get(MEDIA_ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    for folder in (Path(base).resolve(), *Path(base).resolve().parents):
        if (folder / MEDIA_ROOT_DIR).is_dir():
            return folder / MEDIA_ROOT_DIR
    return None


def _inner_path(ref: str, rest: str, what: str) -> tuple[str, str]:
    """Split ``<name>/<path>`` and refuse paths that are empty, absolute or climb out with '..'."""
    name, _, inner = rest.partition("/")
    if not name or not inner:
        raise ValueError(f"{ref!r}: expected {what}")
    if inner.startswith("/") or ".." in Path(inner).parts:
        raise ValueError(f"{ref!r}: the path inside must be relative and must not contain '..'")
    return name, inner


def _site_packages(dist: str) -> Path | None:
    try:
        return Path(importlib.metadata.distribution(dist).locate_file("")).resolve()
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_existing(candidates: list[Path]) -> Path:
    """The first candidate that is a file, else the last one (where the set-up would put it)."""
    return next((c for c in candidates if c.is_file()), candidates[-1])


def _gunzip(src: Path, root: Path | None, key: Path) -> Path:
    """``src`` gunzipped once into ``<root>/gunzip/<key without .gz>`` (atomic rename; redone if ``src`` is newer)."""
    if root is None:  # no media root: a per-user cache, so reading never writes next to the user's files
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "finsta-rt"
    out = root / "gunzip" / key.with_suffix("")
    if not src.is_file():
        return out  # missing: the trainer reports it
    if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as dst, gzip.open(src, "rb") as f:
            shutil.copyfileobj(f, dst, 1 << 20)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("gunzipped %s -> %s", src, out)
    return out


def resolve_video(ref: str, base: Path) -> Path:
    """The local file a ``video`` reference names (absolute; it may not exist). ``base`` is the captions file's
    folder. Raises ValueError for a reference that cannot name a file (unknown scheme, '..' inside a package).

    - ``clips/a.mp4`` (relative to ``base``), ``/data/a.mp4``, ``~/a.mp4``
    - ``pkg:<dist>/<path>``: ``<site-packages of the installed dist>/<path>``, else ``<media root>/pkg/<dist>/<path>``
    - ``deb:<package>/<path>``: ``/<path>`` when the package is installed, else ``<media root>/deb/<package>/<path>``
    - a name ending in ``.gz``: the file gunzipped into ``<media root>/gunzip/`` (once)
    """
    ref = ref.strip()
    base = Path(base).resolve()
    root = media_root(base)
    m = _SCHEME.match(ref)
    if m is None:
        path = Path(ref).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        key = Path("file") / hashlib.sha256(str(path).encode()).hexdigest()[:16] / path.name
    elif m.group(1) == "pkg":
        dist, inner = _inner_path(ref, ref[4:], "pkg:<distribution>/<path in site-packages>")
        site = _site_packages(dist)
        candidates = [site / inner] if site is not None else []
        if root is not None:
            candidates.append(root / "pkg" / dist / inner)
        if not candidates:  # neither installed nor unpacked: where `pip install` would put it
            candidates.append(Path(sysconfig.get_paths()["purelib"]) / inner)
        path = _first_existing(candidates)
        key = Path("pkg") / dist / inner
    elif m.group(1) == "deb":
        package, inner = _inner_path(ref, ref[4:], "deb:<package>/<absolute path in the package, without '/'>")
        candidates = [Path("/") / inner] + ([root / "deb" / package / inner] if root is not None else [])
        path = _first_existing(candidates)
        key = Path("deb") / package / inner
    else:
        raise ValueError(
            f"{ref!r}: unknown scheme {m.group(1)!r} (expected a path, 'pkg:' or 'deb:'; a file name with a colon: ./{ref})"
        )
    return _gunzip(path, root, key) if path.suffix == ".gz" else path


# ------------------------------------------------------------------------------------------------ row checking


def _text(value: Any, where: str, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CaptionFileError(where, field, "missing or empty")
    if not isinstance(value, str):
        raise CaptionFileError(where, field, f"must be a string, got {type(value).__name__} {value!r}")
    return value.strip()


def _seconds(value: Any, where: str, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CaptionFileError(where, field, f"not a number: {value!r}")
    try:
        t = float(value)
    except ValueError:
        raise CaptionFileError(where, field, f"not a number: {value!r}") from None
    if not math.isfinite(t):
        raise CaptionFileError(where, field, f"not finite: {value!r}")
    if t < 0:
        raise CaptionFileError(where, field, f"negative: {t:g} s")
    return t


def _row(
    where: str, video: Path, caption: Any, start: Any = None, end: Any = None, names: dict[str, str] | None = None
) -> CaptionRow:
    """A checked row; errors name each field as the file does (``names``: our field -> its key or column)."""
    n = {f: f for f in FIELDS} | (names or {})
    caption = _text(caption, where, n["caption"])
    a, b = _seconds(start, where, n["start"]), _seconds(end, where, n["end"])
    if (a is None) != (b is None):
        given, other = (n["start"], n["end"]) if b is None else (n["end"], n["start"])
        raise CaptionFileError(
            where, other, f"missing while {given} is given (give both, or neither for the whole video)"
        )
    if a is not None and b is not None and a >= b:
        raise CaptionFileError(where, n["end"], f"must be after {n['start']} ({b:g} <= {a:g})")
    return CaptionRow(video, caption, a, b, where)


def _video(ref: Any, where: str, base: Path, field: str, seen: dict[str, Path]) -> Path:
    """The row's video reference resolved; ``seen`` memoises it per file (a video with many rows resolves once)."""
    ref = _text(ref, where, field)
    if ref not in seen:
        try:
            seen[ref] = resolve_video(ref, base)
        except ValueError as e:
            raise CaptionFileError(where, field, str(e)) from None
    return seen[ref]


# ------------------------------------------------------------------------------------------------------ formats


def _read_jsonl(path: Path, text: str, cols: dict[str, str]) -> list[CaptionRow]:
    rows: list[CaptionRow] = []
    seen: dict[str, Path] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CaptionFileError(where, "json", f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise CaptionFileError(where, "json", f"a row must be a JSON object, got {type(obj).__name__}")
        get = {f: obj.get(cols[f]) for f in FIELDS}
        video = _video(get["video"], where, path.parent, cols["video"], seen)
        rows.append(_row(where, video, *(get[f] for f in FIELDS[1:]), names=cols))
    return rows


def _csv_records(path: Path, text: str, needed: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(where, record) per data line of a CSV with a header that has every column in ``needed``."""
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = reader.fieldnames or []
    missing = [c for c in needed if c not in header]
    if missing:
        has = ", ".join(repr(h) for h in header) or "nothing"
        raise CaptionFileError(f"{path}:1", "header", f"missing column(s) {', '.join(map(repr, missing))} (has: {has})")
    out = []
    for rec in reader:
        # reader.line_num is the record's last line; quoted values may span lines (blank lines are skipped)
        where = f"{path}:{reader.line_num - sum(v.count(chr(10)) for v in rec.values() if isinstance(v, str))}"
        if None in rec:  # more values than header columns
            n = len(header) + len(rec[None])
            raise CaptionFileError(where, "row", f"{n} values, the header has {len(header)} columns")
        if any(v and v.strip() for v in rec.values()):
            out.append((where, rec))
    return out


def _read_csv(path: Path, text: str, cols: dict[str, str]) -> list[CaptionRow]:
    rows: list[CaptionRow] = []
    seen: dict[str, Path] = {}
    for where, rec in _csv_records(path, text, [cols["video"], cols["caption"]]):
        get = {f: rec.get(cols[f]) for f in FIELDS}
        video = _video(get["video"], where, path.parent, cols["video"], seen)
        rows.append(_row(where, video, *(get[f] for f in FIELDS[1:]), names=cols))
    return rows


def _read_webvid(path: Path, text: str, video_dir: Path) -> list[CaptionRow]:
    """WebVid's results_*.csv: ``videoid, contentUrl, duration, page_dir, name``; the downloader saves each clip
    as ``<page_dir>/<videoid>.mp4`` (m-bain/webvid, download.py). Captions are whole-clip."""
    rows = []
    for where, rec in _csv_records(path, text, ["videoid", "page_dir", "name"]):
        vid, page = _text(rec["videoid"], where, "videoid"), _text(rec["page_dir"], where, "page_dir")
        if "/" in vid or "/" in page or ".." in (vid, page):
            raise CaptionFileError(
                where, "videoid" if "/" in vid or vid == ".." else "page_dir", "must be a plain name"
            )
        rows.append(_row(where, (video_dir / page / f"{vid}.mp4").resolve(), rec["name"], names={"caption": "name"}))
    return rows


def _read_msrvtt(path: Path, text: str, video_dir: Path, split: str | None) -> list[CaptionRow]:
    """MSR-VTT's train_val_videodatainfo.json / test_videodatainfo.json: ``videos[]`` (``video_id``, ``url``,
    ``start time``, ``end time``, ``split``) and ``sentences[]`` (``video_id``, ``caption``, ``sen_id``).

    The released ``<video_id>.mp4`` files are already cut to [start time, end time] of the YouTube original
    (ev2900/MSR-VTT_Build trims them so; ArrowLuo/CLIP4Clip's MSR-VTT loader reads each whole), so every row is
    a whole-clip caption: applying those times to the cut clip would seek past its end."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CaptionFileError(f"{path}:{e.lineno}", "json", f"not valid JSON ({e.msg} at column {e.colno})") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("videos"), list)
        or not isinstance(doc.get("sentences"), list)
    ):
        raise CaptionFileError(f"{path}:1", "json", "MSR-VTT annotations need the lists 'videos' and 'sentences'")
    splits: dict[str, Any] = {}
    for i, v in enumerate(doc["videos"]):
        if not isinstance(v, dict):
            raise CaptionFileError(f"{path}:videos[{i}]", "video", "must be a JSON object")
        splits[_text(v.get("video_id"), f"{path}:videos[{i}]", "video_id")] = v.get("split")
    rows = []
    for i, s in enumerate(doc["sentences"]):
        where = f"{path}:sentences[{i}]"
        if not isinstance(s, dict):
            raise CaptionFileError(where, "sentence", "must be a JSON object")
        vid = _text(s.get("video_id"), where, "video_id")
        if vid not in splits:
            raise CaptionFileError(where, "video_id", f"{vid!r} is not in videos[]")
        if "/" in vid or vid == "..":
            raise CaptionFileError(where, "video_id", f"{vid!r} must be a plain name")
        if split is None or splits[vid] == split:
            rows.append(_row(where, (video_dir / f"{vid}.mp4").resolve(), s.get("caption")))
    return rows


def _detect(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "msrvtt"
    if suffix == ".csv":
        header = next(csv.reader(text.splitlines()[:1]), [])
        return "webvid" if {"videoid", "page_dir", "name"} <= set(header) and "video" not in header else "csv"
    raise CaptionFileError(str(path), "format", f"cannot tell the format from {suffix or 'no suffix'!r}: pass format=")


def read_captions(path: str | Path, *, format: str = "auto", columns: dict[str, str] | None = None) -> list[CaptionRow]:
    """Every row of a caption file, checked; raises CaptionFileError (``<file>:<line>: <field>: <what>``).

    ``format``: ``jsonl``, ``csv``, ``msrvtt``, ``webvid`` or ``auto`` (by suffix: .jsonl, .csv (WebVid's when the
    header has videoid, page_dir and name), .json = MSR-VTT). ``columns`` maps our field names (video, caption,
    start, end) to a JSONL file's keys or a CSV's columns, e.g. ``{"video": "path", "caption": "text"}``; for
    MSR-VTT and WebVid, ``video_dir`` is the folder of their videos (default: the annotation file's folder) and,
    for MSR-VTT, ``split`` keeps only the videos of that split (``train``, ``validate``, ``test``)."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS) - set(OPTIONS))
    if unknown:
        raise ValueError(f"columns: unknown key(s) {', '.join(unknown)} (known: {', '.join(FIELDS + OPTIONS)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CaptionFileError(str(path), "file", "not found") from None
    except IsADirectoryError:
        raise CaptionFileError(str(path), "file", "is a directory, not a caption file") from None
    except UnicodeDecodeError as e:
        raise CaptionFileError(str(path), "file", f"not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise CaptionFileError(str(path), "file", f"cannot read: {e.strerror or e}") from None
    path = path.resolve()
    if not text.strip():
        raise CaptionFileError(f"{path}:1", "file", "empty (no caption rows)")
    fmt = _detect(path, text) if format == "auto" else format
    cols = {f: columns.get(f, f) for f in FIELDS}
    video_dir = (path.parent / columns.get("video_dir", ".")).resolve()
    if fmt == "jsonl":
        rows = _read_jsonl(path, text, cols)
    elif fmt == "csv":
        rows = _read_csv(path, text, cols)
    elif fmt == "webvid":
        rows = _read_webvid(path, text, video_dir)
    else:
        rows = _read_msrvtt(path, text, video_dir, columns.get("split"))
    if not rows:
        raise CaptionFileError(
            f"{path}:1", "file", "no caption rows" + (f" of split {columns['split']!r}" if "split" in columns else "")
        )
    return rows
