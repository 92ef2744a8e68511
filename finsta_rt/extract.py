"""Feature extraction over many videos (docs/runtime.md).

Decoding runs ahead on worker threads (PyAV, numpy and ONNX Runtime release the GIL) while the
main thread batches clips through the video tower. The folder's format and its reader are in
finsta_rt/feature_store.py, its writer (atomic files, the lock, packs, compaction) in
finsta_rt/feature_writer.py; finsta_rt/ray.py runs the same extraction on Ray Data.

Every file is written to a temporary name and renamed into place, so an interrupted run leaves no
partial file; a new run skips videos that already have features (resume) and compacts the
manifest to one row per video. Several runs may write one folder at once (``--shard I/N`` in each):
rows are appended under the folder's lock and compaction merges every run's rows, so none is lost.
A video whose features cannot be written (disk full, read-only, no permission) is that video's
error; when the manifest or errors.jsonl cannot be written either, the run stops with ExtractError.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import time
import types
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .feature_store import ERRORS, FEATURES, LAYOUTS, MANIFEST, PACKS, RUN_INFO, read_manifest
from .feature_writer import ExtractError, FeatureWriter
from .model import Model
from .video import Sampling, VideoError, read_frames

log = logging.getLogger(__name__)

MAX_FRAMES_PER_CLIP = 512
# the folder's names and read_manifest are re-exported for the modules that imported them from here
__all__ = ["ERRORS", "FEATURES", "MANIFEST", "PACKS", "RUN_INFO", "ExtractError", "Summary", "extract"]
__all__ += ["parse_shard", "read_manifest", "shard_of"]


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    skipped: int = 0  # already extracted (resume)
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    ort_threads: list[int] = field(default_factory=list)  # on Ray: the intra-op threads of the actors' sessions


def feature_name(path: Path) -> str:
    """Stable, unique, readable file stem for a video's features."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "video"
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    return f"{stem}-{digest}"


def path_key(path: Path) -> str:
    """The manifest's key of a video: its resolved path (absolute when it does not exist)."""
    return str(path.resolve()) if path.exists() else str(path.absolute())


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) of a video: a stable hash of its key, the same in every process and
    for any order or subset of the inputs."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; ValueError saying what is wrong."""
    i, sep, n = text.partition("/")
    if not sep or not i.strip().isdigit() or not n.strip().isdigit() or not 0 <= int(i) < int(n):
        raise ValueError(f"--shard must be I/N with 0 <= I < N (as in 0/4), got {text!r}")
    return int(i), int(n)


def select_outputs(bundle: Bundle, outputs: Sequence[str] | str | None) -> list[str]:
    """The video outputs to save: None -> video_embedding; "all" -> every output of the video graph;
    else names (a list, or one comma-separated string)."""
    names = [t.name for t in bundle.graphs["video"].outputs]
    if outputs is None:
        outputs = ["video_embedding"]
    elif isinstance(outputs, str):
        outputs = names if outputs.strip() == "all" else [o.strip() for o in outputs.split(",") if o.strip()]
    unknown = [o for o in outputs if o not in names]
    if unknown or not outputs:
        raise ValueError(
            f"outputs {', '.join(unknown) or '(none)'}: the video graph of {bundle.name} has "
            f"{', '.join(names)} (or 'all')"
        )
    return list(dict.fromkeys(outputs))


