"""The approximate nearest-neighbour index of an extraction folder (docs/runtime.md): usearch's HNSW graph over
the video embeddings, kept in the folder next to the features. ``vectors``:

- ``queries`` (the default): every query vector of every clip row (key ``row·Q + q``). The bundle's score is
  the max over queries of the cosine, so the rows owning the nearest k·Q vectors hold the exact top k: the
  index is only as approximate as HNSW itself.
- ``pooled``: one vector per clip row, its query mean normalised: Q times smaller, but the mean's cosine only
  approximates the max for text queries (exact for video-to-video and for Q = 1 bundles).

    index.json                  what the index was built from (bundle sha256, clip rows, a digest of the rows),
                                its storage dtype and HNSW settings, and the name of its file
    index-<digest>.usearch      the graph and the vectors (i8 or f16), memory-mapped when opened

The index only proposes candidates: ``finsta_rt.search.FeatureIndex`` re-ranks them with the bundle's exact
scorer over the stored features. An index whose record no longer matches the folder (other videos extracted
since, another bundle) is stale: it is refused (search falls back to exact) until ``finsta-rt index`` rebuilds it.
usearch is the optional extra ``finsta-rt[index]``; only this module imports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .feature_store import DEFAULT_OUTPUT, FeatureStore, row_outputs
from .feature_writer import atomic_write_bytes

log = logging.getLogger(__name__)

INDEX_INFO = "index.json"
INDEX_FORMAT = 1
DTYPES = ("i8", "f16", "f32")
DEFAULT_DTYPE = "i8"  # re-ranking with the exact features recovers what i8 loses (benchmarks/bench_search.py)
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 64
VECTORS = ("queries", "pooled")
CANDIDATES = 100  # index vectors looked up per query by default (finsta_rt.search), their rows re-ranked exactly
CHECK_QUERIES, CHECK_K, MIN_RECALL = 200, 10, 0.95  # the build's recall check (self_recall)


class AnnIndexError(ValueError):
    """The index cannot be built or used (usearch missing, stale, unreadable); the message says why."""


def _usearch():
    # onnxruntime first: loaded after usearch 2.26's extension, its libstdc++ initialisation segfaults
    # (onnxruntime 1.31.1, `import usearch.compiled; import onnxruntime`); this order works in one process
    import onnxruntime  # noqa: F401

    try:
        from usearch.index import Index
    except ImportError as e:
        raise AnnIndexError(f"the index needs usearch: pip install 'finsta-rt[index]' ({e})") from e
    return Index


def pooled(embeddings: np.ndarray) -> np.ndarray:
    """[R, Q, E] -> [R, E] float32: the query mean of each clip row, normalised (what the index holds)."""
    p = np.asarray(embeddings, np.float32).mean(axis=1)
    return p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)


def index_vectors(embeddings: np.ndarray, vectors: str) -> np.ndarray:
    """The vectors an index of kind ``vectors`` holds for clip rows [R, Q, E]: [R·Q, E] or [R, E]."""
    if vectors not in VECTORS:
        raise AnnIndexError(f"index vectors must be one of {', '.join(VECTORS)}, got {vectors!r}")
    e = np.asarray(embeddings, np.float32)
    return e.reshape(-1, e.shape[2]) if vectors == "queries" else pooled(e)


def fingerprint(store: FeatureStore, output: str = DEFAULT_OUTPUT) -> dict:
    """What an index of ``store`` depends on: the bundle, the clip-row count and a digest of every row's
    path and feature file (and slice), so a folder that gained, lost or re-packed videos is detected."""
    h = hashlib.sha256()
    for r in store.rows:
        o = row_outputs(r).get(output, {})
        h.update(f"{r['path']}\0{o.get('file')}\0{o.get('rows')}\n".encode())
    return {
        "bundle_sha256": store.info.get("bundle_sha256"),
        "output": output,
        "videos": len(store.rows),
        "rows": len(store.owner),
        "rows_sha256": h.hexdigest(),
    }


def _mismatch(recorded: dict, now: dict) -> str | None:
    """Why an index recorded as ``recorded`` does not belong to a folder that is ``now``, or None."""
    if recorded.get("bundle_sha256") != now["bundle_sha256"]:
        return "it was built for another bundle's features"
    if (recorded.get("videos"), recorded.get("rows")) != (now["videos"], now["rows"]):
        return (
            f"it holds {recorded.get('videos')} videos ({recorded.get('rows')} rows), "
            f"the folder now {now['videos']} ({now['rows']})"
        )
    if recorded.get("rows_sha256") != now["rows_sha256"] or recorded.get("output") != now["output"]:
        return "the folder's videos or feature files changed since it was built"
    return None


@dataclass
class AnnIndex:
    """An opened (memory-mapped) index: ``search`` proposes clip rows for query vectors."""

    path: Path
    info: dict
    _index: object

    @classmethod
    def load(cls, path: Path, info: dict, rebuild: str = "finsta-rt index") -> AnnIndex:
        """Memory-maps the index file ``path`` that ``info`` (its index.json) describes."""
        Index = _usearch()
        try:
            ix = Index.restore(str(path), view=True)
        except (OSError, RuntimeError, ValueError) as e:
            raise AnnIndexError(f"cannot open {path}: {e}; rebuild it with {rebuild}") from e
        want = int(info["rows"]) * int(info.get("per_row", 1))
        if ix is None or len(ix) != want or ix.ndim != info.get("dims"):
            raise AnnIndexError(
                f"{path} does not hold the {want} vectors {INDEX_INFO} records; rebuild it with {rebuild}"
            )
        return cls(path, info, ix)

    @property
    def dtype(self) -> str:
        return str(self.info["dtype"])

    @property
    def per_row(self) -> int:
        """Vectors per clip row: Q for ``queries``, 1 for ``pooled``."""
        return int(self.info.get("per_row", 1))

    @property
    def nbytes(self) -> int:
        """The index's size (its file, memory-mapped: the graph and the i8/f16 vectors)."""
        return self.path.stat().st_size

    def search(self, queries: np.ndarray, count: int, expansion: int | None = None, threads: int = 0) -> np.ndarray:
        """The clip rows of the ``count`` nearest index vectors of each query vector [B, E] (nearest first; a
        row repeats when several of its vectors are near), int64 [B, count], -1 where fewer were found.
        ``expansion``: HNSW's search depth (at least ``count``)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        ix = self._index
        ix.expansion_search = max(int(expansion or self.info.get("expansion_search", EXPANSION_SEARCH)), count)
        # usearch spreads queries over threads; for one query its pool only costs (0.8 against 1.1 CPU ms at 1e5)
        m = ix.search(q, count, threads=threads or (1 if len(q) == 1 else 0))
        keys = np.full((q.shape[0], count), -1, np.int64)
        got = np.asarray(m.keys).astype(np.int64).reshape(q.shape[0], -1)
        counts = np.asarray(m.counts).reshape(-1) if hasattr(m, "counts") else np.array([len(m.keys)])
        for i, n in enumerate(counts):
            keys[i, :n] = got[i, :n] // self.per_row
        return keys


def index_path(root: Path, info: dict) -> Path:
    name = str(info.get("file", ""))
    if not name or Path(name).name != name:  # a name that leaves the folder is not ours
        raise AnnIndexError(f"{root / INDEX_INFO}: 'file' must name the index file in the folder, got {name!r}")
    return root / name


def read_info(root: str | Path) -> dict | None:
    """The folder's ``index.json``, or None when it has no index."""
    p = Path(root) / INDEX_INFO
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text())
        if not isinstance(info, dict) or info.get("format") != INDEX_FORMAT:
            raise ValueError(f"not an index record of format {INDEX_FORMAT}")
    except (OSError, ValueError) as e:
        raise AnnIndexError(f"cannot read {p}: {e}; rebuild it with finsta-rt index {root}") from e
    return info


