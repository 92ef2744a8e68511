"""``finsta-rt search OUT --text "..."``: top-k over extracted features, through the folder's index if it has one."""

from __future__ import annotations

import argparse

from ._common import EXIT_USAGE, add_model_args, error, positive_int, printable

NAME = "search"
HELP = "search extracted features by text or by video"
DESCRIPTION = (
    "Top-k over a folder made by finsta-rt extract: the bundle's score (max over queries of the cosine) for texts, "
    "the cosine of the pooled embeddings for videos. With the folder's index (finsta-rt index) the index proposes "
    "candidates that are re-ranked exactly; --exact scores every row. Any number of --text / --video queries, or "
    "--queries FILE (one text per line), are answered in one run with one model."
)
EPILOG = (
    'examples:\n  finsta-rt search features/ --text "a man rides a bike" -k 5\n'
    '  finsta-rt search features/ --text "a dog" --text "a red car" --exact\n'
    "  finsta-rt search features/ --queries queries.txt --json\n"
    "  finsta-rt search features/ --video videos/a.mp4"
)
RAW_HELP = True
TEXT_BATCH = 64  # texts embedded per call of the text graph


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("features", help="folder made by finsta-rt extract")
    p.add_argument("--text", action="append", default=[], help="text query (repeatable)")
    p.add_argument("--queries", metavar="FILE", help="text queries, one per line (blank lines skipped; - for stdin)")
    p.add_argument("--video", action="append", default=[], help="an extracted video (its path) to find neighbours of")
    p.add_argument("-k", type=positive_int, default=10)
    p.add_argument("--exact", action="store_true", help="score every row, even when the folder has an index")
    p.add_argument("--candidates", type=positive_int, help="rows the index proposes per query (default max(100, 10k))")
    p.add_argument("--bundle", help="bundle for text queries (default: the one recorded by extract)")
    p.add_argument("--json", action="store_true", help="hits as JSON: a list, or [{query, hits}] for several queries")
    add_model_args(p)


def _read_queries(path: str) -> list[str]:
    import sys
    from pathlib import Path

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as e:
        raise ValueError(f"cannot read --queries {path}: {getattr(e, 'strerror', None) or e}") from e
    queries = [line.strip() for line in text.splitlines() if line.strip()]
    if not queries:
        raise ValueError(f"--queries {path} holds no query")
    return queries


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from ..search import FeatureIndex

    texts = list(args.text) + (_read_queries(args.queries) if args.queries else [])
    if not texts and not args.video:
        error(NAME, "give a query: --text, --queries FILE or --video")
        return EXIT_USAGE
    if any(not t.strip() for t in args.text):
        error(NAME, "--text is empty")
        return EXIT_USAGE
    index = FeatureIndex(args.features, index=False if args.exact else None)
    results: list[tuple[str, list]] = []
    if texts:
        model = index.load_model(args.bundle, device=args.device, threads=args.threads)
        emb = np.concatenate([model.embed_text(texts[i : i + TEXT_BATCH]) for i in range(0, len(texts), TEXT_BATCH)])
        hits = index.search_texts(emb, args.k, exact=args.exact, candidates=args.candidates)
        results += list(zip(texts, hits, strict=True))
    for v in args.video:
        results.append((v, index.search_video(v, args.k, exact=args.exact, candidates=args.candidates)))
    if args.json:
        if len(results) == 1:
            print(json.dumps([h.__dict__ for h in results[0][1]], indent=1))
        else:
            print(json.dumps([{"query": q, "hits": [h.__dict__ for h in hs]} for q, hs in results], indent=1))
        return 0
    for n, (query, hits) in enumerate(results):
        if len(results) > 1:
            print(f"{'' if n == 0 else chr(10)}query: {printable(query)}")
        print(f"{'rank':>4}  {'score':>7}  video")
        for h in hits:
            seg = f"  (segment {h.segment})" if h.segment is not None else ""
            print(f"{h.rank:>4}  {h.score:>7.4f}  {printable(h.path)}{seg}")
    return 0
