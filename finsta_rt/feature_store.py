"""The one reader of an extraction folder (docs/runtime.md): what finsta-rt extract wrote, in either layout.

    extract.json            the bundle, its sha256, the sampling, the layout and the saved outputs
    manifest.jsonl          one row per video (the latest row of a path wins)
    features/<name>[.<output>].npy  layout ``per-video`` (the default): one file per video and output
    packs/<writer>-<n>.<output>.npy  layout ``packed``: the clips of many videos stacked on axis 0, one file
                                     per output

A row names, for every saved output, its ``file`` and the video's ``shape`` (``[Q, E]``, or ``[S, Q, E]`` for
``segments:S``); a packed row adds ``rows: [start, stop]``, its slice of the pack's axis 0. Rows written
before outputs were selectable hold ``file`` and ``shape`` of ``video_embedding`` only; they read the same.

>>> store = FeatureStore("features/")
>>> store.array("video_embedding").shape            # [R, Q, E]: one row per clip (segments become rows)
>>> store.paths[store.owner[0]], store.segment[0]    # the video and segment of clip row 0
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MANIFEST, ERRORS, RUN_INFO, FEATURES, PACKS, LOCK = (
    "manifest.jsonl",
    "errors.jsonl",
    "extract.json",
    "features",
    "packs",
    ".lock",
)
LAYOUTS = ("per-video", "packed")
DEFAULT_OUTPUT = "video_embedding"


class FeatureStoreError(ValueError):
    """The extraction folder cannot be read; the message names the file and says why."""


def read_manifest(out_dir: str | Path) -> dict[str, dict]:
    """Latest row per video path (a crash can leave a torn last line: it is ignored)."""
    rows: dict[str, dict] = {}
    p = Path(out_dir) / MANIFEST
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["path"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return rows


def row_outputs(row: dict) -> dict[str, dict]:
    """``{output: {"file": ..., "shape": [...], "rows": [start, stop] (packed only)}}`` of an ok row; a row
    of the first format (``file`` and ``shape`` at the top) holds ``video_embedding`` only."""
    outs = row.get("outputs")
    if isinstance(outs, dict):
        return {k: v for k, v in outs.items() if isinstance(v, dict) and isinstance(v.get("file"), str)}
    if isinstance(row.get("file"), str):
        return {DEFAULT_OUTPUT: {"file": row["file"], "shape": row.get("shape")}}
    return {}


def row_is_complete(out_dir: Path, row: dict) -> bool:
    """An ok row whose every output file is there (resume skips its video)."""
    outs = row_outputs(row)
    return row.get("status") == "ok" and bool(outs) and all((out_dir / o["file"]).is_file() for o in outs.values())


def _clips(row: dict, output: dict, segmented: bool) -> int:
    """Clip rows a video contributes: S for segments:S (the leading axis of its shape), else 1."""
    if "clips" in row:
        return int(row["clips"])
    shape = output.get("shape") or []
    return int(shape[0]) if segmented and shape else 1


class FeatureStore:
    """The ok rows of an extraction folder and their saved outputs, read on demand (memory-mapped)."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        info_path = self.root / RUN_INFO
        if not info_path.is_file():
            raise FeatureStoreError(
                f"{self.root} is not an extraction folder ({RUN_INFO} is missing); run finsta-rt extract first"
            )
        try:
            self.info = json.loads(info_path.read_text())
            if not isinstance(self.info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise FeatureStoreError(f"cannot read {info_path}: {e}") from e
        ok = [r for r in read_manifest(self.root).values() if r.get("status") == "ok" and row_outputs(r)]
        self.rows: list[dict] = sorted(ok, key=lambda r: r["path"])
        self.paths: list[str] = [r["path"] for r in self.rows]
        segmented = self.segmented
        clips = [_clips(r, next(iter(row_outputs(r).values())), segmented) for r in self.rows]
        self.owner = np.repeat(np.arange(len(self.rows)), clips)  # clip row -> index into rows
        self.segment: list[int | None] = [
            s for n in clips for s in (range(n) if n > 1 or segmented else [None])
        ]  # clip row -> its segment (None unless segments:S)

    @property
    def segmented(self) -> bool:
        """Whether the folder was made with segments:S (a video's outputs have a leading segment axis)."""
        return str(self.info.get("sampling", "")).startswith("segments")

    @property
    def layout(self) -> str:
        return str(self.info.get("layout", "per-video"))

    @property
    def outputs(self) -> list[str]:
        """Names of the outputs saved for every video (those extract.json lists, else those of the rows)."""
        names = self.info.get("outputs")
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return list(names)
        if not self.rows:
            return []
        common = set(row_outputs(self.rows[0]))
        for r in self.rows[1:]:
            common &= set(row_outputs(r))
        return sorted(common)

    def __len__(self) -> int:
        return len(self.rows)

    def array(self, name: str = DEFAULT_OUTPUT) -> np.ndarray:
        """Output ``name`` of every ok row, in row order, one row per clip: ``[R, ...]`` where a video's
        ``[Q, E]`` is one row and a ``segments:S`` video's ``[S, Q, E]`` is S rows (``self.owner`` maps back)."""
        if not self.rows:
            raise FeatureStoreError(f"{self.root} holds no extracted features")
        entries = []
        for r in self.rows:
            o = row_outputs(r).get(name)
            if o is None:
                raise FeatureStoreError(
                    f"{self.root}: output {name!r} was not saved for {r['path']} (saved: {', '.join(self.outputs)})"
                )
            entries.append(o)
        segmented = self.segmented
        by_file: dict[str, tuple[list[int], list[int]]] = {}  # file -> (clip rows of out, rows of the file)
        dst = 0
        for r, o in zip(self.rows, entries, strict=True):
            n = _clips(r, o, segmented)
            src = int(o["rows"][0]) if "rows" in o else 0
            d, s = by_file.setdefault(o["file"], ([], []))
            d.extend(range(dst, dst + n))
            s.extend(range(src, src + n))
            dst += n
        out: np.ndarray | None = None
        for file, (d, s) in by_file.items():
            a = self._load(file)
            if "rows" not in entries[0] and not segmented:  # one video per file, no segment axis
                a = a[None]
            if out is None:
                out = np.empty((dst, *a.shape[1:]), np.float32 if a.dtype == np.float64 else a.dtype)
            if a.shape[1:] != out.shape[1:]:
                raise FeatureStoreError(
                    f"{self.root / file}: {name} of shape {list(a.shape[1:])} per clip, "
                    f"the others have {list(out.shape[1:])}"
                )
            if max(s) >= a.shape[0]:
                raise FeatureStoreError(f"{self.root / file}: holds {a.shape[0]} rows, the manifest needs {max(s) + 1}")
            out[d] = a[s]
        assert out is not None
        return out

    def _load(self, file: str) -> np.ndarray:
        p = self.root / file
        try:
            return np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise FeatureStoreError(f"cannot read {p}: {e}") from e
