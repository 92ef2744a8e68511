"""finsta_rt.clip_tokenizer against transformers' CLIPTokenizer (the reference, built from the files we write).

Every expected id comes from the reference (or, for the pre-tokeniser's character classes, from the
`tokenizers` regex engine the reference runs on); nothing here is a stored output of our own code.
The corpus is fresh each run (FINSTA_TEST_SEED replays it).
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SEED, replay_hint
from test_bundle_schema import fake_bundle
from tokenizers import Regex, normalizers  # the reference's regex engine (Oniguruma)
from transformers import CLIPTokenizer  # the reference; `make venv` installs it (extra hf)

from finsta_rt import clip_tokenizer as ct
from finsta_rt.bundle import Bundle, BundleError, tokenizer_from_spec
from finsta_rt.clip_tokenizer import BOS, EOS, ClipBpeTokenizer, open_clip_vocab
from finsta_rt.tokenizer import TokenizerError, WordPieceTokenizer

REPO = Path(__file__).resolve().parents[1]
# open_clip's merges file, read as data (open_clip itself is never imported: it needs ftfy and torch)
BPE_GZ = Path(importlib.util.find_spec("open_clip").origin).parent / "bpe_simple_vocab_16e6.txt.gz"
N_RANDOM = 10_000

WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2000", "\u2003", "\u200a"]
WHITESPACE += ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1d", "\x1e", "\x1f", "\u200b", "\ufeff"]
WORDS = ["a", "man", "Woman", "DOG", "running", "unbelievable", "xylophonist", "GPU", "it's", "DON'T", "we'll"]
WORDS += ["they're", "I'M", "you've", "she'd", "'S", "O'Neill", "rock'n'roll", "snake_case", "camelCase", "ﬁne"]
WORDS += ["café", "cafe\u0301", "naïve", "Ångström", "A\u030a", "\u212b", "über", "ΣΑΣ", "ΟΔΟΣ", "İstanbul", "ß", "ǅ"]
WORDS += ["日本語", "中文字", "한국어", "\u1100\u1161\u11a8", "Москва", "עברית", "العربية", "हिन्दी", "ไทย", "ქართ"]
WORDS += [BOS, EOS, "<|ENDOFTEXT|>", "<|StartOfText|>", "<|endoftext", "|>", "<|", "<|endoftext|>s"]
PUNCT = ["!", "?!", "...", "—", "–", "“q”", "«g»", "(", ")", "[]", "{}", "@#$%^&*", "~`|\\", "<=>", "'", "''", "'''"]
PUNCT += ["!'s", "-'t", "©", "®", "™", "°", "§", "¶", "•", "‰", "€", "£", "¥", "₹", "½", "²", "³", "¹", "⅓"]
DIGITS = ["0", "7", "42", "1234", "3.14", "1,000", "٣٤", "০১", "１２", "Ⅻ", "ⅷ", "①", "𝟙", "2026-12-01"]
EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "❤\ufe0f", "🏳\ufe0f\u200d🌈", "🤖", "🐈", "☕", "\U0001fae0"]
MARKS = ["\u0301", "\u0308", "\u0327", "\u20dd", "\u0f71", "\u093c", "\u302a", "\ufe0f", "\U000e0100"]
NEW_IN_UNICODE_15_16 = ["\U000105c0", "\U00010d4a", "\U00010d40", "\U00016d40", "\U0001e5d0", "\U00011f04"]
NEW_IN_UNICODE_15_16 += ["\U00011935\U00011930", "\U00011938", "\U0002ebf0", "\U00031350", "\U00011380"]
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x80", "\x9f", "\u200e", "\u202e", "\u2066", "\ue000", "\U000f0000"]
PIECES = [WORDS, PUNCT, DIGITS, EMOJI, MARKS, NEW_IN_UNICODE_15_16, CONTROL]
# Unicode blocks to draw single random code points from (scripts, symbols, CJK, astral, unassigned)
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x36F), (0x370, 0x52F), (0x530, 0x8FF), (0x900, 0xDFF)]
RANGES += [(0xE00, 0x1FFF), (0x2000, 0x2BFF), (0x2C00, 0x2FFF), (0x3000, 0x9FFF), (0xA000, 0xD7FF)]
RANGES += [(0xF900, 0xFFFF), (0x10000, 0x1FFFF), (0x20000, 0x323AF), (0xE0000, 0xE01EF), (0x0, 0x10FFFF)]


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 16)):
        r = rng.random()
        if r < 0.55:
            piece = rng.choice(rng.choice(PIECES))
        else:
            lo, hi = rng.choice(RANGES)
            piece = "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4)))
        piece = "".join(c for c in piece if not 0xD800 <= ord(c) <= 0xDFFF)  # the reference cannot take them
        r = rng.random()
        parts.append(piece.upper() if r < 0.08 else piece.title() if r < 0.12 else piece)
        parts.append(rng.choice(WHITESPACE) if rng.random() < 0.7 else "")
    return "".join(parts)


def corpus(seed: int = SEED, n_random: int = N_RANDOM) -> list[str]:
    rng = random.Random(seed)
    out = ["", " ", "\t\n ", "a photo of a cat", "x" * 500, " ".join(["word"] * 200)]
    out += [_random_text(rng) for _ in range(n_random)]
    for _ in range(12):  # long texts: truncation at 77 keeps <|endoftext|> last
        out.append(" ".join(_random_text(rng) for _ in range(rng.randint(40, 100))))
    for f in sorted((REPO / "datasets" / "real_clips").glob("*.jsonl")):
        out += [json.loads(line)["caption"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> Path:
    """vocab.json + merges.txt as we build them from open_clip's data, written by our save()."""
    vocab, merges = open_clip_vocab(BPE_GZ)
    d = tmp_path_factory.mktemp("clip_tok")
    ClipBpeTokenizer(vocab, merges).save(d)
    return d


