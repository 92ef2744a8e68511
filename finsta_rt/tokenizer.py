"""BERT WordPiece tokenizer in pure Python (stdlib + numpy), equal to HF ``tokenizers``' BERT pipeline.

The text tower's ids must be exactly those the backbone was trained with, so this mirrors the
``tokenizers`` (Rust) pipeline that all-MiniLM-L6-v2 ships in ``tokenizer.json``, step by step:

1. special tokens written literally in the text ("[SEP]", "[MASK]", ...) are matched on the *raw*
   text and become their ids (HF added tokens with ``normalized: false``);
2. ``BertNormalizer``: drop NUL, U+FFFD and control characters, map whitespace to " ", put spaces
   around CJK ideographs, NFD + drop non-spacing marks, then lowercase *per character*;
3. ``BertPreTokenizer``: split on whitespace, then isolate every punctuation character;
4. ``WordPiece``: greedy longest-match-first with "##" continuation; a word that cannot be covered,
   or is longer than ``max_input_chars_per_word``, becomes [UNK] as a whole;
5. [CLS] ... [SEP], truncated to ``max_length`` (keeping [SEP] last), then padded on the right.

Character classes follow the Rust crates behind ``tokenizers`` (control / mark / punctuation
frozen at Unicode 8.0), not Python's ``unicodedata``; they differ in ways that change ids, so the
classes are tables here (see below). Text that equals a special token is matched before anything
else, and max_length < 2 is refused (HF would silently not truncate at all).
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PADDING_MODES = ("longest", "max_length")
_CONTINUATION = "##"


# Character classes. `tokenizers` takes "control", "non-spacing mark" and "punctuation" from the
# Rust `unicode_categories` crate, which is frozen at Unicode 8.0, while Python's `unicodedata`
# follows the interpreter (3.11: Unicode 14). The two disagree on ~800k code points (e.g. the
# crate deletes no unassigned code point, keeps marks and punctuation added after 2015, still
# calls U+166D punctuation), so the classes are spelled out here as code point ranges. They were
# read off the `tokenizers` BertNormalizer / BertPreTokenizer by probing every code point, and
# tests/test_tokenizer.py re-derives them from the installed `tokenizers` to keep them honest.
def _parse_ranges(spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    starts, ends = [], []
    for item in spec.split():
        lo, _, hi = item.partition("-")
        starts.append(int(lo, 16))
        ends.append(int(hi or lo, 16))
    return tuple(starts), tuple(ends)


def _in_ranges(cp: int, table: tuple[tuple[int, ...], tuple[int, ...]]) -> bool:
    i = bisect.bisect_right(table[0], cp) - 1
    return i >= 0 and cp <= table[1][i]


# Deleted by clean_text: Cc, Cf, Co as of Unicode 8.0 (minus \t \n \r), plus U+FFFD. NUL is in Cc.
_CONTROL = _parse_ranges(
    "0000-0008 000B-000C 000E-001F 007F-009F 00AD 0600-0605 061C 06DD 070F 180E 200B-200F "
    "202A-202E 2060-2064 2066-206F E000-F8FF FEFF FFF9-FFFB FFFD 110BD 1BCA0-1BCA3 1D173-1D17A "
    "E0001 E0020-E007F F0000-FFFFD 100000-10FFFD "
)
# Removed after NFD when stripping accents: Mn as of Unicode 8.0.
_NONSPACING_MARK = _parse_ranges(
    "0300-036F 0483-0487 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0610-061A 064B-065F 0670 "
    "06D6-06DC 06DF-06E4 06E7-06E8 06EA-06ED 0711 0730-074A 07A6-07B0 07EB-07F3 0816-0819 "
    "081B-0823 0825-0827 0829-082D 0859-085B 08E3-0902 093A 093C 0941-0948 094D 0951-0957 "
    "0962-0963 0981 09BC 09C1-09C4 09CD 09E2-09E3 0A01-0A02 0A3C 0A41-0A42 0A47-0A48 0A4B-0A4D "
    "0A51 0A70-0A71 0A75 0A81-0A82 0ABC 0AC1-0AC5 0AC7-0AC8 0ACD 0AE2-0AE3 0B01 0B3C 0B3F "
    "0B41-0B44 0B4D 0B56 0B62-0B63 0B82 0BC0 0BCD 0C00 0C3E-0C40 0C46-0C48 0C4A-0C4D 0C55-0C56 "
    "0C62-0C63 0C81 0CBC 0CBF 0CC6 0CCC-0CCD 0CE2-0CE3 0D01 0D41-0D44 0D4D 0D62-0D63 0DCA "
    "0DD2-0DD4 0DD6 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EB9 0EBB-0EBC 0EC8-0ECD 0F18-0F19 0F35 "
    "0F37 0F39 0F71-0F7E 0F80-0F84 0F86-0F87 0F8D-0F97 0F99-0FBC 0FC6 102D-1030 1032-1037 "
    "1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D 109D 135D-135F "
    "1712-1714 1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD 180B-180D "
    "18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62 1A65-1A6C "
    "1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81 1BA2-1BA5 "
    "1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37 1CD0-1CD2 1CD4-1CE0 "
    "1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC 20E1 20E5-20F0 2CEF-2CF1 2D7F "
    "2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1 A802 A806 A80B A825-A826 "
    "A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E AA31-AA32 "
    "AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 "
    "ABED FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F "
    "10A38-10A3A 10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081 110B3-110B6 110B9-110BA "
    "11100-11102 11127-1112B 1112D-11134 11173 11180-11181 111B6-111BE 111CA-111CC 1122F-11231 "
    "11234 11236-11237 112DF 112E3-112EA 11300-11301 1133C 11340 11366-1136C 11370-11374 "
    "114B3-114B8 114BA 114BF-114C0 114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 115DC-115DD "
    "11633-1163A 1163D 1163F-11640 116AB 116AD 116B0-116B5 116B7 1171D-1171F 11722-11725 "
    "11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92 1BC9D-1BC9E 1D167-1D169 1D17B-1D182 "
    "1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C 1DA75 1DA84 1DA9B-1DA9F "
    "1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF "
)
# Isolated by BertPreTokenizer: P* as of Unicode 8.0, plus ASCII 33-47, 58-64, 91-96, 123-126
# (so $ + < = > ^ ` | ~ count although they are symbols).
_PUNCTUATION = _parse_ranges(
    "0021-002F 003A-0040 005B-0060 007B-007E 00A1 00A7 00AB 00B6-00B7 00BB 00BF 037E 0387 "
    "055A-055F 0589-058A 05BE 05C0 05C3 05C6 05F3-05F4 0609-060A 060C-060D 061B 061E-061F "
    "066A-066D 06D4 0700-070D 07F7-07F9 0830-083E 085E 0964-0965 0970 0AF0 0DF4 0E4F 0E5A-0E5B "
    "0F04-0F12 0F14 0F3A-0F3D 0F85 0FD0-0FD4 0FD9-0FDA 104A-104F 10FB 1360-1368 1400 166D-166E "
    "169B-169C 16EB-16ED 1735-1736 17D4-17D6 17D8-17DA 1800-180A 1944-1945 1A1E-1A1F 1AA0-1AA6 "
    "1AA8-1AAD 1B5A-1B60 1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 2010-2027 2030-2043 "
    "2045-2051 2053-205E 207D-207E 208D-208E 2308-230B 2329-232A 2768-2775 27C5-27C6 27E6-27EF "
    "2983-2998 29D8-29DB 29FC-29FD 2CF9-2CFC 2CFE-2CFF 2D70 2E00-2E2E 2E30-2E42 3001-3003 "
    "3008-3011 3014-301F 3030 303D 30A0 30FB A4FE-A4FF A60D-A60F A673 A67E A6F2-A6F7 A874-A877 "
    "A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F A9C1-A9CD A9DE-A9DF AA5C-AA5F AADE-AADF AAF0-AAF1 "
    "ABEB FD3E-FD3F FE10-FE19 FE30-FE52 FE54-FE61 FE63 FE68 FE6A-FE6B FF01-FF03 FF05-FF0A "
    "FF0C-FF0F FF1A-FF1B FF1F-FF20 FF3B-FF3D FF3F FF5B FF5D FF5F-FF65 10100-10102 1039F 103D0 "
    "1056F 10857 1091F 1093F 10A50-10A58 10A7F 10AF0-10AF6 10B39-10B3F 10B99-10B9C 11047-1104D "
    "110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C9 111CD 111DB 111DD-111DF "
    "11238-1123D 112A9 114C6 115C1-115D7 11641-11643 1173C-1173E 12470-12474 16A6E-16A6F 16AF5 "
    "16B37-16B3B 16B44 1BC9F 1DA87-1DA8B "
)
# Mapped to " " by clean_text: \t \n \r and Rust `char::is_whitespace` (White_Space) minus the
# ones deleted as control first (\v \f U+0085). Not str.isspace(): that includes U+001C..U+001F.
_WHITESPACE = frozenset(
    "\t\n\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Raw characters that certainly become a word break; a safe place to cut raw text into chunks.
_BREAK_RE = re.compile("[" + "".join(sorted(_WHITESPACE)) + "]+")
_CHUNK_RE = re.compile("[^" + "".join(sorted(_WHITESPACE)) + "]+")  # the pieces _BREAK_RE leaves
# The CJK ranges of `tokenizers`' `is_chinese_char`, which has 0x2B920 (not 0x2B820), so the
# block 0x2B820..0x2B91F is *not* padded with spaces.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


class TokenizerError(ValueError):
    """A vocabulary or tokenizer setting is unusable; the message names the file and the problem."""


@functools.lru_cache(maxsize=1 << 16)
def _clean_char(ch: str) -> str:
    """What BertNormalizer's clean_text + handle_chinese_chars make of one character."""
    if ch in _WHITESPACE:
        return " "
    cp = ord(ch)
    if _in_ranges(cp, _CONTROL) or 0xD800 <= cp <= 0xDFFF:  # lone surrogates cannot reach Rust at all
        return ""
    if any(lo <= cp <= hi for lo, hi in _CJK_RANGES):
        return f" {ch} "
    return ch


