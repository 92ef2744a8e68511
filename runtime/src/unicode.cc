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

std::u32string strip_accents(const std::u32string& text) {
  std::u32string d;
  d.reserve(text.size());
  for (char32_t cp : text) append_decomposition(cp, d);
  // Canonical ordering: each run of non-starters is stably sorted by combining class.
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
  std::u32string out;
  out.reserve(d.size());
  for (char32_t cp : d)
    if (!is_nonspacing_mark(cp)) out += cp;
  return out;
}

}  // namespace finsta_rt::unicode
