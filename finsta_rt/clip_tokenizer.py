"""CLIP's byte-level BPE tokenizer in pure Python (stdlib + numpy), equal to transformers' ``CLIPTokenizer``.

transformers 5's ``CLIPTokenizer`` is a ``tokenizers`` (Rust) pipeline; without ftfy (never installed here)
that pipeline is the whole of it, and this module mirrors it step by step:

1. the special tokens ``<|startoftext|>`` / ``<|endoftext|>`` written literally in the raw text are
   matched first and become their ids (added tokens, matched before normalisation);
2. normaliser: NFC, every run of whitespace (Oniguruma's ``\\s``: Unicode White_Space, *not*
   ``str.isspace``, which adds U+001C..U+001F) becomes one " ", then lowercase character by character;
3. pre-tokeniser: CLIP's regex
   ``<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``,
   keeping the matches (the spaces between them are dropped); then each piece's UTF-8 bytes are mapped
   to printable characters (``bytes_to_unicode``). ByteLevel's own GPT-2 split runs after CLIP's; it
   cuts only the special-token pieces that normalisation made (``<|ENDOFTEXT|>`` lowercased into
   ``<|endoftext|>``: "<|", "endoftext", "|>"), every other piece has no whitespace and does not mix
   letters, digits and other characters, so GPT-2's regex keeps it whole;
4. BPE with "</w>" on each piece's last symbol, lowest merge rank first (memoised per piece);
5. ``<|startoftext|> ids <|endoftext|>``, truncated to ``max_length`` keeping ``<|endoftext|>`` last,
   padded on the right with ``<|endoftext|>`` (its mask 0), as ``truncation=True, max_length=77``.

Python's ``re`` has no ``\\p{L}`` / ``\\p{N}``: the classes are built once from ``unicodedata`` categories
(L* and N*) plus the code points that Unicode 15-16 added and Oniguruma (Unicode 16) already knows but
this Python's ``unicodedata`` (3.11: Unicode 14) does not, listed below. tests/test_clip_tokenizer.py
re-derives every class, code point by code point, from the installed ``tokenizers``' own regex engine.
Lone surrogates (which cannot reach the Rust reference at all) are dropped, as WordPieceTokenizer does.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from .tokenizer import BatchEncoder, TokenizerError, _lower_per_char, _parse_ranges, check_vocab, read_text

log = logging.getLogger(__name__)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"
CLIP_CONTEXT_LENGTH = 77
# The first line of a merges.txt as `tokenizers` and HF write it; it is not a merge.
MERGES_HEADER = "#version: 0.2"

# Letters / numbers Oniguruma (Unicode 16) has that Python 3.11's unicodedata (Unicode 14) calls unassigned
# (probed over every code point; tests/test_clip_tokenizer.py keeps them honest). Harmless on a newer Python.
_EXTRA_LETTERS = _parse_ranges(
    "1C89-1C8A A7CB-A7CD A7DA-A7DC 105C0-105F3 10D4A-10D65 10D6F-10D85 10EC2-10EC4 1123F-11240 11380-11389 "
    "1138B 1138E 11390-113B5 113B7 113D1 113D3 11BC0-11BE0 11F02 11F04-11F10 11F12-11F33 1342F 13441-13446 "
    "13460-143FA 16100-1611D 16D40-16D6C 18CFF 1B132 1B155 1DF25-1DF2A 1E030-1E06D 1E4D0-1E4EB 1E5D0-1E5ED "
    "1E5F0 2B739 2EBF0-2EE5D 31350-323AF"
)
_EXTRA_NUMBERS = _parse_ranges(
    "10D40-10D49 116D0-116E3 11BF0-11BF9 11F50-11F59 16130-16139 16D70-16D79 1CCF0-1CCF9 1D2C0-1D2D3 "
    "1E4F0-1E4F9 1E5F1-1E5FA"
)
# Oniguruma's \s on Unicode text: White_Space (25 code points).
_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_RUN = re.compile("[" + re.escape(_WHITESPACE) + "]+")
_SPECIAL_PIECES = {t: ("<|", t[2:-2], "|>") for t in (BOS, EOS)}
_SURROGATES = re.compile("[\ud800-\udfff]")
# The `unicode-normalization` crate behind `tokenizers` predates these marks (Unicode 10-14): it gives them
# combining class 0, so they are starters there that nothing reorders or composes across, while Python
# sorts and composes around them. Normalising the text between them separately does what the crate does
# (probed: every code point before and after marks of classes 1, 9, 10, 103, 107, 202, 220, 230, 240).
_NFC_STARTERS = _parse_ranges(
    "07FD 0898-089F 08CA-08D3 09FE 0C3C 0D3B-0D3C 0EBA 1715 1ABF-1ACE 1DF6-1DFA A82C 10D24-10D27 10EAB-10EAC "
    "10F46-10F50 10F82-10F85 11070 1133B 1145E 11839-1183A 1193D-1193E 11943 119E0 11A34 11A47 11A99 11D42 "
    "11D44-11D45 11D97 16FF0-16FF1 1E130-1E136 1E2AE 1E2EC-1E2EF"
)
_NFC_SPLIT = re.compile(
    "(["
    + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in zip(*_NFC_STARTERS))
    # the crate also leaves U+11938 composed under NFD, so never composes U+11935 U+11930 into it
    + "]|\U00011935\U00011930)"
)


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's / GPT-2's byte -> printable character table: printable Latin-1 bytes map to themselves,
    the other 68 to U+0100 upwards, so that no token holds whitespace or a control character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# Planes 4-13 have never held an assigned code point, 15-16 are private use (Co): skipping them makes
# the classes 3x faster to build (tests/test_clip_tokenizer.py still checks every code point).
_MAYBE_ASSIGNED = [*range(0xD800), *range(0xE000, 0x40000), *range(0xE0000, 0xF0000)]


def _category_ranges(pred, extra: tuple[tuple[int, ...], tuple[int, ...]]) -> list[tuple[int, int]]:
    """(first, last) code point runs where ``pred(unicodedata.category)`` holds, plus ``extra``."""
    spans: list[list[int]] = []
    for cp in _MAYBE_ASSIGNED:
        if not pred(unicodedata.category(chr(cp))):
            continue
        if spans and spans[-1][1] == cp - 1:
            spans[-1][1] = cp
        else:
            spans.append([cp, cp])
    return sorted([(lo, hi) for lo, hi in spans] + list(zip(*extra)))  # extra: disjoint from the rest


@functools.cache
def letter_number_ranges() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The code point runs of \\p{L} and \\p{N}: unicodedata's L* / N* plus Unicode 15-16's additions."""
    return (
        _category_ranges(lambda c: c[0] == "L", _EXTRA_LETTERS),
        _category_ranges(lambda c: c[0] == "N", _EXTRA_NUMBERS),
    )