@functools.lru_cache(maxsize=1 << 16)
def _is_punctuation(ch: str) -> bool:
    return _in_ranges(ord(ch), _PUNCTUATION)


@functools.lru_cache(maxsize=1 << 16)
def _is_nonspacing_mark(ch: str) -> bool:
    return _in_ranges(ord(ch), _NONSPACING_MARK)


# Unicode 16 case pairs that the Rust std of the `tokenizers` build lowercases but an older
# `unicodedata` (Python 3.11: Unicode 14) does not know yet; harmless where Python knows them.
_EXTRA_LOWER = {
    0x1C89: 0x1C8A,
    0xA7CB: 0x0264,
    0xA7CC: 0xA7CD,
    0xA7CE: 0xA7CF,
    0xA7D2: 0xA7D3,
    0xA7D4: 0xA7D5,
    0xA7DA: 0xA7DB,
    0xA7DC: 0x019B,
    **{cp: cp + 0x20 for cp in range(0x10D50, 0x10D66)},  # Garay
    **{cp: cp + 0x1B for cp in range(0x16EA0, 0x16EB9)},  # Beria Erfe
}
# The `unicode-normalization` crate leaves this one composed; Python's NFD splits it in two.
_NFD_KEEP = "\U00011938"  # DIVES AKURU VOWEL SIGN O, a starter, so cutting around it is safe


