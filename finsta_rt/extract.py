"""Feature extraction over many videos (DESIGN.md §5).

Decoding runs ahead on worker threads (PyAV, numpy and ONNX Runtime release the GIL) while the
main thread batches clips through the video tower. Output folder:

    features/<name>-<hash>.npy   video_embedding per video: [Q, E], or [S, Q, E] for segments:S
    manifest.jsonl               one row per video: path, status, file, shape, timestamps, bundle hash
    errors.jsonl                 one row per failed video: path, error
    extract.json                 the bundle and settings the folder was made with

Every file is written to a temporary name and renamed into place, so an interrupted run leaves no
partial file; a new run skips videos that already have features (resume) and compacts the
manifest to one row per video.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .model import Model
from .video import Sampling, VideoError, read_frames

log = logging.getLogger(__name__)

MANIFEST, ERRORS, RUN_INFO, FEATURES = "manifest.jsonl", "errors.jsonl", "extract.json", "features"
MAX_FRAMES_PER_CLIP = 512


class ExtractError(RuntimeError):
    """The output folder cannot be used (another bundle's features, not writable...)."""


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    skipped: int = 0  # already extracted (resume)
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


def feature_name(path: Path) -> str:
    """Stable, unique, readable file name for a video's features."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "video"
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    return f"{stem}-{digest}.npy"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """Latest row per video path (a crash can leave a torn last line: it is ignored)."""
    rows: dict[str, dict] = {}
    p = out_dir / MANIFEST
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["path"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return rows


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.t0 = self.last = time.monotonic()

    def update(self, s: Summary, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and not self.tty and now - self.last < 5:
            return
        self.last = now
        n = s.done + s.failed + s.skipped
        rate = (s.done + s.failed) / max(now - self.t0, 1e-9)
        eta = (self.total - n) / rate if rate > 0 else float("nan")
        msg = (f"[{n}/{self.total}] {s.done} done, {s.skipped} skipped, {s.failed} failed, "
               f"{rate:.2f} videos/s" + ("" if final or not np.isfinite(eta) else f", eta {eta:.0f}s"))
        if self.tty:
            sys.stderr.write("\r" + msg + ("\n" if final else ""))
            sys.stderr.flush()
        else:
            log.info(msg)


def _decode(path: Path, sampling: Sampling, model: Model, timeout: float | None) -> np.ndarray:
    pre = model.bundle.preprocess
    clip = read_frames(path, sampling, transform=pre, frames_per_clip=pre.frames, timeout=timeout)
    n = clip.frames.shape[0]
    clips = int(sampling.value) if sampling.kind == "segments" else 1
    per = n // clips
    if per > MAX_FRAMES_PER_CLIP:
        raise VideoError(path, f"{per} frames in one clip is more than {MAX_FRAMES_PER_CLIP}; "
                               "sample fewer (uniform:N) or split it (segments:S)")
    return clip.frames.reshape(clips, per, *clip.frames.shape[1:]), clip.timestamps


def extract(model: Model, paths: Iterable[Path], out_dir: str | Path, sampling: str | None = None,
            batch_size: int = 8, workers: int = 2, timeout: float | None = 120.0, resume: bool = True,
            progress: bool = True) -> Summary:
    """Extracts features of ``paths`` into ``out_dir``; failures are recorded, never raised."""
    out = Path(out_dir)
    sampling_ = Sampling.parse(sampling or f"uniform:{model.bundle.preprocess.frames}")
    paths = list(paths)
    (out / FEATURES).mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise ExtractError(f"output folder {out} is not writable")
    info = {"bundle": str(model.bundle.root), "bundle_sha256": model.bundle.sha256, "sampling": str(sampling_),
            "family": model.bundle.family}
    info_path = out / RUN_INFO
    if info_path.is_file():
        old = json.loads(info_path.read_text())
        if (old.get("bundle_sha256"), old.get("sampling")) != (info["bundle_sha256"], info["sampling"]):
            raise ExtractError(f"{out} holds features from another bundle or sampling ({old.get('bundle')}, "
                               f"{old.get('sampling')}); use a new output folder")
    else:
        _atomic_write_bytes(info_path, json.dumps(info, indent=1).encode())

    _remove_stale_temporaries(out)
    rows = read_manifest(out)
    summary = Summary(total=len(paths))
    todo: list[Path] = []
    for p in paths:
        row = rows.get(str(p.resolve()) if p.exists() else str(p.absolute()))
        if resume and row and row.get("status") == "ok" and (out / row["file"]).is_file():
            summary.skipped += 1
        else:
            todo.append(p)
    bar = _Progress(len(paths), progress)
    bar.update(summary)
    t0 = time.monotonic()
    manifest = open(out / MANIFEST, "a")
    errors = open(out / ERRORS, "a")

    def record(row: dict) -> None:
        manifest.write(json.dumps(row) + "\n")
        manifest.flush()
        rows[row["path"]] = row

    def fail(path: Path, reason: str) -> None:
        key = str(path.resolve()) if path.exists() else str(path.absolute())
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        errors.write(json.dumps({"path": key, "error": reason, "time": now}) + "\n")
        errors.flush()
        record({"path": key, "status": "failed", "error": reason, "bundle": model.bundle.sha256})
        summary.failed += 1
        summary.failures.append((str(path), reason))
        log.error("%s", reason if reason.startswith(str(path)) else f"{path}: {reason}")

    pending: list[tuple[Path, np.ndarray, np.ndarray]] = []  # (path, clips, timestamps) waiting for the model

    def flush_batch() -> None:
        if not pending:
            return
        by_len: dict[int, list] = {}
        for item in pending:
            by_len.setdefault(item[1].shape[1], []).append(item)
        for items in by_len.values():
            clips = np.concatenate([c for _, c, _ in items])
            try:
                emb = model.embed_frames(clips)["video_embedding"]
            except Exception as e:  # a model failure is recorded for each video of the batch
                for path, _, _ in items:
                    fail(path, f"model failed: {e}")
                continue
            k = 0
            for path, c, stamps in items:
                vec = emb[k:k + c.shape[0]]
                k += c.shape[0]
                vec = vec[0] if c.shape[0] == 1 and sampling_.kind != "segments" else vec
                name = feature_name(path)
                _atomic_save_npy(out / FEATURES / name, vec.astype(np.float32))
                record({"path": str(path.resolve()), "status": "ok", "file": f"{FEATURES}/{name}",
                        "shape": list(vec.shape), "timestamps": [round(float(t), 4) for t in stamps],
                        "bundle": model.bundle.sha256, "sampling": str(sampling_)})
                summary.done += 1
        pending.clear()
        bar.update(summary)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
            ahead: deque[tuple[Path, Future]] = deque()
            it = iter(todo)
            depth = max(2 * workers, batch_size)

            def fill() -> None:
                while len(ahead) < depth:
                    p = next(it, None)
                    if p is None:
                        return
                    ahead.append((p, pool.submit(_decode, p, sampling_, model, timeout)))

            fill()
            while ahead:
                path, fut = ahead.popleft()
                fill()
                try:
                    clips, stamps = fut.result()
                except VideoError as e:
                    fail(path, str(e))
                    bar.update(summary)
                    continue
                except Exception as e:  # an unexpected decoder failure must not stop the batch job
                    fail(path, f"{type(e).__name__}: {e}")
                    bar.update(summary)
                    continue
                pending.append((path, clips, stamps))
                if sum(c.shape[0] for _, c, _ in pending) >= batch_size:
                    flush_batch()
            flush_batch()
    finally:
        manifest.close()
        errors.close()
        _compact_manifest(out, rows)
    summary.seconds = time.monotonic() - t0
    bar.update(summary, final=True)
    return summary


def _remove_stale_temporaries(out: Path) -> None:
    """A run killed while writing leaves ``.NAME.tmpPID``; the final name never holds a partial file.
    Temporaries of processes that no longer exist are removed (live ones belong to another run)."""
    for tmp in list(out.glob(".*.tmp*")) + list((out / FEATURES).glob(".*.tmp*")):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        log.info("removing %s left by an interrupted run", tmp)
        tmp.unlink(missing_ok=True)


def _compact_manifest(out: Path, rows: dict[str, dict]) -> None:
    """Rewrites the manifest with exactly one row (the latest) per video."""
    data = "".join(json.dumps(r) + "\n" for r in rows.values()).encode()
    _atomic_write_bytes(out / MANIFEST, data)