def class_body(ranges: list[tuple[int, int]]) -> str:
    """A regex character-class body (what goes between [ and ]) matching exactly ``ranges``."""
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges
    )


@functools.cache
def _pre_tokenizer() -> re.Pattern[str]:
    """CLIP's split regex with \\p{L}, \\p{N} and \\s spelled out (built once, ~0.4 s, on first use)."""
    letters, numbers = map(class_body, letter_number_ranges())
    space = re.escape(_WHITESPACE)
    specials_and_contractions = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    return re.compile(rf"{specials_and_contractions}|[{letters}]+|[{numbers}]|[^{space}{letters}{numbers}]+")


# _pre_tokenizer() restricted to ASCII text: \\p{L} there is [A-Za-z], \\p{N} is [0-9], \\s is \\t\\n\\v\\f\\r and " ".
_ASCII_PRE_TOKENIZER = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[A-Za-z]+|[0-9]|[^\t\n\x0b\x0c\r A-Za-z0-9]+"
)


def _nfc(text: str) -> str:
    if text.isascii():
        return text
    parts = _NFC_SPLIT.split(text)  # odd items: the separators, kept as they are
    if len(parts) == 1:
        return unicodedata.normalize("NFC", text)
    return "".join(p if i % 2 else unicodedata.normalize("NFC", p) for i, p in enumerate(parts))


def normalize(text: str) -> str:
    """The CLIPTokenizer normaliser: NFC, whitespace runs -> " ", per-character lowercase."""
    return _lower_per_char(_WHITESPACE_RUN.sub(" ", _nfc(text)))