def _lower_per_char(text: str) -> str:
    if text.isascii():
        return text.lower()
    # Rust lowercases char by char, so a final capital sigma becomes "σ", never the "ς" that
    # Python's context-aware str.lower() writes; elsewhere the two agree.
    text = text.lower() if "\u03a3" not in text else "".join(c.lower() for c in text)
    return text.translate(_EXTRA_LOWER)


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    if _NFD_KEEP in text:
        return _NFD_KEEP.join(map(_strip_accents, text.split(_NFD_KEEP)))
    return "".join(c for c in unicodedata.normalize("NFD", text) if not _is_nonspacing_mark(c))


def check_vocab(vocab: dict[str, int], source: str) -> dict[int, str]:
    """id -> token of a token -> id vocabulary, refusing what no tokenizer can use (names ``source``)."""
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerError(f"{source}: the vocabulary is empty or not a dict")
    ids_seen: dict[int, str] = {}
    for token, idx in vocab.items():
        if not isinstance(token, str) or not token:
            raise TokenizerError(f"{source}: token {token!r} is not a non-empty string")
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool) or idx < 0:
            raise TokenizerError(f"{source}: token {token!r} has id {idx!r}, not a non-negative integer")
        if int(idx) in ids_seen:
            raise TokenizerError(f"{source}: tokens {ids_seen[int(idx)]!r} and {token!r} share id {idx}")
        ids_seen[int(idx)] = token
    return ids_seen


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a tokenizer file; a TokenizerError naming the file and ``what`` it is otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TokenizerError(f"{path}: {what} does not exist") from None
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: {what} is not UTF-8 (byte {e.start})") from None


