"""Extraction on Ray Data (``pip install 'finsta-rt[ray]'``; docs/runtime.md). Ray is imported only here.

:class:`EmbedVideos` is the stage for ``Dataset.map_batches``: each actor holds one Model whose ONNX
Runtime sessions use as many intra-op threads as the actor has CPUs (not the whole machine's), and
decodes the videos named in its rows itself, so only paths and embeddings cross the object store.
A bad video is a row with ``status == "failed"`` and its ``error``, never a failed task.

>>> import ray
>>> ds = ray.data.from_items([{"path": p} for p in paths])
>>> out = ds.map_batches(EmbedVideos, fn_constructor_kwargs={"bundle": "bundles/stgt"},
...                      batch_size=8, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, batch_format="numpy")

:func:`extract_on_ray` (``finsta-rt extract --ray``) runs that stage over the inputs and writes the rows
on the driver with the same writer as the single-process extractor, so the folder is the same.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .extract import (
    Progress,
    Summary,
    decoded_outputs,
    folder_info,
    lost,
    path_key,
    plan,
    select_outputs,
    try_decode,
    write_result,
)
from .feature_writer import FeatureWriter
from .model import Model
from .video import Sampling

log = logging.getLogger(__name__)

# columns of the stage's output besides one per saved output
STATUS_COLUMNS = ("path", "status", "error", "timestamps", "ort_threads")


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library (ray[data])
    except ImportError as e:
        raise RuntimeError(f"Ray is not installed ({e}); pip install 'finsta-rt[ray]'") from e
    return ray


def actor_cpus() -> int:
    """CPUs Ray gave this actor (num_cpus of the stage), else the CPUs this process may run on."""
    try:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:  # in an actor
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    except ImportError:
        pass
    return len(os.sched_getaffinity(0))


class EmbedVideos:
    """A callable class for ``ray.data.Dataset.map_batches``: rows with a ``path`` column in; per row,
    ``status`` (ok / failed), ``error``, ``timestamps``, ``ort_threads`` and one column per saved
    output (``[clips, ...]`` arrays; an empty array in a failed row) out."""

    def __init__(
        self,
        bundle: str | Path,
        sampling: str | None = None,
        outputs: Sequence[str] | str | None = None,
        device: str = "cpu",
        threads: int = 0,
        timeout: float | None = 120.0,
    ):
        self.threads = threads or actor_cpus()  # 0: the actor's CPUs, never the whole machine's
        self.model = Model(bundle, device=device, threads=self.threads)
        self.sampling = Sampling.parse(sampling or f"uniform:{self.model.bundle.preprocess.frames}")
        self.outputs = select_outputs(self.model.bundle, outputs)
        self.timeout = timeout
        # the setting the sessions really got (what ORT will use), reported in every row
        self.ort_threads = self.model.sessions["video"].get_session_options().intra_op_num_threads
        self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="decode")
        log.info("EmbedVideos actor: %d CPUs, ONNX Runtime intra_op_num_threads=%d", self.threads, self.ort_threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        decoded = list(self.pool.map(lambda p: try_decode(Path(p), self.sampling, self.model, self.timeout), paths))
        results: dict[str, tuple[dict | str, np.ndarray]] = {
            p: (d, np.zeros(0, np.float32)) for p, d in zip(paths, decoded, strict=True) if isinstance(d, str)
        }
        items = [(p, *d) for p, d in zip(paths, decoded, strict=True) if not isinstance(d, str)]
        for p, result, stamps in decoded_outputs(self.model, items):
            results[p] = (result, np.asarray(stamps, np.float64))
        n = len(paths)
        cols: dict[str, np.ndarray] = {
            "path": np.asarray(paths, dtype=object),
            "status": np.asarray(["failed" if isinstance(results[p][0], str) else "ok" for p in paths], dtype=object),
            "error": np.asarray([r if isinstance(r, str) else "" for r, _ in (results[p] for p in paths)], object),
            "timestamps": _column([results[p][1] for p in paths]),
            "ort_threads": np.full(n, self.ort_threads, np.int64),
        }
        for name in self.outputs:
            empty = np.zeros(0, np.float32)
            cols[name] = _column([empty if isinstance(r, str) else r[name] for r, _ in (results[p] for p in paths)])
        return cols


def _column(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of per-row arrays: one stacked array when they agree in shape, else an object array."""
    if arrays and all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays):
        return np.stack(arrays)
    col = np.empty(len(arrays), dtype=object)
    col[:] = arrays
    return col


def extract_on_ray(
    bundle: str | Path,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    address: str | None = None,
    sampling: str | None = None,
    batch_size: int = 8,
    timeout: float | None = 120.0,
    resume: bool = True,
    progress: bool = True,
    outputs: Sequence[str] | str | None = None,
    layout: str = "per-video",
    pack_size: int = 1024,
    shard: tuple[int, int] | None = None,
    device: str = "cpu",
    actors: int | None = None,
    cpus_per_actor: int = 1,
) -> Summary:
    """:func:`finsta_rt.extract.extract` on Ray: the videos still to do go through :class:`EmbedVideos`
    (``actors`` of ``cpus_per_actor`` CPUs each; default as many as the cluster's CPUs allow) and the
    driver writes what comes back into ``out_dir``. Joins the running Ray, else ``ray.init(address)``
    (a local one when ``address`` is None); the folder must be reachable from the driver, the
    videos from the actors."""
    ray = _ray()
    b = Bundle.load(bundle)
    sampling_ = Sampling.parse(sampling or f"uniform:{b.preprocess.frames}")
    info = folder_info(b, sampling_, layout, select_outputs(b, outputs))
    if batch_size < 1 or cpus_per_actor < 1 or (actors is not None and actors < 1):
        raise ValueError(
            f"batch_size, actors and cpus_per_actor must be >= 1: {batch_size}, {actors}, {cpus_per_actor}"
        )
    writer = FeatureWriter(Path(out_dir), info, pack_size=pack_size)
    t0 = time.monotonic()
    summary = Summary()
    try:
        todo, summary = plan(paths, writer, resume, shard)
        bar = Progress(summary.total, progress)
        bar.update(summary)
        if todo:
            if not ray.is_initialized():
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            ray.data.DataContext.get_current().enable_progress_bars = progress
            actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)
            # blocks of at most one batch, at least one per actor, so that every actor gets work
            actors = min(actors, len(todo))
            blocks = max(actors, -(-len(todo) // batch_size))
            items = [{"path": path_key(p)} for p in todo]
            ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                EmbedVideos,
                fn_constructor_kwargs={
                    "bundle": str(b.root),
                    "sampling": str(sampling_),
                    "outputs": info["outputs"],
                    "device": device,
                    "timeout": timeout,
                },
                batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=cpus_per_actor,
                batch_format="numpy",
            )
            threads = set()
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i, path in enumerate(batch["path"]):
                    threads.add(int(batch["ort_threads"][i]))
                    result = (
                        str(batch["error"][i])
                        if batch["status"][i] != "ok"
                        else {k: np.asarray(batch[k][i]) for k in info["outputs"]}
                    )
                    write_result(writer, summary, Path(path), result, batch["timestamps"][i])
                bar.update(summary)
            log.info("Ray actors ran ONNX Runtime with intra_op_num_threads %s", sorted(threads))
            summary.ort_threads = sorted(threads)
    finally:
        lost(summary, writer.close())
    summary.seconds = time.monotonic() - t0
    bar.update(summary, final=True)
    return summary
