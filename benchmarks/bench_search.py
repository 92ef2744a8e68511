#!/usr/bin/env python3
"""Exact search against the usearch index (finsta-rt index / search) on N unit vectors at the bundle's width:
recall@10, ms per query (one at a time and batched), build seconds and index memory, as one table.

    .venv/bin/python benchmarks/bench_search.py                      # 1e5 and 1e6, random and clustered, i8
    .venv/bin/python benchmarks/bench_search.py --sizes 100000 --dtypes i8,f16 --expansion-search 64,256,1024

Both paths run through finsta_rt.search.FeatureIndex: exact scores every row; indexed takes
``--candidates`` vectors from the HNSW index (memory-mapped from its file, as search opens it) and re-ranks
them with the exact score. One vector per video (Q = 1), so the pooled and per-query indexes coincide.
recall@10 is the fraction of the exact top 10 the indexed search returns. Memory is the index file (graph +
i8/f16 vectors) against the raw float32 vectors [N, E]. ``random``: uniform on the sphere (the hardest case
for any ANN index: every neighbour nearly as far as the next); ``clustered``: 1000 centres, each vector at
cosine ~0.8 to its centre, queries near a vector (as a caption near its video).

A built index is kept in ``--cache`` (default /tmp/finsta-bench-search), named by its data and settings, and
reused by the next run (a 10^6 build is CPU-minutes; the data are regenerated from the seed, the same vectors);
``--rebuild`` builds it again. Every ``--candidates`` x ``--expansion-search`` pair is measured on one build:
the recall-against-ms curve. ``--scan`` adds the brute-force alternative: usearch's exact inner-product scan
over i8 copies of the vectors, its ``candidates`` re-ranked with the exact float32 score.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finsta_rt.index import CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH, AnnIndex, _usearch, new_hnsw  # noqa: E402
from finsta_rt.search import FeatureIndex  # noqa: E402

DIM = 640  # the bundle's width: stgt-demo's video_embedding is [8, 640]


def unit(a: np.ndarray) -> np.ndarray:
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    return a


def data(kind: str, n: int, dim: int, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors and ``queries`` unit queries, float32 (the vectors do not depend on ``queries``)."""
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
    return [[h.path for h in a] for a in single], 1e3 * t1 / len(q), 1e3 * c1 / len(q), 1e3 * tb / len(q)


def cached_hnsw(x: np.ndarray, dtype: str, args, name: str) -> tuple[Path, float, float]:
    """The index file of ``x`` (built now, or by an earlier run), its build wall and CPU seconds."""
    path = Path(args.cache) / f"{name}-{dtype}-M{args.connectivity}-ef{args.expansion_add}.usearch"
    stamp = path.with_suffix(".build")  # "wall cpu" of the build that wrote it
    if path.is_file() and stamp.is_file() and not args.rebuild:
        build_s, build_cpu = map(float, stamp.read_text().split())
        return path, build_s, build_cpu
    path.parent.mkdir(parents=True, exist_ok=True)
    hnsw, build_s, build_cpu = measure(
        new_hnsw, x, dtype, args.connectivity, args.expansion_add, EXPANSION_SEARCH, args.threads
    )
    hnsw.save(str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    stamp.write_text(f"{build_s:.1f} {build_cpu:.1f}\n")
    return path, build_s, build_cpu


def scan_i8(
    x: np.ndarray, q: np.ndarray, candidates: int, batch: int, threads: int
) -> tuple[list, float, float, float]:
    """Brute force: usearch's exact inner-product scan of i8 copies (one scale for all: unit vectors), its
    ``candidates`` re-ranked by the float32 score; top-10 row names, ms per query single (wall, CPU), batched."""
    _usearch()  # onnxruntime before usearch (finsta_rt.index: the other order segfaults)
    from usearch.index import search

    x8 = np.round(x * (127 / np.abs(x).max())).astype(np.int8)

    def top(qs: np.ndarray) -> list[list[str]]:
        q8 = np.round(qs * (127 / np.abs(qs).max(axis=1, keepdims=True))).astype(np.int8)
        keys = np.asarray(search(x8, q8, candidates, "ip", exact=True, threads=threads).keys).reshape(len(qs), -1)
        out = []
        for qi, rows in zip(qs, keys.astype(np.int64), strict=True):
            s = x[rows] @ qi
            out.append([str(r) for r in rows[np.lexsort((rows, -s))[:10]]])
        return out

    single, t1, c1 = measure(lambda: [top(q[i : i + 1])[0] for i in range(len(q))])
    _, tb, _ = measure(lambda: [r for i in range(0, len(q), batch) for r in top(q[i : i + batch])])
    return single, 1e3 * t1 / len(q), 1e3 * c1 / len(q), 1e3 * tb / len(q)


def row(lead: str, exact: list, got: list, dtype: str, build: tuple, mb: float, raw: float, sweep: tuple) -> None:
    """One table line: ``lead`` (N, data), the build (wall, CPU s), index MB, the exact (ms, CPU ms, ms/b) and
    indexed (candidates, ef, ms, CPU ms, ms/b) columns in ``sweep``, and the recall of ``got`` against ``exact``."""
    recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, exact, strict=True)])
    ems, ecpu, emsb, cand, ef, ims, icpu, imsb = sweep
    print(
        f"{lead} {dtype:>7} {build[0]:>8.1f} {build[1]:>7.1f} {mb:>8.1f} {raw:>7.1f} {mb / raw:>5.2f} {ems:>8.2f} "
        f"{ecpu:>7.2f} {emsb:>10.2f} {cand:>5} {ef:>5} {ims:>8.2f} {icpu:>7.2f} {imsb:>10.2f} {recall:>9.3f}",
        flush=True,
    )