class BatchEncoder:
    """What every runtime tokenizer shares: ``tokenize``, ``encode`` and the batch call. A subclass gives
    ``_text_ids(text)`` (the ids of a text, no specials), ``_id_to_token``, ``start_id`` / ``end_id`` (the
    tokens around each row: [CLS]/[SEP], <|startoftext|>/<|endoftext|>), ``max_length``, ``pad_id`` and
    ``_check_max_length``."""

    max_length: int
    pad_id: int
    start_id: int
    end_id: int
    _id_to_token: list[str]

    def _text_ids(self, text: str) -> list[int]:
        raise NotImplementedError

    @staticmethod
    def _check_max_length(max_length: int) -> int:
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text`` (no start/end tokens, no truncation)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return [self._id_to_token[i] for i in self._text_ids(text)]

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """``start ids end``, the ids cut so the total is <= max_length (default self.max_length)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        limit = self.max_length if max_length is None else self._check_max_length(max_length)
        return [self.start_id, *self._text_ids(text)[: limit - 2], self.end_id]

    def __call__(
        self, texts: str | Sequence[str], max_length: int | None = None, padding: str = "longest"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode a text or a batch: (input_ids, attention_mask), int64 [N, S], padded on the right
        with the pad token (mask 0). ``padding="longest"`` pads to the longest row of this batch,
        ``"max_length"`` to max_length."""
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
        if isinstance(texts, str):
            texts = [texts]
        elif not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a str or a sequence of str, got {type(texts).__name__}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
        limit = self.max_length if max_length is None else self._check_max_length(max_length)
        rows = [self.encode(t, limit) for t in texts]
        width = limit if padding == "max_length" else max((len(r) for r in rows), default=0)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return input_ids, mask