@pytest.fixture(scope="module")
def tok(clip_files) -> ClipBpeTokenizer:
    return ClipBpeTokenizer.from_files(clip_files / "vocab.json", clip_files / "merges.txt")


@pytest.fixture(scope="module")
def ref(clip_files):
    return CLIPTokenizer.from_pretrained(str(clip_files))


def test_vocab_is_clips(tok, ref):
    vocab, merges = open_clip_vocab(BPE_GZ)
    assert len(vocab) == 49408 and len(merges) == 48894
    assert tok.vocab == vocab == ref.get_vocab()
    backend = json.loads(ref.backend_tokenizer.to_str())["model"]
    assert [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in backend["merges"]] == merges
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (ref.bos_token_id, ref.eos_token_id, ref.pad_token_id)
    assert (tok.bos_id, tok.eos_id) == (49406, 49407)
    # OpenAI CLIP's own ids for its README example (independent of both implementations)
    assert tok.encode("a diagram") == [49406, 320, 22697, 49407]
    assert tok.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_character_classes_equal_the_reference_regex_engine():
    """\\p{L}, \\p{N} and \\s as our pattern spells them equal Oniguruma's on every code point: the
    reference's own regex engine writes each code point's class, so do our ranges, and the compiled
    character classes match exactly the ranges (checked on every range end and random code points)."""
    cps = np.array([c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF])
    text = "".join(map(chr, cps))
    cls = r"[^\p{L}\p{N}\s]", r"\p{L}", r"\p{N}", r"\s"
    onig = normalizers.Sequence([normalizers.Replace(Regex(c), k) for c, k in zip(cls, ".LNS")])
    expected = np.frombuffer(onig.normalize_str(text).encode("ascii"), np.uint8)
    letters, numbers = ct.letter_number_ranges()
    ours = np.full(len(cps), ord("."), np.uint8)
    for ranges, k in ((letters, "L"), (numbers, "N"), ([(ord(c), ord(c)) for c in ct._WHITESPACE], "S")):
        for lo, hi in ranges:
            ours[(cps >= lo) & (cps <= hi)] = ord(k)
    diff = np.flatnonzero(ours != expected)
    assert not diff.size, [(hex(cps[i]), chr(ours[i]), chr(expected[i])) for i in diff[:20]]
    rng = np.random.default_rng(SEED)
    for ranges in (letters, numbers):
        rx = re.compile(f"[{ct.class_body(ranges)}]")
        probe = {c for lo, hi in ranges for c in (lo - 1, lo, hi, hi + 1)} | set(rng.choice(cps, 20_000).tolist())
        starts = [lo for lo, _ in ranges]
        for c in probe:
            if 0xD800 <= c <= 0xDFFF or not 0 <= c <= sys.maxunicode:
                continue
            i = bisect.bisect_right(starts, c) - 1
            want = i >= 0 and c <= ranges[i][1]
            assert bool(rx.fullmatch(chr(c))) == want, hex(c)