def ints(s: str) -> list[int]:
    return [int(float(v)) for v in s.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="vector counts, comma-separated")
    ap.add_argument("--kinds", default="random,clustered")
    ap.add_argument("--dtypes", default="i8", help="index storage: i8, f16, f32 (comma-separated; empty: none)")
    ap.add_argument("--dim", type=int, default=DIM, help=f"the bundle's width E (default {DIM}, stgt-demo's)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--candidates", default="100", help="index vectors re-ranked per query (comma-separated)")
    ap.add_argument("--expansion-search", default=str(EXPANSION_SEARCH), help="HNSW ef (comma-separated)")
    ap.add_argument("--connectivity", type=int, default=CONNECTIVITY)
    ap.add_argument("--expansion-add", type=int, default=EXPANSION_ADD)
    ap.add_argument("--threads", type=int, default=2, help="threads of the build and of usearch's searches")
    ap.add_argument("--cache", default="/tmp/finsta-bench-search", help="where built indexes are kept")
    ap.add_argument("--rebuild", action="store_true", help="build the indexes again even when cached")
    ap.add_argument("--scan", action="store_true", help="also the i8 brute-force scan with exact re-ranking")
    ap.add_argument("--no-exact-timing", action="store_true", help="exact top-10 only (batched), no exact ms")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    k = 10
    print(
        f"E = {args.dim}, k = {k}, {args.queries} queries, batches of {args.batch}, HNSW M = {args.connectivity}, "
        f"ef_add = {args.expansion_add}, ef = max(ef, cand); {args.threads} threads; ms = wall per query (one at a "
        "time), cpu = its CPU time (all threads), ms/b = wall per query in batches; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'N':>8} {'data':>9} {'dtype':>7} {'build s':>8} {'cpu s':>7} {'index MB':>8} {'raw MB':>7} {'ratio':>5} "
        f"{'exact ms':>8} {'cpu ms':>7} {'exact ms/b':>10} {'cand':>5} {'ef':>5} {'index ms':>8} {'cpu ms':>7} "
        f"{'index ms/b':>10} {'recall@10':>9}",
        flush=True,
    )
    sweep = list(itertools.product(ints(args.candidates), ints(args.expansion_search)))
    for n in ints(args.sizes):
        for kind in args.kinds.split(","):
            rng = np.random.default_rng([args.seed, n, len(kind)])
            x, q = data(kind, n, args.dim, args.queries, rng)
            exact_index = FeatureIndex.from_arrays(x[:, None])
            if args.no_exact_timing:
                (exact, ems, ecpu, emsb) = ([[h.path for h in hs] for hs in exact_index.search_texts(q, k)], 0, 0, 0)
            else:
                exact, ems, ecpu, emsb = per_query_ms(exact_index, q, args.batch, exact=True)
            raw, lead = x.nbytes / 1e6, f"{n:>8} {kind:>9}"

            for dtype in filter(None, args.dtypes.split(",")):  # --dtypes "": no index (exact, --scan)
                name = f"{kind}-n{n}-e{args.dim}-s{args.seed}"
                path, build_s, build_cpu = cached_hnsw(x, dtype, args, name)
                info = {"rows": n, "per_row": 1, "dims": args.dim}
                ann = AnnIndex.load(path, info)  # memory-mapped, as search opens it
                fi = FeatureIndex.from_arrays(exact_index.embeddings, exact_index.paths, ann)
                for cand, ef in sweep:
                    ann.info["expansion_search"] = ef
                    got, ims, icpu, imsb = per_query_ms(fi, q, args.batch, candidates=cand)
                    cols = (ems, ecpu, emsb, cand, max(ef, cand), ims, icpu, imsb)
                    row(lead, exact, got, dtype, (build_s, build_cpu), ann.nbytes / 1e6, raw, cols)
                del fi, ann
            if args.scan:
                for cand in ints(args.candidates):
                    got, ims, icpu, imsb = scan_i8(x, q, cand, args.batch, args.threads)
                    cols = (ems, ecpu, emsb, cand, 0, ims, icpu, imsb)
                    row(lead, exact, got, "scan-i8", (0.0, 0.0), n * args.dim / 1e6, raw, cols)


if __name__ == "__main__":
    main()
