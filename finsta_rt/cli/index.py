"""``finsta-rt index OUT``: the approximate nearest-neighbour index that ``finsta-rt search`` uses."""

from __future__ import annotations

import argparse

from ._common import positive_int, printable

NAME = "index"
HELP = "build the search index of extracted features"
DESCRIPTION = (
    "Builds an HNSW index (usearch, extra finsta-rt[index]) over the video embeddings of a folder made by "
    "finsta-rt extract, stored in the folder with the bundle's sha256 and the rows it covers. finsta-rt search "
    "then takes its candidates from it and re-ranks them exactly; an index the folder has outgrown is refused "
    "until rebuilt. An up-to-date index of the same --vectors and --dtype is kept unless --force."
)
EPILOG = "examples:\n  finsta-rt index features/\n  finsta-rt index features/ --dtype f16 --force"
RAW_HELP = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..index import CONNECTIVITY, DEFAULT_DTYPE, DTYPES, EXPANSION_ADD, EXPANSION_SEARCH, VECTORS

    p.add_argument("features", help="folder made by finsta-rt extract")
    p.add_argument(
        "--vectors",
        choices=VECTORS,
        default=VECTORS[0],
        help="queries: every query vector (the top k exactly as the scorer ranks, up to HNSW's recall); pooled: "
        "one query-mean vector per row, Q times smaller, approximate for text queries (default queries)",
    )
    p.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE, help=f"vector storage (default {DEFAULT_DTYPE})")
    p.add_argument("--connectivity", type=positive_int, default=CONNECTIVITY, help="HNSW links per node (M)")
    p.add_argument("--expansion-add", type=positive_int, default=EXPANSION_ADD, help="HNSW build depth")
    p.add_argument(
        "--expansion-search", type=positive_int, default=EXPANSION_SEARCH, help="HNSW search depth (recorded)"
    )
    p.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    p.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    p.add_argument("--json", action="store_true", help="print the index record as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from ..feature_store import FeatureStore
    from ..index import INDEX_INFO, build_index, is_fresh, read_info

    store = FeatureStore(args.features)
    if not len(store):
        raise ValueError(f"{store.root} holds no extracted features")
    t0 = time.perf_counter()
    old = read_info(store.root) if is_fresh(store) else None
    if old and not args.force and (old.get("vectors"), old.get("dtype")) == (args.vectors, args.dtype):
        info, what = old, "up to date"
    else:
        ix = build_index(
            store,
            vectors=args.vectors,
            dtype=args.dtype,
            connectivity=args.connectivity,
            expansion_add=args.expansion_add,
            expansion_search=args.expansion_search,
            threads=args.threads,
        )
        info, what = ix.info, f"built in {time.perf_counter() - t0:.1f} s"
    assert info is not None
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    size = (store.root / info["file"]).stat().st_size
    print(
        f"{printable(store.root / INDEX_INFO)}: {info['videos']} videos, {info['rows']} rows, {info['dims']} dims, "
        f"{info['vectors']} vectors, {info['dtype']}, {size / 1e6:.1f} MB ({what})"
    )
    return 0
