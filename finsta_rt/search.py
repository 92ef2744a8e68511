"""Exact search over extracted features (docs/runtime.md): text -> videos by the bundle's score
(max over queries of the cosine), video -> videos by the cosine of the pooled embeddings.

>>> index = FeatureIndex("features/")
>>> index.search_text(index.load_model().embed_text(["a man rides a bike"])[0], k=5)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .extract import RUN_INFO, read_manifest

log = logging.getLogger(__name__)


class SearchError(ValueError):
    """The feature folder cannot be searched; the message says why."""


@dataclass
class Hit:
    rank: int
    score: float
    path: str
    segment: int | None = None  # for segments:S features, the best-matching segment


class FeatureIndex:
    """All ok features of an extraction folder in memory: [N, Q, E] (segments become rows)."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        if not (self.root / RUN_INFO).is_file():
            raise SearchError(
                f"{self.root} is not an extraction folder ({RUN_INFO} is missing); run finsta-rt extract first"
            )
        try:
            self.info = json.loads((self.root / RUN_INFO).read_text())
            if not isinstance(self.info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise SearchError(f"cannot read {self.root / RUN_INFO}: {e}") from e
        rows = [
            r for r in read_manifest(self.root).values() if r.get("status") == "ok" and isinstance(r.get("file"), str)
        ]
        if not rows:
            raise SearchError(f"{self.root} holds no extracted features")
        emb, owner, segment = [], [], []
        for i, r in enumerate(sorted(rows, key=lambda r: r["path"])):
            try:
                a = np.load(self.root / r["file"], allow_pickle=False)
            except (OSError, ValueError) as e:
                raise SearchError(f"cannot read {self.root / r['file']}: {e}") from e
            a = a[None] if a.ndim == 2 else a
            emb.append(a.astype(np.float32))
            owner += [i] * a.shape[0]
            segment += (
                list(range(a.shape[0])) if a.shape[0] > 1 or r.get("sampling", "").startswith("segments") else [None]
            )
        self.paths = [r["path"] for r in sorted(rows, key=lambda r: r["path"])]
        shapes = {e.shape[1:] for e in emb}
        if len(shapes) != 1:
            raise SearchError(f"{self.root}: features of different shapes {sorted(shapes)}")
        self.embeddings = np.concatenate(emb)  # [R, Q, E]
        self.owner = np.asarray(owner)
        self.segment = segment
        pooled = self.embeddings.mean(axis=1)
        self.pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

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

    def _top(self, row_scores: np.ndarray, k: int, exclude: int | None = None) -> list[Hit]:
        best: dict[int, tuple[float, int]] = {}
        for r in np.argsort(-row_scores, kind="stable"):
            v = int(self.owner[r])
            if v == exclude or v in best:
                continue
            best[v] = (float(row_scores[r]), int(r))
            if len(best) == k:
                break
        return [Hit(i + 1, s, self.paths[v], self.segment[r]) for i, (v, (s, r)) in enumerate(best.items())]

    def search_text(self, text_embedding: np.ndarray, k: int = 10) -> list[Hit]:
        """Top-k videos for one text embedding [E]: exact max-over-queries cosine."""
        t = np.asarray(text_embedding, np.float32).reshape(-1)
        if t.shape[0] != self.embeddings.shape[2]:
            raise SearchError(f"text embedding has {t.shape[0]} dims, the features have {self.embeddings.shape[2]}")
        return self._top(np.einsum("rqe,e->rq", self.embeddings, t).max(axis=1), k)

    def search_video(self, query: str | int, k: int = 10) -> list[Hit]:
        """Top-k other videos nearest to an indexed video (by path or position)."""
        if isinstance(query, str):
            matches = [i for i, p in enumerate(self.paths) if p == query or p == str(Path(query).resolve())]
            if not matches:
                raise SearchError(f"{query} is not in {self.root}")
            query = matches[0]
        rows = np.flatnonzero(self.owner == query)
        q = self.pooled[rows].mean(axis=0)
        return self._top(self.pooled @ (q / max(np.linalg.norm(q), 1e-12)), k, exclude=query)