def open_index(store: FeatureStore, output: str = DEFAULT_OUTPUT) -> AnnIndex | None:
    """The folder's index, memory-mapped; None when there is none. AnnIndexError when it is stale (it names
    why and the command that rebuilds it) or unreadable."""
    info = read_info(store.root)
    if info is None:
        return None
    why = _mismatch(info, fingerprint(store, output))
    if why:
        raise AnnIndexError(f"the index of {store.root} is stale: {why}; rebuild it with finsta-rt index {store.root}")
    return AnnIndex.load(index_path(store.root, info), info, f"finsta-rt index {store.root}")


def is_fresh(store: FeatureStore, output: str = DEFAULT_OUTPUT) -> bool:
    """Whether the folder has an index that matches its features now."""
    try:
        info = read_info(store.root)
    except AnnIndexError:
        return False
    return info is not None and _mismatch(info, fingerprint(store, output)) is None


def new_hnsw(
    vectors: np.ndarray,
    dtype: str = DEFAULT_DTYPE,
    connectivity: int = CONNECTIVITY,
    expansion_add: int = EXPANSION_ADD,
    expansion_search: int = EXPANSION_SEARCH,
    threads: int = 0,
):
    """A usearch HNSW index holding ``vectors`` [R, E] under keys 0..R-1 (in memory; ``build_index`` stores one)."""
    if dtype not in DTYPES:
        raise AnnIndexError(f"index dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if connectivity < 2 or expansion_add < 1 or expansion_search < 1:
        raise AnnIndexError(
            f"connectivity must be >= 2 and expansions >= 1, got {connectivity}, {expansion_add}, {expansion_search}"
        )
    Index = _usearch()
    # cos, not ip: i8 storage normalises each vector before quantising it (both rank unit vectors alike)
    ix = Index(
        ndim=vectors.shape[1],
        metric="cos",
        dtype=dtype,
        connectivity=connectivity,
        expansion_add=expansion_add,
        expansion_search=expansion_search,
    )
    ix.add(np.arange(vectors.shape[0], dtype=np.uint64), np.ascontiguousarray(vectors, np.float32), threads=threads)
    return ix


def _exact_neighbours(vecs: np.ndarray, q: np.ndarray, k: int, chunk: int = 1 << 16) -> np.ndarray:
    """The k nearest rows of ``vecs`` [R, E] by inner product (the cosine: embeddings are unit) for each of q [B, E]: int64 [B, k] (unordered),
    scored in chunks of rows (a [B, R] score matrix at 10^6 rows would be B·4 MB)."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for i in range(0, len(vecs), chunk):
        s = q @ vecs[i : i + chunk].T
        s = np.concatenate([best_s, s], axis=1)
        idx = np.concatenate([best_i, np.broadcast_to(np.arange(i, i + s.shape[1] - best_i.shape[1]), s.shape)], 1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if s.shape[1] > k else np.argsort(-s, axis=1)
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(idx, top, 1)
    return best_i


def self_recall(ix, vecs: np.ndarray, expansion_search: int, threads: int = 0, seed: int = 0) -> float:
    """The index's recall, measured at build: for ``CHECK_QUERIES`` of its own vectors (themselves left out),
    the fraction of their exact ``CHECK_K`` nearest vectors among the ``CANDIDATES`` it proposes (what search
    re-ranks). Clustered embeddings give ~1; uniform random vectors far less (benchmarks/bench_search.py)."""
    n = len(vecs)
    k = min(CHECK_K, n - 1)
    if k < 1:
        return 1.0
    pick = np.random.default_rng(seed).choice(n, min(CHECK_QUERIES, n), replace=False)
    q = np.ascontiguousarray(vecs[pick], np.float32)
    exact = _exact_neighbours(vecs, q, k + 1)
    count = min(max(CANDIDATES, k + 1), n)
    ix.expansion_search = max(expansion_search, count)
    got = np.asarray(ix.search(q, count, threads=threads).keys).astype(np.int64).reshape(len(q), -1)
    hits = [len((set(e.tolist()) - {p}) & set(g.tolist())) / k for p, e, g in zip(pick, exact, got, strict=True)]
    return float(np.mean(hits))


def build_index(
    store: FeatureStore,
    vectors: str = "queries",
    dtype: str = DEFAULT_DTYPE,
    connectivity: int = CONNECTIVITY,
    expansion_add: int = EXPANSION_ADD,
    expansion_search: int = EXPANSION_SEARCH,
    threads: int = 0,
    output: str = DEFAULT_OUTPUT,
) -> AnnIndex:
    """Builds the index of ``store``'s ``output`` (``vectors``: queries or pooled), writes it into the folder
    (file first, then index.json naming it: a crash leaves the old index or none, never a mix) and removes the
    index it replaces. Returns it opened."""
    now = fingerprint(store, output)
    emb = store.array(output)
    if emb.ndim != 3:
        raise AnnIndexError(f"{store.root}: {output} is {list(emb.shape[1:])} per clip, not [Q, E]")
    vecs = index_vectors(emb, vectors)
    ix = new_hnsw(vecs, dtype, connectivity, expansion_add, expansion_search, threads)
    recall = self_recall(ix, vecs, expansion_search, threads)
    if recall < MIN_RECALL:  # unstructured vectors (no clusters): HNSW misses, exact search does not
        log.warning(
            "the index of %s finds %.2f of the exact %d nearest vectors among its %d candidates (below %.2f): "
            "search it with --exact, or rebuild with a larger --connectivity/--expansion-add",
            store.root,
            recall,
            CHECK_K,
            CANDIDATES,
            MIN_RECALL,
        )
    info = {
        "format": INDEX_FORMAT,
        **now,
        "vectors": vectors,
        "per_row": int(emb.shape[1]) if vectors == "queries" else 1,
        "dims": int(vecs.shape[1]),
        "dtype": dtype,
        "metric": "cos",
        "connectivity": connectivity,
        "expansion_add": expansion_add,
        "expansion_search": expansion_search,
        "recall_at_10": round(recall, 4),  # self_recall: measured at build on CHECK_QUERIES of its vectors
        "file": f"index-{now['rows_sha256'][:12]}-{vectors}-{dtype}.usearch",
    }
    root = store.root
    old = None
    try:
        old = read_info(root)
    except AnnIndexError:
        pass
    path = root / info["file"]
    try:
        atomic_write_bytes(path, ix.save())
        atomic_write_bytes(root / INDEX_INFO, json.dumps(info, indent=1).encode())
    except OSError as e:
        raise AnnIndexError(f"cannot write the index into {root}: {e.strerror or e}") from e
    if old and old.get("file") and old["file"] != info["file"]:
        try:
            index_path(root, old).unlink(missing_ok=True)
        except (OSError, AnnIndexError) as e:
            log.warning("cannot remove the replaced index %s: %s", old.get("file"), e)
    log.info("indexed %d vectors (%d dims, %s) into %s", vecs.shape[0], vecs.shape[1], dtype, path)
    del ix
    opened = open_index(store, output)
    assert opened is not None
    return opened


__all__ = [
    "DTYPES",
    "VECTORS",
    "INDEX_INFO",
    "AnnIndex",
    "AnnIndexError",
    "build_index",
    "self_recall",
    "new_hnsw",
    "fingerprint",
    "index_vectors",
    "is_fresh",
    "open_index",
    "pooled",
    "read_info",
]
