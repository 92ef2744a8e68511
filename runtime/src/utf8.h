// Strict UTF-8 decoding and encoding (no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once

#include <string>
#include <string_view>

namespace finsta_rt::utf8 {

// Decodes `s`; on invalid input returns false and sets *bad_offset to the first bad byte.
bool decode(std::string_view s, std::u32string* out, size_t* bad_offset);
void append(char32_t cp, std::string& out);
std::string encode(const std::u32string& s);

}  // namespace finsta_rt::utf8