class WordPieceTokenizer(BatchEncoder):
    """BERT uncased WordPiece tokenizer: ``tok(texts) -> (input_ids, attention_mask)``, int64 [N, S]."""

    def __init__(
        self,
        vocab: dict[str, int],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        max_length: int = 32,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        max_input_chars_per_word: int = 100,
        special_tokens: Iterable[str] | None = None,
        source: str = "vocab",
    ) -> None:
        """``special_tokens``: tokens matched verbatim in the raw text and never split; default the
        unk/cls/sep/pad tokens plus "[MASK]" when the vocab has it, as BERT's tokenizer.json does.
        ``source`` names the vocabulary in error messages."""
        ids_seen = check_vocab(vocab, source)
        for name, tok in (("unk", unk_token), ("cls", cls_token), ("sep", sep_token), ("pad", pad_token)):
            if tok not in vocab:
                raise TokenizerError(f"{source}: the {name} token {tok!r} is not in the vocabulary")
        self._vocab = {t: int(i) for t, i in vocab.items()}
        self._id_to_token = ids_seen
        self.lowercase = bool(lowercase)
        # BertNormalizer: strip_accents=None means "follow lowercase"
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.max_length = self._check_max_length(max_length)
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.unk_token, self.cls_token, self.sep_token, self.pad_token = unk_token, cls_token, sep_token, pad_token
        self._unk_id = self._vocab[unk_token]
        if isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a collection of tokens, not one str")
        if special_tokens is None:
            special_tokens = [unk_token, cls_token, sep_token, pad_token] + (["[MASK]"] if "[MASK]" in vocab else [])
        specials = sorted(set(special_tokens), key=len, reverse=True)
        missing = [t for t in specials if t not in self._vocab]
        if missing:
            raise TokenizerError(f"{source}: special tokens {missing} are not in the vocabulary")
        # Longest alternative first makes Python's leftmost-first alternation leftmost-longest, as
        # the Aho-Corasick matcher in `tokenizers` is.
        self._special_re = re.compile("|".join(map(re.escape, specials))) if specials else None
        # Captions repeat words a lot; memoise whitespace chunk -> ids (bounded, per instance).
        self._chunk_ids = functools.lru_cache(maxsize=1 << 16)(self._chunk_ids_uncached)

    @classmethod
    def from_vocab_file(cls, path: str | PathLike[str], **kwargs) -> WordPieceTokenizer:
        """Read a BERT ``vocab.txt``: one token per line, id = line number (from 0)."""
        path = Path(path)
        text = read_text(path, "vocab file")
        # Only the line ending is removed (as HF's load_vocab does): tokens may contain other spaces.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it does not start a new token
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
        if not lines:
            raise TokenizerError(f"{path}: vocab file is empty")
        vocab: dict[str, int] = {}
        for i, tok in enumerate(lines):
            if tok == "":
                raise TokenizerError(f"{path}: line {i + 1} is empty; every line must hold one token")
            if tok in vocab:
                raise TokenizerError(f"{path}: duplicate token {tok!r} on lines {vocab[tok] + 1} and {i + 1}")
            vocab[tok] = i
        kwargs.setdefault("source", str(path))
        tok = cls(vocab, **kwargs)
        log.debug("loaded %d WordPiece tokens from %s", len(vocab), path)
        return tok

    # -- properties -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return max(self._id_to_token) + 1

    @property
    def cls_id(self) -> int:
        return self._vocab[self.cls_token]

    @property
    def sep_id(self) -> int:
        return self._vocab[self.sep_token]

    @property
    def pad_id(self) -> int:
        return self._vocab[self.pad_token]

    start_id = cls_id
    end_id = sep_id

    @property
    def unk_id(self) -> int:
        return self._unk_id

    @property
    def vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    # -- pipeline -------------------------------------------------------------------------------
    def _normalize(self, text: str) -> str:
        text = "".join(map(_clean_char, text))
        if self.strip_accents:
            text = _strip_accents(text)
        if self.lowercase:
            text = _lower_per_char(text)
        return text

    def _wordpiece(self, word: str) -> list[int]:
        return [idx for idx, _, _ in self._wordpiece_spans(word)]

    def _wordpiece_spans(self, word: str) -> list[tuple[int, int, int]]:
        """(id, start, end) of each piece, offsets into ``word`` (one source for ids and offsets)."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [(self._unk_id, 0, n)]
        vocab, out, start = self._vocab, [], 0
        while start < n:
            end = n
            while end > start:
                piece = word[start:end] if start == 0 else _CONTINUATION + word[start:end]
                idx = vocab.get(piece)
                if idx is not None:
                    break
                end -= 1
            else:
                return [(self._unk_id, 0, n)]  # one uncoverable piece makes the whole word [UNK]
            out.append((idx, start, end))
            start = end
        return out

    @staticmethod
    def _pre_tokenize(normalized: str) -> list[str]:
        """BertPreTokenizer on normalised text: split on " ", isolate each punctuation character."""
        words: list[str] = []
        for part in normalized.split(" "):  # the normaliser leaves " " as the only whitespace
            word_start = 0
            for i, ch in enumerate(part):
                if _is_punctuation(ch):
                    if i > word_start:
                        words.append(part[word_start:i])
                    words.append(ch)
                    word_start = i + 1
            if word_start < len(part):
                words.append(part[word_start:])
        return words

    def _chunk_ids_uncached(self, chunk: str) -> tuple[int, ...]:
        # `chunk` is raw text between whitespace; normalising it alone is safe because every
        # normalisation step is per character (NFD reorders marks only within a chunk).
        ids: list[int] = []
        for word in self._pre_tokenize(self._normalize(chunk)):
            ids += self._wordpiece(word)
        return tuple(ids)

    def _text_ids(self, text: str) -> list[int]:
        ids: list[int] = []
        segments: list[tuple[str, int | None]] = []
        if self._special_re is None:
            segments.append((text, None))
        else:
            pos = 0
            for m in self._special_re.finditer(text):
                segments.append((text[pos : m.start()], self._vocab[m.group()]))
                pos = m.end()
            segments.append((text[pos:], None))
        for seg, special in segments:
            for chunk in _BREAK_RE.split(seg):
                ids += self._chunk_ids(chunk)
            if special is not None:
                ids.append(special)
        return ids

    def encode_with_offsets(self, text: str, max_length: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
        """``encode(text, max_length)`` plus the character span ``(start, end)`` in ``text`` of each id.

        The ids are exactly ``encode``'s. [CLS] and [SEP] get ``(0, 0)``. A piece's span covers the
        raw characters that produced it (an accented letter and its marks, a whole word for [UNK]).
        Where a chunk's normalisation is not per character (it changes the character count in a way
        that cannot be attributed, e.g. marks reordered by NFD), every piece of that whitespace chunk
        gets the chunk's span: coarser, never wrong."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        limit = self.max_length if max_length is None else self._check_max_length(max_length)
        ids: list[int] = []
        spans: list[tuple[int, int]] = []

        def plain(lo: int, hi: int) -> None:  # text[lo:hi] holds no special token
            for m in _CHUNK_RE.finditer(text, lo, hi):
                for idx, s, e in self._chunk_pieces(m.group()):
                    ids.append(idx)
                    spans.append((m.start() + s, m.start() + e))

        pos = 0
        if self._special_re is not None:
            for m in self._special_re.finditer(text):
                plain(pos, m.start())
                ids.append(self._vocab[m.group()])
                spans.append((m.start(), m.end()))
                pos = m.end()
        plain(pos, len(text))
        ids, spans = ids[: limit - 2], spans[: limit - 2]
        return [self.cls_id, *ids, self.sep_id], [(0, 0), *spans, (0, 0)]

    def _chunk_pieces(self, chunk: str) -> list[tuple[int, int, int]]:
        """(id, start, end) for one whitespace-free raw chunk, offsets into ``chunk``."""
        want = self._chunk_ids(chunk)
        # Normalise character by character, remembering which raw character each output came from.
        norm: list[str] = []
        owner: list[int] = []
        for i, ch in enumerate(chunk):
            out = _clean_char(ch)
            if self.strip_accents:
                out = _strip_accents(out)
            if self.lowercase:
                out = _lower_per_char(out)
            norm.append(out)
            owner.extend([i] * len(out))
        normalized = "".join(norm)
        pieces: list[tuple[int, int, int]] = []
        if normalized == self._normalize(chunk):
            pos = 0
            for word in self._pre_tokenize(normalized):
                # _pre_tokenize keeps characters in order and only drops " ": find each word in turn.
                pos = normalized.index(word, pos)
                for idx, s, e in self._wordpiece_spans(word):
                    pieces.append((idx, owner[pos + s], owner[pos + e - 1] + 1))
                pos += len(word)
        if tuple(idx for idx, _, _ in pieces) != want:  # not attributable per character: whole chunk
            pieces = [(idx, 0, len(chunk)) for idx in want]
        return pieces

    @staticmethod
    def _check_max_length(max_length: int) -> int:
        # HF silently skips truncation when max_length < 2; we refuse instead: [CLS] and [SEP]
        # alone already need 2 positions.
        if not isinstance(max_length, (int, np.integer)) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2 (room for [CLS] and [SEP]), got {max_length!r}")
        return int(max_length)

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
            f"strip_accents={self.strip_accents}, max_length={self.max_length})"
        )


# The tokenizer kinds a bundle may state (docs/bundle.md); finsta_rt.bundle.tokenizer_from_spec builds each.
# This module imports no sibling (runtime/tools/gen_unicode_tables.py loads it by path, and
# clip_tokenizer imports it), so the factory lives in bundle.py.
TOKENIZER_KINDS = ("wordpiece", "clip_bpe")
