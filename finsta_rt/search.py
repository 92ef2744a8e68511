"""Search over extracted features (docs/runtime.md): text -> videos by the bundle's score (max over queries
of the cosine), video -> videos by the cosine of the pooled embeddings.

With the folder's index (``finsta-rt index``, finsta_rt/index.py) the top candidates come from the index
and are re-ranked with the exact score over the stored features; without one (or ``exact=True``) every row
is scored. The features and the index are opened once and answer any number of queries.

>>> index = FeatureIndex("features/")
>>> model = index.load_model()
>>> index.search_texts(model.embed_text(["a man rides a bike", "a dog"]), k=5)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .feature_store import RUN_INFO, FeatureStore, FeatureStoreError
from .index import CANDIDATES, AnnIndex, AnnIndexError, open_index, pooled

log = logging.getLogger(__name__)

_EXACT_CHUNK = 1 << 26  # floats of scores computed at once by exact batched search (256 MB)


class SearchError(ValueError):
    """The feature folder cannot be searched; the message says why."""


@dataclass
class Hit:
    rank: int
    score: float
    path: str
    segment: int | None = None  # for segments:S features, the best-matching segment


class FeatureIndex:
    """The ok features of an extraction folder in memory, ``[R, Q, E]`` (segments become rows), and its index.

    ``index``: None uses the folder's index when it matches the features (a stale one is refused with a
    warning: search is exact until ``finsta-rt index`` rebuilds it); False never opens it; True requires it."""

    def __init__(self, out_dir: str | Path, index: bool | None = None):
        try:
            store = FeatureStore(out_dir)
            if not len(store):
                raise SearchError(f"{store.root} holds no extracted features")
            self.embeddings = np.asarray(store.array(), np.float32)  # [R, Q, E]
        except FeatureStoreError as e:
            raise SearchError(str(e)) from e
        if self.embeddings.ndim != 3:
            raise SearchError(
                f"{store.root}: video_embedding is {list(self.embeddings.shape[1:])} per clip, not [Q, E]"
            )
        self.store, self.root, self.info = store, store.root, store.info
        self._use(self.embeddings, store.paths, store.owner, store.segment)
        if index is not False:
            try:
                self.ann = open_index(store)
            except AnnIndexError as e:
                if index:
                    raise
                log.warning("%s; searching exactly", e)
            if index and self.ann is None:
                raise SearchError(f"{self.root} has no index: build it with finsta-rt index {self.root}")

    def _use(self, embeddings: np.ndarray, paths: list[str], owner: np.ndarray, segment: list[int | None]) -> None:
        self.embeddings = embeddings  # [R, Q, E]
        self.paths = paths
        self.owner = owner  # clip row -> video
        self.segment = segment  # clip row -> its segment (None unless segments:S)
        self.clips_per_video = int(np.bincount(owner).max())
        self.ann: AnnIndex | None = None

    @cached_property
    def pooled(self) -> np.ndarray:
        """[R, E]: each row's query mean, normalised (video queries). Made on the first video query: it is
        R·E floats more, as much as the features themselves when Q = 1."""
        return pooled(self.embeddings)

    @classmethod
    def from_arrays(
        cls, embeddings: np.ndarray, paths: list[str] | None = None, ann: AnnIndex | None = None
    ) -> FeatureIndex:
        """Search over features held elsewhere: ``embeddings`` [N, Q, E], one row per video (``paths``, default
        their positions as text), and optionally an index of them (benchmarks/bench_search.py)."""
        self = cls.__new__(cls)
        e = np.asarray(embeddings, np.float32)
        if e.ndim != 3 or not len(e):
            raise SearchError(f"embeddings must be [N, Q, E] with N >= 1, got {list(e.shape)}")
        paths = [str(i) for i in range(len(e))] if paths is None else list(paths)
        if len(paths) != len(e):
            raise SearchError(f"{len(paths)} paths for {len(e)} rows of embeddings")
        self.store, self.root, self.info = None, Path("."), {}
        self._use(e, paths, np.arange(len(e)), [None] * len(e))
        self.ann = ann
        return self

    def load_model(self, bundle: str | Path | None = None, device: str = "auto", threads: int = 0):
        """The Model of the bundle these features were made with (``bundle``: where it is now, default
        the path recorded by extract), for text queries; SearchError if it is another bundle."""
        from .model import Model

        bundle = bundle or self.info.get("bundle")
        if not bundle:
            raise SearchError(f"{self.root / RUN_INFO} records no bundle: give one")
        model = Model(bundle, device=device, threads=threads)
        if model.bundle.sha256 != self.info.get("bundle_sha256"):
            raise SearchError(f"{bundle} is not the bundle these features were made with ({self.info.get('bundle')})")
        return model

    def __len__(self) -> int:
        return len(self.paths)

    def _uses_index(self, exact: bool, count: int, pooled_only: bool = False) -> bool:
        if self.ann is None or exact or (pooled_only and self.ann.per_row != 1):
            return False
        return count < len(self.owner) * self.ann.per_row  # else scoring every row is as cheap

    def _count(self, k: int, candidates: int | None, extra: int = 0) -> int:
        """Index vectors to look up: enough for k distinct videos even when each has several rows (segments)
        and each row several vectors (an index of the Q query vectors), plus ``extra`` rows to skip."""
        per_row = self.ann.per_row if self.ann is not None else 1
        return max(candidates or max(CANDIDATES, 10 * k), (k * self.clips_per_video + extra) * per_row)

    def _top(self, rows: np.ndarray, scores: np.ndarray, k: int, exclude: int | None = None) -> list[Hit]:
        """The k best videos among clip ``rows`` scored ``scores`` (ties: the lower row first), each at its
        best row."""
        best: dict[int, tuple[float, int]] = {}
        for i in np.lexsort((rows, -scores)):
            r = int(rows[i])
            v = int(self.owner[r])
            if v == exclude or v in best:
                continue
            best[v] = (float(scores[i]), r)
            if len(best) == k:
                break
        return [Hit(i + 1, s, self.paths[v], self.segment[r]) for i, (v, (s, r)) in enumerate(best.items())]

    def _top_all(self, scores: np.ndarray, k: int, exclude: int | None = None) -> list[Hit]:
        """``_top`` over every row, sorting only the rows that can hold the k best videos."""
        m = k * self.clips_per_video + (self.clips_per_video if exclude is not None else 0)
        if m >= len(scores):
            rows = np.arange(len(scores))
        else:  # every row scoring at least the m-th best (ties included, as a full sort would keep them)
            rows = np.flatnonzero(scores >= np.partition(scores, len(scores) - m)[len(scores) - m])
        return self._top(rows, scores[rows], k, exclude)

    def _text_scores(self, rows: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        """The bundle's score of each clip row (all when ``rows`` is None) for texts t [B, E]: [B, rows]."""
        emb = self.embeddings if rows is None else self.embeddings[rows]
        r, q, e = emb.shape
        return (emb.reshape(r * q, e) @ t.T).reshape(r, q, len(t)).max(axis=1).T  # one GEMM (einsum's is slower)

    def _check_texts(self, text_embeddings: np.ndarray) -> np.ndarray:
        t = np.asarray(text_embeddings, np.float32)
        t = t[None] if t.ndim == 1 else t
        if t.ndim != 2 or t.shape[1] != self.embeddings.shape[2]:
            raise SearchError(
                f"text embeddings must be [E] or [B, E] with E = {self.embeddings.shape[2]} (the features' width), "
                f"got {list(np.shape(text_embeddings))}"
            )
        return t

    def search_texts(
        self, text_embeddings: np.ndarray, k: int = 10, exact: bool = False, candidates: int | None = None
    ) -> list[list[Hit]]:
        """Top-k videos for each text embedding of [B, E] by the exact max-over-queries cosine: over the index's
        ``candidates`` rows (default max(100, 10·k)) when the folder has one and not ``exact``, else all rows."""
        t = self._check_texts(text_embeddings)
        if k < 1:
            raise SearchError(f"k must be >= 1, got {k}")
        count = self._count(k, candidates)
        if not self._uses_index(exact, count):
            step = max(1, _EXACT_CHUNK // max(1, self.embeddings.shape[0] * self.embeddings.shape[1]))
            out: list[list[Hit]] = []
            for i in range(0, len(t), step):
                out += [self._top_all(s, k) for s in self._text_scores(None, t[i : i + step])]
            return out
        assert self.ann is not None
        keys = self.ann.search(t, count)
        out = []
        for ti, rows in zip(t, keys, strict=True):
            rows = np.unique(rows[rows >= 0])
            hits = self._top(rows, self._text_scores(rows, ti[None])[0], k)
            if len(hits) < min(k, len(self)):  # the graph gave too few rows (tiny or disconnected): score all
                hits = self._top_all(self._text_scores(None, ti[None])[0], k)
            out.append(hits)
        return out

    def search_text(
        self, text_embedding: np.ndarray, k: int = 10, exact: bool = False, candidates: int | None = None
    ) -> list[Hit]:
        """Top-k videos for one text embedding [E] (``search_texts``)."""
        t = np.asarray(text_embedding, np.float32).reshape(-1)
        if t.shape[0] != self.embeddings.shape[2]:
            raise SearchError(f"text embedding has {t.shape[0]} dims, the features have {self.embeddings.shape[2]}")
        return self.search_texts(t[None], k, exact, candidates)[0]

    def video_position(self, query: str | int) -> int:
        """The position of an indexed video, by its path (as extracted, or resolved) or position."""
        if isinstance(query, str):
            matches = [i for i, p in enumerate(self.paths) if p == query or p == str(Path(query).resolve())]
            if not matches:
                raise SearchError(f"{query} is not in {self.root}")
            return matches[0]
        if not 0 <= query < len(self.paths):
            raise SearchError(f"video position {query} is outside 0..{len(self.paths) - 1}")
        return int(query)

    def search_video(
        self, query: str | int, k: int = 10, exact: bool = False, candidates: int | None = None
    ) -> list[Hit]:
        """Top-k other videos nearest to an indexed video (by path or position): cosine of the pooled embeddings
        (through the index when it holds pooled vectors, else over every row)."""
        v = self.video_position(query)
        own = np.flatnonzero(self.owner == v)
        q = self.pooled[own].mean(axis=0)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        count = self._count(k, candidates, extra=len(own))
        if not self._uses_index(exact, count, pooled_only=True):
            return self._top_all(self.pooled @ q, k, exclude=v)
        assert self.ann is not None
        rows = self.ann.search(q[None], count)[0]
        rows = np.unique(rows[rows >= 0])
        hits = self._top(rows, self.pooled[rows] @ q, k, exclude=v)
        if len(hits) < min(k, len(self) - 1):
            hits = self._top_all(self.pooled @ q, k, exclude=v)
        return hits