def test_normalisation_equals_reference_per_code_point(ref):
    """NFC + whitespace + lowercase of every code point, each after a letter, equals the reference's normaliser
    ("A" is a starter that composes with nothing after it, so the code points cannot interact)."""
    norm = ref.backend_tokenizer.normalizer
    cps = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    bad = []
    for i in range(0, len(cps), 4096):
        s = "".join("A" + chr(c) for c in cps[i : i + 4096])
        if ct.normalize(s) != norm.normalize_str(s):
            bad += [hex(c) for c in cps[i : i + 4096] if ct.normalize("A" + chr(c)) != norm.normalize_str("A" + chr(c))]
    assert not bad, bad[:20]
    # the pairs that interact: NFC compositions and runs of mixed whitespace
    for s in ["e\u0301", "\u1100\u1161\u11a8", "\U00011935\U00011930", "a\u0323\u0302", "\u212b", " \t\u3000\x85 x"]:
        assert ct.normalize(s) == norm.normalize_str(s), ascii(s)


def test_ids_and_masks_equal_clip_tokenizer(tok, ref, capsys):
    texts = corpus()
    assert len(texts) >= 10_000 and "" in texts and any(len(t) > 2000 for t in texts)
    with replay_hint("corpus of test_ids_and_masks_equal_clip_tokenizer"):
        want = ref(texts, padding="max_length", truncation=True, max_length=77)
        ids, mask = tok(texts, padding="max_length")
        want_ids, want_mask = np.array(want["input_ids"]), np.array(want["attention_mask"])
        equal = (ids == want_ids).all(axis=1) & (mask == want_mask).all(axis=1)
        with capsys.disabled():
            print(f"\nCLIP BPE: {int(equal.sum())} / {len(texts)} rows equal CLIPTokenizer's ids and mask")
        bad = np.flatnonzero(~equal)[:3]
        assert equal.all(), [(texts[i], ids[i][mask[i] > 0].tolist(), want_ids[i].tolist()) for i in bad]
        # padding="longest" is the same rows cut to the batch's longest
        ids_l, mask_l = tok(texts[:64])
        w = ref(texts[:64], padding="longest", truncation=True, max_length=77)
        np.testing.assert_array_equal(ids_l, w["input_ids"])
        np.testing.assert_array_equal(mask_l, w["attention_mask"])


@pytest.mark.parametrize("max_length", [2, 3, 8, 16, 200])
def test_truncation_keeps_endoftext_last(tok, ref, max_length):
    texts = corpus(SEED + max_length, n_random=150)
    with replay_hint(f"max_length={max_length}"):
        want = ref(texts, truncation=True, max_length=max_length)["input_ids"]
        for t, w in zip(texts, want):
            got = tok.encode(t, max_length)
            assert got == w, t
            assert len(got) <= max_length and got[-1] == tok.eos_id and got[0] == tok.bos_id


def test_eot_positions_are_where_clip_pools(tok):
    texts = ["a cat", "", "two words here", f"spelled {EOS} inside", "x" * 400]
    ids, mask = tok(texts, padding="max_length")
    pos = tok.eot_positions(ids)
    assert pos.dtype == np.int64 and pos.shape == (5,)
    np.testing.assert_array_equal(pos, (ids == 49407).argmax(-1))  # HF CLIPTextTransformer's pooling
    np.testing.assert_array_equal(pos, ids.argmax(-1))  # OpenAI CLIP's (49407 is the largest id)
    real_end = mask.sum(1) - 1
    assert (pos[[0, 1, 2, 4]] == real_end[[0, 1, 2, 4]]).all() and pos[3] < real_end[3]
    assert pos[4] == 76
    with pytest.raises(ValueError, match="hold no"):
        tok.eot_positions(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"\[N, S\]"):
        tok.eot_positions(np.zeros(3, np.int64))


