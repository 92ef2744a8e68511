// Per-code-point character classes and mappings of the BERT and CLIP normalisers and pre-tokenizers,
// looked up in the tables generated from finsta_rt/tokenizer.py and clip_tokenizer.py
// (finsta_rt_unicode_tables.h).
#pragma once

#include <cstdint>
#include <string>

namespace finsta_rt::unicode {

enum class Clean : uint8_t { kKeep = 0, kDelete = 1, kSpace = 2, kPad = 3 };

Clean clean_class(char32_t cp);                               // clean_text + handle_chinese_chars
bool is_punctuation(char32_t cp);                             // isolated by the pre-tokenizer
bool is_nonspacing_mark(char32_t cp);                         // dropped after NFD when stripping accents
uint8_t combining_class(char32_t cp);                         // canonical combining class
void append_decomposition(char32_t cp, std::u32string& out);  // full canonical decomposition
void append_lowercase(char32_t cp, std::u32string& out);      // per-character lowercase
const char* unicode_version();                                // of the Python that generated the tables

// The accent strip of the Python tokenizer: NFD (decompose, then canonical reordering), then drop
// non-spacing marks.
std::u32string strip_accents(const std::u32string& text);

// The CLIP tokenizer's classes (clip_tokenizer.py): \p{L}, \p{N} (letter_number_ranges()) and \s
// (_WHITESPACE, Unicode White_Space) of its pre-tokenizer regex.
bool is_letter(char32_t cp);
bool is_number(char32_t cp);
bool is_clip_whitespace(char32_t cp);

// clip_tokenizer._nfc: NFC, except that the text is cut at the _NFC_STARTERS marks and at U+11935 U+11930
// (which `tokenizers`' normaliser never composes), and each part between those is normalised alone.
std::u32string clip_nfc(const std::u32string& text);

}  // namespace finsta_rt::unicode