def folder_info(bundle: Bundle, sampling: Sampling, layout: str, outputs: list[str]) -> dict:
    """What extract.json records: a folder is only resumed with the same values."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return {
        "bundle": str(bundle.root),
        "bundle_sha256": bundle.sha256,
        "sampling": str(sampling),
        "family": bundle.family,
        "layout": layout,
        "outputs": outputs,
    }


def plan(
    paths: Iterable[str | Path], writer: FeatureWriter, resume: bool, shard: tuple[int, int] | None
) -> tuple[list[Path], Summary]:
    """The videos of this shard still to extract, and the Summary counting those already done."""
    todo, summary = [], Summary()
    for p in map(Path, paths):
        key = path_key(p)
        if shard is not None and shard_of(key, shard[1]) != shard[0]:
            continue
        summary.total += 1
        if resume and writer.is_done(key):
            summary.skipped += 1
        else:
            todo.append(p)
    return todo, summary


class Progress:
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


def decode(path: Path, sampling: Sampling, model: Model, timeout: float | None) -> np.ndarray:
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


def try_decode(path: Path, sampling: Sampling, model: Model, timeout: float | None) -> tuple | str:
    """:func:`decode`, or the reason the video cannot be decoded (a bad video never stops the job)."""
    try:
        return decode(path, sampling, model, timeout)
    except VideoError as e:
        return str(e)
    except Exception as e:  # an unexpected decoder failure is that video's error too
        return f"{type(e).__name__}: {e}"


def decoded_outputs(model: Model, items: list) -> Iterator[tuple[Path, dict | str, np.ndarray]]:
    """Runs the video graph on decoded ``items`` [(path, clips [c, T, S, S, 3], timestamps)], clips of
    equal length together; yields (path, {output: [c, ...]} or the reason of a model failure, timestamps)."""
    by_len: dict[int, list] = {}
    for item in items:
        by_len.setdefault(item[1].shape[1], []).append(item)
    for group in by_len.values():
        clips = np.concatenate([c for _, c, _ in group])
        try:
            outs = model.embed_frames(clips)
        except Exception as e:  # a model failure is recorded for each video of the batch
            for path, _, stamps in group:
                yield path, f"model failed: {e}", stamps
            continue
        k = 0
        for path, c, stamps in group:
            n = c.shape[0]
            yield path, {name: _stored(v[k : k + n]) for name, v in outs.items()}, stamps
            k += n


def _stored(a: np.ndarray) -> np.ndarray:
    """float32 for floating outputs (as the features were always saved), other dtypes as they are."""
    return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else np.ascontiguousarray(a)


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
    outputs: Sequence[str] | str | None = None,
    layout: str = "per-video",
    pack_size: int = 1024,
    shard: tuple[int, int] | None = None,
) -> Summary:
    """Extracts features of ``paths`` into ``out_dir``; a video's failure is recorded, never raised.
    ``outputs``: video outputs to save (None: video_embedding; "all"); ``layout``: per-video or packed
    (``pack_size`` videos per file); ``shard``: (I, N) keeps the videos of shard I of N (shard_of).
    Raises ExtractError when the folder cannot be used or its records cannot be written."""
    sampling_ = Sampling.parse(sampling or f"uniform:{model.bundle.preprocess.frames}")
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be >= 1, got {batch_size} and {workers}")
    info = folder_info(model.bundle, sampling_, layout, select_outputs(model.bundle, outputs))
    writer = FeatureWriter(Path(out_dir), info, pack_size=pack_size)
    summary = Summary()
    try:
        todo, summary = plan(paths, writer, resume, shard)
        bar = Progress(summary.total, progress)
        bar.update(summary)
        t0 = time.monotonic()
        _run(model, todo, writer, sampling_, batch_size, workers, timeout, summary, bar)
    finally:
        lost(summary, writer.close())
    summary.seconds = time.monotonic() - t0
    bar.update(summary, final=True)
    return summary


def lost(summary: Summary, failures: list[tuple[str, str]]) -> None:
    """Videos counted as done whose features could not be written after all (their pack failed)."""
    for key, reason in failures:
        summary.done -= 1
        record_failure(summary, key, reason)


def record_failure(summary: Summary, path: str | Path, reason: str) -> None:
    summary.failed += 1
    summary.failures.append((str(path), reason))
    log.error("%s", reason if reason.startswith(str(path)) else f"{path}: {reason}")


def write_result(writer: FeatureWriter, summary: Summary, path: Path, result: dict | str, timestamps) -> None:
    """One video's outputs (or failure reason) into the folder and the summary."""
    key = path_key(path)
    if isinstance(result, str):
        writer.failed(key, result)
        record_failure(summary, path, result)
        return
    summary.done += 1
    lost(summary, writer.ok(key, result, timestamps, feature_name(path)))


def _run(
    model: Model,
    todo: list[Path],
    writer: FeatureWriter,
    sampling_: Sampling,
    batch_size: int,
    workers: int,
    timeout: float | None,
    summary: Summary,
    bar: Progress,
) -> None:
    pending: list[tuple[Path, np.ndarray, np.ndarray]] = []  # (path, clips, timestamps) waiting for the model

    def fail(path: Path, reason: str) -> None:
        writer.failed(path_key(path), reason)
        record_failure(summary, path, reason)
        bar.update(summary)

    def flush_batch() -> None:
        for path, result, stamps in decoded_outputs(model, pending):
            write_result(writer, summary, path, result, stamps)
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
                ahead.append((p, pool.submit(try_decode, p, sampling_, model, timeout)))

        try:
            fill()
            while ahead:
                path, fut = ahead.popleft()
                fill()
                decoded = fut.result()
                if isinstance(decoded, str):
                    fail(path, decoded)
                    continue
                clips, stamps = decoded
                pending.append((path, clips, stamps))
                if sum(c.shape[0] for _, c, _ in pending) >= batch_size:
                    flush_batch()
            flush_batch()
        except BaseException:
            for _, fut in ahead:  # do not decode the rest of a job that is stopping
                fut.cancel()
            raise


class _CallableModule(types.ModuleType):
    """``finsta_rt.extract(...)`` is ``finsta_rt.extract.extract(...)``: the package exports the
    extraction entry point under the submodule's own name (see finsta_rt/__init__.py)."""

    def __call__(self, *args, **kwargs) -> Summary:
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
