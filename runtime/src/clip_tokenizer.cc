// CLIP BPE tokenizer: a step-by-step port of finsta_rt/clip_tokenizer.py (see the header).
#include "finsta_rt/clip_tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "finsta_rt/errors.h"
#include "py_format.h"
#include "unicode.h"
#include "utf8.h"

namespace fs = std::filesystem;

namespace finsta_rt {
namespace {

constexpr size_t kCacheLimit = size_t{1} << 16;  // pieces memoised per tokenizer, as the Python lru_cache
const std::u32string kBos32 = U"<|startoftext|>", kEos32 = U"<|endoftext|>";

// CLIP's / GPT-2's byte -> printable character table (bytes_to_unicode), in the Python dict's order:
// printable Latin-1 bytes map to themselves, the other 68 to U+0100 upwards.
std::vector<std::pair<uint8_t, char32_t>> bytes_to_unicode() {
  std::vector<std::pair<uint8_t, char32_t>> out;
  std::array<bool, 256> printable{};
  for (int b = 0; b < 256; ++b) {
    printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable[b]) out.emplace_back(static_cast<uint8_t>(b), static_cast<char32_t>(b));
  }
  char32_t next = 256;
  for (int b = 0; b < 256; ++b)
    if (!printable[b]) out.emplace_back(static_cast<uint8_t>(b), next++);
  return out;
}

bool starts_with(const std::u32string& s, size_t i, const std::u32string& prefix) {
  return s.compare(i, prefix.size(), prefix) == 0;
}

// CLIP's pre-tokenizer regex, matched by hand (leftmost-first alternatives, as the regex engine):
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// on_piece(start, length) for each match; what no alternative matches (whitespace) is dropped.
size_t contraction_length(const std::u32string& s, size_t i) {
  static const std::u32string kContractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  for (const auto& k : kContractions)
    if (starts_with(s, i, k)) return k.size();
  return 0;
}

template <typename F>
void pre_tokenize(const std::u32string& s, F on_piece) {
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const char32_t c = s[i];
    size_t len = 0;
    if (c == U'<' && (starts_with(s, i, kBos32) || starts_with(s, i, kEos32))) {
      len = starts_with(s, i, kBos32) ? kBos32.size() : kEos32.size();
    } else if (c == U'\'' && (len = contraction_length(s, i)) > 0) {
      // 's 't 're 've 'm 'll 'd
    } else if (unicode::is_letter(c)) {
      for (len = 1; i + len < n && unicode::is_letter(s[i + len]);) ++len;
    } else if (unicode::is_number(c)) {
      len = 1;
    } else if (!unicode::is_clip_whitespace(c)) {
      auto other = [](char32_t x) {
        return !unicode::is_clip_whitespace(x) && !unicode::is_letter(x) && !unicode::is_number(x);
      };
      for (len = 1; i + len < n && other(s[i + len]);) ++len;
    } else {
      ++i;  // whitespace separates pieces and is dropped
      continue;
    }
    on_piece(i, len);
    i += len;
  }
}

// A strict reader of vocab.json (one JSON object token -> id), with Python's json error messages and
// positions (characters, not bytes). Values other than integers are kept as their text for the error
// check_vocab gives them.
class VocabJson {
 public:
  struct Value {
    bool is_int = false;
    int64_t id = 0;
    std::string text;  // as Python's repr would show it, roughly: the JSON text (True/False/None)
  };

  VocabJson(std::u32string doc, std::string path) : s_(std::move(doc)), path_(std::move(path)) {}

