"""The C++ CLIP BPE tokenizer (runtime/src/clip_tokenizer.cc) against finsta_rt.clip_tokenizer.

The Python ClipBpeTokenizer is the reference (tests/test_clip_tokenizer.py holds it equal to transformers'
CLIPTokenizer); build/runtime_build/finsta_rt_selftest (and its ASan/UBSan twin) tokenizes the same texts
from the same vocab.json and merges.txt, written from open_clip's merges. The corpus is fresh each run
(FINSTA_TEST_SEED replays it): test_clip_tokenizer's random texts of hard pieces, plus code points drawn at
every class boundary, NFC's composition pairs, Hangul and reordered marks. A Model on a clip_bpe bundle (a
tiny bundle's copy with a CLIP vocabulary, no export) gives the Python Model's text outputs.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import SEED, replay_hint
from test_clip_tokenizer import BPE_GZ, corpus
from test_cpp_runtime import (
    _copy,
    _edit_manifest,
    _frames,
    assert_ids_equal_python,
    driver,
    read_tensor,
    run,
    write_texts,
)

from finsta_rt import clip_tokenizer as ct
from finsta_rt.clip_tokenizer import EOS, ClipBpeTokenizer, open_clip_vocab
from finsta_rt.model import Model
from finsta_rt.tokenizer import TokenizerError

LENGTHS = [0, 2, 3, 16, 77]  # 0: the ids without <|startoftext|>/<|endoftext|> and without truncation
HARD = ["", " ", "a photo of a cat", "A Photo of a CAT", "café", "cafe\u0301", "A\u030a \u212b", "e\u0323\u0302"]
HARD += ["\uac00\ub098", "\u1100\u1161\u11a8", "日本語の文", "１２３ 3.14 ٣٤", "it's DON'T we'll 'S 'RE", "''t"]
HARD += ["<|endoftext|>", "<|ENDOFTEXT|>", "x<|startoftext|>y", "!<|endoftext|>?", "<<|endoftext|>", "<|endoftext"]
HARD += [
    "a\xa0b\u3000c\x85d",
    "\u2028\u2029 \t\r\n",
    "😀👍🏽 🇫🇷",
    "\U00011935\U00011930",
    "\U00011938",
    "a\u0898\u0301",
]
HARD += [" ".join(["unbelievable"] * 120), "x" * 600]
# Marks of several combining classes (230, 220, 202, 216, 240, 10, 1, 9): NFC reorders and composes them
MARKS = ["\u0301", "\u0300", "\u0308", "\u0323", "\u0327", "\u031b", "\u0345", "\u05b0", "\u20d2", "\u094d"]


def _small_vocab(k: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary cut to its first ``k`` merges (a BPE vocabulary in its own right: each merge's
    token is made from earlier ones) with the specials after them, so ids fit a tiny text tower."""
    vocab, merges = open_clip_vocab(BPE_GZ)
    tokens = sorted(vocab, key=vocab.__getitem__)[: 512 + k] + [ct.BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges[:k]


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cpp_clip_tok")
    ClipBpeTokenizer(*open_clip_vocab(BPE_GZ)).save(d)
    return d


@pytest.fixture(scope="module")
def small_files(tmp_path_factory) -> Path:
    """The vocabulary of CLIP's first 4000 merges (_small_vocab): ids within a tiny text tower's, quick to load."""
    d = tmp_path_factory.mktemp("cpp_clip_small")
    ClipBpeTokenizer(*_small_vocab(4000)).save(d)
    return d


@pytest.fixture(scope="module")
def tok(clip_files) -> ClipBpeTokenizer:
    return ClipBpeTokenizer.from_files(clip_files / "vocab.json", clip_files / "merges.txt")


def _code_point_texts(rng: random.Random) -> list[str]:
    """Code points at every boundary of the letter, number, whitespace and NFC-starter classes and random
    others, each alone and inside a word; NFC's composition pairs; Hangul jamo; bases with shuffled marks."""
    letters, numbers = ct.letter_number_ranges()
    starters = list(zip(*ct._NFC_STARTERS))
    edges = {c for lo, hi in [*letters, *numbers, *starters] for c in (lo - 1, lo, hi, hi + 1)}
    edges |= {ord(c) for c in ct._WHITESPACE} | {rng.randrange(sys.maxunicode + 1) for _ in range(6000)}
    cps = sorted(c for c in edges if 0 <= c <= sys.maxunicode and not 0xD800 <= c <= 0xDFFF)
    texts = [" ".join(f"x{chr(c)}x {chr(c)}" for c in cps[i : i + 200]) for i in range(0, len(cps), 200)]
    pairs = []
    for c in range(0xC0, 0x30000):
        d = unicodedata.decomposition(chr(c)).split()
        if len(d) == 2 and not d[0].startswith("<"):
            pairs.append("".join(chr(int(x, 16)) for x in d))
    texts += [" ".join(pairs[i : i + 300]) for i in range(0, len(pairs), 300)]
    hangul = [chr(0x1100 + rng.randrange(19)) + chr(0x1161 + rng.randrange(21)) + chr(0x11A7 + rng.randrange(28))]
    hangul += [chr(0xAC00 + rng.randrange(11172)) + chr(0x11A8 + rng.randrange(27)) for _ in range(300)]
    marks = [
        "".join([rng.choice("aeiouAOUnc\u03b1\u0433")] + rng.choices(MARKS, k=rng.randint(1, 4))) for _ in range(600)
    ]
    return texts + [" ".join(hangul), " ".join(marks[:300]), "".join(marks[300:])]


@pytest.mark.parametrize("kind,n_random", [("release", 3000), ("asan", 300)])
def test_ids_equal_python(kind, n_random, tok, clip_files, tmp_path):
    rng = random.Random(SEED)
    texts = HARD + corpus(SEED, n_random) + _code_point_texts(rng)
    with replay_hint(f"{kind}, corpus(SEED, {n_random}) and _code_point_texts"):
        assert_ids_equal_python(
            kind, clip_files / "vocab.json", texts, LENGTHS, tok, tmp_path, "--merges", clip_files / "merges.txt"
        )


@pytest.mark.parametrize("max_length,padding", [(77, "max_length"), (8, "longest"), (200, "longest")])
def test_batches_masks_and_eot_equal_python(tok, clip_files, tmp_path, max_length, padding):
    texts = HARD + [f"spelled {EOS} inside"] + corpus(SEED + max_length, 60)
    out = tmp_path / "batch.txt"
    vocab, merges = clip_files / "vocab.json", clip_files / "merges.txt"
    run("release", "batch", vocab, write_texts(tmp_path / "texts.bin", texts), out, max_length, padding, merges)
    lines = out.read_text().splitlines()
    rows, cols = map(int, lines[0].split())
    ids, mask = tok(texts, max_length=max_length, padding=padding)
    with replay_hint(f"corpus(SEED + {max_length}, 60)"):
        assert (rows, cols) == ids.shape
        np.testing.assert_array_equal(np.array(lines[1].split(), np.int64).reshape(rows, cols), ids)
        np.testing.assert_array_equal(np.array(lines[2].split(), np.int64).reshape(rows, cols), mask)
        np.testing.assert_array_equal(np.array(lines[3].split(), np.int64), tok.eot_positions(ids))
    # a batch of no texts has no column to pool at: both refuse it
    run("release", "batch", vocab, write_texts(tmp_path / "none.bin", []), out, 77, "longest", merges)
    with pytest.raises(ValueError, match=r"must be \[N, S\] with S >= 1") as e:
        tok.eot_positions(np.zeros((0, 0), np.int64))
    assert out.read_text().splitlines()[3] == f"ERR InputError\t{e.value}"


def _clip_bundle(src: Path, root: Path, small_files: Path) -> Path:
    """A copy of the bundle ``src`` whose tokenizer section is clip_bpe with ``small_files``."""
    b = _copy(src, root, "clip_bundle")
    (b / "vocab.txt").unlink()

    def clip_section(m):
        m["files"].pop("vocab.txt")
        for name in ("vocab.json", "merges.txt"):
            data = (small_files / name).read_bytes()
            (b / name).write_bytes(data)
            m["files"][name] = hashlib.sha256(data).hexdigest()
        m["tokenizer"] = {"kind": "clip_bpe", "vocab": "vocab.json", "merges": "merges.txt", "max_length": 77}

    _edit_manifest(b, clip_section)
    return b


def test_model_on_a_clip_bundle_equals_python(tiny_bundles, small_files, tmp_path):
    """A tiny STGT bundle whose tokenizer section is clip_bpe: the C++ Model's text embeddings and scores
    equal the Python Model's."""
    b = _clip_bundle(tiny_bundles[3]["portable"], tmp_path, small_files)
    model = Model(b, device="cpu")
    assert isinstance(model.tokenizer, ClipBpeTokenizer)
    texts = [t for t in HARD + corpus(SEED, 30) if model.tokenizer._text_ids(t)][:40]
    S = model.bundle.preprocess.size
    frames = _frames((2, 4, S, S, 3))
    frames.tofile(tmp_path / "frames.bin")
    out = tmp_path / "out"
    shape = ",".join(map(str, frames.shape))
    run("release", "embed", b, out, tmp_path / "frames.bin", shape, write_texts(tmp_path / "texts.bin", texts))
    want = model.embed_text(texts)
    got = read_tensor(out, "text_embedding")
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5
    scores = model.score(model.embed_frames(frames)["video_embedding"], want)
    assert np.abs(read_tensor(out, "scores") - scores).max() <= 1e-5


def test_bad_files_give_the_python_errors(small_files, tmp_path):
    """Each broken vocab.json / merges.txt: the C++ TokenizerError is the Python one, word for word."""
    v, m = small_files / "vocab.json", small_files / "merges.txt"
    vocab = json.loads(v.read_text(encoding="utf-8"))

    def write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    no_eos = dict(vocab)
    del no_eos[EOS]
    no_byte = {t: i for t, i in vocab.items() if t != "a</w>"}
    cases = [
        (tmp_path / "missing.json", m),
        (write("bad.json", "{nope"), m),
        (write("trailing.json", '{"a": 1,\n "b": 2,}'), m),
        (write("colon.json", '{"a" 1}'), m),
        (write("unterminated.json", '{"a": 1, "b'), m),
        (write("extra.json", '{"a": 1} x'), m),
        (write("list.json", "[1, 2]"), m),
        (write("float_id.json", '{"a": 1.5}'), m),
        (write("negative.json", '{"a": -3}'), m),
        (write("not_utf8.json", b'{"\xff": 1}'), m),
        (write("noeos.json", json.dumps(no_eos)), m),
        (write("nobyte.json", json.dumps(no_byte)), m),
        (write("shared.json", json.dumps({**vocab, "zz-extra": 7})), m),
        (write("escapes.json", json.dumps(vocab, ensure_ascii=True)), m),  # \uXXXX and surrogate pairs: loads
        (v, write("three.txt", "#version: 0.2\nh e\nthree sym bols\n")),
        (v, write("unknown.txt", "zq zq\n")),
        (v, tmp_path / "missing.txt"),
    ]
    want = []
    for vp, mp in cases:
        try:
            t = ClipBpeTokenizer.from_files(vp, mp)
            want.append(f"OK\t{t.vocab_size} {len(t._ranks)}")
        except TokenizerError as e:
            want.append(f"TokenizerError\t{e}")
    assert sum(w.startswith("OK") for w in want) == 1, want  # only escapes.json is a good file
    got = run("release", "clip-files", *[p for case in cases for p in case]).stdout.splitlines()
    assert got == want


def test_scene_graph_text_graph_refuses_clip_bpe(finsta_bundles, small_files, tmp_path):
    """A Finsta text graph reads scene graphs aligned to WordPiece offsets, which CLIP's BPE has none of (the
    Python runtime fails there too): embed_texts refuses the bundle with a BundleError naming it."""
    b = _clip_bundle(finsta_bundles[4]["portable"], tmp_path, small_files)
    S, T = (yaml.safe_load((b / "bundle.yaml").read_text())["preprocess"][k] for k in ("size", "frames"))
    frames = _frames((1, T, S, S, 3))
    frames.tofile(tmp_path / "frames.bin")
    proc = subprocess.run(
        [str(driver("release")), "embed", b, tmp_path / "out", tmp_path / "frames.bin", f"1,{T},{S},{S},3"]
        + [write_texts(tmp_path / "texts.bin", ["a man rides a bicycle"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"BundleError\t{b / 'bundle.yaml'}: the text graph takes scene graphs" in proc.stderr, proc.stderr
    assert "tokenizer kind 'clip_bpe' has none" in proc.stderr