def test_lone_surrogates_are_dropped(tok):
    assert tok.encode("a\ud800 cat\udfff") == tok.encode("a cat")


def test_call_interface_matches_wordpiece(tok):
    ids, mask = tok("one text")
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape == (1, 4)
    ids, mask = tok([])
    assert ids.shape == (0, 0)
    with pytest.raises(ValueError, match="padding"):
        tok(["a"], padding="right")
    with pytest.raises(ValueError, match="max_length"):
        tok(["a"], max_length=1)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok(["a", 3])
    assert tok.tokenize("Hello world!") == ["hello</w>", "world</w>", "!</w>"]


def test_bad_files_are_named(tmp_path, clip_files):
    v, m = clip_files / "vocab.json", clip_files / "merges.txt"
    with pytest.raises(TokenizerError, match="vocab.json: vocab file does not exist"):
        ClipBpeTokenizer.from_files(tmp_path / "vocab.json", m)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(TokenizerError, match="bad.json: vocab file is not valid JSON"):
        ClipBpeTokenizer.from_files(tmp_path / "bad.json", m)
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh e\nthree sym bols\n")
    with pytest.raises(TokenizerError, match=r"merges.txt: line 3 'three sym bols' is not 'a b'"):
        ClipBpeTokenizer.from_files(v, tmp_path / "merges.txt")
    vocab = json.loads(v.read_text(encoding="utf-8"))
    del vocab[EOS]
    (tmp_path / "noeos.json").write_text(json.dumps(vocab))
    with pytest.raises(TokenizerError, match="noeos.json.*<\\|endoftext\\|>"):
        ClipBpeTokenizer.from_files(tmp_path / "noeos.json", m)
    (tmp_path / "unknown.txt").write_text("zq zq\n")
    with pytest.raises(TokenizerError, match="merge 1 'zq zq' makes a token not in the vocabulary"):
        ClipBpeTokenizer.from_files(v, tmp_path / "unknown.txt")


def _clip_bundle(root: Path, clip_files: Path, edit=None) -> Path:
    def add_files(m):
        for name in ("vocab.json", "merges.txt"):
            data = (clip_files / name).read_bytes()
            (root / name).write_bytes(data)
            m["files"][name] = hashlib.sha256(data).hexdigest()
        m["tokenizer"] = {"kind": "clip_bpe", "vocab": "vocab.json", "merges": "merges.txt", "max_length": 77}
        if edit:
            edit(m)

    root.mkdir(parents=True, exist_ok=True)
    return fake_bundle(root, add_files)


def test_bundle_serves_clip_bpe(tmp_path, clip_files, ref):
    b = Bundle.load(_clip_bundle(tmp_path / "b", clip_files))
    assert b.tokenizer_spec.kind == "clip_bpe"
    assert [f.name for f in b.tokenizer_spec.files] == ["vocab.json", "merges.txt"]
    t = b.tokenizer()
    assert isinstance(t, ClipBpeTokenizer) and isinstance(tokenizer_from_spec(b.tokenizer_spec), ClipBpeTokenizer)
    ids, _ = t(["A Photo of a CAT"])
    assert ids[0].tolist() == ref("A Photo of a CAT")["input_ids"]


