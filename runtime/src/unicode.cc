#include "unicode.h"

#include <algorithm>
#include <iterator>

#include "finsta_rt_unicode_tables.h"

namespace finsta_rt::unicode {
namespace t = unicode_tables;

namespace {

template <typename R, size_t N>
const R* find_range(const R (&table)[N], char32_t cp) {
  const R* it =
      std::upper_bound(std::begin(table), std::end(table), cp, [](char32_t c, const R& r) { return c < r.lo; });
  if (it == std::begin(table)) return nullptr;
  --it;
  return cp <= it->hi ? it : nullptr;
}

template <size_t N, size_t D>
bool append_mapping(const t::Mapping (&table)[N], const char32_t (&data)[D], char32_t cp, std::u32string& out) {
  const t::Mapping* it = std::lower_bound(std::begin(table), std::end(table), cp,
                                          [](const t::Mapping& m, char32_t c) { return m.cp < c; });
  if (it == std::end(table) || it->cp != cp) return false;
  out.append(data + it->offset, it->length);
  return true;
}

}  // namespace

Clean clean_class(char32_t cp) {
  if (cp >= 0x21 && cp < 0x7F) return Clean::kKeep;  // printable ASCII: the common case
  const t::ValueRange* r = find_range(t::kClean, cp);
  return r ? static_cast<Clean>(r->value) : Clean::kKeep;
}

bool is_punctuation(char32_t cp) { return find_range(t::kPunctuation, cp) != nullptr; }

bool is_nonspacing_mark(char32_t cp) { return cp >= 0x300 && find_range(t::kNonspacingMark, cp) != nullptr; }

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const t::ValueRange* r = find_range(t::kCombining, cp);
  return r ? r->value : 0;
}

void append_decomposition(char32_t cp, std::u32string& out) {
  if (cp < 0xC0 || !append_mapping(t::kDecomposition, t::kDecompositionData, cp, out)) out += cp;
}

void append_lowercase(char32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out += (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return;
  }
  if (!append_mapping(t::kLowercase, t::kLowercaseData, cp, out)) out += cp;
}

const char* unicode_version() { return t::kUnicodeVersion; }

namespace {

// NFD: the per-code-point decompositions, then canonical ordering (each run of non-starters stably
// sorted by combining class). _NFD_KEEP stays whole (the generator checks NFC would recompose it).
std::u32string nfd(const std::u32string& text) {
  std::u32string d;
  d.reserve(text.size());
  for (char32_t cp : text) append_decomposition(cp, d);
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(d.begin() + static_cast<std::ptrdiff_t>(i), d.begin() + static_cast<std::ptrdiff_t>(j),
                       [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  return d;
}

// Hangul syllables compose arithmetically (Unicode 3.12): L V -> LV, LV T -> LVT.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;

// The primary composite of (a, b), or 0 when there is none.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kLCount * kNCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const t::Composition* it =
      std::lower_bound(std::begin(t::kComposition), std::end(t::kComposition), std::make_pair(a, b),
                       [](const t::Composition& c, const std::pair<char32_t, char32_t>& k) {
                         return c.first < k.first || (c.first == k.first && c.second < k.second);
                       });
  return it != std::end(t::kComposition) && it->first == a && it->second == b ? it->composite : 0;
}

// NFC of `text` (canonical decomposition, then canonical composition as in UAX #15).
void append_nfc(const std::u32string& text, std::u32string& out) {
  const std::u32string d = nfd(text);
  if (d.empty()) return;
  const size_t first = out.size();
  size_t starter = first;
  int last_class = combining_class(d[0]) ? 256 : 0;  // a leading non-starter composes with nothing
  out += d[0];
  for (size_t i = 1; i < d.size(); ++i) {
    const char32_t c = d[i];
    const int cls = combining_class(c);
    const char32_t composite = compose_pair(out[starter], c);
    if (composite && (last_class < cls || last_class == 0)) {  // not blocked: compose into the starter
      out[starter] = composite;
      continue;
    }
    if (cls == 0) starter = out.size();
    last_class = cls;
    out += c;
  }
}

template <size_t N>
bool in_ranges(const t::Range (&table)[N], char32_t cp) {
  return find_range(table, cp) != nullptr;
}

}  // namespace

std::u32string strip_accents(const std::u32string& text) {
  const std::u32string d = nfd(text);
  std::u32string out;
  out.reserve(d.size());
  for (char32_t cp : d)
    if (!is_nonspacing_mark(cp)) out += cp;
  return out;
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(t::kLetter, cp);
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(t::kNumber, cp);
}

bool is_clip_whitespace(char32_t cp) { return in_ranges(t::kClipWhitespace, cp); }

std::u32string clip_nfc(const std::u32string& text) {
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; })) return text;
  std::u32string out;
  out.reserve(text.size());
  size_t start = 0;  // of the part being collected
  for (size_t i = 0; i < text.size();) {
    size_t cut = 0;  // length of a separator at i
    if (in_ranges(t::kNfcStarters, text[i]))
      cut = 1;
    else if (text[i] == t::kNfcKeepFirst && i + 1 < text.size() && text[i + 1] == t::kNfcKeepSecond)
      cut = 2;
    if (!cut) {
      ++i;
      continue;
    }
    append_nfc(text.substr(start, i - start), out);
    out.append(text, i, cut);  // separators stay as they are
    i += cut;
    start = i;
  }
  append_nfc(text.substr(start), out);
  return out;
}

}  // namespace finsta_rt::unicode