  // The object's members in first-appearance order, each with its last value (Python's dict).
  std::vector<std::pair<std::string, Value>> parse() {
    ws();
    if (peek() != U'{') {
      skip_value();
      ws();
      if (i_ != s_.size()) fail("Extra data", i_);
      throw TokenizerError(path_ + ": vocab file must hold a JSON object token -> id");
    }
    ++i_;
    std::vector<std::pair<std::string, Value>> out;
    std::map<std::string, size_t> index;
    ws();
    if (peek() == U'}') {
      ++i_;
    } else {
      while (true) {
        if (peek() != U'"') fail("Expecting property name enclosed in double quotes", i_);
        std::string key = string();
        ws();
        if (peek() != U':') fail("Expecting ':' delimiter", i_);
        ++i_;
        ws();
        Value v = value();
        auto [it, inserted] = index.emplace(key, out.size());
        if (inserted)
          out.emplace_back(std::move(key), std::move(v));
        else
          out[it->second].second = std::move(v);
        ws();
        if (peek() == U'}') {
          ++i_;
          break;
        }
        if (peek() != U',') fail("Expecting ',' delimiter", i_);
        ++i_;
        ws();
      }
    }
    ws();
    if (i_ != s_.size()) fail("Extra data", i_);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what, size_t pos) const {
    const size_t line =
        static_cast<size_t>(std::count(s_.begin(), s_.begin() + static_cast<std::ptrdiff_t>(pos), U'\n'));
    const size_t nl = pos == 0 ? std::u32string::npos : s_.rfind(U'\n', pos - 1);
    const size_t column = nl == std::u32string::npos ? pos + 1 : pos - nl;
    throw TokenizerError(path_ + ": vocab file is not valid JSON (" + what + ": line " + std::to_string(line + 1) +
                         " column " + std::to_string(column) + " (char " + std::to_string(pos) + "))");
  }
  char32_t peek() const { return i_ < s_.size() ? s_[i_] : 0; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == U' ' || s_[i_] == U'\t' || s_[i_] == U'\n' || s_[i_] == U'\r')) ++i_;
  }
  bool literal(const std::u32string& word) {
    if (s_.compare(i_, word.size(), word) != 0) return false;
    i_ += word.size();
    return true;
  }
  int hex4(size_t at) const {
    if (at + 4 > s_.size()) return -1;
    int v = 0;
    for (size_t k = at; k < at + 4; ++k) {
      const char32_t c = s_[k];
      const int d = c >= U'0' && c <= U'9'   ? int(c - U'0')
                    : c >= U'a' && c <= U'f' ? int(c - U'a' + 10)
                    : c >= U'A' && c <= U'F' ? int(c - U'A' + 10)
                                             : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    return v;
  }

  // A string at i_ (on its opening quote), decoded to UTF-8.
  std::string string() {
    const size_t begin = i_++;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("Unterminated string starting at", begin);
      const char32_t c = s_[i_];
      if (c == U'"') {
        ++i_;
        return out;
      }
      if (c < 0x20) fail("Invalid control character at", i_);
      if (c != U'\\') {
        utf8::append(c, out);
        ++i_;
        continue;
      }
      const char32_t e = i_ + 1 < s_.size() ? s_[i_ + 1] : 0;
      static const std::u32string kSimple = U"\"\\/bfnrt";
      static const char kDecoded[] = "\"\\/\b\f\n\r\t";
      if (const size_t k = kSimple.find(e); e && k != std::u32string::npos) {
        out += kDecoded[k];
        i_ += 2;
        continue;
      }
      if (e != U'u') fail("Invalid \\escape", i_);
      int cp = hex4(i_ + 2);
      if (cp < 0) fail("Invalid \\uXXXX escape", i_ + 1);
      const size_t at = i_;
      i_ += 6;
      if (cp >= 0xD800 && cp <= 0xDBFF && s_.compare(i_, 2, U"\\u") == 0) {
        const int lo = hex4(i_ + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i_ += 6;
        }
      }
      if (cp >= 0xD800 && cp <= 0xDFFF)  // Python keeps it, but no UTF-8 text (and so no token) can hold one
        throw TokenizerError(path_ + ": vocab file holds a lone surrogate \\u" + py_hex(cp) + " at char " +
                             std::to_string(at) + ": not a character any text can contain");
      utf8::append(static_cast<char32_t>(cp), out);
    }
  }
  static std::string py_hex(int v) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (int shift = 12; shift >= 0; shift -= 4) out += hex[(v >> shift) & 15];
    return out;
  }

  // A number at i_ as Python's json reads it: (int, or nothing when it has a fraction or exponent).
  bool number(Value& v) {
    const size_t begin = i_;
    auto digit = [&](size_t k) { return k < s_.size() && s_[k] >= U'0' && s_[k] <= U'9'; };
    size_t k = i_ + (peek() == U'-');
    if (!digit(k)) return false;
    if (s_[k] == U'0')
      ++k;
    else
      while (digit(k)) ++k;
    bool integral = true;
    if (k < s_.size() && s_[k] == U'.' && digit(k + 1)) {
      integral = false;
      for (++k; digit(k);) ++k;
    }
    if (k < s_.size() && (s_[k] == U'e' || s_[k] == U'E')) {
      size_t e = k + 1;
      if (e < s_.size() && (s_[e] == U'+' || s_[e] == U'-')) ++e;
      if (digit(e)) {
        integral = false;
        for (k = e; digit(k);) ++k;
      }
    }
    i_ = k;
    v.text = utf8::encode(s_.substr(begin, k - begin));
    if (integral) {
      errno = 0;  // ids beyond int64 are no usable ids: reported as not a non-negative integer
      v.id = std::strtoll(v.text.c_str(), nullptr, 10);
      v.is_int = errno == 0;
    }
    return true;
  }

  Value value() {
    Value v;
    const size_t begin = i_;
    const char32_t c = peek();
    if (c == U'"') {
      v.text = py::str_repr(string());
    } else if (c == U'-' || (c >= U'0' && c <= U'9')) {
      if (!number(v)) {
        if (!literal(U"-Infinity")) fail("Expecting value", begin);
        v.text = "-inf";
      }
    } else if (literal(U"true")) {
      v.text = "True";
    } else if (literal(U"false")) {
      v.text = "False";
    } else if (literal(U"null")) {
      v.text = "None";
    } else if (literal(U"NaN")) {
      v.text = "nan";
    } else if (literal(U"Infinity")) {
      v.text = "inf";
    } else if (c == U'[' || c == U'{') {
      skip_value();
      v.text = utf8::encode(s_.substr(begin, i_ - begin));
    } else {
      fail("Expecting value", begin);
    }
    return v;
  }

  // Any JSON value at i_, checked and skipped.
  void skip_value() {
    const char32_t c = peek();
    if (c != U'[' && c != U'{') {
      value();
      return;
    }
    const char32_t close = c == U'[' ? U']' : U'}';
    ++i_;
    ws();
    if (peek() == close) {
      ++i_;
      return;
    }
    while (true) {
      if (close == U'}') {
        if (peek() != U'"') fail("Expecting property name enclosed in double quotes", i_);
        string();
        ws();
        if (peek() != U':') fail("Expecting ':' delimiter", i_);
        ++i_;
        ws();
      }
      skip_value();
      ws();
      if (peek() == close) {
        ++i_;
        return;
      }
      if (peek() != U',') fail("Expecting ',' delimiter", i_);
      ++i_;
      ws();
    }
  }

  std::u32string s_;
  std::string path_;
  size_t i_ = 0;
};

}  // namespace

