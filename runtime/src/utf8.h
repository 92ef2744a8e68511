// Strict UTF-8 decoding and encoding (no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace finsta_rt::utf8 {

// Decodes `s`; on invalid input returns false and sets *bad_offset to the first bad byte.
bool decode(std::string_view s, std::u32string* out, size_t* bad_offset);
void append(char32_t cp, std::string& out);
std::string encode(const std::u32string& s);
// decode, or an InputError "WHAT is not valid UTF-8 (byte N)".
std::u32string decode_or_throw(std::string_view text, const std::string& what);
// The bytes of a tokenizer file, valid UTF-8 (decoded into *decoded when given), as Python's
// finsta_rt.tokenizer.read_text: TokenizerError "PATH: WHAT does not exist", "cannot read WHAT (...)",
// "WHAT is not UTF-8 (byte N)".
std::string read_text_file(const std::filesystem::path& path, const std::string& what,
                           std::u32string* decoded = nullptr);

}  // namespace finsta_rt::utf8
