// CLIP's byte-level BPE tokenizer, equal to finsta_rt/clip_tokenizer.py (and so to transformers'
// CLIPTokenizer without ftfy), step by step as that module's docstring spells them out:
// <|startoftext|> / <|endoftext|> written in the raw text are matched first; NFC (cut at the marks the
// reference's normaliser takes for starters), per-character lowercase; CLIP's pre-tokenizer ('s 't 're
// 've 'm 'll 'd, runs of \p{L}, single \p{N}, runs of anything else but whitespace), whose pieces'
// UTF-8 bytes become GPT-2's printable byte symbols, "</w>" on the last; BPE, lowest merge rank first
// (memoised per piece); <|startoftext|> ids <|endoftext|>, truncated keeping <|endoftext|> last and
// padded on the right with <|endoftext|> (mask 0). The character classes and NFC's tables are
// generated from the Python tokenizer at build time (runtime/tools/gen_unicode_tables.py).
//
// Texts are UTF-8; invalid UTF-8 (including encoded surrogates) is refused with an InputError. A
// tokenizer is immutable after construction apart from its piece cache, which is locked: all methods
// are const and safe to call from several threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "finsta_rt/export.h"
#include "finsta_rt/tokenizer.h"

namespace finsta_rt {

class FINSTA_RT_API ClipBpeTokenizer : public Tokenizer {
 public:
  static constexpr int kContextLength = 77;  // CLIP's text towers
  static constexpr const char* kBos = "<|startoftext|>";
  static constexpr const char* kEos = "<|endoftext|>";
  static constexpr const char* kEndOfWord = "</w>";

  // Reads CLIPTokenizer's save_pretrained files: vocab.json (a JSON object token -> id) and merges.txt
  // (one "a b" merge per line in rank order, after an optional "#version" line). Throws TokenizerError
  // naming the file (and the line, or the JSON position) for an unreadable, non-UTF-8 or malformed one.
  static ClipBpeTokenizer from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt,
                                     int max_length = kContextLength);
  // `source` names the files in error messages. Throws TokenizerError for a vocabulary without the
  // two special tokens or a byte symbol, or a merge whose result is not in it; InputError for
  // max_length < 2.
  ClipBpeTokenizer(std::unordered_map<std::string, int64_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, int max_length = kContextLength,
                   std::string source = "vocab");

  std::vector<int64_t> text_ids(std::string_view text) const override;
  int64_t bos_id() const { return start_id_; }
  int64_t eos_id() const { return end_id_; }
  size_t merges() const { return ranks_.size(); }
  // Where a CLIP text tower pools, one per row: each row's first <|endoftext|> (transformers'
  // CLIPTextTransformer, OpenAI CLIP). Throws InputError for a batch with no columns or a row
  // without <|endoftext|>, as the Python eot_positions raises ValueError.
  std::vector<int64_t> eot_positions(const EncodedBatch& batch) const;

 private:
  struct Cache;
  // The ids of one pre-tokenizer piece (memoised).
  void append_piece_ids(const std::u32string& piece, std::vector<int64_t>& ids) const;
  // BPE of one piece's UTF-8 bytes, "</w>" on the last byte.
  std::vector<int64_t> bpe(const std::string& bytes) const;
  // The ids of raw text that holds no special token.
  void append_segment_ids(const std::u32string& segment, std::vector<int64_t>& ids) const;

  // (left id << 32 | right id) -> (rank, merged id); every symbol BPE sees is a vocabulary token, so
  // merging ids is merging strings.
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> ranks_;
  std::array<int64_t, 256> byte_id_{}, byte_end_id_{};  // each byte's symbol, alone and with "</w>"
  std::shared_ptr<Cache> cache_;
};

}  // namespace finsta_rt