def open_clip_vocab(bpe_gz: str | PathLike[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 49408-token vocabulary and 48894 merges CLIP builds from ``bpe_simple_vocab_16e6.txt.gz``:
    256 bytes, the same 256 with "</w>", one token per merge in rank order, then the two specials."""
    path = Path(bpe_gz)
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read the CLIP BPE merges ({e})") from None
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # as CLIP's SimpleTokenizer
    if len(merges) != 48894 or any(len(m) != 2 for m in merges):
        raise TokenizerError(f"{path}: expected 48894 merges of two symbols after the header line")
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + END_OF_WORD for c in byte_chars] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges  # type: ignore[return-value]


class ClipBpeTokenizer(BatchEncoder):
    """CLIP byte-level BPE: ``tok(texts) -> (input_ids, attention_mask)``, int64 [N, S], padded with
    <|endoftext|> (CLIP's text towers take max_length 77); ``eot_positions`` where they pool."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        max_length: int = CLIP_CONTEXT_LENGTH,
        source: str = "vocab",
    ) -> None:
        """``source`` names the files in error messages."""
        ids_seen = check_vocab(vocab, source)
        for tok in (BOS, EOS):
            if tok not in vocab:
                raise TokenizerError(f"{source}: the special token {tok!r} is not in the vocabulary")
        self._byte_char = bytes_to_unicode()
        missing = [c for c in self._byte_char.values() if c not in vocab or c + END_OF_WORD not in vocab]
        if missing:  # byte-level BPE has no unknown token: every byte must be there, alone and word-final
            raise TokenizerError(f"{source}: byte symbols {missing[:5]} (alone or with </w>) are not in the vocabulary")
        self._vocab = {t: int(i) for t, i in vocab.items()}
        self._id_to_token = ids_seen
        self._ranks: dict[tuple[str, str], int] = {}
        for rank, pair in enumerate(merges):
            if len(pair) != 2 or not all(isinstance(s, str) and s for s in pair):
                raise TokenizerError(f"{source}: merge {rank + 1} {pair!r} is not two non-empty symbols")
            if "".join(pair) not in self._vocab:
                raise TokenizerError(
                    f"{source}: merge {rank + 1} {' '.join(pair)!r} makes a token not in the vocabulary"
                )
            self._ranks.setdefault((pair[0], pair[1]), rank)  # a repeated merge keeps its first (lowest) rank
        self.max_length = self._check_max_length(max_length)
        self._specials = re.compile(re.escape(BOS) + "|" + re.escape(EOS))
        # Captions repeat words a lot; memoise piece -> ids (bounded, per instance).
        self._piece_ids = functools.lru_cache(maxsize=1 << 16)(self._piece_ids_uncached)

    @classmethod
    def from_files(cls, vocab_json: str | PathLike[str], merges_txt: str | PathLike[str], **kwargs) -> ClipBpeTokenizer:
        """Read CLIPTokenizer's ``save_pretrained`` files: vocab.json (token -> id) and merges.txt (one
        "a b" merge per line in rank order, after an optional ``#version`` header line)."""
        vpath, mpath = Path(vocab_json), Path(merges_txt)
        try:
            vocab = json.loads(read_text(vpath, "vocab file"))
        except json.JSONDecodeError as e:
            raise TokenizerError(f"{vpath}: vocab file is not valid JSON ({e})") from None
        if not isinstance(vocab, dict):
            raise TokenizerError(f"{vpath}: vocab file must hold a JSON object token -> id")
        lines = read_text(mpath, "merges file").split("\n")
        first = 1 if lines and lines[0].startswith("#version") else 0
        merges: list[tuple[str, str]] = []
        for i, line in enumerate(lines[first:], start=first + 1):
            line = line.rstrip("\r")
            if not line:
                continue  # the final newline
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise TokenizerError(f"{mpath}: line {i} {line!r} is not 'a b' (one merge)")
            merges.append((parts[0], parts[1]))
        kwargs.setdefault("source", f"{vpath} + {mpath.name}")
        tok = cls(vocab, merges, **kwargs)
        log.debug("loaded %d BPE tokens and %d merges from %s", len(vocab), len(merges), vpath.parent)
        return tok

    def save(self, directory: str | PathLike[str]) -> tuple[Path, Path]:
        """Write vocab.json and merges.txt (the layout CLIPTokenizer.from_pretrained reads)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        vocab = {t: i for t, i in sorted(self._vocab.items(), key=lambda kv: kv[1])}
        (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        merges = sorted(self._ranks, key=self._ranks.__getitem__)
        (d / "merges.txt").write_text(
            "\n".join([MERGES_HEADER, *(f"{a} {b}" for a, b in merges)]) + "\n", encoding="utf-8"
        )
        return d / "vocab.json", d / "merges.txt"

    # -- properties -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return max(self._id_to_token) + 1

    @property
    def bos_id(self) -> int:
        return self._vocab[BOS]

    @property
    def eos_id(self) -> int:
        return self._vocab[EOS]

    @property
    def pad_id(self) -> int:
        return self._vocab[EOS]  # CLIP pads with <|endoftext|> (the mask tells padding apart)

    start_id = bos_id
    end_id = eos_id

    @property
    def vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    # -- pipeline -------------------------------------------------------------------------------
    def _bpe(self, word: tuple[str, ...]) -> list[str]:
        ranks = self._ranks
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: ranks.get(p, 1 << 30))
            if best not in ranks:
                break
            a, b = best
            merged: list[str] = []
            i = 0
            while i < len(word):  # merge every occurrence left to right (non-overlapping)
                if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return list(word)

    def _piece_ids_uncached(self, piece: str) -> tuple[int, ...]:
        if piece in _SPECIAL_PIECES:  # GPT-2's split inside ByteLevel cuts these three ways
            return tuple(i for part in _SPECIAL_PIECES[piece] for i in self._piece_ids(part))
        chars = [self._byte_char[b] for b in piece.encode("utf-8")]
        symbols = (*chars[:-1], chars[-1] + END_OF_WORD)
        return tuple(self._vocab[s] for s in self._bpe(symbols))

    @staticmethod
    def _split(text: str) -> list[str]:
        """normalize + pre-tokenise. The whitespace step of normalize is skipped: the pattern drops every
        whitespace character just as it drops the " " that step writes, and NFC and lowercase map none
        into or out of the class, so the pieces are the same."""
        text = _lower_per_char(_nfc(text))
        # ASCII text (most captions) takes an equivalent pattern with small classes: ~5x faster
        return (_ASCII_PRE_TOKENIZER if text.isascii() else _pre_tokenizer()).findall(text)

    def _text_ids(self, text: str) -> list[int]:
        if not text.isascii() and _SURROGATES.search(text):
            text = _SURROGATES.sub("", text)
        piece_ids = self._piece_ids
        if "<|" not in text:  # no special token spelled out: the text is one segment
            return [i for piece in self._split(text) for i in piece_ids(piece)]
        ids: list[int] = []
        pos = 0
        for m in [*self._specials.finditer(text), None]:
            seg = text[pos : m.start() if m else len(text)]
            if seg:
                ids += [i for piece in self._split(seg) for i in piece_ids(piece)]
            if m:
                ids.append(self._vocab[m.group()])
                pos = m.end()
        return ids

    def eot_positions(self, input_ids: np.ndarray) -> np.ndarray:
        """Where a CLIP text tower pools, int64 [N]: each row's first <|endoftext|>, as transformers'
        CLIPTextTransformer (``(ids == eos_token_id).argmax(-1)``) and OpenAI CLIP (``ids.argmax(-1)``,
        49407 being the largest id) both do. It is the row's last real token unless the text itself
        spelled "<|endoftext|>"."""
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"input_ids must be [N, S] with S >= 1, got shape {ids.shape}")
        hit = ids == self.eos_id
        if not hit.any(axis=1).all():
            raise ValueError(f"rows {np.flatnonzero(~hit.any(axis=1)).tolist()} hold no <|endoftext|> ({self.eos_id})")
        return hit.argmax(axis=1).astype(np.int64)

    @staticmethod
    def _check_max_length(max_length: int) -> int:
        if not isinstance(max_length, (int, np.integer)) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(
                f"max_length must be an integer >= 2 (room for <|startoftext|> and <|endoftext|>), got {max_length!r}"
            )
        return int(max_length)

    def __repr__(self) -> str:
        return (
            f"ClipBpeTokenizer(vocab_size={self.vocab_size}, merges={len(self._ranks)}, max_length={self.max_length})"
        )
