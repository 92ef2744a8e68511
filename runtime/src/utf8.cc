#include "utf8.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "finsta_rt/errors.h"

namespace finsta_rt::utf8 {

bool decode(std::string_view s, std::u32string* out, size_t* bad_offset) {
  out->clear();
  out->reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    char32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F;
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F;
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07;
      len = 4;
    } else {
      *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      *bad_offset = i;
      return false;
    }
    out->push_back(cp);
    i += len;
  }
  return true;
}

void append(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append(cp, out);
  return out;
}

std::u32string decode_or_throw(std::string_view text, const std::string& what) {
  std::u32string out;
  size_t bad = 0;
  if (!decode(text, &out, &bad)) throw InputError(what + " is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  return out;
}

std::string read_text_file(const std::filesystem::path& path, const std::string& what, std::u32string* decoded) {
  const std::string p = path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw TokenizerError(p + ": " + what + " does not exist");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw TokenizerError(p + ": cannot read " + what + " (" + std::strerror(errno) + ")");
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw TokenizerError(p + ": cannot read " + what + " (read error)");
  std::u32string ignored;
  size_t bad = 0;
  if (!decode(raw, decoded ? decoded : &ignored, &bad))
    throw TokenizerError(p + ": " + what + " is not UTF-8 (byte " + std::to_string(bad) + ")");
  return raw;
}

}  // namespace finsta_rt::utf8
