"""The writing side of an extraction folder (the format is in finsta_rt/feature_store.py, docs/runtime.md).

Several writers (processes, or a Ray driver) may write one folder at once: each holds the folder's
lock (``.lock``, flock) only while it appends a manifest row or compacts the manifest, so that no
row is lost: compaction re-reads every writer's rows from disk before rewriting, and a writer whose
manifest was replaced by another's compaction reopens it before its next row. Every array is written
to a temporary name, fsynced and renamed; a row is appended only after its arrays are in place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .feature_store import (
    ERRORS,
    FEATURES,
    LAYOUTS,
    LOCK,
    MANIFEST,
    PACKS,
    RUN_INFO,
    read_manifest,
    row_is_complete,
)

log = logging.getLogger(__name__)


class ExtractError(RuntimeError):
    """The output folder cannot be used (another bundle's features, not writable, full...)."""


def _why(e: OSError) -> str:
    return e.strerror or str(e)


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    _atomic_write(path, lambda f: np.save(f, arr))


class FolderLock:
    """The folder's flock, taken for short critical sections (``with lock.held():``)."""

    def __init__(self, out: Path):
        self.path = out / LOCK
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.debug("waiting for the lock on %s", self.path)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


class JsonLog:
    """An append-only JSON-lines file written one row per write(2) on an O_APPEND descriptor: a row
    is never interleaved with another's, and a failed write raises at once (nothing stays buffered).
    With a ``lock``, each row is appended under it, reopening the file first if another writer's
    compaction replaced it."""

    def __init__(self, path: Path, lock: FolderLock | None = None):
        self.path, self.lock = path, lock
        self.fd = -1
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A writer killed mid-row left a torn line: end it, or the next row would be lost with it."""
        size = os.fstat(self.fd).st_size
        if size and os.pread(self.fd, 1, size - 1) != b"\n":
            self._write(b"\n")

    def _write(self, data: bytes) -> None:
        n = os.write(self.fd, data)
        if n != len(data):  # a short write: the disk filled up mid-row
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    def append(self, row: dict) -> None:
        data = (json.dumps(row) + "\n").encode()
        if self.lock is None:
            return self._write(data)
        with self.lock.held():
            try:
                replaced = os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
            except FileNotFoundError:
                replaced = True
            if replaced:
                os.close(self.fd)
                self._open()
            else:  # another writer may have died mid-row since this one's last row
                self._end_torn_line()
            self._write(data)

    def close(self) -> None:
        os.close(self.fd)


def remove_stale_temporaries(out: Path) -> None:
    """A run killed while writing leaves ``.NAME.tmpPID``; the final name never holds a partial file.
    Temporaries of processes that no longer exist are removed (live ones belong to another run)."""
    for tmp in [t for d in (out, out / FEATURES, out / PACKS) for t in d.glob(".*.tmp*")]:
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


@dataclass
class _Pending:
    key: str
    arrays: dict[str, np.ndarray]  # output -> [clips, ...]
    row: dict


@dataclass
class FeatureWriter:
    """Writes the rows of one run into ``out``: ``ok(key, arrays, ...)`` and ``failed(key, reason)``,
    then ``close()`` (packs are flushed, the manifest compacted). ``info`` is what extract.json holds
    (bundle, bundle_sha256, sampling, family, layout, outputs); a folder made otherwise is refused."""

    out: Path
    info: dict
    pack_size: int = 1024
    rows: dict[str, dict] = field(default_factory=dict)  # the manifest as this writer last read it
    writer_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.info.get("layout") not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.info.get('layout')!r}")
        if self.pack_size < 1:
            raise ValueError(f"pack_size must be >= 1, got {self.pack_size}")
        self._logs: list[JsonLog] = []
        self._pending: list[_Pending] = []
        self._packs = 0
        self._appended = False
        self.lock = self._prepare()
        try:
            self.rows = read_manifest(self.out)
            self.manifest = self._log(self.out / MANIFEST, self.lock)
            self.errors = self._log(self.out / ERRORS)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ the folder

    def _prepare(self) -> FolderLock:
        out, info = self.out, self.info
        try:
            (out / (FEATURES if info["layout"] == "per-video" else PACKS)).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExtractError(f"cannot create the output folder {out}: {_why(e)}") from e
        if not os.access(out, os.W_OK):
            raise ExtractError(f"output folder {out} is not writable")
        try:
            lock = FolderLock(out)
        except OSError as e:
            raise ExtractError(f"cannot lock the output folder {out}: {_why(e)}") from e
        try:
            with lock.held():
                self._check_info()
                remove_stale_temporaries(out)
        except BaseException:
            lock.close()
            raise
        return lock

    def _check_info(self) -> None:
        info_path, info = self.out / RUN_INFO, self.info
        if not info_path.is_file():
            try:
                atomic_write_bytes(info_path, json.dumps(info, indent=1).encode())
            except OSError as e:
                raise ExtractError(f"cannot write {info_path}: {_why(e)}") from e
            return
        try:
            old = json.loads(info_path.read_text())
            old = old if isinstance(old, dict) else {}
        except (OSError, ValueError) as e:
            raise ExtractError(f"cannot read {info_path}: {e}; use a new output folder") from e
        if (old.get("bundle_sha256"), old.get("sampling")) != (info["bundle_sha256"], info["sampling"]):
            raise ExtractError(
                f"{self.out} holds features from another bundle or sampling ({old.get('bundle')}, "
                f"{old.get('sampling')}); use a new output folder"
            )
        # a folder of the first format (no layout or outputs recorded) holds per-video video_embedding
        was = (old.get("layout", "per-video"), old.get("outputs", ["video_embedding"]))
        if was != (info["layout"], info["outputs"]):
            raise ExtractError(
                f"{self.out} holds layout {was[0]} with outputs {','.join(was[1])}, not layout {info['layout']} "
                f"with outputs {','.join(info['outputs'])}; use the same options or a new output folder"
            )

    def _log(self, path: Path, lock: FolderLock | None = None) -> JsonLog:
        try:
            log_ = JsonLog(path, lock)
        except OSError as e:
            raise self.stop(e) from e
        self._logs.append(log_)
        return log_

    def stop(self, e: OSError) -> ExtractError:
        return ExtractError(
            f"cannot write {e.filename or self.out}: {_why(e)}; stopped "
            "(what was written is whole: run again to resume)"
        )

    def is_done(self, key: str) -> bool:
        row = self.rows.get(key)
        return bool(row) and row_is_complete(self.out, row)

    # ------------------------------------------------------------------ rows

    def _record(self, log_: JsonLog, row: dict) -> None:
        try:
            log_.append(row)
        except OSError as e:
            raise self.stop(e) from e
        if log_ is self.manifest:
            self.rows[row["path"]] = row
            self._appended = True

    def failed(self, key: str, reason: str) -> None:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._record(self.errors, {"path": key, "error": reason, "time": now})
        self._record(
            self.manifest, {"path": key, "status": "failed", "error": reason, "bundle": self.info["bundle_sha256"]}
        )

    def ok(self, key: str, arrays: dict[str, np.ndarray], timestamps, name: str) -> list[tuple[str, str]]:
        """Saves the selected outputs of one video (``arrays``: output -> [clips, ...]) under file stem
        ``name``. In the packed layout the video waits in memory until its pack is written (``flush``).
        Returns (key, reason) of the videos this call could not write (recorded as failed): this one, or
        those of a pack written now."""
        arrays = {k: arrays[k] for k in self.info["outputs"]}
        clips = next(iter(arrays.values())).shape[0]
        segmented = self.info["sampling"].startswith("segments")
        row = {
            "path": key,
            "status": "ok",
            "clips": clips,
            "timestamps": [round(float(t), 4) for t in timestamps],
            "bundle": self.info["bundle_sha256"],
            "sampling": self.info["sampling"],
        }
        if self.info["layout"] == "packed":
            failures = []
            if self._pending and any(
                a.shape[1:] != self._pending[0].arrays[k].shape[1:] or a.dtype != self._pending[0].arrays[k].dtype
                for k, a in arrays.items()
            ):
                failures = self.flush()  # a pack stacks clips of one shape (fps:F: tokens of many lengths)
            self._pending.append(_Pending(key, arrays, row))
            if len(self._pending) >= self.pack_size:
                failures += self.flush()
            return failures
        outputs = {}
        for out_name, a in arrays.items():
            vec = a if segmented else a[0]
            rel = f"{FEATURES}/{name}.npy" if out_name == "video_embedding" else f"{FEATURES}/{name}.{out_name}.npy"
            try:
                atomic_save_npy(self.out / rel, vec)
            except OSError as e:  # disk full, read-only, no permission: this video's error
                reason = f"{key}: cannot write its features to {self.out / FEATURES}: {_why(e)}"
                self.failed(key, reason)
                return [(key, reason)]
            outputs[out_name] = {"file": rel, "shape": list(vec.shape)}
        if "video_embedding" in outputs:  # the first format's fields, which older readers use
            row |= outputs["video_embedding"]
        self._record(self.manifest, row | {"outputs": outputs})
        return []

    def flush(self) -> list[tuple[str, str]]:
        """Writes the waiting videos as one pack; returns (key, reason) of those that could not be."""
        if not self._pending:
            return []
        items, self._pending = self._pending, []
        stem = f"{PACKS}/{self.writer_id}-{self._packs:05d}"
        self._packs += 1
        bounds = np.cumsum([0] + [p.arrays[next(iter(p.arrays))].shape[0] for p in items])
        files = {}
        try:
            for out_name in self.info["outputs"]:
                rel = f"{stem}.{out_name}.npy"
                atomic_save_npy(self.out / rel, np.concatenate([p.arrays[out_name] for p in items]))
                files[out_name] = rel
        except OSError as e:
            for rel in files.values():
                (self.out / rel).unlink(missing_ok=True)
            failures = []
            for p in items:
                reason = f"{p.key}: cannot write its features to {self.out / PACKS}: {_why(e)}"
                self.failed(p.key, reason)
                failures.append((p.key, reason))
            return failures
        segmented = self.info["sampling"].startswith("segments")
        for i, p in enumerate(items):
            outputs = {
                k: {
                    "file": files[k],
                    "shape": list(p.arrays[k].shape if segmented else p.arrays[k].shape[1:]),
                    "rows": [int(bounds[i]), int(bounds[i + 1])],
                }
                for k in self.info["outputs"]
            }
            self._record(self.manifest, p.row | {"outputs": outputs})
        return []

    def close(self) -> list[tuple[str, str]]:
        """Flushes the last pack, closes the logs and compacts the manifest; returns flush's failures."""
        failures: list[tuple[str, str]] = []
        try:
            if self._logs and self._pending:
                failures = self.flush()
        finally:
            for log_ in self._logs:
                log_.close()
            self._logs.clear()
            if self._appended:
                self._compact()
            if getattr(self, "lock", None) is not None:
                self.lock.close()
                self.lock = None
        return failures

    def _compact(self) -> None:
        """Rewrites the manifest with exactly one row (the latest) per video: every writer's rows, read
        from disk under the lock; when that cannot be written (disk full) the appended manifest stays,
        which read_manifest reads the same way."""
        with self.lock.held():
            rows = read_manifest(self.out)
            data = "".join(json.dumps(r) + "\n" for r in rows.values()).encode()
            try:
                atomic_write_bytes(self.out / MANIFEST, data)
            except OSError as e:
                log.warning("cannot compact %s: %s (the appended rows stand)", self.out / MANIFEST, _why(e))