struct ClipBpeTokenizer::Cache {
  std::shared_mutex mutex;
  std::unordered_map<std::string, std::vector<int64_t>> ids;  // piece (UTF-8) -> its ids
};

ClipBpeTokenizer ClipBpeTokenizer::from_files(const fs::path& vocab_json, const fs::path& merges_txt, int max_length) {
  const std::string vpath = vocab_json.string(), mpath = merges_txt.string();
  std::u32string doc;
  utf8::read_text_file(vocab_json, "vocab file", &doc);
  const auto entries = VocabJson(std::move(doc), vpath).parse();
  const std::string text = utf8::read_text_file(merges_txt, "merges file");
  std::vector<std::string> lines;
  for (size_t pos = 0;;) {  // Python's str.split("\n")
    const size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  const size_t first = lines[0].rfind("#version", 0) == 0 ? 1 : 0;
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(lines.size());
  for (size_t i = first; i < lines.size(); ++i) {
    std::string line = lines[i];
    while (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;  // the final newline
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos)
      throw TokenizerError(mpath + ": line " + std::to_string(i + 1) + " " + py::str_repr(line) +
                           " is not 'a b' (one merge)");
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  std::unordered_map<std::string, int64_t> vocab;
  const std::string source = vpath + " + " + merges_txt.filename().string();
  for (const auto& [token, v] : entries) {  // check_vocab's order and messages, where C++ ids cannot say it
    if (token.empty()) throw TokenizerError(source + ": token '' is not a non-empty string");
    if (!v.is_int || v.id < 0)
      throw TokenizerError(source + ": token " + py::str_repr(token) + " has id " + v.text +
                           ", not a non-negative integer");
    vocab.emplace(token, v.id);
  }
  return ClipBpeTokenizer(std::move(vocab), merges, max_length, source);
}

ClipBpeTokenizer::ClipBpeTokenizer(std::unordered_map<std::string, int64_t> vocab,
                                   const std::vector<std::pair<std::string, std::string>>& merges, int max_length,
                                   std::string source)
    : Tokenizer(std::move(vocab), std::move(source), std::string(kBos) + " and " + kEos),
      cache_(std::make_shared<Cache>()) {
  for (const char* tok : {kBos, kEos})
    if (!vocab_.count(tok))
      throw TokenizerError(source_ + ": the special token " + py::str_repr(tok) + " is not in the vocabulary");
  start_id_ = vocab_.at(kBos);
  end_id_ = pad_id_ = vocab_.at(kEos);  // CLIP pads with <|endoftext|> (the mask tells padding apart)
  std::vector<std::string> missing;     // byte-level BPE has no unknown token: every byte must be there
  for (const auto& [byte, ch] : bytes_to_unicode()) {
    const std::string sym = utf8::encode(std::u32string(1, ch));
    const auto alone = vocab_.find(sym), end = vocab_.find(sym + kEndOfWord);
    if (alone == vocab_.end() || end == vocab_.end()) {
      missing.push_back(sym);
      continue;
    }
    byte_id_[byte] = alone->second;
    byte_end_id_[byte] = end->second;
  }
  if (!missing.empty()) {
    std::string shown;
    for (size_t i = 0; i < std::min<size_t>(missing.size(), 5); ++i)
      shown += (i ? ", " : "") + py::str_repr(missing[i]);
    throw TokenizerError(source_ + ": byte symbols [" + shown + "] (alone or with </w>) are not in the vocabulary");
  }
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    if (a.empty() || b.empty())
      throw TokenizerError(source_ + ": merge " + std::to_string(rank + 1) + " (" + py::str_repr(a) + ", " +
                           py::str_repr(b) + ") is not two non-empty symbols");
    const auto merged = vocab_.find(a + b);
    if (merged == vocab_.end())
      throw TokenizerError(source_ + ": merge " + std::to_string(rank + 1) + " " + py::str_repr(a + " " + b) +
                           " makes a token not in the vocabulary");
    const auto left = vocab_.find(a), right = vocab_.find(b);
    if (left == vocab_.end() || right == vocab_.end()) continue;  // symbols BPE never holds: it never applies
    const uint64_t key = static_cast<uint64_t>(left->second) << 32 | static_cast<uint64_t>(right->second);
    ranks_.emplace(key, std::make_pair(static_cast<int64_t>(rank), merged->second));  // a repeat keeps its first
  }
  max_length_ = check_max_length(max_length);
  if (vocab_size_ > (int64_t{1} << 32)) throw TokenizerError(source_ + ": ids must be below 2**32");
}

std::vector<int64_t> ClipBpeTokenizer::bpe(const std::string& bytes) const {
  std::vector<int64_t> word;
  word.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    word.push_back(i + 1 == bytes.size() ? byte_end_id_[b] : byte_id_[b]);
  }
  std::vector<int64_t> merged;
  while (word.size() > 1) {
    int64_t best_rank = std::numeric_limits<int64_t>::max(), best_id = -1;
    uint64_t best_key = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const uint64_t key = static_cast<uint64_t>(word[i]) << 32 | static_cast<uint64_t>(word[i + 1]);
      const auto it = ranks_.find(key);
      if (it != ranks_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_id = it->second.second;
        best_key = key;
      }
    }
    if (best_id < 0) break;
    const auto a = static_cast<int64_t>(best_key >> 32), b = static_cast<int64_t>(best_key & 0xFFFFFFFFu);
    merged.clear();
    for (size_t i = 0; i < word.size();) {  // every occurrence, left to right (non-overlapping)
      if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
        merged.push_back(best_id);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word.swap(merged);
  }
  return word;
}

