#!/usr/bin/env python3
"""Exact search against the usearch index (finsta-rt index / search) on N unit vectors at the bundle's width:
recall@10, ms per query (one at a time and batched), build seconds and index memory, as one table.

    .venv/bin/python benchmarks/bench_search.py                      # 1e5 and 1e6, random and clustered, i8
    .venv/bin/python benchmarks/bench_search.py --sizes 100000 --dtypes i8,f16 --dim 640

Both paths run through finsta_rt.search.FeatureIndex: exact scores every row; indexed takes
``--candidates`` vectors from the HNSW index (memory-mapped from its file, as search opens it) and re-ranks
them with the exact score. One vector per video (Q = 1), so the pooled and per-query indexes coincide.
recall@10 is the fraction of the exact top 10 the indexed search returns. Memory is the index file (graph +
i8/f16 vectors) against the raw float32 vectors [N, E]. ``random``: uniform on the sphere (the hardest case
for any ANN index: every neighbour nearly as far as the next); ``clustered``: 1000 centres, each vector at
cosine ~0.8 to its centre, queries near a vector (as a caption near its video).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finsta_rt.index import CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH, AnnIndex, new_hnsw  # noqa: E402
from finsta_rt.search import FeatureIndex  # noqa: E402


def unit(a: np.ndarray) -> np.ndarray:
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    return a


def data(kind: str, n: int, dim: int, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors and ``queries`` unit queries, float32."""
    if kind == "random":
        x = np.empty((n, dim), np.float32)
        for i in range(0, n, 100_000):  # in chunks: a float64 [1e6, E] would double the peak memory
            x[i : i + 100_000] = rng.standard_normal((min(100_000, n - i), dim), np.float32)
        return unit(x), unit(rng.standard_normal((queries, dim), np.float32))
    centres = unit(rng.standard_normal((1000, dim), np.float32))
    x = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        x[i : i + m] = centres[rng.integers(0, len(centres), m)]
        x[i : i + m] += 0.75 * rng.standard_normal((m, dim), np.float32) / np.sqrt(dim)
    x = unit(x)
    q = x[rng.integers(0, n, queries)] + 0.5 * rng.standard_normal((queries, dim), np.float32) / np.sqrt(dim)
    return x, unit(q)


def measure(f, *args):
    """``f(*args)``, its wall seconds and the CPU seconds this process spent on it (all threads): on a shared,
    loaded machine the wall time also counts the time other processes held the cores."""
    w, c = time.perf_counter(), time.process_time()
    out = f(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def per_query_ms(index: FeatureIndex, q: np.ndarray, batch: int, **kw) -> tuple[list, float, float, float]:
    """Top 10 of every query, ms per query one at a time (wall, CPU), and ms per query in batches of ``batch``."""
    single, t1, c1 = measure(lambda: [index.search_texts(q[i : i + 1], 10, **kw)[0] for i in range(len(q))])
    batched, tb, _ = measure(
        lambda: [h for i in range(0, len(q), batch) for h in index.search_texts(q[i : i + batch], 10, **kw)]
    )
    assert [[h.path for h in a] for a in single] == [[h.path for h in b] for b in batched]
    return single, 1e3 * t1 / len(q), 1e3 * c1 / len(q), 1e3 * tb / len(q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="vector counts, comma-separated")
    ap.add_argument("--kinds", default="random,clustered")
    ap.add_argument("--dtypes", default="i8", help="index storage: i8, f16, f32 (comma-separated)")
    ap.add_argument("--dim", type=int, default=256, help="the bundle's width E (default 256, stgt's default)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--candidates", type=int, default=100, help="index vectors re-ranked per query")
    ap.add_argument("--expansion-search", type=int, default=EXPANSION_SEARCH)
    ap.add_argument("--connectivity", type=int, default=CONNECTIVITY)
    ap.add_argument("--expansion-add", type=int, default=EXPANSION_ADD)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    k = 10
    head = (
        f"{'N':>8} {'data':>9} {'dtype':>5} {'build s':>8} {'cpu s':>7} {'index MB':>8} {'raw MB':>7} {'ratio':>5} "
        f"{'exact ms':>8} {'cpu ms':>7} {'exact ms/b':>10} {'index ms':>8} {'cpu ms':>7} {'index ms/b':>10} "
        f"{'recall@10':>9}"
    )
    print(
        f"E = {args.dim}, k = {k}, {args.queries} queries, batches of {args.batch}, {args.candidates} candidates, "
        f"HNSW M = {args.connectivity}, ef_add = {args.expansion_add}, ef_search = max({args.expansion_search}, "
        "candidates); ms = wall per query (one at a time), cpu = its CPU time (all threads), ms/b = wall per query in "
        f"batches; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(head, flush=True)
    for n in [int(float(s)) for s in args.sizes.split(",")]:
        for kind in args.kinds.split(","):
            rng = np.random.default_rng([args.seed, n, len(kind)])
            x, q = data(kind, n, args.dim, args.queries, rng)
            exact_index = FeatureIndex.from_arrays(x[:, None])
            exact, ems, ecpu, emsb = per_query_ms(exact_index, q, args.batch, exact=True)
            for dtype in args.dtypes.split(","):
                hnsw, build_s, build_cpu = measure(new_hnsw, x, dtype, args.connectivity, args.expansion_add)
                with tempfile.TemporaryDirectory() as d:
                    path = Path(d) / "index.usearch"
                    hnsw.save(str(path))
                    del hnsw
                    info = {"rows": n, "per_row": 1, "dims": args.dim, "expansion_search": args.expansion_search}
                    ann = AnnIndex.load(path, info)  # memory-mapped, as search opens it
                    fi = FeatureIndex.from_arrays(exact_index.embeddings, exact_index.paths, ann)
                    got, ims, icpu, imsb = per_query_ms(fi, q, args.batch, candidates=args.candidates)
                    mb = ann.nbytes / 1e6
                    del fi, ann
                recall = np.mean(
                    [len({h.path for h in a} & {h.path for h in b}) / k for a, b in zip(got, exact, strict=True)]
                )
                raw = x.nbytes / 1e6
                print(
                    f"{n:>8} {kind:>9} {dtype:>5} {build_s:>8.1f} {build_cpu:>7.1f} {mb:>8.1f} {raw:>7.1f} "
                    f"{mb / raw:>5.2f} {ems:>8.2f} {ecpu:>7.2f} {emsb:>10.2f} {ims:>8.2f} {icpu:>7.2f} {imsb:>10.2f} "
                    f"{recall:>9.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
