// The runtime tokenizers' shared interface (Tokenizer, as finsta_rt.tokenizer.BatchEncoder) and the
// BERT WordPiece tokenizer, equal to finsta_rt/tokenizer.py (and so to HF `tokenizers`' BERT
// pipeline): special tokens matched on the raw text; clean text, CJK padding, NFD + accent strip,
// per-character lowercase; split on whitespace and punctuation; greedy longest-match WordPiece;
// [CLS] ... [SEP], truncated to max_length, padded on the right. The per-code-point classes come
// from tables generated from the Python tokenizer at build time (runtime/tools/gen_unicode_tables.py).
//
// Texts are UTF-8; invalid UTF-8 (including encoded surrogates) is refused with an InputError.
// The CLIP BPE tokenizer is in clip_tokenizer.h. A tokenizer is immutable after construction: all methods are const and
// safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "finsta_rt/export.h"

namespace finsta_rt {

struct FINSTA_RT_API TokenizerOptions {
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: follow lowercase (BertNormalizer's default)
  int max_length = 32;                // >= 2: room for [CLS] and [SEP]
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]";
  int max_input_chars_per_word = 100;
  // Tokens matched verbatim in the raw text; unset: unk, cls, sep, pad and "[MASK]" if in the vocab.
  std::optional<std::vector<std::string>> special_tokens;
};

enum class Padding { kLongest, kMaxLength };

// A padded batch: input_ids and attention_mask, int64, row-major [rows, cols].
struct FINSTA_RT_API EncodedBatch {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> input_ids, attention_mask;
};

// What every tokenizer shares: the ids of a text (text_ids, from the subclass) and the calls that wrap
// them in the start and end tokens ([CLS] ... [SEP], <|startoftext|> ... <|endoftext|>), truncate and pad
// them the same way. Model holds its bundle's tokenizer through this interface.
class FINSTA_RT_API Tokenizer {
 public:
  virtual ~Tokenizer();

  // Ids of `text` without the start and end tokens and without truncation. Throws InputError for
  // invalid UTF-8.
  virtual std::vector<int64_t> text_ids(std::string_view text) const = 0;
  // The token strings of text_ids(text).
  std::vector<std::string> tokenize(std::string_view text) const;
  // start ids end, the ids cut so the total is <= max_length (default: the tokenizer's max_length).
  std::vector<int64_t> encode(std::string_view text, std::optional<int> max_length = std::nullopt) const;
  // A batch, padded to its longest row or to max_length with pad_id (mask 0). Errors name the text:
  // "texts[3] ...".
  EncodedBatch encode_batch(const std::vector<std::string>& texts, std::optional<int> max_length = std::nullopt,
                            Padding padding = Padding::kLongest) const;
  // encode_batch for texts already turned into text_ids (one row per text): each row is cut and
  // wrapped in start ... end as encode does, then the batch is padded as encode_batch pads it.
  EncodedBatch encode_ids_batch(std::vector<std::vector<int64_t>> ids, std::optional<int> max_length = std::nullopt,
                                Padding padding = Padding::kLongest) const;

  int64_t vocab_size() const { return vocab_size_; }  // the largest id + 1
  int64_t start_id() const { return start_id_; }
  int64_t end_id() const { return end_id_; }
  int64_t pad_id() const { return pad_id_; }
  int max_length() const { return max_length_; }
  // -1 when `token` is not in the vocabulary.
  int64_t token_to_id(const std::string& token) const;
  // The token of `id`; throws InputError for an id not in the vocabulary.
  const std::string& id_to_token(int64_t id) const;

 protected:
  // Keeps `vocab` after the checks of Python's check_vocab (TokenizerError naming `source`: an empty
  // vocabulary, an empty or non-UTF-8 token, a negative id, two tokens sharing an id). `ends` names the
  // start and end tokens in max_length errors ("[CLS] and [SEP]").
  Tokenizer(std::unordered_map<std::string, int64_t> vocab, std::string source, std::string ends);
  Tokenizer(const Tokenizer&) = default;
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(const Tokenizer&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;

  // `max_length` checked (>= 2: room for the start and end tokens; InputError otherwise), or max_length_.
  int check_max_length(std::optional<int> max_length) const;
  // Cuts rows of text ids to limit - 2, adds the start and end tokens and pads them into one batch.
  EncodedBatch batch_from_ids(std::vector<std::vector<int64_t>> rows, int limit, Padding padding) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<int64_t, std::string> id_to_token_;
  int64_t vocab_size_ = 0, start_id_ = 0, end_id_ = 0, pad_id_ = 0;
  int max_length_ = 32;
  std::string source_, ends_;
};

class FINSTA_RT_API WordPieceTokenizer : public Tokenizer {
 public:
  // Reads a BERT vocab.txt: one token per line, id = line number from 0. Throws TokenizerError
  // naming the file and the line for an unreadable, non-UTF-8, empty or duplicate entry.
  static WordPieceTokenizer from_vocab_file(const std::filesystem::path& path, TokenizerOptions options = {});
  // `source` names the vocabulary in error messages.
  WordPieceTokenizer(std::unordered_map<std::string, int64_t> vocab, TokenizerOptions options = {},
                     std::string source = "vocab");

  std::vector<int64_t> text_ids(std::string_view text) const override;
  // encode(text, max_length) plus, in `spans`, the character (code point) span [start, end) in `text`
  // of each id, as the Python tokenizer's encode_with_offsets: [CLS] and [SEP] get (0, 0); a piece
  // covers the raw characters that produced it; where a whitespace chunk's normalisation is not
  // per character, each of its pieces gets the whole chunk.
  std::vector<int64_t> encode_with_offsets(std::string_view text, std::vector<std::pair<int64_t, int64_t>>& spans,
                                           std::optional<int> max_length = std::nullopt) const;

  int64_t cls_id() const { return start_id_; }
  int64_t sep_id() const { return end_id_; }
  int64_t unk_id() const { return unk_id_; }
  bool lowercase() const { return lowercase_; }
  bool strip_accents() const { return strip_accents_; }

 private:
  void append_chunk_ids(const std::u32string& chunk, std::vector<int64_t>& ids) const;
  void append_word_ids(const std::u32string& word, std::vector<int64_t>& ids) const;
  // WordPiece of one word: ids, and each piece's [start, end) in `word` when `spans` is given.
  void append_word_pieces(const std::u32string& word, std::vector<int64_t>& ids,
                          std::vector<std::pair<int64_t, int64_t>>* spans) const;
  // The ids of one raw whitespace-free chunk with their spans in it (the Python _chunk_pieces).
  void append_chunk_pieces(const std::u32string& chunk, int64_t offset, std::vector<int64_t>& ids,
                           std::vector<std::pair<int64_t, int64_t>>& spans) const;
  // Splits `text` at whitespace and special tokens: on_chunk(chunk, start) for each raw chunk,
  // on_special(id, start, end) for each special token (code point offsets).
  template <typename Chunk, typename Special>
  void scan(std::string_view text, Chunk on_chunk, Special on_special) const;

  std::vector<std::string> specials_;  // longest first
  bool lowercase_ = true, strip_accents_ = true;
  int max_input_chars_per_word_ = 100;
  int64_t unk_id_ = 0;
};

}  // namespace finsta_rt