void ClipBpeTokenizer::append_piece_ids(const std::u32string& piece, std::vector<int64_t>& ids) const {
  if (piece == kBos32 || piece == kEos32) {  // GPT-2's split inside ByteLevel cuts these three ways
    append_piece_ids(U"<|", ids);
    append_piece_ids(piece.substr(2, piece.size() - 4), ids);
    append_piece_ids(U"|>", ids);
    return;
  }
  const std::string key = utf8::encode(piece);
  {
    std::shared_lock lock(cache_->mutex);
    const auto it = cache_->ids.find(key);
    if (it != cache_->ids.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> got = bpe(key);
  ids.insert(ids.end(), got.begin(), got.end());
  std::unique_lock lock(cache_->mutex);
  if (cache_->ids.size() >= kCacheLimit) cache_->ids.clear();
  cache_->ids.emplace(key, std::move(got));
}

void ClipBpeTokenizer::append_segment_ids(const std::u32string& segment, std::vector<int64_t>& ids) const {
  // normalize + pre-tokenise; the whitespace step of the normaliser is skipped as in Python (_split):
  // the pre-tokenizer drops every whitespace character just as it drops the " " that step writes.
  std::u32string text;
  text.reserve(segment.size());
  for (char32_t cp : unicode::clip_nfc(segment)) unicode::append_lowercase(cp, text);
  pre_tokenize(text, [&](size_t start, size_t len) { append_piece_ids(text.substr(start, len), ids); });
}

std::vector<int64_t> ClipBpeTokenizer::text_ids(std::string_view text) const {
  const std::u32string cps = utf8::decode_or_throw(text, "text");
  std::vector<int64_t> ids;
  size_t start = 0;  // of the segment before the next special token written in the raw text
  for (size_t i = 0; i < cps.size(); ++i) {
    if (cps[i] != U'<') continue;
    const bool bos = starts_with(cps, i, kBos32);
    if (!bos && !starts_with(cps, i, kEos32)) continue;
    if (i > start) append_segment_ids(cps.substr(start, i - start), ids);
    ids.push_back(bos ? start_id_ : end_id_);
    start = i + (bos ? kBos32.size() : kEos32.size());
    i = start - 1;
  }
  if (start < cps.size()) append_segment_ids(cps.substr(start), ids);
  return ids;
}

std::vector<int64_t> ClipBpeTokenizer::eot_positions(const EncodedBatch& batch) const {
  if (batch.cols <= 0)
    throw InputError("input_ids must be [N, S] with S >= 1, got shape (" + std::to_string(batch.rows) + ", " +
                     std::to_string(batch.cols) + ")");
  std::vector<int64_t> out;
  std::string missing;
  for (int64_t r = 0; r < batch.rows; ++r) {
    const auto row = batch.input_ids.begin() + r * batch.cols;
    const auto hit = std::find(row, row + batch.cols, end_id_);
    if (hit == row + batch.cols) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    out.push_back(hit - row);
  }
  if (!missing.empty())
    throw InputError("rows [" + missing + "] hold no <|endoftext|> (" + std::to_string(end_id_) + ")");
  return out;
}

}  // namespace finsta_rt
