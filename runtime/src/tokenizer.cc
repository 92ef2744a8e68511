// WordPiece tokenizer: a step-by-step port of finsta_rt/tokenizer.py (see the header).
#include "finsta_rt/tokenizer.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "finsta_rt/errors.h"
#include "py_format.h"
#include "unicode.h"
#include "utf8.h"

namespace fs = std::filesystem;

namespace finsta_rt {
namespace {

constexpr const char* kContinuation = "##";

bool is_ascii(const std::u32string& s) {
  return std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; });
}

// BertNormalizer on one chunk of raw text: clean text + CJK padding, NFD + strip accents, lowercase.
std::u32string normalize(const std::u32string& chunk, bool strip_accents, bool lowercase) {
  std::u32string s;
  s.reserve(chunk.size());
  for (char32_t cp : chunk) {
    switch (unicode::clean_class(cp)) {
      case unicode::Clean::kKeep:
        s += cp;
        break;
      case unicode::Clean::kDelete:
        break;
      case unicode::Clean::kSpace:
        s += U' ';
        break;
      case unicode::Clean::kPad:
        s += U' ';
        s += cp;
        s += U' ';
        break;
    }
  }
  if (strip_accents && !is_ascii(s)) s = unicode::strip_accents(s);
  if (lowercase) {
    std::u32string lower;
    lower.reserve(s.size());
    for (char32_t cp : s) unicode::append_lowercase(cp, lower);
    s.swap(lower);
  }
  return s;
}

// BertPreTokenizer on normalised text: split on " ", isolate every punctuation character.
std::vector<std::u32string> pre_tokenize(const std::u32string& normalized) {
  std::vector<std::u32string> words;
  size_t start = 0;
  for (size_t i = 0; i <= normalized.size(); ++i) {
    const bool end = i == normalized.size();
    const char32_t cp = end ? U' ' : normalized[i];
    if (cp == U' ' || unicode::is_punctuation(cp)) {
      if (i > start) words.emplace_back(normalized, start, i - start);
      if (cp != U' ') words.emplace_back(1, cp);
      start = i + 1;
    }
  }
  return words;
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const fs::path& path, TokenizerOptions options) {
  const std::string p = path.string();
  const std::string raw = utf8::read_text_file(path, "vocab file");
  // Only the line ending is removed (as HF's load_vocab does): tokens may contain other spaces.
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t nl = raw.find('\n', pos);
    if (nl == std::string::npos) {
      if (pos < raw.size()) lines.push_back(raw.substr(pos));  // a final newline starts no new token
      break;
    }
    lines.push_back(raw.substr(pos, nl - pos));
    pos = nl + 1;
  }
  for (auto& ln : lines)
    if (!ln.empty() && ln.back() == '\r') ln.pop_back();
  if (lines.empty()) throw TokenizerError(p + ": vocab file is empty");
  std::unordered_map<std::string, int64_t> vocab;
  vocab.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty())
      throw TokenizerError(p + ": line " + std::to_string(i + 1) + " is empty; every line must hold one token");
    auto [it, inserted] = vocab.emplace(lines[i], static_cast<int64_t>(i));
    if (!inserted)
      throw TokenizerError(p + ": duplicate token " + py::str_repr(lines[i]) + " on lines " +
                           std::to_string(it->second + 1) + " and " + std::to_string(i + 1));
  }
  return WordPieceTokenizer(std::move(vocab), std::move(options), p);
}

Tokenizer::~Tokenizer() = default;