def test_bundle_without_kind_is_wordpiece(tmp_path):
    root = tmp_path / "b"

    def old_bundle(m):  # a bundle written before tokenizer kinds: no kind, a vocab.txt
        vocab = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\ncat\n"
        (root / "vocab.txt").write_bytes(vocab)
        m["files"]["vocab.txt"] = hashlib.sha256(vocab).hexdigest()
        m["tokenizer"].pop("kind")

    b = Bundle.load(fake_bundle(root, old_bundle))
    assert b.tokenizer_spec.kind == "wordpiece" and b.tokenizer_spec.merges is None
    tok = b.tokenizer()
    assert isinstance(tok, WordPieceTokenizer) and tok.encode("Cat") == [2, 4, 3]


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: m["tokenizer"].update(kind="sentencepiece"),
            "tokenizer.kind 'sentencepiece' is not one of wordpiece, clip_bpe",
        ),
        (lambda m: m["tokenizer"].pop("merges"), "tokenizer.merges is missing"),
        (lambda m: m["tokenizer"].update(merges="../merges.txt"), "tokenizer.merges '../merges.txt' leaves the bundle"),
        (lambda m: m["tokenizer"].update(merges="/etc/passwd"), "tokenizer.merges '/etc/passwd' leaves the bundle"),
        (lambda m: m["tokenizer"].update(merges=["merges.txt"]), "tokenizer.merges must be a non-empty string"),
        (lambda m: m["files"].pop("merges.txt"), "tokenizer merges merges.txt has no sha256 in 'files'"),
        (lambda m: m["tokenizer"].update(lowercase=False), "tokenizer.lowercase must be true for kind clip_bpe"),
        (lambda m: m["tokenizer"].update(max_length=0), r"tokenizer.max_length must be an integer in \[1,"),
        (lambda m: m["tokenizer"].update(vocabulary="x"), "tokenizer.vocabulary is not a known key"),
        (lambda m: m["tokenizer"].update(kind="wordpiece"), "tokenizer.merges is only for kind clip_bpe"),
    ],
)
def test_bad_clip_bundle_names_the_key(tmp_path, clip_files, edit, message):
    with pytest.raises(BundleError, match=message):
        Bundle.load(_clip_bundle(tmp_path / "b", clip_files, edit))


def test_too_short_max_length_is_refused_when_the_tokenizer_is_built(tmp_path, clip_files):
    b = Bundle.load(_clip_bundle(tmp_path / "b", clip_files, lambda m: m["tokenizer"].update(max_length=1)))
    with pytest.raises(ValueError, match="max_length must be an integer >= 2"):
        b.tokenizer()


def test_missing_merges_file_is_named(tmp_path, clip_files):
    root = _clip_bundle(tmp_path / "b", clip_files)
    (root / "merges.txt").unlink()
    with pytest.raises(BundleError, match="merges.txt is missing"):
        Bundle.load(root)


def test_exporter_writes_a_tokenizer_section_the_runtime_loads(tmp_path, clip_files):
    from finsta.export.bundle import ExportSpec, tokenizer_section  # torch: imported only here

    def spec(**kw):
        base = dict(family="stgt", name="t", preprocess=None, vocab_file=clip_files / "vocab.json", lowercase=True)
        return ExportSpec(**{**base, "max_length": 77, "model_config": {}, **kw})

    section, files = tokenizer_section(spec(tokenizer_kind="clip_bpe", merges_file=clip_files / "merges.txt"))
    assert section == {"kind": "clip_bpe", "vocab": "vocab.json", "merges": "merges.txt", "max_length": 77}
    assert files == {"vocab.json": clip_files / "vocab.json", "merges.txt": clip_files / "merges.txt"}
    b = Bundle.load(_clip_bundle(tmp_path / "b", clip_files, lambda m: m.update(tokenizer=section)))
    assert isinstance(b.tokenizer(), ClipBpeTokenizer)
    with pytest.raises(ValueError, match="needs merges_file"):
        tokenizer_section(spec(tokenizer_kind="clip_bpe"))
    with pytest.raises(ValueError, match="tokenizer kind must be one of"):
        tokenizer_section(spec(tokenizer_kind="bpe"))
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        tokenizer_section(spec(tokenizer_kind="clip_bpe", merges_file=tmp_path / "merges.txt"))
    # wordpiece: any existing file will do here (the section only names it)
    section, files = tokenizer_section(spec(vocab_file=clip_files / "merges.txt"))
    assert section["kind"] == "wordpiece" and list(files) == ["vocab.txt"]


def test_ascii_fast_path_equals_the_full_pattern():
    rng = random.Random(SEED)
    alphabet = [chr(c) for c in range(128)] + [BOS, EOS, "'s", "'ll", "'re", "<|"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))).lower() for _ in range(3000)]
    with replay_hint("ASCII fast path"):
        for t in texts:
            assert ct._ASCII_PRE_TOKENIZER.findall(t) == ct._pre_tokenizer().findall(t), ascii(t)
