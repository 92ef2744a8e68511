"""``finsta-rt embed-text BUNDLE TEXT...``: text embeddings as JSON lines or an .npy file."""

from __future__ import annotations

import argparse

from ._common import EXIT_USAGE, add_model_args, error, load_model

NAME = "embed-text"
HELP = "embed texts with the bundle's text tower"
DESCRIPTION = "Print one JSON line per text, or save an [N, E] array with -o."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("-o", "--output", help="save the embeddings as .npy")
    add_model_args(p)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    if any(not t.strip() for t in args.texts):
        error(NAME, "empty text given; each TEXT must say something")
        return EXIT_USAGE
    emb = load_model(args).embed_text(args.texts)
    if args.output:
        np.save(args.output, emb)
        print(f"wrote {emb.shape} to {args.output}")
    else:  # json.dumps escapes every control character and undecodable byte (as \udcNN)
        for t, e in zip(args.texts, emb):
            print(json.dumps({"text": t, "embedding": [round(float(x), 6) for x in e]}))
    return 0