Tokenizer::Tokenizer(std::unordered_map<std::string, int64_t> vocab, std::string source, std::string ends)
    : vocab_(std::move(vocab)), source_(std::move(source)), ends_(std::move(ends)) {
  if (vocab_.empty()) throw TokenizerError(source_ + ": the vocabulary is empty");
  // Check ids in id order so that messages do not depend on hash order.
  std::map<int64_t, std::string> by_id;
  for (const auto& [token, id] : vocab_) {
    if (token.empty()) throw TokenizerError(source_ + ": token '' is not a non-empty string");
    if (id < 0)
      throw TokenizerError(source_ + ": token " + py::str_repr(token) + " has id " + std::to_string(id) +
                           ", not a non-negative integer");
    std::u32string ignored;
    size_t bad = 0;
    if (!utf8::decode(token, &ignored, &bad))
      throw TokenizerError(source_ + ": token at id " + std::to_string(id) + " is not valid UTF-8");
    auto [it, inserted] = by_id.emplace(id, token);
    if (!inserted) {
      const auto& [a, b] = std::minmax(it->second, token);
      throw TokenizerError(source_ + ": tokens " + py::str_repr(a) + " and " + py::str_repr(b) + " share id " +
                           std::to_string(id));
    }
  }
  id_to_token_.insert(by_id.begin(), by_id.end());
  vocab_size_ = by_id.rbegin()->first + 1;
}

