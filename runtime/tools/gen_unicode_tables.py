#!/usr/bin/env python3
"""Writes the C++ tokenizer's Unicode tables, read off the Python tokenizer (one source of truth).

    gen_unicode_tables.py TOKENIZER_PY OUT_HEADER

TOKENIZER_PY is ``finsta_rt/tokenizer.py``; it is loaded by path (it needs only the stdlib and
numpy, not the rest of the package). Every Unicode scalar value is passed through the tokenizer's
own per-character functions, and the answers are written as sorted range and mapping tables:

- ``kClean``          what clean_text + handle_chinese_chars do (``_clean_char``): delete, map to
                      " ", or pad with spaces (CJK); code points not listed are kept as they are;
- ``kPunctuation``    ``_is_punctuation`` (isolated by the pre-tokenizer);
- ``kNonspacingMark`` ``_is_nonspacing_mark`` (dropped after NFD when stripping accents);
- ``kCombining``      canonical combining classes (NFD reorders marks by them);
- ``kDecomposition``  the full canonical decomposition of each code point (``unicodedata`` NFD of
                      the code point alone, except ``_NFD_KEEP``, which the tokenizer leaves whole);
- ``kLowercase``      ``_lower_per_char`` of each code point (Python's lowercase plus the
                      tokenizer's ``_EXTRA_LOWER``).

The CLIP BPE tokenizer's tables come from ``clip_tokenizer.py`` next to TOKENIZER_PY (loaded by path too,
inside a stand-in package so that its ``from .tokenizer import`` finds the module above):

- ``kComposition``    NFC's primary composites: (first, second) -> the code point whose canonical
                      decomposition they are, kept only where ``unicodedata.normalize("NFC", first + second)``
                      gives that code point (so composition exclusions are Python's, never listed here);
                      Hangul syllables compose arithmetically and are not listed;
- ``kLetter`` / ``kNumber``  ``letter_number_ranges()``: the pre-tokenizer's \\p{L} and \\p{N};
- ``kClipWhitespace`` ``_WHITESPACE`` (Oniguruma's \\s), dropped by the pre-tokenizer;
- ``kNfcStarters``    ``_NFC_STARTERS``: the marks the text is cut at before NFC.

NFD of a text is the canonical reordering of the concatenated per-code-point decompositions, so
these tables let the C++ side reproduce ``_normalize`` exactly; the pytest suite checks it on every
code point. The header records the Python and Unicode versions it was generated with.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unicodedata
from pathlib import Path

MAX_CP = 0x110000
SURROGATES = range(0xD800, 0xE000)
CLEAN_KEEP, CLEAN_DELETE, CLEAN_SPACE, CLEAN_PAD = 0, 1, 2, 3


def load_by_path(path: Path, name: str):
    """The module at ``path`` without importing its package (``name`` is the module's name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def load_tokenizer(path: Path):
    return load_by_path(path, "_finsta_tokenizer_for_tables")


def load_clip_tokenizer(tok, path: Path):
    """clip_tokenizer.py by path, its ``.tokenizer`` import answered by ``tok`` (no finsta_rt package import)."""
    pkg = types.ModuleType("_finsta_rt_for_tables")
    pkg.__path__ = [str(path.parent)]
    sys.modules[pkg.__name__] = pkg
    sys.modules[pkg.__name__ + ".tokenizer"] = tok
    return load_by_path(path, pkg.__name__ + ".clip_tokenizer")


def compositions(chars) -> list[tuple[int, int, int]]:
    """(first, second, composite) for every primary composite NFC makes, sorted by (first, second)."""
    out = []
    for cp, ch in chars:
        d = unicodedata.decomposition(ch).split()
        if len(d) != 2 or d[0].startswith("<"):
            continue  # no canonical pair (compatibility, singleton, Hangul: arithmetic)
        a, b = (int(x, 16) for x in d)
        if unicodedata.normalize("NFC", chr(a) + chr(b)) == ch:  # excluded composites stay apart
            out.append((a, b, cp))
    return sorted(out)


def runs(values):
    """[(lo, hi, value)] for maximal runs of equal non-zero/non-False values over all code points."""
    out = []
    for cp, v in values:
        if not v:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def scalar_values():
    return (cp for cp in range(MAX_CP) if cp not in SURROGATES)


def clean_class(tok, ch: str) -> int:
    r = tok._clean_char(ch)
    if r == " ":  # " " itself included: it is a word break
        return CLEAN_SPACE
    if r == ch:
        return CLEAN_KEEP
    if r == "":
        return CLEAN_DELETE
    if r == f" {ch} ":
        return CLEAN_PAD
    raise SystemExit(f"_clean_char({ch!r}) = {r!r}: not a case the C++ tokenizer knows")


def decomposition(tok, ch: str) -> str:
    return ch if ch == tok._NFD_KEEP else unicodedata.normalize("NFD", ch)


def hexs(cps) -> str:
    return ", ".join(f"0x{c:X}" for c in cps)


def table_lines(rows, per_line: int = 4):
    return ["  " + " ".join(rows[i : i + per_line]) for i in range(0, len(rows), per_line)]


def mapping(name: str, pairs) -> list[str]:
    """kName (cp, offset, length) sorted by cp, and kNameData with the concatenated outputs."""
    entries, data = [], []
    for cp, out in pairs:
        entries.append(f"{{0x{cp:X}, {len(data)}, {len(out)}}},")
        data.extend(ord(c) for c in out)
    lines = [f"inline constexpr Mapping k{name}[] = {{"] + table_lines(entries) + ["};"]
    lines += [f"inline constexpr char32_t k{name}Data[] = {{"]
    lines += ["  " + hexs(data[i : i + 12]) + "," for i in range(0, len(data), 12)] + ["};"]
    return lines


def ranges_table(name: str, ranges) -> list[str]:
    return [
        f"inline constexpr Range k{name}[] = {{",
        *table_lines([f"{{0x{lo:X}, 0x{hi:X}}}," for lo, hi in ranges]),
        "};",
    ]


def generate(tok_path: Path) -> str:
    tok = load_tokenizer(tok_path)
    clip = load_clip_tokenizer(tok, tok_path.with_name("clip_tokenizer.py"))
    chars = [(cp, chr(cp)) for cp in scalar_values()]
    clean = runs((cp, clean_class(tok, ch)) for cp, ch in chars)
    punct = runs((cp, tok._is_punctuation(ch)) for cp, ch in chars)
    marks = runs((cp, tok._is_nonspacing_mark(ch)) for cp, ch in chars)
    ccc = runs((cp, unicodedata.combining(ch)) for cp, ch in chars)
    decomp = [(cp, d) for cp, ch in chars if (d := decomposition(tok, ch)) != ch]
    lower = [(cp, lo) for cp, ch in chars if (lo := tok._lower_per_char(ch)) != ch]
    # The C++ side relies on these facts; fail here rather than produce a wrong table.
    assert unicodedata.combining(tok._NFD_KEEP) == 0, "_NFD_KEEP must be a starter"
    assert all(len(d) <= 4 for _, d in decomp) and all(len(lo) <= 3 for _, lo in lower)
    assert all(clean_class(tok, c) == CLEAN_SPACE for c in tok._WHITESPACE)
    assert not any(
        clean_class(tok, chr(cp)) == CLEAN_SPACE for cp in scalar_values() if chr(cp) not in tok._WHITESPACE
    ), "break characters must be exactly _WHITESPACE"
    comp = compositions(chars)
    letters, numbers = clip.letter_number_ranges()
    clip_space = runs((ord(c), True) for c in sorted(clip._WHITESPACE))
    nfc_starters = list(zip(*clip._NFC_STARTERS))
    # NFC in C++ decomposes with kDecomposition, which keeps _NFD_KEEP whole: right only if NFC would
    # recompose it anyway (it is its own NFC, a starter, and no mark can sit between its two halves).
    keep = tok._NFD_KEEP
    nfd_keep = unicodedata.normalize("NFD", keep)
    assert unicodedata.normalize("NFC", keep) == keep and unicodedata.combining(keep) == 0
    assert len(nfd_keep) == 2 and all(unicodedata.combining(c) == 0 for c in nfd_keep)
    assert all(d == unicodedata.normalize("NFD", chr(cp)) for cp, d in decomp if chr(cp) != keep)
    assert clip._NFC_SPLIT.pattern.endswith("|" + nfd_keep + ")"), "the C++ NFC cuts at _NFD_KEEP's halves too"

    out = [
        "// Generated by runtime/tools/gen_unicode_tables.py from finsta_rt/tokenizer.py and clip_tokenizer.py. Do not edit.",
        f"// Python {sys.version.split()[0]}, unicodedata {unicodedata.unidata_version}.",
        "#pragma once",
        "#include <cstdint>",
        "",
        "namespace finsta_rt::unicode_tables {",
        "",
        f'inline constexpr const char* kUnicodeVersion = "{unicodedata.unidata_version}";',
        "enum : std::uint8_t { kKeep = 0, kDelete = 1, kSpace = 2, kPad = 3 };",
        "struct Range { char32_t lo, hi; };",
        "struct ValueRange { char32_t lo, hi; std::uint8_t value; };",
        "struct Mapping { char32_t cp; std::uint32_t offset; std::uint8_t length; };",
        "",
        "inline constexpr ValueRange kClean[] = {",
        *table_lines([f"{{0x{lo:X}, 0x{hi:X}, {v}}}," for lo, hi, v in clean]),
        "};",
        "inline constexpr Range kPunctuation[] = {",
        *table_lines([f"{{0x{lo:X}, 0x{hi:X}}}," for lo, hi, _ in punct]),
        "};",
        "inline constexpr Range kNonspacingMark[] = {",
        *table_lines([f"{{0x{lo:X}, 0x{hi:X}}}," for lo, hi, _ in marks]),
        "};",
        "inline constexpr ValueRange kCombining[] = {",
        *table_lines([f"{{0x{lo:X}, 0x{hi:X}, {v}}}," for lo, hi, v in ccc]),
        "};",
        *mapping("Decomposition", decomp),
        *mapping("Lowercase", lower),
        "struct Composition { char32_t first, second, composite; };",
        "inline constexpr Composition kComposition[] = {",
        *table_lines([f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for a, b, c in comp]),
        "};",
        *ranges_table("Letter", letters),
        *ranges_table("Number", numbers),
        *ranges_table("ClipWhitespace", [(lo, hi) for lo, hi, _ in clip_space]),
        *ranges_table("NfcStarters", nfc_starters),
        f"inline constexpr char32_t kNfcKeepFirst = 0x{ord(nfd_keep[0]):X}, kNfcKeepSecond = 0x{ord(nfd_keep[1]):X};",
        "",
        "}  // namespace finsta_rt::unicode_tables",
        "",
    ]
    return "\n".join(out)


def write_if_changed(out: Path, text: str) -> None:
    """Writes ``text`` to ``out`` unless it holds it already (keeping the mtime: no needless rebuild)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_text() != text:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)


def run_generator(doc: str, generate, argv: list[str]) -> int:
    """A generator's command line, ``SOURCE.py OUT.h`` (usage: the second paragraph of ``doc``): OUT.h is
    rewritten only when ``generate(SOURCE)`` changed."""
    if len(argv) != 3:
        print(doc.split("\n\n")[1], file=sys.stderr)
        return 2
    write_if_changed(Path(argv[2]), generate(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(run_generator(__doc__, generate, sys.argv))
