"""Feature extraction over many videos (docs/runtime.md).

Decoding runs ahead on worker threads (PyAV, numpy and ONNX Runtime release the GIL) while the
main thread batches clips through the video tower. Output folder:

    features/<name>-<hash>.npy   video_embedding per video: [Q, E], or [S, Q, E] for segments:S
    manifest.jsonl               one row per video: path, status, file, shape, timestamps, bundle hash
    errors.jsonl                 one row per failed video: path, error
    extract.json                 the bundle and settings the folder was made with

Every file is written to a temporary name and renamed into place, so an interrupted run leaves no
partial file; a new run skips videos that already have features (resume) and compacts the
manifest to one row per video. A run holds a lock on the folder (``.lock``, flock): a second run
into the same folder waits for it instead of losing the other's manifest rows. A video whose
features cannot be written (disk full, read-only, no permission) is that video's error; when the
manifest or errors.jsonl cannot be written either, the run stops with ExtractError.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import sys
import time
import types
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .model import Model
from .video import Sampling, VideoError, read_frames

log = logging.getLogger(__name__)

MANIFEST, ERRORS, RUN_INFO, FEATURES, LOCK = "manifest.jsonl", "errors.jsonl", "extract.json", "features", ".lock"
MAX_FRAMES_PER_CLIP = 512


class ExtractError(RuntimeError):
    """The output folder cannot be used (another bundle's features, not writable, full...)."""


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


def _atomic_write(path: Path, write) -> None:
    """``write(file)`` into a temporary name renamed onto ``path``; on failure the temporary is removed."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    _atomic_write(path, lambda f: np.save(f, arr))


def _why(e: OSError) -> str:
    return e.strerror or str(e)


class _Log:
    """An append-only JSON-lines file written one row per write(2) on an O_APPEND descriptor: a row
    is never interleaved with another's, and a failed write raises at once (nothing stays buffered)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self.fd).st_size
        if size:  # a run killed mid-row left a torn line: end it, or the next row would be lost with it
            with open(path, "rb") as f:
                f.seek(size - 1)
                torn = f.read(1) != b"\n"
            if torn:
                self._write(b"\n")

    def _write(self, data: bytes) -> None:
        n = os.write(self.fd, data)
        if n != len(data):  # a short write: the disk filled up mid-row
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    def append(self, row: dict) -> None:
        self._write((json.dumps(row) + "\n").encode())

    def close(self) -> None:
        os.close(self.fd)


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
        msg = f"[{n}/{self.total}] {s.done} done, {s.skipped} skipped, {s.failed} failed, {rate:.2f} videos/s" + (
            "" if final or not np.isfinite(eta) else f", eta {eta:.0f}s"
        )
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
        raise VideoError(
            path,
            f"{per} frames in one clip is more than {MAX_FRAMES_PER_CLIP}; "
            "sample fewer (uniform:N) or split it (segments:S)",
        )
    return clip.frames.reshape(clips, per, *clip.frames.shape[1:]), clip.timestamps


def _lock(out: Path) -> int:
    """An exclusive flock on ``out/.lock`` for the run; waits while another run holds it."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("another finsta-rt extract is writing into %s: waiting for it to finish", out)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _prepare(out: Path, info: dict) -> int:
    """Creates and locks the output folder and checks it was made with the same bundle and sampling;
    returns the lock's descriptor. ExtractError (one line) when the folder cannot be used."""
    try:
        (out / FEATURES).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExtractError(f"cannot create the output folder {out}: {_why(e)}") from e
    if not os.access(out, os.W_OK):
        raise ExtractError(f"output folder {out} is not writable")
    try:
        fd = _lock(out)
    except OSError as e:
        raise ExtractError(f"cannot lock the output folder {out}: {_why(e)}") from e
    try:
        info_path = out / RUN_INFO
        if info_path.is_file():
            try:
                old = json.loads(info_path.read_text())
                old = old if isinstance(old, dict) else {}
            except (OSError, ValueError) as e:
                raise ExtractError(f"cannot read {info_path}: {e}; use a new output folder") from e
            if (old.get("bundle_sha256"), old.get("sampling")) != (info["bundle_sha256"], info["sampling"]):
                raise ExtractError(
                    f"{out} holds features from another bundle or sampling ({old.get('bundle')}, "
                    f"{old.get('sampling')}); use a new output folder"
                )
        else:
            try:
                _atomic_write_bytes(info_path, json.dumps(info, indent=1).encode())
            except OSError as e:
                raise ExtractError(f"cannot write {info_path}: {_why(e)}") from e
        _remove_stale_temporaries(out)
    except BaseException:
        os.close(fd)
        raise
    return fd


def extract(
    model: Model,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    sampling: str | None = None,
    batch_size: int = 8,
    workers: int = 2,
    timeout: float | None = 120.0,
    resume: bool = True,
    progress: bool = True,
) -> Summary:
    """Extracts features of ``paths`` into ``out_dir``; a video's failure is recorded, never raised.
    Raises ExtractError when the folder cannot be used or its records cannot be written."""
    out = Path(out_dir)
    sampling_ = Sampling.parse(sampling or f"uniform:{model.bundle.preprocess.frames}")
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be >= 1, got {batch_size} and {workers}")
    paths = [Path(p) for p in paths]
    info = {
        "bundle": str(model.bundle.root),
        "bundle_sha256": model.bundle.sha256,
        "sampling": str(sampling_),
        "family": model.bundle.family,
    }
    lock = _prepare(out, info)
    try:
        return _run(model, paths, out, sampling_, batch_size, workers, timeout, resume, progress)
    finally:
        os.close(lock)  # releases the flock


def _run(
    model: Model,
    paths: list[Path],
    out: Path,
    sampling_: Sampling,
    batch_size: int,
    workers: int,
    timeout: float | None,
    resume: bool,
    progress: bool,
) -> Summary:
    rows = read_manifest(out)
    summary = Summary(total=len(paths))
    todo: list[Path] = []
    for p in paths:
        row = rows.get(str(p.resolve()) if p.exists() else str(p.absolute()))
        if resume and row and row.get("status") == "ok" and (out / str(row.get("file"))).is_file():
            summary.skipped += 1
        else:
            todo.append(p)
    bar = _Progress(len(paths), progress)
    bar.update(summary)
    t0 = time.monotonic()
    logs: list[_Log] = []
    appended: list[str] = []  # rows this run added to the manifest (then it is compacted)

    def stop(e: OSError) -> ExtractError:
        n = summary.done + summary.failed
        return ExtractError(
            f"cannot write {e.filename or out}: {_why(e)}; stopped after {n} of {len(todo)} "
            "videos (what was written is whole: run again to resume)"
        )

    try:
        try:
            manifest = _Log(out / MANIFEST)
            logs.append(manifest)
            errors = _Log(out / ERRORS)
            logs.append(errors)
        except OSError as e:
            raise stop(e) from e

        def record(row: dict, log_: _Log = manifest) -> None:
            try:
                log_.append(row)
            except OSError as e:
                raise stop(e) from e
            if log_ is manifest:
                rows[row["path"]] = row
                appended.append(row["path"])

        def fail(path: Path, reason: str) -> None:
            key = str(path.resolve()) if path.exists() else str(path.absolute())
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            record({"path": key, "error": reason, "time": now}, errors)
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
                    vec = emb[k : k + c.shape[0]]
                    k += c.shape[0]
                    vec = vec[0] if c.shape[0] == 1 and sampling_.kind != "segments" else vec
                    name = feature_name(path)
                    try:
                        _atomic_save_npy(out / FEATURES / name, vec.astype(np.float32))
                    except OSError as e:  # disk full, read-only, no permission: this video's error
                        fail(path, f"{path}: cannot write its features to {out / FEATURES}: {_why(e)}")
                        continue
                    record(
                        {
                            "path": str(path.resolve()),
                            "status": "ok",
                            "file": f"{FEATURES}/{name}",
                            "shape": list(vec.shape),
                            "timestamps": [round(float(t), 4) for t in stamps],
                            "bundle": model.bundle.sha256,
                            "sampling": str(sampling_),
                        }
                    )
                    summary.done += 1
            pending.clear()
            bar.update(summary)

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

            try:
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
            except BaseException:
                for _, fut in ahead:  # do not decode the rest of a job that is stopping
                    fut.cancel()
                raise
    finally:
        for log_ in logs:
            log_.close()
        if appended:
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
        try:
            tmp.unlink(missing_ok=True)
        except OSError as e:
            log.warning("cannot remove %s: %s", tmp, _why(e))


def _compact_manifest(out: Path, rows: dict[str, dict]) -> None:
    """Rewrites the manifest with exactly one row (the latest) per video; when that cannot be written
    (disk full) the appended manifest stays, which read_manifest reads the same way."""
    data = "".join(json.dumps(r) + "\n" for r in rows.values()).encode()
    try:
        _atomic_write_bytes(out / MANIFEST, data)
    except OSError as e:
        log.warning("cannot compact %s: %s (the appended rows stand)", out / MANIFEST, _why(e))


class _CallableModule(types.ModuleType):
    """``finsta_rt.extract(...)`` is ``finsta_rt.extract.extract(...)``: the package exports the
    extraction entry point under the submodule's own name (see finsta_rt/__init__.py)."""

    def __call__(self, *args, **kwargs) -> Summary:
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