WordPieceTokenizer::WordPieceTokenizer(std::unordered_map<std::string, int64_t> vocab, TokenizerOptions options,
                                       std::string source)
    : Tokenizer(std::move(vocab), std::move(source), "[CLS] and [SEP]") {
  const std::pair<const char*, const std::string*> named[] = {{"unk", &options.unk_token},
                                                              {"cls", &options.cls_token},
                                                              {"sep", &options.sep_token},
                                                              {"pad", &options.pad_token}};
  for (const auto& [name, tok] : named)
    if (!vocab_.count(*tok))
      throw TokenizerError(source_ + ": the " + name + " token " + py::str_repr(*tok) + " is not in the vocabulary");
  unk_id_ = vocab_.at(options.unk_token);
  start_id_ = vocab_.at(options.cls_token);
  end_id_ = vocab_.at(options.sep_token);
  pad_id_ = vocab_.at(options.pad_token);
  lowercase_ = options.lowercase;
  strip_accents_ = options.strip_accents.value_or(lowercase_);
  max_length_ = check_max_length(options.max_length);
  max_input_chars_per_word_ = options.max_input_chars_per_word;
  std::vector<std::string> specials;
  if (options.special_tokens) {
    specials = *options.special_tokens;
  } else {
    specials = {options.unk_token, options.cls_token, options.sep_token, options.pad_token};
    if (vocab_.count("[MASK]")) specials.push_back("[MASK]");
  }
  std::sort(specials.begin(), specials.end());
  specials.erase(std::unique(specials.begin(), specials.end()), specials.end());
  std::string missing;
  for (const auto& s : specials)
    if (!vocab_.count(s)) missing += (missing.empty() ? "" : ", ") + py::str_repr(s);
  if (!missing.empty()) throw TokenizerError(source_ + ": special tokens [" + missing + "] are not in the vocabulary");
  // Longest first makes leftmost-first matching leftmost-longest, as in `tokenizers`.
  std::stable_sort(specials.begin(), specials.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  specials_ = std::move(specials);
}

int Tokenizer::check_max_length(std::optional<int> max_length) const {
  if (!max_length) return max_length_;
  // HF silently skips truncation when max_length < 2; we refuse: the start and end tokens need 2 positions.
  if (*max_length < 2)
    throw InputError("max_length must be an integer >= 2 (room for " + ends_ + "), got " + std::to_string(*max_length));
  return *max_length;
}

int64_t Tokenizer::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string& Tokenizer::id_to_token(int64_t id) const {
  auto it = id_to_token_.find(id);
  if (it == id_to_token_.end()) throw InputError(source_ + ": id " + std::to_string(id) + " is not in the vocabulary");
  return it->second;
}

void WordPieceTokenizer::append_word_ids(const std::u32string& word, std::vector<int64_t>& ids) const {
  append_word_pieces(word, ids, nullptr);
}

void WordPieceTokenizer::append_word_pieces(const std::u32string& word, std::vector<int64_t>& ids,
                                            std::vector<std::pair<int64_t, int64_t>>* spans) const {
  const int64_t n_word = static_cast<int64_t>(word.size());
  const size_t before = ids.size(), spans_before = spans ? spans->size() : 0;
  auto unknown = [&] {  // the whole word is one [UNK]
    ids.resize(before);
    ids.push_back(unk_id_);
    if (spans) {
      spans->resize(spans_before);
      spans->emplace_back(0, n_word);
    }
  };
  if (n_word > max_input_chars_per_word_) return unknown();
  std::string utf8;
  std::vector<size_t> offset;  // byte offset of each code point, and the end
  offset.reserve(word.size() + 1);
  for (char32_t cp : word) {
    offset.push_back(utf8.size());
    utf8::append(cp, utf8);
  }
  offset.push_back(utf8.size());
  std::string piece;
  size_t start = 0;
  const size_t n = word.size();
  while (start < n) {
    size_t end = n;
    int64_t found = -1;
    for (; end > start; --end) {
      piece.assign(start == 0 ? "" : kContinuation);
      piece.append(utf8, offset[start], offset[end] - offset[start]);
      auto it = vocab_.find(piece);
      if (it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) return unknown();  // one uncoverable piece makes the whole word [UNK]
    ids.push_back(found);
    if (spans) spans->emplace_back(static_cast<int64_t>(start), static_cast<int64_t>(end));
    start = end;
  }
}

void WordPieceTokenizer::append_chunk_pieces(const std::u32string& chunk, int64_t offset, std::vector<int64_t>& ids,
                                             std::vector<std::pair<int64_t, int64_t>>& spans) const {
  std::vector<int64_t> want;
  append_chunk_ids(chunk, want);
  // Normalise character by character, remembering which raw character each output came from.
  std::u32string per_char;
  std::vector<int64_t> owner;
  for (size_t i = 0; i < chunk.size(); ++i) {
    const std::u32string out = normalize(std::u32string(1, chunk[i]), strip_accents_, lowercase_);
    per_char += out;
    owner.insert(owner.end(), out.size(), static_cast<int64_t>(i));
  }
  std::vector<int64_t> got;
  std::vector<std::pair<int64_t, int64_t>> got_spans;
  if (per_char == normalize(chunk, strip_accents_, lowercase_)) {
    size_t pos = 0;
    for (const auto& word : pre_tokenize(per_char)) {
      pos = per_char.find(word, pos);  // pre_tokenize keeps characters in order and only drops " "
      std::vector<std::pair<int64_t, int64_t>> word_spans;
      append_word_pieces(word, got, &word_spans);
      for (const auto& [s, e] : word_spans)
        got_spans.emplace_back(owner[pos + static_cast<size_t>(s)], owner[pos + static_cast<size_t>(e) - 1] + 1);
      pos += word.size();
    }
  }
  if (got != want) {  // not attributable per character: every piece gets the whole chunk
    got = want;
    got_spans.assign(want.size(), {0, static_cast<int64_t>(chunk.size())});
  }
  ids.insert(ids.end(), got.begin(), got.end());
  for (const auto& [s, e] : got_spans) spans.emplace_back(offset + s, offset + e);
}

void WordPieceTokenizer::append_chunk_ids(const std::u32string& chunk, std::vector<int64_t>& ids) const {
  // `chunk` is raw text between whitespace; every normalisation step is per character (NFD
  // reorders marks only within a chunk), so chunks are normalised alone, as in Python.
  for (const auto& word : pre_tokenize(normalize(chunk, strip_accents_, lowercase_))) append_word_ids(word, ids);
}

template <typename Chunk, typename Special>
void WordPieceTokenizer::scan(std::string_view text, Chunk on_chunk, Special on_special) const {
  const std::u32string cps = utf8::decode_or_throw(text, "text");
  // Special tokens written literally in the raw text become their ids (matched on UTF-8 bytes:
  // equivalent on valid UTF-8, since a token cannot start inside a character).
  std::u32string chunk;
  size_t chunk_start = 0;
  auto flush = [&] {
    if (!chunk.empty()) on_chunk(chunk, static_cast<int64_t>(chunk_start));
    chunk.clear();
  };
  size_t byte = 0;
  for (size_t i = 0; i < cps.size();) {
    bool matched = false;
    for (const auto& s : specials_) {
      if (text.compare(byte, s.size(), s) == 0) {
        flush();
        const size_t first = i;
        for (unsigned char c : s) i += (c & 0xC0) != 0x80;  // code points in the token
        on_special(vocab_.at(s), static_cast<int64_t>(first), static_cast<int64_t>(i));
        byte += s.size();
        matched = true;
        break;
      }
    }
    if (matched) continue;
    const char32_t cp = cps[i];
    if (unicode::clean_class(cp) == unicode::Clean::kSpace) {
      flush();  // a certain word break
    } else {
      if (chunk.empty()) chunk_start = i;
      chunk += cp;
    }
    byte += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    ++i;
  }
  flush();
}

std::vector<int64_t> WordPieceTokenizer::text_ids(std::string_view text) const {
  std::vector<int64_t> ids;
  scan(
      text, [&](const std::u32string& chunk, int64_t) { append_chunk_ids(chunk, ids); },
      [&](int64_t id, int64_t, int64_t) { ids.push_back(id); });
  return ids;
}

std::vector<int64_t> WordPieceTokenizer::encode_with_offsets(std::string_view text,
                                                             std::vector<std::pair<int64_t, int64_t>>& spans,
                                                             std::optional<int> max_length) const {
  const int limit = check_max_length(max_length);
  std::vector<int64_t> ids;
  spans.clear();
  scan(
      text, [&](const std::u32string& chunk, int64_t start) { append_chunk_pieces(chunk, start, ids, spans); },
      [&](int64_t id, int64_t start, int64_t end) {
        ids.push_back(id);
        spans.emplace_back(start, end);
      });
  if (ids.size() > static_cast<size_t>(limit - 2)) {
    ids.resize(static_cast<size_t>(limit - 2));
    spans.resize(ids.size());
  }
  ids.insert(ids.begin(), start_id_);
  ids.push_back(end_id_);
  spans.insert(spans.begin(), {0, 0});
  spans.emplace_back(0, 0);
  return ids;
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (int64_t id : text_ids(text)) out.push_back(id_to_token_.at(id));
  return out;
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, std::optional<int> max_length) const {
  const int limit = check_max_length(max_length);
  std::vector<int64_t> ids = text_ids(text);
  if (ids.size() > static_cast<size_t>(limit - 2)) ids.resize(static_cast<size_t>(limit - 2));
  ids.insert(ids.begin(), start_id_);
  ids.push_back(end_id_);
  return ids;
}

EncodedBatch Tokenizer::encode_batch(const std::vector<std::string>& texts, std::optional<int> max_length,
                                     Padding padding) const {
  const int limit = check_max_length(max_length);
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    try {
      rows.push_back(text_ids(texts[i]));
    } catch (const InputError& e) {
      throw InputError("texts[" + std::to_string(i) + "]: " + e.what());
    }
  }
  return batch_from_ids(std::move(rows), limit, padding);
}

EncodedBatch Tokenizer::encode_ids_batch(std::vector<std::vector<int64_t>> ids, std::optional<int> max_length,
                                         Padding padding) const {
  return batch_from_ids(std::move(ids), check_max_length(max_length), padding);
}

EncodedBatch Tokenizer::batch_from_ids(std::vector<std::vector<int64_t>> rows, int limit, Padding padding) const {
  for (auto& ids : rows) {  // as encode: cut to limit - 2, then start ids end
    if (ids.size() > static_cast<size_t>(limit - 2)) ids.resize(static_cast<size_t>(limit - 2));
    ids.insert(ids.begin(), start_id_);
    ids.push_back(end_id_);
  }
  size_t width = 0;
  if (padding == Padding::kMaxLength)
    width = static_cast<size_t>(limit);
  else
    for (const auto& r : rows) width = std::max(width, r.size());
  EncodedBatch b;
  b.rows = static_cast<int64_t>(rows.size());
  b.cols = static_cast<int64_t>(width);
  b.input_ids.assign(rows.size() * width, pad_id_);
  b.attention_mask.assign(rows.size() * width, 0);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy(rows[i].begin(), rows[i].end(), b.input_ids.begin() + static_cast<std::ptrdiff_t>(i * width));
    std::fill_n(b.attention_mask.begin() + static_cast<std::ptrdiff_t>(i * width), rows[i].size(), 1);
  }
  return b;
}

}  // namespace finsta_rt
