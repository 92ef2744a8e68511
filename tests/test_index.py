"""finsta_rt.index and FeatureIndex on hand-made extraction folders (finsta_rt.feature_writer): indexed search
against a numpy float64 reference of the bundle's score, segments, pooled vectors, staleness, bad index files,
usearch missing. Fresh random features each run (FINSTA_TEST_SEED replays them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SEED, case_rng, replay_hint

from finsta_rt.cli import main as cli
from finsta_rt.feature_writer import FeatureWriter
from finsta_rt.index import INDEX_INFO, AnnIndexError, build_index, is_fresh, open_index, self_recall
from finsta_rt.search import FeatureIndex, SearchError

pytest.importorskip("usearch")


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def write_folder(out: Path, emb: np.ndarray, sampling: str = "uniform:4", layout: str = "packed", first: int = 0):
    """Videos /v/NNNNN.mp4 with features ``emb`` [N, clips, Q, E] into ``out`` (as finsta-rt extract would)."""
    info = {
        "bundle": "b",
        "bundle_sha256": "f" * 64,
        "sampling": sampling,
        "family": "stgt",
        "layout": layout,
        "outputs": ["video_embedding"],
    }
    w = FeatureWriter(out, info, pack_size=64)
    for i, a in enumerate(emb):
        w.ok(f"/v/{first + i:05d}.mp4", {"video_embedding": a}, [0.0] * a.shape[0], f"v{first + i:05d}")
    w.close()
    return out


def reference(emb: np.ndarray, t: np.ndarray, k: int) -> list[list[tuple[str, float, int]]]:
    """Top-k (path, score, segment) per text by float64 max over queries, a video at its best segment."""
    s = np.einsum("nsqe,be->bnsq", emb.astype(np.float64), t.astype(np.float64)).max(axis=3)  # [B, N, S]
    out = []
    for sb in s:
        best = sb.max(axis=1)
        order = np.lexsort((np.arange(len(best)), -best))[:k]
        out.append([(f"/v/{v:05d}.mp4", float(best[v]), int(sb[v].argmax())) for v in order])
    return out


def paths(hits) -> list[str]:
    return [h.path for h in hits]


@pytest.mark.parametrize("segments", [1, 3])
def test_indexed_search_finds_the_exact_top_k(tmp_path, segments):
    case = {"test": "indexed", "segments": segments}
    rng = case_rng(SEED, case)
    n, q, e, k = 300, 4, 16, 10
    emb = unit(rng.standard_normal((n, segments, q, e)))
    t = unit(rng.standard_normal((12, e)))
    sampling = "segments:3" if segments > 1 else "uniform:4"
    out = write_folder(tmp_path / "f", emb, sampling)
    with replay_hint(repr(case)):
        exact = FeatureIndex(out)
        assert exact.ann is None and exact.embeddings.shape == (n * segments, q, e)
        want = reference(emb, t, k)
        for hits, ref in zip(exact.search_texts(t, k), want, strict=True):
            assert paths(hits) == [p for p, _, _ in ref]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s, _ in ref], atol=1e-5)
            assert [h.segment for h in hits] == ([s for _, _, s in ref] if segments > 1 else [None] * k)
        assert "pooled" not in exact.__dict__  # text queries never make the [R, E] pooled copy (memory)
        build_index(exact.store, expansion_search=256, threads=1)
        idx = FeatureIndex(out)
        assert idx.ann is not None and idx.ann.per_row == q and idx.ann.info["rows"] == n * segments
        assert idx.ann.info["recall_at_10"] >= 0.98  # measured at build (self_recall)
        calls = []
        search = idx.ann.search
        idx.ann.search = lambda *a, **kw: calls.append(a[1]) or search(*a, **kw)
        got = idx.search_texts(t, k, candidates=1)  # the fewest: k·segments·Q vectors
        assert calls == [k * segments * q]
        # HNSW at depth 256 over 1200-3600 vectors of 16 dims misses (almost) nothing; re-ranking is exact
        recall = np.mean([len(set(paths(g)) & {p for p, _, _ in r}) / k for g, r in zip(got, want, strict=True)])
        assert recall >= 0.98, recall
        for g, r in zip(got, want, strict=True):
            ref = dict((p, s) for p, s, _ in r)
            for h in g:  # every score is the exact one, whatever the index proposed
                if h.path in ref:
                    assert abs(h.score - ref[h.path]) < 1e-5
        assert [paths(h) for h in idx.search_texts(t, k, exact=True)] == [[p for p, _, _ in r] for r in want]
        assert len({h.path for h in got[0]}) == k  # k distinct videos, even with 3 segment rows each


def test_self_recall_counts_the_exact_neighbours_among_the_candidates():
    """self_recall against a float64 reference: a stand-in index that proposes every vector except each query's
    5 nearest (of the 10) finds exactly half of them; one that proposes the nearest finds all."""
    rng = case_rng(SEED, {"test": "self_recall"})
    vecs = unit(rng.standard_normal((3000, 24)))

    class Proposes:
        def __init__(self, skip: int):
            self.skip, self.expansion_search = skip, 0

        def search(self, q, count, threads=0):
            order = np.argsort(-(q.astype(np.float64) @ vecs.astype(np.float64).T), axis=1)  # [0]: the query
            keep = np.concatenate([order[:, :1], order[:, 1 + self.skip :]], axis=1)[:, :count]
            return type("Matches", (), {"keys": keep.astype(np.uint64)})

    with replay_hint("self_recall"):
        assert self_recall(Proposes(0), vecs, 64) == 1.0
        ix = Proposes(5)
        assert abs(self_recall(ix, vecs, 64) - 0.5) < 0.01 and ix.expansion_search == 100


def test_pooled_index_answers_video_queries_exactly(tmp_path):
    rng = case_rng(SEED, {"test": "pooled"})
    emb = unit(rng.standard_normal((200, 1, 3, 8)))
    out = write_folder(tmp_path / "f", emb, layout="per-video")
    with replay_hint("pooled"):
        exact = FeatureIndex(out, index=False)
        build_index(exact.store, vectors="pooled", expansion_search=200, threads=1)
        idx = FeatureIndex(out)
        assert idx.ann.per_row == 1 and idx.ann.info["vectors"] == "pooled"
        pooled = unit(emb[:, 0].mean(axis=1)).astype(np.float64)
        for v in (0, 17, 199):
            s = pooled @ pooled[v]
            s[v] = -np.inf
            want = [f"/v/{i:05d}.mp4" for i in np.lexsort((np.arange(len(s)), -s))[:5]]
            got = idx.search_video(v, 5, candidates=20)
            assert paths(got) == want == paths(exact.search_video(f"/v/{v:05d}.mp4", 5))
            assert f"/v/{v:05d}.mp4" not in paths(got)


def test_a_stale_index_is_refused_until_rebuilt(tmp_path, caplog, capsys):
    rng = case_rng(SEED, {"test": "stale"})
    out = write_folder(tmp_path / "f", unit(rng.standard_normal((40, 1, 2, 8))))
    idx = FeatureIndex(out)
    first = build_index(idx.store, threads=1)
    assert is_fresh(idx.store) and (out / first.info["file"]).is_file()
    write_folder(out, unit(rng.standard_normal((5, 1, 2, 8))), first=40)  # five more videos extracted
    with caplog.at_level("WARNING"):
        again = FeatureIndex(out)
    assert again.ann is None and len(again) == 45
    assert "stale: it holds 40 videos (40 rows), the folder now 45 (45)" in caplog.text
    assert f"finsta-rt index {out}" in caplog.text
    with pytest.raises(AnnIndexError, match="stale"):
        FeatureIndex(out, index=True)
    capsys.readouterr()
    assert cli(["index", str(out)]) == 0
    so = capsys.readouterr().out
    assert "45 videos" in so and "built" in so, so
    rebuilt = FeatureIndex(out, index=True)
    assert rebuilt.ann.info["videos"] == 45 and not (out / first.info["file"]).exists()  # the old one removed
    assert cli(["index", str(out)]) == 0 and "up to date" in capsys.readouterr().out


def test_bad_index_files_and_options_are_named(tmp_path, capsys):
    rng = case_rng(SEED, {"test": "bad"})
    out = write_folder(tmp_path / "f", unit(rng.standard_normal((10, 1, 2, 8))))
    store = FeatureIndex(out, index=False).store
    with pytest.raises(AnnIndexError, match="index dtype must be one of i8, f16, f32, got 'f8'"):
        build_index(store, dtype="f8")
    with pytest.raises(AnnIndexError, match="index vectors must be one of queries, pooled"):
        build_index(store, vectors="mean")
    assert FeatureIndex(out, index=None).ann is None
    with pytest.raises(SearchError, match="has no index: build it with finsta-rt index"):
        FeatureIndex(out, index=True)
    ix = build_index(store, threads=1)
    (out / INDEX_INFO).write_text("{not json")
    with pytest.raises(AnnIndexError, match=rf"cannot read {out / INDEX_INFO}.*rebuild it with finsta-rt index"):
        open_index(store)
    (out / INDEX_INFO).write_text(json.dumps(ix.info | {"file": "../elsewhere.usearch"}))
    with pytest.raises(AnnIndexError, match="'file' must name the index file in the folder"):
        open_index(store)
    (out / INDEX_INFO).write_text(json.dumps(ix.info))
    (out / ix.info["file"]).write_bytes(b"not an index")
    with pytest.raises(AnnIndexError, match=f"cannot open {out / ix.info['file']}|does not hold the 20 vectors"):
        open_index(store)
    for argv, message in [
        (["--text", "x", "-k", "0"], "argument -k: must be >= 1"),
        ([], "give a query: --text, --queries FILE or --video"),
        (["--queries", str(tmp_path / "none.txt")], f"cannot read --queries {tmp_path / 'none.txt'}"),
        (["--text", " "], "--text is empty"),
        (["--video", "/v/none.mp4"], "/v/none.mp4 is not in"),
    ]:
        capsys.readouterr()
        assert cli(["search", str(out), *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_usearch_missing_is_one_clear_error(tmp_path, monkeypatch):
    rng = case_rng(SEED, {"test": "missing"})
    out = write_folder(tmp_path / "f", unit(rng.standard_normal((4, 1, 2, 8))))
    monkeypatch.setitem(sys.modules, "usearch.index", None)  # import usearch.index raises ImportError
    with pytest.raises(AnnIndexError, match=r"the index needs usearch: pip install 'finsta-rt\[index\]'"):
        build_index(FeatureIndex(out).store)


def test_usearch_then_onnxruntime_in_one_process():
    """usearch 2.26's extension loaded before onnxruntime made onnxruntime's import segfault; the index imports
    onnxruntime first, so opening an index and then a Model works in one process."""
    code = "from finsta_rt.index import _usearch; _usearch(); import onnxruntime; print(onnxruntime.__version__)"
    rc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert rc.returncode == 0, rc
